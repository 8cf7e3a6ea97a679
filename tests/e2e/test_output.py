# -*- test-case-name: tests.e2e.test_output -*-
"""
End-to-end tests of the flow output (issue #3, point 6): the dumper addon
prints one line per flow, more with a higher flow_detail.
"""

from __future__ import annotations

import re
from io import StringIO

from twisted.trial import unittest

from addons.dumper import Dumper, human_size
from addons.termlog import TermLog
from interceptor.testing import connect_websocket, start_proxy, start_websocket_server
from tests.e2e.h2peers import proxy_ca_path
from tests.e2e.peers import RawClient, RawServer, curl, http_response, unused_port
from tests.e2e.tcppeers import connect_tunnel, echo_once
from tests.e2e.test_http2 import CURL_SKIP, _Base, path_handler
from tests.e2e.test_decode import MemoryGrowth, bomb, bomb_server


def handler(conn, request):
    """
    Answer with a recognisable body and header.
    """
    conn.write(
        http_response(200, b"the response body " * 100, [(b"Content-Type", b"text/plain"),
                                                          (b"X-Server-Header", b"present")])
    )


class DumperTests(unittest.TestCase):
    """
    The dumper prints flows at the chosen detail.
    """

    timeout = 15

    async def _dump(self, detail: int, *curl_args: str) -> tuple:
        out = StringIO()
        proxy = await start_proxy(self, Dumper(outfile=out), flow_detail=detail, read_timeout=2.0)
        server = await RawServer.start(self, handler)
        url = server.url("/dumped?x=1")
        result = await curl(self, "-x", proxy.url, "-H", "X-Client-Header: here", *curl_args, url)
        self.assertEqual(result.status, 200)
        # The dumper writes in the response event, before curl has the
        # response; stopping the proxy rules out anything later.
        await proxy.stop()
        return out.getvalue(), url

    async def test_one_line_per_flow(self):
        """flow_detail=1 prints one line: client, method, URL, status, size and duration."""
        text, url = await self._dump(1)
        lines = text.splitlines()
        self.assertEqual(len(lines), 1, text)
        pattern = (
            r"^127\.0\.0\.1:\d+: GET " + re.escape(url) + r" << 200 OK 1\.8k \d+ms$"
        )
        self.assertRegex(lines[0], pattern)

    async def test_one_line_per_flow_on_keep_alive(self):
        """Two requests on one connection print two lines."""
        out = StringIO()
        proxy = await start_proxy(self, Dumper(outfile=out), read_timeout=2.0)
        server = await RawServer.start(self, handler)
        result = await curl(self, "-x", proxy.url, server.url("/a"), "-o", "/dev/null", server.url("/b"))
        self.assertEqual(result.code, 0, result.stderr)
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 2, out.getvalue())
        self.assertIn("GET " + server.url("/a"), lines[0])
        self.assertIn("GET " + server.url("/b"), lines[1])

    async def test_detail_zero_silent(self):
        """flow_detail=0 prints nothing."""
        text, _ = await self._dump(0)
        self.assertEqual(text, "")

    async def test_detail_two_headers(self):
        """flow_detail=2 adds the request and response headers, but no bodies."""
        text, _ = await self._dump(2)
        self.assertIn("X-Client-Header: here", text)
        self.assertIn("X-Server-Header: present", text)
        self.assertNotIn("the response body", text)

    async def test_detail_three_bodies(self):
        """flow_detail=3 adds the bodies too."""
        text, _ = await self._dump(3, "--data", "posted=data")
        self.assertIn("X-Server-Header: present", text)
        self.assertIn("the response body", text)
        self.assertIn("posted=data", text)

    async def test_error_line(self):
        """A failed flow prints one line with its error."""
        out = StringIO()
        proxy = await start_proxy(self, Dumper(outfile=out), read_timeout=2.0, connect_timeout=2.0)
        port = await unused_port()
        result = await curl(self, "-x", proxy.url, f"http://127.0.0.1:{port}/gone")
        self.assertEqual(result.status, 502)
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 1, out.getvalue())
        self.assertRegex(
            lines[0], r"^127\.0\.0\.1:\d+: GET http://127\.0\.0\.1:%d/gone << error: .+" % port
        )

    async def test_bomb_at_detail_three(self):
        """
        -vv with no addon: the dumper decodes the body for its preview; a
        body decoding past max_decoded_size prints a note, in bounded memory.
        """
        out = StringIO()
        proxy = await start_proxy(self, Dumper(outfile=out), flow_detail=3,
                                  max_decoded_size="1m", read_timeout=2.0)
        body = bomb("gzip")
        server = await RawServer.start(self, bomb_server(body, "gzip"))
        with MemoryGrowth() as growth:
            result = await curl(self, "-x", proxy.url, server.url("/bomb"))
        self.assertEqual(result.body, body)
        await proxy.stop()
        text = out.getvalue()
        size = human_size(len(body))
        self.assertIn(f"<< 200 OK {size}", text)
        self.assertIn(f"(body too large to decode: gzip content of {size} decodes to more than "
                      "1.0m; max_decoded_size)", text)
        growth.check(self)

    async def test_detail_two_request_then_response(self):
        """
        flow_detail=2 prints, as mitmdump does, the request line and its
        headers, then the response line (<< status) and its headers.
        """
        text, url = await self._dump(2)
        lines = text.splitlines()
        self.assertRegex(lines[0], r"^127\.0\.0\.1:\d+: GET " + re.escape(url) + "$")
        response = next(i for i, line in enumerate(lines) if line.startswith(" << "))
        self.assertRegex(lines[response], r"^ << 200 OK 1\.8k \d+ms$")
        self.assertIn("    X-Client-Header: here", lines[1:response])
        self.assertIn("    X-Server-Header: present", lines[response + 1:])
        self.assertNotIn("    X-Server-Header: present", lines[:response])


