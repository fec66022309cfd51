"""autobahn's per-connection copy of its factory's options, shared instead.

When a connection is made, autobahn's ``WebSocketProtocol._connectionMade``
copies each of ``CONFIG_ATTRS`` (29 options for a server: timeouts, frame
sizes, ping settings, the compression callback...) from the factory into the
new protocol's own ``__dict__``, unless the protocol already has the
attribute. daphne builds one factory per process and never changes its
options once it serves, so every connection held the same 29 values in an
instance dictionary of its own: the largest single allocation per connection
in a tracemalloc snapshot of a worker holding thousands (docs/PERFORMANCE.md,
c100k).

``share_options(protocol)``, called with the first connection, gives the
factory a subclass of its protocol class with the factory's options as class
attributes. Connections built after it find every option there and copy none;
what they read is the same value as before. A function (the compression
callback) is kept as a ``staticmethod``, so reading it from an instance does
not bind it. An option set on one connection (feeds.deliver.server sets the
compression callback per connection) still goes into that connection's own
dictionary and shadows the shared one.

The same loop then lists the options for a debug log line, through
``pprint.pformat``, whether or not debug lines are written: 121 us per
connection here (timeit of the 29-option list), a sixteenth of a worker's
CPU per handshake in a profile of a connect burst. ``share_options`` also
gives that module ``repr`` in place of ``pformat``: 10 us, and the same text
on one line.
"""

from __future__ import annotations

import inspect
import pprint
import sys
from typing import Any

MARK = "_marketfeed_shared_options"


def share_options(protocol: Any) -> bool:
    """Move ``protocol``'s factory's options to a shared protocol class; True once it is done.

    Anything unexpected (no factory, no ``CONFIG_ATTRS``, a factory without an
    option) leaves the factory as it is: connections then copy, as before.
    """
    factory = getattr(protocol, "factory", None)
    if factory is None:
        return False
    if getattr(factory, MARK, False):
        return True
    base = getattr(factory, "protocol", None)
    names = getattr(base, "CONFIG_ATTRS", None)
    if not isinstance(base, type) or not names or type(protocol) is not base:
        return False
    if not all(hasattr(factory, name) for name in names):
        return False
    options = {
        name: staticmethod(value) if inspect.isfunction(value) else value
        for name in names
        for value in (getattr(factory, name),)
    }
    factory.protocol = type(base.__name__, (base,), {**options, "__module__": base.__module__})
    setattr(factory, MARK, True)
    brief_option_log()
    return True


def brief_option_log() -> bool:
    """autobahn's per-connection listing of its options as ``repr``; True if it is (now) so.

    A module that does not use ``pprint.pformat`` under that name is left alone.
    """
    module = sys.modules.get("autobahn.websocket.protocol")
    current = getattr(module, "pformat", None)
    if current is repr:
        return True
    if current is not pprint.pformat:
        return False
    module.pformat = repr  # type: ignore[union-attr]
    return True
