# -*- test-case-name: tests.e2e.test_websocket -*-
"""
The WebSocket layer: relays an upgraded connection message by message.

The HTTP/1 layer relays the handshake (firing C{websocket_handshake},
C{requestheaders}, C{request}, then C{response} for the 101); once the
server has switched protocols it hands both connections to a
L{WebSocketLayer}::

    layer = WebSocketLayer(flow, http_layer, upstream)
    http_layer.hand_over(layer.client_data_received, layer.client_connection_lost)
    upstream.relay_to(layer.upstream_sink)
    layer.start(server_bytes_after_101, client_bytes_after_request)

Each side has one frame-level C{wsproto.connection.Connection}: a SERVER
connection toward the client and a CLIENT connection toward the server,
both with the C{permessage-deflate} parameters the peers agreed on.  Bytes
from a side go into its connection; each whole message is recorded in
C{flow.websocket.messages}, shown to C{websocket_message}, and sent to the
other side through the other connection (re-masked, re-compressed, with
the original fragmentation when the content was not changed).  Ping and
Pong frames are relayed; Close frames are relayed with their code and
reason, and each TCP connection is closed once its close handshake is done.

A hook that returns an unfired Deferred holds the messages of its own
direction only (the sender's reads pause through its L{ReadGate}); the
other direction keeps flowing.  Backpressure is the HTTP layer's: each
side's read gate stays registered as the producer of the other side's
transport.

The handshake's helpers are L{interceptor.layers.websocket_handshake}; each
peer's state, and what goes over its wire, L{interceptor.layers.websocket_sides}.
"""

from __future__ import annotations

import os
import time
from collections import deque
from functools import partial
from typing import Any, Optional, cast

from twisted.logger import Logger
from twisted.python.failure import Failure
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason, Opcode
from wsproto.utilities import LocalProtocolError

from interceptor.model.flow import Error
from interceptor.core.options import parse_size
from interceptor.model.websocket import WebSocketData, WebSocketMessage
from interceptor.model.wsframes import BIG, FrameSplitter, apply_mask, frame_header
from interceptor.layers.websocket_handshake import (
    is_websocket_upgrade,
    negotiated_extensions,
    supported_offers,
)
from interceptor.layers.websocket_sides import (
    Side,
    UpstreamSink,
    split_by_sizes,
    wire_size,
    write_batched,
)

__all__ = ["WebSocketLayer", "is_websocket_upgrade", "negotiated_extensions", "supported_offers"]

_log = Logger(namespace="interceptor.websocket")

_OPEN = ConnectionState.OPEN
_REMOTE_CLOSING = ConnectionState.REMOTE_CLOSING
_CLOSED = ConnectionState.CLOSED
_TEXT = Opcode.TEXT
_GOING_AWAY = int(CloseReason.GOING_AWAY)
_NO_STATUS = int(CloseReason.NO_STATUS_RCVD)


def _message_limit(options: Any) -> tuple[Optional[int], str]:
    """
    The largest message a WebSocket may carry, and the option that says so
    (the smaller of websocket_max_message_size and body_size_limit).
    """
    limits = [
        (size, name)
        for size, name in (
            (parse_size(options.websocket_max_message_size), "websocket_max_message_size"),
            (parse_size(options.body_size_limit), "body_size_limit"),
        )
        if size is not None
    ]
    if not limits:
        return None, ""
    return min(limits)


