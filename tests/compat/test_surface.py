# -*- test-case-name: tests.compat.test_surface -*-
"""
The library surface mitmproxy scripts import (issue #16, points 1, 6 and 9):
C{interceptor.http.HTTPFlow} and the 2.x aliases, C{interceptor.utils}
(strutils, human), C{interceptor.exceptions}, C{interceptor.version},
C{Message.replace}/C{Request.replace}, the connection aliases and
WebSocket C{ended}/C{inject_message}.

Each point has unit tests and a script in mitmproxy's style run through
C{twistd interceptor --addon} against loopback servers.
"""

from __future__ import annotations

import gzip
import json
import signal
from importlib import metadata

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial import unittest

from interceptor import exceptions, http, version
from interceptor.core.options import OptionsError, Options
from interceptor.io import FlowReader, FlowReadException
from interceptor.model.connection import ClientConnection, ServerConnection
from interceptor.testing import connect_websocket, start_websocket_server
from interceptor.utils import human, strutils
from tests.scriptfiles import write_script
from tests.e2e.peers import WebServer, curl, twistd_proxy, wait_until
from tests.e2e.tlspeers import HttpsServer, TestCA


async def stopped_output(transport: object, protocol: object) -> str:
    """
    Stop a twistd proxy (SIGTERM) and return everything it printed.
    """
    transport.signalProcess(signal.SIGTERM)  # type: ignore[attr-defined]
    await protocol.ended  # type: ignore[attr-defined]
    return protocol.output.decode(errors="replace")  # type: ignore[attr-defined]


def printed(output: str, marker: str) -> list[str]:
    """
    The lines of C{output} a script printed after C{marker}, without it.
    """
    return [line.split(marker, 1)[1].strip() for line in output.splitlines() if marker in line]


class HttpNamesTests(unittest.TestCase):
    """
    C{interceptor.http} has the names mitmproxy scripts annotate and build with.
    """

    def test_flow_and_aliases(self) -> None:
        """HTTPFlow is the model's; HTTPRequest/HTTPResponse are Request/Response."""
        from interceptor.model.flow import HTTPFlow

        self.assertIs(http.HTTPFlow, HTTPFlow)
        self.assertIs(http.HTTPRequest, http.Request)
        self.assertIs(http.HTTPResponse, http.Response)
        self.assertIn("HTTPFlow", http.__all__)


