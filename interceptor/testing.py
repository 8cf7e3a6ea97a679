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

from typing import Any, Optional

from twisted.internet.defer import Deferred
from zope.interface import implementer

from interceptor.core.interfaces import ILog
from interceptor.core.log import LogEntry
from interceptor.core.master import Master
from interceptor.core.options import Options, proxy_options

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

    def __init__(self, master: Master, port: Any) -> None:
        self.master = master
        self.port = port
        address = port.getHost()
        self.host = address.host
        self.port_number = address.port
        self.url = f"http://{self.host}:{self.port_number}"

    def stop(self) -> Deferred:
        """
        Stop the proxy (also done automatically at the end of the test).
        """
        return self.master.stop()


def start_proxy(
    testcase: Optional[Any] = None,
    *addons: Any,
    options: Optional[Options] = None,
    listen: str = "tcp:0:interface=127.0.0.1",
    reactor: Any = None,
    clock: Any = None,
    **option_values: Any,
) -> Deferred:
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

    def listening(port: Any) -> RunningProxy:
        return RunningProxy(master, port)

    def failed(failure: Any) -> Any:
        # Without a test case nobody else would stop the master: stop it,
        # then report the failure.
        if testcase is not None:
            return failure
        return master.stop().addCallback(lambda _: failure)

    return master.listen(listen).addCallbacks(listening, failed)


# -- WebSocket peers (autobahn) ---------------------------------------------
#
#     server = await start_websocket_server(self)              # echoes by default
#     client = await connect_websocket(self, server.url("/chat"), proxy=proxy)
#     client.send_text("hello")
#     received = await client.next_message()                   # ("hello", False, 1)
#     peer = await server.next_connection()                    # the server's side
#     await client.close(1000, "bye")


class WebSocketReceived(tuple):
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


class WebSocketClosed(tuple):
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


def _bounded(d: Deferred, timeout: float) -> Deferred:
    from twisted.internet import reactor as default_reactor

    return d.addTimeout(timeout, default_reactor)


