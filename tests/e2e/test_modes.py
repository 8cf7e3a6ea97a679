# -*- test-case-name: tests.e2e.test_modes -*-
"""
End-to-end tests of the proxy modes (issue #7, points 3 and 4) with real
clients and servers on 127.0.0.1: upstream mode chained through a second
in-process proxy, reverse mode (plain and TLS clients), SOCKS5 with curl,
transparent mode in a network namespace with iptables REDIRECT, and
C{connection_strategy}.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import uuid
from typing import Any, Optional

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from interceptor.model.http import Response
from interceptor.transport.modes import parse_mode
from interceptor.core.options import OptionsError, proxy_options
from interceptor.proxy import ProxyFactory
from interceptor.testing import connect_websocket, start_proxy, start_websocket_server
from tests.e2e.peers import (
    AllEvents,
    RawClient,
    RawServer,
    Recorder,
    WebServer,
    advance,
    curl,
    pattern,
    sleep,
    wait_until,
)
from tests.e2e.tcppeers import TcpClient, TcpServer, connect_tunnel
from tests.e2e.tlspeers import HttpsServer, TestCA
from tests.e2e.wspeers import masked, parse_frames, raw_handshake


class Connects:
    """
    Keeps the http_connect flows.
    """

    def __init__(self, refuse_without_auth: bool = False) -> None:
        self.flows: list = []
        self.refuse_without_auth = refuse_without_auth

    def http_connect(self, flow):
        self.flows.append(flow)
        if self.refuse_without_auth and flow.request.headers.get("proxy-authorization") is None:
            flow.response = Response.make(407, b"auth please", {"Proxy-Authenticate": "Basic"})


def headers_of(body: bytes) -> dict:
    """
    The lower-cased request headers an echo endpoint sent back.
    """
    echoed = json.loads(body)
    headers = echoed["headers"]
    if isinstance(headers, dict):
        return {k.lower(): v[0] for k, v in headers.items()}
    return {n.lower(): v for n, v in headers}


def echoed_host(body: bytes) -> str:
    headers = json.loads(body)["headers"]
    return [v for n, v in headers if n.lower() == "host"][0]


async def socks_connect(testcase: Any, proxy: Any, request: bytes, greeting: bytes = b"\x05\x01\x00",
                        client_class: Any = TcpClient) -> Any:
    client = await client_class.connect(testcase, proxy.port_number)
    client.send(greeting)
    await client.wait_for(lambda d: len(d) >= 2)
    testcase.assertEqual(bytes(client.received[:2]), b"\x05\x00")
    client.send(request)
    await client.wait_for(lambda d: len(d) >= 12)
    testcase.assertEqual(bytes(client.received[2:4]), b"\x05\x00")
    del client.received[:12]
    return client


class ModeOptionTests(unittest.TestCase):
    """
    The C{mode} option is validated.
    """

    def test_parse_modes(self):
        """Every documented mode spelling parses to its kind, scheme and address."""
        self.assertEqual(parse_mode("regular").kind, "regular")
        self.assertEqual(parse_mode("socks5").kind, "socks5")
        self.assertEqual(parse_mode("transparent").kind, "transparent")
        up = parse_mode("upstream:http://127.0.0.1:3128")
        self.assertEqual((up.kind, up.scheme, up.address), ("upstream", "http", ("127.0.0.1", 3128)))
        rev = parse_mode("reverse:https://example.org")
        self.assertEqual((rev.scheme, rev.address, rev.authority), ("https", ("example.org", 443), "example.org"))
        self.assertEqual(parse_mode("reverse:http://[::1]:8080/").authority, "[::1]:8080")

    def test_bad_mode_rejected(self):
        """A mode that does not parse is refused by the options, which keep their old value."""
        opts = proxy_options()
        for bad in ("bogus", "reverse:", "reverse:ftp://x", "upstream:https://x:1", "socks5:x"):
            self.assertRaises(OptionsError, opts.update, mode=bad)
        self.assertEqual(opts.mode, "regular")

    def test_strategy_choices(self):
        """connection_strategy accepts eager and lazy only."""
        opts = proxy_options(connection_strategy="lazy")
        self.assertEqual(opts.connection_strategy, "lazy")
        self.assertRaises(OptionsError, opts.update, connection_strategy="sometimes")


class UpstreamModeTests(unittest.TestCase):
    """
    mode=upstream:http://HOST:PORT, chained through a second interceptor.
    """

    timeout = 30

    async def chain(self, *addons, **options):
        """
        Proxy B (regular, recording) and proxy A in upstream mode toward B.
        """
        self.b_recorder = Recorder()
        self.b_connects = Connects(refuse_without_auth=options.pop("refuse", False))
        b = await start_proxy(
            self, self.b_recorder, self.b_connects, confdir=self.mktemp(), ssl_insecure=True,
            read_timeout=3.0,
        )
        self.a_recorder = Recorder()
        self.a_connects = Connects()
        options.setdefault("confdir", self.mktemp())
        a = await start_proxy(
            self, self.a_recorder, self.a_connects, *addons,
            mode=f"upstream:http://127.0.0.1:{b.port_number}", ssl_insecure=True,
            read_timeout=3.0, connect_timeout=3.0, **options,
        )
        return a, b

    async def test_http_goes_absolute_form_with_auth(self):
        """curl -x A: plain HTTP reaches B in absolute-form on one connection, with Proxy-Authorization from upstream_auth."""
        a, b = await self.chain(upstream_auth="user:pass")
        web = await WebServer.start(self)
        for i in range(2):
            result = await curl(self, "-x", a.url, web.url(f"/echo?i={i}"))
            self.assertEqual((result.code, result.status), (0, 200), result.stderr)
            self.assertEqual(json.loads(result.body)["uri"], f"/echo?i={i}")
        [flow, _] = [arg for name, arg in self.b_recorder.events if name == "request"]
        self.assertEqual(flow.request.url, web.url("/echo?i=0"))
        self.assertEqual(flow.request.headers["proxy-authorization"], "Basic dXNlcjpwYXNz")
        a_flows = [arg for name, arg in self.a_recorder.events if name == "response"]
        self.assertEqual(a_flows[0].server_conn.address, ("127.0.0.1", b.port_number))
        connects = [arg for name, arg in self.a_recorder.events if name == "serverconnect"]
        self.assertEqual({c.address for c in connects}, {("127.0.0.1", b.port_number)})

    async def test_https_tunnels_through_connect(self):
        """HTTPS: A fires http_connect, then opens a CONNECT tunnel through B (with Proxy-Authorization) to the server."""
        ca = TestCA.shared()
        server = await HttpsServer.start(self, ca)
        a, b = await self.chain(upstream_auth="user:pass")
        result = await curl(self, "-x", a.url, "-k", server.url("/hello", "127.0.0.1"))
        self.assertEqual((result.code, result.status, result.body), (0, 200, b"hello world"), result.stderr)
        self.assertEqual(len(self.a_connects.flows), 1)
        [b_connect] = self.b_connects.flows
        self.assertEqual((b_connect.request.host, b_connect.request.port), ("127.0.0.1", server.port))
        self.assertEqual(b_connect.request.headers["proxy-authorization"], "Basic dXNlcjpwYXNz")
        self.assertEqual(len(server.requests), 1)

    async def test_refused_connect_is_502(self):
        """When the upstream proxy refuses CONNECT (407), the client gets a 502 naming the refusal."""
        ca = TestCA.shared()
        server = await HttpsServer.start(self, ca)
        a, b = await self.chain(refuse=True)
        result = await curl(self, "-x", a.url, "-k", server.url("/hello", "127.0.0.1"))
        self.assertEqual(result.status, 502, result.stderr)
        self.assertIn(b"407", result.body)
        self.assertEqual(len(server.requests), 0)

    async def test_raw_tcp_through_upstream(self):
        """tcp_hosts in upstream mode: the raw relay goes through a CONNECT tunnel of the upstream proxy."""
        a, b = await self.chain(tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "echo")
        client = await TcpClient.connect(self, a.port_number)
        client.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % server.port)
        await client.wait_for(lambda d: b"\r\n\r\n" in d)
        del client.received[:]
        client.send(b"\x00tcp through two proxies")
        await client.wait_for(lambda d: d == b"\x00tcp through two proxies")
        self.assertEqual(len(self.b_connects.flows), 1)

    async def test_websocket_through_chain_connect(self) -> None:
        """autobahn (CONNECT) through A in upstream mode to B to the server: messages, close, events in both proxies."""
        a_events, b_events = AllEvents(), AllEvents()
        a, b = await self.chain_with_addons(a_events, b_addons=(b_events,))
        server = await start_websocket_server(self)
        client = await connect_websocket(self, server.url("/chain"), proxy=a)
        client.send_text("through two")
        self.assertEqual((await client.next_message()).payload, b"through two")
        self.assertTrue((await client.close(1000, "ok")).was_clean)
        await wait_until(lambda: a_events.count("websocket_end") and b_events.count("websocket_end"))
        self.assertEqual(a_events.count("websocket_end"), 1)
        self.assertEqual(b_events.count("websocket_end"), 1)
        self.assertEqual(a_events.seen, [(True, b"through two"), (False, b"through two")])

    async def test_websocket_absolute_form_through_chain(self) -> None:
        """A raw absolute-form WebSocket handshake to A (upstream mode): the upgrade goes through B, frames flow."""
        a_events = AllEvents()
        a, b = await self.chain_with_addons(a_events)
        server = await start_websocket_server(self)
        client = await raw_handshake(self, a, server.port)
        self.assertTrue(bytes(client.received).startswith(b"HTTP/1.1 101"), bytes(client.received)[:200])
        client.received.clear()
        client.send(masked(0x81, b"abs"))
        data = await client.wait_for(lambda d: len(parse_frames(d)) >= 1)
        self.assertEqual(parse_frames(data), [(0x81, False, b"abs")])
        self.assertEqual(a_events.seen, [(True, b"abs"), (False, b"abs")])

    async def test_tcp_half_close_through_chain(self) -> None:
        """Raw TCP in upstream mode (CONNECT through B): the client's half-close reaches the server, the answer comes back."""
        a, b = await self.chain_with_addons(tcp_hosts=["127.0.0.1"])
        server = await TcpServer.start(self, "count")
        client = await connect_tunnel(self, a.port_number, server.port)
        client.send(b"z" * 2000)
        await wait_until(lambda: server.connections and len(server.connections[0].received) == 2000)
        client.shut_write()
        self.assertEqual(await client.wait_closed(), b"got 2000 bytes")

    async def chain_with_addons(self, *a_addons: Any, b_addons: tuple = (), **options: Any) -> tuple:
        b = await start_proxy(self, *b_addons, confdir=self.mktemp(), read_timeout=3.0)
        a = await start_proxy(self, *a_addons, mode=f"upstream:http://127.0.0.1:{b.port_number}",
                              confdir=self.mktemp(), read_timeout=3.0, connect_timeout=3.0,
                              **options)
        return a, b

    async def test_upstream_proxy_silent_after_connect(self):
        """An upstream proxy that never answers the tunnel's CONNECT: the flow fails after connect_timeout, naming it."""
        silent = await RawServer.start(self, lambda conn, request: None)
        events = AllEvents()
        clock = Clock()
        proxy = await start_proxy(
            self, events, mode=f"upstream:http://127.0.0.1:{silent.port}", connect_timeout=3.0,
            tcp_hosts=["127.0.0.1"], confdir=self.mktemp(), clock=clock,
        )
        client = await connect_tunnel(self, proxy.port_number, 9)
        client.send(b"raw bytes")
        # The raw TCP flow asks the upstream proxy for a tunnel; no answer.
        self.assertTrue(await wait_until(lambda: silent.requests))
        self.assertEqual(silent.requests[0].method, b"CONNECT")
        await advance(clock, 2.75)
        self.assertFalse(client.closed)
        await advance(clock, 0.25)
        self.assertTrue(await wait_until(lambda: client.closed))
        self.assertTrue(await wait_until(lambda: events.count("tcp_error")))
        self.assertIn("did not answer CONNECT within 3 s", events.arg("tcp_error").error.msg)