class StrutilsTests(unittest.TestCase):
    """
    C{interceptor.utils.strutils} behaves as mitmproxy's for what scripts use.
    """

    def test_always(self) -> None:
        """always_str/always_bytes convert one way, pass the other and None, refuse the rest."""
        self.assertEqual(strutils.always_str(b"caf\xc3\xa9"), "café")
        self.assertEqual(strutils.always_str(b"caf\xe9", "latin-1"), "café")
        self.assertEqual(strutils.always_str("x"), "x")
        self.assertIsNone(strutils.always_str(None))
        self.assertEqual(strutils.always_bytes("café"), b"caf\xc3\xa9")
        self.assertEqual(strutils.always_bytes("\udcff", "utf-8", "surrogateescape"), b"\xff")
        self.assertEqual(strutils.always_bytes(b"x"), b"x")
        self.assertIsNone(strutils.always_bytes(None))
        with self.assertRaisesRegex(TypeError, "always_str: expected str or bytes, got int"):
            strutils.always_str(1)  # type: ignore[call-overload]
        with self.assertRaisesRegex(TypeError, "always_bytes: expected str or bytes, got list"):
            strutils.always_bytes([])  # type: ignore[call-overload]

    def test_bytes_to_escaped_str(self) -> None:
        """Printable ASCII stays, the rest is escaped as in a Python literal."""
        self.assertEqual(strutils.bytes_to_escaped_str(b"a\x00\n\xff'\"\\"), "a\\x00\\n\\xff'\"\\\\")
        self.assertEqual(strutils.bytes_to_escaped_str(b"a\tb\n", keep_spacing=True), "a\tb\n")
        self.assertEqual(strutils.bytes_to_escaped_str(b"'", escape_single_quotes=True), "\\'")
        with self.assertRaisesRegex(ValueError, "data must be bytes, not str"):
            strutils.bytes_to_escaped_str("text")  # type: ignore[arg-type]

    def test_escaped_str_to_bytes(self) -> None:
        """Escapes become bytes; non-ASCII is UTF-8; a bad escape names where it is."""
        self.assertEqual(strutils.escaped_str_to_bytes("\\x00ab\\n\\t\\\\\\101ü"), b"\x00ab\n\t\\A\xc3\xbc")
        self.assertEqual(strutils.escaped_str_to_bytes("\\q"), b"\\q")
        with self.assertRaisesRegex(ValueError, "x without two hex digits at position 2"):
            strutils.escaped_str_to_bytes("ab\\x4")
        with self.assertRaisesRegex(ValueError, "lone backslash"):
            strutils.escaped_str_to_bytes("ab\\")
        with self.assertRaisesRegex(ValueError, "data must be str, not bytes"):
            strutils.escaped_str_to_bytes(b"x")  # type: ignore[arg-type]

    @given(st.binary(max_size=200), st.booleans())
    def test_escape_round_trip(self, data: bytes, quotes: bool) -> None:
        """Whatever the bytes, escaping and unescaping gives them back."""
        escaped = strutils.bytes_to_escaped_str(data, escape_single_quotes=quotes)
        self.assertTrue(escaped.isascii() and escaped.isprintable())
        self.assertEqual(strutils.escaped_str_to_bytes(escaped), data)

    def test_text_or_binary(self) -> None:
        """is_mostly_bin tells text (ASCII, UTF-8) from binary; is_xml looks at the first character."""
        self.assertFalse(strutils.is_mostly_bin(b""))
        self.assertFalse(strutils.is_mostly_bin(b"hello world\n" * 20))
        self.assertFalse(strutils.is_mostly_bin("привет мир, как дела".encode() * 10))
        self.assertTrue(strutils.is_mostly_bin(bytes(range(255, -1, -1))))
        self.assertFalse(strutils.is_mostly_bin(bytes(range(256))))  # (73 of its first 100 are printable)
        self.assertTrue(strutils.is_mostly_bin(gzip.compress(b"hello" * 100)))
        self.assertTrue(strutils.is_xml(b"\r\n <root/>"))
        self.assertFalse(strutils.is_xml(b"{}"))

    def test_cleaning(self) -> None:
        """Control characters become dots, spacing kept unless asked."""
        self.assertEqual(strutils.escape_control_characters("a\x00b\nc\x7f"), "a.b\nc.")
        self.assertEqual(strutils.escape_control_characters("a\tb", keep_spacing=False), "a.b")
        self.assertEqual(strutils.clean_bin(b"a\x00b\n\xff"), b"a.b\n.")
        self.assertEqual(strutils.clean_bin(b"a\n", keep_spacing=False), b"a.")
        self.assertEqual(strutils.clean_bin("a\x00é\n"), "a.é\n")
        self.assertEqual(strutils.clean_hanging_newline("x\n"), "x")
        self.assertEqual(list(strutils.hexdump(b"AB\x00")),
                         [("0000000000", "41 42 00".ljust(47), "AB.")])
        with self.assertRaisesRegex(ValueError, "text must be str"):
            strutils.escape_control_characters(b"x")  # type: ignore[arg-type]


class HumanTests(unittest.TestCase):
    """
    C{interceptor.utils.human}: sizes, durations, times and addresses.
    """

    def test_sizes(self) -> None:
        """pretty_size keeps to five characters; parse_size reads suffixes."""
        self.assertEqual([human.pretty_size(n) for n in (0, 1023, 1536, 150 * 1024, 5 * 1024**4)],
                         ["0b", "1023b", "1.5k", "150k", "5.0t"])
        self.assertEqual(human.parse_size("10k"), 10240)
        self.assertEqual(human.parse_size("7"), 7)
        self.assertIsNone(human.parse_size(None))
        with self.assertRaisesRegex(ValueError, "not a size: '1x'"):
            human.parse_size("1x")

    def test_times_and_addresses(self) -> None:
        """Durations, local timestamps and (host, port) pairs as people read them."""
        self.assertEqual([human.pretty_duration(s) for s in (None, 0.25, 1.5, 12.34, 150)],
                         ["", "250ms", "1.50s", "12.3s", "150s"])
        self.assertRegex(human.format_timestamp(0), r"^19(69|70)-\d\d-\d\d \d\d:\d\d:\d\d$")
        self.assertRegex(human.format_timestamp_with_milli(0.25), r"\.250$")
        self.assertEqual(human.format_address(("::1", 80)), "[::1]:80")
        self.assertEqual(human.format_address(("::ffff:10.0.0.1", 80)), "10.0.0.1:80")
        self.assertEqual(human.format_address(("0.0.0.0", 80)), "*:80")
        self.assertEqual(human.format_address(("example.org", 443)), "example.org:443")


