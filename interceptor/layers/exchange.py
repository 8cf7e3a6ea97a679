# -*- test-case-name: tests.e2e.test_exchange_pairs,tests.test_exchange -*-
"""
One HTTP request/response exchange, whatever the framing on either side.

L{HttpExchange} is the state machine every HTTP flow runs through: it fires
C{websocket_handshake}, C{requestheaders}, C{request}, C{responseheaders},
C{response} or C{error}, decides whether each body is buffered or streamed,
enforces C{body_size_limit} and C{stream_large_bodies}, answers with a
response an addon set, kills, and fails.  It is fed neutral events by the
two framings that carry it and answers with neutral commands:

    client framing                    HttpExchange                     server framing
    (HTTP/1 request or HTTP/2 stream) (this module)                    (HTTP/1 connection or HTTP/2 stream)
    start, request_data, request_end ->            -> send_request[_head], send_request_data, end_request
    client_failed, client_error                   <- response_head, response_data, response_end,
    <- send_response[_head], send_response_data,      fail, switch_protocols
       end_response, send_error, kill, finished

Each side is described by an interface in L{interceptor.layers.contracts}
(L{IClientSide}, L{IServerSide}).  Each rule exists here once, so HTTP/1 and
HTTP/2 on either side behave the same.

Its states are L{interceptor.layers.exchange_states}; what it uses of its
client side, and in its place once over, L{interceptor.layers.exchange_client}.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Optional, cast

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from interceptor.model.flow import Error, HTTPFlow
from interceptor.model.http import Response
from interceptor.model.validate import request_problem, response_problem
from interceptor.layers.body_buffer import BodyBuffer
from interceptor.layers.contracts import IClientSide, IServerSide
from interceptor.core.options import parse_size
from interceptor.layers.exchange_client import CLIENT_GONE, ClientReads, HoldUntilTaken
from interceptor.layers.exchange_states import RequestState, ResponseState, wants_streaming
from interceptor.transport.loops import ProxyLoopError
from interceptor.layers.http1_framing import _BULK_THRESHOLD, _content_length, transformed
from interceptor.layers.websocket_handshake import is_websocket_upgrade, supported_offers

if TYPE_CHECKING:
    from interceptor.core.master import Master

__all__ = ["HttpExchange", "RequestState", "ResponseState", "wants_streaming"]

_log = Logger(namespace="interceptor.http")


_CLIENT = object()
"""What C{_trigger} holds to hold the client's reads."""


