# -*- test-case-name: tests.e2e.test_events -*-
"""
End-to-end tests of the events and their guarantees (issue #3, point 3):
order per flow, requestheaders before the body, responseheaders without
content, error, answering or killing from a hook, and a hook's Deferred
holding only its own flow.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial import unittest

from interceptor.model.http import Response
from interceptor.testing import start_proxy
from tests.e2e.peers import (
    HeldHook,
    RawClient,
    RawServer,
    Recorder,
    WebServer,
    agent_request,
    curl,
    delivered,
    http_response,
    ok_handler,
    parse_responses,
    proxy_agent,
    sleep,
    unused_port,
    wait_until,
)


class EventOrderTests(unittest.TestCase):
    """
    Events fire in the documented order with the documented arguments.
    """

    timeout = 15

    async def test_order_for_one_request(self):
        """One GET fires clientconnect, requestheaders, request, serverconnect, responseheaders, response, then the disconnects."""
        recorder = Recorder()
        proxy = await start_proxy(self, recorder, read_timeout=2.0)
        server = await RawServer.start(self, ok_handler)
        result = await curl(self, "-x", proxy.url, server.url("/"))
        self.assertEqual(result.status, 200)
        self.assertTrue(await wait_until(lambda: recorder.count("clientdisconnect") == 1))
        names = recorder.names()
        self.assertEqual(
            names[:6],
            ["clientconnect", "requestheaders", "request", "serverconnect",
             "responseheaders", "response"],
        )
        self.assertEqual(sorted(names[6:]), ["clientdisconnect", "serverdisconnect"])
        root = recorder.events[0][1]
        self.assertEqual(root.client_conn.address[0], "127.0.0.1")
        server_conn = recorder.events[3][1]
        self.assertEqual(server_conn.address, ("127.0.0.1", server.port))
        [flow] = recorder.flows()
        self.assertIs(flow.server_conn, server_conn)
        self.assertIsNone(flow.error)

    async def test_order_per_flow_on_keep_alive(self):
        """Each of two keep-alive requests gets its own flow with the events in order; one serverconnect."""
        recorder = Recorder()
        proxy = await start_proxy(self, recorder, read_timeout=2.0)
        server = await RawServer.start(self, ok_handler)
        agent = proxy_agent(self, proxy, persistent=True)
        for _ in range(2):
            await agent_request(self, agent, b"GET", server.url("/"))
        first, second = recorder.flows()
        self.assertEqual(
            recorder.flow_events(first),
            ["requestheaders", "request", "responseheaders", "response"],
        )
        self.assertEqual(recorder.flow_events(second), recorder.flow_events(first))
        self.assertEqual(recorder.count("serverconnect"), 1)
        self.assertIsNot(first, second)
        self.assertNotEqual(first.id, second.id)

    async def test_requestheaders_before_body(self):
        """requestheaders fires before the body is sent (raw_content None); request sees the whole body."""
        seen = {}

        class Watch:
            def requestheaders(self, flow):
                seen["at_headers"] = flow.request.raw_content

            def request(self, flow):
                seen["at_request"] = flow.request.raw_content

        proxy = await start_proxy(self, Watch(), read_timeout=2.0)
        server = await RawServer.start(self, ok_handler)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n" % server.url("/").encode()
        )
        self.assertTrue(await wait_until(lambda: "at_headers" in seen, 2))
        self.assertIsNone(seen["at_headers"])
        self.assertNotIn("at_request", seen)
        client.send(b"0123456789")
        await client.wait_responses(1)
        self.assertEqual(seen["at_request"], b"0123456789")
        self.assertEqual(server.requests[0].body, b"0123456789")

    async def test_responseheaders_without_content(self):
        """responseheaders fires on the head alone, before the body arrives; response sees the body."""
        seen = {}
        waiting = []

        def handler(conn, request):
            conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
            waiting.append(conn)

        class Watch:
            def responseheaders(self, flow):
                seen["at_headers"] = (flow.response.status_code, flow.response.raw_content)

            def response(self, flow):
                seen["at_response"] = flow.response.content

        proxy = await start_proxy(self, Watch(), read_timeout=2.0)
        server = await RawServer.start(self, handler)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/").encode())
        # responseheaders has fired on the head; the body is not sent yet.
        self.assertTrue(await wait_until(lambda: "at_headers" in seen))
        self.assertNotIn("at_response", seen)
        waiting[0].write(b"hello")
        [response] = await client.wait_responses(1)
        self.assertEqual(response.body, b"hello")
        self.assertEqual(seen["at_headers"], (200, None))
        self.assertEqual(seen["at_response"], b"hello")

    async def test_error_event_on_refused_connection(self):
        """A refused upstream connection fires error with a message, and the client gets a 502 saying why."""
        recorder = Recorder()
        proxy = await start_proxy(self, recorder, read_timeout=2.0, connect_timeout=2.0)
        port = await unused_port()
        result = await curl(self, "-x", proxy.url, f"http://127.0.0.1:{port}/")
        self.assertEqual(result.status, 502)
        [flow] = recorder.flows()
        self.assertEqual(recorder.flow_events(flow)[-1], "error")
        self.assertNotIn("response", recorder.flow_events(flow))
        self.assertTrue(flow.error.msg)
        self.assertIn(str(port), flow.error.msg)
        self.assertIn(flow.error.msg.encode(), result.body)

    async def test_clientdisconnect_after_client_closes(self):
        """clientdisconnect fires with the same root layer when a client closes its connection."""
        recorder = Recorder()
        proxy = await start_proxy(self, recorder, read_timeout=2.0)
        client = await RawClient.connect(self, proxy.port_number)
        self.assertTrue(await wait_until(lambda: recorder.count("clientconnect") == 1, 2))
        client.transport.loseConnection()
        self.assertTrue(await wait_until(lambda: recorder.count("clientdisconnect") == 1, 2))
        self.assertIs(recorder.events[0][1], recorder.events[1][1])


class AnswerFromHookTests(unittest.TestCase):
    """
    A hook setting flow.response answers without contacting the server.
    """

    timeout = 15

    async def _answered(self, event: str) -> None:
        recorder = Recorder()

        class Answer:
            pass

        def hook(flow):
            flow.response = Response.make(418, b"short and stout", {"X-Hook": event})

        setattr(Answer, event, staticmethod(hook))
        proxy = await start_proxy(self, Answer(), recorder, read_timeout=2.0)
        server = await RawServer.start(self, ok_handler)
        client = await RawClient.connect(self, proxy.port_number)
        url = server.url("/").encode()
        client.send(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody" % url)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % url)
        first, second = await client.wait_responses(2)
        for response in (first, second):
            self.assertEqual(response.status, 418)
            self.assertEqual(response.body, b"short and stout")
            self.assertEqual(response.header(b"x-hook"), event.encode())
        self.assertEqual(server.connections, [])
        self.assertEqual(recorder.count("serverconnect"), 0)
        self.assertEqual(recorder.count("response"), 2)

    async def test_response_set_in_requestheaders(self):
        """flow.response set in requestheaders answers the client (body or not) and no server is contacted."""
        await self._answered("requestheaders")

    async def test_response_set_in_request(self):
        """flow.response set in request answers the client and no server is contacted."""
        await self._answered("request")


class KillTests(unittest.TestCase):
    """
    flow.kill() drops the flow: no response, client connection closed.
    """

    timeout = 15

    async def _killed(self, event: str) -> tuple:
        recorder = Recorder()

        class Kill:
            pass

        setattr(Kill, event, staticmethod(lambda flow: flow.kill()))
        proxy = await start_proxy(self, Kill(), recorder, read_timeout=2.0)
        server = await RawServer.start(self, ok_handler)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/").encode())
        data = await client.wait_closed(3)
        self.assertEqual(data, b"")
        return recorder, server

    async def test_kill_in_requestheaders(self):
        """A flow killed in requestheaders gets no response, its connection closes, no server is contacted."""
        recorder, server = await self._killed("requestheaders")
        self.assertEqual(server.connections, [])

    async def test_kill_in_request(self):
        """A flow killed in request gets no response, its connection closes, no server is contacted."""
        recorder, server = await self._killed("request")
        self.assertEqual(server.connections, [])

    async def test_kill_in_responseheaders(self):
        """A flow killed in responseheaders sends nothing to the client and closes its connection."""
        await self._killed("responseheaders")

    async def test_kill_in_response(self):
        """A flow killed in response sends nothing to the client and closes its connection."""
        recorder, server = await self._killed("response")
        self.assertEqual(len(server.requests), 1)

    async def test_kill_fires_error(self):
        """A killed flow fires error with the 'Connection killed.' message, as mitmproxy does."""
        recorder, server = await self._killed("request")
        [flow] = recorder.flows()
        self.assertTrue(flow.killed)
        self.assertEqual(flow.error.msg, "Connection killed.")
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1, 1))

    async def test_proxy_serves_after_kill(self):
        """After killing one flow the proxy serves the next client normally."""

        class KillFirst:
            killed = 0

            def request(self, flow):
                if flow.request.path == "/kill":
                    flow.kill()

        proxy = await start_proxy(self, KillFirst(), read_timeout=2.0)
        server = await RawServer.start(self, ok_handler)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/kill").encode())
        self.assertEqual(await client.wait_closed(3), b"")
        result = await curl(self, "-x", proxy.url, server.url("/fine"))
        self.assertEqual((result.status, result.body), (200, b"ok"))


class DeferredHookTests(unittest.TestCase):
    """
    A Deferred (or coroutine) returned by a hook holds only its own flow.
    """

    timeout = 15

    async def test_deferred_holds_only_its_flow(self):
        """A request hook holding flow A does not delay flow B on another connection."""
        done = []
        held = []

        class Delay:
            def request(self, flow):
                if flow.request.path == "/slow":
                    d = Deferred()
                    held.append(d)
                    return d

            def response(self, flow):
                done.append(flow.request.path)

        proxy = await start_proxy(self, Delay(), read_timeout=5.0)
        web = await WebServer.start(self)
        agent = proxy_agent(self, proxy)
        slow_d = Deferred.fromCoroutine(agent_request(self, agent, b"GET", web.url("/slow")))
        self.assertTrue(await wait_until(lambda: held))
        response, body = await agent_request(self, agent, b"GET", web.url("/bytes?n=3"))
        self.assertEqual(body, b"012")
        self.assertFalse(slow_d.called)
        self.assertEqual(done, ["/bytes?n=3"])
        held[0].callback(None)
        response, _ = await slow_d
        self.assertEqual(response.code, 404)
        self.assertEqual(done, ["/bytes?n=3", "/slow"])

    async def test_coroutine_hook(self):
        """An async def hook is awaited before the flow goes on, and its changes are kept."""

        class Async:
            async def request(self, flow):
                await sleep(0.01)
                flow.request.headers["X-Async"] = "done"

        proxy = await start_proxy(self, Async(), read_timeout=2.0)
        server = await RawServer.start(self, ok_handler)
        result = await curl(self, "-x", proxy.url, server.url("/"))
        self.assertEqual(result.status, 200)
        self.assertEqual(server.requests[0].header(b"x-async"), b"done")

    async def test_deferred_responseheaders_holds_flow(self):
        """A responseheaders hook returning a Deferred delays that response, which then arrives whole."""
        delay = HeldHook("responseheaders")
        proxy = await start_proxy(self, delay, read_timeout=2.0)
        server = await RawServer.start(
            self, lambda c, r: c.write(http_response(200, b"x" * 50000))
        )
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/").encode())
        # The whole response is at the proxy; the client gets none of it yet.
        self.assertTrue(await wait_until(lambda: delay.pending and delivered(server.connections[0].transport)))
        await sleep(0.01)
        self.assertEqual(client.received, bytearray())
        delay.release()
        [response] = await client.wait_responses(1)
        self.assertEqual(response.body, b"x" * 50000)


class ErrorPathEventsTests(unittest.TestCase):
    """
    error fires for upstream failures, after the events that preceded it.
    """

    timeout = 15

    async def test_error_after_reset(self):
        """An upstream reset before any response fires requestheaders, request, serverconnect, error."""
        recorder = Recorder()
        proxy = await start_proxy(self, recorder, read_timeout=2.0)
        server = await RawServer.start(self, lambda c, r: c.abort())
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % server.url("/").encode())
        data = await client.wait_closed(3)
        [response] = parse_responses(data)
        self.assertEqual(response.status, 502)
        [flow] = recorder.flows()
        self.assertEqual(recorder.flow_events(flow), ["requestheaders", "request", "error"])
        self.assertIn("serverconnect", recorder.names())
        self.assertTrue(flow.error.msg)
