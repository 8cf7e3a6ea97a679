# -*- test-case-name: tests.test_fasttls -*-
"""
Unit tests of L{interceptor.transport.fast.fasttls}: a client and a server
L{FastTLSProtocol} talking over an in-memory pair of transports
(C{twisted.test.iosim}), with the direct record path on.
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.test import iosim
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface import implementer

from interceptor.transport.fast import fasttls
from interceptor.tls.certs import CertStore
from interceptor.transport.fast.fasttls import FastTLSFactory, FastTLSProtocol
from interceptor.tls.handshake import ServerTLS, UpstreamContexts, UpstreamTLS


@implementer(IHandshakeListener)
class Peer(Protocol):
    """
    Records what arrives over TLS and how the connection ended.
    """

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.handshaken = False
        self.lost = None

    def handshakeCompleted(self) -> None:
        self.handshaken = True

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason=None) -> None:
        self.lost = reason

    @property
    def data(self) -> bytes:
        return b"".join(self.received)


def tls_pair(name: str, greet: bool = True) -> tuple:
    """
    A server and a client L{FastTLSProtocol} for C{name} (the server's
    certificate from a new CA, the client not verifying), connected in
    memory; (server peer, client peer, server TLS, client TLS, pump).
    """
    store = CertStore(*CertStore.create_ca("fasttls test CA"))
    server, client = Peer(), Peer()
    server_tls = FastTLSFactory(
        ServerTLS.for_leaf(store.leaf_for([name]), None), False, Factory.forProtocol(lambda: server)
    ).buildProtocol(None)
    client_tls = FastTLSFactory(
        UpstreamTLS(UpstreamContexts().get(True, None, []), name), True,
        Factory.forProtocol(lambda: client),
    ).buildProtocol(None)
    pump = iosim.connect(server_tls, iosim.makeFakeServer(server_tls),
                         client_tls, iosim.makeFakeClient(client_tls), greet=greet)
    return server, client, server_tls, client_tls, pump


class FastTLSTests(unittest.TestCase):
    """
    Records cross intact both ways; closes and errors end the connection as
    Twisted's own TLS protocol does.
    """

    def setUp(self):
        self.server, self.client, self.server_tls, self.client_tls, self.pump = tls_pair("a.test")

    def test_direct_record_path_in_use(self):
        """After the handshake both sides read and write records through OpenSSL directly."""
        self.assertTrue(fasttls.FAST_RECORDS)
        self.assertTrue(self.client.handshaken and self.server.handshaken)
        self.assertIsInstance(self.client_tls, FastTLSProtocol)
        self.assertIsNotNone(self.client_tls._ssl)
        self.assertIsNotNone(self.server_tls._ssl)

    def test_small_messages_both_ways(self):
        """Many small writes arrive in order, both ways."""
        for i in range(50):
            self.client.transport.write(b"request %d\n" % i)
            self.server.transport.write(b"response %d\n" % i)
            self.pump.flush()
        self.assertEqual(self.server.data, b"".join(b"request %d\n" % i for i in range(50)))
        self.assertEqual(self.client.data, b"".join(b"response %d\n" % i for i in range(50)))

    def test_large_write(self):
        """A write bigger than the record and chunk sizes arrives whole and in order."""
        body = bytes(range(256)) * 4099  # ~1 MiB, not a multiple of 16 or 64 KiB
        self.client.transport.write(body)
        self.pump.flush()
        self.assertEqual(self.server.data, body)

    def test_write_before_handshake(self):
        """Bytes written before the handshake completes are sent once it does."""
        server, client, _, _, pump = tls_pair("b.test", greet=False)
        client.transport.write(b"early bytes")
        pump.flush()
        self.assertEqual(server.data, b"early bytes")

    def test_other_buffer_types(self):
        """bytearray and memoryview writes (Twisted's path) arrive too, in order with bytes."""
        self.client.transport.write(b"one ")
        self.client.transport.write(bytearray(b"two "))
        self.client.transport.write(memoryview(b"three"))
        self.pump.flush()
        self.assertEqual(self.server.data, b"one two three")

    def test_clean_close(self):
        """A close_notify from the peer ends the connection cleanly."""
        self.client.transport.write(b"last words")
        self.client.transport.loseConnection()
        self.pump.flush()
        self.assertEqual(self.server.data, b"last words")
        self.assertIsNotNone(self.server.lost)
        self.assertTrue(self.server.lost.check(ConnectionDone), self.server.lost)

    def test_corrupt_record(self):
        """A corrupted record after the handshake ends the connection with an SSL error, nothing delivered."""
        self.server_tls.dataReceived(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
        self.pump.flush()
        self.assertEqual(self.server.received, [])
        self.assertIsNotNone(self.server.lost)
        self.assertTrue(self.server.lost.check(SSL.Error), self.server.lost)

    def test_answer_and_close_from_inside_a_read(self):
        """A protocol that writes and closes from inside dataReceived: its answer arrives, then a clean close."""
        server = self.server

        def answer(data):
            Peer.dataReceived(server, data)
            server.transport.write(b"answer to " + data)
            server.transport.loseConnection()

        server.dataReceived = answer
        self.client.transport.write(b"question")
        self.pump.flush()
        self.assertEqual(self.client.data, b"answer to question")
        self.assertIsNotNone(self.client.lost)
        self.assertTrue(self.client.lost.check(ConnectionDone), self.client.lost)

    def test_eof_without_close_notify(self):
        """TCP closing under an established TLS connection (no close_notify) is a lost connection, not a clean one."""
        self.client.transport.write(b"partial")
        self.pump.flush()
        self.server_tls.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.server.data, b"partial")
        self.assertTrue(self.server.lost.check(ConnectionLost), self.server.lost)
