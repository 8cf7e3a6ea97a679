"""
Behaviours mitmproxy 2.x scripts rely on, run through C{twistd interceptor
--addon} against loopback servers: a stream transform written as a
generator over chunks, and the (empty) content of a 101 response.
"""

from __future__ import annotations

from twisted.trial import unittest

from interceptor.testing import connect_websocket, start_websocket_server
from tests.compat.test_surface import printed, stopped_output, write_script
from tests.e2e.peers import WebServer, curl, twistd_proxy, wait_until


class StreamGeneratorTests(unittest.TestCase):
    timeout = 30

    async def test_generator_over_chunks(self) -> None:
        """
        C{flow.response.stream = modify} with 2.x's C{modify(chunks)}
        generator rewrites the streamed body.
        """
        script = write_script(self, '''
            def modify(chunks):
                for chunk in chunks:
                    yield chunk.replace(b"0", b"Z")

            def responseheaders(flow):
                flow.response.stream = modify
        ''')
        web = await WebServer.start(self)
        port, transport, protocol = await twistd_proxy(self, "-q", "--addon", script)
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", web.url("/bytes?n=3000"))
        await stopped_output(transport, protocol)
        self.assertEqual(result.status, 200)
        self.assertEqual(len(result.body), 3000)
        self.assertNotIn(b"0", result.body)
        self.assertIn(b"Z", result.body)


class SwitchingProtocolsContentTests(unittest.TestCase):
    timeout = 30

    async def test_101_content_is_empty(self) -> None:
        """
        A response hook reading C{flow.response.content} of a WebSocket
        handshake gets b"" (not None), as in mitmproxy.
        """
        script = write_script(self, '''
            def response(flow):
                print("CONTENT:", repr(flow.response.content.replace(b"a", b"b")))
        ''')
        server = await start_websocket_server(self)
        port, transport, protocol = await twistd_proxy(self, "--addon", script)
        client = await connect_websocket(self, server.url("/chat"), proxy=("127.0.0.1", port))
        client.send_text("hi")
        await client.next_message()
        await client.close(1000, "bye")
        await wait_until(lambda: b"CONTENT:" in protocol.output)
        output = await stopped_output(transport, protocol)
        self.assertEqual(printed(output, "CONTENT:"), ["b''"])
        self.assertNotIn("Traceback", output)


class NetHttpPathTests(unittest.TestCase):
    def test_same_objects(self) -> None:
        """
        C{interceptor.net.http} (mitmproxy 2.x's C{mitmproxy.net.http})
        holds the model's classes.
        """
        from interceptor import http
        from interceptor.net import http as net_http

        self.assertIs(net_http.Headers, http.Headers)
        self.assertIs(net_http.Response, http.Response)
        self.assertIs(net_http.Request, http.Request)


class StartWithOptionsTests(unittest.TestCase):
    timeout = 30

    async def test_start_opts_returns_the_addon(self) -> None:
        """
        mitmproxy 2.0's C{def start(opts): return AddHeader()}: start gets
        the options, and the object it returns is the addon.
        """
        script = write_script(self, '''
            class AddHeader:
                def response(self, flow):
                    flow.response.headers["newheader"] = "foo"

            def start(opts):
                print("OPTS:", "confdir" in opts)
                return AddHeader()
        ''')
        web = await WebServer.start(self)
        port, transport, protocol = await twistd_proxy(self, "--addon", script)
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", web.url("/echo"))
        output = await stopped_output(transport, protocol)
        self.assertEqual(result.heads[-1].header(b"newheader"), b"foo")
        self.assertEqual(printed(output, "OPTS:"), ["True"])


class ArgvInHooksTests(unittest.TestCase):
    timeout = 30

    async def test_start_and_done_read_argv(self) -> None:
        """
        A 2.x script reading its arguments in start() and done() gets them.
        """
        script = write_script(self, '''
            import sys

            def start():
                if len(sys.argv) != 2:
                    raise ValueError("Usage: -s 'script.py WORD'")
                print("START:", sys.argv[1])

            def done():
                print("DONE:", sys.argv[1])
        ''')
        port, transport, protocol = await twistd_proxy(self, "--addon", f"{script} hello")
        output = await stopped_output(transport, protocol)
        self.assertEqual(printed(output, "START:"), ["hello"])
        self.assertEqual(printed(output, "DONE:"), ["hello"])
        self.assertNotIn("Usage", output)


class InjectFromAsyncioTaskTests(unittest.TestCase):
    timeout = 30

    async def test_task_injects_until_ended(self) -> None:
        """
        mitmproxy 6's way: C{websocket_start} starts an asyncio task that
        injects to the client with C{flow.inject_message} until
        C{flow.ended}.
        """
        script = write_script(self, '''
            import asyncio

            class Inject:
                async def inject(self, flow):
                    i = 0
                    while not flow.ended and not flow.error:
                        await asyncio.sleep(0.2)
                        flow.inject_message(flow.client_conn, f"injected #{i}")
                        i += 1

                def websocket_start(self, flow):
                    asyncio.get_event_loop().create_task(self.inject(flow))

            addons = [Inject()]
        ''')
        server = await start_websocket_server(self)
        port, transport, protocol = await twistd_proxy(self, "--addon", script)
        client = await connect_websocket(self, server.url("/chat"), proxy=("127.0.0.1", port))
        got = await client.next_message()
        await client.close(1000, "bye")
        output = await stopped_output(transport, protocol)
        self.assertEqual(got.payload, b"injected #0", output)
        self.assertNotIn("Traceback", output)


class PackageAttributeTests(unittest.TestCase):
    def test_submodules_as_attributes(self) -> None:
        """
        C{import interceptor; interceptor.ctx.log(...)} works, as
        C{mitmproxy.ctx} does in scripts; an unknown name is an
        AttributeError.
        """
        import subprocess
        import sys

        code = "import interceptor; print(interceptor.ctx.__name__, interceptor.http.HTTPFlow.__name__)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=30)
        self.assertEqual(out.stdout.split(), [b"interceptor.ctx", b"HTTPFlow"])
        import interceptor

        with self.assertRaises(AttributeError):
            interceptor.no_such_module  # noqa: B018


class NetHttpCookiesTests(unittest.TestCase):
    def test_helpers(self) -> None:
        """
        mitmproxy 2.x's cookie helpers, and response cookies read by name.
        """
        import time

        from interceptor.http import Response
        from interceptor.net.http import cookies

        response = Response.make(200, b"", {"Set-Cookie": "a=1; Max-Age=60; Path=/"})
        name, (value, attrs) = response.cookies.fields[0]
        self.assertEqual((name, value, response.cookies.fields[0][1].value), ("a", "1", "1"))
        expires = cookies.get_expiration_ts(attrs)
        assert expires is not None
        self.assertLess(abs(expires - (time.time() + 60)), 5)
        self.assertFalse(cookies.is_expired(attrs))
        grouped = cookies.group_cookies([("a", "1"), ("Path", "/"), ("b", "2")])
        self.assertEqual([(n, v, list(a)) for n, v, a in grouped], [("a", "1", [("Path", "/")]), ("b", "2", [])])
