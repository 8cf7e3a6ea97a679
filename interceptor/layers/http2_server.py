# -*- test-case-name: tests.e2e.test_http2,tests.e2e.test_http2_streams,tests.e2e.test_translation_flow -*-
"""
HTTP/2 toward the server: an L{H2ServerConnection} multiplexes the
exchanges of one client connection (an HTTP/2 client's streams, or an
HTTP/1 client's successive requests when translating) over one connection,
queueing beyond the server's C{SETTINGS_MAX_CONCURRENT_STREAMS}, refusing
pushes, passing trailers.  Each exchange's server side is an
L{H2ServerStream}.

Flow control is end to end: response data is acknowledged to the server
only once it has gone on toward the client (or is buffered within the
body limits), and request data is taken from the client as the server's
window allows.

A server that ends the connection with GOAWAY (nginx does after 1,000
requests) still answers the streams up to its last stream id here; the
others move to a new connection its owner gives (L{IServerReplacer}):
those not sent yet, and those it did not process whose request went out
from a buffer (a streamed body cannot be sent again).
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Optional, cast

from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    Event,
    DataReceived,
    PushedStreamReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from interceptor.layers.contracts import IServerConnection, IServerOwner, IServerReplacer, IServerSide
from interceptor.layers.http1_framing import drop_length_if_transformed, message_trailers
from interceptor.layers.http2_frames import (
    HIGH_WATER,
    DrainingH2Connection,
    Output,
    h2_config,
    pump,
    initiate,
    stream_id_of,
)
from interceptor.layers.http2_headers import h2_request_headers, response_from_h2
from interceptor.model.connection import Address, ServerConnection
from interceptor.model.http import Headers, Request
from interceptor.transport.flowcontrol import AckValve
from interceptor.transport.watchdog import SilenceWatch

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from interceptor.layers.exchange import HttpExchange
    from interceptor.core.master import Master
    from interceptor.layers.http1_server import Http1ServerConnection
    from interceptor.layers.server_transport import ServerTLSTransport

__all__ = ["H2ServerConnection", "H2ServerStream", "H2Upstream", "connect_upstream", "switch_to_h2"]

_log = Logger(namespace="interceptor.http2")

_MAX_REFUSALS = 3
"""How many connections in a row may end (GOAWAY) having processed nothing
before a request that moves from one to the next fails."""


@implementer(IServerSide)
class H2ServerStream:
    """
    One exchange on an L{H2ServerConnection}: its request, waiting for a
    stream id while the server's concurrency limit is reached, then its
    output; the exchange's server side.
    """

    __slots__ = (
        "connection", "exchange", "headers", "sid", "out", "acks", "unacked",
        "sent_end", "response_done", "forgotten", "replay", "answered", "refusals",
    )

    read_gate = None
    """HTTP/2 paces the server by its windows, not by holding reads."""

    def __init__(self, connection: H2ServerConnection, exchange: HttpExchange) -> None:
        self.connection = connection
        self.exchange = exchange
        self.headers: list[tuple[bytes, bytes]] = []
        self.sid: Optional[int] = None
        self.out = Output()
        self.acks: list[Callable[[], None]] = []
        # Response bytes the client has not taken yet (the server's window
        # stays closed by that much).
        self.unacked = 0
        # Whether the request's end went out, and the response's came in.
        self.sent_end = False
        self.response_done = False
        self.forgotten = False
        # A buffered request's body and trailers, to send it again on
        # another connection (None: streamed).
        self.replay: Optional[tuple[bytes, Optional[list[tuple[bytes, bytes]]]]] = None
        # Whether the response has begun; how many connections refused it.
        self.answered = False
        self.refusals = 0

    def __repr__(self) -> str:
        return f"<H2ServerStream {self.sid} {self.exchange.flow!r}>"

    @property
    def server_conn(self) -> ServerConnection:
        """
        The connection's L{ServerConnection}.
        """
        return self.connection.server_conn

    def _queue_request(self, request: Request, body: bytes, end: bool) -> None:
        self.headers = h2_request_headers(request)
        out = self.out
        if body:
            out.chunks.append(body)
            out.size = len(body)
        if end:
            out.end = True
            out.trailers = message_trailers(request)
            self.replay = (body, out.trailers)
        self.connection.queue(self)

    def rewind(self) -> bool:
        """
        Make the stream unsent again, for another connection: whether it
        can be (no answer came, and nothing went out or the whole request
        is at hand).
        """
        if self.answered:
            return False
        if self.sid is None:
            # (Nothing went out: its output holds all there is so far.)
            return True
        if self.replay is None:
            return False
        body, trailers = self.replay
        out = self.out = Output()
        if body:
            out.chunks.append(body)
            out.size = len(body)
        out.end = True
        out.trailers = trailers
        self.sid = None
        self.sent_end = False
        return True

    def send_request(self, request: Request, body: bytes) -> None:
        """
        Send a whole buffered request.
        """
        self._queue_request(request, body, True)

    def send_request_head(self, request: Request) -> None:
        """
        Open the stream with the request's head; the body follows.
        """
        drop_length_if_transformed(request)
        self._queue_request(request, b"", False)

    def send_request_data(self, data: bytes, ack: Callable[[], None]) -> None:
        """
        Send request data; C{ack} (letting the client send more) runs once
        little enough is waiting here for the server's window.
        """
        if self.forgotten:
            ack()
            return
        if data:
            self.out.chunks.append(data)
            self.out.size += len(data)
        self.acks.append(ack)
        self.connection.send(self)

    def end_request(self, request: Request) -> None:
        """
        The request body is complete (with its trailers, if any).
        """
        if self.forgotten:
            return
        self.out.end = True
        self.out.trailers = message_trailers(request)
        self.connection.send(self)

    def relay_body(self, direct_to: Any) -> None:
        """
        HTTP/2 bodies come in frames; nothing to switch.
        """

    def done(self, broken: bool) -> None:
        """
        The exchange is over.  A broken one resets the stream, as does one
        that ended before its request went out whole, unless the server has
        answered already (the rest of the request still goes to it).
        """
        if self.forgotten:
            return
        if broken or not (self.sent_end or self.response_done):
            self.connection.reset(self)
        elif self.sent_end:
            self.connection.forget(self)


@implementer(IServerConnection)
class H2ServerConnection(Protocol):
    """
    An HTTP/2 connection to the server, multiplexing the exchanges of one
    client connection (its owner is an L{interceptor.layers.http2.Http2Layer},
    or an HTTP/1 layer when translating).  Requests beyond the server's
    C{SETTINGS_MAX_CONCURRENT_STREAMS} wait for a stream to finish.
    """

    client_gate = None
    """Never paired with the client's transport (HTTP/2 paces by windows)."""

    reuse_key: tuple[str, Optional[str]]

    def __init__(self, owner: IServerOwner, server_conn: ServerConnection) -> None:
        self.owner = owner
        self.master: Master = owner.master
        self.server_conn = server_conn
        address = server_conn.address
        if address is None:
            raise ValueError("a server connection needs the address it is connected to")
        self.address: Address = address
        self.reuse_key = ("https", server_conn.sni)
        self.conn = DrainingH2Connection(h2_config(True))
        self.streams: dict[int, H2ServerStream] = {}
        self.waiting: deque[H2ServerStream] = deque()
        self.usable = True
        # The last stream id of the server's GOAWAY, once it sent one.
        self.goaway_last: Optional[int] = None
        self._shut = False
        # With an HTTP/1 client (translation): acknowledgements wait while
        # the client's write buffer is full.
        self._valve: Optional[AckValve] = None
        self.silence = SilenceWatch(
            self.master.clock,
            self.master.options.read_timeout / 4,
            self._stream_limit,
            self._stream_silent,
        )

    def __repr__(self) -> str:
        return f"<H2ServerConnection {self.address}>"

    def idle(self) -> bool:
        """
        Whether a new exchange can go over this connection.
        """
        return bool(self.connected) and self.usable

    def open_exchange(self, exchange: HttpExchange) -> H2ServerStream:
        """
        Carry C{exchange} on a new stream (opened when its request is sent).
        An HTTP/1 client's server is paced by that client's transport.
        """
        transport = self.owner.pairing_transport
        if self._valve is None and transport is not None:
            try:
                self._valve = AckValve(transport)
            except RuntimeError:
                # (Another producer still paces that transport: the windows
                # then open as data arrives, unpaced.)
                _log.info("{server}: HTTP/2 upstream not paced by its HTTP/1 client",
                          server=self.address)
        return H2ServerStream(self, exchange)

    def unpair(self) -> None:
        """
        Stop pacing the server by the HTTP/1 client's transport.
        """
        valve, self._valve = self._valve, None
        if valve is not None:
            valve.detach()

    def release(self) -> None:
        """
        The client layer closes: so does this connection.
        """
        self.unpair()
        self.close()

    def connectionMade(self) -> None:
        """
        Send the preface and our settings (no server push).
        """
        initiate(self.conn, client=True)
        self.flush()

    def flush(self) -> None:
        """
        Send what h2 has queued.
        """
        data = self.conn.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    # -- requests ---------------------------------------------------------

    def queue(self, up: H2ServerStream) -> None:
        """
        Open C{up}'s stream as soon as the server's limit allows (on a new
        connection if the server is ending this one).
        """
        if self.goaway_last is not None:
            self._hand_on([up], "the server is ending its connection (GOAWAY)", False)
            return
        if not self.usable:
            self.forget(up)
            up.exchange.fail(f"the connection to {self._where()} closed before the request went out", 502)
            return
        self.waiting.append(up)
        self._open_waiting()
        self.flush()

    def adopt(self, ups: list[H2ServerStream]) -> None:
        """
        Carry C{ups}, which another connection to this server could not,
        ahead of the streams that came after them.
        """
        for up in ups:
            up.connection = self
            up.exchange.flow.server_conn = self.server_conn
        if self.goaway_last is not None or not self.usable:
            for up in ups:
                self.queue(up)
            return
        self.waiting.extendleft(reversed(ups))
        self._open_waiting()
        self.flush()

    def _where(self) -> str:
        host, port = self.address
        return f"{host}:{port}"

    def send(self, up: H2ServerStream) -> None:
        """
        Send what C{up} has queued, as the windows allow.
        """
        self._pump(up)
        self.flush()

    def _open_waiting(self) -> None:
        conn = self.conn
        while (
            self.waiting
            and self.usable
            and conn.open_outbound_streams < conn.remote_settings.max_concurrent_streams
        ):
            up = self.waiting.popleft()
            sid = up.sid = conn.get_next_available_stream_id()
            self.streams[sid] = up
            out = up.out
            only_headers = out.end and not out.chunks and not out.trailers
            try:
                conn.send_headers(sid, up.headers, end_stream=only_headers)
            except H2Error as e:
                self.forget(up)
                up.exchange.fail(f"cannot send the request to {self._where()}: {e}", 502)
                continue
            if only_headers:
                out.end = False
                up.sent_end = True
            self.silence.touch(up)
            self._pump(up)

    def _pump(self, up: H2ServerStream) -> None:
        if up.sid is None:
            return
        out = up.out
        before = (out.size, out.end)
        try:
            ended = pump(self.conn, up.sid, out)
        except H2Error:
            return
        if (out.size, out.end) != before:
            # The server took request data: progress on this stream.
            self.silence.touch(up)
        if ended:
            up.sent_end = True
            if up.response_done:
                self.forget(up)
        if up.acks and up.out.size <= HIGH_WATER:
            acks, up.acks = up.acks, []
            for ack in acks:
                ack()

    def reset(self, up: H2ServerStream) -> None:
        """
        Cancel C{up}'s stream.
        """
        self.forget(up)
        if up.sid is None:
            return
        try:
            self.conn.reset_stream(up.sid, ErrorCodes.CANCEL)
        except H2Error:
            pass
        self._open_waiting()
        self.flush()

    # -- responses --------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """
        Frames from the server.
        """
        try:
            events = self.conn.receive_data(data)
        except (ProtocolError, H2Error) as e:
            # (Nothing more goes out on it: h2 has closed it.)
            self.usable = False
            self.connected = 0
            self._fail_all(f"HTTP/2 protocol error from the server: {e}")
            transport = self.transport
            if transport is not None:
                transport.loseConnection()
            return
        for event in events:
            try:
                self._handle(event)
            except Exception:
                _log.failure("Error handling an HTTP/2 event from the server: {event}", event=event)
                sid = stream_id_of(event)
                up = self.streams.get(sid) if sid else None
                if up is not None:
                    self.forget(up)
                    up.exchange.fail("internal error while handling the server's response", 502)
        self._open_waiting()
        self.flush()

    def _handle(self, event: Event) -> None:
        sid = stream_id_of(event)
        up = self.streams.get(sid) if sid else None
        if up is not None:
            self.silence.touch(up)
        if isinstance(event, ResponseReceived):
            up = self.streams.get(event.stream_id)
            if up is not None:
                up.answered = True
                up.exchange.response_head(response_from_h2(event.headers))
                if event.stream_ended is not None:
                    self._ended(event.stream_id)
        elif isinstance(event, DataReceived):
            receiving = self.streams.get(event.stream_id)
            amount, sid = event.flow_controlled_length, event.stream_id
            if receiving is None:
                self.conn.acknowledge_received_data(amount, sid)
                return
            receiving.unacked += amount
            receiving.exchange.response_data(event.data, lambda: self._ack(amount, receiving))
        elif isinstance(event, TrailersReceived):
            up = self.streams.get(event.stream_id)
            if up is not None and up.exchange.flow.response is not None:
                up.exchange.flow.response.trailers = Headers(list(event.headers))
            if event.stream_ended is not None:
                self._ended(event.stream_id)
        elif isinstance(event, StreamEnded):
            self._ended(event.stream_id)
        elif isinstance(event, StreamReset):
            up = self.streams.get(event.stream_id)
            if up is not None:
                self.forget(up)
                up.exchange.fail(f"the server reset the stream (error code {event.error_code!r})", 502)
        elif isinstance(event, PushedStreamReceived):
            if event.pushed_stream_id is not None:
                self.conn.reset_stream(event.pushed_stream_id, ErrorCodes.REFUSED_STREAM)
        elif isinstance(event, WindowUpdated):
            for sid, up in list(self.streams.items()):
                if event.stream_id in (0, sid):
                    self._pump(up)
        elif isinstance(event, RemoteSettingsChanged):
            for up in list(self.streams.values()):
                self._pump(up)
        elif isinstance(event, ConnectionTerminated):
            self._server_ending(event)

    def _server_ending(self, event: ConnectionTerminated) -> None:
        """
        The server sent GOAWAY: the streams up to its last stream id go on
        here (this connection closes after them); the ones not sent yet,
        and those above it (the server did not process them), move to a
        new connection.
        """
        self.usable = False
        self.connected = 0
        last = event.last_stream_id or 0
        if self.goaway_last is not None:
            last = min(last, self.goaway_last)
        self.goaway_last = last
        _log.info("{server}: the server ended the connection (GOAWAY {code!r}, last stream {last}); "
                  "{kept} stream(s) finish on it", server=self.address, code=event.error_code,
                  last=last, kept=sum(1 for sid in self.streams if sid <= last))
        moving = list(self.waiting)
        self.waiting.clear()
        for sid in sorted(self.streams):
            if sid > last:
                up = self.streams.pop(sid)
                self.silence.forget(up)
                moving.append(up)
        # (A server that processed nothing on it refused what it was sent:
        # that counts against each request, so that one refusing every
        # connection ends the moves; one that served some made progress.)
        self._hand_on(moving, f"the server ended the connection (GOAWAY {event.error_code!r}, "
                              f"last stream {last})", last == 0)
        self._close_if_drained()

    def _hand_on(self, ups: list[H2ServerStream], reason: str, refused: bool) -> None:
        """
        Move C{ups}, which are no longer on this connection, to the
        connection the owner gives in its place (each counting one more
        refusal when C{refused}); those that cannot move fail, saying
        C{reason}.
        """
        movable = []
        for up in ups:
            if up.forgotten:
                continue
            if refused:
                up.refusals += 1
            if up.refusals > _MAX_REFUSALS:
                self._give_up(up, f"{reason}; {up.refusals} connections in a row took no request")
            elif not up.rewind():
                self._give_up(up, f"{reason}; the server did not process the request, and a streamed "
                                  "request cannot be sent again")
            else:
                movable.append(up)
        if not movable:
            return
        owner = self.owner
        if not IServerReplacer.providedBy(owner):
            for up in movable:
                self._give_up(up, f"{reason}; the request was not sent again")
            return

        def replaced(new: Optional[H2ServerConnection]) -> None:
            ups = [up for up in movable if not up.forgotten]
            if new is not None:
                new.adopt(ups)
                return
            for up in ups:
                self._give_up(up, f"{reason}; no new HTTP/2 connection to {self._where()} for the request")

        def failed(failure: Failure) -> None:
            for up in movable:
                if not up.forgotten:
                    self._give_up(up, f"{reason}; a new connection failed: {failure.getErrorMessage()}")

        d = owner.replace_server(self)
        d.addCallbacks(replaced, failed)
        d.addErrback(lambda f: _log.failure("Error moving streams off {server}", f, server=self.address))

    def _give_up(self, up: H2ServerStream, message: str) -> None:
        self.forget(up)
        up.exchange.fail(message, 502)

    def _close_if_drained(self) -> None:
        # After the server's GOAWAY: closed once the streams it kept are done.
        if self.goaway_last is not None and not self.streams and not self._shut:
            self.close()

    def _ack(self, amount: int, up: H2ServerStream) -> None:
        if self._valve is not None:
            self._valve.run(lambda: self._ack_now(amount, up))
        else:
            self._ack_now(amount, up)

    def _ack_now(self, amount: int, up: H2ServerStream) -> None:
        up.unacked -= amount
        sid = up.sid
        if sid is None:
            # (Not reached: data came on the stream, so it was opened.)
            return
        try:
            self.conn.acknowledge_received_data(amount, sid)
        except H2Error:
            return
        self.flush()

    def _ended(self, sid: int) -> None:
        up = self.streams.get(sid)
        if up is None:
            return
        up.response_done = True
        if up.sent_end:
            self.forget(up)
        else:
            # Answered before the end of the request: the rest of it still
            # goes to the server, then the stream is done.
            self.silence.forget(up)
        up.exchange.response_end()

    def forget(self, up: H2ServerStream) -> None:
        """
        The exchange on C{up} is over here, whichever way it ended.
        """
        if up.forgotten:
            return
        up.forgotten = True
        if up.sid is not None:
            self.streams.pop(up.sid, None)
        else:
            try:
                self.waiting.remove(up)
            except ValueError:
                pass
        self.silence.forget(up)
        # Whoever waits for the server to take request data need not any more.
        acks, up.acks = up.acks, []
        for ack in acks:
            ack()
        self._close_if_drained()

    def _stream_limit(self, up: H2ServerStream) -> Optional[float]:
        # Not counted while the client has not taken what the server sent.
        if up.unacked > 0 or up.response_done:
            return None
        read_timeout: float = self.master.options.read_timeout
        return read_timeout

    def _stream_silent(self, up: H2ServerStream, silence: float) -> None:
        host, port = self.address
        up.exchange.fail(
            f"{host}:{port} sent nothing on the stream for {silence:.1f} s (read timeout)", 504
        )
        self.flush()

    def _fail_all(self, message: str) -> None:
        for up in [*self.streams.values(), *self.waiting]:
            self._give_up(up, message)

    # -- life cycle -------------------------------------------------------

    def close(self) -> None:
        """
        Close the connection (GOAWAY first).
        """
        self.usable = False
        self.connected = 0
        self._shut = True
        self.unpair()
        if self.transport is not None:
            try:
                self.conn.close_connection()
                self.flush()
            except H2Error:
                pass
            self.transport.loseConnection()

    def abort(self) -> None:
        """
        Drop the connection now.
        """
        self.usable = False
        self.connected = 0
        self._shut = True
        self.unpair()
        transport = self.transport
        if transport is not None:
            # (Its transport is TLS: h2 is negotiated by ALPN.)
            cast("ServerTLSTransport", transport).abortConnection()

    def connectionLost(self, reason: Optional[Failure] = None) -> None:
        """
        The server connection closed: fail the streams still open.
        """
        self.usable = False
        self.connected = 0
        self._shut = True
        self.unpair()
        self.silence.stop()
        self.server_conn.timestamp_end = time.time()
        self._fail_all(
            f"{self.address[0]}:{self.address[1]} closed the connection"
        )
        self.owner.server_lost(self)
        self.master.addons.trigger("serverdisconnect", self.server_conn)


def switch_to_h2(upstream: Http1ServerConnection, owner: IServerOwner) -> H2ServerConnection:
    """
    A server connection negotiated h2 in its TLS handshake: it now carries
    an L{H2ServerConnection} (owned by C{owner}) instead of the HTTP/1
    protocol.
    """
    h2_upstream = H2ServerConnection(owner, upstream.server_conn)
    upstream.watchdog.stop()
    transport = upstream.transport
    if transport is None:
        raise RuntimeError(f"{upstream!r} negotiated h2 but is not connected")
    upstream.tls_transport.wrappedProtocol = h2_upstream
    h2_upstream.makeConnection(transport)
    return h2_upstream


def connect_upstream(owner: IServerOwner, upstream: Http1ServerConnection) -> Deferred[IServerConnection]:
    """
    Open C{upstream} for C{owner}, after the C{serverconnect} event: a
    Deferred firing with the connection ready to carry exchanges, the
    L{H2ServerConnection} it became when the server negotiated h2, else
    C{upstream} itself (every client layer, and client replay, open their
    server connections this way).
    """
    server_conn = upstream.server_conn
    d: Deferred[Any] = owner.master.addons.trigger("serverconnect", server_conn)
    d.addCallback(lambda _: upstream.connect())

    def negotiated(_: Any) -> IServerConnection:
        if server_conn.alpn == b"h2":
            return switch_to_h2(upstream, owner)
        return upstream

    return d.addCallback(negotiated)


H2Upstream = H2ServerConnection
"""The name this class had before (kept for addons that import it)."""
