# -*- test-case-name: tests.e2e -*-
"""
Real peers on 127.0.0.1 for the end-to-end tests: servers the proxy talks
to, clients that talk to the proxy, and a parser for what comes back::

    server = await RawServer.start(self, handler)        # scripted upstream
    web = await WebServer.start(self)                     # a twisted.web Site
    client = await RawClient.connect(self, proxy.port_number)
    client.send(b"GET http://127.0.0.1:%d/ HTTP/1.1\\r\\n\\r\\n" % server.port)
    data = await client.wait_closed(3)
    [response] = parse_responses(data)

    result = await curl(self, "-x", proxy.url, web.url("/echo"))
    response, body = await agent_request(self, proxy, b"GET", web.url("/echo"))

Everything started here is stopped in the test's cleanup, and every wait is
bounded, so a misbehaving proxy fails a test instead of hanging the suite.
The other peer modules build on L{LoopbackServer}, L{LoopbackClient} and
L{tracking_factory} from here.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import termios
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from twisted.internet import error, reactor
from twisted.internet.defer import Deferred, DeferredList, TimeoutError
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.client import HTTPConnectionPool, ProxyAgent, readBody
from twisted.web.http_headers import Headers as WebHeaders
from twisted.web.iweb import IBodyProducer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer

__all__ = [
    "RawRequest",
    "RawServer",
    "RawClient",
    "ParsedResponse",
    "parse_responses",
    "WebServer",
    "curl",
    "agent_request",
    "proxy_agent",
    "pattern",
    "Recorder",
    "CurlResult",
    "unused_port",
    "sleep",
    "wait_until",
    "advance",
    "stable",
    "unsent",
    "read_by_peer",
    "delivered",
    "HeldHook",
    "http_response",
    "ok_handler",
    "LoopbackServer",
    "LoopbackClient",
    "TrackedConnection",
    "tracking_factory",
    "find_header",
]


def sleep(seconds: float) -> Deferred:
    """
    A Deferred firing after C{seconds}.
    """
    return deferLater(reactor, seconds, lambda: None)


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    """
    Poll C{predicate} until it is true or C{timeout} seconds pass: at once,
    then after 1 ms, doubling up to every 10 ms.

    @return: Its last value.
    """
    deadline = reactor.seconds() + timeout
    interval = 0.001
    while not predicate() and reactor.seconds() < deadline:
        await sleep(interval)
        interval = min(interval * 2, 0.01)
    return bool(predicate())


async def stable(getter: Callable[[], Any], period: float = 0.1, timeout: float = 4.0) -> Any:
    """
    Wait until C{getter()} has not changed for C{period} seconds (or
    C{timeout} passed): for a flow that stops where a peer holds it back.

    @return: Its last value.
    """
    last = getter()
    still_since = reactor.seconds()
    deadline = still_since + timeout
    while reactor.seconds() - still_since < period and reactor.seconds() < deadline:
        await sleep(0.005)
        now = getter()
        if now != last:
            last, still_since = now, reactor.seconds()
    return last


async def advance(clock: Any, seconds: float, step: float = 0.25) -> None:
    """
    Move a proxy's L{Clock<twisted.internet.task.Clock>} on by C{seconds}
    in steps of C{step}, giving the reactor a turn after each step so that
    what a timer wrote reaches the peers and what they answer reaches the
    proxy before the next step, as it would in real time.
    """
    while seconds > 1e-9:
        moved = min(step, seconds)
        clock.advance(moved)
        seconds -= moved
        await sleep(0)


def unsent(transport: Any) -> int:
    """
    How many bytes a Twisted TCP transport holds that the kernel has not
    taken yet: more than 0 once the other side stops reading.
    """
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def _queued(transport: Any, request: int) -> int:
    return struct.unpack("i", fcntl.ioctl(transport.socket.fileno(), request, b"\0\0\0\0"))[0]


def delivered(transport: Any) -> bool:
    """
    Whether every byte written on the TCP C{transport} is in the other
    end's socket: nothing is left in Twisted's buffer or in the kernel's
    send queue (Linux ioctl).  Whether the other end has read them is
    L{read_by_peer}.
    """
    return not unsent(transport) and not _queued(transport, termios.TIOCOUTQ)


def read_by_peer(transport: Any) -> bool:
    """
    Whether every byte written on the TCP C{transport} has been read by the
    other end, which runs in this process (the proxy): nothing is left in
    Twisted's buffer or in the kernel's send queue, and the other end's
    socket has nothing left to read (Linux ioctls).  The other end handles
    what it reads at once, so its state is the one to test from then on.
    """
    if not delivered(transport):
        return False
    here, there = transport.getHost(), transport.getPeer()
    for other in reactor.getReaders():
        if getattr(other, "socket", None) is None or not hasattr(other, "getPeer"):
            continue
        try:
            if other.getHost() == there and other.getPeer() == here:
                return _queued(other, termios.FIONREAD) == 0
        except (OSError, AttributeError, NotImplementedError):
            continue
    return False


def http_response(
    status: int = 200,
    body: bytes = b"",
    headers: Optional[list[tuple[bytes, bytes]]] = None,
    reason: bytes = b"",
    length: bool = True,
) -> bytes:
    """
    Bytes of a simple HTTP/1.1 response, with a Content-Length unless
    C{length} is false or the headers already frame the body.
    """
    headers = list(headers or [])
    names = {n.lower() for n, _ in headers}
    if length and b"content-length" not in names and b"transfer-encoding" not in names:
        headers.append((b"Content-Length", b"%d" % len(body)))
    reason = reason or {200: b"OK", 204: b"No Content", 304: b"Not Modified", 404: b"Not Found"}.get(
        status, b"Whatever"
    )
    head = b"HTTP/1.1 %d %s\r\n" % (status, reason)
    head += b"".join(b"%s: %s\r\n" % (n, v) for n, v in headers)
    return head + b"\r\n" + body


def ok_handler(conn: Any, request: Any) -> None:
    """
    A L{RawServer} handler answering 200 "ok" to every request.
    """
    conn.write(http_response(200, b"ok"))


def find_header(
    headers: Sequence[tuple[bytes, bytes]], name: bytes, fold_case: bool = False
) -> Optional[bytes]:
    """
    The first value of C{name} in the (name, value) pairs C{headers}, or
    None; names compare case-insensitively if C{fold_case}.
    """
    if fold_case:
        name = name.lower()
    for n, v in headers:
        if (n.lower() if fold_case else n) == name:
            return v
    return None


# -- shared plumbing of the servers and clients ------------------------------


class TrackedConnection(ProtocolWrapper):
    """
    A connection wrapped by L{tracking_factory}: C{closed} turns true and
    C{lost} fires when the connection goes; C{received} counts the bytes
    it got.
    """

    def __init__(self, factory: Any, wrapped: Any) -> None:
        super().__init__(factory, wrapped)
        self.lost: Deferred = Deferred()
        self.closed = False
        self.received = 0

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)
        super().dataReceived(data)

    def connectionLost(self, reason: Any) -> None:
        self.closed = True
        super().connectionLost(reason)
        self.lost.callback(None)


def tracking_factory(factory: Any, connections: list) -> WrappingFactory:
    """
    A quiet C{WrappingFactory} around C{factory} that wraps every connection
    in a L{TrackedConnection} and appends it to C{connections}.
    """
    wrapping = WrappingFactory(factory)
    wrapping.protocol = TrackedConnection
    original = wrapping.buildProtocol

    def build(addr: Any) -> Any:
        protocol = original(addr)
        connections.append(protocol)
        return protocol

    wrapping.buildProtocol = build
    return wrapping


class LoopbackServer:
    """
    The base of the test servers: listens on a free port of 127.0.0.1 and
    is stopped in the test's cleanup.

    @ivar connections: The accepted connections, in order; each has
        C{transport}, C{closed} and C{lost} (fired when it goes).
    @ivar listening: The listening port.
    @ivar port: Its number.
    """

    def __init__(self) -> None:
        self.connections: list = []
        self.listening: Any = None
        self.port = 0

    def _listen(self, testcase: Any, factory: Any, tls: Any = None) -> None:
        """
        Listen with C{factory} on a free port of 127.0.0.1 (over TLS with
        the context factory C{tls}, if given); stopped in C{testcase}'s
        cleanup.
        """
        factory.noisy = False
        if tls is None:
            self.listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
        else:
            self.listening = reactor.listenSSL(0, factory, tls, interface="127.0.0.1")
        self.port = self.listening.getHost().port
        testcase.addCleanup(self.stop)

    def stop(self) -> Deferred:
        """
        Stop listening and drop every open connection.
        """
        waiting = [self.listening.stopListening()]
        for conn in self.connections:
            if not conn.closed:
                conn.transport.abortConnection()
                waiting.append(conn.lost)
        return DeferredList([d for d in waiting if d is not None])


class LoopbackClient(Protocol):
    """
    The base of the raw test clients: keeps every byte it receives.

    @ivar received: Every byte received.
    @ivar closed: Whether the connection is gone (C{lost} has fired, with
        C{reason} set).
    """

    def __init__(self) -> None:
        self.received = bytearray()
        self.lost: Deferred = Deferred()
        self.closed = False
        self.reason: Any = None

    @classmethod
    async def connect(cls, testcase: Any, port: int) -> Any:
        """
        Connect to 127.0.0.1:C{port}; aborted in C{testcase}'s cleanup.
        """
        client = cls()
        factory = ClientFactory.forProtocol(lambda: client)
        factory.noisy = False
        await TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5).connect(factory)
        testcase.addCleanup(client.abort)
        return client

    def send(self, data: bytes) -> None:
        """
        Send C{data} as it is.
        """
        self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        self.reason = reason
        self.lost.callback(None)

    def abort(self) -> Optional[Deferred]:
        """
        Drop the connection (if still open) and wait until it is gone.
        """
        if not self.closed:
            self.transport.abortConnection()
            return self.lost
        return None


# -- a raw, scriptable upstream server --------------------------------------


@dataclass
class RawRequest:
    """
    One request as a L{RawServer} received it.
    """

    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    head: bytes
    body: bytes
    chunked: bool = False
    trailers: list = field(default_factory=list)

    def header(self, name: bytes) -> Optional[bytes]:
        """
        The first value of header C{name} (case-insensitive), or None.
        """
        return find_header(self.headers, name, fold_case=True)


def _parse_head(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\r\n")
    fields = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        fields.append((name, value.strip()))
    return lines[0], fields


class _ChunkedDecoder:
    """
    Decodes a chunked body from a buffer; C{feed} returns (done, rest).
    """

    def __init__(self) -> None:
        self.body = bytearray()
        self.buf = bytearray()
        self.state = "size"
        self.remaining = 0
        self.trailers: list[tuple[bytes, bytes]] = []

    def feed(self, data: bytes) -> tuple[bool, bytes]:
        self.buf += data
        while True:
            if self.state == "size":
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return False, b""
                size = int(bytes(self.buf[:end]).split(b";")[0].strip() or b"0", 16)
                del self.buf[: end + 2]
                if size == 0:
                    self.state = "trailers"
                else:
                    self.remaining = size
                    self.state = "data"
            elif self.state == "data":
                if len(self.buf) < self.remaining + 2:
                    return False, b""
                self.body += self.buf[: self.remaining]
                del self.buf[: self.remaining + 2]
                self.state = "size"
            else:
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return False, b""
                line = bytes(self.buf[:end])
                del self.buf[: end + 2]
                if not line:
                    rest = bytes(self.buf)
                    self.buf.clear()
                    return True, rest
                name, _, value = line.partition(b":")
                self.trailers.append((name, value.strip()))


class RawServerConnection(Protocol):
    """
    One connection to a L{RawServer}: parses requests (Content-Length and
    chunked bodies) and hands each complete one to the server's handler.

    @ivar received: Every byte received.
    @ivar requests: The complete requests, in order.
    """

    def __init__(self, server: "RawServer") -> None:
        self.server = server
        self.received = bytearray()
        self.requests: list[RawRequest] = []
        self.lost: Deferred = Deferred()
        self.closed = False
        self._buf = b""
        self._pending: Optional[RawRequest] = None
        self._remaining = 0
        self._chunks: Optional[_ChunkedDecoder] = None

    def connectionMade(self) -> None:
        self.server.connections.append(self)
        if self.server.on_connect is not None:
            self.server.on_connect(self)

    def write(self, data: bytes) -> None:
        """
        Send bytes, unless the connection is gone.
        """
        if not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        """
        Close after the pending writes.
        """
        self.transport.loseConnection()

    def abort(self) -> None:
        """
        Reset the connection now.
        """
        self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self._buf += data
        self._parse()

    def _parse(self) -> None:
        while self._buf and not self.closed:
            if self._pending is None:
                end = self._buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head, self._buf = self._buf[: end + 4], self._buf[end + 4 :]
                first, fields = _parse_head(head)
                parts = first.split(b" ")
                if len(parts) != 3:
                    parts = (parts + [b"", b"", b""])[:3]
                request = RawRequest(parts[0], parts[1], parts[2], fields, head, b"")
                te = request.header(b"transfer-encoding")
                cl = request.header(b"content-length")
                self._pending = request
                if self.server.on_head is not None:
                    self.server.on_head(self, request)
                if te is not None and b"chunked" in te.lower():
                    request.chunked = True
                    self._chunks = _ChunkedDecoder()
                elif cl is not None:
                    self._remaining = int(cl)
                else:
                    self._remaining = 0
                if self._chunks is None and self._remaining == 0:
                    self._complete()
                    continue
            if self._chunks is not None:
                done, rest = self._chunks.feed(self._buf)
                self._buf = b""
                if not done:
                    return
                self._pending.body = bytes(self._chunks.body)
                self._pending.trailers = self._chunks.trailers
                self._chunks = None
                self._buf = rest
                self._complete()
            else:
                take = self._buf[: self._remaining]
                self._buf = self._buf[len(take) :]
                self._pending.body += take
                self._remaining -= len(take)
                if self._remaining == 0:
                    self._complete()

    def _complete(self) -> None:
        request, self._pending = self._pending, None
        self.requests.append(request)
        self.server.requests.append(request)
        self.server.handler(self, request)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        self.lost.callback(None)


class RawServer(LoopbackServer):
    """
    A TCP server on 127.0.0.1 whose C{handler(conn, request)} answers each
    request with whatever bytes it likes (or none, or a reset).

    @ivar connections: Every L{RawServerConnection} accepted, in order.
    @ivar requests: Every complete request, in order, over all connections.
    """

    def __init__(
        self,
        handler: Callable[[RawServerConnection, RawRequest], None],
        on_connect: Optional[Callable[[RawServerConnection], None]] = None,
        on_head: Optional[Callable[[RawServerConnection, RawRequest], None]] = None,
    ) -> None:
        super().__init__()
        self.handler = handler
        self.on_connect = on_connect
        self.on_head = on_head
        self.requests: list[RawRequest] = []

    @classmethod
    async def start(cls, testcase: Any, handler: Callable, tls: Any = None, **kw: Any) -> "RawServer":
        """
        Listen on a free port of 127.0.0.1 (over TLS with the server
        context factory C{tls}, if given); stopped in C{testcase}'s cleanup.
        """
        server = cls(handler, **kw)
        server._listen(testcase, Factory.forProtocol(lambda: RawServerConnection(server)), tls)
        return server

    def url(self, path: str = "/") -> str:
        """
        C{http://127.0.0.1:port} + C{path}.
        """
        return f"http://127.0.0.1:{self.port}{path}"


# -- a twisted.web server ---------------------------------------------------


class _Echo(Resource):
    isLeaf = True

    def render(self, request: Any) -> bytes:
        body = request.content.read()
        raw = [
            [n.decode("latin-1"), v.decode("latin-1")]
            for n, vs in request.requestHeaders.getAllRawHeaders()
            for v in vs
        ]
        data = {
            "method": request.method.decode(),
            "uri": request.uri.decode(),
            "version": request.clientproto.decode(),
            "headers": raw,
            "body": body.decode("latin-1"),
        }
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(data).encode()


class _Bytes(Resource):
    """
    C{/bytes?n=N}: N bytes of a repeating pattern, with Content-Length.
    """

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        n = int(request.args.get(b"n", [b"10"])[0])
        return pattern(n)


class _Chunked(Resource):
    """
    C{/chunked?parts=N&size=S}: N writes of S bytes, no Content-Length
    (so HTTP/1.1 clients get a chunked body).
    """

    isLeaf = True

    def render_GET(self, request: Any) -> Any:
        parts = int(request.args.get(b"parts", [b"3"])[0])
        size = int(request.args.get(b"size", [b"10"])[0])
        data = pattern(parts * size)
        for i in range(parts):
            request.write(data[i * size : (i + 1) * size])
        request.finish()
        return NOT_DONE_YET


def pattern(n: int) -> bytes:
    """
    C{n} bytes of a recognisable repeating pattern.
    """
    unit = b"0123456789abcdefghijklmnopqrstuvwxyz\n"
    return (unit * (n // len(unit) + 1))[:n]


class WebServer(LoopbackServer):
    """
    A twisted.web Site on 127.0.0.1 with C{/echo} (the request as JSON),
    C{/bytes?n=N} and C{/chunked?parts=N&size=S}; counts connections.

    @ivar connections: Every accepted connection (L{TrackedConnection}s),
        in order.
    """

    def __init__(self) -> None:
        super().__init__()
        root = Resource()
        root.putChild(b"echo", _Echo())
        root.putChild(b"bytes", _Bytes())
        root.putChild(b"chunked", _Chunked())
        self.root = root
        self.site = Site(root)
        self.site.noisy = False
        self.site.log = lambda request: None

    @classmethod
    async def start(cls, testcase: Any) -> "WebServer":
        """
        Listen on a free port of 127.0.0.1; stopped in C{testcase}'s cleanup.
        """
        server = cls()
        server._listen(testcase, tracking_factory(server.site, server.connections))
        return server

    def url(self, path: str = "/") -> str:
        """
        C{http://127.0.0.1:port} + C{path}.
        """
        return f"http://127.0.0.1:{self.port}{path}"


# -- a raw client -----------------------------------------------------------


class RawClient(LoopbackClient):
    """
    A client that sends exact bytes to the proxy and keeps every byte it
    gets back.
    """

    async def wait_closed(self, timeout: float = 3.0) -> bytes:
        """
        Wait until the proxy closes the connection, at most C{timeout}
        seconds (then abort it and raise L{TimeoutError}).

        @return: Every byte received.
        """
        if not self.closed:
            waiting: Deferred = Deferred()
            self.lost.addBoth(lambda r: (waiting.called or waiting.callback(None), r)[1])
            timer = reactor.callLater(timeout, lambda: waiting.called or waiting.callback(None))
            await waiting
            if timer.active():
                timer.cancel()
            if not self.closed:
                await self.abort()
                raise TimeoutError(
                    f"the proxy did not close the connection within {timeout} s; "
                    f"received {bytes(self.received)[:300]!r}"
                )
        return bytes(self.received)

    async def wait_for(self, predicate: Callable[[bytes], bool], timeout: float = 3.0) -> bytes:
        """
        Wait until C{predicate(received)} holds, at most C{timeout} seconds
        (then raise L{TimeoutError}).  Returns early if the connection closes.
        """
        ok = await wait_until(lambda: predicate(bytes(self.received)) or self.closed, timeout)
        if not ok:
            raise TimeoutError(
                f"nothing satisfying within {timeout} s; received {bytes(self.received)[:300]!r}"
            )
        return bytes(self.received)

    async def wait_responses(self, count: int, methods: tuple = (), timeout: float = 3.0) -> list:
        """
        Wait until C{count} complete responses arrived (1xx not counted).
        """

        def enough(data: bytes) -> bool:
            try:
                parsed = parse_responses(data, methods, complete_only=True)
            except ValueError:
                return False
            return len([r for r in parsed if r.status >= 200]) >= count

        data = await self.wait_for(enough, timeout)
        return parse_responses(data, methods)


# -- response parsing -------------------------------------------------------


@dataclass
class ParsedResponse:
    """
    A response as the raw client received it.
    """

    version: bytes
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    head: bytes
    body: bytes
    framing: str = "length"
    complete: bool = True
    trailing: bytes = field(default=b"", repr=False)
    trailers: list = field(default_factory=list)

    def header(self, name: bytes) -> Optional[bytes]:
        """
        The first value of header C{name} (case-insensitive), or None.
        """
        return find_header(self.headers, name, fold_case=True)

    def header_names(self) -> list[bytes]:
        """
        The header names as sent, in order.
        """
        return [n for n, _ in self.headers]


def parse_responses(data: bytes, methods: tuple = (), complete_only: bool = False) -> list:
    """
    Split the bytes a client received into responses.  C{methods} are the
    methods of the requests, in order, so responses to HEAD have no body.
    A body with neither length nor chunking runs to the end of C{data}.

    @raise ValueError: The bytes are not HTTP responses.
    """
    responses: list[ParsedResponse] = []
    index = 0
    while data:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if complete_only:
                break
            raise ValueError(f"incomplete or invalid response head: {data[:200]!r}")
        head = data[: end + 4]
        rest = data[end + 4 :]
        first, fields = _parse_head(head)
        parts = first.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise ValueError(f"not an HTTP response: {first[:200]!r}")
        status = int(parts[1])
        response = ParsedResponse(
            parts[0], status, parts[2] if len(parts) > 2 else b"", fields, head, b""
        )
        responses.append(response)
        if 100 <= status < 200:
            data = rest
            continue
        method = methods[index] if index < len(methods) else b"GET"
        index += 1
        te = response.header(b"transfer-encoding")
        cl = response.header(b"content-length")
        if method == b"HEAD" or status in (204, 304):
            response.framing = "none"
            data = rest
        elif te is not None and b"chunked" in te.lower():
            response.framing = "chunked"
            decoder = _ChunkedDecoder()
            done, after = decoder.feed(rest)
            response.body = bytes(decoder.body)
            response.trailers = decoder.trailers
            response.complete = done
            if not done:
                if complete_only:
                    responses.pop()
                break
            data = after
        elif cl is not None:
            n = int(cl)
            response.body = rest[:n]
            response.complete = len(rest) >= n
            if not response.complete and complete_only:
                responses.pop()
                break
            data = rest[n:]
        else:
            response.framing = "close"
            response.body = rest
            if complete_only:
                # Complete only once the connection closes (wait_for
                # returns then anyway).
                responses.pop()
            break
    return responses


# -- real clients: curl and Agent -------------------------------------------


@dataclass
class CurlResult:
    """
    What a curl run produced.

    @ivar info: curl's C{--write-out '%{json}'} data (http_code,
        num_connects, ...), for the last transfer.
    @ivar heads: The response heads (one per response, interim ones too),
        as L{ParsedResponse}s without bodies.
    @ivar body: The body bytes, exactly as curl wrote them.
    """

    code: int
    stdout: bytes
    stderr: bytes
    info: dict
    heads: list
    body: bytes

    @property
    def status(self) -> int:
        """
        The status of the last response.
        """
        return self.heads[-1].status if self.heads else 0


async def curl(
    testcase: Any, *args: str, env: Optional[dict] = None, timeout: float = 10.0
) -> CurlResult:
    """
    Run C{curl -q -sS ARGS} without blocking the reactor (no ~/.curlrc, no
    proxy environment unless C{env} sets one).
    """
    workdir = testcase.mktemp()
    os.makedirs(workdir)
    body_path = os.path.join(workdir, "body")
    head_path = os.path.join(workdir, "head")
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": workdir}
    environment.update(env or {})
    argv = [
        "-q",
        "-sS",
        "--max-time",
        str(timeout),
        "-o",
        body_path,
        "-D",
        head_path,
        "-w",
        "%{json}",
        *args,
    ]
    out, err, code = await getProcessOutputAndValue("curl", argv, env=environment)
    try:
        info = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        info = {}
    heads: list[ParsedResponse] = []
    body = b""
    if os.path.exists(head_path):
        with open(head_path, "rb") as f:
            raw = f.read()
        for block in raw.split(b"\r\n\r\n"):
            if block.startswith(b"HTTP/"):
                first, fields = _parse_head(block + b"\r\n\r\n")
                parts = first.split(b" ", 2)
                heads.append(
                    ParsedResponse(
                        parts[0], int(parts[1]), parts[2] if len(parts) > 2 else b"",
                        fields, block, b"",
                    )
                )
    if os.path.exists(body_path):
        with open(body_path, "rb") as f:
            body = f.read()
    return CurlResult(code, out, err, info, heads, body)


@implementer(IBodyProducer)
class _BytesProducer:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> Deferred:
        consumer.write(self.body)
        d: Deferred = Deferred()
        d.callback(None)
        return d

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


def proxy_agent(testcase: Any, proxy: Any, persistent: bool = False) -> ProxyAgent:
    """
    A twisted.web ProxyAgent going through C{proxy}; its pool is closed in
    C{testcase}'s cleanup.
    """
    pool = HTTPConnectionPool(reactor, persistent=persistent)
    pool.maxPersistentPerHost = 1
    pool.retryAutomatically = False
    testcase.addCleanup(pool.closeCachedConnections)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", proxy.port_number, timeout=5)
    return ProxyAgent(endpoint, reactor, pool=pool)


async def agent_request(
    testcase: Any,
    agent: Any,
    method: bytes,
    url: str,
    headers: Optional[dict] = None,
    body: Optional[bytes] = None,
    timeout: float = 5.0,
) -> tuple:
    """
    Make one request with C{agent} and read the whole body, within
    C{timeout} seconds.

    @return: (the twisted.web response, its body).
    """
    web_headers = WebHeaders({k: [v] for k, v in (headers or {}).items()})
    producer = _BytesProducer(body) if body is not None else None
    d = agent.request(method, url.encode(), web_headers, producer)
    d.addTimeout(timeout, reactor)
    response = await d
    d = readBody(response)
    d.addTimeout(timeout, reactor)
    data = await d
    return response, data


async def wait_listening(port: int, ended: Deferred, timeout: float = 15.0) -> bool:
    """
    Try 127.0.0.1:C{port} until it takes a connection (a proxy started as a
    process is listening), giving up when C{ended} has fired (the process
    exited) or after C{timeout} seconds.
    """
    deadline = reactor.seconds() + timeout
    while not ended.called and reactor.seconds() < deadline:
        try:
            connection = await TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=1).connect(
                ClientFactory.forProtocol(Protocol)
            )
        except error.ConnectError:
            await sleep(0.02)
        else:
            connection.transport.loseConnection()
            return True
    return False


async def twistd_proxy(testcase: Any, *args: str) -> tuple:
    """
    Start C{twistd -n interceptor ARGS} listening on a free 127.0.0.1 port
    (with a confdir of its own), and wait until it listens; it is killed,
    if still running, at cleanup.

    @return: (the port, the process transport, the protocol collecting its
        output)
    """
    from tests.test_tap import spawn_twistd

    cwd = os.path.abspath(testcase.mktemp())
    os.makedirs(cwd)
    port = await unused_port()
    argv = [
        "-n", "--pidfile=", "interceptor", "--confdir", os.path.join(cwd, "conf"),
        "--listen", f"tcp:{port}:interface=127.0.0.1",
        *(arg.replace("{port}", str(port)) for arg in args),
    ]
    protocol, transport = spawn_twistd(testcase, argv, cwd)
    listening = await wait_listening(port, protocol.ended)
    testcase.assertTrue(listening, protocol.output.decode(errors="replace"))
    return port, transport, protocol


async def unused_port() -> int:
    """
    A 127.0.0.1 port nothing listens on (bound, then closed).
    """
    port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
    number = port.getHost().port
    await port.stopListening()
    return number


class Recorder:
    """
    An addon recording every event it sees as (name, argument) pairs, and
    notes from the flows at each event.
    """

    EVENTS = (
        "clientconnect",
        "clientdisconnect",
        "serverconnect",
        "serverdisconnect",
        "requestheaders",
        "request",
        "responseheaders",
        "response",
        "error",
    )

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        for name in self.EVENTS:
            setattr(self, name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(arg: Any) -> None:
            self.events.append((name, arg))

        record.__name__ = name
        return record

    def names(self) -> list[str]:
        """
        The event names, in order.
        """
        return [name for name, _ in self.events]

    def flow_events(self, flow: Any) -> list[str]:
        """
        The HTTP events of one flow, in order.
        """
        return [name for name, arg in self.events if arg is flow]

    def flows(self) -> list:
        """
        The distinct flows seen, in order.
        """
        seen: list = []
        for name, arg in self.events:
            if name in ("requestheaders", "request", "responseheaders", "response", "error"):
                if not any(arg is f for f in seen):
                    seen.append(arg)
        return seen

    def count(self, name: str) -> int:
        """
        How many times C{name} fired.
        """
        return sum(1 for n, _ in self.events if n == name)


class HeldHook:
    """
    An addon whose hook C{name} returns a Deferred that the test fires
    (L{release}, L{fail}) when the exchange is where it wants it::

        slow = HeldHook("response")
        proxy = await start_proxy(self, slow, recorder)
        ...
        await wait_until(lambda: slow.pending)     # the hook runs now
        slow.release()

    @ivar pending: The Deferreds not fired yet, oldest first.
    @ivar flows: The flow of each call.
    """

    def __init__(self, name: str) -> None:
        self.pending: list[Deferred] = []
        self.flows: list[Any] = []
        setattr(self, name, self._hold)

    def _hold(self, flow: Any) -> Deferred:
        d: Deferred = Deferred()
        self.pending.append(d)
        self.flows.append(flow)
        return d

    def release(self, value: Any = None) -> None:
        """
        Fire the oldest pending Deferred with C{value}.
        """
        self.pending.pop(0).callback(value)

    def fail(self, error: BaseException) -> None:
        """
        Fail the oldest pending Deferred with C{error}.
        """
        self.pending.pop(0).errback(error)


class AllEvents:
    """
    Records every connection, WebSocket and TCP event, by name, in order,
    with the flows.
    """

    NAMES = (
        "clientconnect", "clientdisconnect", "serverconnect", "serverdisconnect",
        "websocket_handshake", "requestheaders", "request", "responseheaders", "response",
        "error", "websocket_start", "websocket_message", "websocket_end", "websocket_error",
        "tcp_start", "tcp_message", "tcp_end", "tcp_error",
    )

    def __init__(self, skip: tuple = ()) -> None:
        self.events: list[tuple[str, Any]] = []
        self.seen: list[tuple[bool, bytes]] = []
        for name in self.NAMES:
            if name not in skip:
                setattr(self, name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(arg: Any) -> None:
            self.events.append((name, arg))
            if name == "websocket_message":
                m = arg.websocket.messages[-1]
                self.seen.append((m.from_client, bytes(m.content)))
            elif name == "tcp_message":
                m = arg.messages[-1]
                self.seen.append((m.from_client, bytes(m.content)))

        record.__name__ = name
        return record

    def names(self, *keep: str) -> list[str]:
        return [n for n, _ in self.events if not keep or n in keep]

    def disconnects(self) -> tuple[int, int]:
        """
        How many times clientdisconnect and serverdisconnect fired.
        """
        return self.count("clientdisconnect"), self.count("serverdisconnect")

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.events if n == name)

    def arg(self, name: str) -> Any:
        return [a for n, a in self.events if n == name][0]
