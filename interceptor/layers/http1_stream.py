# -*- test-case-name: tests.e2e.test_http1,tests.e2e.test_events,tests.e2e.test_streaming -*-
"""
One request/response exchange on an HTTP/1 client connection, and the flow
addons see for it: L{Http1Stream} runs C{requestheaders}, C{request},
C{responseheaders}, C{response} (or C{error}) in order, buffering or
streaming each body, answering early when an addon sets a response, and
sending the request through an HTTP/1 or HTTP/2 upstream connection.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from twisted.logger import Logger
from twisted.python.failure import Failure

from interceptor.model.flow import Error, HTTPFlow
from interceptor.model.http import Response
from interceptor.layers.exchange import Exchange, wants_streaming
from interceptor.layers.http1_framing import (
    _BODILESS_STATUS,
    _BULK_THRESHOLD,
    _BodyWriter,
    _content_length,
    _Framing,
    _head_bytes,
    _prepare_buffered,
    _prepare_streamed,
    _size_option,
    _wants_close,
    _write_message,
    drop_length_if_transformed,
    error_response,
    message_trailers,
)
from interceptor.layers.http1_upstream import UpstreamProtocol
from interceptor.layers.websocket import (
    WebSocketLayer,
    is_websocket_upgrade,
    supported_offers,
)

if TYPE_CHECKING:
    from interceptor.layers.http1 import Http1Layer

__all__ = ["Http1Stream"]

_log = Logger(namespace="interceptor.http1")


class Http1Stream(Exchange):
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
        self.announced = False
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
        self._rejection: Optional[tuple[int, str, str]] = None
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
        if self._rejection is not None:
            self._client_error(*self._rejection)
            return
        self.announced = True
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
        if self.flow.error is not None:
            # No event follows error.
            return
        addons = self.master.addons
        if not addons.has_hooks(event):
            then()
            return
        d = addons.trigger(event, self.flow)
        if d.called:
            d.addCallback(lambda _: None if self.finished else then())
            return
        if hold is not None:
            hold.hold()
        self._running = d

        def resume(_: Any) -> None:
            self._running = None
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
        if self._rejection is not None:
            return
        limit = self.body_limit
        if limit is not None and self.request_size > limit:
            self._client_error(413, "Payload Too Large", f"The request body exceeds {limit} bytes.")
            return
        self.request_chunks.append(data)
        stream_limit = self.stream_limit
        if (
            stream_limit is not None
            and self.request_size > stream_limit
            and self._waiting_for_body == self._request_read
        ):
            # A body without a Content-Length grew past stream_large_bodies.
            self._waiting_for_body = None
            self.flow.request.stream = True
            self._stream_request()

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
            if self._awaits_continue():
                # The client sends its body only after a 100 Continue: answer
                # now (the connection closes after it; a body that still
                # comes is not read).
                return self._send_early_response()
            return self._when_request_read(self._send_early_response)
        length = _content_length(request.headers)
        limit = self.body_limit
        if limit is not None and length is not None and length > limit:
            return self._client_error(
                413, "Payload Too Large", f"The request body ({length} bytes) exceeds {limit} bytes."
            )
        if self._awaits_continue():
            del request.headers[b"expect"]
            self.layer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if wants_streaming(request, length, self.stream_limit):
            return self._stream_request()
        self._when_request_read(self._request_read)

    def _awaits_continue(self) -> bool:
        # RFC 9110 10.1.1: an HTTP/1.0 request's expectation is ignored.
        request = self.flow.request
        expect = request.headers.get(b"expect")
        return (
            expect is not None
            and expect.lower() == b"100-continue"
            and request.http_version == "HTTP/1.1"
            and not self.request_done
        )

    def _send_early_response(self) -> None:
        self._early_response = True
        self.response_started = True
        self._trigger("response", self._write_buffered_response)

    def _stream_request(self) -> None:
        self.layer.gate.hold()
        self._connect(self._start_streamed_request)

    def _start_streamed_request(self, upstream: "UpstreamProtocol") -> None:
        request = self.flow.request
        transform = request.stream if callable(request.stream) else None
        if upstream.multiplexed:
            drop_length_if_transformed(request)
            upstream.send_request(self, request, b"", end=False)
            self.request_writer = _BodyWriter(
                lambda data: self._send_to_h2(upstream, data), _Framing.LENGTH, transform
            )
        else:
            framing = _prepare_streamed(request, True, transform is not None)
            line = self._request_line()
            if framing == _Framing.CHUNKED and request.http_version == "HTTP/1.0":
                # HTTP/1.0 has no chunked framing and a request body cannot be
                # close-delimited: this hop speaks HTTP/1.1.
                line = line.rsplit(" ", 1)[0] + " HTTP/1.1"
            upstream.write(_head_bytes(line, request.headers))
            self.request_writer = _BodyWriter(upstream.write_body, framing, transform)
        pending, self.request_chunks = self.request_chunks, []
        for data in pending:
            self.request_writer.write(data)
        self.layer.gate.release()
        if self.request_done:
            self._finish_streamed_request()

    def _send_to_h2(self, upstream: Any, data: bytes) -> None:
        # Read no more of the client while the server's window keeps this
        # piece waiting in the proxy.
        gate = self.layer.gate
        state = {"acked": False, "held": False}

        def ack() -> None:
            state["acked"] = True
            if state["held"]:
                gate.release()

        upstream.send_data(self, data, ack)
        if not state["acked"]:
            state["held"] = True
            gate.hold()

    def _finish_streamed_request(self) -> None:
        self.request_writer.finish(self.flow.request.trailers)
        if self.upstream is not None and self.upstream.multiplexed:
            self.upstream.end_request(self, message_trailers(self.flow.request))
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
        _write_message(upstream.write, head, body, framing, request.trailers)

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
        if limit is not None and self.response_size > limit:
            # (More arrived while the hooks ran.)
            return self.fail(f"The response body exceeds {limit} bytes.", 502)
        stream_limit = self.stream_limit
        if wants_streaming(response, length, stream_limit) or (
            stream_limit is not None and self.response_size > stream_limit
        ):
            self._start_streamed_response()
        elif length is not None and length >= _BULK_THRESHOLD and not self.upstream.multiplexed:
            # A large buffered body: count it in, in big pieces, past the parser.
            self.upstream.want_raw_body(direct=False)
        complete, self._complete_pending = self._complete_pending, None
        if complete is not None:
            self.response_complete(complete)

    def _bodiless_response(self) -> bool:
        # A response to HEAD, or a status that never has a body.
        status = self.flow.response.status_code
        return (
            self.flow.request.method == "HEAD" or status in _BODILESS_STATUS or 100 <= status < 200
        )

    def _client_chunked_ok(self) -> bool:
        return self.flow.request.http_version == "HTTP/1.1"

    def _start_streamed_response(self) -> None:
        response = self.flow.response
        transform = response.stream if callable(response.stream) else None
        if not response.stream:
            response.stream = True
        framing = (
            _Framing.NONE
            if self._bodiless_response()
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
        reason = response.reason
        try:
            # Read as ISO-8859-1 (as mitmproxy does), so any byte comes back as sent.
            reason_bytes = reason.encode("latin-1")
        except UnicodeEncodeError:
            reason_bytes = reason.encode("utf-8", "surrogateescape")
        first = f"{version} {response.status_code} ".encode("ascii") + reason_bytes
        return first + b"\r\n" + response.headers.to_bytes() + b"\r\n"

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
        # The server's part is over: its closing or silence from now on (while
        # the response hooks run) is no fault of this exchange.
        self.upstream.end(self)
        if self.response_writer is not None:
            self.response_writer.finish(response.trailers)
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
        framing = _prepare_buffered(
            response, body, self._bodiless_response(), self._client_chunked_ok()
        )
        if framing == _Framing.CLOSE:
            self.client_keep_alive = False
        _write_message(self.layer.write, self._response_head(), body, framing, response.trailers)
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

    def asked_to_upgrade(self) -> bool:
        """
        Whether the request asked to switch protocols (an C{Upgrade} header
        with C{Connection: upgrade}); a 101 to anything else is invalid.
        """
        headers = self.flow.request.headers
        connection = headers.get(b"connection") or b""
        return headers.get(b"upgrade") is not None and b"upgrade" in connection.lower()

    def switch_protocols(self, after: list[bytes]) -> None:
        """
        The server answered an Upgrade request with 101: after the
        C{responseheaders} hooks (the server is not read meanwhile), hand
        the rest of the connection to the WebSocket layer (a WebSocket
        upgrade, with the option C{websocket} on), or relay it as raw bytes
        in both directions.  C{after} holds the server's bytes after the 101
        (more are appended until the switch).
        """
        self._trigger("responseheaders", lambda: self._switch(after), self.upstream.gate)

    def _switch(self, after: list[bytes]) -> None:
        if self.flow.killed:
            return self._kill()
        rest = b"".join(after)
        if not self.upstream.connected:
            if not rest:
                return self.fail("the server closed the connection after its 101", 502)
            # It sent its last bytes and closed while the hooks ran: the
            # client still gets the switch and those bytes, then the close.
            self.finished = True
            self.layer.write(self._response_head() + rest)
            self.layer.close()
            self.master.addons.trigger("response", self.flow)
            return
        response = self.flow.response
        response.timestamp_end = time.time()
        self.layer.write(self._response_head())
        upstream, layer = self.upstream, self.layer
        self.finished = True
        # Requests pipelined behind the upgrade will never be answered.
        for other in list(layer.streams):
            if other is not self:
                if other.holding_client:
                    other.holding_client = False
                    layer.gate.release()
                other.client_failed("the connection switched protocols before this request")
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
        # (Not _trigger: the exchange is over, but its response event is due.)
        self.master.addons.trigger("response", self.flow)

    # -- failures ---------------------------------------------------------

    def fail(self, message: str, status: int = 502) -> None:
        """
        The exchange failed upstream: fire C{error}, and answer the client
        with a 502/504 saying why (or drop it if the response had started).
        """
        if self.finished:
            return
        _log.info("{client}: {url}: {detail}", client=self.flow.client_conn.address,
                  url=self.flow.request.url, detail=message)
        reason = "Gateway Timeout" if status == 504 else "Bad Gateway"
        self._answer_error(status, reason, message)

    def _client_error(self, status: int, reason: str, detail: str) -> None:
        """
        The client's request cannot be served (e.g. too large).  Behind
        another exchange (pipelined), the answer waits for its turn.
        """
        if self.finished:
            return
        streams = self.layer.streams
        if streams and streams[0] is not self:
            self._rejection = (status, reason, detail)
            return
        self._answer_error(status, reason, detail)

    def _answer_error(self, status: int, reason: str, detail: str) -> None:
        """
        Record the error on the flow, fire C{error}, then answer the client
        with C{status} (or drop the connection if the response had started)
        and close it.
        """
        self.finished = True
        self.flow.error = Error(detail)
        if self.upstream is not None:
            self.upstream.end(self, broken=True)
        layer = self.layer
        started = self.response_started

        def answer(_: Any) -> None:
            if started or layer.closing:
                layer.abort()
                return
            layer.write_response_head_and_body(error_response(status, reason, detail))
            layer.stream_finished(self, keep_alive=False)

        self._fire_error().addCallback(answer)

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
        self._fire_error()

    def _kill(self) -> None:
        """
        An addon killed the flow: drop both connections, fire C{error}.
        """
        self.finished = True
        if self.upstream is not None:
            self.upstream.end(self, broken=True)
        self.layer.abort()
        self._fire_error()


