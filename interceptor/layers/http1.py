# -*- test-case-name: tests.test_http1,tests.e2e.test_http1 -*-
"""
HTTP/1.x in regular (explicit) proxy mode.

L{Http1Layer} parses the client's requests (absolute-form, as clients
configured with a proxy send them) with httptools, runs each as an
L{Http1Stream} in order (pipelined requests are answered in order), and
keeps one L{UpstreamProtocol} per client connection for reuse across
keep-alive requests to the same server.

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
from typing import Any, Callable, Optional, Sequence

import httptools
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from interceptor.connection import ServerConnection
from interceptor.fastwrite import writer_for
from interceptor.flow import Error, HTTPFlow
from interceptor.http import Headers, Request, Response
from interceptor.options import parse_size
from interceptor.layers.upstream import open_connection
from interceptor.layers.websocket import WebSocketLayer, is_websocket_upgrade, supported_offers
from interceptor.modes import proxy_authorization
from interceptor.proxy import ReadGate
from interceptor.splice import SpliceRelay
from interceptor.tls import UpstreamTLS, check_hostname
from interceptor.tlsconfig import UpstreamTLSError, upstream_contexts
from interceptor.watchdog import Watchdog

__all__ = ["Http1Layer", "Http1Stream", "UpstreamProtocol", "error_response"]

_log = Logger(namespace="interceptor.http1")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_BODILESS_STATUS = frozenset((204, 304))
_HOP_BY_HOP_REQUEST = frozenset((b"proxy-connection",))
_DEFAULT_BUFFER = 65536
# Read and buffer size while relaying a large body unparsed: fewer, bigger
# reads and writes per megabyte.
_BULK_BUFFER = 1 << 20
_BULK_THRESHOLD = 256 * 1024


def error_response(status: int, reason: str, detail: str) -> Response:
    """
    The response the proxy sends itself when something fails: a short
    plain-text body saying why, and C{Connection: close}.
    """
    body = f"{status} {reason}\n{detail}\n".encode("utf-8", "replace")
    headers = Headers(
        [
            (b"Server", b"interceptor"),
            (b"Content-Type", b"text/plain; charset=utf-8"),
            (b"Content-Length", str(len(body)).encode()),
            (b"Connection", b"close"),
        ]
    )
    now = time.time()
    return Response("HTTP/1.1", status, reason, headers, body, now, now)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _head_bytes(first_line: str, headers: Headers) -> bytes:
    return first_line.encode("utf-8", "surrogateescape") + b"\r\n" + headers.to_bytes() + b"\r\n"


def _content_length(headers: Headers) -> Optional[int]:
    value = headers.get(b"content-length")
    if value is None:
        return None
    try:
        return int(value.split(b",")[0])
    except ValueError:
        return None


def _is_chunked(headers: Headers) -> bool:
    value = headers.get(b"transfer-encoding")
    return value is not None and b"chunked" in value.lower()


def _wants_close(headers: Headers) -> bool:
    value = headers.get(b"connection")
    return value is not None and b"close" in value.lower()


_ROOT_TRANSPORT = object()


class BadRequest(Exception):
    """
    Raised from a parser callback: the request cannot be served.

    @ivar status: The status code to answer with.
    @ivar reason: Its reason phrase.
    """

    status = 400
    reason = "Bad Request"


class HeadersTooLarge(BadRequest):
    """
    The request head is larger than the option C{max_header_size}.
    """

    status = 431
    reason = "Request Header Fields Too Large"


class _Framing:
    """
    How a message's body is delimited when the proxy sends it: by
    Content-Length (C{"length"}), chunked (C{"chunked"}), by closing the
    connection (C{"close"}), or not at all (C{"none"}).
    """

    LENGTH, CHUNKED, CLOSE, NONE = "length", "chunked", "close", "none"


def _prepare_buffered(message: Any, body: bytes, bodiless: bool, chunked_ok: bool) -> str:
    """
    Fix the framing headers of a buffered message about to be sent, and
    return its framing.  Headers are left untouched when they already fit;
    a request without a body needs no framing header at all.
    """
    headers = message.headers
    if bodiless:
        return _Framing.NONE
    if _is_chunked(headers):
        if chunked_ok:
            return _Framing.CHUNKED
        del headers[b"transfer-encoding"]
        headers[b"Content-Length"] = str(len(body)).encode()
        return _Framing.LENGTH
    length = _content_length(headers)
    if length is None and not body and isinstance(message, Request):
        return _Framing.NONE
    if length != len(body):
        headers[b"Content-Length"] = str(len(body)).encode()
    return _Framing.LENGTH


def _prepare_streamed(message: Any, chunked_ok: bool, transform: bool) -> str:
    """
    Choose and set the framing of a message whose body is streamed.
    """
    headers = message.headers
    chunked = _is_chunked(headers)
    length = _content_length(headers)
    if length is not None and not chunked and not transform:
        return _Framing.LENGTH
    if length is not None:
        del headers[b"content-length"]
    if chunked_ok:
        if not chunked:
            headers[b"Transfer-Encoding"] = b"chunked"
        return _Framing.CHUNKED
    if chunked:
        del headers[b"transfer-encoding"]
    return _Framing.CLOSE


class _BodyWriter:
    """
    Writes body pieces to a transport with the chosen framing, applying an
    addon's chunk transform on the way.
    """

    __slots__ = ("write_out", "framing", "transform", "sent")

    def __init__(
        self, write_out: Callable[[bytes], None], framing: str, transform: Optional[Callable]
    ) -> None:
        self.write_out = write_out
        self.framing = framing
        self.transform = transform
        self.sent = 0

    def write(self, data: bytes) -> None:
        """
        Send one piece of the body.
        """
        if self.transform is not None:
            data = self.transform(data)
            if not isinstance(data, (bytes, bytearray)):
                data = b"".join(data)
        if not data or self.framing == _Framing.NONE:
            return
        self.sent += len(data)
        if self.framing == _Framing.CHUNKED:
            self.write_out(_chunk(data))
        else:
            self.write_out(data)

    def finish(self) -> None:
        """
        Send the end of the body, if the framing has one.
        """
        if self.framing == _Framing.CHUNKED:
            self.write_out(b"0\r\n\r\n")


class Http1Layer:
    """
    The client-facing HTTP/1 layer of one client connection.

    @ivar root: The L{interceptor.proxy.ProxyProtocol}.
    @ivar streams: The streams of this connection, oldest first; the first
        one is being answered, the others are pipelined behind it.
    @ivar upstream: The current upstream connection (busy or idle), or None.
    """

    def __init__(
        self,
        root: Any,
        transport: Any = _ROOT_TRANSPORT,
        target: Optional[tuple[str, str, int]] = None,
        sni: Optional[str] = None,
    ) -> None:
        self.root = root
        self.master = root.master
        self.options = root.master.options
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
        self.streams: deque[Http1Stream] = deque()
        self.receiving: Optional[Http1Stream] = None
        self.upstream: Optional[UpstreamProtocol] = None
        self.closing = False
        self._in_head = False
        self._head_size = 0
        self._head_seen = 0
        self._url = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._bad: Optional[tuple[int, str, str]] = None
        self._max_header_size = self.options.max_header_size
        self.watchdog = Watchdog(
            self.master.reactor,
            self._timeout,
            self._timed_out,
            period=self.master.options.read_timeout / 4,
        )

    def __repr__(self) -> str:
        return f"<Http1Layer {self.client_conn!r}>"

    def attach_transport(self, transport: Any) -> None:
        """
        Write to C{transport} (the client connection, or a TLS wrapper
        around it).
        """
        self.transport = transport
        self.write = writer_for(transport)

    def start(self) -> None:
        """
        The layer is now in charge of the connection.
        """
        self.watchdog.start()

    # -- bytes in ---------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """
        Parse client bytes; each complete head starts a stream.
        """
        self.watchdog.last = self.master.reactor.seconds()
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
            self._reject(400, "Bad Request", f"Malformed request: {e}")
            return
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
        self._head_size = 0
        self._head_seen = 0
        self._url = b""
        self._fields = []

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
        if len(name) == 16 and name.lower() in _HOP_BY_HOP_REQUEST:
            return
        self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        """
        httptools: the head is complete; make the flow and its stream.
        """
        self._in_head = False
        parser = self.parser
        method = parser.get_method().decode("ascii", "replace")
        request = self._make_request(method, parser.get_http_version())
        if request is None:
            return
        flow = HTTPFlow(self.client_conn, None, request)
        stream = Http1Stream(self, flow, parser.should_keep_alive())
        self.receiving = stream
        self.streams.append(stream)
        if len(self.streams) == 1:
            stream.start()
        else:
            # Pipelined: answer in order, and read no further meanwhile.
            stream.holding_client = True
            self.gate.hold()

    def _make_request(self, method: str, version: str) -> Optional[Request]:
        url = self._url
        if method == "CONNECT":
            return None
        if version not in ("1.1", "1.0"):
            raise BadRequest(f"unsupported HTTP version {version!r} (expected HTTP/1.0 or HTTP/1.1)")
        if self.target is not None and url.startswith((b"/", b"*")):
            return self._origin_form_request(method, version, url)
        if self.target is not None and getattr(self.root, "mode", None) is not None \
                and self.root.mode.kind == "reverse" and url.startswith((b"http://", b"https://")):
            # Reverse mode: the proxy is the target server, whatever the URL names.
            path = b"/" + url.split(b"://", 1)[1].partition(b"/")[2]
            return self._origin_form_request(method, version, path)
        if not url.startswith((b"http://", b"https://")):
            raise BadRequest(
                "regular proxy mode expects absolute-form requests "
                f"(e.g. GET http://example.org/ HTTP/1.1), not {url[:200]!r}"
            )
        try:
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            raise BadRequest(f"invalid request URL {url[:200]!r}") from None
        scheme = parsed.schema.decode("ascii").lower()
        raw_host = parsed.host or b""
        if raw_host.isascii() and b"xn--" not in raw_host:
            host = raw_host.decode("ascii")
        else:
            host = raw_host.decode("idna")
        if not host:
            raise BadRequest(f"no host in request URL {url[:200]!r}")
        port = parsed.port or _DEFAULT_PORTS[scheme]
        path = (parsed.path or b"/").decode("utf-8", "surrogateescape")
        if parsed.query:
            path += "?" + parsed.query.decode("utf-8", "surrogateescape")
        authority = url[len(parsed.schema) + 3 :].split(b"/", 1)[0].split(b"?", 1)[0]
        now = time.time()
        mode = getattr(self.root, "mode", None)
        if mode is not None and mode.kind == "upstream" and scheme == "http":
            auth = proxy_authorization(self.options.upstream_auth)
            if auth is not None:
                self._fields = [f for f in self._fields if f[0].lower() != b"proxy-authorization"]
                self._fields.append((b"Proxy-Authorization", auth))
        request = Request(
            method,
            scheme,
            host,
            port,
            path,
            "HTTP/" + version,
            Headers(self._fields),
            None,
            authority=authority.decode("utf-8", "surrogateescape"),
            timestamp_start=now,
        )
        return request

    def _origin_form_request(self, method: str, version: str, url: bytes) -> Request:
        scheme, host, port = self.target
        mode = getattr(self.root, "mode", None)
        if mode is not None and mode.kind == "reverse" and not self.options.keep_host_header:
            fields = [f for f in self._fields if f[0].lower() != b"host"]
            fields.insert(0, (b"Host", mode.authority.encode("idna")))
            self._fields = fields
        return Request(
            method,
            scheme,
            host,
            port,
            url.decode("utf-8", "surrogateescape"),
            "HTTP/" + version,
            Headers(self._fields),
            None,
            timestamp_start=time.time(),
        )

    def on_body(self, data: bytes) -> None:
        """
        httptools: a piece of the request body.
        """
        if self.receiving is not None:
            self.receiving.request_body(data)

    def on_message_complete(self) -> None:
        """
        httptools: the request is complete.
        """
        stream, self.receiving = self.receiving, None
        if stream is not None:
            stream.request_complete()

    def _upgrade(self, rest: bytes) -> None:
        if self.parser.get_method() == b"CONNECT":
            self._connect_request(rest)
            return
        # An Upgrade request (e.g. WebSocket): its stream relays the rest once
        # the server has answered; bytes arriving meanwhile wait with it.
        stream = self.receiving
        if stream is not None:
            stream.upgrade_data.append(rest)
            self.hand_over(stream.upgrade_data.append)
            stream.request_complete()
            self.receiving = None

    def hand_over(
        self,
        data_received: Callable[[bytes], None],
        connection_lost: Optional[Callable[[Failure], None]] = None,
    ) -> None:
        """
        The connection was upgraded: from now on the client's bytes (the
        decrypted ones, under TLS) go to C{data_received}, and its end to
        C{connection_lost} when given.
        """
        if self.root.dataReceived == self.data_received:
            self.root.dataReceived = data_received
        self.data_received = data_received  # type: ignore[method-assign]
        if connection_lost is not None:
            self.connection_lost = connection_lost  # type: ignore[method-assign]

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
        stream = self.receiving
        self.receiving = None
        if stream is not None and stream in self.streams:
            stream.client_failed(f"client sent an invalid request: {detail}")
            self.streams.remove(stream)
        _log.info(
            "{client}: {status} {reason}: {detail}",
            client=self.client_conn.address,
            status=status,
            reason=reason,
            detail=detail,
        )
        if not self.streams:
            self._send_rejection()

    def _send_rejection(self) -> None:
        status, reason, detail = self._bad
        self.write_response_head_and_body(error_response(status, reason, detail))
        self.close()

    def _timeout(self) -> Optional[float]:
        if self._in_head or self.receiving is not None:
            return self.options.read_timeout
        if not self.streams:
            return self.options.idle_timeout
        return None

    def _timed_out(self, silence: float) -> None:
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

    def stream_finished(self, stream: "Http1Stream", keep_alive: bool) -> None:
        """
        A stream has sent its whole response: start the next, or close.
        """
        if self.streams and self.streams[0] is stream:
            self.streams.popleft()
        if not keep_alive:
            self.close()
            return
        if self.streams:
            following = self.streams[0]
            if following.holding_client:
                following.holding_client = False
                self.gate.release()
            following.start()
        elif self._bad is not None:
            self._send_rejection()

    def close(self) -> None:
        """
        Close the client connection once everything written has been sent.
        """
        if not self.closing:
            self.closing = True
            if self.upstream is not None:
                self.upstream.unpair()
                if self.upstream.stream is None:
                    self.upstream.close()
            self.transport.loseConnection()

    def abort(self) -> None:
        """
        Drop the client connection now.
        """
        self.closing = True
        self.transport.abortConnection()

    def connection_lost(self, reason: Failure) -> None:
        """
        The client went away: fail the streams in progress, drop upstream.
        """
        self.closing = True
        self.watchdog.stop()
        for stream in list(self.streams):
            stream.client_failed("client disconnected")
        self.streams.clear()
        if self.upstream is not None:
            self.upstream.abort()

    # -- upstream connections ---------------------------------------------

    def get_upstream(self, address: tuple[str, int], scheme: str) -> Deferred:
        """
        An upstream connection to C{address}: the idle one if it goes there,
        else a new one (after C{serverconnect}).
        """
        mode = getattr(self.root, "mode", None)
        via_proxy = None
        if mode is not None and mode.kind == "upstream" and scheme == "http":
            # Upstream mode: plain HTTP requests go to the upstream proxy, in
            # absolute-form, on one reused connection.
            address = via_proxy = mode.address
        current = self.upstream
        if current is not None:
            if current.address == address and current.connected and current.stream is None:
                return succeed(current)
            waiters = getattr(current, "ready_waiters", None)
            if current.address == address and waiters is not None and current.stream is None:
                # Still connecting (an eager connection): wait for it.
                waiter: Deferred = Deferred()
                waiters.append(waiter)
                return waiter
            current.close()
            self.upstream = None
        if self.upstream_error is not None:
            error, self.upstream_error = self.upstream_error, None
            return _failed(ConnectionError(error))
        tls = None
        if scheme == "https":
            host = address[0]
            if self.target is not None and host == self.target[1] and self.sni:
                sni: Optional[str] = self.sni
            else:
                sni = None if isIPAddress(host) or isIPv6Address(host) else host
            tls = (sni, [b"http/1.1"])
        elif scheme != "http":
            return _failed(ConnectionError(f"unsupported scheme {scheme!r}"))
        server_conn = ServerConnection(address)
        upstream = UpstreamProtocol(self, server_conn, tls=tls)
        if via_proxy is not None:
            upstream.absolute_form = True
        self.upstream = upstream
        upstream.ready_waiters = []
        d = self.master.addons.trigger("serverconnect", server_conn)
        d.addCallback(lambda _: upstream.connect())

        def settled(result: Any) -> Any:
            waiters, upstream.ready_waiters = upstream.ready_waiters, None
            for waiter in waiters:
                if isinstance(result, Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(result)
            return result

        return d.addBoth(settled)


def _no_delay(transport: Any) -> None:
    # Each message goes out in as few writes as possible; Nagle would only
    # add latency to the last partial segment.
    try:
        transport.setTcpNoDelay(True)
    except (AttributeError, OSError):
        pass


def _not_attached(data: bytes) -> None:
    raise RuntimeError("the layer has no transport yet")


def _size_option(options: Any, name: str) -> Optional[int]:
    try:
        return parse_size(getattr(options, name))
    except ValueError:
        return None


def _failed(error: Exception) -> Deferred:
    d: Deferred = Deferred()
    d.errback(Failure(error))
    return d


class Http1Stream:
    """
    One request/response exchange on an HTTP/1 client connection, and the
    flow addons see for it.
    """

    def __init__(self, layer: Http1Layer, flow: HTTPFlow, client_keep_alive: bool) -> None:
        self.layer = layer
        self.master = layer.master
        self.options = layer.options
        self.flow = flow
        self.client_keep_alive = client_keep_alive
        self.body_limit = _size_option(self.options, "body_size_limit")
        self.stream_limit = _size_option(self.options, "stream_large_bodies")
        self.holding_client = False
        self.upgrade_data: list[bytes] = []
        self.websocket = False
        self.request_chunks: list[bytes] = []
        self.request_size = 0
        self.request_done = False
        self.request_writer: Optional[_BodyWriter] = None
        self.response_chunks: list[bytes] = []
        self.response_size = 0
        self.response_writer: Optional[_BodyWriter] = None
        self.response_started = False
        self.upstream: Optional[UpstreamProtocol] = None
        self.finished = False
        self._waiting_for_body: Optional[Callable[[], None]] = None
        self._early_response = False
        self._head_pending = False
        self._complete_pending: Optional[bool] = None

    def __repr__(self) -> str:
        return f"<Http1Stream {self.flow!r}>"

    # -- request ----------------------------------------------------------

    def start(self) -> None:
        """
        This stream is at the head of the queue: run its request hooks
        (C{websocket_handshake} first for a WebSocket upgrade).
        """
        if self.flow.request.method == "GET" and self.options.websocket and (
            is_websocket_upgrade(self.flow.request.headers)
        ):
            self._trigger("websocket_handshake", self._after_websocket_handshake)
            return
        self._trigger("requestheaders", self._after_requestheaders)

    def _after_websocket_handshake(self) -> None:
        self.websocket = True
        headers = self.flow.request.headers
        offers = headers.get("sec-websocket-extensions")
        if offers is not None:
            # Only extensions the WebSocket layer can relay may be agreed on.
            del headers["sec-websocket-extensions"]
            kept = supported_offers(offers)
            if kept:
                headers["Sec-WebSocket-Extensions"] = kept
        self._trigger("requestheaders", self._after_requestheaders)

    def _trigger(self, event: str, then: Callable[[], None], hold: Any = None) -> None:
        """
        Fire an event; call C{then} when its hooks are done, holding C{hold}
        (a read gate) meanwhile if they take time.
        """
        addons = self.master.addons
        if not addons.has_hooks(event):
            if not self.finished:
                then()
            return
        d = addons.trigger(event, self.flow)
        if d.called:
            d.addCallback(lambda _: None if self.finished else then())
            return
        if hold is not None:
            hold.hold()

        def resume(_: Any) -> None:
            if hold is not None:
                hold.release()
            if not self.finished:
                then()

        d.addCallback(resume)
        d.addErrback(lambda f: _log.failure("Error while handling {flow}", f, flow=self.flow))

    def request_body(self, data: bytes) -> None:
        """
        A piece of the request body arrived.
        """
        self.request_size += len(data)
        if self.request_writer is not None:
            self.request_writer.write(data)
            return
        limit = self.body_limit
        if limit is not None and self.request_size > limit:
            self._client_error(413, "Payload Too Large", f"The request body exceeds {limit} bytes.")
            return
        self.request_chunks.append(data)

    def request_complete(self) -> None:
        """
        The whole request has arrived.
        """
        self.request_done = True
        self.flow.request.timestamp_end = time.time()
        if self.request_writer is not None:
            self._finish_streamed_request()
        waiting, self._waiting_for_body = self._waiting_for_body, None
        if waiting is not None:
            waiting()


    def _after_requestheaders(self) -> None:
        flow = self.flow
        request = flow.request
        if flow.killed:
            return self._kill()
        if flow.response is not None:
            self._early_response = True
            return self._when_request_read(self._send_early_response)
        length = _content_length(request.headers)
        limit = self.body_limit
        if limit is not None and length is not None and length > limit:
            return self._client_error(
                413, "Payload Too Large", f"The request body ({length} bytes) exceeds {limit} bytes."
            )
        expect = request.headers.get(b"expect")
        if expect is not None and expect.lower() == b"100-continue":
            del request.headers[b"expect"]
            self.layer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        stream_limit = self.stream_limit
        if request.stream or (
            stream_limit is not None and length is not None and length > stream_limit
        ):
            if not request.stream:
                request.stream = True
            return self._stream_request()
        self._when_request_read(self._request_read)

    def _when_request_read(self, then: Callable[[], None]) -> None:
        if self.request_done:
            then()
        else:
            self._waiting_for_body = then

    def _request_read(self) -> None:
        request = self.flow.request
        request.load_body(b"".join(self.request_chunks))
        self.request_chunks = []
        self._trigger("request", self._after_request)

    def _after_request(self) -> None:
        flow = self.flow
        if flow.killed:
            return self._kill()
        if flow.response is not None:
            self._early_response = True
            return self._send_early_response()
        self._connect(self._send_buffered_request)

    def _send_early_response(self) -> None:
        self.response_started = True
        self._trigger("response", self._write_buffered_response)

    def _stream_request(self) -> None:
        self.layer.gate.hold()
        self._connect(self._start_streamed_request)

    def _start_streamed_request(self, upstream: "UpstreamProtocol") -> None:
        request = self.flow.request
        transform = request.stream if callable(request.stream) else None
        if upstream.multiplexed:
            upstream.send_request(self, request, b"", end=False)
            self.request_writer = _BodyWriter(
                lambda data: upstream.send_data(self, data, None), _Framing.LENGTH, transform
            )
        else:
            framing = _prepare_streamed(request, True, transform is not None)
            upstream.write(_head_bytes(self._request_line(), request.headers))
            self.request_writer = _BodyWriter(upstream.write, framing, transform)
        pending, self.request_chunks = self.request_chunks, []
        for data in pending:
            self.request_writer.write(data)
        self.layer.gate.release()
        if self.request_done:
            self._finish_streamed_request()

    def _finish_streamed_request(self) -> None:
        self.request_writer.finish()
        if self.upstream is not None and self.upstream.multiplexed:
            self.upstream.end_request(self)
        self._trigger("request", lambda: None)

    def _request_line(self) -> str:
        request = self.flow.request
        if self.upstream is not None and self.upstream.absolute_form:
            return f"{request.method} {request.url} {request.http_version}"
        return f"{request.method} {request.path} {request.http_version}"

    # -- upstream ---------------------------------------------------------

    def _connect(self, then: Callable[["UpstreamProtocol"], None]) -> None:
        request = self.flow.request
        d = self.layer.get_upstream((request.host, request.port), request.scheme)

        def connected(upstream: UpstreamProtocol) -> None:
            if self.finished:
                return
            self.upstream = upstream
            self.flow.server_conn = upstream.server_conn
            upstream.begin(self)
            then(upstream)

        def failed(failure: Failure) -> None:
            if self.finished:
                return
            reason = failure.getErrorMessage()
            if "timeout" in reason.lower() or "timed out" in reason.lower():
                self.fail(f"Connecting to {request.host}:{request.port} timed out ({reason})", 504)
            else:
                self.fail(f"Cannot connect to {request.host}:{request.port}: {reason}", 502)

        d.addCallbacks(connected, failed)

    def _send_buffered_request(self, upstream: "UpstreamProtocol") -> None:
        request = self.flow.request
        body = request.raw_content or b""
        if upstream.multiplexed:
            upstream.send_request(self, request, body, end=True)
            return
        framing = _prepare_buffered(request, body, False, True)
        head = _head_bytes(self._request_line(), request.headers)
        if framing == _Framing.CHUNKED:
            upstream.write(head + (_chunk(body) if body else b"") + b"0\r\n\r\n")
        elif len(body) < 65536:
            upstream.write(head + body)
        else:
            upstream.write(head)
            upstream.write(body)

    # -- response ---------------------------------------------------------

    def response_head(self, response: Response) -> None:
        """
        The upstream sent a response head.
        """
        self.flow.response = response
        self._head_pending = True
        self._trigger("responseheaders", self._after_responseheaders, self.upstream.gate)

    def _after_responseheaders(self) -> None:
        self._head_pending = False
        flow = self.flow
        if flow.killed:
            return self._kill()
        response = flow.response
        length = _content_length(response.headers)
        limit = self.body_limit
        if limit is not None and length is not None and length > limit:
            return self.fail(f"The response body ({length} bytes) exceeds {limit} bytes.", 502)
        stream_limit = self.stream_limit
        if response.stream or (
            stream_limit is not None and length is not None and length > stream_limit
        ):
            self._start_streamed_response()
        elif length is not None and length >= _BULK_THRESHOLD and not self.upstream.multiplexed:
            # A large buffered body: read it in bigger pieces.
            self.upstream.read_in_bulk()
        complete, self._complete_pending = self._complete_pending, None
        if complete is not None:
            self.response_complete(complete)

    def _client_chunked_ok(self) -> bool:
        return self.flow.request.http_version == "HTTP/1.1"

    def _start_streamed_response(self) -> None:
        response = self.flow.response
        transform = response.stream if callable(response.stream) else None
        if not response.stream:
            response.stream = True
        framing = (
            _Framing.NONE
            if self.upstream.bodiless
            else _prepare_streamed(response, self._client_chunked_ok(), transform is not None)
        )
        if framing == _Framing.CLOSE:
            self.client_keep_alive = False
        self.layer.write(self._response_head())
        self.response_writer = _BodyWriter(self.layer.write, framing, transform)
        pending, self.response_chunks = self.response_chunks, []
        for data in pending:
            self.response_writer.write(data)
        if framing == _Framing.LENGTH and transform is None:
            self.upstream.want_raw_body()

    def _response_head(self) -> bytes:
        response = self.flow.response
        self.response_started = True
        if self.client_keep_alive and self.flow.request.http_version == "HTTP/1.0":
            if response.headers.get(b"connection") is None:
                response.headers[b"Connection"] = b"keep-alive"
        version = response.http_version
        if version.startswith("HTTP/2"):
            version = "HTTP/1.1"
        first = f"{version} {response.status_code} {response.reason}"
        return _head_bytes(first, response.headers)

    def response_body(self, data: bytes, ack: Optional[Callable[[], None]] = None) -> None:
        """
        A piece of the response body arrived (C{ack}, from an HTTP/2
        upstream, lets the server send more).
        """
        self.response_size += len(data)
        if ack is not None:
            ack()
        if self.response_writer is not None:
            self.response_writer.write(data)
            return
        self.response_chunks.append(data)
        if self._head_pending:
            return
        limit = self.body_limit
        if limit is not None and self.response_size > limit:
            return self.fail(f"The response body exceeds {limit} bytes.", 502)
        stream_limit = self.stream_limit
        if stream_limit is not None and self.response_size > stream_limit:
            self._start_streamed_response()

    def response_complete(self, upstream_keep_alive: bool) -> None:
        """
        The whole response has arrived.
        """
        if self._head_pending:
            self._complete_pending = upstream_keep_alive
            return
        response = self.flow.response
        response.timestamp_end = time.time()
        if not upstream_keep_alive:
            self.upstream.close()
        if self.response_writer is not None:
            self.response_writer.finish()
            self._trigger("response", self._finish)
            return
        response.load_body(b"".join(self.response_chunks))
        self.response_chunks = []
        self._trigger("response", self._write_buffered_response)

    def _write_buffered_response(self) -> None:
        flow = self.flow
        if flow.killed:
            return self._kill()
        response = flow.response
        body = response.raw_content or b""
        bodiless = (
            flow.request.method == "HEAD"
            or response.status_code in _BODILESS_STATUS
            or 100 <= response.status_code < 200
        )
        framing = _prepare_buffered(response, body, bodiless, self._client_chunked_ok())
        head = self._response_head()
        write = self.layer.write
        if framing == _Framing.CHUNKED:
            write(head + (_chunk(body) if body else b"") + b"0\r\n\r\n")
        elif framing == _Framing.LENGTH and body:
            if len(body) < 65536:
                write(head + body)
            else:
                write(head)
                write(body)
        else:
            write(head)
        if self._early_response and _wants_close(response.headers):
            self.client_keep_alive = False
        self._finish()

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        keep_alive = self.client_keep_alive and self.request_done and not self.upgrade_data
        if self.flow.response is not None and _wants_close(self.flow.response.headers):
            keep_alive = False
        if self.upstream is not None:
            self.upstream.end(self)
        self.layer.stream_finished(self, keep_alive)

    # -- upgrades (relayed as raw bytes) -----------------------------------

    def switch_protocols(self, rest: bytes) -> None:
        """
        The server answered an Upgrade request with 101: hand the rest of
        the connection to the WebSocket layer (a WebSocket upgrade, with the
        option C{websocket} on), or relay it as raw bytes in both directions.
        """
        response = self.flow.response
        response.timestamp_end = time.time()
        self.layer.write(self._response_head())
        upstream, layer = self.upstream, self.layer
        self.finished = True
        layer.streams.clear()
        layer.watchdog.stop()
        if self.websocket and is_websocket_upgrade(response.headers):
            websocket = WebSocketLayer(self.flow, layer, upstream)
            layer.hand_over(websocket.client_data_received, websocket.client_connection_lost)
            upstream.relay_to(websocket.upstream_sink)
            websocket.start(rest, self.upgrade_data)
            return
        if rest:
            layer.transport.write(rest)
        for data in self.upgrade_data:
            upstream.transport.write(data)
        layer.hand_over(upstream.transport.write)
        upstream.relay_to(layer.transport)
        self._trigger("response", lambda: None)

    # -- failures ---------------------------------------------------------

    def fail(self, message: str, status: int = 502) -> None:
        """
        The exchange failed upstream: fire C{error}, and answer the client
        with a 502/504 saying why (or drop it if the response had started).
        """
        if self.finished:
            return
        self.finished = True
        flow = self.flow
        flow.error = Error(message)
        if self.upstream is not None:
            self.upstream.end(self, broken=True)
        reason = "Gateway Timeout" if status == 504 else "Bad Gateway"
        _log.info("{client}: {url}: {detail}", client=flow.client_conn.address,
                  url=flow.request.url, detail=message)
        started = self.response_started

        def answer(_: Any) -> None:
            layer = self.layer
            if started or layer.closing:
                layer.abort()
                return
            layer.write_response_head_and_body(error_response(status, reason, message))
            layer.stream_finished(self, keep_alive=False)

        self.master.addons.trigger("error", flow).addCallback(answer)

    def _client_error(self, status: int, reason: str, detail: str) -> None:
        """
        The client's request cannot be served (e.g. too large).
        """
        if self.finished:
            return
        self.finished = True
        self.flow.error = Error(detail)
        if self.upstream is not None:
            self.upstream.end(self, broken=True)
        layer = self.layer

        def answer(_: Any) -> None:
            if self.response_started or layer.closing:
                layer.abort()
                return
            layer.write_response_head_and_body(error_response(status, reason, detail))
            layer.stream_finished(self, keep_alive=False)

        self.master.addons.trigger("error", self.flow).addCallback(answer)

    def client_failed(self, message: str) -> None:
        """
        The client went away, or broke the protocol, mid-exchange.
        """
        if self.finished:
            return
        self.finished = True
        self.flow.error = Error(message)
        if self.upstream is not None:
            self.upstream.end(self, broken=True)
        self.master.addons.trigger("error", self.flow)

    def _kill(self) -> None:
        """
        An addon killed the flow: drop both connections, fire C{error}.
        """
        self.finished = True
        if self.upstream is not None:
            self.upstream.end(self, broken=True)
        self.layer.abort()
        self.master.addons.trigger("error", self.flow)


@implementer(IHandshakeListener)
class UpstreamProtocol(Protocol):
    """
    A connection from the proxy to an upstream HTTP/1 server, reused across
    the keep-alive requests of one client connection.

    @ivar stream: The L{Http1Stream} being answered, or None when idle.
    @ivar gate: The L{interceptor.proxy.ReadGate} of this transport.
    """

    multiplexed = False
    """HTTP/1 carries one exchange at a time."""

    absolute_form = False
    """Requests go out in absolute-form (to an upstream proxy, upstream mode)."""

    ready_waiters: Optional[list] = None
    """While connecting: Deferreds of requests waiting for this connection."""

    def __init__(
        self,
        layer: "Http1Layer",
        server_conn: ServerConnection,
        tls: Optional[tuple[Optional[str], Sequence[bytes]]] = None,
    ) -> None:
        self.layer = layer
        self.tls = tls
        self.verify_error: Optional[str] = None
        self._ready: Optional[Deferred] = None
        self._paired = False
        self.master = layer.master
        self.server_conn = server_conn
        self.address = server_conn.address
        self.stream: Optional[Http1Stream] = None
        self.connected = False
        self.closing = False
        self.bodiless = False
        self.gate: Any = None
        self._parser = httptools.HttpResponseParser(self)
        self._fields: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._head_only: Optional[bytearray] = None
        self._head_parser: Any = None
        self._want_raw = False
        self._splice: Optional[SpliceRelay] = None
        self._bulk: Any = None
        self._raw_left = 0
        self._raw_keep_alive = True
        self._framed = False
        self._relay: Any = None
        self._connecting: Optional[Deferred] = None
        self.watchdog = Watchdog(
            self.master.reactor,
            self._timeout,
            self._timed_out,
            period=self.master.options.read_timeout / 4,
        )

    def __repr__(self) -> str:
        return f"<UpstreamProtocol {self.address}>"

    def connect(self) -> Deferred:
        """
        Open the connection (with TLS when C{self.tls} is set, checking the
        server's certificate unless C{ssl_insecure}).

        @return: A Deferred firing with this protocol once it is ready to
            carry a request: connected, and for TLS handshaken and verified.
        """
        self._ready = Deferred()
        self._connecting = open_connection(self.master, self.address, self, self._tls_creator())
        self._connecting.addErrback(self._not_ready)
        return self._ready

    def _tls_creator(self) -> Any:
        if self.tls is None:
            return None
        sni, alpn = self.tls
        options = self.master.options
        contexts = upstream_contexts(self.master)
        context = contexts.get(options.ssl_insecure, options.ssl_verify_upstream_trusted_ca, alpn)
        self.server_conn.sni = sni
        return UpstreamTLS(context, sni)

    def _not_ready(self, failure: Failure) -> None:
        ready, self._ready = self._ready, None
        if ready is not None:
            ready.errback(failure)

    def connectionMade(self) -> None:
        """
        TCP is up; for TLS the handshake goes on.
        """
        self.connected = True
        now = time.time()
        self.server_conn.timestamp_start = self.server_conn.timestamp_tcp_setup = now
        peer = self.transport.getPeer()
        self.server_conn.peername = (peer.host, peer.port)
        host = self.transport.getHost()
        self.server_conn.sockname = (host.host, host.port)
        raw = self.transport.transport if self.tls is not None else self.transport
        self.gate = ReadGate(raw)
        self.write = writer_for(self.transport)
        _no_delay(raw)
        self.watchdog.start()
        if self.tls is None:
            self._became_ready()

    def handshakeCompleted(self) -> None:
        """
        The upstream TLS handshake is done: check the certificate.
        """
        server_conn = self.server_conn
        transport = self.transport
        server_conn.tls_established = True
        server_conn.alpn = transport.negotiatedProtocol
        peer = transport.getPeerCertificate()
        cert = peer.to_cryptography() if peer is not None else None
        server_conn.certificate_list = [cert] if cert is not None else []
        problem = None
        if not self.master.options.ssl_insecure:
            name = self.tls[0] or self.address[0]
            if self.verify_error is not None:
                problem = self.verify_error
            elif cert is None:
                problem = "no certificate"
            else:
                problem = check_hostname(cert, name)
        if problem is not None:
            message = f"Certificate verification failed for {self.address[0]}: {problem}"
            self.abort()
            self._not_ready(Failure(UpstreamTLSError(message)))
            return
        self._became_ready()

    def _became_ready(self) -> None:
        ready, self._ready = self._ready, None
        if ready is not None:
            ready.callback(self)

    def unpair(self) -> None:
        """
        Stop producing for the client transport (it may be closing: a TLS
        transport shuts down only once no producer is registered).
        """
        if self._paired:
            self._paired = False
            if self.layer.client_conn.timestamp_end is None:
                self.layer.transport.unregisterProducer()

    def _pair(self) -> None:
        # Each side's read gate produces for the other side's transport.
        if not self._paired and self.layer.transport is not None:
            self._paired = True
            self.transport.registerProducer(self.layer.gate, True)
            self.layer.transport.registerProducer(self.gate, True)

    def begin(self, stream: Http1Stream) -> None:
        """
        C{stream}'s request is about to be sent on this connection.
        """
        self.stream = stream
        if not self._paired:
            self._pair()
        self.bodiless = False
        self._head_only = bytearray() if stream.flow.request.method == "HEAD" else None
        self.watchdog.touch()

    def end(self, stream: Http1Stream, broken: bool = False) -> None:
        """
        C{stream} is done with this connection; a broken exchange closes it.
        """
        if self.stream is stream:
            self.stream = None
            if broken:
                self.abort()

    # -- parsing ----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """
        Parse a piece of the response.
        """
        self.watchdog.last = self.master.reactor.seconds()
        if self.stream is None:
            if data.strip():
                _log.info("{server}: unexpected data from an idle upstream; closing",
                          server=self.address)
            self.abort()
            return
        if self._raw_left:
            return self._relay_body(data)
        if self._head_only is not None:
            return self._head_only_received(data)
        try:
            self._parser.feed_data(data)
            if self._want_raw:
                self._enter_raw()
        except httptools.HttpParserUpgrade as e:
            stream = self.stream
            if stream is not None and stream.flow.response is not None:
                self.stream = None
                stream.switch_protocols(data[e.args[0]:])
            else:
                self._invalid("upgrade without a 101 response")
        except httptools.HttpParserCallbackError as e:
            cause = e.__context__ or e
            _log.failure("Error handling an upstream response", Failure(cause))
            self._invalid(str(cause))
        except httptools.HttpParserError as e:
            self._invalid(str(e))

    def want_raw_body(self) -> None:
        """
        The stream relays this response's Content-Length body unchanged:
        once the current piece is parsed, count the rest through instead of
        parsing it, reading in bigger pieces.
        """
        self._want_raw = True

    def _enter_raw(self) -> None:
        self._want_raw = False
        stream = self.stream
        length = _content_length(stream.flow.response.headers) if stream else None
        if stream is None or length is None or stream.response_size >= length:
            return
        self._raw_left = length - stream.response_size
        self._raw_keep_alive = self._parser.should_keep_alive()
        self._parser = httptools.HttpResponseParser(self)
        if self._raw_left >= _BULK_THRESHOLD and SpliceRelay.possible(
            self.transport, self.layer.transport
        ):
            # Plain TCP on both sides: move the body inside the kernel.
            self._splice = SpliceRelay(
                self.transport, self.layer.transport, self._raw_left, self._spliced, self._moved
            )
            self._splice.start()
            return
        self.transport.bufferSize = _BULK_BUFFER
        self.layer.transport.bufferSize = _BULK_BUFFER

    def _moved(self, count: int) -> None:
        self.watchdog.last = self.master.reactor.seconds()
        if self.stream is not None:
            self.stream.response_size += count

    def _spliced(self) -> None:
        self._splice = None
        self._raw_left = 0
        self._framed = True
        self.on_message_complete_with(self._raw_keep_alive)

    def read_in_bulk(self) -> None:
        """
        Read this response's large body in big pieces (until it ends).
        """
        raw = self.transport.transport if self.tls is not None else self.transport
        raw.bufferSize = _BULK_BUFFER
        self._bulk = raw

    def _relay_body(self, data: bytes) -> None:
        left = self._raw_left
        stream = self.stream
        if len(data) < left:
            self._raw_left = left - len(data)
            stream.response_body(data)
            return
        self._raw_left = 0
        stream.response_body(data[:left] if len(data) > left else data)
        self.transport.bufferSize = self.layer.transport.bufferSize = _DEFAULT_BUFFER
        self._framed = True
        self.on_message_complete_with(self._raw_keep_alive)
        if len(data) > left and self.connected:
            self.dataReceived(data[left:])

    def _head_only_received(self, data: bytes) -> None:
        """
        A response to HEAD: parse its head alone; it has no body whatever
        its Content-Length says.
        """
        buf = self._head_only
        buf += data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head, rest = bytes(buf[: end + 4]), buf[end + 4 :]
        self._head_only = bytearray()
        parser = self._head_parser = httptools.HttpResponseParser(self)
        try:
            parser.feed_data(head)
        except httptools.HttpParserError as e:
            self._invalid(str(e))
            return
        finally:
            self._head_parser = None
        status = parser.get_status_code()
        if 100 <= status < 200:
            if rest:
                self._head_only_received(bytes(rest))
            return
        self._head_only = None
        self._framed = True
        self.bodiless = True
        self.on_message_complete_with(parser.should_keep_alive())

    def _invalid(self, detail: str) -> None:
        stream = self.stream
        if stream is not None:
            stream.fail(f"Invalid response from {self.address[0]}:{self.address[1]}: {detail}", 502)
        self.abort()

    def on_message_begin(self) -> None:
        """
        httptools: a response starts.
        """
        self._fields = []
        self._reason = b""
        self._framed = False

    def on_status(self, status: bytes) -> None:
        """
        httptools: the reason phrase (possibly in pieces).
        """
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        """
        httptools: one header field.
        """
        self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        """
        httptools: the response head is complete.
        """
        parser = self._head_parser or self._parser
        status = parser.get_status_code()
        stream = self.stream
        if (100 <= status < 200 and status != 101) or stream is None:
            return
        response = Response(
            "HTTP/" + parser.get_http_version(),
            status,
            self._reason.decode("latin-1"),
            Headers(self._fields),
            None,
            timestamp_start=time.time(),
        )
        self.bodiless = stream.flow.request.method == "HEAD" or status in _BODILESS_STATUS
        if status == 101:
            stream.flow.response = response
            return
        self._framed = (
            _content_length(response.headers) is not None or _is_chunked(response.headers)
        )
        stream.response_head(response)

    def on_body(self, data: bytes) -> None:
        """
        httptools: a piece of the response body.
        """
        stream = self.stream
        if stream is not None:
            stream.response_body(data)

    def on_message_complete(self) -> None:
        """
        httptools: the response is complete.
        """
        self._want_raw = False
        if self._bulk is not None:
            self._bulk.bufferSize = _DEFAULT_BUFFER
            self._bulk = None
        if self._head_only is not None:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            return
        self._framed = True
        self.on_message_complete_with(self._parser.should_keep_alive())

    def on_message_complete_with(self, keep_alive: bool) -> None:
        """
        Hand the completed response to the stream.
        """
        stream = self.stream
        if stream is not None and stream.flow.response is not None:
            stream.response_complete(keep_alive)

    # -- life cycle -------------------------------------------------------

    def _timeout(self) -> Optional[float]:
        return self.master.options.read_timeout if self.stream is not None else None

    def _timed_out(self, silence: float) -> None:
        stream = self.stream
        if stream is not None:
            stream.fail(
                f"{self.address[0]}:{self.address[1]} sent nothing for {silence:.1f} s "
                "(read timeout)",
                504,
            )
        self.abort()

    def relay_to(self, transport: Any) -> None:
        """
        From now on, relay every byte from upstream to C{transport}.
        """
        self._relay = transport
        self.watchdog.stop()
        self.dataReceived = transport.write

    def close(self) -> None:
        """
        Close once pending writes are sent.
        """
        if not self.closing:
            self.closing = True
            if self.transport is not None:
                self.transport.loseConnection()
            elif self._connecting is not None:
                self._connecting.cancel()

    def abort(self) -> None:
        """
        Drop the connection now.
        """
        self.closing = True
        if self.transport is not None:
            if self.connected:
                self.transport.abortConnection()
        elif self._connecting is not None and not self._connecting.called:
            self._connecting.cancel()

    def connectionLost(self, reason: Failure = None) -> None:
        """
        The upstream closed: finish a close-delimited body, or fail the
        exchange in progress; fire C{serverdisconnect}.
        """
        self.connected = False
        self.watchdog.stop()
        if self._splice is not None:
            self._splice.abandon()
            self._splice = None
        self.server_conn.timestamp_end = time.time()
        if self._ready is not None:
            detail = reason.getErrorMessage() if reason is not None else "connection closed"
            self._not_ready(Failure(ConnectionError(
                f"{self.address[0]}:{self.address[1]} closed the connection during "
                f"the TLS handshake ({detail})"
            )))
        if self.layer.upstream is self:
            self.layer.upstream = None
        if self._relay is not None:
            self._relay.loseConnection()
        elif self._paired:
            self.unpair()
        stream, self.stream = self.stream, None
        if stream is not None and not stream.finished:
            response = stream.flow.response
            if response is not None and not self._framed and self._head_only is None:
                # A close-delimited body ends here.
                self.stream = stream
                stream.response_complete(False)
                self.stream = None
            else:
                what = "before responding" if response is None else "in the middle of the response"
                stream.fail(
                    f"{self.address[0]}:{self.address[1]} closed the connection {what}"
                    f" ({reason.getErrorMessage() if reason else 'closed'})",
                    502,
                )
        self.master.addons.trigger("serverdisconnect", self.server_conn)
