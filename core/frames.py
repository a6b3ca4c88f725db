"""Outgoing messages, encoded once and framed once however many sockets they go to."""

from __future__ import annotations

import struct

_SHORT = tuple(bytes((0x81, length)) for length in range(126))
"""The headers of frames shorter than 126 bytes (most replies): one tuple lookup each."""


def text_frame_header(length: int) -> bytes:
    """The header of an unmasked, final text frame (server to client, RFC 6455 §5.2)."""
    if length < 126:
        return _SHORT[length]
    if length < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)


class OutFrame:
    """One JSON message for clients, and its forms for each way of sending it.

    ``data`` is the UTF-8 JSON; ``wire`` the complete WebSocket frame (written as is
    to every transport on the fast path), made with the frame since nearly every
    frame goes out that way (the ASGI fallback, and a publish with no recipient in
    this process, pay a copy of the JSON for nothing); ``text`` the ``str`` an ASGI
    send needs, computed on first use. Each form is shared by all recipients.
    """

    __slots__ = ("_text", "data", "wire")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.wire = text_frame_header(len(data)) + data
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.data.decode()
        return self._text
