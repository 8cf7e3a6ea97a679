# -*- test-case-name: tests.e2e.test_http1_hostile -*-
"""
End-to-end tests of hostile HTTP/1 input found by probing the proxy as an
attacker would (the hardening issue): Transfer-Encoding forms a smuggler
uses, host names that cannot be resolved, a head sent one byte at a time
(slowloris), bad input that logged tracebacks, and fields an addon sets
that would split a message on the wire.  Each gets a clear status and one
log line; the proxy goes on serving.
"""

from __future__ import annotations

from interceptor.model.http import Response
from tests.e2e.peers import RawClient, advance, parse_responses, read_by_peer, wait_until
from tests.e2e.test_http1_faults import _Base


class TransferEncodingTests(_Base):
    """
    Transfer-Encoding forms mitmdump answers with 400 (and a front end and
    a back end may read differently) are refused, never forwarded.
    """

    async def assert_refused(self, head: bytes) -> None:
        await self.start()
        url = self.good.url("/").encode()
        responses, raw = await self.send_raw(head.replace(b"URL", url) + b"5\r\nhello\r\n0\r\n\r\n")
        self.assertEqual([r.status for r in responses], [400], raw)
        self.assertIn(b"Transfer-Encoding", responses[0].body)
        self.assertEqual(self.good.requests, [])
        await self.assert_still_serving()

    async def test_identity_then_chunked(self):
        await self.assert_refused(
            b"POST URL HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n"
        )

    async def test_two_fields(self):
        await self.assert_refused(
            b"POST URL HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )

    async def test_http10_chunked(self):
        await self.assert_refused(
            b"POST URL HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )


class _AddonCase(_Base):
    async def get_through(self, addon, path: str = "/"):
        """
        One GET (Connection: close) through a proxy running C{addon}:
        (the responses, the raw bytes).
        """
        await self.start()
        self.proxy.master.addons.add(addon)
        return await self.send_raw(
            b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            % self.good.url(path).encode()
        )


class InvalidHostTests(_AddonCase):
    """
    A request naming a host that cannot be one is answered 400 at once, and
    its connection (with a request pipelined behind) released: it used to
    hang and leak its socket for good.
    """

    async def assert_bad_host(self, host: bytes) -> None:
        await self.start()
        request = b"GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n" % (host, host)
        follow = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.good.url("/next").encode()
        responses, raw = await self.send_raw(request + follow)
        self.assertEqual([r.status for r in responses][:1], [400], raw)
        self.assertIn(b"host", responses[0].body.lower())
        self.assert_no_traceback(raw)
        self.assertEqual(self.recorder.count("error"), 0)
        await self.assert_still_serving()

    async def test_empty_label(self):
        await self.assert_bad_host(b"a..b")

    async def test_label_over_63(self):
        await self.assert_bad_host(b"a" * 64 + b".example")

    async def test_punycode_prefix_alone(self):
        """C{xn--} (answered 400 before, with a UnicodeError traceback logged)."""
        await self.assert_bad_host(b"xn--")


    async def test_addon_sets_an_invalid_host(self):
        """
        The connection to a host an addon set fails at once: a 502 naming
        it, the error event, the connection free for the next request
        (connect() handed back nothing: "'NoneType' object has no
        attribute 'open_exchange'").
        """
        class Retarget:
            def request(self, flow):
                flow.request.host = "a..b"

        responses, raw = await self.get_through(Retarget())
        self.assertEqual([r.status for r in responses], [502], raw)
        self.assertIn(b"a..b", responses[0].body)
        self.assertNotIn(b"NoneType", responses[0].body)
        self.assertEqual(self.recorder.count("error"), 1)


class SlowlorisTests(_Base):
    """
    C{read_timeout} restarts on every byte; C{header_timeout} bounds the
    whole request head.
    """

    async def test_one_byte_at_a_time(self):
        await self.start(read_timeout=5.0, header_timeout=10.0)
        client = await RawClient.connect(self, self.proxy.port_number)
        head = b"GET %s HTTP/1.1\r\nHost: x\r\nX-Slow: " % self.good.url("/").encode()
        client.send(head)
        for i in range(2):
            # A byte every 4 s: read_timeout (5 s) never expires.
            self.assertTrue(await wait_until(lambda: read_by_peer(client.transport)))
            await advance(self.clock, 4.0)
            self.assertFalse(client.closed, f"closed after {4 * (i + 1)} s")
            client.send(b"a")
        self.assertTrue(await wait_until(lambda: read_by_peer(client.transport)))
        await advance(self.clock, 2.5)
        raw = await client.wait_closed()
        responses = parse_responses(raw)
        self.assertEqual([r.status for r in responses], [408], raw)
        self.assertIn(b"header_timeout", responses[0].body)
        self.assertEqual(self.good.requests, [])
        await self.assert_still_serving()

    async def test_default_is_60_seconds(self):
        from interceptor.core.options import proxy_options

        self.assertEqual(proxy_options().header_timeout, 60.0)


class UpgradeInTunnelTests(_Base):
    """
    A CONNECT tunnel whose first bytes are a request with an unparsable
    target: a 400 with a reason (it was a 400 whose body was "24", and an
    HttpParserUpgrade traceback in the log).
    """

    async def test_bad_target_in_plain_tunnel(self):
        await self.start()
        port = self.good.port
        client = await RawClient.connect(self, self.proxy.port_number)
        client.send(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % port)
        await client.wait_for(lambda d: b"\r\n\r\n" in d)
        client.received.clear()
        client.send(b"HEAD p://\n\r\n")
        raw = await client.wait_closed()
        responses = parse_responses(raw)
        self.assertEqual([r.status for r in responses], [400], raw)
        self.assertNotEqual(responses[0].body.strip(), b"24")
        self.assert_no_traceback(raw)


class AddonFieldTests(_AddonCase):
    """
    A field an addon set that would split the message on the wire fails
    that flow: an error naming the field, a 502 to the client, and not one
    byte of it to the server.
    """

    async def test_header_injection_into_the_request(self):
        class CopyQuery:
            def request(self, flow):
                flow.request.headers["X-From-Query"] = "a\r\nX-Injected: 1"

        responses, raw = await self.get_through(CopyQuery(), "/?q=x")
        self.assertEqual([r.status for r in responses], [502], raw)
        self.assertIn(b"X-From-Query", responses[0].body)
        self.assertEqual(self.good.requests, [])
        [flow] = self.recorder.flows()
        self.assertIn("X-From-Query", flow.error.msg)

    async def test_response_splitting(self):
        class Redirect:
            def response(self, flow):
                flow.response.headers["Location"] = "/x\r\nSet-Cookie: stolen=1"

        responses, raw = await self.get_through(Redirect())
        self.assertEqual([r.status for r in responses], [502], raw)
        self.assertNotIn(b"stolen", raw.replace(responses[0].body, b""))
        [flow] = self.recorder.flows()
        self.assertIn("Location", flow.error.msg)

    async def test_bad_status_code(self):
        class Status:
            def response(self, flow):
                flow.response.status_code = "abc"

        responses, raw = await self.get_through(Status())
        self.assertEqual([r.status for r in responses], [502], raw)
        self.assertIn(b"status code", responses[0].body)
        [flow] = self.recorder.flows()
        self.assertIn("status code", flow.error.msg)

    async def test_make_with_bad_status_is_the_addons_error(self):
        """
        C{Response.make("abc")} raises in the addon's hook: the flow goes
        on to the server as if the addon had done nothing (it used to hang
        an HTTP/1 client for over 75 s).
        """
        class Make:
            def request(self, flow):
                flow.response = Response.make("abc")

        responses, raw = await self.get_through(Make())
        self.assertEqual([r.status for r in responses], [200], raw)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

