"""
The request key of server replay and its mitmproxy knobs, over flows built
with the model (the e2e tests in tests.e2e.test_replay run it on traffic).
"""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from addons.serverplayback import ServerPlayback
from interceptor.core.master import Master
from interceptor.model.connection import ClientConnection
from interceptor.model.flow import HTTPFlow
from interceptor.model.http import Request, Response
from interceptor.options import OptionsError, proxy_options


def flow(url: str, method: str = "GET", body: bytes = b"", status: int = 200, **headers: str) -> HTTPFlow:
    request = Request.make(method, url, body, headers)
    f = HTTPFlow(ClientConnection(("127.0.0.1", 5000)), None, request)
    f.response = Response.make(status, f"answer to {url}")
    return f


class KeyTests(unittest.TestCase):
    """
    Which requests a recorded flow answers.
    """

    def playback(self, **options: Any) -> ServerPlayback:
        playback = ServerPlayback()
        master = Master(proxy_options(), addons=[playback])
        master.options.update(**options)
        master.addons.configure_all(master.options, master.options.keys())
        return playback

    def matches(self, playback: ServerPlayback, recorded: HTTPFlow, live: HTTPFlow) -> bool:
        return playback.key(recorded) == playback.key(live)

    def test_default_match(self) -> None:
        """
        Method, scheme, host, port, path, query and body all count.
        """
        p = self.playback()
        base = flow("http://a.example/p?x=1", "POST", b"body")
        self.assertTrue(self.matches(p, base, flow("http://a.example/p?x=1", "POST", b"body")))
        for other in (
            flow("http://a.example/p?x=1", "PUT", b"body"),
            flow("https://a.example/p?x=1", "POST", b"body"),
            flow("http://b.example/p?x=1", "POST", b"body"),
            flow("http://a.example:81/p?x=1", "POST", b"body"),
            flow("http://a.example/q?x=1", "POST", b"body"),
            flow("http://a.example/p?x=2", "POST", b"body"),
            flow("http://a.example/p?x=1", "POST", b"other"),
        ):
            self.assertFalse(self.matches(p, base, other), other.request.url)

    def test_ignores(self) -> None:
        """
        Each ignore option leaves its part out.
        """
        base = flow("http://a.example/p?x=1&ts=1", "POST", b"body")
        self.assertTrue(self.matches(
            self.playback(server_replay_ignore_params=["ts"]), base,
            flow("http://a.example/p?x=1&ts=9", "POST", b"body")))
        self.assertTrue(self.matches(
            self.playback(server_replay_ignore_content=True), base,
            flow("http://a.example/p?x=1&ts=1", "POST", b"else")))
        self.assertTrue(self.matches(
            self.playback(server_replay_ignore_host=True), base,
            flow("http://b.example/p?x=1&ts=1", "POST", b"body")))
        self.assertTrue(self.matches(
            self.playback(server_replay_ignore_port=True), base,
            flow("http://a.example:8080/p?x=1&ts=1", "POST", b"body")))

    def test_payload_params(self) -> None:
        """
        Form fields named in server_replay_ignore_payload_params do not
        count; the others do.
        """
        p = self.playback(server_replay_ignore_payload_params=["nonce"])
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        base = flow("http://a.example/f", "POST", b"user=me&nonce=1", **form)
        self.assertTrue(self.matches(p, base, flow("http://a.example/f", "POST", b"user=me&nonce=2", **form)))
        self.assertFalse(self.matches(p, base, flow("http://a.example/f", "POST", b"user=you&nonce=1", **form)))

    def test_use_headers(self) -> None:
        """
        Headers named in server_replay_use_headers must match too.
        """
        p = self.playback(server_replay_use_headers=["Accept"])
        base = flow("http://a.example/", Accept="text/html")
        self.assertTrue(self.matches(p, base, flow("http://a.example/", Accept="text/html")))
        self.assertFalse(self.matches(p, base, flow("http://a.example/", Accept="*/*")))

    def test_order_and_reuse(self) -> None:
        """
        Responses to the same request answer in the order recorded, once
        each; with server_replay_reuse the first answers every time.
        """
        p = self.playback()
        first, second = flow("http://a.example/"), flow("http://a.example/", status=201)
        p.load_flows([first, second])
        self.assertIs(p.next_flow(flow("http://a.example/")), first)
        self.assertIs(p.next_flow(flow("http://a.example/")), second)
        self.assertIsNone(p.next_flow(flow("http://a.example/")))
        reuse = self.playback(server_replay_reuse=True)
        reuse.load_flows([first, second])
        for _ in range(3):
            self.assertIs(reuse.next_flow(flow("http://a.example/")), first)

    def test_index_is_rebuilt(self) -> None:
        """
        Changing a matching option at run time indexes the flows again.
        """
        p = self.playback()
        p.load_flows([flow("http://a.example/?ts=1")])
        self.assertIsNone(p.next_flow(flow("http://a.example/?ts=2")))
        options = p.options
        assert options is not None
        options.server_replay_ignore_params = ["ts"]
        p.configure(options, {"server_replay_ignore_params"})
        self.assertIsNotNone(p.next_flow(flow("http://a.example/?ts=2")))

    def test_answer_refreshes_and_marks(self) -> None:
        """
        The answer is a copy of the recorded response, dates moved, and the
        flow is marked as replayed.
        """
        p = self.playback()
        recorded = flow("http://a.example/")
        assert recorded.response is not None
        recorded.response.headers["Date"] = "Wed, 01 Jan 2025 00:00:00 GMT"
        recorded.response.timestamp_start = 1735689600.0  # that date
        p.load_flows([recorded])
        live = flow("http://a.example/")
        live.response = None
        p.answer(live)
        assert live.response is not None
        self.assertIsNot(live.response, recorded.response)
        self.assertEqual(live.is_replay, "response")
        self.assertNotEqual(live.response.headers["Date"], "Wed, 01 Jan 2025 00:00:00 GMT")

    def test_extra_choices(self) -> None:
        """
        server_replay_extra takes forward, kill or a status code only.
        """
        with self.assertRaises(OptionsError):
            self.playback(server_replay_extra="teapot")