class ExceptionsTests(unittest.TestCase):
    """
    C{interceptor.exceptions} holds mitmproxy's names, and the classes
    interceptor raises.
    """

    def test_same_classes_as_raised(self) -> None:
        """What the options and the flow reader raise is caught by the exceptions module's names."""
        self.assertIs(exceptions.OptionsError, OptionsError)
        self.assertIs(exceptions.FlowReadException, FlowReadException)
        with self.assertRaises(exceptions.OptionsError):
            Options().update(nosuch_option=1)
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"not a flow file at all")
        with self.assertRaises(exceptions.FlowReadException):
            list(FlowReader(open(path, "rb")).stream())

    def test_hierarchy(self) -> None:
        """The 2.x and 12.x names exist, in mitmproxy's hierarchy, none shadowing a builtin."""
        self.assertIs(exceptions.MitmproxyException, exceptions.InterceptorException)
        self.assertTrue(issubclass(exceptions.TlsProtocolException, exceptions.ProtocolException))
        self.assertTrue(issubclass(exceptions.ProtocolException, exceptions.MitmproxyException))
        self.assertTrue(issubclass(exceptions.HttpReadDisconnect, exceptions.HttpException))
        self.assertTrue(issubclass(exceptions.HttpReadDisconnect, exceptions.Disconnect))
        self.assertTrue(issubclass(exceptions.HttpException, exceptions.NetlibException))
        for name in ("AddonHalt", "AddonManagerError", "ControlException"):
            self.assertTrue(issubclass(getattr(exceptions, name), exceptions.MitmproxyException), name)
        self.assertTrue(issubclass(exceptions.CommandError, Exception))
        self.assertEqual(exceptions.CommandError.__name__, "CommandError")
        self.assertFalse(hasattr(exceptions, "TypeError"))
        self.assertEqual(str(exceptions.ClientHandshakeException("refused", "example.org")), "refused")
        self.assertEqual(exceptions.ClientHandshakeException("refused", "example.org").server, "example.org")
        for name in exceptions.__all__:
            self.assertTrue(hasattr(exceptions, name), name)

    def test_command_error_is_the_command_managers(self) -> None:
        """The command manager's CommandError is the one the module exports."""
        from interceptor.core import commands

        self.assertIs(exceptions.CommandError, commands.CommandError)


class VersionTests(unittest.TestCase):
    """
    C{interceptor.version}.
    """

    def test_version(self) -> None:
        """VERSION is the installed distribution's; MITMPROXY names the proxy and it."""
        self.assertEqual(version.VERSION, metadata.version("interceptor"))
        self.assertRegex(version.VERSION, r"^\d+\.\d+")
        self.assertEqual(version.MITMPROXY, "interceptor " + version.VERSION)
        self.assertEqual(version.INTERCEPTOR, version.MITMPROXY)


class ReplaceTests(unittest.TestCase):
    """
    C{Message.replace} and C{Request.replace}, as mitmproxy 2.x's.
    """

    def test_body_and_headers(self) -> None:
        """A regex replaced in the body and each header line; the count is returned; length fixed."""
        response = http.Response.make(200, b"one two one", {"X-Num": "one", "Server": "none"})
        self.assertEqual(response.replace(rb"\bone\b", b"three"), 3)
        self.assertEqual(response.content, b"three two three")
        self.assertEqual(response.headers["x-num"], "three")
        self.assertEqual(response.headers["server"], "none")
        self.assertEqual(response.headers["content-length"], "15")

    def test_header_names_and_count(self) -> None:
        """Header names can change; count limits the body and the headers each; later headers stay."""
        response = http.Response.make(200, b"aaaa", {"X-A": "a", "X-B": "a"})
        self.assertEqual(response.replace("a", "b", count=1), 2)
        self.assertEqual(response.content, b"baaa")
        self.assertEqual(response.headers.fields[:2], [(b"X-A", b"b"), (b"X-B", b"a")])
        renamed = http.Response.make(200, b"", {"X-Old": "v"})
        self.assertEqual(renamed.replace("^X-Old: ", "X-New: "), 1)
        self.assertEqual(renamed.headers["x-new"], "v")
        self.assertNotIn("x-old", renamed.headers)

    def test_removing_the_separator_keeps_the_header(self) -> None:
        """A replacement that would remove a line's ': ' leaves that header as it was, uncounted."""
        response = http.Response.make(200, b"", {"X-A": "v"})
        self.assertEqual(response.replace(": ", ""), 0)
        self.assertEqual(response.headers["x-a"], "v")

    def test_escaped_strings_flags_and_encoding(self) -> None:
        """str arguments are unescaped to bytes; flags apply; a gzip body is decoded and re-encoded."""
        response = http.Response.make(200, b"A\x00b")
        response.encode("gzip")
        self.assertEqual(response.replace("a\\x00", "\\n", flags=__import__("re").IGNORECASE), 1)
        self.assertEqual(response.headers["content-encoding"], "gzip")
        self.assertEqual(gzip.decompress(response.raw_content or b""), b"\nb")
        self.assertEqual(response.content, b"\nb")

    def test_bad_escape(self) -> None:
        """A bad escape in a str pattern is a ValueError naming the pattern; nothing changes."""
        response = http.Response.make(200, b"abc")
        with self.assertRaisesRegex(ValueError, r"replace: bad pattern 'a\\\\x1'"):
            response.replace("a\\x1", "b")
        with self.assertRaisesRegex(TypeError, "repl must be str or bytes, not int"):
            response.replace("a", 1)  # type: ignore[arg-type]
        self.assertEqual(response.content, b"abc")

    def test_request_path(self) -> None:
        """Request.replace also replaces in the path and query."""
        request = http.Request.make("POST", "http://example.org/cat/x?pet=cat", b"cat", {"X-Pet": "cat"})
        self.assertEqual(request.replace("cat", "dog"), 4)
        self.assertEqual((request.path, request.content, request.headers["x-pet"]),
                         ("/dog/x?pet=dog", b"dog", "dog"))
        self.assertEqual(request.url, "http://example.org/dog/x?pet=dog")


