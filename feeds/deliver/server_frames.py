"""WebSocket frames as the server writes them (RFC 6455, unmasked), built once per quote.

A quote goes to many clients as the very same text, so its frame is built
once per wire format and compression (``Framer.shared``) and cached until the
hub's next flush pass (``forget_frames``). Pure: no server library here; the
transport that writes these frames is feeds/deliver/server.py.
"""

from __future__ import annotations

from collections.abc import Callable

from feeds.core.wire_formats import JSON, OPCODE_TEXT, WireFormat, message_compressor


class Framer:
    """The WebSocket frames of one wire format and compression (server side: unmasked).

    ``shared`` caches a frame until the hub's next flush pass, for texts that
    go to many clients (a quote): the conversion to MessagePack and the
    compression are then made once per process per quote, not per subscriber.
    """

    __slots__ = ("_cache", "_compress", "_opcode", "_payload")

    def __init__(self, wire: WireFormat, compress: Callable[[bytes], bytes] | None) -> None:
        self._cache: dict[str, bytes] = {}
        self._payload = wire.payload
        self._opcode = wire.opcode
        self._compress = compress

    def own(self, text: str) -> bytes:
        """The frame of a text of this client's only (a batch, a reply)."""
        payload = self._payload(text)
        if self._compress is None:
            return frame(self._opcode, payload)
        return frame(self._opcode, self._compress(payload), compressed=True)

    def shared(self, text: str) -> bytes:
        """The frame of a text other clients get too, built once per flush pass."""
        data = self._cache.get(text)
        if data is None:
            data = self._cache[text] = self.own(text)
        return data

    def frames(self, texts: list[str], shared: bool) -> bytes:
        build = self.shared if shared else self.own
        return build(texts[0]) if len(texts) == 1 else b"".join(map(build, texts))

    def forget(self) -> None:
        self._cache.clear()


# (format name, server window bits when compressed without context takeover, else 0)
_framers: dict[tuple[str, int], Framer] = {}


def framer(wire: WireFormat, window_bits: int = 0) -> Framer:
    """The process's framer of ``wire``, deflated per message with ``window_bits`` when not 0."""
    key = (wire.name, window_bits)
    found = _framers.get(key)
    if found is None:
        compress = message_compressor(window_bits) if window_bits else None
        found = _framers[key] = Framer(wire, compress)
    return found


def frame_of(text: str) -> bytes:
    """The JSON text frame of ``text``, built once per flush pass."""
    return framer(JSON).shared(text)


def forget_frames() -> None:
    """Drop the frames of the last flush pass (the hub calls it after each one)."""
    for each in _framers.values():
        each.forget()


def frame(opcode: int, payload: bytes, *, compressed: bool = False) -> bytes:
    """RFC 6455 section 5.2: FIN, RSV1 if compressed (RFC 7692), the opcode, the length."""
    first = 0x80 | (0x40 if compressed else 0) | opcode
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return bytes((first, 126)) + size.to_bytes(2, "big") + payload
    return bytes((first, 127)) + size.to_bytes(8, "big") + payload


def text_frame(payload: bytes) -> bytes:
    """An uncompressed text frame of ``payload`` (UTF-8)."""
    return frame(OPCODE_TEXT, payload)
