"""
Each rule of the HTTP exchange (L{interceptor.layers.exchange}) holds for
every pair of framings, client framing -> server framing:

    h1_h1  a plain HTTP/1.1 client, an HTTP/1.1 server
    h1_h2  an HTTP/1.1 client in a CONNECT TLS tunnel, an h2-only TLS server
    h2_h1  an h2 client (CONNECT, TLS, ALPN h2), an HTTP/1.1-only TLS server
    h2_h2  an h2 client, an h2-only TLS server

(the mixed pairs with C{http2_translate}).  Each rule is a mixin written
once; L{for_each_pair} makes a C{TestCase} of it per pair, named
C{<Rule>_<client>_<server>}.  The server answers a L{Reply}, whatever its
framing; the client's answer comes back as a L{Got}; every test checks
the status, the body and the exact events a L{Recorder} saw for the flow.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Optional

from twisted.internet.defer import ensureDeferred
from twisted.trial import unittest

from interceptor.model.http import Response
from interceptor.testing import start_proxy
from tests.e2e.h2peers import H2ProxyClient, H2Server, TestPKI, TlsTunnelClient, bounded
from tests.e2e.peers import (
    HeldHook,
    RawClient,
    RawServer,
    Recorder,
    parse_responses,
    pattern,
    stable,
    unsent,
    wait_until,
)

PAIRS = (("h1", "h1"), ("h1", "h2"), ("h2", "h1"), ("h2", "h2"))

ANSWERED = ["requestheaders", "request", "responseheaders", "response"]
FAILED = ["requestheaders", "request", "responseheaders", "error"]

BIG = 300_000


@dataclass
class Reply:
    """
    What the server answers, in its framing.

    @ivar length: Whether the body's length is announced (Content-Length);
        if not, HTTP/1.1 sends it chunked.
    @ivar trailers: Trailer fields after the body (then not C{length}).
    @ivar cut: Send only this many bytes of the body, then break off: an
        HTTP/1.1 server closes its connection, an h2 server resets the
        stream.
    @ivar early: Answer as soon as the request head arrives, without
        waiting for (or reading) the request body.
    """

    body: bytes = b"ok"
    status: int = 200
    length: bool = True
    trailers: list = field(default_factory=list)
    cut: Optional[int] = None
    early: bool = False


def _h1_answer(reply: Reply) -> Any:
    def answer(conn: Any, request: Any) -> None:
        body = reply.body[: reply.cut] if reply.cut is not None else reply.body
        head = b"HTTP/1.1 %d Whatever\r\n" % reply.status
        if reply.length:
            conn.write(head + b"Content-Length: %d\r\n\r\n" % len(reply.body) + body)
        else:
            names = b", ".join(name for name, _ in reply.trailers)
            head += b"Trailer: %s\r\n" % names if names else b""
            data = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            if reply.cut is None:
                data += b"0\r\n" + b"".join(b"%s: %s\r\n" % t for t in reply.trailers) + b"\r\n"
            conn.write(head + b"Transfer-Encoding: chunked\r\n\r\n" + data)
        if reply.cut is not None:
            conn.close()

    return answer


def _h2_answer(reply: Reply) -> Any:
    def answer(stream: Any) -> None:
        headers = [(b"content-length", b"%d" % len(reply.body))] if reply.length else []
        if reply.cut is None:
            stream.respond(reply.status, headers, reply.body, trailers=reply.trailers or None)
        else:
            stream.respond(reply.status, headers, reply.body[: reply.cut], end=False)
            stream.reset()

    return answer


def _ignore(conn: Any, request: Any) -> None:
    pass


@dataclass
class Got:
    """
    What the client got: C{status} None if no response head came; C{ended}
    whether the response ended as its framing says (not cut off, reset or
    dropped).
    """

    status: Optional[int]
    body: bytes
    ended: bool
    trailers: list

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 40 else self.body[:40] + b"..."
        return (f"Got(status={self.status}, {len(self.body)} bytes {body!r}, "
                f"ended={self.ended}, trailers={self.trailers})")


def _has_response(data: bytes) -> bool:
    try:
        responses = parse_responses(data, complete_only=True)
    except ValueError:
        return False
    return any(r.status >= 200 for r in responses)


class _Pair(unittest.TestCase):
    """
    A client of C{client_framing}, a proxy with a L{Recorder} after the
    test's addons, and a server of C{server_framing} answering a L{Reply}.
    """

    client_framing = "h1"
    server_framing = "h1"
    timeout = 10

    async def start(self, *addons: Any, reply: Optional[Reply] = None, **options: Any) -> None:
        """
        Start the server (answering C{reply}, by default 200 "ok"), the
        proxy (with C{options}) and the client.
        """
        reply = reply or Reply()
        self.recorder = Recorder()
        options.setdefault("read_timeout", 3.0)
        options.setdefault("connect_timeout", 3.0)
        plain = (self.client_framing, self.server_framing) == ("h1", "h1")
        if not plain:
            pki = TestPKI(self.mktemp())
            options.update(confdir=self.mktemp(), ssl_verify_upstream_trusted_ca=pki.ca_path)
            if self.client_framing != self.server_framing:
                options["http2_translate"] = True
        if self.server_framing == "h2":
            answer = _h2_answer(reply)
            on_request, on_head = (None, answer) if reply.early else (answer, None)
            self.server = await H2Server.start(self, pki, on_request, on_headers=on_head)
        else:
            tls = None if plain else pki.server_context_factory([b"http/1.1"], [])
            answer = _h1_answer(reply)
            on_request, on_head = (_ignore, answer) if reply.early else (answer, None)
            self.server = await RawServer.start(self, on_request, tls=tls, on_head=on_head)
        self.proxy = await start_proxy(self, *addons, self.recorder, **options)
        if plain:
            self.client = await RawClient.connect(self, self.proxy.port_number)
        elif self.client_framing == "h1":
            self.client = await TlsTunnelClient.tunnel(self, self.proxy, self.server.port)
            self.assertEqual(self.client.negotiated, b"http/1.1")
        else:
            self.client = await H2ProxyClient.connect(self, self.proxy, self.server.port, alpn=(b"h2",))
            self.assertEqual(self.client.negotiated, b"h2")

    async def fetch(self, method: bytes = b"GET", path: bytes = b"/", body: bytes = b"",
                    length: bool = True, headers: tuple = (), trailers: tuple = ()) -> Got:
        """
        Send a request (with C{body}, its length announced or not, and
        C{trailers}) and wait for its response to end, or for the proxy to
        drop it.
        """
        fields = list(headers)
        if body and length:
            fields.append((b"content-length", b"%d" % len(body)))
        if self.client_framing == "h2":
            r = self.client.request(method.decode(), path.decode(), fields, body, list(trailers) or None)
            await bounded(r.done)
            return Got(r.status or None, bytes(r.body), r.ended and r.reset_code is None, r.trailers or [])
        authority = b"127.0.0.1:%d" % self.server.port
        target = path if isinstance(self.client, TlsTunnelClient) else b"http://" + authority + path
        if not length:
            fields.append((b"transfer-encoding", b"chunked"))
            chunk = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            body = chunk + b"0\r\n" + b"".join(b"%s: %s\r\n" % t for t in trailers) + b"\r\n"
        head = b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (method, target, authority)
        self.client.send(head + b"".join(b"%s: %s\r\n" % f for f in fields) + b"\r\n" + body)
        data = await self.client.wait_for(_has_response, timeout=5)
        responses = [r for r in parse_responses(data) if r.status >= 200] if data else []
        if not responses:
            return Got(None, b"", False, [])
        r = responses[0]
        return Got(r.status, r.body, r.complete, [(n.lower(), v) for n, v in r.trailers])

    async def events(self) -> list:
        """
        The events of the test's one flow, once it is over (C{response} or
        C{error} fired).
        """

        def over() -> bool:
            flows = self.recorder.flows()
            return bool(flows) and bool({"response", "error"} & set(self.recorder.flow_events(flows[0])))

        self.assertTrue(await wait_until(over, 5), self.recorder.names())
        [self.flow] = self.recorder.flows()
        return self.recorder.flow_events(self.flow)

    def server_requests(self) -> int:
        """
        How many requests reached the server (begun, for h2).
        """
        if self.server_framing == "h2":
            return len(self.server.streams)
        return sum(1 for conn in self.server.connections if conn.received)

    def server_progress(self) -> list:
        """
        What changes while the server is sending: the body bytes each h2
        stream sent, the bytes each HTTP/1.1 connection has not handed to
        the kernel yet.
        """
        if self.server_framing == "h2":
            return [stream.sent for stream in self.server.streams]
        # (Over TLS the connection's transport is the TLS protocol, over TCP.)
        return [unsent(getattr(c.transport, "transport", c.transport)) for c in self.server.connections]

    def server_received(self) -> tuple:
        """
        The body and trailers of the one request the server received whole.
        """
        if self.server_framing == "h2":
            [stream] = [s for s in self.server.streams if s.ended]
            return bytes(stream.body), stream.trailers or []
        [request] = self.server.requests
        return request.body, [(n.lower(), v) for n, v in request.trailers]


def for_each_pair(rule: type) -> type:
    """
    Make a C{TestCase} of the mixin C{rule} for each of L{PAIRS}, named
    C{<rule>_<client>_<server>}, in C{rule}'s module.
    """
    module = vars(sys.modules[rule.__module__])
    for client, server in PAIRS:
        name = f"{rule.__name__}_{client}_{server}"
        attributes = {
            "client_framing": client,
            "server_framing": server,
            "__module__": rule.__module__,
            "__qualname__": name,
        }
        module[name] = type(name, (rule, _Pair), attributes)
    return rule


# -- the rules ------------------------------------------------------------------


@for_each_pair
class AsyncHookBodyLimit:
    """
    body_size_limit holds for a response body that arrives while an
    asynchronous responseheaders hook runs.
    """

    async def test_unannounced_body_over_limit_refused(self: Any) -> None:
        """A 300 KB body without a length, limit 100k, held in responseheaders until the server sent all it could: refused, error, no response."""
        held = HeldHook("responseheaders")
        await self.start(held, reply=Reply(pattern(BIG), length=False), body_size_limit="100k")
        fetching = ensureDeferred(self.fetch())
        self.assertTrue(await wait_until(lambda: held.pending))
        await stable(self.server_progress, period=0.05)
        held.release()
        got = await fetching
        self.assertEqual(got.status, 502, got)
        self.assertEqual(await self.events(), FAILED)
        self.assertIn("exceeds", self.flow.error.msg)


@for_each_pair
class BodySizeLimit:
    """
    body_size_limit refuses a request body (413) and a response body (502).
    """

    async def test_request_length_over_limit(self: Any) -> None:
        """A request announcing 2000 bytes, limit 1k: 413, error, the server never sees it."""
        await self.start(body_size_limit="1k")
        got = await self.fetch(b"POST", body=pattern(2000))
        self.assertEqual(got.status, 413, got)
        self.assertEqual(await self.events(), ["requestheaders", "error"])
        self.assertEqual(self.server_requests(), 0)

    async def test_request_body_over_limit(self: Any) -> None:
        """A request body of 2000 bytes without a length, limit 1k: 413, error, the server never sees it."""
        await self.start(body_size_limit="1k")
        got = await self.fetch(b"POST", body=pattern(2000), length=False)
        self.assertEqual(got.status, 413, got)
        self.assertEqual(await self.events(), ["requestheaders", "error"])
        self.assertEqual(self.server_requests(), 0)

    async def test_response_length_over_limit(self: Any) -> None:
        """A response announcing 2000 bytes, limit 1k: 502, error, no response event."""
        await self.start(reply=Reply(pattern(2000)), body_size_limit="1k")
        got = await self.fetch()
        self.assertEqual(got.status, 502, got)
        self.assertEqual(await self.events(), FAILED)


@for_each_pair
class StreamLargeBodies:
    """
    Streamed response bodies: past stream_large_bodies, or with a chunk
    transform an addon set.
    """

    async def test_large_response_streamed(self: Any) -> None:
        """A 300 KB response over stream_large_bodies=10k arrives intact, streamed (response.stream is True, the body not kept)."""
        seen = []

        class SeeStream:
            def response(self, flow: Any) -> None:
                seen.append((flow.response.stream, flow.response.raw_content))

        body = pattern(BIG)
        await self.start(SeeStream(), reply=Reply(body), stream_large_bodies="10k")
        got = await self.fetch()
        self.assertEqual((got.status, got.ended, len(got.body)), (200, True, BIG))
        self.assertTrue(got.body == body)
        self.assertEqual(seen, [(True, None)])
        self.assertEqual(await self.events(), ANSWERED)

    async def test_chunk_transform(self: Any) -> None:
        """An addon's flow.response.stream = lambda b: b.upper() is applied to every piece of a 100 KB body."""

        class Upper:
            def responseheaders(self, flow: Any) -> None:
                flow.response.stream = lambda data: data.upper()

        body = pattern(100_000)
        await self.start(Upper(), reply=Reply(body))
        got = await self.fetch()
        self.assertEqual((got.status, got.ended, len(got.body)), (200, True, len(body)))
        self.assertTrue(got.body == body.upper())
        self.assertEqual(await self.events(), ANSWERED)