class ConnectionAliasTests(unittest.TestCase):
    """
    The connection names of mitmproxy 2.x beside the current ones.
    """

    def test_connected_both_ways(self) -> None:
        """connected is a truth value and a call giving the same answer."""
        server = ServerConnection(("example.org", 80))
        self.assertFalse(server.connected)
        self.assertIs(server.connected(), False)
        server.timestamp_start = 1.0
        self.assertTrue(server.connected)
        self.assertIs(server.connected(), True)
        self.assertEqual(server.connected, True)
        self.assertEqual(repr(server.connected), "True")
        server.timestamp_end = 2.0
        self.assertEqual((bool(server.connected), server.connected()), (False, False))

    def test_aliases(self) -> None:
        """ssl_established, timestamp_ssl_setup and ip_address read and write the current names."""
        client = ClientConnection(("127.0.0.1", 5000))
        self.assertEqual((client.ssl_established, client.timestamp_ssl_setup), (False, None))
        client.ssl_established = True
        client.timestamp_ssl_setup = 3.0
        self.assertEqual((client.tls_established, client.timestamp_tls_setup), (True, 3.0))
        server = ServerConnection(("example.org", 80))
        self.assertIsNone(server.ip_address)
        server.peername = ("93.184.216.34", 80)
        self.assertEqual(server.ip_address, ("93.184.216.34", 80))
        server.ip_address = ("10.0.0.1", 80)
        self.assertEqual(server.peername, ("10.0.0.1", 80))


class WebSocketFlowTests(unittest.TestCase):
    """
    C{HTTPFlow.ended} and C{HTTPFlow.inject_message} without a connection.
    """

    def test_not_upgraded(self) -> None:
        """A flow that never upgraded has not ended, and refuses injection with a clear error."""
        flow = http.HTTPFlow(ClientConnection(("127.0.0.1", 1)), ServerConnection(("example.org", 80)),
                             http.Request.make("GET", "http://example.org/"))
        self.assertFalse(flow.ended)
        with self.assertRaisesRegex(ValueError, "has no live WebSocket connection"):
            flow.inject_message(flow.client_conn, "hi")
        with self.assertRaisesRegex(ValueError, "neither flow.client_conn nor flow.server_conn"):
            flow.inject_message(ClientConnection(("127.0.0.1", 2)), "hi")


HTTP_SCRIPT = """
    from interceptor import exceptions, http, version
    from interceptor.utils import human, strutils


    def request(flow: http.HTTPFlow) -> None:
        n = flow.request.replace("secret", "public")
        print("REQUEST", isinstance(flow, http.HTTPFlow), n)


    def response(flow: http.HTTPFlow) -> None:
        assert isinstance(flow.response, http.HTTPResponse)
        body = flow.response.content
        print("RESPONSE", strutils.bytes_to_escaped_str(body[:12]), strutils.is_mostly_bin(body),
              human.pretty_size(len(body)))
        flow.response.headers["x-proxy"] = strutils.always_str(version.MITMPROXY)
        print("CONN", flow.client_conn.connected(), bool(flow.server_conn.connected),
              flow.server_conn.ip_address, flow.client_conn.ssl_established)
        try:
            raise exceptions.TlsProtocolException("example")
        except exceptions.ProtocolException as e:
            print("CAUGHT", type(e).__name__)
"""


