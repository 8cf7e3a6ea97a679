# -*- test-case-name: tests.e2e.test_http2,tests.e2e.test_http2_streams,tests.e2e.test_translation_flow -*-
"""
The client side of one HTTP/2 stream: L{H2ClientSide} carries the commands
of its L{interceptor.layers.exchange.HttpExchange} to the client's stream
(response headers and DATA within the client's windows, resets, error
answers), and finds the stream's server side: a stream of the connection's
L{H2ServerConnection}, or an HTTP/1.1 connection of its own (translation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from h2.errors import ErrorCodes
from h2.exceptions import H2Error
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from interceptor.layers.contracts import IClientSide, IServerConnection, IServerSide
from interceptor.layers.exchange import HttpExchange
from interceptor.layers.http1_framing import (
    _BODILESS_STATUS,
    _content_length,
    _failed,
    drop_length_if_transformed,
    error_response,
    message_trailers,
)
from interceptor.layers.http2_frames import HIGH_WATER, Output, pump
from interceptor.layers.http2_headers import h2_response_headers
from interceptor.model.connection import ServerConnection
from interceptor.model.flow import HTTPFlow
from interceptor.model.http import Request, Response
from interceptor.tls.handshake import server_name_for

if TYPE_CHECKING:
    from interceptor.layers.http2 import Http2Layer

__all__ = ["H2ClientSide"]

_log = Logger(namespace="interceptor.http2")


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

    def idle_server(self, request: Request) -> Optional[IServerSide]:
        """
        None: a stream's server side comes from L{connect}.
        """
        return None

    def connect(self, request: Request) -> Deferred[Optional[IServerSide]]:
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
                waiting: Deferred[Optional[IServerSide]] = Deferred()

                def retry() -> None:
                    if self.exchange.over:
                        waiting.callback(None)
                    else:
                        self.connect(request).chainDeferred(waiting)

                layer.h2_waiters.append(retry)
                return waiting
        server_conn = ServerConnection((request.host, request.port))
        tls = None
        offers_h2 = False
        if request.scheme == "https":
            sni = layer.sni if same_server and layer.sni else server_name_for(request.host)
            offers_h2 = same_server and layer.master.options.http2
            tls = (sni, [b"h2", b"http/1.1"] if offers_h2 else [b"http/1.1"])

        def connected(connection: IServerConnection) -> Optional[IServerSide]:
            # (Compared as the interface: mypy-zope sees no overlap between
            # an implementer class and its interface in an identity test.)
            shared: Optional[IServerConnection] = layer.upstream_h2
            if self.exchange.over and connection is not shared:
                connection.close()
                return None
            return self._bind(connection)

        return layer.open_server(server_conn, tls, offers_h2).addCallback(connected)

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
                layer.conn.send_data(self.stream_id, response.raw_content or b"", end_stream=True)
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