class ErrorOnceTests(unittest.TestCase):
    """
    An error prints one line on the terminal (the dumper's), not also a log
    line (twice before; three times in SOCKS5 mode, where the eager
    connection failed too).
    """

    timeout = 15

    async def _terminal(self, **options):
        self.out = StringIO()
        return await start_proxy(self, TermLog(outfile=self.out), Dumper(outfile=self.out),
                                 connect_timeout=2.0, read_timeout=2.0, **options)

    async def _the_line(self, proxy, needle):
        """The one line (once the proxy has stopped) that has C{needle}."""
        await proxy.stop()
        text = self.out.getvalue()
        lines = [line for line in text.splitlines() if needle in line]
        self.assertEqual(len(lines), 1, text)
        return lines[0]

    async def test_regular(self):
        proxy = await self._terminal()
        port = await unused_port()
        result = await curl(self, "-x", proxy.url, f"http://127.0.0.1:{port}/gone")
        self.assertEqual(result.status, 502)
        line = await self._the_line(proxy, "refused")
        self.assertIn(f"GET http://127.0.0.1:{port}/gone << error: Cannot connect", line)

    async def test_socks5(self):
        proxy = await self._terminal(mode="socks5")
        port = await unused_port()
        result = await curl(self, "--socks5-hostname", f"127.0.0.1:{proxy.port_number}",
                            f"http://127.0.0.1:{port}/gone")
        self.assertEqual(result.status, 502)
        line = await self._the_line(proxy, "refused")
        self.assertIn(f"GET http://127.0.0.1:{port}/gone << error: Cannot connect", line)

    async def test_invalid_request_body(self):
        """A request whose chunked body is invalid fails its flow: the flow's line only."""
        proxy = await self._terminal()
        server = await RawServer.start(self, handler)
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nTransfer-Encoding: chunked\r\n"
                    b"\r\nZZZ\r\n" % (server.url("/up").encode(), server.port))
        await client.wait_closed()
        line = await self._the_line(proxy, "chunk size")
        self.assertRegex(line, r"^127\.0\.0\.1:\d+: POST http://127\.0\.0\.1:\d+/up << error: "
                               r"client sent an invalid request: ")

    async def test_invalid_first_request(self):
        """A malformed request that no flow carries is logged, once."""
        proxy = await self._terminal()
        client = await RawClient.connect(self, proxy.port_number)
        client.send(b"GARBAGE\r\n\r\n")
        await client.wait_closed()
        line = await self._the_line(proxy, "400 Bad Request")
        self.assertRegex(line, r"^\('127\.0\.0\.1', \d+\): 400 Bad Request: ")

    async def test_tcp(self):
        """A raw TCP connection that cannot be made: 'Error in TCP connection to ...', once."""
        proxy = await self._terminal(tcp_hosts=["127.0.0.1"])
        port = await unused_port()
        client = await connect_tunnel(self, proxy.port_number, port)
        await client.wait_closed()
        line = await self._the_line(proxy, "refused")
        self.assertTrue(line.startswith(f"Error in TCP connection to 127.0.0.1:{port}: "
                                        f"Cannot connect to 127.0.0.1:{port}: "), line)

    async def test_websocket(self):
        """A WebSocket server that drops the connection: one error line."""
        proxy = await self._terminal()
        server = await start_websocket_server(self)
        client = await connect_websocket(self, server.url("/ws"), proxy=proxy)
        (await server.next_connection()).drop()
        await client.wait_closed()
        line = await self._the_line(proxy, "without a close frame")
        self.assertTrue(line.startswith(f"Error in WebSocket connection to 127.0.0.1:"
                                        f"{server.port}: the server closed"), line)


