# -*- test-case-name: tests.e2e.test_access -*-
"""
Access control with real clients (hardening issue, item 3): C{proxyauth}
in regular, upstream, reverse and SOCKS5 mode, and C{block_private} on
loopback.
"""

from __future__ import annotations

import base64
import hashlib
import json

import bcrypt
from twisted.trial import unittest

from addons.block import Block
from addons.proxyauth import ProxyAuth
from interceptor.core.master import Master
from interceptor.core.options import OptionsError, proxy_options
from interceptor.testing import LogRecorder, start_proxy
from tests.e2e.peers import RawClient, WebServer, curl, twistd_proxy

CHALLENGE = 'Basic realm="interceptor"'


def echoed_headers(body: bytes) -> dict:
    """
    The request headers the web server's /echo saw, by lower-cased name.
    """
    return {name.lower(): value for name, value in json.loads(body)["headers"]}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class RegularModeTests(unittest.TestCase):
    """
    proxyauth=user:pass with curl as an HTTP proxy client.
    """

    timeout = 20

    async def setUp(self):
        self.web = await WebServer.start(self)
        self.recorder = LogRecorder()
        self.proxy = await start_proxy(self, ProxyAuth(), self.recorder, proxyauth="alice:s3cret")

    async def test_no_credentials(self):
        """No Proxy-Authorization: 407 with Proxy-Authenticate, nothing reaches the server, one log line."""
        result = await curl(self, "-x", self.proxy.url, self.web.url("/echo"))
        self.assertEqual(result.status, 407)
        self.assertEqual(result.heads[-1].header(b"proxy-authenticate"), CHALLENGE.encode())
        self.assertEqual(self.web.connections, [])
        [line] = [m for m in self.recorder.messages("info") if "Proxy Authentication Required" in m]
        self.assertIn(": 407 Proxy Authentication Required: ", line)
        self.assertIn("no Basic credentials", line)

    async def test_right_credentials(self):
        """Right credentials: the request goes on, without the client's Proxy-Authorization."""
        result = await curl(self, "-x", self.proxy.url, "--proxy-user", "alice:s3cret", self.web.url("/echo"))
        self.assertEqual(result.status, 200, result.stderr)
        self.assertNotIn("proxy-authorization", echoed_headers(result.body))

    async def test_wrong_credentials(self):
        result = await curl(self, "-x", self.proxy.url, "--proxy-user", "alice:nope", self.web.url("/echo"))
        self.assertEqual(result.status, 407)
        self.assertIn("wrong credentials for user 'alice'", self.recorder.text("info"))
        self.assertEqual(self.web.connections, [])

    async def test_connect_without_credentials(self):
        """A CONNECT without credentials: 407, and the connection is closed."""
        result = await curl(self, "-p", "-x", self.proxy.url, self.web.url("/echo"))
        self.assertNotEqual(result.code, 0)
        self.assertEqual(result.status, 407)
        self.assertEqual(result.heads[-1].header(b"proxy-authenticate"), CHALLENGE.encode())
        self.assertEqual(self.web.connections, [])

    async def test_connect_with_credentials(self):
        """An authenticated CONNECT: the requests in its tunnel need no credentials of their own."""
        result = await curl(
            self, "-p", "-x", self.proxy.url, "--proxy-user", "alice:s3cret", self.web.url("/echo")
        )
        self.assertEqual(result.status, 200, result.stderr)
        self.assertNotIn("proxy-authorization", echoed_headers(result.body))

    async def test_raw_request_bytes(self):
        """Exact bytes: a request with credentials then one without on the same connection."""
        client = await RawClient.connect(self, self.proxy.port_number)
        url = self.web.url("/echo").encode()
        client.send(
            b"GET " + url + b" HTTP/1.1\r\nHost: x\r\nProxy-Authorization: "
            + basic("alice", "s3cret").encode() + b"\r\n\r\n"
            b"GET " + url + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        await client.wait_for(lambda d: d.count(b"HTTP/1.1 ") >= 2 and d.endswith(b"\n"))
        data = bytes(client.received)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:200])
        self.assertIn(b"HTTP/1.1 407 Proxy Authentication Required\r\n", data)


class TwistdTests(unittest.TestCase):
    """
    C{twistd interceptor --set proxyauth=...}: the default addons enforce it.
    """

    timeout = 30

    async def test_proxyauth_on_the_command_line(self):
        web = await WebServer.start(self)
        port, _, protocol = await twistd_proxy(self, "--set", "proxyauth=alice:s3cret")
        refused = await curl(self, "-x", f"http://127.0.0.1:{port}", web.url("/echo"))
        self.assertEqual(refused.status, 407, protocol.output.decode(errors="replace"))
        self.assertEqual(refused.heads[-1].header(b"proxy-authenticate"), CHALLENGE.encode())
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", "--proxy-user", "alice:s3cret", web.url("/echo"))
        self.assertEqual(result.status, 200, result.stderr)
        self.assertEqual(len(web.connections), 1)


