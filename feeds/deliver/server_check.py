"""The private parts of daphne, Twisted and autobahn the feed relies on, and whether they are there.

ASGI carries neither back-pressure, nor close codes 1001/1009, nor a way to
write a frame without the server's per-message path, so the adapter
(feeds/deliver/server.py, server_http.py) reaches under daphne into autobahn's
protocol and Twisted's transport, by names no library promises to keep. Every
such name is in ``NEEDS`` below, with the features that fall away without it.

``check()`` looks for each one on the installed classes, once per process:
an attribute of the class, or one its code reads or sets on instances (an
instance attribute such as autobahn's ``send_queue`` exists only once a
connection is made, so the check reads the class's bytecode for it). Every
connection attached later is checked again on its own objects. A piece found
missing switches off the features that need it, for the rest of the process,
and is named in ONE warning line per process, instead of a silent fallback to
plain ASGI. ``mode()`` says what is in effect; /healthz (staff) and /metrics
show it.

The module imports no daphne module that is not loaded already: importing
``daphne.server`` installs Twisted's reactor, which only daphne itself may do.
"""

from __future__ import annotations

import dis
import functools
import importlib
import logging
import sys
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

logger = logging.getLogger(__name__)

# The features; the consequence of losing each, as the warning line says it.
FAST_WRITE = "fast_write"
BACK_PRESSURE = "back_pressure"
CLOSE_CODES = "close_codes"
COMPRESSION = "compression"
STREAM_WRITE = "stream_write"
STREAM_BACK_PRESSURE = "stream_back_pressure"
CONSEQUENCES = {
    FAST_WRITE: "no fast write path",
    BACK_PRESSURE: "no back-pressure (a slow WebSocket client is buffered, not conflated)",
    CLOSE_CODES: "1001 closes refused (the connection is dropped instead)",
    COMPRESSION: "no permessage-deflate",
    STREAM_WRITE: "SSE events go through plain ASGI",
    STREAM_BACK_PRESSURE: "no back-pressure for SSE (a slow reader is buffered)",
}
FEATURES = tuple(CONSEQUENCES)
WEBSOCKET = frozenset({FAST_WRITE, BACK_PRESSURE, CLOSE_CODES, COMPRESSION})
STREAM = frozenset({STREAM_WRITE, STREAM_BACK_PRESSURE})
EVERYTHING = WEBSOCKET | STREAM

# How a piece is named in the log, /healthz and /metrics: "<owner> <class>.<attribute>".
OWNERS = {
    "daphne_server": "daphne Server",
    "websocket_protocol": "autobahn WebSocketServerProtocol",
    "deflate": "autobahn PerMessageDeflate",
    "tcp_connection": "twisted tcp.Connection",
    "http_channel": "twisted.web HTTPChannel",
    "request": "twisted.web Request",
}
DAPHNE_SEND = "daphne's send as functools.partial(Server.handle_reply, connection)"


@dataclass(frozen=True, slots=True)
class Need:
    """One attribute of one library class, and the features that need it."""

    owner: str  # a field of ``Libraries``
    attribute: str
    features: frozenset[str]

    @property
    def name(self) -> str:
        return f"{OWNERS[self.owner]}.{self.attribute}"


def _needs(owner: str, features: frozenset[str] | set[str], *attributes: str) -> list[Need]:
    return [Need(owner, a, frozenset(features)) for a in attributes]


