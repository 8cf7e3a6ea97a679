# -*- test-case-name: tests.test_testing -*-
"""
Helpers for trial test suites that run the proxy in-process::

    from interceptor.testing import start_proxy

    class MyTests(unittest.TestCase):
        async def test_header_added(self):
            proxy = await start_proxy(self, AddHeader(), stream_large_bodies="1m")
            # point a client at proxy.url ("http://127.0.0.1:<port>")
            ...

The proxy listens on C{tcp:0:interface=127.0.0.1}; it is stopped when the
test ends (C{addCleanup}), leaving a clean reactor.

Timeouts need no waiting: give the proxy a L{twisted.internet.task.Clock}
for its timers while its sockets stay on the real reactor, bring the
exchange to the state to test, then move time on::

    clock = Clock()
    proxy = await start_proxy(self, read_timeout=30, clock=clock)
    ...                              # a real server that never answers
    clock.advance(30)                # the proxy answers 504 now

L{LogRecorder} is an addon that keeps the log entries it sees, to check
what the proxy (or an addon) logged::

    recorder = LogRecorder()
    proxy = await start_proxy(self, MyAddon(), recorder)
    ...
    self.assertIn("blocked", recorder.text("warn"))

L{start_websocket_server} and L{connect_websocket} run autobahn's Twisted
WebSocket server and client as real peers, through the proxy::

    server = await start_websocket_server(self, compression=True)   # echoes
    client = await connect_websocket(self, server.url("/chat"), proxy=proxy,
                                     compression=True)
    client.send_text("hello")
    self.assertEqual((await client.next_message()).payload, b"hello")
    self.assertEqual((await client.close(1000, "bye")).was_clean, True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, TypeVar

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IConnector,
    IListeningPort,
    IOpenSSLContextFactory,
    IReactorTime,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from interceptor.core.interfaces import ILog
from interceptor.core.log import LogEntry
from interceptor.core.master import IProxyReactor, Master
from interceptor.core.options import Options, proxy_options

if TYPE_CHECKING:
    from twisted.internet.ssl import Certificate

    from interceptor._wspeers import (
        WebSocketPeer,
        WebSocketTestClient,
        WebSocketTestServerFactory,
        WebSocketTestServerProtocol,
    )

__all__ = [
    "LogRecorder",
    "RunningProxy",
    "WebSocketClosed",
    "WebSocketReceived",
    "WebSocketTestServer",
    "connect_websocket",
    "start_proxy",
    "start_websocket_server",
]


_T = TypeVar("_T")


class _TestCase(Protocol):
    """
    What the helpers use of a trial C{TestCase}.
    """

    def addCleanup(self, f: Callable[..., object], /, *args: Any, **kwargs: Any) -> None:
        """Call C{f} when the test ends."""


def _tcp_address(port: IListeningPort) -> IPv4Address | IPv6Address:
    address = port.getHost()
    if not isinstance(address, (IPv4Address, IPv6Address)):
        raise TypeError(f"expected a TCP port, not one on {address!r}")
    return address


@implementer(ILog)
class LogRecorder:
    """
    An addon keeping every log entry it is given.

    @ivar entries: The L{interceptor.log.LogEntry} objects, oldest first.
    """

    name = "logrecorder"

    def __init__(self) -> None:
        self.entries: list[LogEntry] = []

    def log(self, entry: LogEntry) -> None:
        """
        Keep the entry.
        """
        self.entries.append(entry)

    def messages(self, level: Optional[str] = None) -> list[str]:
        """
        The messages of the entries (of one level, when given).
        """
        return [e.msg for e in self.entries if level is None or e.level == level]

    def text(self, level: Optional[str] = None) -> str:
        """
        L{messages}, joined with newlines: handy for C{assertIn}.
        """
        return "\n".join(self.messages(level))


class RunningProxy:
    """
    A proxy started by L{start_proxy}.

    @ivar master: Its L{Master}.
    @ivar port: Its listening port.
    @ivar host: The address it listens on.
    @ivar port_number: The TCP port number.
    @ivar url: C{http://host:port}, to use as a client's proxy URL.
    """

    def __init__(self, master: Master, port: IListeningPort) -> None:
        self.master = master
        self.port = port
        address = _tcp_address(port)
        self.host = address.host
        self.port_number = address.port
        self.url = f"http://{self.host}:{self.port_number}"

    def stop(self) -> Deferred[None]:
        """
        Stop the proxy (also done automatically at the end of the test).
        """
        return self.master.stop()


def start_proxy(
    testcase: Optional[_TestCase] = None,
    *addons: Any,
    options: Optional[Options] = None,
    listen: str = "tcp:0:interface=127.0.0.1",
    reactor: Optional[IProxyReactor] = None,
    clock: Optional[IReactorTime] = None,
    **option_values: Any,
) -> Deferred[RunningProxy]:
    """
    Start a proxy in this process with C{addons}, listening on C{listen}.

    @param testcase: A trial C{TestCase}; the proxy is stopped in its
        cleanup.  Pass None to stop it yourself.
    @param clock: An C{IReactorTime} for the proxy's timers (see
        L{Master.clock}), e.g. a L{twisted.internet.task.Clock} the test
        advances; the reactor's own when None.
    @param option_values: Option values to set before starting.
    @return: A Deferred firing with a L{RunningProxy}.
    """
    opts = options if options is not None else proxy_options()
    master = Master(opts, addons=addons, reactor=reactor, clock=clock)
    if option_values:
        opts.update(**option_values)
    master.start()
    if testcase is not None:
        testcase.addCleanup(master.stop)

    def listening(port: IListeningPort) -> RunningProxy:
        return RunningProxy(master, port)

    def failed(failure: Failure) -> Deferred[RunningProxy] | Failure:
        # Without a test case nobody else would stop the master: stop it,
        # then report the failure.
        if testcase is not None:
            return failure

        def report(_: None) -> Failure:
            return failure

        return master.stop().addCallback(report)

    return master.listen(listen).addCallbacks(listening, failed)


# -- WebSocket peers (autobahn) ---------------------------------------------
#
#     server = await start_websocket_server(self)              # echoes by default
#     client = await connect_websocket(self, server.url("/chat"), proxy=proxy)
#     client.send_text("hello")
#     received = await client.next_message()                   # ("hello", False, 1)
#     peer = await server.next_connection()                    # the server's side
#     await client.close(1000, "bye")


class WebSocketReceived(tuple[bytes, bool, int]):
    """
    A message a peer received: C{(payload, is_binary, frames)}, C{frames}
    being how many frames it came in.
    """

    __slots__ = ()

    def __new__(cls, payload: bytes, is_binary: bool, frames: int) -> "WebSocketReceived":
        return tuple.__new__(cls, (payload, is_binary, frames))

    @property
    def payload(self) -> bytes:
        """
        The reassembled payload.
        """
        return self[0]

    @property
    def is_binary(self) -> bool:
        """
        Whether it was a BINARY message.
        """
        return self[1]

    @property
    def frames(self) -> int:
        """
        How many frames it came in.
        """
        return self[2]


class WebSocketClosed(tuple[bool, Optional[int], Optional[str]]):
    """
    How a peer's connection ended: C{(was_clean, code, reason)} as autobahn
    reports them (C{code} is what the other side sent, or None).
    """

    __slots__ = ()

    def __new__(cls, was_clean: bool, code: Optional[int], reason: Optional[str]) -> "WebSocketClosed":
        return tuple.__new__(cls, (was_clean, code, reason))

    @property
    def was_clean(self) -> bool:
        """
        Whether the close handshake completed.
        """
        return self[0]

    @property
    def code(self) -> Optional[int]:
        """
        The close code received, or None.
        """
        return self[1]

    @property
    def reason(self) -> Optional[str]:
        """
        The close reason received, or None.
        """
        return self[2]


def _bounded(d: Deferred[_T], timeout: float) -> Deferred[_T]:
    from twisted.internet import reactor as default_reactor

    return d.addTimeout(timeout, default_reactor)


class WebSocketTestServer:
    """
    An autobahn WebSocket server on 127.0.0.1 started by
    L{start_websocket_server}.

    @ivar factory: Its protocol factory (set C{factory.echo} to change
        whether connections opened from then on echo).
    @ivar port: The TCP port number.
    @ivar host: The address it listens on.
    @ivar secure: Whether it speaks TLS (wss).
    @ivar connections: The server-side protocols currently connected.
    """

    def __init__(
        self, factory: WebSocketTestServerFactory, listening: IListeningPort, secure: bool
    ) -> None:
        self.factory = factory
        self.listening = listening
        address = _tcp_address(listening)
        self.host = address.host
        self.port = address.port
        self.secure = secure
        self.connections = factory.connections

    def url(self, path: str = "/", host: Optional[str] = None) -> str:
        """
        C{ws://host:port/path} (C{wss://} for a TLS server).
        """
        scheme = "wss" if self.secure else "ws"
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    def next_connection(self, timeout: float = 5.0) -> Deferred[WebSocketTestServerProtocol]:
        """
        A Deferred firing with the server-side protocol of the next opened
        connection (a L{interceptor._wspeers.WebSocketPeer}:
        C{next_message}, C{close}, ...).
        """
        return _bounded(self.factory.opened.get(), timeout)

    def stop(self) -> Deferred[Any]:
        """
        Stop listening and drop every connection (also done at cleanup).
        """
        from twisted.internet.defer import DeferredList

        waiting: list[Deferred[Any]] = []
        stopping = self.listening.stopListening()
        if stopping is not None:
            waiting.append(stopping)
        for protocol in list(self.connections):
            waiting.append(protocol.closed)
            protocol.drop()
        return DeferredList(waiting, consumeErrors=True)


def start_websocket_server(
    testcase: Optional[_TestCase],
    echo: bool = True,
    compression: bool = False,
    tls: Optional[IOpenSSLContextFactory] = None,
    interface: str = "127.0.0.1",
    **protocol_options: Any,
) -> Deferred[WebSocketTestServer]:
    """
    Start an autobahn WebSocket server on a free port of C{interface}.

    @param testcase: A trial C{TestCase}; the server is stopped in its
        cleanup (pass None to stop it yourself).
    @param echo: Send each message back to its sender.
    @param compression: Accept C{permessage-deflate} offers.
    @param tls: A server TLS context factory (e.g. a
        C{twisted.internet.ssl.CertificateOptions}) for wss, or None.
    @param protocol_options: More autobahn C{setProtocolOptions} values.
    @return: A Deferred firing with a L{WebSocketTestServer}.
    """
    from twisted.internet import reactor as default_reactor
    from twisted.internet.defer import succeed
    from twisted.internet.interfaces import IReactorSSL

    from interceptor._wspeers import WebSocketTestServerFactory, deflate_server_options

    factory = WebSocketTestServerFactory(echo)
    options = deflate_server_options() if compression else {}
    options.update(protocol_options)
    if options:
        factory.setProtocolOptions(**options)
    listening: IListeningPort
    if tls is not None:
        listening = IReactorSSL(default_reactor).listenSSL(0, factory, tls, interface=interface)
    else:
        listening = default_reactor.listenTCP(0, factory, interface=interface)
    server = WebSocketTestServer(factory, listening, tls is not None)
    if testcase is not None:
        testcase.addCleanup(server.stop)
    return succeed(server)


def connect_websocket(
    testcase: Optional[_TestCase],
    url: str,
    proxy: RunningProxy | tuple[str, int] | None = None,
    trust_root: bytes | Certificate | None = None,
    compression: bool = False,
    headers: Optional[dict[str, str]] = None,
    timeout: float = 5.0,
    **protocol_options: Any,
) -> Deferred[WebSocketPeer]:
    """
    Open a WebSocket connection with autobahn's Twisted client, through an
    HTTP proxy with CONNECT when C{proxy} is given.

    @param testcase: A trial C{TestCase}; the connection is dropped in its
        cleanup if still open (pass None to handle it yourself).
    @param url: C{ws://...} or C{wss://...}.
    @param proxy: A L{RunningProxy} or a C{(host, port)} pair, or None to
        connect directly.
    @param trust_root: For wss, what to trust: PEM bytes of a CA
        certificate (e.g. the proxy's C{interceptor-ca-cert.pem}), a
        C{twisted.internet.ssl.Certificate}, or None for the system's CAs.
    @param compression: Offer C{permessage-deflate}.
    @param headers: Extra handshake request headers.
    @param protocol_options: More autobahn C{setProtocolOptions} values.
    @return: A Deferred firing with the open client protocol (a
        L{interceptor._wspeers.WebSocketPeer}), or failing if the handshake
        fails.
    """
    from autobahn.twisted.websocket import WebSocketClientFactory, connectWS
    from twisted.internet import ssl
    from twisted.internet.defer import succeed

    from interceptor._wspeers import WebSocketTestClient, deflate_client_options

    proxy_config = None
    if proxy is not None:
        host, port = (proxy.host, proxy.port_number) if isinstance(proxy, RunningProxy) else proxy
        proxy_config = {"host": host, "port": port}
    built: list[WebSocketTestClient] = []
    waiting: Deferred[WebSocketPeer] = Deferred()

    class ClientFactory(WebSocketClientFactory):
        """
        Builds the one client protocol; reports a connection that failed.
        """

        protocol = WebSocketTestClient

        def buildProtocol(self, addr: Optional[IAddress]) -> WebSocketTestClient:
            protocol = super().buildProtocol(addr)
            assert isinstance(protocol, WebSocketTestClient)
            built.append(protocol)
            protocol.opened.chainDeferred(waiting)
            return protocol

        def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
            if not waiting.called:
                waiting.errback(reason)

    factory = ClientFactory(url, headers=headers, proxy=proxy_config)
    options = deflate_client_options() if compression else {}
    options.update(protocol_options)
    if options:
        factory.setProtocolOptions(**options)
    context = None
    if factory.isSecure:
        root = (
            ssl.Certificate.loadPEM(trust_root) if isinstance(trust_root, bytes) else trust_root
        )
        context = ssl.optionsForClientTLS(
            factory.host, trustRoot=root if root is not None else ssl.platformTrust()
        )
    connector = connectWS(factory, context, timeout=timeout)

    def cleanup() -> Deferred[Optional[WebSocketClosed]]:
        if not built:
            connector.disconnect()
            return succeed(None)
        protocol = built[0]
        if protocol.close_info is None and protocol.transport is not None:
            protocol.drop()
        return protocol.wait_closed(timeout).addErrback(lambda _: None)

    if testcase is not None:
        testcase.addCleanup(cleanup)

    return _bounded(waiting, timeout)