class ReverseModeTests(unittest.TestCase):
    """
    mode=reverse:http[s]://HOST[:PORT]: the proxy stands for that server.
    """

    timeout = 30

    async def test_plain_reverse_rewrites_host(self):
        """curl to the proxy reaches the target in origin-form, with Host naming the target."""
        web = await WebServer.start(self)
        proxy = await start_proxy(self, mode=f"reverse:http://127.0.0.1:{web.port}")
        result = await curl(self, f"http://127.0.0.1:{proxy.port_number}/echo?x=1")
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)
        echoed = json.loads(result.body)
        self.assertEqual(echoed["uri"], "/echo?x=1")
        self.assertEqual(headers_of(result.body)["host"], f"127.0.0.1:{web.port}")

    async def test_keep_host_header(self):
        """With keep_host_header the client's Host header reaches the server unchanged."""
        web = await WebServer.start(self)
        proxy = await start_proxy(
            self, mode=f"reverse:http://127.0.0.1:{web.port}", keep_host_header=True
        )
        result = await curl(self, "-H", "Host: front.example", f"http://127.0.0.1:{proxy.port_number}/echo")
        self.assertEqual(result.status, 200, result.stderr)
        self.assertEqual(headers_of(result.body)["host"], "front.example")

    async def test_bodies(self):
        """A 70 kB request body and a 100 kB response body pass through the reverse proxy."""
        web = await WebServer.start(self)
        proxy = await start_proxy(self, mode=f"reverse:http://127.0.0.1:{web.port}")
        base = f"http://127.0.0.1:{proxy.port_number}"
        result = await curl(self, "-d", "x" * 70000, f"{base}/echo")
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)
        self.assertEqual(len(json.loads(result.body)["body"]), 70000)
        result = await curl(self, f"{base}/bytes?n=100000")
        self.assertEqual(result.body, pattern(100000))
        self.assertEqual(len(web.connections), 2)

    async def test_absolute_form_goes_to_target(self):
        """An absolute-form request to a reverse proxy still goes to the reverse target, not where its URL points."""
        web = await WebServer.start(self)
        other = await WebServer.start(self)
        proxy = await start_proxy(self, mode=f"reverse:http://127.0.0.1:{web.port}")
        result = await curl(self, "-x", proxy.url, other.url("/echo"))
        self.assertEqual(result.status, 200, result.stderr)
        self.assertEqual(len(web.connections), 1)
        self.assertEqual(len(other.connections), 0)

    async def test_tls_client_gets_minted_certificate(self):
        """reverse:https with a TLS client: the proxy answers TLS with a certificate from its CA and forwards over TLS."""
        ca = TestCA.shared()
        server = await HttpsServer.start(self, ca)
        confdir = self.mktemp()
        recorder = Recorder()
        proxy = await start_proxy(
            self, recorder, mode=f"reverse:https://127.0.0.1:{server.port}", confdir=confdir,
            ssl_verify_upstream_trusted_ca=ca.cert_path(self),
        )
        result = await curl(self, "-k", f"https://127.0.0.1:{proxy.port_number}/echo")
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)
        self.assertEqual(headers_of(result.body)["host"], f"127.0.0.1:{server.port}")
        # Now the CA exists: the client can verify the minted certificate.
        ca_file = os.path.join(confdir, "interceptor-ca-cert.pem")
        result = await curl(self, "--cacert", ca_file, f"https://127.0.0.1:{proxy.port_number}/hello")
        self.assertEqual((result.code, result.body), (0, b"hello world"), result.stderr)
        [flow, *_] = [arg for name, arg in recorder.events if name == "response"]
        self.assertTrue(flow.client_conn.tls_established)
        self.assertEqual(flow.request.scheme, "https")


    async def test_tls_client_plain_target(self):
        """reverse:http with a TLS client: TLS ends at the proxy and the target gets plain HTTP."""
        web = await WebServer.start(self)
        proxy = await start_proxy(
            self, mode=f"reverse:http://127.0.0.1:{web.port}", confdir=self.mktemp()
        )
        result = await curl(self, "-k", f"https://127.0.0.1:{proxy.port_number}/bytes?n=1000")
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)
        self.assertEqual(result.body, pattern(1000))
        self.assertEqual(len(web.connections), 1)

    async def test_tls_client_sni_differs_from_target(self):
        """A TLS client asking for another name still gets the target verified under the target's own name."""
        ca = TestCA.shared()
        server = await HttpsServer.start(self, ca)
        proxy = await start_proxy(
            self, mode=f"reverse:https://localhost:{server.port}", confdir=self.mktemp(),
            ssl_verify_upstream_trusted_ca=ca.cert_path(self),
        )
        result = await curl(
            self, "-k", "--resolve", f"front.example:{proxy.port_number}:127.0.0.1",
            f"https://front.example:{proxy.port_number}/hello",
        )
        self.assertEqual((result.code, result.body), (0, b"hello world"), result.stderr)

    async def test_keep_alive_reuses_upstream_and_rewrites_host(self) -> None:
        """Two sequential and two pipelined requests on one client connection: all answered, Host rewritten, one upstream connection."""
        web = await WebServer.start(self)
        events = AllEvents()
        proxy = await start_proxy(self, events, mode=f"reverse:http://127.0.0.1:{web.port}")
        client = await RawClient.connect(self, proxy.port_number)
        request = b"GET /echo?n=%d HTTP/1.1\r\nHost: front.example\r\n\r\n"
        client.send(request % 1)
        await client.wait_responses(1)
        client.send(request % 2)
        await client.wait_responses(2)
        client.send(request % 3 + request % 4)
        responses = await client.wait_responses(4)
        self.assertEqual([r.status for r in responses], [200] * 4)
        self.assertEqual([json.loads(r.body)["uri"] for r in responses],
                         ["/echo?n=1", "/echo?n=2", "/echo?n=3", "/echo?n=4"])
        self.assertEqual({echoed_host(r.body) for r in responses}, {f"127.0.0.1:{web.port}"})
        self.assertEqual(len(web.connections), 1)
        self.assertEqual(events.count("serverconnect"), 1)
        self.assertFalse(client.closed)

    async def test_reverse_raw_garbage_is_not_tcp(self) -> None:
        """Non-HTTP bytes to a reverse proxy: a 400 (reverse mode speaks HTTP), no crash, one clientdisconnect."""
        web = await WebServer.start(self)
        events = AllEvents()
        proxy = await start_proxy(self, events, mode=f"reverse:http://127.0.0.1:{web.port}")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"\x00\x01\x02garbage\r\n\r\n")
        data = await client.wait_closed()
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:100])
        await wait_until(lambda: events.count("clientdisconnect"))
        self.assertEqual(events.count("clientdisconnect"), 1)