class WebSocketLayer:
    """
    Relays one WebSocket connection between the client and the server.

    @ivar flow: The L{interceptor.flow.HTTPFlow} of the handshake; its
        C{websocket} is this connection's L{WebSocketData}.
    @ivar finished: Whether C{websocket_end} or C{websocket_error} has fired.
    @ivar upstream_sink: The object given to the upstream's C{relay_to}.
    """

    def __init__(self, flow: Any, http_layer: Any, upstream: Any) -> None:
        self.flow = flow
        self.master = http_layer.master
        self.addons = self.master.addons
        self.clock = self.master.clock
        response = flow.response
        accepted = response.headers.get("sec-websocket-extensions")
        data = WebSocketData(accepted)
        data._relay = self
        flow.websocket = data
        self.data = data
        client_extensions = negotiated_extensions(accepted)
        self.client = Side(
            True,
            Connection(ConnectionType.SERVER, client_extensions),
            http_layer.transport,
            http_layer.write,
            http_layer.gate,
        )
        self.server = Side(
            False,
            Connection(ConnectionType.CLIENT, negotiated_extensions(accepted)),
            upstream.transport,
            upstream.write,
            upstream.gate,
        )
        self.client.peer, self.server.peer = self.server, self.client
        if not client_extensions:
            for side in (self.client, self.server):
                side.splitter = FrameSplitter(
                    partial(self._feed, side),
                    partial(self._take_big, side),
                    partial(self._big_frame, side),
                    masked=side.from_client,
                )
        self.finished = False
        self.started = False
        self.upstream_sink = UpstreamSink(self.server_data_received, self.server_connection_lost)
        self.close_timeout = float(self.master.options.read_timeout)
        self.history_limit = parse_size(self.master.options.websocket_history_size)
        self.kept_bytes = 0
        # One message is held whole: websocket_max_message_size bounds it,
        # and body_size_limit too (a message is a body).
        self.message_limit, self.limit_option = _message_limit(self.master.options)

    def __repr__(self) -> str:
        return f"<WebSocketLayer {self.flow.request.url}>"

    # -- start ------------------------------------------------------------

    def start(self, server_early: bytes, client_early: list[bytes]) -> None:
        """
        The 101 was sent to the client: fire C{response} and
        C{websocket_start}, then relay (first the bytes each side sent
        right after the handshake).
        """
        client_kept, server_kept = self.client.early, self.server.early
        assert client_kept is not None and server_kept is not None  # (kept until started)
        client_kept.extend(data for data in client_early if data)
        if server_early:
            server_kept.append(server_early)
        d = self.addons.trigger("response", self.flow)
        d.addCallback(lambda _: self.addons.trigger("websocket_start", self.flow))
        d.addCallback(self._started)
        d.addErrback(lambda f: _log.failure("Error starting {layer}", f, layer=self))
        if not self.started:
            # A hook is taking its time: read nothing meanwhile.
            self._hold(self.client)
            self._hold(self.server)

    def _started(self, _: Any) -> None:
        self._release(self.client)
        self._release(self.server)
        self.started = True
        if self.flow.killed:
            self._kill()
            return
        for side in (self.client, self.server):
            early, side.early = side.early, None
            assert early is not None  # (kept until now)
            for data in early:
                self._received(side, data)
            if side.lost:
                self._lost(side)
        for side in (self.client, self.server):
            self._drain(side)
        self._flush()

    # -- bytes in ---------------------------------------------------------

    def client_data_received(self, data: bytes) -> None:
        """
        Bytes from the client (decrypted, for wss).
        """
        self._received(self.client, data)

    def server_data_received(self, data: bytes) -> None:
        """
        Bytes from the server (decrypted, for wss).
        """
        self._received(self.server, data)

    def _received(self, side: Side, data: bytes) -> None:
        if side.early is not None:
            side.early.append(data)
            return
        if side.splitter is not None:
            side.splitter.feed(data)
        else:
            self._feed(side, data)
        self._flush()

    def _feed(self, side: Side, data: bytes) -> None:
        """
        Parse bytes from C{side} with its wsproto connection and relay what
        they hold.
        """
        conn = side.conn
        try:
            conn.receive_data(data)
        except LocalProtocolError:
            return  # bytes after its Close frame
        for event in conn.events():
            kind = event.__class__
            if kind is BytesMessage or kind is TextMessage:
                # (The class test is the narrowing; the string keeps the cast cheap.)
                message = cast("Message[Any]", event)
                if message.frame_finished and message.message_finished and not side.chunks:
                    # A whole message in one frame: the common case.
                    if self._too_big(side, wire_size(message.data)):
                        break
                    self._message(side, kind is TextMessage, message.data, None)
                    continue
                side.chunks.append(message.data)
                side.frame_size += len(message.data)
                side.message_size += wire_size(message.data)
                if self._too_big(side, side.message_size):
                    break
                if message.frame_finished:
                    side.frames.append(side.frame_size)
                    side.frame_size = 0
                    if message.message_finished:
                        chunks, frames = side.chunks, side.frames
                        side.chunks, side.frames = [], []
                        side.message_size = 0
                        whole = ("" if kind is TextMessage else b"").join(chunks)
                        self._message(side, kind is TextMessage, whole,
                                      frames if len(frames) > 1 else None)
            elif kind is CloseConnection and conn.state is _OPEN:
                # wsproto reports a frame it cannot parse as a Close event
                # while the connection stays open.
                self._invalid(side, cast(CloseConnection, event))
                break
            else:
                self._submit(side, event)

    def _too_big(self, side: Side, size: int) -> bool:
        """
        Whether a message of C{size} so far is over C{body_size_limit}; if
        so its sender gets Close 1009 and the flow fails.
        """
        if self._within_limit(size):
            return False
        self._invalid(side, CloseConnection(
            code=1009, reason=f"message larger than {self.limit_option} ({self.message_limit} bytes)"))
        return True

    def _take_big(self, side: Side, length: int) -> bool:
        """
        Whether a big whole frame of C{length} bytes from C{side} may skip
        wsproto: only while the connection is open and the message is within
        C{body_size_limit} (wsproto's path reports the rest).
        """
        return not self.finished and side.conn.state is _OPEN and self._within_limit(length)

    def _within_limit(self, size: int) -> bool:
        return self.message_limit is None or size <= self.message_limit

    def _big_frame(self, side: Side, opcode: int, frame: bytes, header_length: int,
                   key: Optional[bytes]) -> None:
        """
        A big whole message from C{side}, kept as its frame.
        """
        if self.finished:
            return
        message = WebSocketMessage.from_frame(opcode, side.from_client, frame, header_length, key)
        if message.type is _TEXT:
            try:
                message.content.decode("utf-8")
            except UnicodeDecodeError as e:
                self._invalid(side, CloseConnection(
                    code=1007, reason=f"invalid UTF-8 in a text message: {e.reason}"))
                return
        self._submit(side, message)

    def _message(self, side: Side, is_text: bool, payload: Any, frames: Optional[list[int]]) -> None:
        if self.finished:
            return
        if is_text:
            message = WebSocketMessage(_TEXT, side.from_client, payload.encode("utf-8"))
            message._text = payload
        else:
            message = WebSocketMessage(Opcode.BINARY, side.from_client, payload)
        message._original = message.content
        message._frames = frames
        self._submit(side, message)

    # -- in order, one direction at a time --------------------------------

    def _submit(self, side: Side, item: Any) -> None:
        if side.busy or side.queue:
            side.queue.append(item)
            return
        self._process(side, item)
        if side.queue:
            self._drain(side)

    def _drain(self, side: Side) -> None:
        queue = side.queue
        while queue and not side.busy and not self.finished:
            self._process(side, queue.popleft())

    def _process(self, side: Side, item: Any) -> None:
        if self.finished and item.__class__ is not CloseConnection:
            return
        if item.__class__ is not WebSocketMessage:
            self._control(side, item)
            return
        self._keep(item)
        if self.addons.has_hooks("websocket_message"):
            side.busy = True
            d = self.addons.trigger("websocket_message", self.flow)
            if not d.called:
                self._hold(side)
                d.addCallback(self._hooked, side, item)
                d.addErrback(lambda f: _log.failure("Error relaying {layer}", f, layer=self))
                return
            side.busy = False
            if self.flow.killed:
                self._kill()
                return
        self._forward(side, item)

    def _keep(self, message: WebSocketMessage) -> None:
        """
        Add C{message} to the flow's history, dropping the oldest messages
        beyond C{websocket_history_size} (keeping memory bounded on long
        connections, and letting the allocator reuse it).
        """
        messages = self.data.messages
        messages.append(message)
        limit = self.history_limit
        if limit is None:
            return
        self.kept_bytes += message._size()
        while self.kept_bytes > limit and len(messages) > 1:
            self.kept_bytes -= messages.pop(0)._size()

    def _hooked(self, _: Any, side: Side, message: WebSocketMessage) -> None:
        side.busy = False
        self._release(side)
        if self.finished:
            return
        if self.flow.killed:
            self._kill()
            return
        self._forward(side, message)
        self._drain(side)
        self._flush()

    def _hold(self, side: Side) -> None:
        if not side.held and not side.lost:
            side.held = True
            side.gate.hold()

    def _release(self, side: Side) -> None:
        if side.held:
            side.held = False
            side.gate.release()

    # -- bytes out --------------------------------------------------------

    def _forward(self, side: Side, message: WebSocketMessage) -> None:
        """
        Send a message to the other side (unless it was killed, or that
        side is closing and takes no more messages).
        """
        if message.dropped:
            return
        peer = side.peer
        conn = peer.conn
        if peer.lost or conn.state is not _OPEN:
            return
        unchanged = message._unchanged
        is_text = message.type is _TEXT
        frame = message._frame
        if unchanged and frame is not None and frame[0] & 0x0F == message.type:
            # The frame as it came (the same framing rules apply both ways
            # when no extension is active: a client's frame stays masked).
            peer.out.append(frame)
            return
        content = message.content
        frames = message._frames if unchanged else None
        if frames is None and peer.splitter is not None and len(content) >= BIG:
            # Without extensions a frame is a header and the payload,
            # masked toward the server: skip wsproto's copies of it.
            if is_text and not unchanged:
                # Text as wsproto's path would send it: valid UTF-8.
                content = content.decode("utf-8", "replace").encode("utf-8")
            first = 0x81 if is_text else 0x82
            if peer.from_client:
                peer.out.append(frame_header(first, len(content)))
                peer.out.append(content)
            else:
                # An unchanged client frame keeps its key: the same bytes again.
                key = message._key if unchanged and message._key is not None else os.urandom(4)
                peer.out.append(frame_header(first, len(content), key))
                peer.out.append(apply_mask(content, key))
            return
        if is_text:
            payload: Any = message._text if unchanged and message._text is not None else (
                content.decode("utf-8", "replace"))
            event: Any = TextMessage
        else:
            payload, event = content, BytesMessage
        if frames is None:
            peer.out.append(conn.send(event(data=payload)))
            return
        pieces = split_by_sizes(payload, frames)
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            peer.out.append(conn.send(event(data=piece, message_finished=i == last)))

    def _flush(self) -> None:
        for side in (self.client, self.server):
            out = side.out
            if out:
                if not side.lost:
                    write_batched(side.write, out)
                out.clear()
            if side.closing and not side.tcp_closed:
                self._close_transport(side)

    def _close_transport(self, side: Side) -> None:
        side.tcp_closed = True
        self._cancel_timer(side)
        if side.lost:
            return
        try:
            side.transport.unregisterProducer()
        except Exception:
            pass
        side.transport.loseConnection()

    # -- control frames ---------------------------------------------------

    def _control(self, side: Side, event: Any) -> None:
        kind = event.__class__
        if kind is CloseConnection:
            self._close_frame(side, event)
            return
        if self.finished:
            return
        peer = side.peer
        if not peer.lost and peer.conn.state is _OPEN:
            if kind is Ping:
                peer.out.append(peer.conn.send(Ping(payload=event.payload)))
            elif kind is Pong:
                peer.out.append(peer.conn.send(Pong(payload=event.payload)))
        elif kind is Ping and side.conn.state is _OPEN:
            # Nobody to relay to: answer it ourselves.
            side.out.append(side.conn.send(event.response()))

    def _close_frame(self, side: Side, event: CloseConnection) -> None:
        """
        A Close frame from C{side}: relay it (or answer it), and close each
        TCP connection whose close handshake is complete.
        """
        data = self.data
        code = int(event.code)
        if data.close_code is None and not self.finished:
            data.close_code = code
            data.close_reason = event.reason or ""
            data.closed_by_client = side.from_client
        conn, peer = side.conn, side.peer
        if conn.state is _CLOSED:
            # It answered a Close we sent.
            side.closing = True
        if not self.finished and not peer.lost and peer.conn.state in (_OPEN, _REMOTE_CLOSING):
            # A Close without a code (1005) is relayed without one.
            relayed = CloseConnection(code=code, reason=event.reason) if code != _NO_STATUS else (
                CloseConnection(code=CloseReason.NO_STATUS_RCVD))
            peer.out.append(peer.conn.send(relayed))
            if peer.conn.state is _CLOSED:
                peer.closing = True
            else:
                self._start_timer(peer)
        elif conn.state is _REMOTE_CLOSING and (
            self.finished or peer.lost or peer.conn.state is _CLOSED
        ):
            # Nobody is left to answer it: the proxy does.
            side.out.append(conn.send(event.response()))
            side.closing = True
        self._maybe_done()

    def _invalid(self, side: Side, event: CloseConnection) -> None:
        """
        C{side} sent a frame wsproto cannot parse: close it with the code
        wsproto chose, and fail the flow.
        """
        side.chunks, side.frames, side.queue = [], [], deque()
        if side.conn.state is _OPEN:
            side.out.append(side.conn.send(CloseConnection(code=event.code, reason=event.reason)))
        side.closing = True
        what = "a message that is too large" if event.code == 1009 else "an invalid frame"
        self._fail(f"the {side.name} sent {what}: {event.reason}", side)

    # -- the end ----------------------------------------------------------

    def _done(self, side: Side) -> bool:
        return side.conn.state is _CLOSED or (side.lost and side.conn.state is not _OPEN)

    def _maybe_done(self) -> None:
        if not self.finished and self._done(self.client) and self._done(self.server):
            self.finished = True
            self.data.timestamp_end = time.time()
            for side in (self.client, self.server):
                if not side.lost:
                    side.closing = True
                side.busy = False
                self._release(side)
            self._flush()
            self.addons.trigger("websocket_end", self.flow)

    def client_connection_lost(self, reason: Optional[Failure] = None) -> None:
        """
        The client's TCP connection closed.
        """
        self._lost(self.client, reason)

    def server_connection_lost(self) -> None:
        """
        The server's TCP connection closed.
        """
        self._lost(self.server)

    def _lost(self, side: Side, reason: Optional[Failure] = None) -> None:
        side.lost = True
        side.tcp_closed = True
        self._cancel_timer(side)
        if side.early is not None:
            return  # handled once started
        if self.finished:
            return
        if side.conn.state is _OPEN:
            self._fail(f"the {side.name} closed the connection without a close frame", side)
            return
        # It sent or received a Close frame: if it still expected our
        # answer, the peer's reply will find it gone; that is no error.
        self._maybe_done()
        self._flush()

    def _fail(self, message: str, culprit: Optional[Side] = None) -> None:
        """
        End with C{websocket_error}: the flow's C{error} says why; each side
        still connected (but the culprit) gets a Close frame, and its TCP
        connection is closed when it answers (or after C{read_timeout}).
        """
        if self.finished:
            return
        self.finished = True
        self.flow.error = Error(message)
        self.data.timestamp_end = time.time()
        reason = message[:120]
        for side in (self.client, self.server):
            side.queue.clear()
            side.busy = False
            self._release(side)
            if side.lost or side is culprit:
                continue
            state = side.conn.state
            if state is _OPEN or state is _REMOTE_CLOSING:
                side.out.append(side.conn.send(CloseConnection(code=_GOING_AWAY, reason=reason)))
            if side.conn.state is _CLOSED:
                side.closing = True
            else:
                self._start_timer(side)
        self._flush()
        _log.debug("{client}: WebSocket {url}: {error}", client=self.flow.client_conn.address,
                   url=self.flow.request.url, error=message)
        self.addons.trigger("websocket_error", self.flow)

    def _kill(self) -> None:
        """
        An addon killed the flow: drop both connections.
        """
        if self.finished:
            return
        self.finished = True
        self.data.timestamp_end = time.time()
        for side in (self.client, self.server):
            side.queue.clear()
            self._release(side)
            side.tcp_closed = True
            self._cancel_timer(side)
            if not side.lost:
                side.transport.abortConnection()
        self.addons.trigger("websocket_error", self.flow)

    def _start_timer(self, side: Side) -> None:
        if side.timer is None and not side.lost:
            side.timer = self.clock.callLater(self.close_timeout, self._timed_out, side)

    def _cancel_timer(self, side: Side) -> None:
        timer, side.timer = side.timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _timed_out(self, side: Side) -> None:
        side.timer = None
        if not self.finished:
            self._fail(
                f"the {side.name} did not answer the close handshake within "
                f"{self.close_timeout:g} s",
                side,
            )
        side.tcp_closed = True
        if not side.lost:
            side.transport.abortConnection()

    # -- injection --------------------------------------------------------

    def inject(self, to_client: bool, content: bytes, is_text: bool) -> None:
        """
        Send a message made by an addon (see L{interceptor.websocket.inject}).
        """
        if self.finished:
            raise ValueError("the WebSocket connection has ended")
        sender = self.server if to_client else self.client
        message = WebSocketMessage(_TEXT if is_text else Opcode.BINARY, not to_client,
                                   content, injected=True)
        if not self.started or sender.early is not None:
            sender.queue.append(message)
            return
        self._submit(sender, message)
        self._flush()