class HttpExchange:
    """
    One HTTP exchange and the flow addons see for it.

    @ivar client: The L{IClientSide} carrying the request.
    @ivar server: The L{IServerSide} carrying it to the server, once
        connected and until the server's part is over.
    @ivar announced: Whether addons have seen this flow (its first event
        fired); a request refused before its turn fires nothing.
    """

    def __init__(self, master: Master, flow: HTTPFlow, client: IClientSide) -> None:
        self.master = master
        self.flow = flow
        self.client: IClientSide = client
        self.server: Optional[IServerSide] = None
        options = master.options
        # (The options reject a size that does not parse when it is set.)
        self.body_limit = parse_size(options.body_size_limit)
        self.stream_limit = parse_size(options.stream_large_bodies)
        self.request_state = RequestState.HEADERS
        self.response_state = ResponseState.WAITING
        self.request_chunks = BodyBuffer()
        self.request_size = 0
        self.request_complete = False
        self.response_chunks = BodyBuffer()
        self.response_size = 0
        self.response_started = False
        self.announced = False
        self.early_response = False
        self.websocket = False
        self._rejection: Optional[tuple[int, str, str]] = None
        self._after_read: Optional[Callable[[], None]] = None
        self._end_pending = False
        # Hooks still running for this flow (a streamed request's request
        # hooks may run beside the response's).
        self._running: list[Deferred[Any]] = []

    def __repr__(self) -> str:
        return f"<HttpExchange {self.request_state.value}/{self.response_state.value} {self.flow!r}>"

    @property
    def over(self) -> bool:
        """
        Whether the exchange is over (nothing more is sent for it).
        """
        return self.response_state is ResponseState.DONE

    # -- hooks ------------------------------------------------------------

    def _trigger(self, event: str, then: Callable[[], None], hold: Any = None) -> None:
        """
        Fire C{event}; call C{then} once its hooks are done (unless the
        exchange ended meanwhile), holding C{hold} (a read gate, or
        C{_CLIENT} for the client's reads) while they take time.
        """
        if self.flow.error is not None:
            # No event follows error.
            return
        addons = self.master.addons
        if not addons.has_hooks(event):
            then()
            return
        d = addons.run(event, self.flow)
        if d is None or d.called:
            # Every hook is done (the Deferred never fails): go on at once.
            self._resume(then)
            return
        if hold is _CLIENT:
            # (Made only when a hook takes time: most exchanges never hold.)
            hold = ClientReads(self.client)
        if hold is not None:
            hold.hold()
        running = self._running
        running.append(d)

        def resume(_: Any) -> None:
            running.remove(d)
            if hold is not None:
                hold.release()
            # (The exchange may end, and let go of its client, in then().)
            client = self.client
            self._resume(then)
            client.flush()
            self._let_go_if_over()

        d.addCallback(resume)
        d.addErrback(lambda f: _log.failure("Error while handling {flow}", f, flow=self.flow))

    def _resume(self, then: Callable[[], None]) -> None:
        if self.response_state is _DONE:
            return
        try:
            then()
        except Exception:
            _log.failure("Error while handling {flow}", flow=self.flow)
            self.fail("internal error in the proxy", 502)

    def _fire_error(self) -> Deferred[Any]:
        """
        Fire C{error} once hooks still running for the flow are done, so
        that no addon sees an event after C{error}.
        """
        trigger = self.master.addons.trigger
        if not self.announced:
            return succeed(None)
        running = self._running
        if not running:
            return trigger("error", self.flow)
        fired: Deferred[Any] = Deferred()

        def after(_: Any) -> None:
            trigger("error", self.flow).chainDeferred(fired)

        DeferredList(list(running), consumeErrors=True).addBoth(after)
        return fired

    # -- the request ------------------------------------------------------

    def start(self) -> None:
        """
        The request head is here and it is this exchange's turn: run the
        request hooks (C{websocket_handshake} first for a WebSocket
        upgrade).
        """
        if self._rejection is not None:
            self._answer_error(*self._rejection)
            return
        self.announced = True
        request = self.flow.request
        if (
            self.client.can_upgrade
            and request.method == "GET"
            and self.master.options.websocket
            and is_websocket_upgrade(request.headers)
        ):
            self._trigger("websocket_handshake", self._after_websocket_handshake)
            return
        # The client's reads are held while requestheaders hooks take time:
        # a body that should be streamed is not read into memory meanwhile.
        self._trigger("requestheaders", self._after_requestheaders, _CLIENT)

    def _after_websocket_handshake(self) -> None:
        if self.flow.killed:
            return self._kill()
        self.websocket = True
        headers = self.flow.request.headers
        offers = headers.get("sec-websocket-extensions")
        if offers is not None:
            # Only extensions the WebSocket layer can relay may be agreed on.
            del headers["sec-websocket-extensions"]
            kept = supported_offers(offers)
            if kept:
                headers["Sec-WebSocket-Extensions"] = kept
        self._trigger("requestheaders", self._after_requestheaders, _CLIENT)

    def _after_requestheaders(self) -> None:
        flow = self.flow
        request = flow.request
        if flow.killed:
            return self._kill()
        if flow.response is not None:
            self.request_state = RequestState.ANSWERED
            if self._awaits_continue():
                # The client sends its body only after a 100 Continue: answer
                # now (the connection closes after it).
                return self._send_early_response()
            return self._when_request_read(self._send_early_response)
        length = _content_length(request.headers)
        limit = self.body_limit
        if limit is not None and length is not None and length > limit:
            return self.client_error(
                413, "Payload Too Large", f"The request body ({length} bytes) exceeds {limit} bytes."
            )
        if self._awaits_continue():
            del request.headers[b"expect"]
            self.client.send_continue()
        if wants_streaming(request, length, self.stream_limit):
            return self._stream_request()
        self.request_state = RequestState.READING
        self._when_request_read(self._request_read)

    def _awaits_continue(self) -> bool:
        # RFC 9110 10.1.1: an HTTP/1.0 request's expectation is ignored.
        request = self.flow.request
        expect = request.headers.get(b"expect")
        return (
            expect is not None
            and expect.lower() == b"100-continue"
            and request.http_version == "HTTP/1.1"
            and not self.request_complete
        )

    def _when_request_read(self, then: Callable[[], None]) -> None:
        if self.request_complete:
            then()
        else:
            self._after_read = then

    def _request_read(self) -> None:
        # The buffered request is complete: store its body, fire request.
        self.flow.request.load_body(self.request_chunks.take())
        self.request_state = RequestState.HOOKS
        self._trigger("request", self._after_request)

    def _after_request(self) -> None:
        flow = self.flow
        if flow.killed:
            return self._kill()
        if flow.response is not None:
            self.request_state = RequestState.ANSWERED
            return self._send_early_response()
        self.request_state = RequestState.CONNECTING
        self._connect(self._send_buffered_request)

    def _send_buffered_request(self, server: IServerSide) -> None:
        self.request_state = RequestState.SENT
        request = self.flow.request
        server.send_request(request, request.raw_content or b"")

    def _stream_request(self) -> None:
        self.request_state = RequestState.CONNECTING
        self.client.hold_reads()
        self._connect(self._start_streamed_request)

    def _start_streamed_request(self, server: IServerSide) -> None:
        self.request_state = RequestState.STREAMING
        server.send_request_head(self.flow.request)
        pending = self.request_chunks.pieces()
        for data in pending:
            self._forward_request(data, None)
        self.client.release_reads()
        if self.request_complete:
            self._finish_streamed_request()

    def _forward_request(self, data: bytes, ack: Optional[Callable[[], None]]) -> None:
        server = self.server
        if server is None:
            # The server answered and let go before the end of the upload
            # (an HTTP/1 server): the rest has nowhere to go.
            if ack is not None:
                ack()
            return
        transform = self.flow.request.stream
        if callable(transform):
            data = transformed(transform, data)
        if ack is not None:
            server.send_request_data(data, ack)
            return
        hold = HoldUntilTaken(self.client)
        server.send_request_data(data, hold)
        hold.sent()

    def _finish_streamed_request(self) -> None:
        self.request_state = RequestState.SENT
        if self.server is not None:
            self.server.end_request(self.flow.request)
            if self.response_state is _DONE:
                self._release_server(False)
        self._trigger("request", self._after_streamed_request)
        self._let_go_if_over()

    def _after_streamed_request(self) -> None:
        if self.flow.killed:
            self._kill()

    def request_data(self, data: bytes, ack: Optional[Callable[[], None]] = None) -> None:
        """
        A piece of the request body arrived; C{ack} (HTTP/2: opening the
        client's window again) runs once it is buffered or has gone on.
        """
        self.request_size += len(data)
        state = self.request_state
        if state is RequestState.STREAMING:
            self._forward_request(data, ack)
            return
        if ack is not None:
            ack()
        if (
            self._rejection is not None
            or self.response_state is _DONE
            or state is RequestState.ANSWERED
        ):
            # (An answered request's body is read only to be dropped.)
            return
        limit = self.body_limit
        if limit is not None and self.request_size > limit:
            self.client_error(413, "Payload Too Large", f"The request body exceeds {limit} bytes.")
            return
        self.request_chunks.append(data)
        stream_limit = self.stream_limit
        if (
            stream_limit is not None
            and self.request_size > stream_limit
            and state is RequestState.READING
            and self._after_read == self._request_read
        ):
            # A body without a Content-Length grew past stream_large_bodies.
            self._after_read = None
            self.flow.request.stream = True
            self._stream_request()

    def request_end(self) -> None:
        """
        The whole request has arrived (its trailers are on the request).
        """
        self.request_complete = True
        self.flow.request.timestamp_end = time.time()
        if self.request_state is RequestState.STREAMING:
            self._finish_streamed_request()
        then, self._after_read = self._after_read, None
        if then is not None:
            then()

    # -- the server -------------------------------------------------------

    def _connect(self, then: Callable[[IServerSide], None]) -> None:
        request = self.flow.request
        problem = request_problem(request)
        if problem is not None:
            return self.fail(f"The request cannot be sent as the addons left it: {problem}", 502)
        idle = self.client.idle_server(request)
        if idle is not None:
            # (A keep-alive connection to the same server: no Deferred.)
            return self._connected(idle, then)
        d = self.client.connect(request)

        def connected(server: Optional[IServerSide]) -> None:
            if server is not None and self.response_state is not _DONE:
                self._connected(server, then)

        def failed(failure: Failure) -> None:
            if self.response_state is _DONE:
                return
            reason = failure.getErrorMessage()
            where = f"{request.host}:{request.port}"
            if failure.check(ProxyLoopError):
                # (Refused before connecting: the proxy would have been its
                # own client, again and again.)
                _log.warn("{client}: 508 Loop Detected: {url}: {detail}",
                          client=self.flow.client_conn.address, url=request.url, detail=reason)
                self._answer_error(508, "Loop Detected", reason)
            elif "timeout" in reason.lower() or "timed out" in reason.lower():
                self.fail(f"Connecting to {where} timed out ({reason})", 504)
            else:
                self.fail(f"Cannot connect to {where}: {reason}", 502)

        d.addCallbacks(connected, failed)

    def _connected(self, server: IServerSide, then: Callable[[IServerSide], None]) -> None:
        self.server = server
        self.flow.server_conn = server.server_conn
        then(server)

    def server_released(self, server: IServerSide) -> None:
        """
        C{server} is done with this exchange (its response is complete
        there): its closing or silence from now on is no fault of the
        exchange, and it owes the exchange nothing more.
        """
        if self.server is server:
            self.server = None

    def _release_server(self, broken: bool) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.done(broken)

    # -- the response -----------------------------------------------------

    def response_head(self, response: Response) -> None:
        """
        The server's response head arrived.
        """
        if self.response_state is _DONE:
            return
        self.flow.response = response
        self.response_state = ResponseState.HEADERS
        self._trigger("responseheaders", self._after_responseheaders, self._server_gate())

    def _server_gate(self) -> Any:
        server = self.server
        return server.read_gate if server is not None else None

    def _after_responseheaders(self) -> None:
        flow = self.flow
        if flow.killed:
            return self._kill()
        response = self._response()
        length = _content_length(response.headers)
        limit = self.body_limit
        if limit is not None and length is not None and length > limit:
            return self.fail(f"The response body ({length} bytes) exceeds {limit} bytes.", 502)
        if limit is not None and self.response_size > limit:
            # (More arrived while the hooks ran.)
            return self.fail(f"The response body exceeds {limit} bytes.", 502)
        self.response_state = ResponseState.READING
        stream_limit = self.stream_limit
        if wants_streaming(response, length, stream_limit) or (
            stream_limit is not None and self.response_size > stream_limit
        ):
            self._start_streamed_response()
        elif length is not None and length >= _BULK_THRESHOLD and self.server is not None:
            # A large buffered body: count it in, in big pieces, past a parser.
            self.server.relay_body(None)
        if self._end_pending:
            self._end_pending = False
            self.response_end()

    def _start_streamed_response(self) -> None:
        response = self._response()
        if self._unsendable(response):
            return
        if not response.stream:
            response.stream = True
        self.response_state = ResponseState.STREAMING
        self.response_started = True
        unchanged = self.client.send_response_head(response)
        pending = self.response_chunks.pieces()
        for data in pending:
            self._forward_response(data, None)
        if unchanged and self.server is not None:
            self.server.relay_body(self.client.direct_transport)

    def _forward_response(self, data: bytes, ack: Optional[Callable[[], None]]) -> None:
        # (Only a response that is streaming gets here: its head arrived.)
        transform = cast(Response, self.flow.response).stream
        if callable(transform):
            data = transformed(transform, data)
        self.client.send_response_data(data, ack)

    def response_data(self, data: bytes, ack: Optional[Callable[[], None]] = None) -> None:
        """
        A piece of the response body arrived; C{ack} (HTTP/2: opening the
        server's window again) runs once it is buffered or has gone on.
        """
        self.response_size += len(data)
        state = self.response_state
        if state is ResponseState.STREAMING:
            self._forward_response(data, ack)
            return
        if ack is not None:
            ack()
        if self.response_state is _DONE:
            return
        self.response_chunks.append(data)
        if state is ResponseState.HEADERS:
            return
        limit = self.body_limit
        if limit is not None and self.response_size > limit:
            return self.fail(f"The response body exceeds {limit} bytes.", 502)
        stream_limit = self.stream_limit
        if stream_limit is not None and self.response_size > stream_limit:
            self._start_streamed_response()

    def response_end(self) -> None:
        """
        The whole response has arrived (its trailers are on the response).
        """
        state = self.response_state
        if state is ResponseState.HEADERS:
            self._end_pending = True
            return
        if self.response_state is _DONE:
            return
        response = self._response()
        response.timestamp_end = time.time()
        if state is ResponseState.STREAMING:
            self.response_state = ResponseState.COMPLETE
            self.client.end_response(response)
            self._trigger("response", self._finish)
            return
        response.load_body(self.response_chunks.take())
        self.response_state = ResponseState.HOOKS
        self._trigger("response", self._send_buffered_response)

    def _send_early_response(self) -> None:
        self.early_response = True
        self.response_state = ResponseState.HOOKS
        self._trigger("response", self._send_buffered_response)

    def _send_buffered_response(self) -> None:
        flow = self.flow
        if flow.killed:
            return self._kill()
        response = self._response()
        if self._unsendable(response):
            return
        self.response_started = True
        self.response_state = ResponseState.COMPLETE
        self.client.send_response(response, self.early_response)
        self._finish()

    def _unsendable(self, response: Response) -> bool:
        # A field an addon set that would split the response on the wire
        # (model/validate.py): the flow fails instead, naming it.
        problem = response_problem(response)
        if problem is None:
            return False
        self.fail(f"The response cannot be sent as the addons left it: {problem}", 502)
        return True

    def _finish(self) -> None:
        if self.response_state is _DONE:
            return
        if self.flow.killed:
            # (Killed in the response hooks of a streamed response: its
            # connection is dropped all the same.)
            return self._kill()
        self.response_state = ResponseState.DONE
        if self.request_state is not RequestState.STREAMING:
            # (A server that answered before the end of an upload still
            # gets the rest of it.)
            self._release_server(False)
        self.client.finished()
        self._let_go_if_over()

    def switch_protocols(self, after: list[bytes]) -> None:
        """
        The server answered an upgrade with 101 (C{flow.response}): after
        the C{responseheaders} hooks (the server is not read meanwhile),
        the client side hands both connections over.  C{after} holds the
        server's bytes after the 101 (more are appended until the switch).
        """
        if self.response_state is _DONE:
            return
        self.response_state = ResponseState.HEADERS
        self._trigger("responseheaders", lambda: self._switch(after), self._server_gate())

    def _switch(self, after: list[bytes]) -> None:
        if self.flow.killed:
            return self._kill()
        self.client.switch_protocols(self._server(), after)

    def switched(self) -> None:
        """
        The client side handed both connections over after a 101: the
        exchange is over (the layer taking over fires C{response}).
        """
        self.response_state = ResponseState.DONE
        self.server = None
        self._let_go_if_over()

    def _let_go_if_over(self) -> None:
        """
        Once the exchange is over both ways and no hook of it runs, let go
        of the client side: the two refer to each other, and that cycle
        per request was left for the garbage collector (twice the
        collections, ~3 % of the proxy's CPU on HTTP/2).  Whatever still
        reaches the exchange finds L{CLIENT_GONE}, which does nothing.
        """
        if (
            self.response_state is _DONE
            and self.request_state is not RequestState.STREAMING
            and not self._running
        ):
            self.client = CLIENT_GONE

    def _response(self) -> Response:
        # The response the exchange is at: the server's (set with its head)
        # or an addon's (set in a hook before the early answer).
        response = self.flow.response
        if response is None:
            raise RuntimeError(f"{self!r} has no response yet")
        return response

    def _server(self) -> IServerSide:
        # The server side answering now (a 101: it stays until the switch).
        server = self.server
        if server is None:
            raise RuntimeError(f"{self!r} has no server side")
        return server

    # -- failures ---------------------------------------------------------

    def fail(self, message: str, status: int = 502) -> None:
        """
        The exchange failed on the server's side: fire C{error}, and answer
        the client with a 502/504 saying why (or break off a response that
        had started).
        """
        if self.response_state in _ENDED:
            return
        _log.debug("{client}: {url}: {detail}", client=self.flow.client_conn.address,
                  url=self.flow.request.url, detail=message)
        reason = "Gateway Timeout" if status == 504 else "Bad Gateway"
        self._answer_error(status, reason, message)

    def client_error(self, status: int, reason: str, detail: str) -> None:
        """
        The client's request cannot be served (too large, too slow, ...).
        Before its turn (pipelined behind another), the answer waits.
        """
        if self.response_state is _DONE:
            return
        if not self.client.in_turn:
            self._rejection = (status, reason, detail)
            return
        self._answer_error(status, reason, detail)

    def _stop_request(self) -> None:
        # Nothing more of the request goes anywhere.
        self._after_read = None
        if self.request_state is not RequestState.SENT:
            self.request_state = RequestState.ANSWERED

    def _answer_error(self, status: int, reason: str, detail: str) -> None:
        self.response_state = ResponseState.DONE
        self._stop_request()
        self.flow.error = Error(detail)
        self._release_server(True)
        self.client.abandon()
        started = self.response_started
        client = self.client
        self._fire_error().addCallback(
            lambda _: client.send_error(status, reason, detail, started)
        )
        self._let_go_if_over()

    def client_failed(self, message: str) -> None:
        """
        The client went away, reset its stream, or broke the protocol.
        """
        if self.response_state in _ENDED:
            return
        self.response_state = ResponseState.DONE
        self._stop_request()
        self.flow.error = Error(message)
        self._release_server(True)
        self.client.abandon()
        self._fire_error()
        self._let_go_if_over()

    def _kill(self) -> None:
        """
        An addon killed the flow: drop both sides, fire C{error}.
        """
        self.response_state = ResponseState.DONE
        self._stop_request()
        self._release_server(True)
        self.client.abandon()
        self.client.kill()
        self._fire_error()
        self._let_go_if_over()


_DONE = ResponseState.DONE
_ENDED = frozenset((ResponseState.COMPLETE, ResponseState.DONE))