class HtpasswdTests(unittest.TestCase):
    """
    proxyauth=@file with bcrypt and SHA-1 entries, over HTTP and SOCKS5.
    """

    timeout = 20

    async def setUp(self):
        self.web = await WebServer.start(self)
        path = self.mktemp()
        hashed = bcrypt.hashpw(b"b-pass", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$", 1)
        sha = base64.b64encode(hashlib.sha1(b"s-pass").digest()).decode()
        with open(path, "w") as f:
            f.write(f"bob:{hashed}\nsam:{{SHA}}{sha}\n")
        self.path = path

    async def test_http(self):
        proxy = await start_proxy(self, ProxyAuth(), proxyauth=f"@{self.path}")
        for user, password, status in (("bob", "b-pass", 200), ("sam", "s-pass", 200),
                                       ("bob", "s-pass", 407), ("eve", "b-pass", 407)):
            result = await curl(self, "-x", proxy.url, "--proxy-user", f"{user}:{password}", self.web.url("/echo"))
            self.assertEqual(result.status, status, (user, password, result.stderr))

    async def test_socks5(self):
        """SOCKS5 clients authenticate against the same file (bcrypt checked off the reactor thread)."""
        proxy = await start_proxy(self, ProxyAuth(), mode="socks5", proxyauth=f"@{self.path}")
        good = await curl(self, "--proxy", f"socks5h://bob:b-pass@127.0.0.1:{proxy.port_number}", self.web.url("/echo"))
        self.assertEqual((good.code, good.status), (0, 200), good.stderr)
        bad = await curl(self, "--proxy", f"socks5h://bob:nope@127.0.0.1:{proxy.port_number}", self.web.url("/echo"))
        self.assertNotEqual(bad.code, 0)
        self.assertEqual(len(self.web.connections), 1)

    async def test_socks5_client_offering_no_auth(self):
        """proxyauth set: a SOCKS5 client offering only "no authentication" gets 0xFF."""
        proxy = await start_proxy(self, ProxyAuth(), mode="socks5", proxyauth=f"@{self.path}")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"\x05\x01\x00")
        self.assertEqual(await client.wait_closed(), b"\x05\xff")

    async def test_unusable_file(self):
        """A missing file or an MD5 entry: an option error when the proxy starts."""
        with open(self.path, "w") as f:
            f.write("carol:$apr1$abc$def\n")
        for spec in ("@/nonexistent/htpasswd", f"@{self.path}"):
            master = Master(proxy_options(), [ProxyAuth()])
            self.addCleanup(master.stop)
            master.options.update(proxyauth=spec)
            e = self.assertRaises(OptionsError, master.start)
            self.assertIn("option proxyauth:", str(e))


class OtherModesTests(unittest.TestCase):
    """
    Upstream mode checks the client's credentials and sends its own; reverse
    mode is a server: 401.
    """

    timeout = 20

    async def test_upstream_with_upstream_auth(self):
        """Client credentials checked by the first proxy, upstream_auth's sent to the second (which checks them)."""
        web = await WebServer.start(self)
        second = await start_proxy(self, ProxyAuth(), proxyauth="up:stream")
        first = await start_proxy(
            self, ProxyAuth(), mode=f"upstream:http://127.0.0.1:{second.port_number}",
            proxyauth="alice:s3cret", upstream_auth="up:stream",
        )
        result = await curl(self, "-x", first.url, "--proxy-user", "alice:s3cret", web.url("/echo"))
        self.assertEqual(result.status, 200, result.stderr)
        self.assertNotIn("proxy-authorization", echoed_headers(result.body))
        refused = await curl(self, "-x", first.url, "--proxy-user", "up:stream", web.url("/echo"))
        self.assertEqual(refused.status, 407)
        self.assertEqual(len(web.connections), 1)

    async def test_upstream_connect(self):
        """Upstream mode, CONNECT: 407 without credentials, a tunnel with them."""
        web = await WebServer.start(self)
        second = await start_proxy(self)
        first = await start_proxy(
            self, ProxyAuth(), mode=f"upstream:http://127.0.0.1:{second.port_number}", proxyauth="any",
        )
        refused = await curl(self, "-p", "-x", first.url, web.url("/echo"))
        self.assertEqual(refused.status, 407)
        result = await curl(self, "-p", "-x", first.url, "--proxy-user", "any:thing", web.url("/echo"))
        self.assertEqual(result.status, 200, result.stderr)

    async def test_reverse_asks_for_authorization(self):
        web = await WebServer.start(self)
        proxy = await start_proxy(self, ProxyAuth(), mode=f"reverse:http://127.0.0.1:{web.port}", proxyauth="a:b")
        refused = await curl(self, f"http://127.0.0.1:{proxy.port_number}/echo")
        self.assertEqual(refused.status, 401)
        self.assertEqual(refused.heads[-1].header(b"www-authenticate"), CHALLENGE.encode())
        result = await curl(self, "-u", "a:b", f"http://127.0.0.1:{proxy.port_number}/echo")
        self.assertEqual(result.status, 200, result.stderr)
        self.assertNotIn("authorization", echoed_headers(result.body))


class BlockOnLoopbackTests(unittest.TestCase):
    """
    block_private (and block_global) never refuse loopback clients.
    """

    async def test_block_private_loopback_served(self):
        web = await WebServer.start(self)
        recorder = LogRecorder()
        proxy = await start_proxy(self, Block(), recorder, block_private=True)
        result = await curl(self, "-x", proxy.url, web.url("/echo"))
        self.assertEqual(result.status, 200, result.stderr)
        self.assertEqual(recorder.messages("warn"), [])
