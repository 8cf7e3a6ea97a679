# -*- test-case-name: tests.e2e.test_http2 -*-
"""
HTTP/2 toward the client (negotiated by ALPN), with the h2 package.

Every client stream is an L{HTTPFlow} with the same events as on HTTP/1:
C{requestheaders}, C{request}, C{responseheaders}, C{response}, or
C{error}.  Each stream waits on its own hooks only.  Toward the server a
stream goes over the connection's HTTP/2 upstream (L{H2Upstream}, when the
server negotiated h2 too) or over an HTTP/1.1 connection of its own
(translation, with headers mapped per RFC 9113).

Flow control is end to end: data from one side is acknowledged to its
sender only once it has been handed to the other side (or buffered, within
the body limits), so a slow reader slows its writer instead of filling the
proxy's memory.  Server push is refused.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable, Optional

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PushedStreamReceived,
    RemoteSettingsChanged,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError
from h2.settings import SettingCodes
from twisted.internet.interfaces import IHandshakeListener, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from interceptor.model.connection import ServerConnection
from interceptor.transport.flowcontrol import AckValve
from interceptor.model.flow import Error, HTTPFlow
from interceptor.model.http import Headers, Request, Response, _reason_phrase
from interceptor.layers.exchange import Exchange, wants_streaming
from interceptor.layers.http1_framing import (
    _BODILESS_STATUS,
    _BodyWriter,
    _content_length,
    _Framing,
    _head_bytes,
    _prepare_buffered,
    _size_option,
    _write_message,
    drop_length_if_transformed,
    error_response,
    message_trailers,
    transformed,
)
from interceptor.layers.http1_upstream import UpstreamProtocol
from interceptor.transport.readgate import ReadGate
from interceptor.tls.handshake import server_name_for
from interceptor.transport.watchdog import SilenceWatch, Watchdog

__all__ = ["Http2Layer", "H2Stream", "H2Upstream", "CONNECTION_HEADERS", "switch_to_h2"]

_log = Logger(namespace="interceptor.http2")

CONNECTION_HEADERS = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
"""Connection-specific header names, dropped when crossing to HTTP/2 (RFC 9113 8.2.2)."""

_WINDOW = 1 << 24  # our receive windows: 16 MiB per connection
_STREAM_WINDOW = 1 << 20  # and 1 MiB per stream
_HIGH_WATER = 1 << 20  # pending output per stream before its source is held


def _h2_config(client_side: bool) -> H2Configuration:
    return H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_inbound_headers=True,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


def _settings(conn: H2Connection, client: bool) -> None:
    values = {SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW, SettingCodes.MAX_CONCURRENT_STREAMS: 256}
    if client:
        values[SettingCodes.ENABLE_PUSH] = 0
    conn.update_settings(values)
    conn.increment_flow_control_window(_WINDOW - 65535)


def request_from_h2(headers: list[tuple[bytes, bytes]], target: Optional[tuple]) -> Request:
    """
    Make a L{Request} from an HTTP/2 header block: pseudo-headers become
    method, scheme, authority and path; the rest stay as headers.
    """
    pseudo: dict[bytes, bytes] = {}
    fields = []
    for name, value in headers:
        if name[:1] == b":":
            pseudo[name] = value
        else:
            fields.append((name, value))
    method = pseudo.get(b":method", b"GET").decode("ascii", "replace")
    scheme = pseudo.get(b":scheme", b"https").decode("ascii", "replace")
    authority = pseudo.get(b":authority", b"").decode("utf-8", "surrogateescape")
    path = pseudo.get(b":path", b"/").decode("utf-8", "surrogateescape")
    if target is not None:
        _, host, port = target
    else:
        host, _, port_text = authority.rpartition(":")
        if not host or not port_text.isdigit():
            host, port_text = authority, ""
        port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    return Request(
        method,
        scheme,
        host.strip("[]"),
        port,
        path,
        "HTTP/2.0",
        Headers(fields),
        None,
        authority=authority,
        timestamp_start=time.time(),
    )


def h2_request_headers(request: Request) -> list[tuple[bytes, bytes]]:
    """
    The HTTP/2 header block for a request: pseudo-headers first, then the
    headers without connection-specific ones (and without Host, which
    becomes C{:authority}).
    """
    authority = request.authority or request.headers.get("host") or request.host
    out = [
        (b":method", request.method.encode()),
        (b":scheme", (request.scheme or "https").encode()),
        (b":authority", authority.encode("utf-8", "surrogateescape")),
        (b":path", request.path.encode("utf-8", "surrogateescape")),
    ]
    for name, value in request.headers.fields:
        lower = name.lower()
        if lower in CONNECTION_HEADERS or lower == b"host":
            continue
        if lower == b"te" and value.lower() != b"trailers":
            continue
        out.append((lower, value))
    return out


def h2_response_headers(response: Response) -> list[tuple[bytes, bytes]]:
    """
    The HTTP/2 header block for a response.
    """
    out = [(b":status", str(response.status_code).encode())]
    for name, value in response.headers.fields:
        lower = name.lower()
        if lower not in CONNECTION_HEADERS:
            out.append((lower, value))
    return out


def http1_headers_for(request: Request) -> None:
    """
    Adapt an HTTP/2 request's headers for an HTTP/1.1 upstream: a Host
    header first, split Cookie fields joined.
    """
    headers = request.headers
    if headers.get(b"host") is None:
        headers.insert(0, b"Host", (request.authority or request.host).encode())
    cookies = headers.get_all(b"cookie")
    if len(cookies) > 1:
        headers[b"cookie"] = b"; ".join(cookies)


def response_from_h2(headers: list[tuple[bytes, bytes]]) -> Response:
    """
    Make a L{Response} from an HTTP/2 response header block.
    """
    status = 502
    fields = []
    for name, value in headers:
        if name == b":status":
            status = int(value)
        elif name[:1] != b":":
            fields.append((name, value))
    return Response(
        "HTTP/2.0", status, _reason_phrase(status), Headers(fields), None, timestamp_start=time.time()
    )


class _Output:
    """
    Data waiting to be sent on one HTTP/2 stream, within flow control.
    """

    __slots__ = ("chunks", "offset", "size", "end", "trailers", "on_sent")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        # How much of chunks[0] is sent already (a big body goes out a
        # frame at a time; copying its rest for each frame was quadratic).
        self.offset = 0
        self.size = 0
        self.end = False
        self.trailers: Optional[list] = None
        self.on_sent: Optional[Callable[[int], None]] = None


def _pump(conn: H2Connection, stream_id: int, out: _Output) -> bool:
    """
    Send as much of C{out} on C{stream_id} as the windows allow.

    @return: Whether everything, including the end of the stream, was sent.
    """
    chunks = out.chunks
    while chunks:
        window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
        if window <= 0:
            return False
        whole, start = chunks[0], out.offset
        end = start + window
        if end >= len(whole):
            chunk = whole[start:] if start else whole
            chunks.popleft()
            out.offset = 0
        else:
            chunk = whole[start:end]
            out.offset = end
        conn.send_data(stream_id, chunk)
        out.size -= len(chunk)
        if out.on_sent is not None:
            out.on_sent(len(chunk))
    if out.end:
        if out.trailers:
            conn.send_headers(stream_id, out.trailers, end_stream=True)
        else:
            conn.end_stream(stream_id)
        out.end = False
        return True
    return False


@implementer(IPushProducer)
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
        self.conn = H2Connection(config=_h2_config(False))
        self.streams: dict[int, H2Stream] = {}
        self.upstream_h2: Optional[H2Upstream] = None
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
        _settings(self.conn, client=False)
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
                stream = self.streams.get(getattr(event, "stream_id", None))
                if stream is not None:
                    stream.fail("internal error in the proxy", 502)
        self.flush()

    def _request_received(self, event: RequestReceived) -> None:
        request = request_from_h2(event.headers, self.target)
        flow = HTTPFlow(self.client_conn, None, request)
        stream = H2Stream(self, event.stream_id, flow)
        self.streams[event.stream_id] = stream
        if request.method == "CONNECT":
            # Tunnels inside an h2 stream (RFC 9113 8.5) are not relayed:
            # refuse this stream only, before any event.
            stream.announced = False
            stream.request_done = True
            stream._client_error(501, "CONNECT over HTTP/2 is not supported by this proxy.")
            return
        if event.stream_ended is None:
            self.silence.touch(stream)
        # (An END_STREAM on the headers also comes as its own StreamEnded
        # event, which completes the request.)
        stream.start()

    def _data_received(self, event: DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            return
        self.silence.touch(stream)
        stream.request_body(event.data, event.flow_controlled_length)

    def _stream_ended(self, event: StreamEnded) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            self.silence.forget(stream)
            stream.request_complete()

    def _trailers_received(self, event: TrailersReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.flow.request.trailers = Headers(list(event.headers))

    def _stream_reset(self, event: StreamReset) -> None:
        stream = self.streams.pop(event.stream_id, None)
        if stream is not None:
            self.silence.forget(stream)
            stream.client_failed(f"client reset the stream (error code {event.error_code!r})")

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
            stream.client_failed(f"client ended the connection (GOAWAY, {event.error_code!r})")
        self.streams.clear()
        self.close()

    def _terminate(self, code: ErrorCodes) -> None:
        try:
            self.conn.close_connection(error_code=code)
            self.flush()
        except H2Error:
            pass
        for stream in list(self.streams.values()):
            stream.client_failed("HTTP/2 protocol error on the client connection")
        self.streams.clear()
        self.close()

    def stream_done(self, stream: "H2Stream") -> None:
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

    def _request_limit(self, stream: "H2Stream") -> Optional[float]:
        # Not counted once the flow failed, or while the server has not
        # taken what the client sent (its window stays closed by that much).
        if stream.flow.error is not None or stream.request_unacked:
            return None
        return self.options.read_timeout

    def _request_silent(self, stream: "H2Stream", silence: float) -> None:
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
            stream.client_failed("client disconnected")
        self.streams.clear()
        if self.upstream_h2 is not None:
            self.upstream_h2.close()

    def get_upstream_h2(self) -> Optional["H2Upstream"]:
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


class _Http1Owner:
    """
    What an HTTP/1 L{UpstreamProtocol} needs from its owner when it
    carries one HTTP/2 stream (no pairing of transports: HTTP/2 flow
    control does that job).
    """

    def __init__(self, layer: Http2Layer) -> None:
        self.master = layer.master
        self.client_conn = layer.client_conn
        self.transport = None
        self.gate = layer.gate
        self.upstream: Any = None


class H2Stream(Exchange):
    """
    One client stream on an HTTP/2 connection, and its flow.
    """

    def __init__(self, layer: Http2Layer, stream_id: int, flow: HTTPFlow) -> None:
        self.layer = layer
        self.master = layer.master
        self.stream_id = stream_id
        self.flow = flow
        self.request_chunks: list[bytes] = []
        self.request_size = 0
        self.request_done = False
        self.request_streaming = False
        self.response_chunks: list[bytes] = []
        self.response_size = 0
        self.response_streaming = False
        self.response_started = False
        self.finished = False
        self.out = _Output()
        self._acks: list[Callable[[], None]] = []
        self.upstream: Any = None  # an H2Upstream or an HTTP/1 UpstreamProtocol
        self._request_writer: Optional[_BodyWriter] = None  # to an HTTP/1 upstream
        self.body_limit = _size_option(layer.options, "body_size_limit")
        self.stream_limit = _size_option(layer.options, "stream_large_bodies")
        self._waiting_for_body: Optional[Callable[[], None]] = None
        self._head_pending = False
        self._complete_pending = False
        self._held = False
        # Request data acknowledgements waiting for the server to take it.
        self.request_unacked = 0
        self._response_sent = False

    def __repr__(self) -> str:
        return f"<H2Stream {self.stream_id} {self.flow!r}>"

    # -- hooks ------------------------------------------------------------

    def _trigger(self, event: str, then: Callable[[], None]) -> None:
        if self.flow.error is not None:
            # No event follows error.
            return
        addons = self.master.addons
        if not addons.has_hooks(event):
            then()
            return
        d = addons.trigger(event, self.flow)
        if not d.called:
            self._running = d

        def resume(_: Any) -> None:
            self._running = None
            if not self.finished:
                try:
                    then()
                except Exception:
                    _log.failure("Error while handling {flow}", flow=self.flow)
                    self.fail("internal error in the proxy", 502)
            self.layer.flush()

        d.addCallback(resume)
        d.addErrback(lambda f: _log.failure("Error while handling {flow}", f, flow=self.flow))

    def start(self) -> None:
        """
        Run the request hooks.
        """
        self._trigger("requestheaders", self._after_requestheaders)

    # -- request ----------------------------------------------------------

    def request_body(self, data: bytes, flow_controlled: int) -> None:
        """
        A piece of the request body.
        """
        self.request_size += len(data)
        if self.request_streaming and self.upstream is not None:
            self._forward_request_data(data, flow_controlled)
            return
        if self.body_limit is not None and self.request_size > self.body_limit:
            self.layer.conn.acknowledge_received_data(flow_controlled, self.stream_id)
            self._client_error(413, f"The request body exceeds {self.body_limit} bytes.")
            return
        self.request_chunks.append(data)
        # Buffered within the limits: let the client go on sending.
        self.layer.conn.acknowledge_received_data(flow_controlled, self.stream_id)

    def request_complete(self) -> None:
        """
        The client ended its side of the stream.
        """
        self.request_done = True
        self.flow.request.timestamp_end = time.time()
        if self.request_streaming and self.upstream is not None:
            self._end_upstream_request()
            self._trigger("request", lambda: None)
        waiting, self._waiting_for_body = self._waiting_for_body, None
        if waiting is not None:
            waiting()
        self._done_if_complete()

    def _after_requestheaders(self) -> None:
        flow = self.flow
        if flow.killed:
            return self._kill()
        if flow.response is not None:
            return self._when_request_read(self._send_early_response)
        length = _content_length(flow.request.headers)
        if self.body_limit is not None and length is not None and length > self.body_limit:
            return self._client_error(
                413, f"The request body ({length} bytes) exceeds {self.body_limit} bytes."
            )
        request = flow.request
        if wants_streaming(request, length, self.stream_limit):
            self.request_streaming = True
            return self._connect(self._start_streamed_request)
        self._when_request_read(self._request_read)

    def _send_early_response(self) -> None:
        self._trigger("response", self._send_buffered_response)

    # -- upstream ---------------------------------------------------------

    def _connect(self, then: Callable[[], None]) -> None:
        layer = self.layer
        request = self.flow.request
        if layer.upstream_error is not None:
            error, layer.upstream_error = layer.upstream_error, None
            self.fail(f"Cannot connect to {request.host}:{request.port}: {error}", 502)
            return
        target = layer.target
        same_server = target is not None and (request.host, request.port) == (target[1], target[2])
        if same_server:
            h2 = layer.get_upstream_h2()
            if h2 is not None:
                self.upstream = h2
                self.flow.server_conn = h2.server_conn
                then()
                return
            if layer.h2_waiters is not None:
                # A new connection to the server is being opened: it may speak h2.
                layer.h2_waiters.append(lambda: None if self.finished else self._connect(then))
                return
        owner = _Http1Owner(layer)
        server_conn = ServerConnection((request.host, request.port))
        tls = None
        offers_h2 = False
        if request.scheme == "https":
            sni = layer.sni if same_server and layer.sni else server_name_for(request.host)
            offers_h2 = same_server and self.master.options.http2
            tls = (sni, [b"h2", b"http/1.1"] if offers_h2 else [b"http/1.1"])
        if offers_h2:
            layer.h2_waiters = []
        upstream = UpstreamProtocol(owner, server_conn, tls=tls)
        owner.upstream = upstream
        d = self.master.addons.trigger("serverconnect", server_conn)
        d.addCallback(lambda _: upstream.connect())

        def release_waiters() -> None:
            waiters, layer.h2_waiters = layer.h2_waiters, None
            for waiter in waiters or ():
                waiter()

        def connected(_: Any) -> None:
            if server_conn.alpn == b"h2":
                layer.upstream_h2 = switch_to_h2(upstream, layer)
                release_waiters()
                if self.finished:
                    return
                self.upstream = layer.upstream_h2
                self.flow.server_conn = server_conn
                then()
                return
            if offers_h2:
                release_waiters()
            if self.finished:
                upstream.close()
                return
            # An HTTP/1.1 connection of the stream's own (translation).
            self.upstream = upstream
            self.flow.server_conn = server_conn
            http1_headers_for(request)
            upstream.begin(self)
            then()

        def failed(failure: Failure) -> None:
            if offers_h2:
                release_waiters()
            if not self.finished:
                self.fail(f"Cannot connect to {request.host}:{request.port}: {failure.getErrorMessage()}", 502)

        d.addCallbacks(connected, failed)

    def _http1_head(self) -> bytes:
        request = self.flow.request
        return _head_bytes(f"{request.method} {request.path} HTTP/1.1", request.headers)

    def _send_buffered_request(self) -> None:
        request = self.flow.request
        body = request.raw_content or b""
        if isinstance(self.upstream, H2Upstream):
            self.upstream.send_request(self, request, body, end=True)
            return
        framing = _prepare_buffered(request, body, False, True)
        _write_message(self.upstream.write, self._http1_head(), body, framing, request.trailers)

    def _start_streamed_request(self) -> None:
        request = self.flow.request
        pending, self.request_chunks = self.request_chunks, []
        drop_length_if_transformed(request)
        if isinstance(self.upstream, H2Upstream):
            self.upstream.send_request(self, request, b"", end=False)
        else:
            framing = _Framing.LENGTH
            if request.headers.get(b"content-length") is None:
                request.headers[b"Transfer-Encoding"] = b"chunked"
                framing = _Framing.CHUNKED
            self.upstream.write(self._http1_head())
            # The transform is applied before the writer (for both upstreams).
            self._request_writer = _BodyWriter(self.upstream.write_body, framing, None)
        for data in pending:
            self._forward_request_data(data, 0)
        if self.request_done:
            self._end_upstream_request()
            self._trigger("request", lambda: None)

    def _forward_request_data(self, data: bytes, flow_controlled: int) -> None:
        transform = self.flow.request.stream
        if callable(transform):
            data = transformed(transform, data)
        ack = self._request_ack(flow_controlled) if flow_controlled else None
        if isinstance(self.upstream, H2Upstream):
            self.upstream.send_data(self, data, ack)
        else:
            self._request_writer.write(data)
            if ack is not None:
                self.upstream.when_drained(ack)

    def _request_ack(self, flow_controlled: int) -> Callable[[], None]:
        # Opens the client's window for this piece once the server has it.
        conn, sid = self.layer.conn, self.stream_id
        self.request_unacked += 1

        def ack() -> None:
            self.request_unacked -= 1
            try:
                conn.acknowledge_received_data(flow_controlled, sid)
            except H2Error:
                return
            self.layer.flush()

        return ack

    def _end_upstream_request(self) -> None:
        if isinstance(self.upstream, H2Upstream):
            self.upstream.end_request(self, message_trailers(self.flow.request))
        else:
            self._request_writer.finish(self.flow.request.trailers)

    # -- response ---------------------------------------------------------

    def response_head(self, response: Response) -> None:
        """
        The server's response head arrived.
        """
        self.flow.response = response
        self._head_pending = True
        self._trigger("responseheaders", self._after_responseheaders)

    def _after_responseheaders(self) -> None:
        self._head_pending = False
        flow = self.flow
        if flow.killed:
            return self._kill()
        response = flow.response
        length = _content_length(response.headers)
        if self.body_limit is not None and length is not None and length > self.body_limit:
            return self.fail(f"The response body ({length} bytes) exceeds {self.body_limit} bytes.", 502)
        if wants_streaming(response, length, self.stream_limit):
            self._start_streamed_response()
        if self._complete_pending:
            self._complete_pending = False
            self.response_complete(True)

    def _start_streamed_response(self) -> None:
        response = self.flow.response
        if not response.stream:
            response.stream = True
        self.response_streaming = True
        self.response_started = True
        drop_length_if_transformed(response)
        conn = self.layer.conn
        conn.send_headers(self.stream_id, h2_response_headers(response))
        pending, self.response_chunks = self.response_chunks, []
        for data in pending:
            self._queue(data)
        self.pump()

    def response_body(self, data: bytes, ack: Optional[Callable[[], None]] = None) -> None:
        """
        A piece of the response body; C{ack} tells the upstream it may send
        more once this piece has left the proxy.
        """
        self.response_size += len(data)
        if self.response_streaming:
            transform = self.flow.response.stream
            if callable(transform):
                data = transformed(transform, data)
            self._queue(data, ack)
            self.pump()
            return
        if ack is not None:
            ack()
        self.response_chunks.append(data)
        if self._head_pending:
            return
        if self.body_limit is not None and self.response_size > self.body_limit:
            return self.fail(f"The response body exceeds {self.body_limit} bytes.", 502)
        if self.stream_limit is not None and self.response_size > self.stream_limit:
            self._start_streamed_response()

    def _queue(self, data: bytes, ack: Optional[Callable[[], None]] = None) -> None:
        if data:
            self.out.chunks.append(data)
            self.out.size += len(data)
        if ack is None and isinstance(self.upstream, UpstreamProtocol):
            # An HTTP/1 server has no window: hold its reads instead.
            if self.out.size > _HIGH_WATER and not self._held and self.upstream.gate is not None:
                self._held = True
                self.upstream.gate.hold()
        if ack is not None:
            # Acknowledge upstream data once it is on its way to the client.
            if self.out.size <= _HIGH_WATER:
                ack()
            else:
                self._acks.append(ack)

    def pump(self) -> None:
        """
        Send queued response data as the client's windows allow.
        """
        if self.finished and not self.out.chunks and not self.out.end:
            return
        if self.layer.write_paused:
            return
        conn = self.layer.conn
        try:
            done = _pump(conn, self.stream_id, self.out)
        except H2Error:
            return
        if self._held and self.out.size <= _HIGH_WATER:
            self._held = False
            self.upstream.gate.release()
        if self._acks and self.out.size <= _HIGH_WATER:
            acks, self._acks = self._acks, []
            for ack in acks:
                ack()
        self.layer.flush()
        if done and self.finished:
            self._response_sent = True
            self._done_if_complete()

    def _done_if_complete(self) -> None:
        # A stream is over once its response has gone out and its request
        # has come in (a server may answer before the end of an upload; the
        # rest is still relayed, and request still fires).
        if self._response_sent and self.request_done:
            self.layer.stream_done(self)

    def response_complete(self, keep_alive: bool = True) -> None:
        """
        The server finished its response.
        """
        if self._head_pending:
            self._complete_pending = True
            return
        response = self.flow.response
        response.timestamp_end = time.time()
        if isinstance(self.upstream, UpstreamProtocol):
            # One HTTP/1 connection per translated stream.
            self.upstream.end(self)
            self.upstream.close()
        if self.response_streaming:
            self.finished = True
            self.out.end = True
            self.out.trailers = message_trailers(response)
            self.pump()
            self._trigger_after_finish("response")
            return
        response.load_body(b"".join(self.response_chunks))
        self.response_chunks = []
        self._trigger("response", self._send_buffered_response)

    def _trigger_after_finish(self, event: str) -> None:
        addons = self.master.addons
        if addons.has_hooks(event):
            addons.trigger(event, self.flow)

    def _send_buffered_response(self) -> None:
        flow = self.flow
        if flow.killed:
            return self._kill()
        response = flow.response
        body = response.raw_content or b""
        if flow.request.method == "HEAD" or response.status_code in _BODILESS_STATUS:
            body = b""
        elif _content_length(response.headers) not in (None, len(body)):
            response.headers[b"content-length"] = str(len(body)).encode()
        self.finished = True
        self.response_started = True
        trailers = message_trailers(response)
        conn = self.layer.conn
        try:
            conn.send_headers(
                self.stream_id, h2_response_headers(response), end_stream=not body and not trailers
            )
        except H2Error as e:
            _log.info("{flow}: cannot send the response: {e}", flow=flow, e=e)
            self.layer.stream_done(self)
            return
        if body or trailers:
            self.out.chunks.append(body)
            self.out.size += len(body)
            self.out.end = True
            self.out.trailers = trailers
            self.pump()
        else:
            self.layer.flush()
            self.layer.stream_done(self)

    # -- failures ---------------------------------------------------------

    def fail(self, message: str, status: int = 502) -> None:
        """
        The exchange failed upstream: fire C{error}; answer 502/504, or reset
        the stream if the response had started.
        """
        self._answer_error(status, message)

    def _client_error(self, status: int, detail: str) -> None:
        """
        The client's request cannot be served (e.g. too large).
        """
        self._answer_error(status, detail)

    def _answer_error(self, status: int, detail: str) -> None:
        """
        Record the error on the flow, fire C{error}, then answer the stream
        with C{status} (or reset it if the response had started).
        """
        if self.finished:
            return
        self.finished = True
        self.flow.error = Error(detail)
        self._drop_upstream()
        started = self.response_started

        def answer(_: Any) -> None:
            layer = self.layer
            if layer.closing:
                return
            try:
                if started:
                    layer.conn.reset_stream(self.stream_id, ErrorCodes.INTERNAL_ERROR)
                else:
                    response = error_response(status, _reason_phrase(status), detail)
                    layer.conn.send_headers(self.stream_id, h2_response_headers(response))
                    layer.conn.send_data(self.stream_id, response.raw_content, end_stream=True)
            except H2Error:
                pass
            layer.flush()
            layer.stream_done(self)

        self._fire_error().addCallback(answer)

    def client_timed_out(self, silence: float) -> None:
        """
        The client sent nothing on this stream for C{silence} seconds in
        the middle of its request: answer 408 (or, when the response has
        already been sent, give up the rest of the request).
        """
        if self.finished:
            _log.info("{flow}: the client sent nothing more of its request for {silence:.1f} s "
                      "after the response; stream reset", flow=self.flow, silence=silence)
            self._drop_upstream()
            try:
                self.layer.conn.reset_stream(self.stream_id, ErrorCodes.CANCEL)
            except H2Error:
                pass
            self.layer.stream_done(self)
            return
        self._answer_error(
            408, f"The client sent nothing for {silence:.1f} s while sending a request."
        )

    def client_failed(self, message: str) -> None:
        """
        The client reset the stream or went away.
        """
        if self.finished:
            return
        self.finished = True
        self.flow.error = Error(message)
        self._drop_upstream()
        self._fire_error()

    def _drop_upstream(self) -> None:
        # The server's window gets back what was held for the client: it
        # will never be sent now (else the upstream connection's window
        # shrinks for good with every such stream).
        acks, self._acks = self._acks, []
        for ack in acks:
            ack()
        upstream = self.upstream
        if isinstance(upstream, H2Upstream):
            upstream.reset(self)
        elif upstream is not None:
            upstream.end(self, broken=True)

    def _kill(self) -> None:
        self.finished = True
        self._drop_upstream()
        try:
            self.layer.conn.reset_stream(self.stream_id, ErrorCodes.CANCEL)
        except H2Error:
            pass
        self.layer.flush()
        self.layer.stream_done(self)
        self._fire_error()

    # the HTTP/1 upstream's stream interface
    def switch_protocols(self, after: list) -> None:
        """
        HTTP/2 streams cannot switch protocols.
        """
        self.fail("the server switched protocols on an HTTP/2 stream", 502)


class _UpStream:
    """
    One stream of an L{H2Upstream}: its request, waiting for a stream id
    while the server's concurrency limit is reached, then its output.
    """

    __slots__ = ("stream", "headers", "sid", "out", "acks", "unacked", "sent_end", "response_done")

    def __init__(self, stream: Any, headers: list) -> None:
        self.stream = stream
        self.headers = headers
        self.sid: Optional[int] = None
        self.out = _Output()
        self.acks: list[Callable[[], None]] = []
        # Response bytes the client has not taken yet (the server's window
        # stays closed by that much).
        self.unacked = 0
        # Whether the request's end went out, and the response's came in.
        self.sent_end = False
        self.response_done = False


@implementer(IHandshakeListener)
class H2Upstream(Protocol):
    """
    An HTTP/2 connection to the server, multiplexing the streams of one
    client connection (its owner is an L{Http2Layer}, or an HTTP/1 layer
    when translating).  Requests beyond the server's
    C{SETTINGS_MAX_CONCURRENT_STREAMS} wait for a stream to finish.
    """

    multiplexed = True
    """Many exchanges share the connection."""
    stream = None
    """HTTP/2 is never busy with a single exchange."""

    def __init__(self, layer: Any, server_conn: ServerConnection) -> None:
        self.layer = layer
        self.master = layer.master
        self.server_conn = server_conn
        self.address = server_conn.address
        self.conn = H2Connection(config=_h2_config(True))
        self.streams: dict[int, _UpStream] = {}
        self.by_stream: dict[Any, _UpStream] = {}
        self.waiting: deque[_UpStream] = deque()
        self.usable = True
        self.gate: Optional[ReadGate] = None
        # With an HTTP/1 client (translation): acknowledgements wait while
        # the client's write buffer is full.
        self._valve: Optional[AckValve] = None
        self.silence = SilenceWatch(
            self.master.reactor,
            self.master.options.read_timeout / 4,
            self._stream_limit,
            self._stream_silent,
        )

    def begin(self, stream: Any) -> None:
        """
        An HTTP/1 client's request is about to be sent (streams are opened
        by L{send_request}): pace the server by that client's transport.
        """
        transport = getattr(self.layer, "transport", None)
        if self._valve is None and transport is not None:
            try:
                self._valve = AckValve(transport)
            except RuntimeError:
                # (Another producer still paces that transport: the windows
                # then open as data arrives, unpaced.)
                _log.info("{server}: HTTP/2 upstream not paced by its HTTP/1 client",
                          server=self.address)

    def unpair(self) -> None:
        """
        Stop pacing the server by the HTTP/1 client's transport.
        """
        valve, self._valve = self._valve, None
        if valve is not None:
            valve.detach()

    def end(self, stream: Any, broken: bool = False) -> None:
        """
        C{stream} is done; a broken exchange resets its upstream stream.
        """
        up = self.by_stream.get(stream)
        if up is None:
            return
        if broken or not up.sent_end:
            # (An exchange over before its request went out whole: the
            # server's stream must not stay half open.)
            self.reset(stream)
        else:
            self._forget(up)

    def want_raw_body(self) -> None:
        """
        HTTP/2 bodies come in frames; nothing to switch.
        """

    def connectionMade(self) -> None:
        """
        Send the preface and our settings (no server push).
        """
        self.conn.initiate_connection()
        _settings(self.conn, client=True)
        self.flush()

    def flush(self) -> None:
        """
        Send what h2 has queued.
        """
        data = self.conn.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    # -- requests ---------------------------------------------------------

    def send_request(self, stream: Any, request: Request, body: bytes, end: bool) -> None:
        """
        Send C{stream}'s request (its body so far, and its end if C{end}).
        """
        up = _UpStream(stream, h2_request_headers(request))
        if body:
            up.out.chunks.append(body)
            up.out.size = len(body)
        if end:
            up.out.end = True
            up.out.trailers = message_trailers(request)
        self.by_stream[stream] = up
        self.waiting.append(up)
        self._open_waiting()
        self.flush()

    def _open_waiting(self) -> None:
        conn = self.conn
        while self.waiting and conn.open_outbound_streams < conn.remote_settings.max_concurrent_streams:
            up = self.waiting.popleft()
            sid = up.sid = conn.get_next_available_stream_id()
            self.streams[sid] = up
            out = up.out
            only_headers = out.end and not out.chunks and not out.trailers
            conn.send_headers(sid, up.headers, end_stream=only_headers)
            if only_headers:
                out.end = False
                up.sent_end = True
            self.silence.touch(up)
            self._pump(up)

    def _pump(self, up: _UpStream) -> None:
        if up.sid is None:
            return
        out = up.out
        before = (out.size, out.end)
        try:
            ended = _pump(self.conn, up.sid, out)
        except H2Error:
            return
        if (out.size, out.end) != before:
            # The server took request data: progress on this stream.
            self.silence.touch(up)
        if ended:
            up.sent_end = True
            if up.response_done:
                self._forget(up)
        if up.acks and up.out.size <= _HIGH_WATER:
            acks, up.acks = up.acks, []
            for ack in acks:
                ack()

    def send_data(self, stream: Any, data: bytes, ack: Optional[Callable[[], None]]) -> None:
        """
        Send request data; C{ack} (letting the client send more) runs once
        little enough is waiting here for the server's window.
        """
        up = self.by_stream.get(stream)
        if up is None:
            if ack is not None:
                ack()
            return
        if data:
            up.out.chunks.append(data)
            up.out.size += len(data)
        if ack is not None:
            up.acks.append(ack)
        self._pump(up)
        self.flush()

    def end_request(self, stream: Any, trailers: Optional[list] = None) -> None:
        """
        The request body is complete (with C{trailers}, if any).
        """
        up = self.by_stream.get(stream)
        if up is None:
            return
        up.out.end = True
        up.out.trailers = trailers
        self._pump(up)
        self.flush()

    def reset(self, stream: Any) -> None:
        """
        Cancel C{stream}'s upstream stream.
        """
        up = self.by_stream.get(stream)
        if up is None:
            return
        self._forget(up)
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
            self._fail_all(f"HTTP/2 protocol error from the server: {e}")
            self.transport.loseConnection()
            return
        for event in events:
            try:
                self._handle(event)
            except Exception:
                _log.failure("Error handling an HTTP/2 event from the server: {event}", event=event)
                sid = getattr(event, "stream_id", None)
                up = self.streams.get(sid) if sid else None
                if up is not None:
                    self._forget(up)
                    up.stream.fail("internal error while handling the server's response", 502)
        self._open_waiting()
        self.flush()

    def _handle(self, event: Any) -> None:
        sid = getattr(event, "stream_id", None)
        up = self.streams.get(sid) if sid else None
        if up is not None:
            self.silence.touch(up)
        if isinstance(event, ResponseReceived):
            up = self.streams.get(event.stream_id)
            if up is not None:
                up.stream.response_head(response_from_h2(event.headers))
                if event.stream_ended is not None:
                    self._ended(event.stream_id)
        elif isinstance(event, DataReceived):
            up = self.streams.get(event.stream_id)
            amount, sid = event.flow_controlled_length, event.stream_id
            if up is None:
                self.conn.acknowledge_received_data(amount, sid)
                return
            up.unacked += amount
            up.stream.response_body(event.data, lambda: self._ack(amount, up))
        elif isinstance(event, TrailersReceived):
            up = self.streams.get(event.stream_id)
            if up is not None and up.stream.flow.response is not None:
                up.stream.flow.response.trailers = Headers(list(event.headers))
            if event.stream_ended is not None:
                self._ended(event.stream_id)
        elif isinstance(event, StreamEnded):
            self._ended(event.stream_id)
        elif isinstance(event, StreamReset):
            up = self.streams.get(event.stream_id)
            if up is not None:
                self._forget(up)
                up.stream.fail(f"the server reset the stream (error code {event.error_code!r})", 502)
        elif isinstance(event, PushedStreamReceived):
            self.conn.reset_stream(event.pushed_stream_id, ErrorCodes.REFUSED_STREAM)
        elif isinstance(event, WindowUpdated):
            for sid, up in list(self.streams.items()):
                if event.stream_id in (0, sid):
                    self._pump(up)
        elif isinstance(event, RemoteSettingsChanged):
            for up in list(self.streams.values()):
                self._pump(up)
        elif isinstance(event, ConnectionTerminated):
            self.usable = False
            self.connected = 0
            self._fail_all(
                f"the server ended the connection (GOAWAY, {event.error_code!r})",
                after=event.last_stream_id,
            )

    def _ack(self, amount: int, up: _UpStream) -> None:
        if self._valve is not None:
            self._valve.run(lambda: self._ack_now(amount, up))
        else:
            self._ack_now(amount, up)

    def _ack_now(self, amount: int, up: _UpStream) -> None:
        up.unacked -= amount
        try:
            self.conn.acknowledge_received_data(amount, up.sid)
        except H2Error:
            return
        self.flush()

    def _ended(self, sid: int) -> None:
        up = self.streams.get(sid)
        if up is None:
            return
        if up.sent_end:
            self._forget(up)
        else:
            # Answered before the end of the request: the rest of it still
            # goes to the server, then the stream is done.
            up.response_done = True
            self.silence.forget(up)
        up.stream.response_complete(True)

    def _forget(self, up: _UpStream) -> None:
        # The exchange on this stream is over, whichever way it ended.
        self.by_stream.pop(up.stream, None)
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

    def _stream_limit(self, up: _UpStream) -> Optional[float]:
        # Not counted while the client has not taken what the server sent.
        if up.unacked > 0 or up.response_done:
            return None
        return self.master.options.read_timeout

    def _stream_silent(self, up: _UpStream, silence: float) -> None:
        host, port = self.address
        up.stream.fail(
            f"{host}:{port} sent nothing on the stream for {silence:.1f} s (read timeout)", 504
        )
        self.flush()

    def _fail_all(self, message: str, after: int = -1) -> None:
        for sid, up in list(self.streams.items()):
            if sid > after:
                self._forget(up)
                up.stream.fail(message, 502)
        for up in list(self.waiting):
            self._forget(up)
            up.stream.fail(message, 502)

    # -- life cycle -------------------------------------------------------

    def close(self) -> None:
        """
        Close the connection (GOAWAY first).
        """
        self.usable = False
        self.connected = 0
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
        self.unpair()
        if self.transport is not None:
            self.transport.abortConnection()

    def connectionLost(self, reason: Failure = None) -> None:
        """
        The server connection closed: fail the streams still open.
        """
        self.usable = False
        self.connected = 0
        self.unpair()
        self.silence.stop()
        self.server_conn.timestamp_end = time.time()
        self._fail_all(
            f"{self.server_conn.address[0]}:{self.server_conn.address[1]} closed the connection"
        )
        if getattr(self.layer, "upstream_h2", None) is self:
            self.layer.upstream_h2 = None
        if getattr(self.layer, "upstream", None) is self:
            self.layer.upstream = None
        self.master.addons.trigger("serverdisconnect", self.server_conn)


def switch_to_h2(upstream: UpstreamProtocol, owner: Any) -> H2Upstream:
    """
    An upstream TLS connection negotiated h2: it now carries an
    L{H2Upstream} (owned by C{owner}) instead of the HTTP/1 protocol.
    """
    h2_upstream = H2Upstream(owner, upstream.server_conn)
    upstream.watchdog.stop()
    tls_transport = upstream.transport
    tls_transport.wrappedProtocol = h2_upstream
    h2_upstream.makeConnection(tls_transport)
    return h2_upstream
