# -*- test-case-name: tests.e2e.test_http2 -*-
"""
HTTP/2 toward the client (negotiated by ALPN), with the h2 package.

Every client stream is an L{HTTPFlow} run by an
L{interceptor.layers.exchange.HttpExchange}, with the same events as on
HTTP/1: C{requestheaders}, C{request}, C{responseheaders}, C{response}, or
C{error}; its client side is an L{H2ClientSide}.  Each stream waits on its
own hooks only.  Toward the server a stream goes over the connection's
L{H2ServerConnection} (when the server negotiated h2 too) or over an
HTTP/1.1 connection of its own (translation, with headers mapped per RFC
9113).

Flow control is end to end: data from one side is acknowledged to its
sender only once it has been handed to the other side (or buffered, within
the body limits), so a slow reader slows its writer instead of filling the
proxy's memory.  Server push is refused.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from interceptor.layers.contracts import IClientSide, IServerConnection, IServerOwner, IServerSide
from interceptor.layers.exchange import HttpExchange
from interceptor.layers.http1_framing import (
    _BODILESS_STATUS,
    _content_length,
    _failed,
    drop_length_if_transformed,
    error_response,
    message_trailers,
)
from interceptor.layers.http1_server import Http1ServerConnection
from interceptor.layers.http2_frames import HIGH_WATER, Output, h2_config, pump, send_settings
from interceptor.layers.http2_headers import (
    CONNECTION_HEADERS,
    h2_response_headers,
    request_from_h2,
)
from interceptor.layers.http2_server import H2ServerConnection, H2Upstream, switch_to_h2
from interceptor.model.connection import ServerConnection
from interceptor.model.flow import HTTPFlow
from interceptor.model.http import Headers, Request, Response
from interceptor.tls.handshake import server_name_for
from interceptor.transport.watchdog import SilenceWatch, Watchdog

__all__ = [
    "Http2Layer",
    "H2ClientSide",
    "H2ServerConnection",
    "H2Upstream",
    "CONNECTION_HEADERS",
    "switch_to_h2",
]

_log = Logger(namespace="interceptor.http2")


class _ClientWrites:
    """
    The push producer of an HTTP/2 client's transport: while its write
    buffer is full the streams send nothing more (their output then waits
    in the proxy, bounded, and holds their servers back), however large
    the windows the client granted.
    """

    def __init__(self, layer: "Http2Layer") -> None:
        self.layer = layer

    def pauseProducing(self) -> None:
        """
        The client is not reading fast enough.
        """
        self.layer.write_paused = True

    def resumeProducing(self) -> None:
        """
        The write buffer has drained: send again.
        """
        self.layer.write_paused = False
        self.layer.pump_all()

    def stopProducing(self) -> None:
        """
        The client has gone; connection_lost cleans up.
        """


@implementer(IServerOwner)
class Http2Layer:
    """
    The client-facing HTTP/2 layer of one connection.

    @ivar streams: The open streams by id.
    @ivar upstream_h2: The HTTP/2 upstream connection, when the server
        speaks h2.
    """

    def __init__(self, root: Any, target: Optional[tuple[str, str, int]], sni: Optional[str] = None) -> None:
        self.root = root
        self.master = root.master
        self.options = root.master.options
        self.client_conn = root.client_conn
        self.target = target
        self.sni = sni
        self.transport: Any = None
        self.gate = root.gate
        self.layer: Any = None
        self.conn = H2Connection(config=h2_config(False))
        self.streams: dict[int, H2ClientSide] = {}
        self.upstream_h2: Optional[H2ServerConnection] = None
        self.h2_waiters: Optional[list[Callable[[], None]]] = None
        self.upstream_error: Optional[str] = None
        self.closing = False
        self.write_paused = False
        self._producing = False
        self.idle = Watchdog.for_connection(self.master, self._idle_limit, self._idle_expired)
        self.silence = SilenceWatch(
            self.master.reactor,
            self.options.read_timeout / 4,
            self._request_limit,
            self._request_silent,
        )

    def __repr__(self) -> str:
        return f"<Http2Layer {self.client_conn!r}>"

    pairing_transport = None
    """Server connections are paced by HTTP/2 windows, not paired with this transport."""

    def server_lost(self, server: IServerConnection) -> None:
        """
        A server connection closed: forget it.
        """
        if self.upstream_h2 is server:
            self.upstream_h2 = None

    def attach_transport(self, transport: Any) -> None:
        """
        Write to C{transport}; send our preface and settings.
        """
        self.transport = transport
        try:
            transport.registerProducer(_ClientWrites(self), True)
            self._producing = True
        except RuntimeError:
            _log.info("{client}: HTTP/2 writes not paced (the transport has a producer)",
                      client=self.client_conn.address)
        self.conn.initiate_connection()
        send_settings(self.conn, client=False)
        self.flush()
        self.idle.start()

    def start(self) -> None:
        """
        The layer is in charge of the connection.
        """

    def flush(self) -> None:
        """
        Send what h2 has queued.
        """
        data = self.conn.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        """
        Frames from the client.
        """
        if self.closing:
            return
        self.idle.touch()
        try:
            events = self.conn.receive_data(data)
        except (ProtocolError, H2Error) as e:
            _log.info("{client}: HTTP/2 protocol error: {error}", client=self.client_conn.address, error=str(e))
            self._terminate(ErrorCodes.PROTOCOL_ERROR)
            return
        for event in events:
            handler = _CLIENT_HANDLERS.get(type(event))
            if handler is None:
                continue
            try:
                handler(self, event)
            except Exception:
                # A bug handling one stream fails that stream, not the connection.
                _log.failure("Error handling {event}", event=event)
                side = self.streams.get(_stream_id(event))
                if side is not None:
                    side.exchange.fail("internal error in the proxy", 502)
        self.flush()

    def _request_received(self, event: RequestReceived) -> None:
        request = request_from_h2(event.headers, self.target)
        flow = HTTPFlow(self.client_conn, None, request)
        side = H2ClientSide(self, event.stream_id, flow)
        self.streams[event.stream_id] = side
        if request.method == "CONNECT":
            # Tunnels inside an h2 stream (RFC 9113 8.5) are not relayed:
            # refuse this stream only, before any event.
            side.request_ended = True
            side.exchange.client_error(
                501, "Not Implemented", "CONNECT over HTTP/2 is not supported by this proxy."
            )
            return
        if event.stream_ended is None:
            self.silence.touch(side)
        # (An END_STREAM on the headers also comes as its own StreamEnded
        # event, which completes the request.)
        side.exchange.start()

    def _data_received(self, event: DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            return
        self.silence.touch(stream)
        stream.request_data(event.data, event.flow_controlled_length)

    def _stream_ended(self, event: StreamEnded) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            self.silence.forget(stream)
            stream.request_end()

    def _trailers_received(self, event: TrailersReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.exchange.flow.request.trailers = Headers(list(event.headers))

    def _stream_reset(self, event: StreamReset) -> None:
        stream = self.streams.pop(event.stream_id, None)
        if stream is not None:
            self.silence.forget(stream)
            stream.exchange.client_failed(
                f"client reset the stream (error code {event.error_code!r})"
            )

    def _window_updated(self, event: WindowUpdated) -> None:
        if event.stream_id:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.pump()
        else:
            self.pump_all()

    def pump_all(self) -> None:
        """
        Let every stream send what its windows allow.
        """
        for stream in list(self.streams.values()):
            stream.pump()

    def _terminated(self, event: ConnectionTerminated) -> None:
        for stream in list(self.streams.values()):
            stream.exchange.client_failed(
                f"client ended the connection (GOAWAY, {event.error_code!r})"
            )
        self.streams.clear()
        self.close()

    def _terminate(self, code: ErrorCodes) -> None:
        try:
            self.conn.close_connection(error_code=code)
            self.flush()
        except H2Error:
            pass
        for stream in list(self.streams.values()):
            stream.exchange.client_failed("HTTP/2 protocol error on the client connection")
        self.streams.clear()
        self.close()

    def stream_done(self, stream: H2ClientSide) -> None:
        """
        A stream has finished both ways.
        """
        self.streams.pop(stream.stream_id, None)
        self.silence.forget(stream)
        if not self.streams:
            # Idle from now on (not from the client's last frame).
            self.idle.touch()

    # -- timeouts ---------------------------------------------------------

    def _idle_limit(self) -> Optional[float]:
        return None if self.streams else self.options.idle_timeout

    def _idle_expired(self, silence: float) -> None:
        _log.info("{client}: HTTP/2 connection idle for {silence:.1f} s; closing",
                  client=self.client_conn.address, silence=silence)
        try:
            self.conn.close_connection()
            self.flush()
        except H2Error:
            pass
        self.close()

    def _request_limit(self, stream: H2ClientSide) -> Optional[float]:
        # Not counted once the flow failed, or while the server has not
        # taken what the client sent (its window stays closed by that much).
        if stream.exchange.flow.error is not None or stream.request_unacked:
            return None
        return self.options.read_timeout

    def _request_silent(self, stream: H2ClientSide, silence: float) -> None:
        stream.client_timed_out(silence)
        self.flush()

    def close(self) -> None:
        """
        Close the client connection.
        """
        if not self.closing:
            self.closing = True
            self._stop_timers()
            if self.upstream_h2 is not None:
                self.upstream_h2.close()
            if self.transport is not None:
                self._stop_producing()
                self.transport.loseConnection()

    def _stop_producing(self) -> None:
        # A TLS transport shuts down only once no producer is registered.
        if self._producing:
            self._producing = False
            self.write_paused = False
            self.transport.unregisterProducer()

    def _stop_timers(self) -> None:
        self.idle.stop()
        self.silence.stop()

    def connection_lost(self, reason: Failure) -> None:
        """
        The client went away.
        """
        self.closing = True
        self._stop_timers()
        for stream in list(self.streams.values()):
            stream.exchange.client_failed("client disconnected")
        self.streams.clear()
        if self.upstream_h2 is not None:
            self.upstream_h2.close()

    def get_upstream_h2(self) -> Optional[H2ServerConnection]:
        """
        The live HTTP/2 upstream connection, if any.
        """
        up = self.upstream_h2
        if up is not None and up.usable:
            return up
        return None


_CLIENT_HANDLERS: dict[type, Callable[[Http2Layer, Any], None]] = {
    RequestReceived: Http2Layer._request_received,
    DataReceived: Http2Layer._data_received,
    StreamEnded: Http2Layer._stream_ended,
    TrailersReceived: Http2Layer._trailers_received,
    StreamReset: Http2Layer._stream_reset,
    WindowUpdated: Http2Layer._window_updated,
    # A larger SETTINGS_INITIAL_WINDOW_SIZE opens every stream's window
    # without a WINDOW_UPDATE (RFC 9113 6.9.2).
    RemoteSettingsChanged: lambda layer, event: layer.pump_all(),
    ConnectionTerminated: Http2Layer._terminated,
}



def _stream_id(event: Any) -> Optional[int]:
    # The stream an h2 event is about (None for connection-level events).
    return event.stream_id if isinstance(event, _STREAM_EVENTS) else None


_STREAM_EVENTS = (RequestReceived, DataReceived, StreamEnded, TrailersReceived, StreamReset, WindowUpdated)


@implementer(IClientSide)
class H2ClientSide:
    """
    One client stream on an HTTP/2 connection, as its exchange's client
    side: response headers and DATA within flow control, resets, and the
    server connection for the stream.

    @ivar exchange: The L{HttpExchange}.
    @ivar out: The response data waiting for the client's windows.
    @ivar request_unacked: Request pieces the server has not taken yet.
    """

    can_upgrade = False
    chunked_ok = True
    direct_transport = None
    in_turn = True

    def __init__(self, layer: Http2Layer, stream_id: int, flow: HTTPFlow) -> None:
        self.layer = layer
        self.stream_id = stream_id
        self.out = Output()
        # Response acknowledgements held until the client takes the data.
        self._acks: list[Callable[[], None]] = []
        # The HTTP/1 server's read gate, held while too much waits here.
        self._held_gate: Any = None
        self.request_unacked = 0
        self.request_ended = False
        self.ending = False
        self.response_sent = False
        self.server_side: Optional[IServerSide] = None
        self.exchange = HttpExchange(layer.master, flow, self)

    def __repr__(self) -> str:
        return f"<H2ClientSide {self.stream_id} {self.exchange.flow!r}>"

    # -- events from the client ------------------------------------------

    def request_data(self, data: bytes, flow_controlled: int) -> None:
        """
        A DATA frame: the client's window opens again for it once the
        exchange has buffered it or the server has taken it.
        """
        self.exchange.request_data(data, self._request_ack(flow_controlled))

    def _request_ack(self, flow_controlled: int) -> Callable[[], None]:
        conn, sid, layer = self.layer.conn, self.stream_id, self.layer
        self.request_unacked += 1

        def ack() -> None:
            self.request_unacked -= 1
            if not flow_controlled:
                return
            try:
                conn.acknowledge_received_data(flow_controlled, sid)
            except H2Error:
                return
            layer.flush()

        return ack

    def request_end(self) -> None:
        """
        The client ended its side of the stream.
        """
        self.request_ended = True
        self.exchange.request_end()
        self._done_if_complete()

    def client_timed_out(self, silence: float) -> None:
        """
        The client sent nothing on this stream for C{silence} seconds in
        the middle of its request: answer 408 (or, when the response has
        been sent already, give up the rest of the request).
        """
        exchange = self.exchange
        if self.ending or exchange.over:
            _log.info("{flow}: the client sent nothing more of its request for {silence:.1f} s "
                      "after the response; stream reset", flow=exchange.flow, silence=silence)
            self._drop_server()
            self._reset(ErrorCodes.CANCEL)
            self.layer.stream_done(self)
            return
        exchange.client_error(
            408, "Request Timeout",
            f"The client sent nothing for {silence:.1f} s while sending a request.",
        )

    def _drop_server(self) -> None:
        server, self.server_side = self.server_side, None
        if server is not None:
            server.done(True)

    def _reset(self, code: ErrorCodes) -> None:
        try:
            self.layer.conn.reset_stream(self.stream_id, code)
        except H2Error:
            pass

    # -- the server ---------------------------------------------------------

    def connect(self, request: Request) -> Deferred:
        """
        The server side for C{request}: a stream of the connection's
        HTTP/2 server connection to the same server, or an HTTP/1.1
        connection of this stream's own (translation).
        """
        layer = self.layer
        if layer.upstream_error is not None:
            error, layer.upstream_error = layer.upstream_error, None
            return _failed(ConnectionError(error))
        target = layer.target
        same_server = target is not None and (request.host, request.port) == (target[1], target[2])
        if same_server:
            h2 = layer.get_upstream_h2()
            if h2 is not None:
                return succeed(self._bind(h2))
            if layer.h2_waiters is not None:
                # A new connection to the server is being opened: it may speak h2.
                waiting: Deferred = Deferred()
                layer.h2_waiters.append(
                    lambda: waiting.callback(None) if self.exchange.over
                    else self.connect(request).chainDeferred(waiting)
                )
                return waiting
        server_conn = ServerConnection((request.host, request.port))
        tls = None
        offers_h2 = False
        if request.scheme == "https":
            sni = layer.sni if same_server and layer.sni else server_name_for(request.host)
            offers_h2 = same_server and layer.master.options.http2
            tls = (sni, [b"h2", b"http/1.1"] if offers_h2 else [b"http/1.1"])
        if offers_h2:
            layer.h2_waiters = []
        # One HTTP/1.1 connection per translated stream.
        upstream = Http1ServerConnection(layer, server_conn, tls=tls, single_use=True)
        d = layer.master.addons.trigger("serverconnect", server_conn)
        d.addCallback(lambda _: upstream.connect())

        def release_waiters() -> None:
            waiters, layer.h2_waiters = layer.h2_waiters, None
            for waiter in waiters or ():
                waiter()

        def connected(_: Any) -> Optional[IServerSide]:
            if server_conn.alpn == b"h2":
                h2 = layer.upstream_h2 = switch_to_h2(upstream, layer)
                release_waiters()
                return self._bind(h2)
            if offers_h2:
                release_waiters()
            if self.exchange.over:
                upstream.close()
                return None
            return self._bind(upstream)

        def failed(failure: Failure) -> Failure:
            if offers_h2:
                release_waiters()
            return failure

        return d.addCallbacks(connected, failed)

    def _bind(self, connection: IServerConnection) -> Optional[IServerSide]:
        if self.exchange.over:
            return None
        self.server_side = connection.open_exchange(self.exchange)
        return self.server_side

    # -- reading the client -------------------------------------------------

    def hold_reads(self) -> None:
        """
        HTTP/2 holds a client by its windows, not by its reads.
        """

    def release_reads(self) -> None:
        """
        (See L{hold_reads}.)
        """

    def send_continue(self) -> None:
        """
        HTTP/2 clients do not wait for a 100 here.
        """

    # -- the response ---------------------------------------------------------

    def send_response_head(self, response: Response) -> bool:
        """
        Start a streamed response.
        """
        drop_length_if_transformed(response)
        self.layer.conn.send_headers(self.stream_id, h2_response_headers(response))
        return False

    def send_response_data(self, data: bytes, ack: Optional[Callable[[], None]]) -> None:
        """
        A piece of a streamed response; C{ack} (from an HTTP/2 server) runs
        once little enough waits here for the client's window.  An HTTP/1
        server has no window: its reads are held instead.
        """
        out = self.out
        if data:
            out.chunks.append(data)
            out.size += len(data)
        if ack is None:
            server = self.exchange.server
            gate = server.read_gate if server is not None else None
            if out.size > HIGH_WATER and self._held_gate is None and gate is not None:
                self._held_gate = gate
                gate.hold()
        elif out.size <= HIGH_WATER:
            ack()
        else:
            self._acks.append(ack)
        self.pump()

    def end_response(self, response: Response) -> None:
        """
        The end of a streamed response (with its trailers).
        """
        self.ending = True
        self.out.end = True
        self.out.trailers = message_trailers(response)
        self.pump()

    def send_response(self, response: Response, early: bool) -> None:
        """
        A whole buffered response.
        """
        flow = self.exchange.flow
        body = response.raw_content or b""
        if flow.request.method == "HEAD" or response.status_code in _BODILESS_STATUS:
            body = b""
        elif _content_length(response.headers) not in (None, len(body)):
            response.headers[b"content-length"] = str(len(body)).encode()
        self.ending = True
        trailers = message_trailers(response)
        layer = self.layer
        try:
            layer.conn.send_headers(
                self.stream_id, h2_response_headers(response), end_stream=not body and not trailers
            )
        except H2Error as e:
            _log.info("{flow}: cannot send the response: {e}", flow=flow, e=e)
            layer.stream_done(self)
            return
        if body or trailers:
            out = self.out
            out.chunks.append(body)
            out.size += len(body)
            out.end = True
            out.trailers = trailers
            self.pump()
        else:
            layer.flush()
            layer.stream_done(self)

    def pump(self) -> None:
        """
        Send queued response data as the client's windows allow.
        """
        out = self.out
        if (self.ending or self.exchange.over) and not out.chunks and not out.end:
            return
        layer = self.layer
        if layer.write_paused:
            return
        try:
            done = pump(layer.conn, self.stream_id, out)
        except H2Error:
            return
        if out.size <= HIGH_WATER:
            gate, self._held_gate = self._held_gate, None
            if gate is not None:
                gate.release()
            if self._acks:
                acks, self._acks = self._acks, []
                for ack in acks:
                    ack()
        layer.flush()
        if done and self.ending:
            self.response_sent = True
            self._done_if_complete()

    def _done_if_complete(self) -> None:
        # A stream is over once its response has gone out and its request
        # has come in (a server may answer before the end of an upload; the
        # rest is still relayed, and request still fires).
        if self.response_sent and self.request_ended:
            self.layer.stream_done(self)

    def send_error(self, status: int, reason: str, detail: str, started: bool) -> None:
        """
        Answer the stream with an error (or reset it if the response had
        started).
        """
        layer = self.layer
        if layer.closing:
            return
        try:
            if started:
                layer.conn.reset_stream(self.stream_id, ErrorCodes.INTERNAL_ERROR)
            else:
                response = error_response(status, reason, detail)
                layer.conn.send_headers(self.stream_id, h2_response_headers(response))
                layer.conn.send_data(self.stream_id, response.raw_content, end_stream=True)
        except H2Error:
            pass
        layer.flush()
        layer.stream_done(self)

    def abandon(self) -> None:
        """
        The exchange broke off: the server's window gets back what was held
        for the client (it will never be sent now, and the server
        connection's window would shrink for good with every such stream).
        """
        acks, self._acks = self._acks, []
        for ack in acks:
            ack()
        self.server_side = None

    def kill(self) -> None:
        """
        Reset the stream.
        """
        self._reset(ErrorCodes.CANCEL)
        self.layer.flush()
        self.layer.stream_done(self)

    def switch_protocols(self, server: Any, after: list[bytes]) -> None:
        """
        HTTP/2 streams cannot switch protocols.
        """
        self.exchange.fail("the server switched protocols on an HTTP/2 stream", 502)

    def finished(self) -> None:
        """
        The exchange is over; the stream ends once its output is sent (and
        the request is in: the rest of an upload may still go to the
        server).
        """

    def flush(self) -> None:
        """
        Send what h2 has queued.
        """
        self.layer.flush()
