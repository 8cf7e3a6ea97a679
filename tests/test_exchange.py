"""
Tests for L{interceptor.layers.exchange.HttpExchange}, driven in memory.

Each test builds an exchange on a real L{Master} (real L{Options}, real
L{AddonManager}, a L{Clock} for a reactor), with a recording client side
and server side that implement L{IClientSide} and L{IServerSide}, and
addons whose hooks record the events (and may change the flow, or return a
Deferred the test fires).  Everything the exchange does lands on one
timeline, so a test can check what happened in which order: the events
addons saw, and the commands each side received.  Nothing touches a socket.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from interceptor.core.master import Master
from interceptor.core.options import proxy_options
from interceptor.layers.contracts import IClientSide, IServerSide
from interceptor.layers.exchange import (
    HttpExchange,
    RequestState,
    ResponseState,
    wants_streaming,
)
from interceptor.model.connection import ClientConnection, ServerConnection
from interceptor.model.flow import HTTPFlow
from interceptor.model.headers import Headers
from interceptor.model.http import Request, Response

R = RequestState
S = ResponseState


# -- the recording sides --------------------------------------------------


class Timeline(list):
    """
    What happened, in order: C{(who, name, args)} with C{who} one of
    C{"event"} (an addon hook was called, or the Deferred it returned
    fired: C{"<event> done"}), C{"client"}, C{"server"} or C{"gate"}.
    """

    def names(self, who: Optional[str] = None) -> list[str]:
        """
        C{"who.name"} for every entry (of C{who} only, as plain names).
        """
        if who is not None:
            return [name for (w, name, _) in self if w == who]
        return [f"{w}.{name}" for (w, name, _) in self]

    def args(self, who: str, name: str) -> list[tuple]:
        """
        The arguments of every C{who.name} entry, in order.
        """
        return [args for (w, n, args) in self if (w, n) == (who, name)]


class RecordingGate:
    """
    A server's read gate: records C{hold}/C{release}.
    """

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.held = 0

    def hold(self) -> None:
        self.held += 1
        self.timeline.append(("gate", "hold", ()))

    def release(self) -> None:
        self.held -= 1
        self.timeline.append(("gate", "release", ()))


@implementer(IServerSide)
class RecordingServer:
    """
    An L{IServerSide} recording each command.

    @ivar takes_at_once: Whether C{send_request_data} runs its C{ack} at
        once (a server with room); otherwise the acks wait in C{acks}.
    """

    def __init__(self, timeline: Timeline, takes_at_once: bool = True) -> None:
        self.timeline = timeline
        self.server_conn = ServerConnection(("example.com", 80))
        self.read_gate = RecordingGate(timeline)
        self.takes_at_once = takes_at_once
        self.acks: list[Callable[[], None]] = []

    def _record(self, name: str, *args: Any) -> None:
        self.timeline.append(("server", name, args))

    def send_request(self, request: Any, body: bytes) -> None:
        self._record("send_request", request, body)

    def send_request_head(self, request: Any) -> None:
        self._record("send_request_head", request)

    def send_request_data(self, data: bytes, ack: Any) -> None:
        self._record("send_request_data", data, ack)
        if self.takes_at_once:
            ack()
        else:
            self.acks.append(ack)

    def end_request(self, request: Any) -> None:
        self._record("end_request", request)

    def relay_body(self, direct_to: Any) -> None:
        self._record("relay_body", direct_to)

    def done(self, broken: bool) -> None:
        self._record("done", broken)


_NO_ARGUMENT = object()


@implementer(IClientSide)
class RecordingClient:
    """
    An L{IClientSide} recording each command.

    @ivar connecting: The Deferreds C{connect} returned, for the test to fire.
    @ivar head_unchanged: What C{send_response_head} returns.
    """

    def __init__(self, timeline: Timeline, can_upgrade: bool = False, in_turn: bool = True,
                 head_unchanged: bool = False) -> None:
        self.timeline = timeline
        self.can_upgrade = can_upgrade
        self.chunked_ok = True
        self.direct_transport = object()
        self.in_turn = in_turn
        self.head_unchanged = head_unchanged
        self.connecting: list[Deferred] = []

    def _record(self, name: str, *args: Any) -> None:
        self.timeline.append(("client", name, args))

    def idle_server(self, request: Any) -> None:
        return None

    def connect(self, request: Any) -> Deferred:
        self._record("connect", request)
        d: Deferred = Deferred()
        self.connecting.append(d)
        return d

    def hold_reads(self) -> None:
        self._record("hold_reads")

    def release_reads(self) -> None:
        self._record("release_reads")

    def send_continue(self) -> None:
        self._record("send_continue")

    def send_response_head(self, response: Any) -> bool:
        self._record("send_response_head", response)
        return self.head_unchanged

    def send_response_data(self, data: bytes, ack: Any) -> None:
        self._record("send_response_data", data, ack)

    def end_response(self, response: Any) -> None:
        self._record("end_response", response)

    def send_response(self, response: Any, early: bool) -> None:
        self._record("send_response", response, early)

    def send_error(self, status: int, reason: str, detail: str, started: bool) -> None:
        self._record("send_error", status, reason, detail, started)

    def abandon(self) -> None:
        self._record("abandon")

    def kill(self) -> None:
        self._record("kill")

    def switch_protocols(self, server: Any, after: list) -> None:
        self._record("switch_protocols", server, after)

    # The contract says finished(keep_alive); the exchange (and both real
    # client sides) call it without one.  Accepting both keeps this fake
    # within the contract (verifyObject) and records which call was made.
    def finished(self, keep_alive: Any = _NO_ARGUMENT) -> None:
        self._record("finished", *(() if keep_alive is _NO_ARGUMENT else (keep_alive,)))

    def flush(self) -> None:
        self._record("flush")


# -- addons -----------------------------------------------------------------


class Hooks:
    """
    An addon recording every HTTP event on the timeline.  C{actions} maps
    an event name to a callable run with the flow, whose return value the
    hook returns (so a Deferred holds the flow).
    """

    def __init__(self, timeline: Timeline, **actions: Callable[[HTTPFlow], Any]) -> None:
        self.timeline = timeline
        self.actions = actions

    def _event(self, name: str, flow: HTTPFlow) -> Any:
        self.timeline.append(("event", name, (flow,)))
        action = self.actions.get(name)
        if action is not None:
            return action(flow)
        return None

    def websocket_handshake(self, flow: HTTPFlow) -> Any:
        return self._event("websocket_handshake", flow)

    def requestheaders(self, flow: HTTPFlow) -> Any:
        return self._event("requestheaders", flow)

    def request(self, flow: HTTPFlow) -> Any:
        return self._event("request", flow)

    def responseheaders(self, flow: HTTPFlow) -> Any:
        return self._event("responseheaders", flow)

    def response(self, flow: HTTPFlow) -> Any:
        return self._event("response", flow)

    def error(self, flow: HTTPFlow) -> Any:
        return self._event("error", flow)


class Holds:
    """
    A hook action returning a Deferred the test fires with L{fire}; when
    it fires, C{"<event> done"} goes on the timeline.
    """

    def __init__(self, timeline: Timeline, event: str,
                 change: Optional[Callable[[HTTPFlow], None]] = None) -> None:
        self.timeline = timeline
        self.event = event
        self.change = change
        self.waiting: list[tuple[Deferred, HTTPFlow]] = []

    def __call__(self, flow: HTTPFlow) -> Deferred:
        d: Deferred = Deferred()
        self.waiting.append((d, flow))
        return d

    def fire(self) -> None:
        d, flow = self.waiting.pop(0)
        if self.change is not None:
            self.change(flow)
        self.timeline.append(("event", f"{self.event} done", ()))
        d.callback(None)


def kill(flow: HTTPFlow) -> None:
    flow.kill()


def answer(status: int = 200, body: bytes = b"from the addon") -> Callable[[HTTPFlow], None]:
    def set_response(flow: HTTPFlow) -> None:
        flow.response = Response.make(status, body)

    return set_response


def stream_request(value: Any = True) -> Callable[[HTTPFlow], None]:
    def set_stream(flow: HTTPFlow) -> None:
        flow.request.stream = value

    return set_stream


def stream_response(value: Any = True) -> Callable[[HTTPFlow], None]:
    def set_stream(flow: HTTPFlow) -> None:
        flow.response.stream = value

    return set_stream


# -- messages ---------------------------------------------------------------


def make_request(method: str = "POST", headers: Any = (), version: str = "HTTP/1.1") -> Request:
    fields = [(b"Host", b"example.com")] + [
        (name.encode(), value.encode()) for name, value in headers
    ]
    return Request(method, "http", "example.com", 80, "/upload", version, Headers(fields), None,
                   "", 1000.0, None)


def make_response(status: int = 200, headers: Any = (), reason: str = "OK") -> Response:
    fields = [(name.encode(), value.encode()) for name, value in headers]
    return Response("HTTP/1.1", status, reason, Headers(fields), None, 1000.5)


WEBSOCKET_HEADERS = (
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
)


# -- the base test case -----------------------------------------------------


class ExchangeTestCase(unittest.TestCase):
    """
    Builds one exchange at a time; C{self.timeline}, C{self.client},
    C{self.server}, C{self.flow} and C{self.exchange} are its parts.
    """

    def setUp(self) -> None:
        self.timeline = Timeline()

    def hooks(self, **actions: Callable[[HTTPFlow], Any]) -> Hooks:
        return Hooks(self.timeline, **actions)

    def holds(self, event: str, change: Optional[Callable[[HTTPFlow], None]] = None) -> Holds:
        return Holds(self.timeline, event, change)

    def make(self, *addons: Any, method: str = "POST", headers: Any = (),
             version: str = "HTTP/1.1", can_upgrade: bool = False, in_turn: bool = True,
             head_unchanged: bool = False, takes_at_once: bool = True,
             **options: Any) -> HttpExchange:
        """
        An exchange for a request with C{headers}, on a started master
        with C{addons} (a L{Hooks} recording every event when none are
        given) and C{options}.  It is not started.
        """
        if not addons:
            addons = (self.hooks(),)
        self.clock = Clock()
        self.master = Master(proxy_options(**options), addons, reactor=self.clock)
        self.master.start()
        self.addCleanup(self.master.stop)
        self.flow = HTTPFlow(ClientConnection(("127.0.0.1", 50000)), None,
                             make_request(method, headers, version))
        self.client = RecordingClient(self.timeline, can_upgrade, in_turn, head_unchanged)
        self.server = RecordingServer(self.timeline, takes_at_once)
        self.exchange = HttpExchange(self.master, self.flow, self.client)
        return self.exchange

    # -- driving ---------------------------------------------------------

    def connect(self) -> None:
        """
        Fire the pending C{connect} with the recording server.
        """
        self.client.connecting.pop(0).callback(self.server)

    def send_request(self, body: bytes = b"") -> None:
        """
        Start the exchange with C{body} as the whole request, connect it.
        """
        self.exchange.start()
        if body:
            self.exchange.request_data(body)
        self.exchange.request_end()
        self.connect()

    def respond(self, response: Optional[Response] = None, body: bytes = b"",
                end: bool = True) -> Response:
        """
        Feed a response head, C{body}, and its end.
        """
        if response is None:
            response = make_response(headers=[("Content-Length", str(len(body)))])
        self.exchange.response_head(response)
        if body:
            self.exchange.response_data(body)
        if end:
            self.exchange.response_end()
        return response

    def answer_during_upload(self) -> HttpExchange:
        """
        A streamed upload the server answers (whole) after its first
        piece: the response is over, the request is still STREAMING.
        """
        exchange = self.make(self.hooks(requestheaders=stream_request()))
        exchange.start()
        self.connect()
        exchange.request_data(b"part")
        self.respond(body=b"no thanks")
        self.assertStates(R.STREAMING, S.DONE)
        return exchange

    # -- checking --------------------------------------------------------

    def assertStates(self, request: RequestState, response: ResponseState) -> None:
        self.assertEqual(
            (self.exchange.request_state, self.exchange.response_state), (request, response)
        )

    def events(self) -> list[str]:
        return self.timeline.names("event")

    def client_calls(self) -> list[str]:
        return self.timeline.names("client")

    def server_calls(self) -> list[str]:
        return self.timeline.names("server")

    def after(self, marker: str) -> list[str]:
        """
        Everything on the timeline after the last C{marker} (C{"who.name"}).
        """
        names = self.timeline.names()
        index = len(names) - 1 - names[::-1].index(marker)
        return names[index + 1:]

    def clear(self) -> None:
        del self.timeline[:]


# -- the tests --------------------------------------------------------------


class ContractTests(ExchangeTestCase):
    """
    The recording sides keep to the contracts, and a new exchange waits.
    """

    def test_recording_sides_provide_the_contracts(self) -> None:
        """
        The fakes provide L{IClientSide} and L{IServerSide} as declared, so
        they cannot drift from the contracts unnoticed.
        """
        timeline = Timeline()
        self.assertTrue(verifyObject(IClientSide, RecordingClient(timeline)))
        self.assertTrue(verifyObject(IServerSide, RecordingServer(timeline)))

    def test_new_exchange(self) -> None:
        """
        Before C{start()} the exchange is in HEADERS/WAITING, has fired no
        event and sent no command.
        """
        exchange = self.make()
        self.assertStates(R.HEADERS, S.WAITING)
        self.assertFalse(exchange.over)
        self.assertFalse(exchange.announced)
        self.assertIsNone(exchange.server)
        self.assertEqual(self.timeline, [])

    def test_wants_streaming(self) -> None:
        """
        C{wants_streaming}: an addon's C{stream} decides; else a length over
        the limit, which marks the message as streamed.
        """
        message = make_request()
        self.assertFalse(wants_streaming(message, 10, 10))
        self.assertFalse(wants_streaming(message, None, 10))
        self.assertFalse(wants_streaming(message, 11, None))
        self.assertFalse(message.stream)
        self.assertTrue(wants_streaming(message, 11, 10))
        self.assertIs(message.stream, True)
        transform = make_request()
        transform.stream = bytes.upper
        self.assertTrue(wants_streaming(transform, None, None))
        self.assertIs(transform.stream, bytes.upper)


class BufferedRequestTests(ExchangeTestCase):
    """
    A request buffered whole: HEADERS -> READING -> HOOKS -> CONNECTING -> SENT.
    """

    def test_buffered_request(self) -> None:
        """
        C{requestheaders} fires on start, the body is read into memory,
        C{request} fires on the whole request, then the exchange connects
        and hands the request and body to the server at once.
        """
        exchange = self.make(headers=[("Content-Length", "5")])
        exchange.start()
        self.assertTrue(exchange.announced)
        self.assertEqual(self.events(), ["requestheaders"])
        self.assertStates(R.READING, S.WAITING)
        exchange.request_data(b"ab")
        exchange.request_data(b"cde")
        self.assertStates(R.READING, S.WAITING)
        self.assertEqual(self.client_calls(), [])
        exchange.request_end()
        self.assertEqual(self.flow.request.raw_content, b"abcde")
        self.assertIsNotNone(self.flow.request.timestamp_end)
        self.assertEqual(self.timeline.names(), ["event.requestheaders", "event.request",
                                                 "client.connect"])
        self.assertEqual(self.timeline.args("client", "connect"), [(self.flow.request,)])
        self.assertStates(R.CONNECTING, S.WAITING)
        self.connect()
        self.assertStates(R.SENT, S.WAITING)
        self.assertIs(exchange.server, self.server)
        self.assertIs(self.flow.server_conn, self.server.server_conn)
        self.assertEqual(self.timeline.args("server", "send_request"),
                         [(self.flow.request, b"abcde")])
        self.assertEqual(self.server_calls(), ["send_request"])

    def test_bodiless_request(self) -> None:
        """
        A request without a body goes out with an empty one.
        """
        self.make(method="GET")
        self.send_request()
        self.assertEqual(self.timeline.args("server", "send_request"), [(self.flow.request, b"")])
        self.assertStates(R.SENT, S.WAITING)

    def test_no_addons(self) -> None:
        """
        Without any hook the exchange goes straight on (no Deferred, no
        flush).
        """
        exchange = self.make(object())
        exchange.start()
        self.assertStates(R.READING, S.WAITING)
        exchange.request_end()
        self.assertStates(R.CONNECTING, S.WAITING)
        self.connect()
        self.assertEqual(self.timeline.names(), ["client.connect", "server.send_request"])

    def test_request_end_during_requestheaders(self) -> None:
        """
        The whole request may arrive while C{requestheaders} runs: C{request}
        fires once the hook is done, then the exchange connects; the client
        side is flushed after the hook's Deferred fired.
        """
        held = self.holds("requestheaders")
        exchange = self.make(self.hooks(requestheaders=held))
        exchange.start()
        exchange.request_data(b"body")
        exchange.request_end()
        self.assertStates(R.HEADERS, S.WAITING)
        self.assertEqual(self.events(), ["requestheaders"])
        held.fire()
        self.assertEqual(self.timeline.names(), [
            "event.requestheaders", "client.hold_reads", "event.requestheaders done",
            "client.release_reads", "event.request", "client.connect", "client.flush",
        ])
        self.assertEqual(self.flow.request.raw_content, b"body")
        self.assertStates(R.CONNECTING, S.WAITING)

    def test_request_hook_holds_the_connect(self) -> None:
        """
        While C{request} runs the exchange is in HOOKS and does not connect;
        what the hook changes is what goes out.
        """
        held = self.holds("request", lambda flow: setattr(flow.request, "content", b"changed"))
        exchange = self.make(self.hooks(request=held))
        exchange.start()
        exchange.request_data(b"original")
        exchange.request_end()
        self.assertStates(R.HOOKS, S.WAITING)
        self.assertNotIn("connect", self.client_calls())
        held.fire()
        self.assertStates(R.CONNECTING, S.WAITING)
        self.assertEqual(self.client_calls(), ["connect", "flush"])
        self.connect()
        self.assertEqual(self.timeline.args("server", "send_request"),
                         [(self.flow.request, b"changed")])

    def test_buffered_data_acknowledged_at_once(self) -> None:
        """
        A piece of a buffered body is acknowledged (HTTP/2: the client's
        window opens again) as soon as it is buffered.
        """
        exchange = self.make()
        exchange.start()
        acked = []
        exchange.request_data(b"abc", lambda: acked.append(True))
        self.assertEqual(acked, [True])

    def test_connect_fails(self) -> None:
        """
        A failed connect answers 502 Bad Gateway saying why, after C{error}.
        """
        exchange = self.make()
        exchange.start()
        exchange.request_end()
        self.client.connecting.pop().errback(ConnectionRefusedError("Connection refused"))
        self.assertStates(R.ANSWERED, S.DONE)
        self.assertTrue(exchange.over)
        self.assertEqual(self.after("client.connect"),
                         ["client.abandon", "event.error", "client.send_error"])
        [(status, reason, detail, started)] = self.timeline.args("client", "send_error")
        self.assertEqual((status, reason, started), (502, "Bad Gateway", False))
        self.assertIn("Cannot connect to example.com:80", detail)
        self.assertIn("Connection refused", detail)
        self.assertEqual(self.flow.error.msg, detail)

    def test_connect_times_out(self) -> None:
        """
        A connect that timed out answers 504 Gateway Timeout.
        """
        exchange = self.make()
        exchange.start()
        exchange.request_end()
        self.client.connecting.pop().errback(Exception("User timeout caused connection failure."))
        [(status, reason, detail, started)] = self.timeline.args("client", "send_error")
        self.assertEqual((status, reason, started), (504, "Gateway Timeout", False))
        self.assertIn("timed out", detail)

    def test_connected_after_the_end(self) -> None:
        """
        A connect that fires with no server (the client side saw the
        exchange was over) or after the exchange ended sends nothing.
        """
        exchange = self.make()
        exchange.start()
        exchange.request_end()
        exchange.client_failed("client disconnected")
        self.clear()
        self.connect()
        self.assertEqual(self.timeline, [])
        self.assertIsNone(exchange.server)
        self.assertIsNone(self.flow.server_conn)

        exchange = self.make()
        exchange.start()
        exchange.request_end()
        self.client.connecting.pop().callback(None)
        self.assertIsNone(exchange.server)
        self.assertNotIn("send_request", self.server_calls())


class StreamedRequestTests(ExchangeTestCase):
    """
    A request streamed to the server: HEADERS -> CONNECTING -> STREAMING -> SENT.
    """

    def test_length_over_stream_large_bodies(self) -> None:
        """
        A Content-Length over C{stream_large_bodies} streams the body: the
        client's reads are held while connecting (what arrives meanwhile is
        buffered, and acknowledged), the head goes out on connect with the
        buffered data, then each piece as it comes; C{request} fires after
        the end went out.
        """
        exchange = self.make(headers=[("Content-Length", "20")], stream_large_bodies="10")
        exchange.start()
        self.assertIs(self.flow.request.stream, True)
        self.assertStates(R.CONNECTING, S.WAITING)
        self.assertEqual(self.timeline.names(), ["event.requestheaders", "client.hold_reads",
                                                 "client.connect"])
        acked = []
        exchange.request_data(b"0123456789", lambda: acked.append(1))
        self.assertEqual(acked, [1])
        self.assertStates(R.CONNECTING, S.WAITING)
        self.connect()
        self.assertStates(R.STREAMING, S.WAITING)
        self.assertEqual(self.after("client.connect"), [
            "server.send_request_head", "server.send_request_data", "client.release_reads",
        ])
        self.assertEqual(self.timeline.args("server", "send_request_data")[0][0], b"0123456789")
        ack = lambda: acked.append(2)  # noqa: E731
        exchange.request_data(b"abcdefghij", ack)
        self.assertEqual(self.timeline.args("server", "send_request_data")[1], (b"abcdefghij", ack))
        self.assertEqual(acked, [1, 2])
        self.assertNotIn("request", self.events())
        exchange.request_end()
        self.assertStates(R.SENT, S.WAITING)
        self.assertEqual(self.after("client.release_reads"), [
            "server.send_request_data", "server.end_request", "event.request",
        ])
        self.assertNotIn("send_request", self.server_calls())
        self.assertIsNone(self.flow.request.raw_content)

    def test_request_end_before_connect(self) -> None:
        """
        A streamed request complete before the connection is there goes
        out whole on connect: head, data, end, then C{request}.
        """
        exchange = self.make(headers=[("Content-Length", "20")], stream_large_bodies="10")
        exchange.start()
        exchange.request_data(b"0123456789")
        exchange.request_data(b"abcdefghij")
        exchange.request_end()
        self.assertStates(R.CONNECTING, S.WAITING)
        self.assertEqual(self.server_calls(), [])
        self.connect()
        self.assertStates(R.SENT, S.WAITING)
        self.assertEqual(self.after("client.connect"), [
            "server.send_request_head", "server.send_request_data", "server.send_request_data",
            "client.release_reads", "server.end_request", "event.request",
        ])
        self.assertEqual([args[0] for args in self.timeline.args("server", "send_request_data")],
                         [b"0123456789", b"abcdefghij"])

    def test_addon_streams_in_requestheaders(self) -> None:
        """
        An addon setting C{request.stream} in C{requestheaders} streams a
        body of any size.
        """
        exchange = self.make(self.hooks(requestheaders=stream_request()))
        exchange.start()
        self.assertStates(R.CONNECTING, S.WAITING)
        self.connect()
        exchange.request_data(b"x")
        exchange.request_end()
        self.assertEqual(self.server_calls(), ["send_request_head", "send_request_data",
                                               "end_request"])

    def test_body_without_length_grows_past_the_limit(self) -> None:
        """
        A body without a Content-Length is buffered until it grows past
        C{stream_large_bodies}; then the exchange streams it, the pieces read
        so far first.
        """
        exchange = self.make(stream_large_bodies="10")
        exchange.start()
        self.assertStates(R.READING, S.WAITING)
        exchange.request_data(b"012345")
        self.assertStates(R.READING, S.WAITING)
        self.assertFalse(self.flow.request.stream)
        exchange.request_data(b"6789ab")
        self.assertStates(R.CONNECTING, S.WAITING)
        self.assertIs(self.flow.request.stream, True)
        self.assertEqual(self.after("event.requestheaders"), ["client.hold_reads",
                                                              "client.connect"])
        self.connect()
        exchange.request_data(b"cd")
        exchange.request_end()
        self.assertEqual([args[0] for args in self.timeline.args("server", "send_request_data")],
                         [b"012345", b"6789ab", b"cd"])
        self.assertEqual(self.events(), ["requestheaders", "request"])
        self.assertStates(R.SENT, S.WAITING)

    def test_body_exactly_at_the_limit_is_buffered(self) -> None:
        """
        C{stream_large_bodies} streams bodies I{larger} than it.
        """
        exchange = self.make(headers=[("Content-Length", "10")], stream_large_bodies="10")
        exchange.start()
        exchange.request_data(b"0123456789")
        self.assertStates(R.READING, S.WAITING)
        exchange.request_end()
        self.connect()
        self.assertEqual(self.server_calls(), ["send_request"])

    def test_server_slow_to_take(self) -> None:
        """
        A piece from a client without flow control (no ack: HTTP/1) that
        the server does not take at once holds the client's reads until it
        is taken; a client's own ack (HTTP/2) is handed on instead.
        """
        exchange = self.make(self.hooks(requestheaders=stream_request()), takes_at_once=False)
        exchange.start()
        self.connect()
        self.clear()
        exchange.request_data(b"piece")
        self.assertEqual(self.timeline.names(), ["server.send_request_data", "client.hold_reads"])
        self.server.acks.pop()()
        self.assertEqual(self.after("client.hold_reads"), ["client.release_reads"])
        self.clear()
        ack = lambda: None  # noqa: E731
        exchange.request_data(b"h2 piece", ack)
        self.assertEqual(self.timeline.names(), ["server.send_request_data"])
        self.assertIs(self.server.acks.pop(), ack)

    def test_pending_pieces_not_taken(self) -> None:
        """
        Pieces buffered while connecting that the server does not take at
        once each hold the client's reads, after the connect's own hold is
        released, until taken.
        """
        exchange = self.make(self.hooks(requestheaders=stream_request()), takes_at_once=False)
        exchange.start()
        exchange.request_data(b"one")
        exchange.request_data(b"two")
        self.connect()
        self.assertEqual(self.after("client.connect"), [
            "server.send_request_head", "server.send_request_data", "client.hold_reads",
            "server.send_request_data", "client.hold_reads", "client.release_reads",
        ])
        for ack in self.server.acks:
            ack()
        self.assertEqual(self.client_calls().count("release_reads"), 3)
        self.assertEqual(self.client_calls().count("hold_reads"), 3)

    def test_chunk_transform(self) -> None:
        """
        A callable C{request.stream} transforms each piece, those buffered
        while connecting too; it may return an iterable of bytes.
        """
        exchange = self.make(self.hooks(requestheaders=stream_request(
            lambda data: [data.upper(), b"!"])))
        exchange.start()
        exchange.request_data(b"early")
        self.connect()
        exchange.request_data(b"late")
        exchange.request_end()
        self.assertEqual([args[0] for args in self.timeline.args("server", "send_request_data")],
                         [b"EARLY!", b"LATE!"])


class ExpectContinueTests(ExchangeTestCase):
    """
    C{Expect: 100-continue}.
    """

    def test_continue_after_requestheaders(self) -> None:
        """
        Once C{requestheaders} is done the client is told to send its body,
        and the expectation is not passed on.
        """
        exchange = self.make(headers=[("Expect", "100-continue"), ("Content-Length", "4")])
        exchange.start()
        self.assertEqual(self.timeline.names(), ["event.requestheaders", "client.send_continue"])
        self.assertNotIn(b"expect", self.flow.request.headers)
        self.assertStates(R.READING, S.WAITING)
        exchange.request_data(b"body")
        exchange.request_end()
        self.connect()
        self.assertEqual(self.timeline.args("server", "send_request"),
                         [(self.flow.request, b"body")])

    def test_continue_waits_for_requestheaders(self) -> None:
        """
        No 100 is sent while C{requestheaders} runs.
        """
        held = self.holds("requestheaders")
        exchange = self.make(self.hooks(requestheaders=held),
                             headers=[("Expect", "100-continue"), ("Content-Length", "4")])
        exchange.start()
        self.assertNotIn("send_continue", self.client_calls())
        held.fire()
        self.assertEqual(self.after("event.requestheaders done"),
                         ["client.release_reads", "client.send_continue", "client.flush"])

    def test_continue_before_a_streamed_body(self) -> None:
        """
        A streamed body is asked for too, before connecting.
        """
        exchange = self.make(headers=[("Expect", "100-continue"), ("Content-Length", "20")],
                             stream_large_bodies="10")
        exchange.start()
        self.assertEqual(self.timeline.names(), ["event.requestheaders", "client.send_continue",
                                                 "client.hold_reads", "client.connect"])

    def test_http10_expectation_ignored(self) -> None:
        """
        An HTTP/1.0 request's expectation is ignored (RFC 9110 10.1.1).
        """
        exchange = self.make(headers=[("Expect", "100-continue")], version="HTTP/1.0")
        exchange.start()
        self.assertNotIn("send_continue", self.client_calls())

    def test_body_already_here(self) -> None:
        """
        No 100 once the whole request is here.
        """
        held = self.holds("requestheaders")
        exchange = self.make(self.hooks(requestheaders=held),
                             headers=[("Expect", "100-continue")])
        exchange.start()
        exchange.request_end()
        held.fire()
        self.assertNotIn("send_continue", self.client_calls())

    def test_addon_response_answers_at_once(self) -> None:
        """
        A response an addon set in C{requestheaders} answers a client
        waiting for a 100 at once, without waiting for the body that will
        not come.
        """
        exchange = self.make(self.hooks(requestheaders=answer(403)),
                             headers=[("Expect", "100-continue"), ("Content-Length", "4")])
        exchange.start()
        self.assertEqual(self.timeline.names(), [
            "event.requestheaders", "event.response", "client.send_response", "client.finished",
        ])
        [(response, early)] = self.timeline.args("client", "send_response")
        self.assertEqual((response.status_code, early), (403, True))
        self.assertStates(R.ANSWERED, S.DONE)

    def test_too_large_refused_without_continue(self) -> None:
        """
        A Content-Length over C{body_size_limit} is refused before any 100.
        """
        exchange = self.make(headers=[("Expect", "100-continue"), ("Content-Length", "20")],
                             body_size_limit="10")
        exchange.start()
        self.assertNotIn("send_continue", self.client_calls())
        self.assertEqual(self.timeline.args("client", "send_error")[0][0], 413)


class AddonResponseTests(ExchangeTestCase):
    """
    A response an addon sets before the request went upstream.
    """

    def test_response_in_requestheaders(self) -> None:
        """
        Set in C{requestheaders}: the body is read (and dropped), then
        C{response} fires and the response goes out as early; C{request}
        does not fire and nothing connects.
        """
        exchange = self.make(self.hooks(requestheaders=answer(201)),
                             headers=[("Content-Length", "4")])
        exchange.start()
        self.assertStates(R.ANSWERED, S.WAITING)
        self.assertEqual(self.timeline.names(), ["event.requestheaders"])
        exchange.request_data(b"body")
        self.assertEqual(self.timeline.names(), ["event.requestheaders"])
        exchange.request_end()
        self.assertEqual(self.timeline.names(), [
            "event.requestheaders", "event.response", "client.send_response", "client.finished",
        ])
        [(response, early)] = self.timeline.args("client", "send_response")
        self.assertIs(response, self.flow.response)
        self.assertEqual((response.status_code, response.raw_content, early),
                         (201, b"from the addon", True))
        self.assertStates(R.ANSWERED, S.DONE)
        self.assertTrue(exchange.early_response)
        self.assertTrue(exchange.over)

    def test_response_in_request(self) -> None:
        """
        Set in C{request}: answered as early, without connecting.
        """
        exchange = self.make(self.hooks(request=answer(202)))
        exchange.start()
        exchange.request_end()
        self.assertEqual(self.timeline.names(), [
            "event.requestheaders", "event.request", "event.response", "client.send_response",
            "client.finished",
        ])
        self.assertEqual(self.timeline.args("client", "send_response")[0][1], True)
        self.assertEqual(self.client.connecting, [])
        self.assertStates(R.ANSWERED, S.DONE)

    def test_response_hook_changes_the_early_response(self) -> None:
        """
        The C{response} hooks may change (or replace) the addon's response;
        the exchange sends what is there when they are done, in HOOKS while
        they run.
        """
        held = self.holds("response", answer(299, b"replaced"))
        exchange = self.make(self.hooks(request=answer(202), response=held))
        exchange.start()
        exchange.request_end()
        self.assertStates(R.ANSWERED, S.HOOKS)
        self.assertNotIn("send_response", self.client_calls())
        held.fire()
        [(response, early)] = self.timeline.args("client", "send_response")
        self.assertEqual((response.status_code, response.raw_content), (299, b"replaced"))
        self.assertStates(R.ANSWERED, S.DONE)


class RequestSizeLimitTests(ExchangeTestCase):
    """
    C{body_size_limit} on the request: 413, in the client's turn.
    """

    def test_content_length_over_the_limit(self) -> None:
        """
        A Content-Length over the limit is refused with 413 after
        C{requestheaders}: C{error} fires, C{request} never does, nothing
        connects.
        """
        exchange = self.make(headers=[("Content-Length", "20")], body_size_limit="10")
        exchange.start()
        self.assertEqual(self.timeline.names(), [
            "event.requestheaders", "client.abandon", "event.error", "client.send_error",
        ])
        self.assertEqual(self.timeline.args("client", "send_error"), [
            (413, "Payload Too Large", "The request body (20 bytes) exceeds 10 bytes.", False),
        ])
        self.assertStates(R.ANSWERED, S.DONE)
        self.assertEqual(self.flow.error.msg, "The request body (20 bytes) exceeds 10 bytes.")
        self.clear()
        exchange.request_data(b"x" * 20)
        exchange.request_end()
        self.assertEqual(self.timeline, [])

    def test_content_length_at_the_limit(self) -> None:
        """
        A body of exactly C{body_size_limit} bytes is accepted.
        """
        exchange = self.make(headers=[("Content-Length", "10")], body_size_limit="10")
        exchange.start()
        exchange.request_data(b"x" * 10)
        exchange.request_end()
        self.connect()
        self.assertEqual(self.server_calls(), ["send_request"])

    def test_growing_body_over_the_limit(self) -> None:
        """
        A body without a length is refused once it grows past the limit;
        what follows is ignored and C{request} never fires.
        """
        exchange = self.make(body_size_limit="10")
        exchange.start()
        exchange.request_data(b"x" * 6)
        self.assertEqual(self.client_calls(), [])
        exchange.request_data(b"x" * 6)
        self.assertEqual(self.after("event.requestheaders"),
                         ["client.abandon", "event.error", "client.send_error"])
        self.assertEqual(self.timeline.args("client", "send_error"), [
            (413, "Payload Too Large", "The request body exceeds 10 bytes.", False),
        ])
        self.assertStates(R.ANSWERED, S.DONE)
        self.clear()
        exchange.request_data(b"more")
        exchange.request_end()
        self.assertEqual(self.timeline, [])

    def test_growing_body_while_requestheaders_runs(self) -> None:
        """
        The limit holds while C{requestheaders} runs; C{error} waits for the
        hook, whose end changes nothing more.
        """
        held = self.holds("requestheaders")
        exchange = self.make(self.hooks(requestheaders=held), body_size_limit="10")
        exchange.start()
        exchange.request_data(b"x" * 11)
        self.assertEqual(self.timeline.names(),
                         ["event.requestheaders", "client.hold_reads", "client.abandon"])
        self.assertStates(R.ANSWERED, S.DONE)
        held.fire()
        self.assertEqual(self.after("client.abandon"), [
            "event.requestheaders done", "client.release_reads", "client.flush",
            "event.error", "client.send_error",
        ])

    def test_refused_before_its_turn(self) -> None:
        """
        A request pipelined behind another (not C{in_turn}) that is too
        large is answered only once its turn comes (C{start()}); addons
        never saw it, so no event fires at all.
        """
        exchange = self.make(body_size_limit="10", in_turn=False)
        exchange.request_data(b"x" * 11)
        self.assertEqual(self.timeline, [])
        self.assertFalse(exchange.over)
        exchange.request_data(b"x" * 11)
        exchange.request_end()
        self.assertEqual(self.timeline, [])
        self.assertEqual(exchange.request_chunks.size, 0)
        self.client.in_turn = True
        exchange.start()
        self.assertEqual(self.timeline.names(), ["client.abandon", "client.send_error"])
        self.assertEqual(self.timeline.args("client", "send_error"), [
            (413, "Payload Too Large", "The request body exceeds 10 bytes.", False),
        ])
        self.assertFalse(exchange.announced)
        self.assertTrue(exchange.over)
        self.assertIsNotNone(self.flow.error)

    def test_client_error_in_turn_before_start(self) -> None:
        """
        A client error in turn but before C{start()} (an HTTP/2 CONNECT)
        answers at once, with no event.
        """
        exchange = self.make()
        exchange.client_error(501, "Not Implemented", "no CONNECT here")
        self.assertEqual(self.timeline.names(), ["client.abandon", "client.send_error"])
        self.assertEqual(self.timeline.args("client", "send_error"),
                         [(501, "Not Implemented", "no CONNECT here", False)])
        self.assertTrue(exchange.over)


class BufferedResponseTests(ExchangeTestCase):
    """
    A response buffered whole: WAITING -> HEADERS -> READING -> HOOKS -> DONE.
    """

    def test_buffered_response(self) -> None:
        """
        C{responseheaders} fires on the head, the body is read into memory,
        C{response} fires on the whole response, which goes to the client;
        then the server side is done and the client side finished.
        """
        exchange = self.make()
        self.send_request()
        self.clear()
        response = make_response(headers=[("Content-Length", "5")])
        exchange.response_head(response)
        self.assertIs(self.flow.response, response)
        self.assertStates(R.SENT, S.READING)
        acked = []
        exchange.response_data(b"ab", lambda: acked.append(1))
        exchange.response_data(b"cde")
        self.assertEqual(acked, [1])
        self.assertEqual(self.timeline.names(), ["event.responseheaders"])
        exchange.response_end()
        self.assertEqual(response.raw_content, b"abcde")
        self.assertIsNotNone(response.timestamp_end)
        self.assertEqual(self.timeline.names(), [
            "event.responseheaders", "event.response", "client.send_response", "server.done",
            "client.finished",
        ])
        self.assertEqual(self.timeline.args("client", "send_response"), [(response, False)])
        self.assertEqual(self.timeline.args("server", "done"), [(False,)])
        self.assertStates(R.SENT, S.DONE)
        self.assertTrue(exchange.response_started)
        self.assertFalse(exchange.early_response)
        self.assertIsNone(exchange.server)

    def test_response_hook_runs(self) -> None:
        """
        While C{response} runs the exchange is in HOOKS and sends nothing;
        what the hook changes is what goes out.
        """
        held = self.holds("response", lambda flow: setattr(flow.response, "content", b"new"))
        exchange = self.make(self.hooks(response=held))
        self.send_request()
        self.respond(body=b"old")
        self.assertStates(R.SENT, S.HOOKS)
        self.assertFalse(exchange.response_started)
        self.assertNotIn("send_response", self.client_calls())
        held.fire()
        [(response, early)] = self.timeline.args("client", "send_response")
        self.assertEqual(response.raw_content, b"new")
        self.assertStates(R.SENT, S.DONE)

    def test_responseheaders_holds_the_server(self) -> None:
        """
        An async C{responseheaders} holds the server's reads (HEADERS) until
        it is done.
        """
        held = self.holds("responseheaders")
        self.make(self.hooks(responseheaders=held))
        self.send_request()
        self.clear()
        self.respond(body=b"", end=False)
        self.assertStates(R.SENT, S.HEADERS)
        self.assertEqual(self.server.read_gate.held, 1)
        held.fire()
        self.assertEqual(self.server.read_gate.held, 0)
        self.assertEqual(self.timeline.names(), [
            "event.responseheaders", "gate.hold", "event.responseheaders done", "gate.release",
            "client.flush",
        ])
        self.assertStates(R.SENT, S.READING)

    def test_server_released(self) -> None:
        """
        A server side that released the exchange (its response complete
        there) is not told C{done}.
        """
        exchange = self.make()
        self.send_request()
        exchange.server_released(RecordingServer(self.timeline))
        self.assertIs(exchange.server, self.server)
        self.respond(body=b"ok", end=False)
        exchange.server_released(self.server)
        self.assertIsNone(exchange.server)
        exchange.response_end()
        self.assertNotIn("done", self.server_calls())
        self.assertEqual(self.client_calls()[-2:], ["send_response", "finished"])

    def test_large_buffered_body_relayed_in_bulk(self) -> None:
        """
        A buffered body of 256 KiB or more is counted in past the parser
        (C{relay_body(None)}: not to the client directly).
        """
        size = 256 * 1024
        exchange = self.make()
        self.send_request()
        exchange.response_head(make_response(headers=[("Content-Length", str(size))]))
        self.assertEqual(self.timeline.args("server", "relay_body"), [(None,)])
        self.assertStates(R.SENT, S.READING)

        exchange = self.make()
        self.clear()
        self.send_request()
        exchange.response_head(make_response(headers=[("Content-Length", str(size - 1))]))
        self.assertNotIn("relay_body", self.server_calls())


class StreamedResponseTests(ExchangeTestCase):
    """
    A response streamed to the client: HEADERS -> STREAMING -> COMPLETE -> DONE.
    """

    def test_length_over_stream_large_bodies(self) -> None:
        """
        A Content-Length over C{stream_large_bodies} streams the body: the
        head goes out after C{responseheaders}, each piece with its ack as
        it comes, the end, and then C{response} fires (COMPLETE) on a
        response without a body.
        """
        held = self.holds("response")
        exchange = self.make(self.hooks(response=held), stream_large_bodies="10")
        self.send_request()
        self.clear()
        response = make_response(headers=[("Content-Length", "20")])
        exchange.response_head(response)
        self.assertIs(response.stream, True)
        self.assertStates(R.SENT, S.STREAMING)
        self.assertTrue(exchange.response_started)
        self.assertEqual(self.timeline.names(), ["event.responseheaders",
                                                 "client.send_response_head"])
        ack = lambda: None  # noqa: E731
        exchange.response_data(b"0123456789", ack)
        exchange.response_data(b"abcdefghij")
        self.assertEqual(self.timeline.args("client", "send_response_data"),
                         [(b"0123456789", ack), (b"abcdefghij", None)])
        exchange.response_end()
        self.assertStates(R.SENT, S.COMPLETE)
        self.assertEqual(self.after("client.send_response_data"),
                         ["client.end_response", "event.response"])
        self.assertIsNone(response.raw_content)
        held.fire()
        self.assertStates(R.SENT, S.DONE)
        self.assertEqual(self.after("event.response done"),
                         ["server.done", "client.finished", "client.flush"])
        self.assertNotIn("send_response", self.client_calls())

    def test_growing_past_the_limit(self) -> None:
        """
        A body without a length is buffered until it grows past
        C{stream_large_bodies}, then streamed, the pieces read so far first.
        """
        exchange = self.make(stream_large_bodies="10")
        self.send_request()
        self.clear()
        exchange.response_head(make_response())
        exchange.response_data(b"012345")
        self.assertStates(R.SENT, S.READING)
        self.assertEqual(self.client_calls(), [])
        exchange.response_data(b"6789ab")
        self.assertStates(R.SENT, S.STREAMING)
        self.assertIs(self.flow.response.stream, True)
        exchange.response_data(b"cd")
        self.assertEqual(self.client_calls(), ["send_response_head", "send_response_data",
                                               "send_response_data", "send_response_data"])
        self.assertEqual([args[0] for args in self.timeline.args("client", "send_response_data")],
                         [b"012345", b"6789ab", b"cd"])

    def test_data_during_responseheaders_then_streamed(self) -> None:
        """
        Data that arrived while C{responseheaders} ran goes out first once
        the hook streams the response, and counts towards the limit.
        """
        held = self.holds("responseheaders")
        exchange = self.make(self.hooks(responseheaders=held), stream_large_bodies="10")
        self.send_request()
        self.clear()
        exchange.response_head(make_response())
        acked = []
        exchange.response_data(b"0123456789ab", lambda: acked.append(1))
        self.assertEqual(acked, [1])
        self.assertStates(R.SENT, S.HEADERS)
        held.fire()
        self.assertStates(R.SENT, S.STREAMING)
        self.assertEqual(self.after("gate.release"), [
            "client.send_response_head", "client.send_response_data", "client.flush",
        ])

    def test_addon_streams_in_responseheaders(self) -> None:
        """
        An addon setting C{response.stream} streams a body of any size.
        """
        self.make(self.hooks(responseheaders=stream_response()))
        self.send_request()
        self.respond(body=b"x")
        self.assertEqual(self.client_calls()[-4:], ["send_response_head", "send_response_data",
                                                    "end_response", "finished"])

    def test_chunk_transform(self) -> None:
        """
        A callable C{response.stream} transforms each piece, those buffered
        while C{responseheaders} ran too.
        """
        def stream_upper(flow: HTTPFlow) -> None:
            flow.response.stream = lambda data: (data.upper(), b".")

        held = self.holds("responseheaders", stream_upper)
        exchange = self.make(self.hooks(responseheaders=held))
        self.send_request()
        exchange.response_head(make_response())
        exchange.response_data(b"early")
        held.fire()
        exchange.response_data(b"late")
        exchange.response_end()
        self.assertEqual([args[0] for args in self.timeline.args("client", "send_response_data")],
                         [b"EARLY.", b"LATE."])

    def test_relay_body_only_when_unchanged(self) -> None:
        """
        When the client side sends the body byte for byte
        (C{send_response_head} returns True) the server side may relay it
        to the client's C{direct_transport}, after the pieces so far.
        """
        exchange = self.make(self.hooks(responseheaders=stream_response()), head_unchanged=True)
        self.send_request()
        self.clear()
        exchange.response_head(make_response(headers=[("Content-Length", "3")]))
        self.assertEqual(self.timeline.names(), ["event.responseheaders",
                                                 "client.send_response_head", "server.relay_body"])
        self.assertEqual(self.timeline.args("server", "relay_body"),
                         [(self.client.direct_transport,)])

        exchange = self.make(self.hooks(responseheaders=stream_response()), head_unchanged=False)
        self.clear()
        self.send_request()
        exchange.response_head(make_response(headers=[("Content-Length", "3")]))
        self.assertNotIn("relay_body", self.server_calls())

    def test_relay_body_without_a_server(self) -> None:
        """
        No C{relay_body} when the server side released the exchange already
        (the response was complete during C{responseheaders}).
        """
        held = self.holds("responseheaders")
        exchange = self.make(self.hooks(responseheaders=held), stream_large_bodies="1",
                             head_unchanged=True)
        self.send_request()
        exchange.response_head(make_response(headers=[("Content-Length", "3")]))
        exchange.response_data(b"abc")
        exchange.server_released(self.server)
        exchange.response_end()
        held.fire()
        self.assertNotIn("relay_body", self.server_calls())
        self.assertEqual(self.client_calls()[-5:], ["send_response_head", "send_response_data",
                                                    "end_response", "finished", "flush"])


class ResponseSizeLimitTests(ExchangeTestCase):
    """
    C{body_size_limit} on the response: 502, no C{response} event.
    """

    def assertRefused(self, detail: str) -> None:
        self.assertEqual(self.timeline.args("client", "send_error"),
                         [(502, "Bad Gateway", detail, False)])
        self.assertEqual(self.timeline.args("server", "done"), [(True,)])
        self.assertNotIn("response", self.events())
        self.assertEqual(self.events()[-1], "error")
        self.assertTrue(self.exchange.over)

    def test_content_length_over_the_limit(self) -> None:
        exchange = self.make(body_size_limit="10")
        self.send_request()
        self.clear()
        self.respond(make_response(headers=[("Content-Length", "11")]), end=False)
        self.assertEqual(self.timeline.names(), [
            "event.responseheaders", "server.done", "client.abandon", "event.error",
            "client.send_error",
        ])
        self.assertRefused("The response body (11 bytes) exceeds 10 bytes.")
        self.clear()
        exchange.response_data(b"x" * 11)
        exchange.response_end()
        self.assertEqual(self.timeline, [])

    def test_growing_body_over_the_limit(self) -> None:
        exchange = self.make(body_size_limit="10")
        self.send_request()
        exchange.response_head(make_response())
        exchange.response_data(b"x" * 10)
        self.assertFalse(exchange.over)
        exchange.response_data(b"x")
        self.assertRefused("The response body exceeds 10 bytes.")
        self.assertStates(R.SENT, S.DONE)

    def test_data_during_a_slow_responseheaders(self) -> None:
        """
        Data arriving while an async C{responseheaders} runs is counted:
        once the hook is done the response is refused, and C{response}
        never fires.
        """
        held = self.holds("responseheaders")
        exchange = self.make(self.hooks(responseheaders=held), body_size_limit="10")
        self.send_request()
        exchange.response_head(make_response())
        exchange.response_data(b"x" * 8)
        exchange.response_data(b"x" * 8)
        self.assertStates(R.SENT, S.HEADERS)
        self.assertNotIn("send_error", self.client_calls())
        held.fire()
        self.assertRefused("The response body exceeds 10 bytes.")
        self.assertEqual(self.after("event.responseheaders done"), [
            "gate.release", "server.done", "client.abandon", "event.error", "client.send_error",
            "client.flush",
        ])

    def test_whole_body_during_a_slow_responseheaders(self) -> None:
        """
        Also when the whole response arrived while the hook ran.
        """
        held = self.holds("responseheaders")
        exchange = self.make(self.hooks(responseheaders=held), body_size_limit="10")
        self.send_request()
        exchange.response_head(make_response())
        exchange.response_data(b"x" * 16)
        exchange.response_end()
        held.fire()
        self.assertRefused("The response body exceeds 10 bytes.")


class EndPendingTests(ExchangeTestCase):
    """
    The response's end arriving while C{responseheaders} runs.
    """

    def test_buffered(self) -> None:
        """
        The end waits for the hook; then C{response} fires and the response
        goes out whole.
        """
        held = self.holds("responseheaders")
        exchange = self.make(self.hooks(responseheaders=held))
        self.send_request()
        self.respond(body=b"body")
        self.assertStates(R.SENT, S.HEADERS)
        self.assertNotIn("response", self.events())
        held.fire()
        self.assertEqual(self.after("event.responseheaders done"), [
            "gate.release", "event.response", "client.send_response", "server.done",
            "client.finished", "client.flush",
        ])
        self.assertEqual(self.flow.response.raw_content, b"body")
        self.assertFalse(exchange._end_pending)
        self.assertStates(R.SENT, S.DONE)

    def test_streamed(self) -> None:
        """
        A response the hook streams is sent, then ended.
        """
        held = self.holds("responseheaders", stream_response())
        self.make(self.hooks(responseheaders=held))
        self.send_request()
        self.respond(body=b"body")
        held.fire()
        self.assertEqual(self.after("event.responseheaders done"), [
            "gate.release", "client.send_response_head", "client.send_response_data",
            "client.end_response", "event.response", "server.done", "client.finished",
            "client.flush",
        ])


class KillTests(ExchangeTestCase):
    """
    C{flow.kill()} in each hook.
    """

    def assertKilled(self) -> None:
        calls = self.client_calls()
        self.assertEqual(calls[calls.index("abandon"):calls.index("abandon") + 2],
                         ["abandon", "kill"])
        self.assertEqual(self.events()[-1], "error")
        self.assertEqual(self.events().count("error"), 1)
        self.assertNotIn("send_error", calls)
        self.assertNotIn("send_response", calls)
        self.assertNotIn("finished", calls)
        self.assertTrue(self.exchange.over)
        self.assertEqual(self.flow.error.msg, "Connection killed.")

    def test_requestheaders(self) -> None:
        exchange = self.make(self.hooks(requestheaders=kill))
        exchange.start()
        self.assertEqual(self.timeline.names(), [
            "event.requestheaders", "client.abandon", "client.kill", "event.error",
        ])
        self.assertKilled()
        self.assertStates(R.ANSWERED, S.DONE)
        self.clear()
        exchange.request_data(b"more")
        exchange.request_end()
        self.assertEqual(self.timeline, [])

    def test_request(self) -> None:
        exchange = self.make(self.hooks(request=kill))
        exchange.start()
        exchange.request_end()
        self.assertEqual(self.after("event.request"),
                         ["client.abandon", "client.kill", "event.error"])
        self.assertEqual(self.client.connecting, [])
        self.assertKilled()

    def test_async_request(self) -> None:
        held = self.holds("request", kill)
        exchange = self.make(self.hooks(request=held))
        exchange.start()
        exchange.request_end()
        held.fire()
        self.assertEqual(self.after("event.request done"),
                         ["client.abandon", "client.kill", "event.error", "client.flush"])
        self.assertKilled()

    def kill_in_response_hook(self, event: str) -> list[str]:
        """
        Kill in C{event} while a buffered response comes: what happened
        from the response head on.
        """
        self.make(self.hooks(**{event: kill}))
        self.send_request()
        self.clear()
        self.respond(body=b"body")
        self.assertEqual(self.timeline.args("server", "done"), [(True,)])
        return self.timeline.names()

    def test_responseheaders(self) -> None:
        self.assertEqual(self.kill_in_response_hook("responseheaders"), [
            "event.responseheaders", "server.done", "client.abandon", "client.kill",
            "event.error",
        ])
        self.assertKilled()

    def test_response(self) -> None:
        self.assertEqual(self.kill_in_response_hook("response"), [
            "event.responseheaders", "event.response", "server.done", "client.abandon",
            "client.kill", "event.error",
        ])
        self.assertKilled()

    def test_response_to_an_addon_response(self) -> None:
        exchange = self.make(self.hooks(request=answer(), response=kill))
        exchange.start()
        exchange.request_end()
        self.assertEqual(self.after("event.response"),
                         ["client.abandon", "client.kill", "event.error"])
        self.assertKilled()

    def test_responseheaders_of_a_switch(self) -> None:
        exchange = self.make(self.hooks(responseheaders=kill), method="GET",
                             headers=WEBSOCKET_HEADERS, can_upgrade=True)
        self.send_request()
        self.flow.response = make_response(101, [("Upgrade", "websocket")], "Switching Protocols")
        exchange.switch_protocols([])
        self.assertNotIn("switch_protocols", self.client_calls())
        self.assertKilled()


class FailTests(ExchangeTestCase):
    """
    The server's side failing: C{fail}.
    """

    def test_before_the_response(self) -> None:
        """
        A failure before any response answers 502 saying why, after
        C{error}; the server side is cancelled.
        """
        exchange = self.make()
        self.send_request()
        self.clear()
        exchange.fail("the server closed the connection")
        self.assertEqual(self.timeline.names(), [
            "server.done", "client.abandon", "event.error", "client.send_error",
        ])
        self.assertEqual(self.timeline.args("server", "done"), [(True,)])
        self.assertEqual(self.timeline.args("client", "send_error"), [
            (502, "Bad Gateway", "the server closed the connection", False),
        ])
        self.assertStates(R.SENT, S.DONE)
        self.assertEqual(self.flow.error.msg, "the server closed the connection")

    def test_timeout(self) -> None:
        """
        A 504 is a Gateway Timeout.
        """
        exchange = self.make()
        self.send_request()
        exchange.fail("the server sent nothing for 60 s", 504)
        self.assertEqual(self.timeline.args("client", "send_error"), [
            (504, "Gateway Timeout", "the server sent nothing for 60 s", False),
        ])

    def test_while_reading_the_response(self) -> None:
        """
        A buffered response has not started: the client still gets a 502.
        """
        exchange = self.make()
        self.send_request()
        self.respond(body=b"part", end=False)
        exchange.fail("reset")
        self.assertEqual(self.timeline.args("client", "send_error")[0][3], False)
        self.assertNotIn("response", self.events())

    def test_after_the_response_started(self) -> None:
        """
        A streamed response that started is broken off (C{started}).
        """
        exchange = self.make(stream_large_bodies="1")
        self.send_request()
        self.respond(make_response(headers=[("Content-Length", "10")]), body=b"part", end=False)
        self.assertStates(R.SENT, S.STREAMING)
        exchange.fail("reset")
        self.assertEqual(self.timeline.args("client", "send_error"),
                         [(502, "Bad Gateway", "reset", True)])
        self.assertStates(R.SENT, S.DONE)
        self.clear()
        exchange.response_data(b"late")
        exchange.response_end()
        self.assertEqual(self.timeline, [])

    def test_after_the_streamed_response_went_out(self) -> None:
        """
        Once a streamed response went out whole (COMPLETE, its C{response}
        hooks running), a failure changes nothing.
        """
        held = self.holds("response")
        exchange = self.make(self.hooks(response=held), stream_large_bodies="1")
        self.send_request()
        self.respond(make_response(headers=[("Content-Length", "4")]), body=b"body")
        self.assertStates(R.SENT, S.COMPLETE)
        self.clear()
        exchange.fail("closed")
        exchange.client_failed("client disconnected")
        self.assertEqual(self.timeline, [])
        held.fire()
        self.assertEqual(self.after("event.response done"),
                         ["server.done", "client.finished", "client.flush"])
        self.assertIsNone(self.flow.error)

    def test_nothing_once_over(self) -> None:
        """
        Once the response went out, neither the server failing, nor the
        client going away, nor a client error changes anything.
        """
        exchange = self.make()
        self.send_request()
        self.respond(body=b"ok")
        self.clear()
        exchange.fail("late")
        exchange.client_failed("gone")
        exchange.client_error(408, "Request Timeout", "too slow")
        self.assertEqual(self.timeline, [])
        self.assertIsNone(self.flow.error)


class ClientFailedTests(ExchangeTestCase):
    """
    The client going away: C{client_failed}.
    """

    def test_while_waiting_for_the_response(self) -> None:
        """
        The server side is cancelled, C{error} fires; nothing is sent to
        the client.
        """
        exchange = self.make()
        self.send_request()
        self.clear()
        exchange.client_failed("client disconnected")
        self.assertEqual(self.timeline.names(), ["server.done", "client.abandon", "event.error"])
        self.assertEqual(self.timeline.args("server", "done"), [(True,)])
        self.assertEqual(self.flow.error.msg, "client disconnected")
        self.assertStates(R.SENT, S.DONE)
        self.assertIsNone(exchange.server)
        self.clear()
        self.respond(body=b"late")
        self.assertNotIn("client", [who for (who, _, _) in self.timeline])
        self.assertNotIn("response", self.events())

    def test_while_streaming_the_response(self) -> None:
        exchange = self.make(stream_large_bodies="1")
        self.send_request()
        self.respond(make_response(headers=[("Content-Length", "10")]), body=b"part", end=False)
        self.clear()
        exchange.client_failed("reset")
        self.assertEqual(self.timeline.names(), ["server.done", "client.abandon", "event.error"])
        self.clear()
        exchange.response_data(b"more")
        exchange.response_end()
        self.assertEqual(self.timeline, [])

    def test_before_start(self) -> None:
        """
        A flow addons never saw fires no C{error}.
        """
        exchange = self.make(in_turn=False)
        exchange.client_failed("client disconnected")
        self.assertEqual(self.timeline.names(), ["client.abandon"])
        self.assertTrue(exchange.over)


class ErrorIsLastTests(ExchangeTestCase):
    """
    C{error} is a flow's last event: it waits for hooks still running, and
    nothing fires after it.
    """

    def test_waits_for_requestheaders(self) -> None:
        held = self.holds("requestheaders")
        exchange = self.make(self.hooks(requestheaders=held))
        exchange.start()
        exchange.client_failed("client disconnected")
        self.assertEqual(self.events(), ["requestheaders"])
        exchange.request_end()
        held.fire()
        self.assertEqual(self.events(), ["requestheaders", "requestheaders done", "error"])
        self.assertEqual(self.client.connecting, [])

    def test_waits_for_request(self) -> None:
        held = self.holds("request")
        exchange = self.make(self.hooks(request=held))
        exchange.start()
        exchange.request_end()
        exchange.client_failed("client disconnected")
        self.assertEqual(self.events(), ["requestheaders", "request"])
        held.fire()
        self.assertEqual(self.events(), ["requestheaders", "request", "request done", "error"])
        self.assertEqual(self.client.connecting, [])

    def test_waits_for_responseheaders(self) -> None:
        held = self.holds("responseheaders")
        exchange = self.make(self.hooks(responseheaders=held))
        self.send_request()
        self.respond(body=b"body")
        exchange.fail("closed")
        self.assertNotIn("error", self.events())
        self.assertNotIn("send_error", self.client_calls())
        held.fire()
        self.assertEqual(self.events()[-3:], ["responseheaders", "responseheaders done", "error"])
        self.assertEqual(self.after("event.responseheaders done"), [
            "gate.release", "client.flush", "event.error", "client.send_error",
        ])
        self.assertNotIn("response", self.events())

    def test_waits_for_an_async_error_hook_chain(self) -> None:
        """
        The answer to the client waits for the C{error} hooks.
        """
        held = self.holds("error")
        exchange = self.make(self.hooks(error=held))
        self.send_request()
        exchange.fail("closed")
        self.assertNotIn("send_error", self.client_calls())
        held.fire()
        self.assertEqual(self.after("event.error done"), ["client.send_error"])


class EarlyServerAnswerTests(ExchangeTestCase):
    """
    A server answering before the end of a streamed upload.
    """

    def test_server_kept_until_the_request_end(self) -> None:
        """
        The response goes out and the client side is finished, but the
        server side keeps the exchange (request_state STREAMING) and gets
        the rest of the upload; it is done once the end went out, and
        C{request} still fires.
        """
        exchange = self.answer_during_upload()
        self.assertEqual(self.client_calls()[-2:], ["send_response", "finished"])
        self.assertNotIn("done", self.server_calls())
        self.assertIs(exchange.server, self.server)
        self.assertEqual(self.events(), ["requestheaders", "responseheaders", "response"])
        self.clear()
        exchange.request_data(b"rest")
        exchange.request_end()
        self.assertEqual(self.timeline.names(), [
            "server.send_request_data", "server.end_request", "server.done", "event.request",
        ])
        self.assertEqual(self.timeline.args("server", "done"), [(False,)])
        self.assertStates(R.SENT, S.DONE)


class LetGoTests(ExchangeTestCase):
    """
    An exchange over both ways lets go of its client side.  The framings'
    client sides hold their exchange, so without this every request left a
    reference cycle for the garbage collector (found by profiling HTTP/2:
    twice the collections of the commit before the exchange).
    """

    def assertFreedByReferenceCounting(self) -> None:
        """
        With the client side holding the exchange (as the framings' do),
        the exchange is freed as soon as the test lets go of both, with
        the garbage collector off.
        """
        self.client.exchange = self.exchange  # type: ignore[attr-defined]
        ref = weakref.ref(self.exchange)
        # (The timeline keeps what the sides were given, acks included.)
        self.clear()
        gc.disable()
        self.addCleanup(gc.enable)
        del self.exchange, self.client
        self.assertIsNone(ref())

    def test_after_a_buffered_response(self) -> None:
        self.make()
        self.send_request()
        self.respond(body=b"body")
        self.assertStates(R.SENT, S.DONE)
        self.assertFreedByReferenceCounting()

    def test_after_a_failure(self) -> None:
        self.make()
        self.send_request()
        self.exchange.fail("server gone")
        self.assertIn("send_error", self.client_calls())
        self.assertFreedByReferenceCounting()

    def test_after_the_client_failed(self) -> None:
        self.make()
        self.send_request()
        self.exchange.client_failed("client disconnected")
        self.assertFreedByReferenceCounting()

    def test_after_a_kill(self) -> None:
        self.make(self.hooks(request=kill))
        self.exchange.start()
        self.exchange.request_end()
        self.assertIn("kill", self.client_calls())
        self.assertFreedByReferenceCounting()

    def test_kept_while_a_hook_runs(self) -> None:
        """
        A C{response} hook still running holds on to the client (it is
        flushed when the hook is done), then lets go.
        """
        response = self.holds("response")
        self.make(self.hooks(response=response))
        self.send_request()
        self.respond(body=b"body")
        self.assertIs(self.exchange.client, self.client)
        response.fire()
        self.assertEqual(self.client_calls()[-3:], ["send_response", "finished", "flush"])
        self.assertIsNot(self.exchange.client, self.client)
        self.assertFreedByReferenceCounting()

    def test_kept_until_the_end_of_an_upload(self) -> None:
        """
        A server answering before the end of a streamed upload: the client
        side is still read (and held) until the request's end.
        """
        exchange = self.answer_during_upload()
        self.assertIs(exchange.client, self.client)
        exchange.request_data(b"rest")
        exchange.request_end()
        del exchange
        self.assertFreedByReferenceCounting()

    def test_gone_client_does_nothing(self) -> None:
        """
        What reaches an exchange after it let go changes nothing: the
        stand-in provides the contract and sends nothing anywhere.
        """
        self.make()
        self.send_request()
        self.respond(body=b"body")
        gone = self.exchange.client
        self.assertTrue(verifyObject(IClientSide, gone))
        calls = len(self.timeline)
        self.exchange.client_failed("late")
        self.exchange.response_data(b"late")
        self.exchange.client_error(400, "Bad Request", "late")
        self.assertEqual(len(self.timeline), calls)
        acked: list[int] = []
        gone.send_response_data(b"x", lambda: acked.append(1))
        self.assertEqual(acked, [1])


class SwitchProtocolsTests(ExchangeTestCase):
    """
    A 101: C{switch_protocols}, then the client side hands over.
    """

    def test_switch_after_responseheaders(self) -> None:
        """
        C{responseheaders} fires for the 101 (the server held meanwhile),
        then the client side switches with the server side and the bytes
        after the 101; C{switched()} ends the exchange.
        """
        held = self.holds("responseheaders")
        exchange = self.make(self.hooks(responseheaders=held), method="GET",
                             headers=WEBSOCKET_HEADERS, can_upgrade=True)
        self.send_request()
        self.clear()
        self.flow.response = make_response(101, [("Upgrade", "websocket")], "Switching Protocols")
        after = [b"first frame"]
        exchange.switch_protocols(after)
        self.assertStates(R.SENT, S.HEADERS)
        self.assertEqual(self.timeline.names(), ["event.responseheaders", "gate.hold"])
        after.append(b"more")
        held.fire()
        self.assertEqual(self.after("event.responseheaders done"), [
            "gate.release", "client.switch_protocols", "client.flush",
        ])
        [(server, handed)] = self.timeline.args("client", "switch_protocols")
        self.assertIs(server, self.server)
        self.assertIs(handed, after)
        self.assertEqual(handed, [b"first frame", b"more"])
        self.assertFalse(exchange.over)
        exchange.switched()
        self.assertTrue(exchange.over)
        self.assertIsNone(exchange.server)
        self.clear()
        exchange.fail("closed")
        exchange.client_failed("closed")
        self.assertEqual(self.timeline, [])
        self.assertNotIn("response", self.events())
        self.assertNotIn("error", self.events())


class WebSocketHandshakeTests(ExchangeTestCase):
    """
    C{websocket_handshake} fires before C{requestheaders} for a WebSocket
    upgrade the client side can carry, with option C{websocket} on.
    """

    def test_handshake(self) -> None:
        exchange = self.make(method="GET", headers=WEBSOCKET_HEADERS, can_upgrade=True)
        exchange.start()
        self.assertEqual(self.events(), ["websocket_handshake", "requestheaders"])
        self.assertTrue(exchange.websocket)

    def test_async_handshake(self) -> None:
        held = self.holds("websocket_handshake")
        exchange = self.make(self.hooks(websocket_handshake=held), method="GET",
                             headers=WEBSOCKET_HEADERS, can_upgrade=True)
        exchange.start()
        self.assertEqual(self.events(), ["websocket_handshake"])
        self.assertStates(R.HEADERS, S.WAITING)
        held.fire()
        self.assertEqual(self.events(), ["websocket_handshake", "websocket_handshake done",
                                         "requestheaders"])

    def test_not_when_the_client_side_cannot_upgrade(self) -> None:
        exchange = self.make(method="GET", headers=WEBSOCKET_HEADERS, can_upgrade=False)
        exchange.start()
        self.assertEqual(self.events(), ["requestheaders"])
        self.assertFalse(exchange.websocket)

    def test_not_with_the_option_off(self) -> None:
        exchange = self.make(method="GET", headers=WEBSOCKET_HEADERS, can_upgrade=True,
                             websocket=False)
        exchange.start()
        self.assertEqual(self.events(), ["requestheaders"])
        self.assertFalse(exchange.websocket)

    def test_not_for_another_method(self) -> None:
        exchange = self.make(method="POST", headers=WEBSOCKET_HEADERS, can_upgrade=True)
        exchange.start()
        self.assertEqual(self.events(), ["requestheaders"])

    def test_not_for_another_upgrade(self) -> None:
        exchange = self.make(method="GET", headers=[("Connection", "Upgrade"),
                                                    ("Upgrade", "h2c")], can_upgrade=True)
        exchange.start()
        self.assertEqual(self.events(), ["requestheaders"])

    def test_extension_offers_filtered(self) -> None:
        """
        Only extensions the WebSocket layer can relay are offered upstream.
        """
        exchange = self.make(method="GET", can_upgrade=True, headers=WEBSOCKET_HEADERS + (
            ("Sec-WebSocket-Extensions", "x-webkit-deflate-frame, permessage-deflate; "
                                         "client_max_window_bits"),))
        exchange.start()
        self.assertEqual(self.flow.request.headers.get_all("sec-websocket-extensions"),
                         ["permessage-deflate; client_max_window_bits"])

        exchange = self.make(method="GET", can_upgrade=True, headers=WEBSOCKET_HEADERS + (
            ("Sec-WebSocket-Extensions", "x-webkit-deflate-frame"),))
        exchange.start()
        self.assertNotIn("sec-websocket-extensions", self.flow.request.headers)


class ReviewFindingTests(ExchangeTestCase):
    """
    Behaviour a review found wrong in the first version of the exchange,
    each test saying what it should be (each failed before its fix).
    """

    def test_kill_in_websocket_handshake(self) -> None:
        """
        A kill in C{websocket_handshake} should kill the flow as in any
        other hook.  It hangs the exchange instead: C{flow.kill()} sets
        C{flow.error}, C{_after_websocket_handshake} does not look at
        C{flow.killed}, and C{_trigger("requestheaders")} returns without
        calling on because of the error, so nothing is ever sent, killed,
        or fired.
        """
        exchange = self.make(self.hooks(websocket_handshake=kill), method="GET",
                             headers=WEBSOCKET_HEADERS, can_upgrade=True)
        exchange.start()
        self.assertEqual(self.timeline.names(), [
            "event.websocket_handshake", "client.abandon", "client.kill", "event.error",
        ])


    def test_kill_in_the_request_hook_of_a_streamed_request(self) -> None:
        """
        A streamed request's C{request} fires after it went out, with
        nothing to do next (C{_nothing}), so a kill there is not acted on;
        but C{flow.error} is set, so every later C{_trigger} stops: the
        server's response reaches C{responseheaders}' trigger, which
        returns without calling on, and the client is never answered.
        Either the kill should take effect, or the response should go on.
        """
        exchange = self.make(self.hooks(requestheaders=stream_request(), request=kill))
        exchange.start()
        self.connect()
        exchange.request_end()
        self.respond(body=b"ok")
        self.assertTrue(exchange.over, exchange)


    def test_request_data_after_a_failure_during_an_upload(self) -> None:
        """
        The server failing in the middle of a streamed upload releases the
        server side, but request_state stays STREAMING: the client's next
        piece (still in flight, or in the same read) goes to
        C{self.server.send_request_data} with C{self.server} None, and
        C{request_end} to C{self.server.end_request}: AttributeError.
        """
        exchange = self.make(self.hooks(requestheaders=stream_request()))
        exchange.start()
        self.connect()
        exchange.request_data(b"part")
        exchange.fail("the server closed the connection")
        exchange.request_data(b"more")
        exchange.request_end()


    def test_request_data_after_client_failed_during_an_upload(self) -> None:
        """
        The same after C{client_failed} or a kill (an HTTP/2 stream's DATA
        frames already in flight).
        """
        exchange = self.make(self.hooks(requestheaders=stream_request()))
        exchange.start()
        self.connect()
        exchange.client_failed("reset")
        exchange.request_data(b"more")


    def test_server_released_during_an_upload(self) -> None:
        """
        An HTTP/1 server that answers before the end of a streamed upload
        calls C{server_released} when its response is complete, which
        drops C{exchange.server} while request_state is STREAMING: the rest
        of the upload then hits C{None.send_request_data}.  The exchange
        keeps the server for the rest of the upload only when the server
        side does not release it.
        """
        exchange = self.make(self.hooks(requestheaders=stream_request()))
        exchange.start()
        self.connect()
        self.respond(body=b"no thanks", end=False)
        exchange.server_released(self.server)
        exchange.response_end()
        exchange.request_data(b"more")
        exchange.request_end()


    def test_too_large_body_after_an_addon_response(self) -> None:
        """
        With a response set in C{requestheaders} the body is read only to
        be dropped, so C{body_size_limit} does not apply to it: the addon's
        response goes out once the request is in, and the exchange, over,
        fires nothing more (a later C{client_failed} fires no C{error}).
        """
        exchange = self.make(self.hooks(requestheaders=answer()), body_size_limit="10")
        exchange.start()
        exchange.request_data(b"x" * 11)
        self.assertFalse(exchange.over)
        exchange.request_end()
        self.assertTrue(exchange.over, exchange)
        self.assertEqual(self.client_calls().count("send_response"), 1)
        exchange.client_failed("client disconnected")
        self.assertNotIn("error", self.events())

    def test_body_of_an_answered_request_is_not_kept(self) -> None:
        """
        The body of a request answered in C{requestheaders} is never used,
        yet every piece is kept in C{request_chunks} until the end (without
        C{body_size_limit}, an upload of any size is held in memory).
        """
        exchange = self.make(self.hooks(requestheaders=answer()))
        exchange.start()
        exchange.request_data(b"x" * 1000)
        self.assertEqual(exchange.request_chunks.size, 0)


    def test_large_body_while_requestheaders_runs(self) -> None:
        """
        A body announced over C{stream_large_bodies} is read into memory
        without bound while an async C{requestheaders} runs: the client's
        reads are not held (the response side holds the server's read gate
        in the same case), so a slow hook buffers what should be streamed.
        """
        held = self.holds("requestheaders")
        exchange = self.make(self.hooks(requestheaders=held),
                             headers=[("Content-Length", "1000")], stream_large_bodies="10")
        exchange.start()
        for _ in range(100):
            exchange.request_data(b"x" * 10)
        self.assertIn("hold_reads", self.client_calls())


    def test_error_waits_for_every_running_hook(self) -> None:
        """
        A streamed request's C{request} hook and the response's
        C{responseheaders} hook may run at the same time; C{_running}
        keeps only the last, and the first to finish clears it, so C{error}
        can fire while the other hook still runs.
        """
        request_held = self.holds("request")
        headers_held = self.holds("responseheaders")
        exchange = self.make(self.hooks(requestheaders=stream_request(), request=request_held,
                                        responseheaders=headers_held))
        exchange.start()
        self.connect()
        exchange.request_end()
        self.respond(body=b"", end=False)
        request_held.fire()
        exchange.client_failed("client disconnected")
        self.assertNotIn("error", self.events())
        headers_held.fire()
        self.assertEqual(self.events()[-1], "error")


    def test_addon_response_not_started_during_its_hooks(self) -> None:
        """
        An addon's response is marked C{response_started} before its
        C{response} hooks run, though nothing has been sent: an error then
        (an HTTP/2 408) breaks the client off (C{started=True}: abort)
        instead of answering it.
        """
        held = self.holds("response")
        exchange = self.make(self.hooks(request=answer(), response=held))
        exchange.start()
        exchange.request_end()
        exchange.client_error(408, "Request Timeout", "too slow")
        held.fire()
        self.assertEqual(self.timeline.args("client", "send_error"),
                         [(408, "Request Timeout", "too slow", False)])


    def test_sides_provide_the_contract(self) -> None:
        """
        Every framing's classes provide the contracts they declare: the
        client sides L{IClientSide}, the server sides L{IServerSide}, the
        server connections L{IServerConnection}, the client layers
        L{IServerOwner} (C{finished()} once disagreed with its interface).
        """
        from zope.interface.verify import verifyClass

        from interceptor.layers.contracts import IEagerLayer, IServerConnection, IServerOwner
        from interceptor.layers.http1 import Http1Layer
        from interceptor.layers.http1_client import Http1ClientSide
        from interceptor.layers.http1_server import Http1ServerConnection
        from interceptor.layers.http2 import Http2Layer
        from interceptor.layers.http2_client import H2ClientSide
        from interceptor.layers.http2_server import H2ServerConnection, H2ServerStream

        for interface, classes in [
            (IClientSide, [Http1ClientSide, H2ClientSide]),
            (IServerSide, [Http1ServerConnection, H2ServerStream]),
            (IServerConnection, [Http1ServerConnection, H2ServerConnection]),
            (IServerOwner, [Http1Layer, Http2Layer]),
            (IEagerLayer, [Http1Layer]),
        ]:
            for cls in classes:
                self.assertTrue(interface.implementedBy(cls), (interface, cls))
                self.assertTrue(verifyClass(interface, cls))

    def test_former_names_are_the_same_classes(self) -> None:
        """
        The names addons may import from before the exchange (README,
        "Import paths that moved") are the classes themselves.
        """
        from interceptor.layers import http1, http1_upstream, http2
        from interceptor.layers.http1_server import Http1ServerConnection
        from interceptor.layers.http2_server import H2ServerConnection

        self.assertIs(http1.UpstreamProtocol, Http1ServerConnection)
        self.assertIs(http1_upstream.UpstreamProtocol, Http1ServerConnection)
        self.assertIs(http2.H2Upstream, H2ServerConnection)

    def test_kill_in_the_response_hook_of_a_streamed_response(self) -> None:
        """
        A kill in C{response} after a streamed response went out is not
        acted on (C{_finish} does not look at C{flow.killed}): the client
        side is C{finished} as usual, yet C{flow.error} says "Connection
        killed." and C{error} never fires.  C{Flow.kill} promises the
        client connection is closed.
        """
        self.make(self.hooks(response=kill), stream_large_bodies="1")
        self.send_request()
        self.respond(make_response(headers=[("Content-Length", "4")]), body=b"body")
        self.assertIn("kill", self.client_calls())