class ConnectionStrategyTests(unittest.TestCase):
    """
    connection_strategy: when serverconnect fires.
    """

    timeout = 20

    async def test_eager_connects_before_request(self):
        """eager (the default): in reverse mode serverconnect fires before the first request's events."""
        web = await WebServer.start(self)
        recorder = Recorder()
        proxy = await start_proxy(self, recorder, mode=f"reverse:http://127.0.0.1:{web.port}")
        result = await curl(self, f"http://127.0.0.1:{proxy.port_number}/echo")
        self.assertEqual(result.status, 200, result.stderr)
        names = [n for n in recorder.names() if n in ("serverconnect", "requestheaders", "request")]
        self.assertEqual(names, ["serverconnect", "requestheaders", "request"])

    async def test_lazy_connects_after_request(self):
        """lazy: serverconnect fires only once the request needs the server."""
        web = await WebServer.start(self)
        recorder = Recorder()
        proxy = await start_proxy(
            self, recorder, mode=f"reverse:http://127.0.0.1:{web.port}", connection_strategy="lazy"
        )
        result = await curl(self, f"http://127.0.0.1:{proxy.port_number}/echo")
        self.assertEqual(result.status, 200, result.stderr)
        names = [n for n in recorder.names() if n in ("serverconnect", "requestheaders", "request")]
        self.assertEqual(names, ["requestheaders", "request", "serverconnect"])

    async def test_lazy_answered_locally_never_connects(self):
        """lazy, and an addon answering in request: no server connection at all."""
        web = await WebServer.start(self)
        recorder = Recorder()

        class Answer:
            def request(self, flow):
                flow.response = Response.make(200, b"from the addon")

        proxy = await start_proxy(
            self, Answer(), recorder, mode=f"reverse:http://127.0.0.1:{web.port}",
            connection_strategy="lazy",
        )
        result = await curl(self, f"http://127.0.0.1:{proxy.port_number}/")
        self.assertEqual(result.body, b"from the addon")
        self.assertEqual(recorder.count("serverconnect"), 0)
        self.assertEqual(web.connections, [])


