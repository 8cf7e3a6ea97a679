# -*- test-case-name: tests.e2e.test_loops -*-
"""
Proxy loops (hardening issue, item 2): a proxy told to forward to itself,
directly or through another proxy, answers 508 Loop Detected at once
instead of opening connections to itself until it runs out of file
descriptors (14,000 and +74 MiB in 5 s for one request).
"""

from __future__ import annotations

import json
import os
import time

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.trial import unittest

from addons.loopdetect import LoopDetect
from interceptor.testing import LogRecorder, start_proxy
from interceptor.transport.loops import own_address
from tests.e2e.peers import WebServer, curl, sleep, twistd_proxy, unused_port, wait_until


def open_fds(pid: int) -> int:
    """
    How many file descriptors process C{pid} has open.
    """
    return len(os.listdir(f"/proc/{pid}/fd"))


class _Port:
    """
    A listening port as L{own_address} sees it.
    """

    def __init__(self, host: str, port: int) -> None:
        cls = IPv6Address if ":" in host else IPv4Address
        self.address = cls("TCP", host, port)

    def getHost(self):
        return self.address


class OwnAddressTests(unittest.TestCase):
    """
    L{own_address}: would a connection reach one of the listening ports?
    """

    def _check(self, listening, reached, not_reached):
        ports = [_Port(*address) for address in listening]
        for host, port in reached:
            self.assertTrue(own_address(ports, host, port), (listening, host, port))
        for host, port in not_reached:
            self.assertFalse(own_address(ports, host, port), (listening, host, port))

    def test_same_address(self):
        self._check(
            [("127.0.0.1", 8080)],
            [("127.0.0.1", 8080), ("localhost", 8080), ("::ffff:127.0.0.1", 8080)],
            [("127.0.0.1", 8081), ("127.0.0.2", 8080), ("example.org", 8080)],
        )

    def test_every_address(self):
        """Listening on 0.0.0.0 or ::, every loopback address (and localhost) reaches the proxy."""
        loopback = ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LOCALHOST."]
        for wildcard in ("0.0.0.0", "::"):
            self._check(
                [(wildcard, 8080)],
                [(host, 8080) for host in loopback],
                [("10.1.2.3", 8080), ("127.0.0.1", 80)],
            )

    def test_ipv6_loopback(self):
        self._check(
            [("::1", 8443)],
            [("::1", 8443), ("[::1]", 8443), ("localhost", 8443)],
            [("127.0.0.1", 8443)],
        )


class TwistdLoopTests(unittest.TestCase):
    """
    C{twistd interceptor} pointed at itself: one request, a 508 at once, and
    the process's file descriptors do not grow.
    """

    timeout = 40

    async def _proxy(self, mode):
        """
        Start C{twistd -n interceptor --mode MODE} ({port} in MODE: its own
        port); return (its port, its pid, its output collector).
        """
        port, transport, protocol = await twistd_proxy(self, "--mode", mode)
        # (The probe's connection is let go of first.)
        await sleep(0.2)
        return port, transport.pid, protocol

    async def _one_request_is_508(self, pid, protocol, *curl_args):
        before = open_fds(pid)
        started = time.monotonic()
        result = await curl(self, *curl_args, timeout=5)
        elapsed = time.monotonic() - started
        out = protocol.output.decode(errors="replace")
        self.assertEqual(result.status, 508, (result.stderr, out[-2000:]))
        self.assertLess(elapsed, 2.5)
        self.assertIn(b"own address (a proxy loop)", result.body)
        await sleep(0.3)
        self.assertLessEqual(open_fds(pid), before, out[-2000:])
        self.assertIn("508 Loop Detected", protocol.output.decode(errors="replace"))

    async def test_reverse_to_itself(self):
        """--mode reverse:http://127.0.0.1:OWN_PORT: curl gets 508 at once, no descriptor is left open."""
        port, pid, protocol = await self._proxy("reverse:http://127.0.0.1:{port}")
        await self._one_request_is_508(pid, protocol, f"http://127.0.0.1:{port}/")

    async def test_upstream_is_itself(self):
        """--mode upstream:http://localhost:OWN_PORT: a proxied request gets 508 at once."""
        port, pid, protocol = await self._proxy("upstream:http://localhost:{port}")
        unused = await unused_port()
        await self._one_request_is_508(
            pid, protocol, "-x", f"http://127.0.0.1:{port}", f"http://127.0.0.1:{unused}/"
        )


