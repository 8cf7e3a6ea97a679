"""
Tests for L{interceptor.testing}: start_proxy() runs a real proxy on
C{tcp:0} inside a trial test and stops it with a clean reactor; the
embedding API (Master + Options + listen) it is built on.
"""

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import CannotListenError, ConnectionRefusedError
from twisted.internet.protocol import Protocol
from twisted.trial import unittest

from interceptor.core.log import LogEntry
from interceptor.core.master import Master
from interceptor.core.options import OptionsError, proxy_options
from interceptor.testing import LogRecorder, RunningProxy, start_proxy


class Connections:
    """
    Records client connections and fires Deferreds when they come and go.
    """

    def __init__(self):
        self.connected = Deferred()
        self.disconnected = Deferred()
        self.clients = []

    def clientconnect(self, root_layer):
        self.clients.append(root_layer.client_conn.address)
        if not self.connected.called:
            self.connected.callback(root_layer)

    def clientdisconnect(self, root_layer):
        if not self.disconnected.called:
            self.disconnected.callback(root_layer)


class Client(Protocol):
    """
    A TCP client that notices when the connection closes.
    """

    def __init__(self):
        self.closed = Deferred()

    def connectionLost(self, reason):
        self.closed.callback(None)


async def connect(port_number):
    """
    A real TCP connection to 127.0.0.1:port_number.
    """
    client = Client()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port_number, timeout=5), client)
    return client


class StartProxyTests(unittest.TestCase):
    """
    start_proxy(testcase, *addons, **options).
    """

    async def test_real_tcp_client(self):
        """A real TCP client reaches the proxy start_proxy started, whose addons see it connect."""
        connections = Connections()
        proxy = await start_proxy(self, connections)
        self.assertIsInstance(proxy, RunningProxy)
        self.assertEqual(proxy.host, "127.0.0.1")
        self.assertNotEqual(proxy.port_number, 0)
        self.assertEqual(proxy.url, f"http://127.0.0.1:{proxy.port_number}")
        client = await connect(proxy.port_number)
        root_layer = await connections.connected
        self.assertEqual(root_layer.client_conn.address[0], "127.0.0.1")
        self.assertEqual(
            root_layer.client_conn.address[1], client.transport.getHost().port
        )
        client.transport.loseConnection()
        await connections.disconnected
        await client.closed

    async def test_stop_closes_port_and_connections(self):
        """stop() closes the client connections and the port; later connections are refused."""
        connections = Connections()
        proxy = await start_proxy(self, connections)
        client = await connect(proxy.port_number)
        await connections.connected
        await proxy.stop()
        await client.closed
        self.assertFalse(proxy.master.running)
        with self.assertRaises(ConnectionRefusedError):
            await connect(proxy.port_number)

    async def test_option_values(self):
        """Keyword arguments set options, including options the given addons declare."""

        class Declares:
            def load(self, loader):
                loader.add_option("extra", int, 1, "An addon's option.")

        proxy = await start_proxy(self, Declares(), read_timeout=7.0, extra=5)
        self.assertEqual(proxy.master.options.read_timeout, 7.0)
        self.assertEqual(proxy.master.options.extra, 5)

    def test_bad_option_value(self):
        """A bad option value raises OptionsError before anything listens."""
        self.assertRaises(OptionsError, start_proxy, self, read_timeout="soon")

    async def test_listen_failure_without_testcase(self):
        """Without a testcase, a failing listen stops the master it started and fails."""
        blocker = await start_proxy(self)
        events = []

        class Done:
            def done(self):
                events.append("done")

        d = start_proxy(None, Done(), listen=f"tcp:{blocker.port_number}:interface=127.0.0.1")
        with self.assertRaises(CannotListenError):
            await d
        self.assertEqual(events, ["done"])

    async def test_log_recorder(self):
        """LogRecorder keeps entries and filters them by level."""
        recorder = LogRecorder()
        await start_proxy(self, recorder)
        recorder.log(LogEntry("one", "warn"))
        recorder.log(LogEntry("two", "info"))
        self.assertIn("one", recorder.messages("warn"))
        self.assertNotIn("two", recorder.messages("warn"))
        self.assertIn("one\ntwo", recorder.text())


class EmbeddingTests(unittest.TestCase):
    """
    The library API a Twisted application uses: Master + Options + listen.
    """

    async def test_embed(self):
        """Master(options, addons).start() then listen(endpoint) serves real clients; stop() cleans up."""
        connections = Connections()
        options = proxy_options(idle_timeout=30.0)
        master = Master(options, [connections])
        master.start()
        port = await master.listen("tcp:0:interface=127.0.0.1")
        try:
            client = await connect(port.getHost().port)
            await connections.connected
        finally:
            await master.stop()
        await client.closed
        self.assertEqual(len(connections.clients), 1)
