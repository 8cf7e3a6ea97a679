# -*- test-case-name: tests.e2e.test_tcp -*-
"""
Raw TCP peers on 127.0.0.1 for the TCP-layer and mode tests: a server
whose behaviour is a small script (echo, banner, answer after the client's
half-close, reset, flood), and a client that can half-close and stop
reading::

    server = await TcpServer.start(self, "echo")
    client = await TcpClient.connect(self, proxy.port_number)
    client.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\\r\\n\\r\\n" % server.port)
    await client.wait_for(lambda d: b"\\r\\n\\r\\n" in d)
    client.shut_write()                 # half-close

Everything is stopped in the test's cleanup and every wait is bounded.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from tests.e2e.peers import LoopbackClient, LoopbackServer, wait_until

__all__ = ["TcpServer", "TcpClient", "connect_tunnel"]


@implementer(IHalfCloseableProtocol)
class _ServerConnection(Protocol):
    def __init__(self, server: "TcpServer") -> None:
        self.server = server
        self.received = bytearray()
        self.lost: Deferred = Deferred()
        self.closed = False
        self.eof = False
        self.sent = 0
        self.paused = False

    def connectionMade(self) -> None:
        self.server.connections.append(self)
        behaviour = self.server.behaviour
        if behaviour == "banner":
            self.transport.write(b"220 hello from the server\r\n")
        elif behaviour == "banner-shut":
            self.transport.write(b"banner;")
            self.transport.loseWriteConnection()
        elif behaviour == "flood":
            self.transport.registerProducer(self, True)
            self.resumeProducing()

    # IPushProducer, for "flood"
    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        chunk = b"x" * 65536
        while not self.paused and self.sent < self.server.flood_bytes and not self.closed:
            self.transport.write(chunk)
            self.sent += len(chunk)
        if self.sent >= self.server.flood_bytes and not self.closed:
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def stopProducing(self) -> None:
        self.paused = True

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        behaviour = self.server.behaviour
        if behaviour in ("echo", "banner"):
            self.transport.write(data)
        elif behaviour == "reset":
            self.transport.abortConnection()

    def readConnectionLost(self) -> None:
        self.eof = True
        if self.server.behaviour == "count":
            self.transport.write(b"got %d bytes" % len(self.received))
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        self.lost.callback(None)


class TcpServer(LoopbackServer):
    """
    A TCP server on 127.0.0.1 with one behaviour:

      - C{"echo"}: send back what arrives; close after the client's
        half-close.
      - C{"banner"}: greet first, then echo.
      - C{"banner-shut"}: send C{banner;} and shut the writing half at once,
        then read until the client shuts its own.
      - C{"count"}: read until the client half-closes, then answer
        C{got N bytes} and close.
      - C{"reset"}: reset the connection on the first bytes.
      - C{"flood"}: send C{flood_bytes} as fast as the connection takes
        them (paused by backpressure), then close.

    @ivar connections: The accepted connections, in order.
    """

    def __init__(self, behaviour: str, flood_bytes: int = 0) -> None:
        super().__init__()
        self.behaviour = behaviour
        self.flood_bytes = flood_bytes

    @classmethod
    async def start(cls, testcase: Any, behaviour: str = "echo", **kw: Any) -> "TcpServer":
        """
        Listen on a free port of 127.0.0.1; stopped in C{testcase}'s cleanup.
        """
        server = cls(behaviour, **kw)
        server._listen(testcase, Factory.forProtocol(lambda: _ServerConnection(server)))
        return server


@implementer(IHalfCloseableProtocol)
class TcpClient(LoopbackClient):
    """
    A raw client that keeps what it receives, can half-close, and can stop
    reading (to play a slow reader).
    """

    def __init__(self) -> None:
        super().__init__()
        self.eof = False
        self.count_only = False
        self.count = 0

    def shut_write(self) -> None:
        """
        Half-close: no more bytes from this side.
        """
        self.transport.loseWriteConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.count_only:
            self.count += len(data)
        else:
            self.received += data

    def readConnectionLost(self) -> None:
        self.eof = True
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass

    async def wait_for(self, predicate: Callable[[bytes], bool], timeout: float = 5.0) -> bytes:
        """
        Wait until C{predicate(received)} holds or the connection closes,
        at most C{timeout} seconds (then raise L{TimeoutError}).
        """
        ok = await wait_until(lambda: predicate(bytes(self.received)) or self.closed, timeout)
        if not ok:
            raise TimeoutError(f"waited {timeout} s; received {bytes(self.received)[:300]!r}")
        return bytes(self.received)

    async def wait_closed(self, timeout: float = 5.0) -> bytes:
        """
        Wait until the connection is closed, at most C{timeout} seconds.
        """
        if not await wait_until(lambda: self.closed, timeout):
            raise TimeoutError(f"not closed within {timeout} s; received {bytes(self.received)[:300]!r}")
        return bytes(self.received)


async def connect_tunnel(testcase: Any, proxy_port: int, port: int, host: str = "127.0.0.1") -> TcpClient:
    """
    A L{TcpClient} with a CONNECT tunnel to C{host:port} open through the
    proxy (the 200 answer already consumed).
    """
    client = await TcpClient.connect(testcase, proxy_port)
    client.send(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host.encode(), port, host.encode(), port))
    data = await client.wait_for(lambda d: b"\r\n\r\n" in d, 5)
    if not data.startswith(b"HTTP/1.1 200"):
        raise AssertionError(f"CONNECT refused: {data[:200]!r}")
    del client.received[: data.index(b"\r\n\r\n") + 4]
    return client


async def echo_once(testcase: Any, proxy_port: int, data: bytes) -> TcpServer:
    """
    Through a CONNECT tunnel of the proxy to a new echo server: send C{data},
    wait for it to come back, shut the client's writing half and wait until
    the connection is closed.  Returns the server.
    """
    server = await TcpServer.start(testcase, "echo")
    client = await connect_tunnel(testcase, proxy_port, server.port)
    client.send(data)
    await client.wait_for(lambda d: d == data)
    client.shut_write()
    await client.wait_closed()
    return server
