# -*- test-case-name: tests.test_fastpaths -*-
"""
Tests of the switch in L{interceptor.transport.fast}: each fast path's
entry point takes Twisted's own way when the switch is off, and the switch
follows the environment and the proxies' C{fast_paths} option.
"""

from __future__ import annotations

import signal

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.trial import unittest

from interceptor.core.master import Master
from interceptor.core.options import proxy_options
from interceptor.tls.certs import CertStore
from interceptor.tls.handshake import ServerTLS
from interceptor.transport import fast
from interceptor.transport.fast import allocator, exitsignal, fasttls
from interceptor.transport.fast.bodyrelay import BodyRelay
from interceptor.transport.fast.fasttls import FastTLSFactory, FastTLSProtocol, tls_factory
from interceptor.transport.fast.fastwrite import writer_for

ENVIRONMENT_OFF = (
    None if fast.from_environment() else "the fast paths are off in this process (INTERCEPTOR_FAST_PATHS=0)"
)


def switched_off(testcase: unittest.TestCase) -> None:
    """
    Hold the fast paths off for the rest of C{testcase}.
    """
    fast.hold_off(testcase)
    testcase.addCleanup(fast.release, testcase)


_STORE: list = []


def server_tls() -> ServerTLS:
    """
    A server connection creator for a.test (from a CA made once).
    """
    if not _STORE:
        _STORE.append(CertStore(*CertStore.create_ca("fast paths test CA")))
    return ServerTLS.for_leaf(_STORE[0].leaf_for(["a.test"]), None)


class _Connected(Protocol):
    def __init__(self, made: Deferred) -> None:
        self.made = made

    def connectionMade(self) -> None:
        self.made.callback(self)


async def tcp_pair(testcase: unittest.TestCase) -> tuple:
    """
    Two connected plain TCP transports on 127.0.0.1: (server side, client side).
    """
    server_made, client_made = Deferred(), Deferred()
    port = reactor.listenTCP(0, Factory.forProtocol(lambda: _Connected(server_made)),
                             interface="127.0.0.1")
    testcase.addCleanup(port.stopListening)
    reactor.connectTCP("127.0.0.1", port.getHost().port,
                       ClientFactory.forProtocol(lambda: _Connected(client_made)))
    server, client = await server_made, await client_made
    for protocol in (server, client):
        testcase.addCleanup(protocol.transport.abortConnection)
    return server.transport, client.transport


class SwitchTests(unittest.TestCase):
    """
    L{fast.enabled} follows the environment and the holds.
    """

    def test_environment(self) -> None:
        """INTERCEPTOR_FAST_PATHS=0 (false, no, off, any case) turns them off; unset, 1 or anything else leaves them on."""
        for value in ("0", "false", "No", " OFF "):
            self.assertFalse(fast.from_environment({fast.ENVIRONMENT_VARIABLE: value}), value)
        for environ in ({}, {fast.ENVIRONMENT_VARIABLE: "1"}, {fast.ENVIRONMENT_VARIABLE: ""}):
            self.assertTrue(fast.from_environment(environ), environ)

    def test_holds(self) -> None:
        """Off while any holder holds; back as the environment says once every holder released."""
        first, second = object(), object()
        fast.hold_off(first)
        self.addCleanup(fast.release, first)
        fast.hold_off(second)
        self.addCleanup(fast.release, second)
        fast.hold_off(second)
        self.assertFalse(fast.enabled())
        fast.release(second)
        self.assertFalse(fast.enabled())
        fast.release(first)
        self.assertEqual(fast.enabled(), fast.from_environment())
        fast.release(first)
        self.assertEqual(fast.enabled(), fast.from_environment())


class ProxyOptionTests(unittest.TestCase):
    """
    A proxy with C{fast_paths=false} holds the fast paths off while it listens.
    """

    async def test_option(self) -> None:
        """Off from listen to stop; the option changed at run time takes effect at once."""
        self.assertTrue(proxy_options().fast_paths)
        master = Master(proxy_options(fast_paths=False))
        master.start()
        await master.listen("tcp:0:interface=127.0.0.1")
        self.assertFalse(fast.enabled())
        master.options.update(fast_paths=True)
        self.assertEqual(fast.enabled(), fast.from_environment())
        master.options.update(fast_paths=False)
        self.assertFalse(fast.enabled())
        await master.stop()
        self.assertEqual(fast.enabled(), fast.from_environment())


