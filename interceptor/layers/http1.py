# -*- test-case-name: tests.e2e.test_http1,tests.e2e.test_http1_faults -*-
"""
HTTP/1.x toward the client: the layer of one client connection.

L{Http1Layer} parses the client's requests (absolute-form, as clients
configured with a proxy send them) with httptools, runs each as an
L{interceptor.layers.exchange.HttpExchange} whose client side is an
L{Http1ClientSide} (pipelined requests are answered in order), and keeps
one server connection per client connection for reuse across keep-alive
requests to the same server.  A request head becomes a L{Request} in
L{interceptor.layers.http1_request}.

Per request the stream fires, in order: C{requestheaders} (before the body
is read), C{request}, C{serverconnect} when a new upstream connection is
needed, C{responseheaders} (no content yet), C{response}; or C{error}.  It
waits for each hook's Deferred, holding only this connection.

Bodies are buffered by default, and streamed when an addon sets
C{message.stream} (C{True} or a chunk-transforming callable) in
C{requestheaders}/C{responseheaders}, or when they are larger than the
option C{stream_large_bodies}.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Optional

import httptools
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from interceptor.model.connection import ServerConnection
from interceptor.transport.fast.fastwrite import writer_for
from interceptor.model.flow import HTTPFlow
from interceptor.model.http import Headers, Request, Response
from interceptor.layers.http1_framing import (
    _HOP_BY_HOP_REQUEST,
    _failed,
    _head_bytes,
    _no_delay,
    _not_attached,
    error_response,
)
from interceptor.layers.contracts import IEagerLayer, IServerConnection, IServerOwner
from interceptor.layers.http1_client import Http1ClientSide
from interceptor.layers.http1_request import (
    BadRequest,
    HeadersTooLarge,
    check_transfer_encoding,
    make_request,
)
from interceptor.layers.http1_server import Http1ServerConnection, UpstreamProtocol
from interceptor.layers.http2 import Http2Layer, h2c_start
from interceptor.layers.http2_server import connect_upstream
from interceptor.tls.handshake import server_name_for
from interceptor.transport.paced import PacedWrite
from interceptor.transport.readgate import ReadGate
from interceptor.transport.watchdog import Watchdog

if TYPE_CHECKING:
    from interceptor.core.master import Master
    from interceptor.core.options import Options

__all__ = [
    "Http1Layer",
    "Http1ClientSide",
    "Http1ServerConnection",
    "UpstreamProtocol",
    "BadRequest",
    "error_response",
]

_log = Logger(namespace="interceptor.http1")

_ROOT_TRANSPORT = object()


@implementer(IEagerLayer, IServerOwner)
class Http1Layer:
    """
    The client-facing HTTP/1 layer of one client connection.

    @ivar root: The L{interceptor.proxy.ProxyProtocol}.
    @ivar streams: The requests of this connection (L{Http1ClientSide}),
        oldest first; the first one is being answered, the others are
        pipelined behind it.
    @ivar upstream: The current server connection (busy or idle), or None.
    """

    def __init__(
        self,
        root: Any,
        transport: Any = _ROOT_TRANSPORT,
        target: Optional[tuple[str, str, int]] = None,
        sni: Optional[str] = None,
    ) -> None:
        self.root = root
        self.master: Master = root.master
        self.options: Options = root.master.options
        self.client_conn = root.client_conn
        self.target = target
        self.sni = sni
        self.upstream_error: Optional[str] = None
        self.transport: Any = None
        self.write: Callable[[bytes], None] = _not_attached
        if transport is _ROOT_TRANSPORT:
            transport = root.transport
            _no_delay(transport)
        if transport is not None:
            self.attach_transport(transport)
        self.gate = root.gate
        self.layer: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.streams: deque[Http1ClientSide] = deque()
        self.receiving: Optional[Http1ClientSide] = None
        self._completed: Optional[Http1ClientSide] = None
        self.upstream: Optional[IServerConnection] = None
        # Requests waiting for the server connection being opened.
        self._upstream_waiters: Optional[list[Deferred[IServerConnection]]] = None
        # After an upgrade: where the client's bytes (and its end) go
        # instead of the parser.
        self._sink: Optional[Callable[[bytes], Any]] = None
        self._lost_sink: Optional[Callable[[Failure], Any]] = None
        self.closing = False
        # A big buffered response being written to the client a slice at a time.
        self.pacing: Optional[PacedWrite] = None
        self._in_head = False
        self._head_started = 0.0
        self._head_size = 0
        self._head_seen = 0
        self._url = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._bad: Optional[tuple[int, str, str]] = None
        self._max_header_size = self.options.max_header_size
        self.watchdog = Watchdog.for_connection(self.master, self._timeout, self._timed_out)

    def __repr__(self) -> str:
        return f"<Http1Layer {self.client_conn!r}>"

    def attach_transport(self, transport: Any) -> None:
        """
        Write to C{transport} (the client connection, or a TLS wrapper
        around it).
        """
        self.transport = transport
        self.write = writer_for(transport)

    @property
    def pairing_transport(self) -> Any:
        """
        The client transport a server connection pairs with: each side's
        read gate produces for the other side's transport.
        """
        return self.transport

    def server_lost(self, server: IServerConnection) -> None:
        """
        A server connection closed: forget it.
        """
        if self.upstream is server:
            self.upstream = None

    def start(self) -> None:
        """
        The layer is now in charge of the connection.
        """
        self.watchdog.start()

    def connect_eagerly(self) -> None:
        """
        With C{connection_strategy=eager}, a layer whose server is known
        (reverse, transparent, socks5 mode, CONNECT tunnels without TLS)
        connects right away, so C{serverconnect} fires before the first
        request.
        """
        target = self.target
        if (
            target is None
            or self.options.connection_strategy != "eager"
            or self.upstream is not None
            or self.transport is not self.root.transport
        ):
            return
        scheme, host, port = target

        def failed(failure: Failure) -> None:
            # The first request tries again and reports the failure.
            _log.debug("{client}: eager connection to {host}:{port} failed: {error}",
                      client=self.client_conn.address, host=host, port=port,
                      error=failure.getErrorMessage())

        self.get_upstream((host, port), scheme).addErrback(failed)

    # -- bytes in ---------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """
        Parse client bytes; each complete head starts an exchange.
        """
        sink = self._sink
        if sink is not None:
            sink(data)
            return
        self.watchdog.last = self.master.clock.seconds()
        if self._bad is not None or self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            self._upgrade(data[e.args[0]:])
            return
        except httptools.HttpParserCallbackError as e:
            cause = e.__context__
            if isinstance(cause, BadRequest):
                self._reject(cause.status, cause.reason, str(cause))
            else:
                _log.failure("Error handling a request", Failure(cause or e))
                self._reject(400, "Bad Request", str(cause or e))
            return
        except httptools.HttpParserError as e:
            h2c = None if self.streams or self.upstream else h2c_start(data, self._head_seen)
            if h2c is not None:
                # The HTTP/2 preface, first (h2c with prior knowledge): HTTP/2 from now on.
                self.closing = True
                self.watchdog.stop()
                self.root.switch_layer(Http2Layer(self.root, self.target), [h2c])
                return
            self._reject(400, "Bad Request", f"Malformed request: {e}")
            return
        finally:
            # (Only an upgrade in this same feed needs the stream just completed.)
            self._completed = None
        if self._in_head:
            # A head that never ends (e.g. one endless header line).
            self._head_seen += len(data)
            if self._head_seen > self._max_header_size:
                error = self._too_large()
                self._reject(error.status, error.reason, str(error))

    def _too_large(self) -> HeadersTooLarge:
        return HeadersTooLarge(
            f"The request header block exceeds {self._max_header_size} bytes."
        )

    def on_message_begin(self) -> None:
        """
        httptools: a new request starts.
        """
        self._in_head = True
        # (The watchdog was touched by the bytes being parsed: now.)
        self._head_started = self.watchdog.last
        self._head_size = 0
        self._head_seen = 0
        self._url = b""
        self._fields = []
        self._trailers: list[tuple[bytes, bytes]] = []
        self._transfer_encodings: list[bytes] = []

    def on_url(self, url: bytes) -> None:
        """
        httptools: a piece of the request target.
        """
        self._url += url
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """
        httptools: one header field.
        """
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self._max_header_size:
            raise self._too_large()
        if not self._in_head:
            # After a chunked body: a trailer field, never a header.
            self._trailers.append((name, value))
            return
        if len(name) == 16 and name.lower() in _HOP_BY_HOP_REQUEST:
            return
        if len(name) == 17 and name.lower() == b"transfer-encoding":
            self._transfer_encodings.append(value)
        self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        """
        httptools: the head is complete; make the flow and its stream.
        """
        self._in_head = False
        parser = self.parser
        method = parser.get_method().decode("ascii", "replace")
        version = parser.get_http_version()
        if self._transfer_encodings:
            check_transfer_encoding(self._transfer_encodings, version)
        request = make_request(method, version, self._url, self._fields,
                               self.target, self.root.mode, self.options)
        if request is None:
            return
        flow = HTTPFlow(self.client_conn, None, request)
        side = Http1ClientSide(self, flow, parser.should_keep_alive())
        self.receiving = side
        self.streams.append(side)
        if len(self.streams) == 1:
            side.exchange.start()
        else:
            # Pipelined: answer in order, and read no further meanwhile.
            side.holding_client = True
            self.gate.hold()

    def on_body(self, data: bytes) -> None:
        """
        httptools: a piece of the request body.
        """
        receiving = self.receiving
        if receiving is not None:
            receiving.exchange.request_data(data)

    def on_message_complete(self) -> None:
        """
        httptools: the request is complete.
        """
        side, self.receiving = self.receiving, None
        self._completed = side
        if side is not None:
            exchange = side.exchange
            if self._trailers:
                exchange.flow.request.trailers = Headers(self._trailers)
            exchange.request_end()

    def _upgrade(self, rest: bytes) -> None:
        if self.parser.get_method() == b"CONNECT":
            self._connect_request(rest)
            return
        # An Upgrade request (e.g. WebSocket): its stream relays the rest once
        # the server has answered; bytes arriving meanwhile wait with it.
        # (httptools completes the request before it reports the upgrade.)
        side = self.receiving or self._completed
        if side is not None:
            side.upgrade_data.append(rest)
            self.hand_over(side.upgrade_data.append)
            if self.receiving is side:
                self.receiving = None
                side.exchange.request_end()

    def hand_over(
        self,
        data_received: Callable[[bytes], Any],
        connection_lost: Optional[Callable[[Failure], Any]] = None,
    ) -> None:
        """
        The connection was upgraded: from now on the client's bytes (the
        decrypted ones, under TLS) go to C{data_received} instead of the
        parser, and its end to C{connection_lost} when given.
        """
        self._sink = data_received
        if connection_lost is not None:
            self._lost_sink = connection_lost

    def _connect_request(self, rest: bytes) -> None:
        """
        A CONNECT request: fire C{http_connect}; unless an addon answered
        with a non-2xx response, answer 200 and hand the tunnel to the
        next layer.
        """
        authority = self._url.decode("utf-8", "surrogateescape")
        host, _, port_text = authority.rpartition(":")
        host = host.strip("[]")
        if self.streams or not host or not port_text.isdigit():
            self._reject(400, "Bad Request", f"invalid CONNECT target {authority[:200]!r}")
            return
        request = Request(
            "CONNECT",
            "",
            host,
            int(port_text),
            "",
            "HTTP/" + self.parser.get_http_version(),
            Headers(self._fields),
            b"",
            authority=authority,
            timestamp_start=time.time(),
        )
        flow = HTTPFlow(self.client_conn, None, request)
        self.closing = True
        self.watchdog.stop()
        self.root.buffer_input()
        self.gate.hold()
        d = self.master.addons.trigger("http_connect", flow)
        d.addCallback(lambda _: self._connect_answered(flow, rest))
        d.addErrback(lambda f: _log.failure("Error handling CONNECT", f))

    def _connect_answered(self, flow: HTTPFlow, rest: bytes) -> None:
        self.gate.release()
        if self.client_conn.timestamp_end is not None:
            return
        response = flow.response
        if flow.killed:
            self.transport.abortConnection()
            return
        if response is not None and not 200 <= response.status_code < 300:
            self.write_response_head_and_body(response)
            self.transport.loseConnection()
            return
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        self.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.root.start_tunnel((flow.request.host, flow.request.port), rest)

    # -- bad input and timeouts -------------------------------------------

    def _reject(self, status: int, reason: str, detail: str) -> None:
        """
        Answer a request the proxy cannot handle, after any request still
        being answered, and close the connection.
        """
        if self._bad is not None:
            return
        self._bad = (status, reason, detail)
        self.gate.hold()
        side = self.receiving
        self.receiving = None
        log = _log.info  # (a flow failed here has its error line from the dumper)
        if side is not None and side in self.streams:
            side.exchange.client_failed(f"client sent an invalid request: {detail}")
            self.streams.remove(side)
            log = _log.debug
        log(
            "{client}: {status} {reason}: {detail}",
            client=self.client_conn.address,
            status=status,
            reason=reason,
            detail=detail,
        )
        if not self.streams:
            self._send_rejection(self._bad)

    def _send_rejection(self, bad: tuple[int, str, str]) -> None:
        status, reason, detail = bad
        self.write_response_head_and_body(error_response(status, reason, detail))
        self.close()

    def _timeout(self) -> Optional[float]:
        if self._in_head or self.receiving is not None:
            if self.gate.holds:
                # The proxy is not reading (the server is not taking the
                # body, or a hook holds the flow): not the client's silence.
                self.watchdog.touch()
                return None
            read_timeout: float = self.options.read_timeout
            if self._in_head:
                # However often it sends a byte, the client has header_timeout
                # for the whole head (the watchdog counts from its last byte).
                header_timeout: float = self.options.header_timeout
                return min(read_timeout, self._head_started + header_timeout - self.watchdog.last)
            return read_timeout
        if not self.streams:
            idle_timeout: float = self.options.idle_timeout
            return idle_timeout
        return None

    def _timed_out(self, silence: float) -> None:
        header_timeout: float = self.options.header_timeout
        if self._in_head and self.master.clock.seconds() >= self._head_started + header_timeout:
            self._reject(
                408,
                "Request Timeout",
                f"The client took more than header_timeout ({header_timeout:g} s) "
                "to send its request head.",
            )
            return
        if self._in_head or self.receiving is not None:
            self._reject(
                408,
                "Request Timeout",
                f"The client sent nothing for {silence:.1f} s while sending a request.",
            )
        else:
            self.close()

    # -- bytes out --------------------------------------------------------

    def write_response_head_and_body(self, response: Response) -> None:
        """
        Send a complete response the proxy made itself.
        """
        body = response.raw_content or b""
        first = f"{response.http_version} {response.status_code} {response.reason}"
        self.write(_head_bytes(first, response.headers) + body)

    def stream_finished(self, side: Http1ClientSide, keep_alive: bool) -> None:
        """
        A request has been answered: start the next, or close.
        """
        if self.streams and self.streams[0] is side:
            self.streams.popleft()
        if not keep_alive:
            self.close()
            return
        if self.streams:
            following = self.streams[0]
            if following.holding_client:
                following.holding_client = False
                self.gate.release()
            following.exchange.start()
        elif self._bad is not None:
            self._send_rejection(self._bad)

    def close(self) -> None:
        """
        Close the client connection once everything written has been sent.
        """
        if not self.closing:
            self.closing = True
            if self.upstream is not None:
                self.upstream.release()
            self.transport.loseConnection()

    def abort(self) -> None:
        """
        Drop the client connection now.
        """
        self.closing = True
        self.transport.abortConnection()

    def connection_lost(self, reason: Failure) -> None:
        """
        The client went away: fail the exchanges in progress, drop upstream.
        """
        if self.pacing is not None:
            self.pacing.stop()
            self.pacing = None
        lost = self._lost_sink
        if lost is not None:
            lost(reason)
            return
        self.closing = True
        self.watchdog.stop()
        for side in list(self.streams):
            side.exchange.client_failed("client disconnected")
        self.streams.clear()
        if self.upstream is not None:
            self.upstream.abort()

    # -- upstream connections ---------------------------------------------

    def _route(
        self, address: tuple[str, int], scheme: str
    ) -> tuple[tuple[str, int], bool, Optional[tuple[Optional[str], list[bytes]]], Optional[str]]:
        # Where a request to address goes, and how: (address, through the
        # upstream proxy, TLS (sni, ALPN offers), the SNI).
        mode = self.root.mode
        via_proxy = False
        if mode.kind == "upstream" and scheme == "http":
            # Upstream mode: plain HTTP requests go to the upstream proxy, in
            # absolute-form, on one reused connection.
            address = mode.address
            via_proxy = True
        tls = None
        sni: Optional[str] = None
        if scheme == "https":
            host = address[0]
            if self.target is not None and host == self.target[1] and self.sni:
                sni = self.sni
            else:
                sni = server_name_for(host)
            options = self.master.options
            # With http2_translate the server may speak h2 to this HTTP/1 client.
            translate = options.http2 and options.http2_translate
            tls = (sni, [b"h2", b"http/1.1"] if translate else [b"http/1.1"])
        return address, via_proxy, tls, sni

    def client_gate(self) -> Optional[ReadGate]:
        """
        The gate producing for the client's transport (the paired server
        connection's), whose pauses say the client's write buffer is full;
        None when none does.
        """
        upstream = self.upstream
        return upstream.client_gate if upstream is not None else None

    def idle_upstream(self, address: tuple[str, int], scheme: str) -> Optional[IServerConnection]:
        """
        The current server connection if it is idle and goes to C{address}
        the way C{scheme} asks (else None).
        """
        current = self.upstream
        if current is None or scheme not in ("http", "https"):
            return None
        address, _, _, sni = self._route(address, scheme)
        if current.address == address and current.reuse_key == (scheme, sni) and current.idle():
            return current
        return None

    def get_upstream(self, address: tuple[str, int], scheme: str) -> Deferred[IServerConnection]:
        """
        A server connection to C{address}: the idle one if it goes there,
        else a new one (after C{serverconnect}).
        """
        if scheme not in ("http", "https"):
            return _failed(ConnectionError(f"unsupported scheme {scheme!r}"))
        address, via_proxy, tls, sni = self._route(address, scheme)
        current = self.upstream
        if current is not None:
            # Reuse only a connection to the same place, in the same way: an
            # https request must never go out on a plain connection (or to
            # a server verified under another name).
            same = current.address == address and current.reuse_key == (scheme, sni)
            if same and current.idle():
                return succeed(current)
            waiters = self._upstream_waiters
            if same and waiters is not None:
                # Still connecting (an eager connection): wait for it.
                waiter: Deferred[IServerConnection] = Deferred()
                waiters.append(waiter)
                return waiter
            current.close()
            self.upstream = None
        if self.upstream_error is not None:
            error, self.upstream_error = self.upstream_error, None
            return _failed(ConnectionError(error))
        server_conn = ServerConnection(address)
        upstream = Http1ServerConnection(self, server_conn, tls=tls)
        if via_proxy:
            upstream.absolute_form = True
        self.upstream = upstream
        waiters = self._upstream_waiters = []
        d = connect_upstream(self, upstream)

        def speak_h2(connection: IServerConnection) -> IServerConnection:
            # (Compared as the interface: mypy-zope sees no overlap between an
            # implementer class and its interface in an identity test.)
            opened: IServerConnection = upstream
            if connection is not opened and self.upstream is opened:
                # It negotiated h2: the HTTP/2 connection is the current one.
                self.upstream = connection
            return connection

        d.addCallback(speak_h2)

        def settled(result: Any) -> Any:
            if self._upstream_waiters is waiters:
                self._upstream_waiters = None
            for waiter in waiters:
                if isinstance(result, Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(result)
            return result

        return d.addBoth(settled)
