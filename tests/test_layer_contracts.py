"""
The declared layer contract (L{interceptor.layers.contracts}): the root
and non-HTTP layers provide it, and the root's one switch
(L{interceptor.proxy.ProxyProtocol.switch_layer}) hands bytes, half-closes
and the eager connection over as documented, in memory
(L{StringTransport}, a L{Clock} for a reactor; nothing is connected).
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol, ITCPTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from interceptor.core.master import Master
from interceptor.core.options import proxy_options
from interceptor.layers.contracts import IEagerLayer, IHalfCloseLayer, ILayer
from interceptor.layers.detect import DetectLayer
from interceptor.layers.http1 import Http1Layer
from interceptor.layers.relay import RelayLayer
from interceptor.layers.socks5 import Socks5Layer
from interceptor.layers.tcp import TcpLayer, _TcpUpstream
from interceptor.layers.tls import TlsLayer
from interceptor.proxy import ProxyFactory, ProxyProtocol

_ADDRESS = ("example.test", 443)
_CLIENT_HELLO_START = b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x03"


@implementer(ILayer)
class Recorder:
    """
    A layer that records what the root hands it.
    """

    def __init__(self, root: Any, name: str = "recorder") -> None:
        self.root = root
        self.layer: Optional[ILayer] = None
        self.name = name
        self.events: list[Any] = []
        #: Called with each chunk after it is recorded (to switch from there).
        self.on_data: Any = None

    def start(self) -> None:
        self.events.append("start")

    def data_received(self, data: bytes) -> None:
        self.events.append(data)
        if self.on_data is not None:
            self.on_data(data)

    def connection_lost(self, reason: object) -> None:
        self.events.append("lost")


@implementer(IHalfCloseLayer)
class HalfCloseRecorder(Recorder):
    """
    A recording layer that relays half-closes.
    """

    def read_connection_lost(self) -> None:
        self.events.append("eof")


@implementer(IEagerLayer)
class EagerRecorder(Recorder):
    """
    A recording layer that connects eagerly.
    """

    def connect_eagerly(self) -> None:
        self.events.append("connect")


class Chooser:
    """
    A C{next_layer} addon: records each candidate and answers with the
    layer C{choose(candidate)} returns (or a Deferred of it, or None).
    """

    def __init__(self, choose: Any = lambda candidate: None) -> None:
        self.choose = choose
        self.candidates: list[Any] = []

    def next_layer(self, layer: Any) -> Any:
        self.candidates.append(layer)
        return self.choose(layer)


@implementer(ITCPTransport)
class HalfClosingTransport(StringTransport):
    """
    A StringTransport that can shut its writing half, as TCP can.
    """

    write_shut = False

    def loseWriteConnection(self) -> None:
        self.write_shut = True

    def abortConnection(self) -> None:
        self.loseConnection()

    def getTcpNoDelay(self) -> bool:
        return True

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def getTcpKeepAlive(self) -> bool:
        return False

    def setTcpKeepAlive(self, enabled: bool) -> None:
        pass


def connected_root(
    case: unittest.TestCase, *addons: Any, **options: Any
) -> tuple[ProxyProtocol, StringTransport, Clock]:
    """
    A root protocol connected to a StringTransport, its master's reactor a
    Clock (in regular mode, its first candidate is an Http1Layer).
    """
    clock = Clock()
    master = Master(proxy_options(**options) if options else None, addons=addons, reactor=clock)
    root = ProxyFactory(master).buildProtocol(None)
    transport = StringTransport()
    root.makeConnection(transport)
    case.addCleanup(lambda: [call.cancel() for call in clock.getDelayedCalls()])
    return root, transport, clock


class DeclaredContractTests(unittest.TestCase):
    """
    Each layer the root may hold provides what it declares.
    """

    def setUp(self) -> None:
        self.root, _, _ = connected_root(self, Chooser(lambda candidate: Recorder(candidate.root)))

    def test_layers(self) -> None:
        """
        TcpLayer, RelayLayer, Socks5Layer, TlsLayer and DetectLayer provide
        L{ILayer}.
        """
        root = self.root
        for layer in (
            TcpLayer(root, _ADDRESS),
            RelayLayer(root, _ADDRESS),
            Socks5Layer(root),
            TlsLayer(root, _ADDRESS),
            DetectLayer(root, _ADDRESS),
        ):
            self.assertTrue(verifyObject(ILayer, layer), layer)

    def test_half_close_layers(self) -> None:
        """
        The relays and the detection relay the client's half-close
        (L{IHalfCloseLayer}); the handshake layers do not.
        """
        root = self.root
        for layer in (TcpLayer(root, _ADDRESS), RelayLayer(root, _ADDRESS), DetectLayer(root, _ADDRESS)):
            self.assertTrue(verifyObject(IHalfCloseLayer, layer), layer)
        for layer in (Socks5Layer(root), TlsLayer(root, _ADDRESS)):
            self.assertFalse(IHalfCloseLayer.providedBy(layer), layer)

    def test_root_mode(self) -> None:
        """
        The root always has its C{mode}, which layers read directly.
        """
        self.assertEqual(self.root.mode.kind, "regular")


class SwitchTests(unittest.TestCase):
    """
    The root hands every read to its current layer, and keeps what arrives
    while the next one is chosen.
    """

    def test_first_layer_gets_early_bytes_in_order(self) -> None:
        """
        Bytes that arrive while C{next_layer} runs wait for the chosen layer,
        which gets them in order after it started; later bytes go straight
        to it.
        """
        pending: Deferred = Deferred()
        chooser = Chooser(lambda candidate: pending)
        root, _, _ = connected_root(self, chooser)
        self.assertIsInstance(chooser.candidates[0], Http1Layer)
        root.dataReceived(b"one")
        root.dataReceived(b"two")
        layer = Recorder(root)
        pending.callback(layer)
        root.dataReceived(b"three")
        self.assertIs(root.layer, layer)
        self.assertEqual(layer.events, ["start", b"one", b"two", b"three"])

    def test_switch_feeds_early_bytes_first(self) -> None:
        """
        C{switch_layer(layer, early)} feeds C{early} to the new layer before
        the bytes that arrived while it was being chosen; the old layer
        gets none of them.
        """
        first = Recorder(None, "first")
        pending: Deferred = Deferred()
        answers = iter([first, pending])
        root, _, _ = connected_root(self, Chooser(lambda candidate: next(answers)))
        first.root = root
        root.dataReceived(b"a")
        root.switch_layer(Recorder(root, "candidate"), [b"early", b""])
        root.dataReceived(b"later")
        second = Recorder(root, "second")
        pending.callback(second)
        self.assertEqual(first.events, ["start", b"a"])
        self.assertEqual(second.events, ["start", b"early", b"later"])

    def test_switch_while_fed(self) -> None:
        """
        A layer that switches while the root feeds it kept bytes hands the
        rest on: the next layer gets what the first gave back, then the
        rest, in order.
        """
        root, _, _ = connected_root(self, Chooser(
            lambda candidate: Recorder(candidate.root) if isinstance(candidate, Http1Layer) else None
        ))
        first, second = Recorder(root, "first"), Recorder(root, "second")
        first.on_data = lambda data: root.switch_layer(second, [data])
        root.switch_layer(first, [b"x", b"y"])
        self.assertEqual(first.events, ["start", b"x"])
        self.assertEqual(second.events, ["start", b"x", b"y"])
        self.assertIs(root.layer, second)

    def test_no_rebinding(self) -> None:
        """
        Switching assigns no method on the root's instance: reads go
        through C{ProxyProtocol.dataReceived}.
        """
        root, _, _ = connected_root(self, Chooser(lambda candidate: Recorder(candidate.root)))
        root.switch_layer(Recorder(root))
        self.assertNotIn("dataReceived", vars(root))
        self.assertNotIn("readConnectionLost", vars(root))

    def test_eager_layer_connects_before_its_bytes(self) -> None:
        """
        An L{IEagerLayer} is asked to connect once started, before the bytes
        kept for it; other layers are not asked.
        """
        pending: Deferred = Deferred()
        root, _, _ = connected_root(self, Chooser(lambda candidate: pending))
        root.dataReceived(b"GET")
        layer = EagerRecorder(root)
        pending.callback(layer)
        self.assertEqual(layer.events, ["start", "connect", b"GET"])

    def test_connection_lost_tells_layer(self) -> None:
        """
        The client's end reaches the current layer.
        """
        root, transport, _ = connected_root(self, Chooser(lambda candidate: Recorder(candidate.root)))
        layer = root.layer
        root.connectionLost(None)
        self.assertEqual(layer.events, ["start", "lost"])


class HalfCloseTests(unittest.TestCase):
    """
    The client's half-close goes to an L{IHalfCloseLayer}; any other layer's
    connection is closed.
    """

    def test_to_half_close_layer(self) -> None:
        """
        Once an L{IHalfCloseLayer} is in charge, the root provides
        L{IHalfCloseableProtocol} and passes the half-close on.
        """
        root, transport, _ = connected_root(self, Chooser(lambda candidate: HalfCloseRecorder(candidate.root)))
        self.assertTrue(IHalfCloseableProtocol.providedBy(root))
        root.readConnectionLost()
        self.assertEqual(root.layer.events, ["start", "eof"])
        self.assertFalse(transport.disconnecting)

    def test_other_layer_closes(self) -> None:
        """
        A half-close with a layer that does not relay it closes the
        connection (the root may still provide L{IHalfCloseableProtocol}
        from an earlier layer).
        """
        root, transport, _ = connected_root(self, Chooser(
            lambda candidate: HalfCloseRecorder(candidate.root) if isinstance(candidate, Http1Layer) else None
        ))
        root.switch_layer(Recorder(root))
        self.assertTrue(IHalfCloseableProtocol.providedBy(root))
        root.readConnectionLost()
        self.assertEqual(root.layer.events, ["start"])
        self.assertTrue(transport.disconnecting)

    def test_kept_for_next_layer(self) -> None:
        """
        A half-close while the next layer is chosen reaches it after the
        bytes kept for it.
        """
        pending: Deferred = Deferred()
        answers = iter([HalfCloseRecorder(None), pending])
        root, transport, _ = connected_root(self, Chooser(lambda candidate: next(answers)))
        root.switch_layer(Recorder(root), [b"kept"])
        root.readConnectionLost()
        layer = HalfCloseRecorder(root)
        pending.callback(layer)
        self.assertEqual(layer.events, ["start", b"kept", "eof"])
        self.assertFalse(transport.disconnecting)


class DetectTests(unittest.TestCase):
    """
    A tunnel's first bytes choose its layer, through C{next_layer}.
    """

    def detect(self, *chunks: bytes, **options: Any) -> tuple[ProxyProtocol, Chooser, Clock]:
        """
        Open a tunnel to L{_ADDRESS} (its first candidate answered with a
        L{HalfCloseRecorder}), the first of C{chunks} arriving with the
        tunnel, then the others.
        """
        chooser = Chooser(lambda candidate: HalfCloseRecorder(candidate.root, type(candidate).__name__))
        root, transport, clock = connected_root(self, chooser, **options)
        self.transport = transport
        chooser.candidates.clear()
        root.start_tunnel(_ADDRESS, chunks[0] if chunks else b"")
        for chunk in chunks[1:]:
            root.dataReceived(chunk)
        return root, chooser, clock

    def test_http(self) -> None:
        """
        An HTTP method: Http1Layer to the tunnel's address, which gets the
        bytes that told, split as they came.
        """
        root, chooser, _ = self.detect(b"GE", b"T / HTTP/1.1\r\n", b"\r\n")
        [candidate] = chooser.candidates
        self.assertIsInstance(candidate, Http1Layer)
        self.assertEqual(candidate.target, ("http", "example.test", 443))
        self.assertEqual(root.layer.events, ["start", b"GET / HTTP/1.1\r\n", b"\r\n"])
        self.assertEqual(root.tunnel_address, _ADDRESS)

    def test_tls(self) -> None:
        """
        A TLS record: TlsLayer.
        """
        root, chooser, _ = self.detect(_CLIENT_HELLO_START)
        [candidate] = chooser.candidates
        self.assertIsInstance(candidate, TlsLayer)
        self.assertEqual(root.layer.events, ["start", _CLIENT_HELLO_START])

    def test_other(self) -> None:
        """
        Anything else: raw TCP.
        """
        root, chooser, _ = self.detect(b"\x00\x01\x02\x03")
        [candidate] = chooser.candidates
        self.assertIsInstance(candidate, TcpLayer)
        self.assertEqual(root.layer.events, ["start", b"\x00\x01\x02\x03"])

    def test_detect_layer_is_the_roots_own(self) -> None:
        """
        Until the bytes tell, the root's layer is a L{DetectLayer} that
        C{next_layer} never saw.
        """
        root, chooser, _ = self.detect(b"GE")
        self.assertIsInstance(root.layer, DetectLayer)
        self.assertEqual(chooser.candidates, [])

    def test_silent_client_gets_tcp(self) -> None:
        """
        A client that says nothing for C{read_timeout} gets raw TCP with
        what it said so far.
        """
        root, chooser, clock = self.detect(b"GE", read_timeout=5)
        clock.advance(4)
        self.assertEqual(chooser.candidates, [])
        clock.advance(1)
        [candidate] = chooser.candidates
        self.assertIsInstance(candidate, TcpLayer)
        self.assertEqual(root.layer.events, ["start", b"GE"])

    def test_half_close_gets_tcp(self) -> None:
        """
        A client that shuts its writing half before the protocol is known
        gets raw TCP, with its bytes and then its half-close.
        """
        root, chooser, _ = self.detect(b"GE")
        self.assertTrue(IHalfCloseableProtocol.providedBy(root))
        root.readConnectionLost()
        [candidate] = chooser.candidates
        self.assertIsInstance(candidate, TcpLayer)
        self.assertEqual(root.layer.events, ["start", b"GE", "eof"])
        self.assertFalse(self.transport.disconnecting)

    def test_lost_during_detection(self) -> None:
        """
        A client gone before the protocol is known leaves no timer behind.
        """
        root, chooser, clock = self.detect(b"GE")
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        root.connectionLost(None)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(chooser.candidates, [])


class TcpRelayTests(unittest.TestCase):
    """
    The TCP relay without events writes each side's bytes straight to the
    other side, without rebinding any method.
    """

    def setUp(self) -> None:
        self.root, self.client, _ = connected_root(self, Chooser(lambda candidate: Recorder(candidate.root)))
        self.layer = TcpLayer(self.root, _ADDRESS)
        self.upstream = _TcpUpstream(self.layer)
        self.server = HalfClosingTransport()
        self.upstream.makeConnection(self.server)

    def test_direct(self) -> None:
        """
        With both sides up and no addon handling TCP events, bytes go
        straight across, through the layer's and the upstream's own
        methods.
        """
        self.assertTrue(self.layer.direct)
        self.layer.data_received(b"to server")
        self.upstream.dataReceived(b"to client")
        self.assertEqual(self.server.value(), b"to server")
        self.assertEqual(self.client.value(), b"to client")
        self.assertNotIn("dataReceived", vars(self.upstream))
        self.assertNotIn("data_received", vars(self.layer))

    def test_half_close_shuts_write(self) -> None:
        """
        The client's half-close shuts the writing half toward a transport
        that can (L{ITCPTransport}); toward one that cannot, it closes.
        """
        self.layer.read_connection_lost()
        self.assertTrue(self.server.write_shut)
        self.assertFalse(self.server.disconnecting)
        self.upstream.readConnectionLost()
        # The client transport (a plain StringTransport) cannot half-close:
        # it is closed, and so is the server side, both directions done.
        self.assertTrue(self.client.disconnecting)
        self.assertTrue(self.server.disconnecting)
