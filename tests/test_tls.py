# -*- test-case-name: tests.test_tls -*-
"""
Unit tests of L{interceptor.tls}: reading ClientHellos, the client-facing
TLS contexts, upstream contexts, and certificate checks.
"""

from __future__ import annotations

import gc
import os
import ssl
from typing import Optional

from OpenSSL import SSL, crypto
from twisted.trial import unittest

from interceptor.tls.certs import CertStore
from interceptor.tls.handshake import (
    NotTLS,
    ServerTLS,
    UpstreamContexts,
    UpstreamTLS,
    check_hostname,
    looks_like_tls,
    parse_client_hello,
    verify_error_message,
)


def client_hello(server_hostname: Optional[str] = None, alpn=None) -> bytes:
    """
    The ClientHello Python's ssl sends, as bytes.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def split_records(hello: bytes, first: int) -> bytes:
    """
    The same handshake, its body split over two TLS records.
    """
    body = hello[5:]
    head = hello[:3]
    one, two = body[:first], body[first:]
    return (head + len(one).to_bytes(2, "big") + one + head + len(two).to_bytes(2, "big") + two)


class _CA:
    store: Optional[CertStore] = None

    @classmethod
    def get(cls) -> CertStore:
        if cls.store is None:
            cert, key = CertStore.create_ca("tls unit CA")
            cls.store = CertStore(cert, key)
        return cls.store


class ParseClientHelloTests(unittest.TestCase):
    """
    L{parse_client_hello} reads SNI and ALPN, and says when it needs more.
    """

    def test_sni_and_alpn(self):
        """SNI and the ALPN offers (in order) are read."""
        hello = parse_client_hello(client_hello("example.org", ["h2", "http/1.1"]))
        self.assertEqual(hello.sni, "example.org")
        self.assertEqual(hello.alpn_protocols, [b"h2", b"http/1.1"])

    def test_no_sni_for_ip(self):
        """A client connecting to an IP address sends no SNI."""
        hello = parse_client_hello(client_hello("127.0.0.1"))
        self.assertIsNone(hello.sni)
        self.assertEqual(hello.alpn_protocols, [])

    def test_no_extensions_of_interest(self):
        """No SNI and no ALPN: both empty."""
        hello = parse_client_hello(client_hello(None))
        self.assertIsNone(hello.sni)
        self.assertEqual(hello.alpn_protocols, [])

    def test_idna(self):
        """An internationalised name in the SNI is decoded."""
        hello = parse_client_hello(client_hello("xn--bcher-kva.example"))
        self.assertIn(hello.sni, ("xn--bcher-kva.example", "bücher.example"))

    def test_server_names(self):
        """
        What real names carry is read (underscores, a trailing dot); what no
        host name can be is NotTLS: a NUL byte, a space, an empty label, a
        label over 63 bytes (each swapped into a ClientHello for a name of
        the same length, so every length field stays right).
        """
        for name in ("_dmarc.example", "x" * 63 + ".example", "example.org."):
            self.assertEqual(parse_client_hello(client_hello(name)).sni, name)
        template = b"a" * 63 + b"." + b"b" * 10
        hello = client_hello(template.decode())
        for bad in (b"a\x00b", b"a b", b"a..b", b"x" * 70 + b".com"):
            raw = bad.ljust(len(template), b"c")
            with self.assertRaises(NotTLS) as caught:
                parse_client_hello(hello.replace(template, raw))
            self.assertIn("invalid server name", str(caught.exception))

    def test_incomplete(self):
        """Every proper prefix of a ClientHello needs more bytes (None)."""
        data = client_hello("example.org", ["http/1.1"])
        for end in range(0, len(data), 7):
            self.assertIsNone(parse_client_hello(data[:end]), end)
        self.assertIsNotNone(parse_client_hello(data))

    def test_split_over_records(self):
        """A ClientHello split over two TLS records is reassembled."""
        data = client_hello("split.example", ["h2"])
        for first in (2, 10, 100):
            hello = parse_client_hello(split_records(data, first))
            self.assertEqual((hello.sni, hello.alpn_protocols), ("split.example", [b"h2"]))

    def test_trailing_bytes(self):
        """Bytes after the ClientHello are ignored."""
        hello = parse_client_hello(client_hello("example.org") + b"\x17\x03\x03\x00\x01x")
        self.assertEqual(hello.sni, "example.org")

    def test_not_tls(self):
        """HTTP or other bytes are NotTLS."""
        self.assertRaises(NotTLS, parse_client_hello, b"GET / HTTP/1.1\r\n\r\n")
        self.assertRaises(NotTLS, parse_client_hello, b"\x00\x01\x02\x03\x04\x05")

    def test_not_client_hello(self):
        """A handshake record that does not hold a ClientHello is NotTLS."""
        self.assertRaises(NotTLS, parse_client_hello, b"\x16\x03\x01\x00\x04\x02\x00\x00\x00")

    def test_malformed(self):
        """A truncated ClientHello body is NotTLS, not an IndexError."""
        body = b"\x03\x03" + b"\x00" * 10
        handshake = b"\x01" + len(body).to_bytes(3, "big") + body
        record = b"\x16\x03\x01" + len(handshake).to_bytes(2, "big") + handshake
        self.assertRaises(NotTLS, parse_client_hello, record)

    def test_looks_like_tls(self):
        """looks_like_tls recognises a handshake record start."""
        self.assertTrue(looks_like_tls(client_hello("example.org")))
        self.assertFalse(looks_like_tls(b"GET / HTTP/1.1"))
        self.assertFalse(looks_like_tls(b"\x16\x03"))


def handshake(server: SSL.Connection, client: SSL.Connection) -> None:
    """
    Pump bytes between two memory-BIO connections until both finish.
    """
    server.set_accept_state()
    client.set_connect_state()
    done = {"client": False, "server": False}
    for _ in range(50):
        for name, conn in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    conn.do_handshake()
                    done[name] = True
                except SSL.WantReadError:
                    pass
        for a, b in ((client, server), (server, client)):
            try:
                data = a.bio_read(65536)
            except SSL.WantReadError:
                continue
            b.bio_write(data)
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def client_connection(ca_cert, alpn=None, sni=b"example.org") -> SSL.Connection:
    context = SSL.Context(SSL.TLS_METHOD)
    store = context.get_cert_store()
    store.add_cert(crypto.X509.from_cryptography(ca_cert))
    context.set_verify(SSL.VERIFY_PEER, lambda *args: args[-1])
    if alpn:
        context.set_alpn_protos(alpn)
    connection = SSL.Connection(context, None)
    if sni:
        connection.set_tlsext_host_name(sni)
    return connection


class ServerTLSTests(unittest.TestCase):
    """
    L{ServerTLS} presents the minted leaf and answers ALPN as asked.
    """

    def setUp(self):
        self.store = _CA.get()

    def negotiate(self, alpn_answer, offers):
        leaf = self.store.leaf_for(["example.org"])
        server = ServerTLS.for_leaf(leaf, alpn_answer).serverConnectionForTLS(None)
        client = client_connection(self.store.ca_cert, offers)
        handshake(server, client)
        return client

    def test_presents_leaf(self):
        """The client gets the leaf and verifies it against the CA."""
        client = self.negotiate(None, None)
        peer = client.get_peer_certificate().to_cryptography()
        self.assertEqual(peer, self.store.leaf_for(["example.org"]).cert)

    def test_alpn_upstream_choice(self):
        """The ALPN answer is the upstream's choice when the client offered it."""
        client = self.negotiate(b"h2", [b"h2", b"http/1.1"])
        self.assertEqual(client.get_alpn_proto_negotiated(), b"h2")
        client = self.negotiate(b"http/1.1", [b"h2", b"http/1.1"])
        self.assertEqual(client.get_alpn_proto_negotiated(), b"http/1.1")

    def test_alpn_default_http1(self):
        """Without an upstream choice, http/1.1 is answered when offered."""
        client = self.negotiate(None, [b"h2", b"http/1.1"])
        self.assertEqual(client.get_alpn_proto_negotiated(), b"http/1.1")

    def test_alpn_no_overlap(self):
        """An upstream choice the client did not offer: no ALPN, but the handshake succeeds."""
        client = self.negotiate(b"h2", [b"http/1.1"])
        self.assertEqual(client.get_alpn_proto_negotiated(), b"")

    def test_context_cached(self):
        """From its second use on, a leaf and ALPN answer have one context of their own."""
        leaf = self.store.leaf_for(["cached.example"])
        first = ServerTLS.for_leaf(leaf, None)
        second = ServerTLS.for_leaf(leaf, None)
        self.assertIsNot(first.context, second.context)
        self.assertIs(ServerTLS.for_leaf(leaf, None).context, second.context)
        self.assertIsNone(second.cert)
        ServerTLS.for_leaf(leaf, b"h2")
        self.assertIsNot(ServerTLS.for_leaf(leaf, b"h2").context, second.context)

    def test_first_use_shares_a_context(self):
        """New leaves of one store share a context; each connection still presents its own leaf."""
        leaves = [self.store.leaf_for([f"first{i}.example"]) for i in range(3)]
        creators = [ServerTLS.for_leaf(leaf, None) for leaf in leaves]
        self.assertIs(creators[0].context, creators[1].context)
        for leaf, creator in zip(leaves, creators):
            client = client_connection(self.store.ca_cert, None)
            handshake(creator.serverConnectionForTLS(None), client)
            self.assertEqual(client.get_peer_certificate().to_cryptography(), leaf.cert)

    def test_context_follows_new_leaves(self):
        """A context always presents the leaf it was asked for, even after older leaves were freed (no id() reuse)."""
        # What the suite made so far is no garbage of this test: the
        # collections below need not go through it each round.
        gc.freeze()
        self.addCleanup(gc.unfreeze)
        for i in range(30):
            cert, key = CertStore.create_ca(f"throwaway {i}")
            store = CertStore(cert, key)
            leaf = store.leaf_for(["reuse.example"])
            connection = ServerTLS.for_leaf(leaf, None).serverConnectionForTLS(None)
            self.assertEqual(connection.get_certificate().to_cryptography(), leaf.cert,
                             f"round {i}: a context of an earlier (freed) leaf was reused")
            del store, leaf, connection
            gc.collect()