@for_each_pair
class AddonResponse:
    """
    A response an addon sets before the request goes out is the answer:
    the server is not asked.  (Through a TLS tunnel the proxy connects to
    the server for the handshake before the request: no C{serverconnect}
    after the request's first event, and no request bytes at the server.)
    """

    async def check_answered_by_addon(self: Any, hook: str, events: list) -> None:
        class Answer:
            pass

        def answer(flow: Any) -> None:
            flow.response = Response.make(201, b"from the addon")

        addon = Answer()
        setattr(addon, hook, answer)
        await self.start(addon)
        got = await self.fetch()
        self.assertEqual((got.status, got.body, got.ended), (201, b"from the addon", True))
        self.assertEqual(await self.events(), events)
        names = self.recorder.names()
        self.assertNotIn("serverconnect", names[names.index("requestheaders"):], names)
        self.assertEqual(self.server_requests(), 0)

    async def test_in_requestheaders(self: Any) -> None:
        """A response set in requestheaders: the client gets it, response fires, no serverconnect, the server gets nothing."""
        await self.check_answered_by_addon("requestheaders", ["requestheaders", "response"])

    async def test_in_request(self: Any) -> None:
        """A response set in request: the client gets it, response fires, no serverconnect, the server gets nothing."""
        await self.check_answered_by_addon("request", ["requestheaders", "request", "response"])