class OffTests(unittest.TestCase):
    """
    With the switch off, every entry point takes Twisted's own way.
    """

    def setUp(self) -> None:
        switched_off(self)

    async def test_writer_is_transport_write(self) -> None:
        """writer_for gives transport.write itself."""
        server, client = await tcp_pair(self)
        for transport in (server, client):
            self.assertEqual(writer_for(transport), transport.write)

    async def test_no_body_relay(self) -> None:
        """BodyRelay cannot take over even two idle plain TCP connections."""
        server, client = await tcp_pair(self)
        self.assertFalse(BodyRelay.possible(server, client))

    def test_twisted_tls(self) -> None:
        """The TLS factory is Twisted's own, and so is the protocol it builds."""
        factory = tls_factory(server_tls(), False, Factory.forProtocol(Protocol))
        self.assertIs(type(factory), TLSMemoryBIOFactory)
        self.assertFalse(factory.noisy)
        protocol = factory.buildProtocol(None)
        self.assertIsInstance(protocol, TLSMemoryBIOProtocol)
        self.assertNotIsInstance(protocol, FastTLSProtocol)

    def test_allocator_untouched(self) -> None:
        """keep_freed_memory changes nothing (mallopt is not even looked up)."""
        self.patch(allocator.ctypes, "CDLL", lambda *a: self.fail("mallopt looked up"))
        self.assertFalse(allocator.keep_freed_memory({}))

    def test_exit_signal_kept(self) -> None:
        """The reactor's private exit signal is not touched."""
        class Reactor:
            _exitSignal = signal.SIGTERM

        fake = Reactor()
        self.assertFalse(exitsignal.forget_exit_signal(fake, signal.SIGTERM))
        self.assertEqual(fake._exitSignal, signal.SIGTERM)


class OnTests(unittest.TestCase):
    """
    With the switch on (as by default), the entry points take the fast paths.
    """

    skip = ENVIRONMENT_OFF

    async def test_direct_writer(self) -> None:
        """writer_for gives its own writer for a plain TCP transport."""
        server, _ = await tcp_pair(self)
        self.assertNotEqual(writer_for(server), server.write)

    async def test_body_relay_possible(self) -> None:
        """BodyRelay may take over two idle plain TCP connections."""
        server, client = await tcp_pair(self)
        self.assertTrue(BodyRelay.possible(server, client))

    def test_fast_tls(self) -> None:
        """The TLS factory builds FastTLSProtocols."""
        factory = tls_factory(server_tls(), False, Factory.forProtocol(Protocol))
        self.assertIsInstance(factory, FastTLSFactory)
        self.assertIsInstance(factory.buildProtocol(None), FastTLSProtocol)

    def test_exit_signal_forgotten(self) -> None:
        """A SIGTERM kept by the reactor is forgotten; another signal is not."""
        class Reactor:
            _exitSignal = signal.SIGTERM

        fake = Reactor()
        self.assertFalse(exitsignal.forget_exit_signal(fake, signal.SIGINT))
        self.assertTrue(exitsignal.forget_exit_signal(fake, signal.SIGTERM))
        self.assertIsNone(fake._exitSignal)


class TwistedNamesTests(unittest.TestCase):
    """
    How Twisted's TLS factory makes a protocol's OpenSSL connection is
    found once, at import, under either private name.
    """

    def test_found(self) -> None:
        """This Twisted's name was found."""
        self.assertTrue(fasttls.FAST_SETUP)

    def _maker_for(self, factory_class: type):
        self.patch(fasttls, "TLSMemoryBIOFactory", factory_class)
        return fasttls._connection_maker()

    def test_create_connection(self) -> None:
        """A factory with the method _createConnection (Twisted 24.7 to 25.5)."""
        class Older(TLSMemoryBIOFactory):
            def __init__(self, *args, **kwargs) -> None:
                pass

            def _createConnection(self, protocol):
                return ("connection for", protocol)

        maker = self._maker_for(Older)
        self.assertEqual(maker(Older(), "p"), ("connection for", "p"))

    def test_creator_callable(self) -> None:
        """A factory with the attribute _creatorCallable (Twisted 26)."""
        class Newer(TLSMemoryBIOFactory):
            def __init__(self, *args, **kwargs) -> None:
                self._creatorCallable = lambda protocol: ("connection for", protocol)

        maker = self._maker_for(Newer)
        self.assertEqual(maker(Newer(), "p"), ("connection for", "p"))

    def test_neither(self) -> None:
        """A factory with neither: no maker, and tls_factory gives Twisted's own factory."""
        class Unknown(TLSMemoryBIOFactory):
            _createConnection = None

            def __init__(self, *args, **kwargs) -> None:
                pass

        self.assertIsNone(self._maker_for(Unknown))
        self.patch(fasttls, "TLSMemoryBIOFactory", TLSMemoryBIOFactory)
        self.patch(fasttls, "FAST_SETUP", False)
        factory = tls_factory(server_tls(), False, Factory.forProtocol(Protocol))
        self.assertIs(type(factory), TLSMemoryBIOFactory)
