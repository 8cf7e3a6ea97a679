"""
Tests for L{interceptor.core.access} and the C{block} addon: which clients
are refused, which credentials are accepted, and the warning for a proxy
listening beyond loopback without credentials (hardening issue, item 3).
Client addresses other than loopback cannot be used for real in tests, so
the refusal is driven in memory, with the peer address a transport reports.
"""

from __future__ import annotations

import base64
import hashlib

import bcrypt
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial import unittest

from addons.block import Block
from addons.proxyauth import ProxyAuth
from interceptor.core.access import (
    Htpasswd,
    listens_beyond_loopback,
    parse_basic,
    refused_by,
    validator_for,
)
from interceptor.core.master import Master
from interceptor.core.options import OptionsError, proxy_options
from interceptor.layers.http1 import Http1Layer
from interceptor.proxy import ProxyFactory
from interceptor.testing import LogRecorder


class RefusedByTests(unittest.TestCase):
    """
    L{refused_by}, mitmproxy's block semantics.
    """

    def test_defaults(self):
        """block_global on, block_private off: public clients refused, private and loopback ones not."""
        for host in ("8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8", "1.1.1.1"):
            self.assertEqual(refused_by(host, True, False), "block_global", host)
        for host in ("10.0.0.5", "192.168.1.2", "172.16.0.1", "fd00::1", "fe80::1%eth0", "127.0.0.1", "::1"):
            self.assertIsNone(refused_by(host, True, False), host)

    def test_block_private(self):
        for host in ("10.0.0.5", "192.168.1.2", "172.31.255.1", "fd00::1", "169.254.1.1", "::ffff:10.1.1.1"):
            self.assertEqual(refused_by(host, False, True), "block_private", host)
        self.assertIsNone(refused_by("8.8.8.8", False, True))

    def test_loopback_never(self):
        """Loopback is never refused, whatever the options (as in mitmproxy)."""
        for host in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
            self.assertIsNone(refused_by(host, True, True), host)

    def test_not_ip(self):
        """A client that is not on IP (a UNIX socket) is not refused."""
        self.assertIsNone(refused_by("", True, True))
        self.assertIsNone(refused_by("/tmp/proxy.sock", True, True))

    def test_listens_beyond_loopback(self):
        for host in ("0.0.0.0", "::", "", "10.0.0.1", "192.168.1.1"):
            self.assertTrue(listens_beyond_loopback(host), host)
        for host in ("127.0.0.1", "127.0.0.2", "::1"):
            self.assertFalse(listens_beyond_loopback(host), host)


class ValidatorTests(unittest.TestCase):
    """
    The values of C{proxyauth}.
    """

    def _htpasswd(self, *lines: str) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def test_single_user(self):
        validator = validator_for("alice:pa:ss")
        self.assertTrue(validator.check("alice", "pa:ss"))
        self.assertFalse(validator.check("alice", "pa"))
        self.assertFalse(validator.check("bob", "pa:ss"))
        self.assertEqual(validator.known("alice", "pa:ss"), True)

    def test_any(self):
        self.assertTrue(validator_for("any").check("who", "ever"))

    def test_bad_values(self):
        for spec in ("nocolon", ":pass", "@/nonexistent/htpasswd"):
            self.assertRaises(ValueError, validator_for, spec)

    def test_htpasswd_bcrypt_and_sha(self):
        """bcrypt ($2y$, as htpasswd -B writes) and {SHA} entries; the bcrypt answer is then known."""
        hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$", 1)
        sha = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
        path = self._htpasswd("# users", f"alice:{hashed}", "", f"bob:{{SHA}}{sha}")
        validator = Htpasswd.from_file(path)
        self.assertIsNone(validator.known("alice", "secret"))
        self.assertTrue(validator.check("alice", "secret"))
        self.assertEqual(validator.known("alice", "secret"), True)
        self.assertFalse(validator.check("alice", "wrong"))
        self.assertEqual(validator.known("alice", "wrong"), False)
        self.assertEqual(validator.known("bob", "other"), True)
        self.assertEqual(validator.known("bob", "secret"), False)
        self.assertEqual(validator.known("carol", "secret"), False)
        self.assertFalse(validator.check("alice", "x" * 100))

    def test_htpasswd_unsupported(self):
        """An MD5 ($apr1$) entry, a line without a hash, an empty file: refused naming the line."""
        e = self.assertRaises(ValueError, Htpasswd.from_file, self._htpasswd("carol:$apr1$xyz$abc"))
        self.assertIn("line 1: user 'carol' has an unsupported hash", str(e))
        e = self.assertRaises(ValueError, Htpasswd.from_file, self._htpasswd("# only", "dave"))
        self.assertIn("line 2: expected USER:HASH", str(e))
        self.assertRaises(ValueError, Htpasswd.from_file, self._htpasswd("# nobody"))

    def test_parse_basic(self):
        encoded = base64.b64encode(b"alice:pa:ss").decode()
        self.assertEqual(parse_basic(f"Basic {encoded}"), ("alice", "pa:ss"))
        self.assertEqual(parse_basic(f"basic  {encoded} "), ("alice", "pa:ss"))
        for value in (None, "", "Bearer xyz", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode()):
            self.assertIsNone(parse_basic(value), value)

    def test_transparent_refused(self):
        """proxyauth in transparent mode is an option error when the proxy starts."""
        master = Master(proxy_options(mode="transparent"), [ProxyAuth()], reactor=Clock())
        master.options.update(proxyauth="a:b")
        e = self.assertRaises(OptionsError, master.start)
        self.assertIn("transparent mode", str(e))


    def test_hooks_only_while_set(self):
        """
        Unset, proxyauth puts no hook in the chain (no request pays for a
        check); set, its checks run on requests; unset again, they go.
        """
        auth = ProxyAuth()
        master = Master(proxy_options(), [auth], reactor=Clock())
        master.start()
        self.addCleanup(master.stop)
        self.assertFalse(master.addons.has_hooks("requestheaders"))
        master.options.update(proxyauth="a:b")
        self.assertIn(auth.checks, list(master.addons))
        self.assertTrue(master.addons.has_hooks("requestheaders"))
        master.options.update(proxyauth=None)
        self.assertNotIn(auth.checks, list(master.addons))
        self.assertFalse(master.addons.has_hooks("requestheaders"))