@for_each_pair
class Kill:
    """
    flow.kill() drops the exchange: no response reaches the client, and
    error is the flow's last event.
    """

    async def check_killed(self: Any, hook: str, events: list) -> None:
        class Killer:
            pass

        setattr(Killer, hook, lambda self, flow: flow.kill())
        await self.start(Killer(), reply=Reply(pattern(1000)))
        got = await self.fetch()
        self.assertEqual((got.status, got.ended), (None, False), got)
        self.assertEqual(await self.events(), events)

    async def test_in_requestheaders(self: Any) -> None:
        """Killed in requestheaders: no response, error last, the server gets nothing."""
        await self.check_killed("requestheaders", ["requestheaders", "error"])
        self.assertEqual(self.server_requests(), 0)

    async def test_in_responseheaders(self: Any) -> None:
        """Killed in responseheaders: no response, error last."""
        await self.check_killed("responseheaders", FAILED)


@for_each_pair
class ServerBreaksOff:
    """
    A server that breaks off in the middle of a body (HTTP/1.1: closes
    the connection; h2: resets the stream) fails the flow.
    """

    async def test_buffered_response(self: Any) -> None:
        """A buffered 50 KB body broken off after 10 KB: 502, error, no response event."""
        await self.start(reply=Reply(pattern(50_000), cut=10_000))
        got = await self.fetch()
        self.assertEqual(got.status, 502, got)
        self.assertEqual(await self.events(), FAILED)

    async def test_streamed_response(self: Any) -> None:
        """A streamed 50 KB body broken off after 10 KB: the client sees a broken response, error, no response event."""
        body = pattern(50_000)
        await self.start(reply=Reply(body, cut=10_000), stream_large_bodies="1k")
        got = await self.fetch()
        self.assertEqual(got.status, 200, got)
        self.assertFalse(got.ended, got)
        self.assertTrue(body.startswith(got.body))
        self.assertEqual(await self.events(), FAILED)


