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