NEEDS: tuple[Need, ...] = (
    # ``send`` is partial(server.handle_reply, protocol): how a connection is found at all.
    *_needs("daphne_server", EVERYTHING, "handle_reply"),
    # transport.connected tells a shutdown when a 1001 close has reached the client.
    *_needs("websocket_protocol", {FAST_WRITE, BACK_PRESSURE, CLOSE_CODES}, "transport"),
    *_needs(
        "websocket_protocol", {FAST_WRITE},
        "state", "STATE_OPEN", "STATE_CLOSING", "STATE_CLOSED", "send_queue",
    ),
    *_needs("websocket_protocol", {CLOSE_CODES}, "sendCloseFrame"),
    *_needs(
        "websocket_protocol", {COMPRESSION}, "perMessageCompressionAccept", "_perMessageCompress"
    ),
    *_needs(
        "deflate", {COMPRESSION},
        "server_no_context_takeover", "server_max_window_bits",
        "start_compress_message", "compress_message_data", "end_compress_message",
    ),
    *_needs(
        "tcp_connection", {FAST_WRITE},
        "socket", "TLS", "dataBuffer", "_tempDataLen", "disconnecting", "write",
    ),
    *_needs("tcp_connection", {FAST_WRITE, CLOSE_CODES}, "connected"),
    *_needs(
        "tcp_connection", {BACK_PRESSURE}, "registerProducer", "unregisterProducer", "producer"
    ),
    *_needs("tcp_connection", {BACK_PRESSURE, STREAM_BACK_PRESSURE}, "bufferSize", "getHandle"),
    # daphne upgrades in place: the HTTPChannel stays the transport's producer until released.
    *_needs("http_channel", {BACK_PRESSURE}, "pauseProducing", "resumeProducing"),
    *_needs("http_channel", {STREAM_BACK_PRESSURE}, "_waitingForTransport", "transport"),
    *_needs("request", {STREAM_WRITE}, "write", "finished"),
    *_needs("request", {STREAM_WRITE, STREAM_BACK_PRESSURE}, "channel"),
    *_needs(
        "request", {STREAM_BACK_PRESSURE}, "registerProducer", "unregisterProducer", "producer"
    ),
)


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A library class that could not be imported (its dotted path)."""

    path: str


@dataclass(frozen=True, slots=True)
class Libraries:
    """The classes the adapter reaches into; ``None``: not in use in this process.

    ``installed()`` loads the real ones; a test passes its own to ``Adapter``.
    """

    daphne_server: Any = None
    websocket_protocol: Any = None
    deflate: Any = None
    tcp_connection: Any = None
    http_channel: Any = None
    request: Any = None

    @classmethod
    def installed(cls) -> Libraries:
        # daphne.server only once daphne has loaded it (it installs the reactor on import).
        server = _load("daphne.server", "Server") if "daphne.server" in sys.modules else None
        return cls(
            daphne_server=server,
            websocket_protocol=_load("daphne.ws_protocol", "WebSocketProtocol"),
            deflate=_load("autobahn.websocket.compress", "PerMessageDeflate"),
            tcp_connection=_load("twisted.internet.tcp", "Connection"),
            http_channel=_load("twisted.web.http", "HTTPChannel"),
            request=_load("daphne.http_protocol", "WebRequest"),
        )


def _load(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return Unavailable(f"{module}.{name}")


def class_has(cls: type, attribute: str) -> bool:
    """Whether ``cls`` has ``attribute``, or its code reads or sets it on an instance."""
    return hasattr(cls, attribute) or _used_as_attribute(cls, attribute)


@functools.cache
def _used_as_attribute(cls: type, attribute: str) -> bool:
    """Whether some method of ``cls`` (or of a base) reads, sets or calls ``x.attribute``."""
    return any(
        attribute in code.co_names
        and any(
            i.argval == attribute and (i.opname.endswith("_ATTR") or i.opname == "LOAD_METHOD")
            for i in dis.get_instructions(code)
        )
        for code in _codes(cls)
    )


def _codes(cls: type) -> Iterator[types.CodeType]:
    for klass in cls.__mro__:
        for value in vars(klass).values():
            funcs = (value.fget, value.fset) if isinstance(value, property) else (value,)
            for func in funcs:
                code = getattr(getattr(func, "__func__", func), "__code__", None)
                if isinstance(code, types.CodeType):
                    yield from _nested(code)


def _nested(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _nested(const)


def class_level_missing(libraries: Libraries) -> Iterator[tuple[str, frozenset[str]]]:
    """Each piece the installed ``libraries`` lack: (its name, the features it costs)."""
    for field in fields(libraries):
        owner = field.name
        cls = getattr(libraries, owner)
        needs = [n for n in NEEDS if n.owner == owner]
        if cls is None:
            continue
        if isinstance(cls, Unavailable):
            costs = frozenset().union(*(n.features for n in needs))
            yield f"{cls.path} (cannot be imported)", costs
            continue
        for need in needs:
            if not class_has(cls, need.attribute):
                yield need.name, need.features


def daphne_running() -> bool:
    """Whether daphne serves this process: its server module loaded, Twisted's reactor running."""
    reactor = sys.modules.get("twisted.internet.reactor")
    return "daphne.server" in sys.modules and bool(getattr(reactor, "running", False))