class MessageLinesTests(unittest.TestCase):
    """
    At the default detail, WebSocket messages and closes and raw TCP
    messages print a line each, as mitmdump does; -q prints none and leaves
    the message events unhandled.
    """

    timeout = 15

    async def test_websocket_messages_and_close(self):
        out = StringIO()
        proxy = await start_proxy(self, Dumper(outfile=out))
        server = await start_websocket_server(self)
        client = await connect_websocket(self, server.url("/chat"), proxy=proxy)
        client.send_text("hello")
        self.assertEqual((await client.next_message()).payload, b"hello")
        await client.close(1000, "bye")
        await proxy.stop()
        lines = out.getvalue().splitlines()
        self.assertRegex(lines[0], r"^127\.0\.0\.1:\d+: GET http://127\.0\.0\.1:\d+/chat "
                                   r"<< 101 Switching Protocols")
        client_address = lines[0].split(": ")[0]
        server = f"127.0.0.1:{server.port}/chat"
        self.assertEqual(lines[1:], [
            f"{client_address} -> WebSocket text message -> {server}",
            f"{client_address} <- WebSocket text message <- {server}",
            "WebSocket connection closed by client: 1000 bye",
        ])

    async def test_websocket_contents_at_detail_three(self):
        out = StringIO()
        proxy = await start_proxy(self, Dumper(outfile=out), flow_detail=3)
        server = await start_websocket_server(self)
        client = await connect_websocket(self, server.url("/"), proxy=proxy)
        client.send_binary(b"\x1bbinary payload")
        await client.next_message()
        await client.close()
        await proxy.stop()
        text = out.getvalue()
        self.assertIn("-> WebSocket binary message ->", text)
        self.assertIn("\n\n    \\x1bbinary payload\n", text)

    async def test_tcp_messages(self):
        out = StringIO()
        proxy = await start_proxy(self, Dumper(outfile=out), tcp_hosts=["127.0.0.1"])
        server = await echo_once(self, proxy.port_number, b"ping")
        await proxy.stop()
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 2, lines)
        self.assertRegex(lines[0], r"^127\.0\.0\.1:\d+ -> tcp -> 127\.0\.0\.1:%d$" % server.port)
        self.assertRegex(lines[1], r"^127\.0\.0\.1:\d+ <- tcp <- 127\.0\.0\.1:%d$" % server.port)

    async def test_quiet_handles_no_message_events(self):
        """
        flow_detail=0: the message printer is not in the chain (raw TCP keeps
        its direct relay, WebSocket messages skip the hooks); back at 1 it is.
        """
        out = StringIO()
        proxy = await start_proxy(self, Dumper(outfile=out), flow_detail=0)
        addons = proxy.master.addons
        for event in ("websocket_message", "websocket_end", "tcp_message", "tcp_error"):
            self.assertFalse(addons.has_hooks(event), event)
        proxy.master.options.update(flow_detail=1)
        self.assertTrue(addons.has_hooks("tcp_message"))
        proxy.master.options.update(flow_detail=0)
        self.assertFalse(addons.has_hooks("tcp_message"))


class Http2LineTests(_Base):
    """
    An HTTP/2 flow says so: the version follows the URL and the << (h2
    flows looked like HTTP/1 before).
    """

    skip = CURL_SKIP

    async def test_h2_version_shown(self):
        out = StringIO()
        proxy = await self.proxy(Dumper(outfile=out))
        server = await self.h2_server(path_handler)
        url = f"https://127.0.0.1:{server.port}/one"
        result = await curl(self, "--http2", "-x", proxy.url, "--cacert", proxy_ca_path(proxy),
                            url, timeout=8)
        self.assertEqual(result.code, 0, result.stderr)
        await proxy.stop()
        self.assertRegex(out.getvalue(), r"^127\.0\.0\.1:\d+: GET " + re.escape(url) +
                         r" HTTP/2\.0 << HTTP/2\.0 200 OK 6b \d+ms\n$")