def root_from(case, host, *addons, **options):
    """
    A root protocol of a proxy with the C{block} addon, connected in
    memory to a client at C{host}; returns (root, transport, recorder).
    """
    clock = Clock()
    recorder = LogRecorder()
    master = Master(proxy_options(), addons=[Block(), recorder, *addons], reactor=clock)
    master.options.update(**options)
    master.start()
    case.addCleanup(master.stop)
    root = ProxyFactory(master).buildProtocol(None)
    peer = (IPv6Address if ":" in host else IPv4Address)("TCP", host, 40000)
    transport = StringTransport(peerAddress=peer)
    root.makeConnection(transport)
    return root, transport, recorder


class BlockTests(unittest.TestCase):
    """
    The C{block} addon refuses clients before any layer sees them.
    """

    def test_public_client_refused(self):
        """A client from a public address: closed, nothing written, one warning naming block_global."""
        root, transport, recorder = root_from(self, "8.8.8.8")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        self.assertIsNone(root.layer)
        self.assertEqual(
            recorder.messages("warn"),
            ["Client connection from 8.8.8.8 refused by block_global (set block_global=false to allow it)"],
        )
        self.assertEqual(root.client_conn.error, "Connection refused by block_global.")

    def test_public_client_allowed(self):
        root, transport, recorder = root_from(self, "8.8.8.8", block_global=False)
        self.assertFalse(transport.disconnecting)
        self.assertIsInstance(root.layer, Http1Layer)

    def test_private_client(self):
        """block_private refuses 10.0.0.5; by default it is served."""
        root, transport, recorder = root_from(self, "10.0.0.5", block_private=True)
        self.assertTrue(transport.disconnecting)
        self.assertIn("refused by block_private", recorder.text("warn"))
        root, transport, _ = root_from(self, "10.0.0.5")
        self.assertFalse(transport.disconnecting)

    def test_loopback_with_both(self):
        root, transport, recorder = root_from(self, "127.0.0.1", block_private=True)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(recorder.messages("warn"), [])


class OpenProxyWarningTests(unittest.TestCase):
    """
    A proxy listening beyond loopback without proxyauth says so when it
    starts (beyond loopback on a memory reactor, whose ports are all on
    0.0.0.0: no such socket is opened).
    """

    async def _warnings_at(self, listen, *addons, memory=True, **options):
        recorder = LogRecorder()
        reactor = MemoryReactorClock() if memory else None
        master = Master(proxy_options(), addons=[recorder, *addons], reactor=reactor)
        master.options.update(**options)
        master.start()
        self.addCleanup(master.stop)
        await master.listen(listen)
        return recorder.messages("warn")

    async def test_every_address_without_proxyauth(self):
        [warning] = await self._warnings_at("tcp:8080:interface=0.0.0.0")
        self.assertEqual(
            warning,
            "Listening on 0.0.0.0:8080, beyond loopback, without proxyauth: anyone who can reach "
            "it may use the proxy (set proxyauth=USER:PASS or @HTPASSWD_FILE)",
        )

    async def test_no_warning(self):
        """Loopback, or proxyauth set: no warning."""
        self.assertEqual(await self._warnings_at("tcp:0:interface=127.0.0.1", memory=False), [])
        self.assertEqual(await self._warnings_at(r"tcp6:0:interface=\:\:1", memory=False), [])
        self.assertEqual(await self._warnings_at("tcp:8080", ProxyAuth(), proxyauth="a:b"), [])