class UpstreamContextsTests(unittest.TestCase):
    """
    L{UpstreamContexts} keeps one client context per set of settings.
    """

    def test_cached_per_settings(self):
        """Same settings, same context; other settings, another one."""
        contexts = UpstreamContexts()
        a = contexts.get(False, None, [b"http/1.1"])
        self.assertIs(contexts.get(False, None, [b"http/1.1"]), a)
        self.assertIsNot(contexts.get(True, None, [b"http/1.1"]), a)
        self.assertIsNot(contexts.get(False, None, [b"h2", b"http/1.1"]), a)

    def test_verify_modes(self):
        """Verification is on unless insecure."""
        contexts = UpstreamContexts()
        self.assertEqual(contexts.get(False, None, []).get_verify_mode(), SSL.VERIFY_PEER)
        self.assertEqual(contexts.get(True, None, []).get_verify_mode(), SSL.VERIFY_NONE)

    def test_bad_trusted_ca(self):
        """A trusted CA file that cannot be loaded raises SSL.Error."""
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(b"not pem")
        self.assertRaises(SSL.Error, UpstreamContexts().get, False, path, [])

    def test_upstream_sni_and_verification(self):
        """UpstreamTLS sends the SNI; a leaf from a trusted CA verifies, with the verify error unset."""
        store = _CA.get()
        path = os.path.abspath(self.mktemp())
        from cryptography.hazmat.primitives import serialization

        with open(path, "wb") as f:
            f.write(store.ca_cert.public_bytes(serialization.Encoding.PEM))
        context = UpstreamContexts().get(False, path, [b"http/1.1"])

        class Wrapper:
            class wrappedProtocol:
                verify_error = None

        creator = UpstreamTLS(context, "example.org")
        client = creator.clientConnectionForTLS(Wrapper)
        leaf = store.leaf_for(["example.org"])
        server = ServerTLS.for_leaf(leaf, b"http/1.1").serverConnectionForTLS(None)
        handshake(server, client)
        self.assertEqual(server.get_servername(), b"example.org")
        self.assertIsNone(Wrapper.wrappedProtocol.verify_error)
        self.assertEqual(client.get_alpn_proto_negotiated(), b"http/1.1")

    def test_upstream_verify_error_recorded(self):
        """An untrusted upstream certificate is recorded as "unknown issuer", the handshake still ends."""
        store = _CA.get()
        context = UpstreamContexts().get(False, None, [])

        class Wrapper:
            class wrappedProtocol:
                verify_error = None

        client = UpstreamTLS(context, "example.org").clientConnectionForTLS(Wrapper)
        server = ServerTLS.for_leaf(store.leaf_for(["example.org"]), None).serverConnectionForTLS(None)
        handshake(server, client)
        self.assertIn("unknown issuer", Wrapper.wrappedProtocol.verify_error)


