"""
Client and server replay through a running proxy, against real loopback
servers: HTTP/1 and HTTP/2, plain and TLS; a target that refuses; the
backend stopped for server replay.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.trial import unittest

from addons.clientplayback import ClientPlayback
from addons.serverplayback import ServerPlayback
from interceptor.model.flow import HTTPFlow
from interceptor.model.http import Request
from interceptor.testing import LogRecorder, start_proxy
from tests.e2e.h2peers import H2Server, TestPKI, TlsHttp1Server, echo_handler
from tests.e2e.peers import Recorder, WebServer, curl, unused_port, wait_until


def recorded(url: str, method: str = "GET", body: bytes = b"", **headers: str) -> HTTPFlow:
    """
    A finished, loaded-looking flow for C{url} (not live), as a flow file
    gives it.
    """
    from interceptor.model.connection import ClientConnection

    request = Request.make(method, url, body, {"Host": url.split("/")[2], **headers})
    flow = HTTPFlow(ClientConnection(("127.0.0.1", 40000)), None, request)
    flow.live = False
    return flow


async def replay(testcase: unittest.TestCase, flows: list, *addons: Any, **options: Any) -> tuple:
    """
    Replay C{flows} through a proxy holding a L{ClientPlayback} and
    C{addons}; wait until every flow is over.
    """
    playback = ClientPlayback()
    events = Recorder()
    log = LogRecorder()
    proxy = await start_proxy(testcase, playback, events, log, *addons, **options)
    playback.start_replay(iter(flows))
    testcase.assertTrue(
        await wait_until(lambda: playback.replayed + playback.skipped == len(flows), 10.0),
        f"replayed {playback.replayed} of {len(flows)}",
    )
    return proxy, playback, events, log


class ClientReplayTests(unittest.TestCase):
    """
    Recorded requests are sent again through the addon chain.
    """

    async def test_http1_plain(self) -> None:
        """
        Each request reaches the server again, body included; addons see
        the usual events with C{is_replay == "request"}; the summary is
        logged.
        """
        server = await WebServer.start(self)
        flows = [
            recorded(server.url("/echo?n=1")),
            recorded(server.url("/echo?n=2"), "POST", b"\x00binary\xff", **{"Content-Type": "x/y"}),
        ]
        _, playback, events, log = await replay(self, flows)
        self.assertEqual(playback.failed, 0)
        for flow in flows:
            self.assertEqual(flow.is_replay, "request")
            self.assertTrue(flow.request.is_replay)  # (mitmproxy 4-6's name)
            self.assertIsNone(flow.error)
            self.assertEqual(flow.response.status_code, 200)
            self.assertEqual(
                events.flow_events(flow), ["requestheaders", "request", "responseheaders", "response"]
            )
        echoed = json.loads(flows[1].response.content)
        self.assertEqual((echoed["method"], echoed["uri"]), ("POST", "/echo?n=2"))
        self.assertEqual(echoed["body"], "\x00binary\xff")
        self.assertEqual(len(server.connections), 2)
        self.assertIn("Client replay finished: 2 replayed, 2 answered, 0 failed", log.text("info"))

    async def test_refused_target_then_next(self) -> None:
        """
        A target that refuses gives that flow an error (the error event
        fires) and the replay goes on with the next flow.
        """
        server = await WebServer.start(self)
        closed = await unused_port()
        flows = [recorded(f"http://127.0.0.1:{closed}/gone"), recorded(server.url("/echo"))]
        _, playback, events, _ = await replay(self, flows)
        self.assertIsNotNone(flows[0].error)
        self.assertIn("Cannot connect", flows[0].error.msg)
        self.assertEqual(events.flow_events(flows[0])[-1], "error")
        self.assertEqual(flows[1].response.status_code, 200)
        self.assertEqual(playback.failed, 1)

    async def test_reset_by_target(self) -> None:
        """
        A server that closes without answering fails that flow only.
        """
        from tests.e2e.peers import RawServer

        server = await RawServer.start(self, lambda conn, request: conn.transport.abortConnection())
        web = await WebServer.start(self)
        flows = [recorded(f"http://127.0.0.1:{server.port}/reset"), recorded(web.url("/echo"))]
        _, playback, _, _ = await replay(self, flows)
        self.assertIsNotNone(flows[0].error)
        self.assertEqual(flows[1].response.status_code, 200)

    async def test_tls_http1_and_h2(self) -> None:
        """
        https targets are replayed over TLS: HTTP/2 when the server
        negotiates it, HTTP/1.1 otherwise.
        """
        pki = TestPKI(self.mktemp())
        h2 = await H2Server.start(self, pki, echo_handler)
        h1 = await TlsHttp1Server.start(self, pki)
        flows = [
            recorded(f"https://127.0.0.1:{h2.port}/two", "POST", b"payload"),
            recorded(f"https://127.0.0.1:{h1.port}/one"),
        ]
        await replay(self, flows, confdir=self.mktemp(), ssl_verify_upstream_trusted_ca=pki.ca_path)
        for flow in flows:
            self.assertIsNone(flow.error, flow.error)
            self.assertEqual(flow.response.status_code, 200)
        self.assertEqual(flows[0].server_conn.alpn, b"h2")
        self.assertEqual(flows[0].response.http_version, "HTTP/2.0")
        self.assertEqual(h2.streams[0].body, b"payload")
        self.assertEqual(flows[1].server_conn.alpn, b"http/1.1")

    async def test_upgrade_request(self) -> None:
        """
        A recorded WebSocket handshake sent again gets its 101 and the
        replay ends (there is no client to hand the connection to).
        """
        from interceptor.testing import start_websocket_server

        server = await start_websocket_server(self)
        handshake = recorded(
            server.url("/chat").replace("ws://", "http://"),
            Upgrade="websocket", Connection="Upgrade", **{"Sec-WebSocket-Version": "13",
                                                          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
        )
        _, playback, _, _ = await replay(self, [handshake])
        self.assertIsNone(handshake.error)
        self.assertEqual(handshake.response.status_code, 101)

    async def test_concurrency(self) -> None:
        """
        With C{client_replay_concurrency} above 1, several requests are in
        flight at once; all are answered.
        """
        server = await WebServer.start(self)
        flows = [recorded(server.url(f"/echo?n={n}")) for n in range(6)]
        _, playback, _, _ = await replay(self, flows, client_replay_concurrency=3)
        self.assertEqual(playback.failed, 0)
        self.assertEqual([f.response.status_code for f in flows], [200] * 6)

    async def test_unreplayable_skipped(self) -> None:
        """
        A live flow and one whose body was streamed are skipped with a
        warning.
        """
        server = await WebServer.start(self)
        live = recorded(server.url("/echo"))
        live.live = True
        streamed = recorded(server.url("/echo"))
        streamed.request.raw_content = None
        _, playback, _, log = await replay(self, [live, streamed, recorded(server.url("/echo"))])
        self.assertEqual((playback.skipped, playback.replayed), (2, 1))
        self.assertIn("streamed", log.text("warn"))


class ServerReplayTests(unittest.TestCase):
    """
    Recorded responses answer matching requests with the server stopped.
    """

    async def _recorded_then_stopped(self, *paths: str) -> tuple:
        server = await WebServer.start(self)
        events = Recorder()
        proxy = await start_proxy(self, events)
        for path in paths:
            result = await curl(self, "-x", proxy.url, server.url(path))
            self.assertEqual(result.status, 200)
        await proxy.stop()
        await server.stop()
        flows = [flow.copy() for flow in events.flows()]
        return server, flows

    async def test_answers_without_server(self) -> None:
        """
        A matching request gets the recorded response (the server is
        down); a request matching nothing is forwarded and fails.
        """
        server, flows = await self._recorded_then_stopped("/echo?a=1", "/echo?a=2")
        playback = ServerPlayback()
        events = Recorder()
        proxy = await start_proxy(self, playback, events)
        playback.load_flows(flows)
        first = await curl(self, "-x", proxy.url, server.url("/echo?a=2"))
        self.assertEqual(first.status, 200)
        self.assertEqual(json.loads(first.body)["uri"], "/echo?a=2")
        replayed = events.flows()[-1]
        self.assertEqual(replayed.is_replay, "response")
        again = await curl(self, "-x", proxy.url, server.url("/echo?a=2"))
        self.assertEqual(again.status, 502)  # used once: now forwarded, server down
        other = await curl(self, "-x", proxy.url, server.url("/echo?a=1"))
        self.assertEqual(other.status, 200)

    async def test_knobs(self) -> None:
        """
        server_replay_ignore_params and server_replay_reuse widen the match
        and keep the response; server_replay_extra answers the rest.
        """
        server, flows = await self._recorded_then_stopped("/echo?a=1&ts=5")
        playback = ServerPlayback()
        proxy = await start_proxy(
            self,
            playback,
            server_replay_ignore_params=["ts"],
            server_replay_reuse=True,
            server_replay_extra="404",
        )
        playback.load_flows(flows)
        for ts in ("6", "7"):
            result = await curl(self, "-x", proxy.url, server.url(f"/echo?a=1&ts={ts}"))
            self.assertEqual(result.status, 200)
        missing = await curl(self, "-x", proxy.url, server.url("/echo?a=2"))
        self.assertEqual(missing.status, 404)
        proxy.master.options.server_replay_extra = "kill"
        killed = await curl(self, "-x", proxy.url, server.url("/echo?a=3"))
        self.assertNotEqual(killed.code, 0)