class LoopThroughAnotherProxyTests(unittest.TestCase):
    """
    Loops through another proxy are caught by this proxy's own C{Via}
    entry coming back.
    """

    timeout = 20

    async def test_two_proxies_pointing_at_each_other(self):
        """A in upstream mode to B, B in upstream mode to A: the request comes back to A with A's Via, 508."""
        a_port = await unused_port()
        b = await start_proxy(self, mode=f"upstream:http://127.0.0.1:{a_port}")
        recorder = LogRecorder()
        loopdetect = LoopDetect()
        a = await start_proxy(
            self, loopdetect, recorder, mode=f"upstream:http://127.0.0.1:{b.port_number}",
            listen=f"tcp:{a_port}:interface=127.0.0.1",
        )
        unused = await unused_port()
        result = await curl(self, "-x", a.url, f"http://127.0.0.1:{unused}/", timeout=5)
        self.assertEqual(result.status, 508, result.stderr)
        self.assertIn(f"came back to this proxy (Via: 1.1 {loopdetect.pseudonym}".encode(), result.body)
        self.assertIn("508 Loop Detected", recorder.text("warn"))
        # One connection through each proxy, not thousands.
        await wait_until(lambda: not a.master.factories[0].connections and not b.master.factories[0].connections)
        self.assertEqual(a.master.factories[0].connections, set())

    async def test_via_added_and_kept(self):
        """Forwarded requests carry this proxy's Via entry after those they came with."""
        web = await WebServer.start(self)
        loopdetect = LoopDetect()
        proxy = await start_proxy(self, loopdetect)
        result = await curl(self, "-x", proxy.url, "-H", "Via: 1.0 fred", web.url("/echo"))
        self.assertEqual(result.status, 200, result.stderr)
        echoed = [v for n, v in json.loads(result.body)["headers"] if n.lower() == "via"]
        self.assertEqual(echoed, ["1.0 fred", f"1.1 {loopdetect.pseudonym}"])


class CoreRefusalTests(unittest.TestCase):
    """
    Without the loopdetect addon (an embedded proxy), the transport still
    refuses to connect to the proxy's own address, and the client gets 508.
    """

    timeout = 20

    async def test_reverse_to_itself_without_addon(self):
        """reverse to its own port, no addon: 508 naming the loop, and the client's connection is the only one."""
        port = await unused_port()
        recorder = LogRecorder()
        proxy = await start_proxy(
            self, recorder, mode=f"reverse:http://127.0.0.1:{port}", listen=f"tcp:{port}:interface=127.0.0.1"
        )
        result = await curl(self, f"http://127.0.0.1:{port}/", timeout=5)
        self.assertEqual(result.status, 508, result.stderr)
        self.assertIn(b"is this proxy's own address (a proxy loop)", result.body)
        await wait_until(lambda: not proxy.master.factories[0].connections)
        self.assertEqual(proxy.master.factories[0].connections, set())

    async def test_connect_to_itself(self):
        """A CONNECT tunnel to the proxy's own address: the tunnel's server connection is refused."""
        proxy = await start_proxy(self, tcp_hosts=["."])
        result = await curl(
            self, "-p", "-x", proxy.url, f"http://127.0.0.1:{proxy.port_number}/", timeout=5
        )
        self.assertNotEqual(result.code, 0)
        await wait_until(lambda: not proxy.master.factories[0].connections)
        self.assertEqual(proxy.master.factories[0].connections, set())