class Socks5ModeTests(unittest.TestCase):
    """
    mode=socks5 with curl.
    """

    timeout = 30

    async def test_curl_socks5_hostname_http(self):
        """curl --socks5-hostname: the HTTP request goes through the tunnel's HTTP layer to the server."""
        web = await WebServer.start(self)
        recorder = Recorder()
        proxy = await start_proxy(self, recorder, mode="socks5")
        result = await curl(self, "--socks5-hostname", f"127.0.0.1:{proxy.port_number}", web.url("/echo"))
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)
        self.assertEqual(json.loads(result.body)["uri"], "/echo")
        self.assertEqual(recorder.count("response"), 1)

    async def test_curl_socks5_domain_name(self):
        """A domain name in the SOCKS5 request ("localhost") is resolved by the proxy."""
        web = await WebServer.start(self)
        proxy = await start_proxy(self, mode="socks5")
        result = await curl(self, "--socks5-hostname", f"127.0.0.1:{proxy.port_number}",
                            f"http://localhost:{web.port}/echo")
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)

    async def test_curl_socks5_https_intercepted(self):
        """HTTPS through SOCKS5 is intercepted like a CONNECT tunnel."""
        ca = TestCA.shared()
        server = await HttpsServer.start(self, ca)
        recorder = Recorder()
        proxy = await start_proxy(
            self, recorder, mode="socks5", confdir=self.mktemp(),
            ssl_verify_upstream_trusted_ca=ca.cert_path(self),
        )
        result = await curl(self, "-k", "--socks5-hostname", f"127.0.0.1:{proxy.port_number}",
                            server.url("/hello", "127.0.0.1"))
        self.assertEqual((result.code, result.body), (0, b"hello world"), result.stderr)
        self.assertEqual(recorder.count("response"), 1)

    async def test_username_password(self):
        """With proxyauth=user:pass curl's credentials are checked: right ones pass, wrong ones are refused."""
        web = await WebServer.start(self)
        opts = proxy_options()
        opts.add_option("proxyauth", Optional[str], None, "Proxy credentials.")
        proxy = await start_proxy(self, options=opts, mode="socks5", proxyauth="user:pass")
        good = await curl(self, "--proxy", f"socks5h://user:pass@127.0.0.1:{proxy.port_number}", web.url("/echo"))
        self.assertEqual((good.code, good.status), (0, 200), good.stderr)
        bad = await curl(self, "--proxy", f"socks5h://user:nope@127.0.0.1:{proxy.port_number}", web.url("/echo"))
        self.assertNotEqual(bad.code, 0)
        self.assertEqual(len(web.connections), 1)

    async def test_user_pass_only_without_proxyauth_refused(self):
        """Without proxyauth the username/password method is not offered: a client offering only it gets 0xFF."""
        proxy = await start_proxy(self, mode="socks5", tcp_hosts=["127.0.0.1"])
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"\x05\x01\x02")
        data = await client.wait_closed()
        self.assertEqual(data, b"\x05\xff")

    async def test_raw_client_user_pass(self):
        """With proxyauth, a raw client's username/password is checked; tcp_hosts makes the tunnel raw TCP."""
        from addons.proxyauth import ProxyAuth

        server = await TcpServer.start(self, "echo")
        proxy = await start_proxy(self, ProxyAuth(), mode="socks5", tcp_hosts=["127.0.0.1"], proxyauth="me:pw")
        client = await TcpClient.connect(self, proxy.port_number)
        client.send(b"\x05\x02\x00\x02")
        await client.wait_for(lambda d: len(d) >= 2)
        self.assertEqual(bytes(client.received), b"\x05\x02")
        # The request follows the credentials in the same write.
        request = b"\x05\x01\x00\x01\x7f\x00\x00\x01" + server.port.to_bytes(2, "big")
        client.send(b"\x01\x02me\x02pw" + request)
        await client.wait_for(lambda d: len(d) >= 14)
        self.assertEqual(bytes(client.received[2:6]), b"\x01\x00\x05\x00")
        del client.received[:]
        client.send(b"\x00raw")
        await client.wait_for(lambda d: d == b"\x00raw")
        [root] = list(proxy.master.factories[0].connections)
        self.assertEqual(root.socks_username, "me")

    async def test_invalid_domain_name(self):
        """A domain name that is not valid IDNA gets reply 1 (general failure) and the connection closes."""
        proxy = await start_proxy(self, mode="socks5")
        client = await TcpClient.connect(self, proxy.port_number)
        client.send(b"\x05\x01\x00")
        await client.wait_for(lambda d: len(d) >= 2)
        client.send(b"\x05\x01\x00\x03\x04\xff\xfe\xfd\xfc\x00\x50")
        data = await client.wait_closed()
        self.assertEqual(bytes(data[2:4]), b"\x05\x01")

    async def test_bad_version_greeting(self) -> None:
        """A SOCKS4 greeting: the connection closes, nothing relayed, one clientdisconnect, no error logged."""
        events = AllEvents()
        proxy = await start_proxy(self, events, mode="socks5")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"\x04\x01\x00\x50\x7f\x00\x00\x01user\x00")
        await client.wait_closed()
        await wait_until(lambda: events.count("clientdisconnect"))
        self.assertEqual(events.count("clientdisconnect"), 1)
        self.assertEqual(events.count("serverconnect"), 0)

    async def test_http_garbage_before_greeting(self) -> None:
        """An HTTP request to a SOCKS5 proxy: closed, no server contacted."""
        events = AllEvents()
        proxy = await start_proxy(self, events, mode="socks5")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n\r\n")
        await client.wait_closed()
        self.assertEqual(events.count("serverconnect"), 0)

    async def test_no_methods(self) -> None:
        """A greeting with zero methods: answered 0xFF (no acceptable method) and closed."""
        proxy = await start_proxy(self, mode="socks5")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"\x05\x00")
        data = await client.wait_closed()
        self.assertEqual(data, b"\x05\xff")

    async def test_proxyauth_client_without_user_pass(self) -> None:
        """With proxyauth set, a client offering only no-auth gets 0xFF."""
        from interceptor.core.options import proxy_options

        opts = proxy_options()
        opts.add_option("proxyauth", Optional[str], None, "Proxy credentials.")
        proxy = await start_proxy(self, options=opts, mode="socks5", proxyauth="u:p")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"\x05\x01\x00")
        data = await client.wait_closed()
        self.assertEqual(data, b"\x05\xff")

    async def test_bind_command_refused(self) -> None:
        """BIND (command 2): reply 7 (command not supported), closed."""
        proxy = await start_proxy(self, mode="socks5")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"\x05\x01\x00")
        await client.wait_for(lambda d: len(d) >= 2)
        client.send(b"\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x50")
        data = await client.wait_closed()
        self.assertEqual(data[2:4], b"\x05\x07")

    async def test_unknown_address_type(self) -> None:
        """Address type 5: reply 8 (address type not supported), closed."""
        proxy = await start_proxy(self, mode="socks5")
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"\x05\x01\x00")
        await client.wait_for(lambda d: len(d) >= 2)
        client.send(b"\x05\x01\x00\x05\x7f\x00\x00\x01\x00\x50")
        data = await client.wait_closed()
        self.assertEqual(data[2:4], b"\x05\x08")

    async def test_byte_by_byte_handshake_and_early_data(self) -> None:
        """Greeting and request sent one byte at a time, data in the same write as the request's last byte: relayed."""
        server = await TcpServer.start(self, "echo")
        events = AllEvents()
        proxy = await start_proxy(self, events, mode="socks5", tcp_hosts=["127.0.0.1"])
        client = await TcpClient.connect(self, proxy.port_number)
        for b in b"\x05\x02\x00\x02":
            client.send(bytes([b]))
            await sleep(0.01)
        await client.wait_for(lambda d: len(d) >= 2)
        self.assertEqual(bytes(client.received[:2]), b"\x05\x00")
        request = b"\x05\x01\x00\x01\x7f\x00\x00\x01" + server.port.to_bytes(2, "big")
        for b in request[:-1]:
            client.send(bytes([b]))
            await sleep(0.01)
        client.send(request[-1:] + b"\x00early")
        await client.wait_for(lambda d: d.endswith(b"\x00early"))
        self.assertEqual(bytes(client.received[2:4]), b"\x05\x00")
        self.assertEqual(bytes(client.received[12:]), b"\x00early")
        client.shut_write()
        await client.wait_closed()
        await wait_until(lambda: events.count("tcp_end") + events.count("tcp_error"))
        self.assertEqual(events.names("tcp_end", "tcp_error"), ["tcp_end"])
        for n in ("clientconnect", "clientdisconnect", "serverconnect", "serverdisconnect", "tcp_start"):
            self.assertEqual(events.count(n), 1, n)

    async def test_ipv6_address(self) -> None:
        """A CONNECT to [::1] (address type 4): raw TCP relayed to a server on ::1."""
        received = bytearray()

        class Echo(Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.extend(data)
                self.transport.write(data)

        factory = Factory.forProtocol(Echo)
        factory.noisy = False
        port = reactor.listenTCP(0, factory, interface="::1")
        self.addCleanup(port.stopListening)
        number = port.getHost().port
        events = AllEvents()
        proxy = await start_proxy(self, events, mode="socks5", tcp_hosts=[r"^::1:"])
        request = b"\x05\x01\x00\x04" + socket.inet_pton(socket.AF_INET6, "::1") + number.to_bytes(2, "big")
        client = await socks_connect(self, proxy, request)
        client.send(b"\x00v6")
        await client.wait_for(lambda d: d == b"\x00v6")
        self.assertEqual(bytes(client.received), b"\x00v6")
        flow = events.arg("tcp_start")
        self.assertEqual(flow.server_conn.address, ("::1", number))

    async def test_curl_to_ipv6_target(self) -> None:
        """curl --socks5-hostname to http://[::1]:PORT/: the request reaches the IPv6 server."""
        from twisted.web.server import Site
        from twisted.web.static import Data

        resource = Data(b"six", "text/plain")
        resource.isLeaf = True
        site = Site(resource)
        port = reactor.listenTCP(0, site, interface="::1")
        self.addCleanup(port.stopListening)
        proxy = await start_proxy(self, mode="socks5")
        result = await curl(self, "--socks5-hostname", f"127.0.0.1:{proxy.port_number}",
                            f"http://[::1]:{port.getHost().port}/")
        self.assertEqual((result.code, result.status, result.body), (0, 200, b"six"), result.stderr)

    async def test_domain_name_raw_tcp(self) -> None:
        """A domain name ("localhost") request with tcp_hosts: relayed raw to the server."""
        server = await TcpServer.start(self, "echo")
        proxy = await start_proxy(self, mode="socks5", tcp_hosts=["localhost"])
        name = b"localhost"
        request = b"\x05\x01\x00\x03" + bytes([len(name)]) + name + server.port.to_bytes(2, "big")
        client = await socks_connect(self, proxy, request)
        client.send(b"\x00by name")
        await client.wait_for(lambda d: d == b"\x00by name")

    async def test_client_half_close_through_socks(self) -> None:
        """Raw TCP through SOCKS5: the client's half-close reaches the server, its answer comes back."""
        server = await TcpServer.start(self, "count")
        proxy = await start_proxy(self, mode="socks5", tcp_hosts=["127.0.0.1"])
        request = b"\x05\x01\x00\x01\x7f\x00\x00\x01" + server.port.to_bytes(2, "big")
        client = await socks_connect(self, proxy, request)
        client.send(b"q" * 777)
        await wait_until(lambda: server.connections and len(server.connections[0].received) == 777)
        client.shut_write()
        self.assertEqual(await client.wait_closed(), b"got 777 bytes")

    async def test_client_half_close_during_detection(self) -> None:
        """Through SOCKS5 without tcp_hosts, a client sends 2 bytes and half-closes before the layer is chosen: the server gets them and the answer comes back."""
        server = await TcpServer.start(self, "count")
        proxy = await start_proxy(self, mode="socks5", read_timeout=0.5)
        request = b"\x05\x01\x00\x01\x7f\x00\x00\x01" + server.port.to_bytes(2, "big")
        client = await socks_connect(self, proxy, request)
        client.send(b"\x00\x01")
        client.shut_write()
        data = await client.wait_closed(timeout=4)
        self.assertEqual(data, b"got 2 bytes")

    async def test_client_half_close_before_any_byte_server_speaks_first(self) -> None:
        """Through SOCKS5 without tcp_hosts, a client that half-closes at once (a reader): the server's banner still reaches it."""
        server = await TcpServer.start(self, "banner")
        proxy = await start_proxy(self, mode="socks5", read_timeout=0.5)
        request = b"\x05\x01\x00\x01\x7f\x00\x00\x01" + server.port.to_bytes(2, "big")
        client = await socks_connect(self, proxy, request)
        client.shut_write()
        data = await client.wait_closed(timeout=4)
        self.assertEqual(data, b"220 hello from the server\r\n")


# -- transparent mode: a network namespace with iptables REDIRECT -------------

_CLONE_NEWNET = 0x40000000


def _transparent_unavailable() -> Optional[str]:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "transparent mode test needs root (network namespace, iptables)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"transparent mode test needs {tool!r} (apt-get install iproute2 iptables)"
    if not os.path.exists("/proc/self/ns/net"):
        return "no network namespaces here"
    return None


def _socket_in_netns(name: str) -> socket.socket:
    """
    A listening socket on 127.0.0.1 of network namespace C{name}, made by
    entering the namespace for this thread only, then going back.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(target, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into the test namespace failed")
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sock.listen(50)
            sock.setblocking(False)
        finally:
            if libc.setns(own, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back failed")
    finally:
        os.close(own)
        os.close(target)
    return sock


class TransparentModeTests(unittest.TestCase):
    """
    mode=transparent: a client in a network namespace of the test's own,
    whose connections iptables REDIRECTs to the proxy's socket there.
    """

    timeout = 30

    async def setUp(self):
        reason = _transparent_unavailable()
        if reason:
            raise unittest.SkipTest(reason)
        self.netns = "icp-" + uuid.uuid4().hex[:8]
        out, err, code = await getProcessOutputAndValue("ip", ["netns", "add", self.netns])
        if code != 0:
            raise unittest.SkipTest(f"cannot create a network namespace: {err.decode().strip()}")
        self.addCleanup(getProcessOutputAndValue, "ip", ["netns", "del", self.netns])
        await self.run_in_netns("ip", "link", "set", "lo", "up")

    async def run_in_netns(self, *argv: str) -> tuple:
        """
        Run a command inside the test's namespace (bounded by its own
        timeouts); fail the test when it fails to start.
        """
        out, err, code = await getProcessOutputAndValue(
            "ip", ["netns", "exec", self.netns, *argv], env={"PATH": os.environ.get("PATH", "")}
        )
        return out, err, code

    async def transparent_proxy(self, *addons, **options):
        """
        A proxy in transparent mode listening inside the namespace; returns
        (proxy, port in the namespace).
        """
        proxy = await start_proxy(self, *addons, mode="transparent", **options)
        sock = _socket_in_netns(self.netns)
        factory = ProxyFactory(proxy.master)
        proxy.master.factories.append(factory)
        port = reactor.adoptStreamPort(sock.fileno(), socket.AF_INET, factory)
        number = sock.getsockname()[1]
        sock.close()
        self.addCleanup(port.stopListening)
        return proxy, number

    async def redirect(self, dport: int, to_port: int) -> None:
        """
        iptables in the namespace: connections to 127.0.0.1:dport go to
        the proxy's port.
        """
        out, err, code = await self.run_in_netns(
            "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.1",
            "--dport", str(dport), "-j", "REDIRECT", "--to-ports", str(to_port),
        )
        if code != 0:
            raise unittest.SkipTest(f"iptables REDIRECT is not available: {err.decode().strip()}")

    async def test_http_original_destination(self):
        """curl in the namespace to 127.0.0.1:PORT is redirected to the proxy, which reaches the real server at its original destination."""
        web = await WebServer.start(self)
        recorder = Recorder()
        proxy, port = await self.transparent_proxy(recorder)
        await self.redirect(web.port, port)
        out, err, code = await self.run_in_netns(
            "curl", "-q", "-sS", "--max-time", "10", f"http://127.0.0.1:{web.port}/echo?t=1"
        )
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["uri"], "/echo?t=1")
        [flow] = [arg for name, arg in recorder.events if name == "response"]
        self.assertEqual((flow.request.host, flow.request.port), ("127.0.0.1", web.port))

    async def test_tcp_hosts_original_destination(self):
        """A raw TCP connection redirected to the proxy is relayed to its original destination (tcp_hosts)."""
        server = await TcpServer.start(self, "banner")
        proxy, port = await self.transparent_proxy(tcp_hosts=["127.0.0.1"])
        await self.redirect(server.port, port)
        out, err, code = await self.run_in_netns(
            "python3", "-c",
            "import socket; s = socket.create_connection(('127.0.0.1', %d), timeout=5); "
            "print(s.recv(100).decode().strip())" % server.port,
        )
        self.assertEqual((code, out.strip()), (0, b"220 hello from the server"), err)