class VerifyMessageTests(unittest.TestCase):
    """
    L{verify_error_message} and L{check_hostname} say why a certificate
    fails.
    """

    def test_known_reasons(self):
        """Common OpenSSL errors get readable reasons with the depth."""
        self.assertEqual(verify_error_message(10, 0), "certificate has expired (at depth 0)")
        self.assertIn("unknown issuer", verify_error_message(20, 0))
        self.assertIn("unknown issuer", verify_error_message(18, 0))
        self.assertIn("not yet valid", verify_error_message(9, 1))

    def test_unknown_code(self):
        """An unknown code is still reported, with its number."""
        self.assertEqual(verify_error_message(4242, 2), "verification error 4242 (at depth 2)")

    def test_check_hostname(self):
        """check_hostname accepts covered names and IPs and names the problem otherwise."""
        store = _CA.get()
        cert = store.leaf_for(["host.example", "*.wild.example", "10.1.2.3"]).cert
        self.assertIsNone(check_hostname(cert, "host.example"))
        self.assertIsNone(check_hostname(cert, "a.wild.example"))
        self.assertIsNone(check_hostname(cert, "10.1.2.3"))
        problem = check_hostname(cert, "other.example")
        self.assertIn("wrong host", problem)
        self.assertIn("other.example", problem)
        problem = check_hostname(cert, "10.9.9.9")
        self.assertIn("IP address", problem)
        self.assertIn("10.9.9.9", problem)
        self.assertIsNotNone(check_hostname(cert, "a.b.wild.example"))