class _WebSocketPeer:
    """
    What L{WebSocketTestClient} and L{WebSocketTestServerProtocol} share:
    received messages, pongs and the close kept for the test to await.
    """

    def _init_peer(self) -> None:
        from twisted.internet.defer import DeferredQueue

        self.received: list[WebSocketReceived] = []
        self._messages: DeferredQueue = DeferredQueue()
        self._pongs: DeferredQueue = DeferredQueue()
        self.opened: Deferred = Deferred()
        self.closed: Deferred = Deferred()
        self.close_info: Optional[WebSocketClosed] = None
        self.echo = False
        self._frames = 0

    def onOpen(self) -> None:
        """
        autobahn: the handshake is done.
        """
        if not self.opened.called:
            self.opened.callback(self)

    def onMessageFrameBegin(self, length: int) -> None:
        """
        autobahn: a frame begins (counted, then handled as usual).
        """
        self._frames += 1
        super().onMessageFrameBegin(length)  # type: ignore[misc]

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        autobahn: a whole message arrived; keep it (and echo it when asked).
        """
        received = WebSocketReceived(payload, isBinary, self._frames)
        self._frames = 0
        self.received.append(received)
        self._messages.put(received)
        if self.echo:
            self.sendMessage(payload, isBinary)  # type: ignore[attr-defined]

    def onPong(self, payload: bytes) -> None:
        """
        autobahn: a Pong arrived.
        """
        self._pongs.put(payload)

    def onClose(self, wasClean: bool, code: Optional[int], reason: Optional[str]) -> None:
        """
        autobahn: the connection ended.
        """
        self.close_info = WebSocketClosed(wasClean, code, reason)
        if not self.opened.called:
            self.opened.errback(ConnectionError(f"WebSocket handshake failed: {reason}"))
        if not self.closed.called:
            self.closed.callback(self.close_info)

    def send_text(self, text: str, fragment_size: Optional[int] = None) -> None:
        """
        Send a TEXT message (in frames of C{fragment_size} bytes, if given).
        """
        self.sendMessage(text.encode("utf-8"), False, fragmentSize=fragment_size)  # type: ignore[attr-defined]

    def send_binary(self, data: bytes, fragment_size: Optional[int] = None) -> None:
        """
        Send a BINARY message (in frames of C{fragment_size} bytes, if given).
        """
        self.sendMessage(data, True, fragmentSize=fragment_size)  # type: ignore[attr-defined]

    def next_message(self, timeout: float = 5.0) -> Deferred:
        """
        A Deferred firing with the next L{WebSocketReceived} (failing with
        C{TimeoutError} after C{timeout} seconds).
        """
        return _bounded(self._messages.get(), timeout)

    def ping(self, payload: bytes = b"") -> None:
        """
        Send a Ping.
        """
        self.sendPing(payload)  # type: ignore[attr-defined]

    def next_pong(self, timeout: float = 5.0) -> Deferred:
        """
        A Deferred firing with the payload of the next Pong received.
        """
        return _bounded(self._pongs.get(), timeout)

    def close(self, code: Optional[int] = 1000, reason: Optional[str] = None,
              timeout: float = 5.0) -> Deferred:
        """
        Start the close handshake; a Deferred firing with the
        L{WebSocketClosed} once the connection has ended.
        """
        self.sendClose(code, reason)  # type: ignore[attr-defined]
        return self.wait_closed(timeout)

    def drop(self) -> None:
        """
        Drop the TCP connection without a Close frame.
        """
        self.transport.abortConnection()  # type: ignore[attr-defined]

    def wait_closed(self, timeout: float = 5.0) -> Deferred:
        """
        A Deferred firing with the L{WebSocketClosed} once the connection
        has ended (at once if it has).
        """
        if self.close_info is not None:
            from twisted.internet.defer import succeed

            return succeed(self.close_info)
        waiting: Deferred = Deferred()
        self.closed.addBoth(lambda result: (waiting.called or waiting.callback(result), result)[1])
        return _bounded(waiting, timeout)


def _autobahn_classes() -> tuple[Any, Any]:
    # autobahn is imported only by the suites that use these helpers.
    from autobahn.twisted.websocket import (
        WebSocketClientProtocol,
        WebSocketServerProtocol,
    )

    class WebSocketTestClient(_WebSocketPeer, WebSocketClientProtocol):
        """
        An autobahn client protocol recording what it receives.
        """

        def __init__(self) -> None:
            WebSocketClientProtocol.__init__(self)
            self._init_peer()

    class WebSocketTestServerProtocol(_WebSocketPeer, WebSocketServerProtocol):
        """
        An autobahn server protocol recording what it receives; it echoes
        each message when its server was started with C{echo=True}.
        """

        def __init__(self) -> None:
            WebSocketServerProtocol.__init__(self)
            self._init_peer()

        def onConnect(self, request: Any) -> Any:
            """
            autobahn: a handshake request; kept as C{self.request}.
            """
            self.request = request
            self.echo = self.factory.echo
            return None

        def onOpen(self) -> None:
            """
            autobahn: the handshake is done; the test may now pick it up.
            """
            _WebSocketPeer.onOpen(self)
            self.factory.opened.put(self)

        def connectionMade(self) -> None:
            """
            Track the connection so the server can close it at cleanup.
            """
            self.factory.connections.append(self)
            WebSocketServerProtocol.connectionMade(self)

        def connectionLost(self, reason: Any = None) -> None:
            """
            Forget the connection.
            """
            WebSocketServerProtocol.connectionLost(self, reason)
            self.factory.lost(self)

    return WebSocketTestClient, WebSocketTestServerProtocol


def _deflate_server_options() -> dict[str, Any]:
    from autobahn.websocket.compress import (
        PerMessageDeflateOffer,
        PerMessageDeflateOfferAccept,
    )

    def accept(offers: list[Any]) -> Any:
        for offer in offers:
            if isinstance(offer, PerMessageDeflateOffer):
                return PerMessageDeflateOfferAccept(offer)
        return None

    return {"perMessageCompressionAccept": accept}


def _deflate_client_options() -> dict[str, Any]:
    from autobahn.websocket.compress import (
        PerMessageDeflateOffer,
        PerMessageDeflateResponse,
        PerMessageDeflateResponseAccept,
    )

    def accept(response: Any) -> Any:
        if isinstance(response, PerMessageDeflateResponse):
            return PerMessageDeflateResponseAccept(response)
        return None

    return {
        "perMessageCompressionOffers": [PerMessageDeflateOffer()],
        "perMessageCompressionAccept": accept,
    }


class WebSocketTestServer:
    """
    An autobahn WebSocket server on 127.0.0.1 started by
    L{start_websocket_server}.

    @ivar port: The TCP port number.
    @ivar host: The address it listens on.
    @ivar secure: Whether it speaks TLS (wss).
    @ivar connections: The server-side protocols currently connected.
    """

    def __init__(self, factory: Any, listening: Any, secure: bool) -> None:
        self.factory = factory
        self.listening = listening
        address = listening.getHost()
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

    def next_connection(self, timeout: float = 5.0) -> Deferred:
        """
        A Deferred firing with the server-side protocol of the next opened
        connection (a L{_WebSocketPeer}: C{next_message}, C{close}, ...).
        """
        return _bounded(self.factory.opened.get(), timeout)

    def stop(self) -> Deferred:
        """
        Stop listening and drop every connection (also done at cleanup).
        """
        from twisted.internet.defer import DeferredList

        waiting = [self.listening.stopListening()]
        for protocol in list(self.connections):
            waiting.append(protocol.closed)
            protocol.transport.abortConnection()
        return DeferredList(waiting, consumeErrors=True)


def start_websocket_server(
    testcase: Any,
    echo: bool = True,
    compression: bool = False,
    tls: Any = None,
    interface: str = "127.0.0.1",
    **protocol_options: Any,
) -> Deferred:
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
    from autobahn.twisted.websocket import WebSocketServerFactory
    from twisted.internet import reactor as default_reactor
    from twisted.internet.defer import DeferredQueue

    _, server_protocol = _autobahn_classes()
    factory = WebSocketServerFactory()
    factory.protocol = server_protocol
    factory.echo = echo
    factory.opened = DeferredQueue()
    factory.connections = []
    factory.lost = factory.connections.remove
    options = _deflate_server_options() if compression else {}
    options.update(protocol_options)
    if options:
        factory.setProtocolOptions(**options)
    if tls is not None:
        listening = default_reactor.listenSSL(0, factory, tls, interface=interface)
    else:
        listening = default_reactor.listenTCP(0, factory, interface=interface)
    server = WebSocketTestServer(factory, listening, tls is not None)
    if testcase is not None:
        testcase.addCleanup(server.stop)
    from twisted.internet.defer import succeed

    return succeed(server)


def connect_websocket(
    testcase: Any,
    url: str,
    proxy: Any = None,
    trust_root: Any = None,
    compression: bool = False,
    headers: Optional[dict[str, str]] = None,
    timeout: float = 5.0,
    **protocol_options: Any,
) -> Deferred:
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
        L{_WebSocketPeer}), or failing if the handshake fails.
    """
    from autobahn.twisted.websocket import WebSocketClientFactory, connectWS
    from twisted.internet import ssl

    client_protocol, _ = _autobahn_classes()
    proxy_config = None
    if proxy is not None:
        host, port = (proxy.host, proxy.port_number) if isinstance(proxy, RunningProxy) else proxy
        proxy_config = {"host": host, "port": port}
    factory = WebSocketClientFactory(url, headers=headers, proxy=proxy_config)
    factory.protocol = client_protocol
    options = _deflate_client_options() if compression else {}
    options.update(protocol_options)
    if options:
        factory.setProtocolOptions(**options)
    context = None
    if factory.isSecure:
        if isinstance(trust_root, bytes):
            trust_root = ssl.Certificate.loadPEM(trust_root)
        root = trust_root if trust_root is not None else ssl.platformTrust()
        context = ssl.optionsForClientTLS(factory.host, trustRoot=root)
    built: list[Any] = []
    original = factory.buildProtocol
    waiting: Deferred = Deferred()

    def build(addr: Any) -> Any:
        protocol = original(addr)
        built.append(protocol)
        protocol.opened.chainDeferred(waiting)
        return protocol

    def failed(connector: Any, reason: Any) -> None:
        if not waiting.called:
            waiting.errback(reason)

    factory.buildProtocol = build
    factory.clientConnectionFailed = failed
    connector = connectWS(factory, context, timeout=timeout)

    def cleanup() -> Deferred:
        from twisted.internet.defer import succeed

        if not built:
            connector.disconnect()
            return succeed(None)
        protocol = built[0]
        if protocol.close_info is None and protocol.transport is not None:
            protocol.transport.abortConnection()
        return protocol.wait_closed(timeout).addErrback(lambda _: None)

    if testcase is not None:
        testcase.addCleanup(cleanup)

    return _bounded(waiting, timeout)
