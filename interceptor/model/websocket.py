# -*- test-case-name: tests.e2e.test_websocket -*-
"""
The WebSocket flow model: what addons see of an upgraded connection.

As in mitmproxy 7 and later, the WebSocket events receive the L{HTTPFlow} of
the handshake, whose C{websocket} attribute holds a L{WebSocketData} once the
server answered C{101 Switching Protocols}::

    from interceptor.websocket import inject

    def websocket_message(flow):
        message = flow.websocket.messages[-1]
        if message.from_client and message.is_text:
            message.text = message.text.replace("ping", "pong")
        if b"secret" in message.content:
            message.kill()                      # the peer never sees it
        if message.text == "hello":
            inject(flow, to_client=True, content="hello from the proxy")

    def websocket_end(flow):
        print(flow.websocket.close_code, flow.websocket.close_reason)

Messages are whole: fragmented messages are reassembled before the
C{websocket_message} hook and C{content} is decompressed when the peers
negotiated C{permessage-deflate}.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any, Optional, Protocol, Union

from wsproto.frame_protocol import Opcode

from interceptor.model.wsframes import payload_of

if TYPE_CHECKING:
    from interceptor.model.flow import HTTPFlow

__all__ = ["Opcode", "WebSocketMessage", "WebSocketData", "WebSocketFlow", "inject"]


class WebSocketMessage:
    """
    One whole WebSocket message (TEXT or BINARY).

    @ivar from_client: True when the client sent it, False for the server.
    @ivar type: L{Opcode.TEXT} or L{Opcode.BINARY}.
    @ivar timestamp: When the proxy received it (or it was injected).
    @ivar dropped: Whether it was killed (then it is not forwarded).
    @ivar injected: Whether the proxy made it (L{inject}) rather than a peer.
    """

    __slots__ = ("from_client", "type", "_content", "timestamp", "dropped", "injected",
                 "_original", "_text", "_frames", "_frame", "_header_length", "_key")

    def __init__(
        self,
        type: Union[Opcode, int],
        from_client: bool,
        content: bytes,
        timestamp: Optional[float] = None,
        dropped: bool = False,
        injected: bool = False,
    ) -> None:
        self.type = Opcode(type)
        self.from_client = from_client
        # None while the content is still in a kept frame (from_frame).
        self._content: Optional[bytes] = content
        self.timestamp = time.time() if timestamp is None else timestamp
        self.dropped = dropped
        self.injected = injected
        # What the peer sent, to forward it unchanged (same fragmentation,
        # no re-encoding) unless an addon replaced the content.
        self._original: Optional[bytes] = None
        self._text: Optional[str] = None
        # The sizes of the frames the peer sent it in (forwarded the same way).
        self._frames: Optional[list[int]] = None
        # A big frame kept as it came (see interceptor.model.wsframes): content is
        # unmasked from it when first read.
        self._frame: Optional[bytes] = None
        self._header_length = 0
        self._key: Optional[bytes] = None

    @classmethod
    def from_frame(
        cls, type: Union[Opcode, int], from_client: bool, frame: bytes, header_length: int,
        key: Optional[bytes],
    ) -> "WebSocketMessage":
        """
        A message received as one whole frame, kept as it is; C{content}
        is unmasked from it when first read.
        """
        message = cls(type, from_client, b"")
        message._content = None
        message._frame = frame
        message._header_length = header_length
        message._key = key
        return message

    @property
    def content(self) -> bytes:
        """
        The (decompressed, reassembled) payload as bytes; change it and the
        peer receives the changed message.
        """
        content = self._content
        if content is None:
            assert self._frame is not None  # (no content: it is in the frame)
            content = self._content = self._original = payload_of(
                self._frame, self._header_length, self._key)
            # One copy is enough: forwarding frames the content anew.
            self._frame = None
        return content

    @content.setter
    def content(self, value: bytes) -> None:
        self._content = value

    @property
    def _unchanged(self) -> bool:
        """
        Whether C{content} is still what the peer sent.
        """
        content = self._content
        return content is self._original or (content is None and self._frame is not None)

    def _size(self) -> int:
        """
        The payload's length, without unmasking a kept frame.
        """
        content = self._content
        if content is None:
            assert self._frame is not None  # (no content: it is in the frame)
            return len(self._frame) - self._header_length
        return len(content)

    @property
    def is_text(self) -> bool:
        """
        Whether this is a TEXT message.
        """
        return self.type is Opcode.TEXT

    @property
    def text(self) -> str:
        """
        The content decoded as UTF-8 (TEXT messages only); setting it sets
        C{content}.

        @raise AttributeError: For a BINARY message.
        """
        if self.type is not Opcode.TEXT:
            raise AttributeError("text is only available for TEXT messages; use content")
        if self._text is not None and self._content is self._original:
            return self._text
        return self.content.decode("utf-8", "replace")

    @text.setter
    def text(self, value: str) -> None:
        if self.type is not Opcode.TEXT:
            raise AttributeError("text is only available for TEXT messages; use content")
        self.content = value.encode("utf-8")

    def drop(self) -> None:
        """
        Do not forward this message: the peer never receives it.
        """
        self.dropped = True

    kill = drop

    @property
    def killed(self) -> bool:
        """
        Same as C{dropped}.
        """
        return self.dropped

    def __repr__(self) -> str:
        who = "client" if self.from_client else "server"
        if self._content is None and self._frame is not None:
            # Unmask only what is shown.
            shown = payload_of(self._frame[: self._header_length + 40], self._header_length,
                               self._key)
        else:
            shown = self.content[:40]
        more = "..." if self._size() > 40 else ""
        flags = " dropped" if self.dropped else ""
        flags += " injected" if self.injected else ""
        return f"<WebSocketMessage {self.type.name} from {who} {shown!r}{more}{flags}>"


class _Relay(Protocol):
    """
    What L{WebSocketData} needs of the relay behind a live connection
    (L{interceptor.layers.websocket}).
    """

    finished: bool

    def inject(self, to_client: bool, content: bytes, is_text: bool) -> None:
        """Send a message made by the proxy."""


class WebSocketData:
    """
    The WebSocket side of an upgraded L{interceptor.flow.HTTPFlow}, found
    as C{flow.websocket}.

    @ivar messages: Every message so far, oldest first; the newest one (the
        subject of C{websocket_message}) is C{messages[-1]}.
    @ivar closed_by_client: True if the client sent the first Close frame,
        False if the server did, None while open (or when a connection
        dropped without one).
    @ivar close_code: The close code of the first Close frame (1005 when it
        had none), or None.
    @ivar close_reason: Its reason text, or None.
    @ivar extensions: The C{Sec-WebSocket-Extensions} the peers agreed on,
        or None.
    @ivar timestamp_start: When the connection switched to WebSocket.
    @ivar timestamp_end: When it ended, or None.
    """

    def __init__(self, extensions: Optional[str] = None) -> None:
        self.messages: list[WebSocketMessage] = []
        self.closed_by_client: Optional[bool] = None
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self.extensions = extensions
        self.timestamp_start = time.time()
        self.timestamp_end: Optional[float] = None
        self._relay: Optional[_Relay] = None

    def __deepcopy__(self, memo: dict[int, Any]) -> "WebSocketData":
        # A copy (Flow.copy) keeps the data, not the live relay behind it.
        duplicate = WebSocketData.__new__(WebSocketData)
        for name, value in self.__dict__.items():
            setattr(duplicate, name, None if name == "_relay" else copy.deepcopy(value, memo))
        return duplicate

    @property
    def ended(self) -> bool:
        """
        Whether the connection has closed (mitmproxy 2.x's
        C{WebSocketFlow.ended}).
        """
        return self.timestamp_end is not None

    @property
    def live(self) -> bool:
        """
        Whether the connection is still open, so L{inject} can send on it.
        """
        return self._relay is not None and not self._relay.finished

    def __repr__(self) -> str:
        state = "live" if self.live else f"closed {self.close_code}"
        return f"<WebSocketData {len(self.messages)} messages, {state}>"


WebSocketFlow = WebSocketData
"""The name this model had in older mitmproxy versions."""


def inject(flow: HTTPFlow, to_client: bool, content: Union[bytes, str], is_text: bool = True) -> None:
    """
    Send a new message on a live WebSocket connection, toward the client
    (C{to_client=True}) or toward the server.  It is recorded in
    C{flow.websocket.messages} with C{injected=True} and goes through the
    C{websocket_message} hooks like any other message, after the messages
    already on their way in that direction.

    @param flow: The L{interceptor.flow.HTTPFlow} of the connection.
    @param content: The payload; a str is encoded as UTF-8.
    @param is_text: Send a TEXT message (else BINARY).
    @raise ValueError: When the flow has no live WebSocket connection.
    """
    data = getattr(flow, "websocket", None)
    if data is None or not data.live:
        raise ValueError(f"{flow!r} has no live WebSocket connection")
    if isinstance(content, str):
        content = content.encode("utf-8")
    data._relay.inject(to_client, bytes(content), is_text)