@for_each_pair
class Trailers:
    """
    Trailers pass through, both ways: HTTP/1.1 chunked trailers and h2
    trailing HEADERS, translated between them.
    """

    async def test_response_trailers(self: Any) -> None:
        """A response of 5 bytes and a trailer field x-t: 1 arrives with its trailer."""
        reply = Reply(b"hello", length=False, trailers=[(b"x-t", b"1")])
        await self.start(reply=reply)
        got = await self.fetch(headers=((b"te", b"trailers"),))
        self.assertEqual((got.status, got.body, got.ended), (200, b"hello", True))
        self.assertEqual(got.trailers, [(b"x-t", b"1")])
        self.assertEqual(await self.events(), ANSWERED)
        self.assertEqual(self.flow.response.trailers.fields, [(b"x-t", b"1")])

    async def test_request_trailers(self: Any) -> None:
        """A request of 5 bytes and a trailer field x-t: 2 reaches the server with its trailer."""
        await self.start()
        got = await self.fetch(b"POST", body=b"hello", length=False, trailers=((b"x-t", b"2"),))
        self.assertEqual((got.status, got.body, got.ended), (200, b"ok", True))
        self.assertEqual(self.server_received(), (b"hello", [(b"x-t", b"2")]))
        self.assertEqual(await self.events(), ANSWERED)


@for_each_pair
class ServerAnswersEarly:
    """
    A server may answer before it has read the whole request: with the
    request body streamed, the client gets the answer and is not left with
    an upload it can never finish (it is taken whole, or the client is
    told to stop: HTTP/1.1 closes the connection, h2 resets the stream).
    """

    async def test_streamed_upload(self: Any) -> None:
        """A 2 MB upload streamed to a server answering on the request head: the client gets the answer and its upload ends."""
        body = pattern(2_000_000)
        await self.start(reply=Reply(b"early", early=True), stream_large_bodies="10k")
        got = await self.fetch(b"POST", body=body)
        self.assertEqual((got.status, got.body, got.ended), (200, b"early", True))

        def upload_over() -> bool:
            client = self.client
            if self.client_framing == "h1":
                return client.closed
            sid = max(client.sent)
            return client.sent[sid] == len(body) or client.responses[sid].reset_code is not None

        over = await wait_until(upload_over, 1.5)
        errors = sorted({f.getErrorMessage() for f in self.flushLoggedErrors()})
        self.assertEqual(errors, [])
        self.assertTrue(over, "the client's upload neither finished nor was stopped")
        events = await self.events()
        self.assertIn("response", events)
        self.assertNotIn("error", events)
