"""What a child process of the publisher runs first. Standard library only.

A spawned child imports this module by name before anything else, without
Django's apps loaded, so nothing here may import the rest of the feed.
"""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """The kernel ends this process when its parent dies, even by SIGKILL.

    Otherwise a killed runticker leaves its backfill simulation running as an
    orphan, holding the dead process's output open (Linux only; elsewhere an
    orphan finishes its work and exits).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the line above ran
        os._exit(0)