class HttpScriptTests(unittest.TestCase):
    """
    A mitmproxy-style script using the surface, through C{twistd interceptor --addon}.
    """

    timeout = 30

    async def test_script(self) -> None:
        """The script imports and runs: replace, strutils, human, version, connections, exceptions."""
        web = await WebServer.start(self)
        script = write_script(self, HTTP_SCRIPT)
        port, transport, protocol = await twistd_proxy(self, "--addon", script)
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", "-H", "X-Tag: secret",
                            "--data-binary", "a secret", web.url("/echo?q=secret"))
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)
        echoed = json.loads(result.body)
        self.assertEqual((echoed["uri"], echoed["body"]), ("/echo?q=public", "a public"))
        self.assertIn(["X-Tag", "public"], echoed["headers"])
        self.assertEqual(result.heads[-1].header(b"x-proxy"), b"interceptor " + version.VERSION.encode())
        output = await stopped_output(transport, protocol)
        self.assertEqual(printed(output, "REQUEST"), ["True 3"], output)
        self.assertEqual(printed(output, "RESPONSE"), ['{"method": " False ' + human.pretty_size(len(result.body))],
                         output)
        self.assertEqual(printed(output, "CONN"), [f"True True ('127.0.0.1', {web.port}) False"], output)
        self.assertEqual(printed(output, "CAUGHT"), ["TlsProtocolException"], output)


TLS_SCRIPT = """
    def response(flow):
        for side, conn in (("client", flow.client_conn), ("server", flow.server_conn)):
            print("TLS", side, conn.ssl_established, conn.tls_established,
                  conn.timestamp_ssl_setup is not None,
                  conn.timestamp_ssl_setup == conn.timestamp_tls_setup,
                  conn.timestamp_start <= conn.timestamp_tls_setup <= flow.request.timestamp_start)
"""


class TlsScriptTests(unittest.TestCase):
    """
    C{timestamp_tls_setup} / C{ssl_established} on both sides of an HTTPS flow.
    """

    timeout = 30

    async def test_tls_timestamps(self) -> None:
        """Both handshakes are recorded as done, with their times, before the request."""
        server = await HttpsServer.start(self, TestCA.shared())
        script = write_script(self, TLS_SCRIPT)
        port, transport, protocol = await twistd_proxy(
            self, "--set", "ssl_insecure=true", "--addon", script)
        result = await curl(self, "-k", "-x", f"http://127.0.0.1:{port}", server.url("/hello"))
        self.assertEqual((result.code, result.status), (0, 200), result.stderr)
        output = await stopped_output(transport, protocol)
        self.assertEqual(printed(output, "TLS"), ["client True True True True True",
                                                  "server True True True True True"], output)


WEBSOCKET_SCRIPT = """
    def websocket_message(flow):
        message = flow.messages[-1]
        print("MESSAGE", message.from_client, message.content, flow.ended)
        if message.from_client and message.content == b"ping":
            flow.inject_message(flow.client_conn, "pong from the script")
            flow.inject_message(flow.server_conn, b"\\x00binary")


    def websocket_end(flow):
        print("END", flow.ended)
"""


class WebSocketScriptTests(unittest.TestCase):
    """
    mitmproxy 2.x's C{inject_message(endpoint, payload)} and C{ended}.
    """

    timeout = 30

    async def test_inject_and_end(self) -> None:
        """A str goes to the client as TEXT, bytes to the server as BINARY; ended turns True."""
        server = await start_websocket_server(self, echo=True)
        script = write_script(self, WEBSOCKET_SCRIPT)
        port, transport, protocol = await twistd_proxy(self, "--addon", script)
        client = await connect_websocket(self, server.url("/"), proxy=("127.0.0.1", port))
        client.send_binary(b"ping")
        received = [await client.next_message() for _ in range(3)]
        self.assertEqual(sorted((m.payload, m.is_binary) for m in received),
                         [(b"\x00binary", True), (b"ping", True), (b"pong from the script", False)])
        client.close()
        await client.wait_closed()
        self.assertTrue(await wait_until(lambda: b"END" in protocol.output, 5))
        output = await stopped_output(transport, protocol)
        self.assertEqual(printed(output, "END"), ["True"], output)
        self.assertIn("True b'ping' False", printed(output, "MESSAGE"), output)
        self.assertIn("True b'\\x00binary' False", printed(output, "MESSAGE"), output)
