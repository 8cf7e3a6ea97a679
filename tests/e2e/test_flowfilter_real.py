# -*- test-case-name: tests.e2e.test_flowfilter_real -*-
"""
Every filter operator over flows recorded through a running proxy: curl
over HTTP/1 and HTTP/2 (intercepted TLS), an autobahn WebSocket client and
a raw TCP relay, each to a real server on 127.0.0.1.  One table of
(expression, the flows it must match) is checked against what was recorded.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.trial import unittest

from addons.script import ScriptLoader

from interceptor import flowfilter
from interceptor.core.options import OptionsError
from interceptor.testing import LogRecorder, connect_websocket, start_proxy, start_websocket_server
from tests.e2e.h2peers import H2Server, TestPKI, echo_handler, proxy_ca_path
from tests.e2e.peers import WebServer, curl, unused_port, wait_until
from tests.e2e.tcppeers import TcpServer, connect_tunnel
from tests.e2e.test_http2 import CURL_SKIP
from tests.test_flowfilter import unlisted_operators


class FinishedFlows:
    """
    An addon keeping each flow once it is over (response, error, WebSocket
    or TCP end), and marking the requests whose path asks for it.
    """

    def __init__(self) -> None:
        self.flows: list[Any] = []

    def keep(self, flow: Any) -> None:
        if not any(flow is kept for kept in self.flows):
            self.flows.append(flow)

    def request(self, flow: Any) -> None:
        if "mark=1" in flow.request.path:
            flow.marked = ":star:"
            flow.comment = "looked at\nby a person"
            flow.metadata["reviewer"] = "ann"

    def response(self, flow: Any) -> None:
        if flow.response.status_code != 101:
            self.keep(flow)

    def error(self, flow: Any) -> None:
        self.keep(flow)

    def websocket_end(self, flow: Any) -> None:
        self.keep(flow)

    def tcp_message(self, flow: Any) -> None:
        pass  # (handled, so the relay keeps the messages)

    def tcp_end(self, flow: Any) -> None:
        self.keep(flow)


def css_or_echo(stream: Any) -> None:
    """
    An h2 handler: C{/style.css} is a stylesheet, anything else the echo.
    """
    if (b":path", b"/style.css") in stream.headers:
        body = b"body { color: teal }"
        stream.respond(200, [(b"content-type", b"text/css"),
                             (b"content-length", str(len(body)).encode())], body)
    else:
        echo_handler(stream)


class RecordedFlowsTests(unittest.TestCase):
    """
    The operator table over real flows.
    """

    timeout = 40
    skip = CURL_SKIP

    async def record(self) -> tuple[dict[str, Any], dict[str, int]]:
        """
        Drive each client through one proxy; return the finished flows by
        name and the servers' ports.
        """
        pki = TestPKI(self.mktemp())
        web = await WebServer.start(self)
        h2 = await H2Server.start(self, pki, css_or_echo)
        tcp = await TcpServer.start(self, "echo")
        ws = await start_websocket_server(self)
        closed = await unused_port()
        finished = FinishedFlows()
        proxy = await start_proxy(
            self, finished, confdir=self.mktemp(), ssl_verify_upstream_trusted_ca=pki.ca_path,
            tcp_hosts=[rf"^127\.0\.0\.1:{tcp.port}$"], read_timeout=5.0)
        names = []

        async def through_curl(name: str, *args: str) -> None:
            result = await curl(self, "-x", proxy.url, *args)
            self.assertIn(result.code, (0, 22), result.stderr)
            await wait_until(lambda: len(finished.flows) > len(names))
            names.append(name)

        await through_curl("get", "-H", "Host: named.test", web.url("/bytes?n=40"))
        await through_curl("post", "-H", "Content-Type: text/plain", "-H", "X-Flt: yes",
                           "--data-binary", "name=widget", web.url("/echo"))
        await through_curl("marked", web.url("/bytes?n=5&mark=1"))
        await through_curl("refused", f"http://127.0.0.1:{closed}/nothing")
        await through_curl("h2", "--http2", "--cacert", proxy_ca_path(proxy),
                           f"https://127.0.0.1:{h2.port}/style.css")

        client = await connect_websocket(self, ws.url("/chat"), proxy=proxy)
        client.send_text("hello ws")
        await client.next_message()
        await client.close(1000, "bye")
        await wait_until(lambda: len(finished.flows) > len(names))
        names.append("ws")

        tunnel = await connect_tunnel(self, proxy.port_number, tcp.port)
        tunnel.send(b"ping tcp")
        await tunnel.wait_for(lambda received: received == b"ping tcp")
        tunnel.shut_write()
        await tunnel.wait_closed()
        await wait_until(lambda: len(finished.flows) > len(names))
        names.append("tcp")

        self.assertEqual(len(finished.flows), len(names), finished.flows)
        ports = {"web": web.port, "h2": h2.port, "tcp": tcp.port, "ws": ws.port}
        return dict(zip(names, finished.flows)), ports

    async def test_every_operator(self):
        """Each operator matches exactly the recorded flows it should."""
        flows, ports = await self.record()
        everything = set(flows)
        http = everything - {"tcp"}
        table = {
            "~all": everything,
            "~http": http,
            "~websocket": {"ws"},
            "~tcp": {"tcp"},
            "~udp": set(),
            "~dns": set(),
            "~q": {"refused"},
            "~s": http - {"refused"},
            "~e": {"refused"},
            "~a": {"h2"},
            "~marked": {"marked"},
            "~marker star": {"marked"},
            "~comment ^by": {"marked"},
            "~meta 'reviewer: ann'": {"marked"},
            "~replay": set(),
            "~replayq": set(),
            "~replays": set(),
            "~c 200": {"get", "post", "marked", "h2"},
            "~c 101": {"ws"},
            "~d named.test": {"get"},
            "~d 127.0.0.1": http,  # (the connection host, whatever the Host header)
            "~u ^http://named.test/bytes": {"get"},
            "named.TEST": {"get"},
            "~u ^https://.*/style.css$": {"h2"},
            "~u ^ws|/chat": {"ws"},
            "~m ^post$": {"post"},
            "~h x-flt": {"post"},
            "~hq '^x-flt: yes'": {"post"},
            "~hs x-flt": set(),
            "~hs '^content-type: text/css'": {"h2"},
            "~t text/plain": {"post"},
            "~tq text/plain": {"post"},
            "~ts text/plain": set(),
            "~ts json": {"post"},
            "~bq widget": {"post"},
            "~bs widget": {"post"},
            "~b ^01234": {"get", "marked"},
            "~bq ^01234": set(),
            "~bs 0123456789abc": {"get"},
            "~b 'hello ws'": {"ws"},
            "~bq 'hello ws'": {"ws"},
            "~bs 'hello ws'": {"ws"},
            "~b 'ping tcp'": {"tcp"},
            "~bq ping": {"tcp"},
            "~bs ping": {"tcp"},
            "~b color": {"h2"},
            "~src ^127\\.0\\.0\\.1:": everything,
            f"~dst :{ports['tcp']}$": {"tcp"},
            f"~dst :{ports['web']}$": {"get", "post", "marked"},
            f"~dst :{ports['h2']}$": {"h2"},
            f"~dst :{ports['ws']}$": {"ws"},
            "~http & !~s": {"refused"},
            "~c 200 & !~hq x-flt | ~tcp": {"get", "marked", "h2", "tcp"},
            "(~websocket | ~tcp) & ~b hello": {"ws"},
        }
        self.assertEqual(unlisted_operators(table), [])
        for expression, expected in table.items():
            flt = flowfilter.parse(expression)
            found = {name for name, flow in flows.items() if flt(flow)}
            self.assertEqual(found, expected, expression)
            again = flowfilter.parse(str(flt))
            self.assertEqual({name for name, flow in flows.items() if again(flow)}, expected)


EXAMPLE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "examples", "filter_flows.py")


class FilterFlowsExampleTests(unittest.TestCase):
    """
    examples/filter_flows.py, loaded by the script loader into a running proxy.
    """

    timeout = 20
    skip = CURL_SKIP

    async def test_logs_matching_flows(self):
        """Only the flows matching the option are logged; a bad expression is refused with its column."""
        recorder = LogRecorder()
        proxy = await start_proxy(self, recorder, ScriptLoader(), scripts=[EXAMPLE])
        addon = proxy.master.addons.get("filter_flows")
        proxy.master.options.update(filter_flows="~m POST & ~c 200")
        web = await WebServer.start(self)
        for args in (["--data-binary", "x"], []):
            result = await curl(self, "-x", proxy.url, *args, web.url("/echo"))
            self.assertEqual(result.code, 0, result.stderr)
        self.assertTrue(await wait_until(lambda: len(addon.matched) == 1))
        self.assertEqual(addon.matched[0].request.method, "POST")
        self.assertIn("matches ~m POST & ~c 200", recorder.text("info"))
        error = self.assertRaises(OptionsError, proxy.master.options.update, filter_flows="~c abc")
        self.assertEqual(str(error), "option filter_flows: ~c abc: expected a status code at column 4")
        self.assertEqual(proxy.master.options.filter_flows, "~m POST & ~c 200")