class Adapter:
    """What this process found of the pieces, and so which features are in effect.

    One per process (``ADAPTER``); tests make their own with the ``libraries``
    and ``daphne_running`` they want checked.
    """

    def __init__(
        self,
        libraries: Libraries | None = None,
        *,
        daphne_running: Callable[[], bool] = daphne_running,
    ) -> None:
        self._given = libraries
        self._libraries: Libraries | None = None
        self._daphne_running = daphne_running
        self._missing: dict[str, frozenset[str]] = {}  # piece -> the features it costs
        self._lost: frozenset[str] = frozenset()
        self._checked = False
        self._daphne_seen = False
        self._lock = threading.Lock()
        # Flushes written to a client's transport directly, not through ASGI and autobahn.
        self.direct_writes = 0

    @property
    def libraries(self) -> Libraries:
        current = self._libraries
        if current is None or (
            self._given is None
            and current.daphne_server is None
            and "daphne.server" in sys.modules
        ):
            # First use, or daphne's server loaded since (``runserver`` loads it after the
            # apps): load again, and check again; a piece already named is not named twice.
            current = self._given if self._given is not None else Libraries.installed()
            self._libraries = current
            self._checked = False
        return current

    def check(self) -> list[str]:
        """Check the installed classes (once; again if daphne's server loaded since).

        Returns the names of the missing pieces.
        """
        with self._lock:
            libraries = self.libraries
            if not self._checked:
                self._checked = True
                for name, features in class_level_missing(libraries):
                    self._record(name, features)
        return sorted(self._missing)

    def lose(self, name: str, features: frozenset[str] | set[str]) -> None:
        """Record a piece found missing on a connection's objects (warned once per process)."""
        with self._lock:
            self._record(name, frozenset(features))

    def _record(self, name: str, features: frozenset[str]) -> None:
        if name in self._missing:
            return
        self._missing[name] = features
        self._lost |= features
        logger.warning(
            "server adapter: %s is missing; %s",
            name, ", ".join(CONSEQUENCES[f] for f in FEATURES if f in features),
        )

    def available(self) -> frozenset[str]:
        """The features no missing piece has switched off."""
        self.check()
        return EVERYTHING - self._lost

    def mode(self) -> dict[str, Any]:
        """``{"server": "daphne"|"asgi", <feature>: bool..., "degraded": bool, "missing": [...]}``.

        A feature is in effect only under daphne: plain ASGI (another server, the
        test communicator) carries none of them, and is not degraded for that.
        Degraded: daphne serves, and a piece is missing.
        """
        available = self.available()
        daphne = self._daphne_seen or self._daphne_running()
        state: dict[str, Any] = {"server": "daphne" if daphne else "asgi"}
        state.update((feature, daphne and feature in available) for feature in FEATURES)
        state["degraded"] = daphne and available != EVERYTHING
        state["missing"] = sorted(self._missing)
        return state

    # --- per connection -----------------------------------------------------------------

    def daphne_target(self, send: Any) -> Any:
        """The protocol or request behind daphne's ``send``; None for any other ``send``.

        Under daphne a ``send`` of any other shape means daphne changed: recorded.
        """
        server_class = self.libraries.daphne_server
        func, args = getattr(send, "func", None), getattr(send, "args", ())
        if (
            isinstance(send, functools.partial)
            and len(args) == 1
            and isinstance(server_class, type)
            and getattr(func, "__name__", "") == "handle_reply"
            and isinstance(getattr(func, "__self__", None), server_class)
        ):
            self._daphne_seen = True
            return args[0]
        if self._daphne_running():
            self.lose(DAPHNE_SEND, EVERYTHING)
        return None

    def websocket_features(self, protocol: Any) -> frozenset[str]:
        """What this WebSocket connection can have: the process's features less its own gaps.

        A transport that is not a plain socket (daphne terminating TLS itself)
        gets neither the fast write nor back-pressure, by design: Twisted must
        encrypt every byte, and its TLS wrapper has its own producer.
        """
        features = self.available() & WEBSOCKET
        features -= self._instance_lost("websocket_protocol", protocol, features)
        tcp_class = self.libraries.tcp_connection
        transport = getattr(protocol, "transport", None)
        if not isinstance(tcp_class, type) or not isinstance(transport, tcp_class):
            return features - {FAST_WRITE, BACK_PRESSURE}
        if getattr(transport, "disconnected", False):
            # Gone before its consumer started (a reset in a connect storm): Twisted has
            # already dropped its socket. Nothing more is written to it, and a piece it
            # no longer has says nothing about the library: the process keeps its features.
            return features - {FAST_WRITE, BACK_PRESSURE}
        return features - self._instance_lost("tcp_connection", transport, features)

    def stream_features(self, request: Any) -> frozenset[str]:
        """What this streaming HTTP response (SSE) can have."""
        features = self.available() & STREAM
        features -= self._instance_lost("request", request, features)
        channel = getattr(request, "channel", None)
        if channel is not None and STREAM_BACK_PRESSURE in features:
            features -= self._instance_lost("http_channel", channel, features)
            transport = getattr(channel, "transport", None)
            if transport is not None:
                features -= self._instance_lost("tcp_connection", transport, features)
        return features

    def _instance_lost(self, owner: str, obj: Any, wanted: frozenset[str]) -> frozenset[str]:
        """The features of ``wanted`` that ``obj`` lacks a piece for (each piece recorded)."""
        lost: frozenset[str] = frozenset()
        for need in _NEEDS_OF[owner]:
            if need.features & wanted and not hasattr(obj, need.attribute):
                self.lose(need.name, need.features)
                lost |= need.features
        return lost


# The pieces each kind of object must have, looked up once per connection.
_NEEDS_OF: dict[str, tuple[Need, ...]] = {
    owner: tuple(need for need in NEEDS if need.owner == owner)
    for owner in {need.owner for need in NEEDS}
}

ADAPTER = Adapter()


def check() -> list[str]:
    """Check the installed daphne, Twisted and autobahn (once per process; cheap after).

    Returns the names of the missing pieces; each is also logged, once, as a warning.
    """
    return ADAPTER.check()


def mode() -> dict[str, Any]:
    """This process's adapter mode (``Adapter.mode``)."""
    return ADAPTER.mode()
