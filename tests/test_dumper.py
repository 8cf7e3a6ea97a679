# -*- test-case-name: tests.test_dumper -*-
"""
Tests for L{addons.dumper}: the lines and bodies it prints for flows at
each C{flow_detail} (C{tests.e2e.test_output} runs it in a proxy).
"""

from __future__ import annotations

import io

from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from addons.dumper import Dumper, _printable, human_size
from interceptor.model import encoding
from interceptor.model.flow import Error
from interceptor.model.headers import Headers
from tests.test_flow import http_flow
from tests.test_http import req, resp


class _StrictOut(io.TextIOWrapper):
    """A text file like a terminal's stdout: UTF-8, errors="strict"."""

    def __init__(self):
        super().__init__(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)

    def value(self):
        return self.buffer.getvalue().decode("utf-8")


def _dumper(detail, out=None):
    d = Dumper(outfile=out if out is not None else io.StringIO())
    d.flow_detail = detail
    return d


def _response(**kw):
    """A 200 answered from t=1000.5 to 1001.0 (so the flow took 1000 ms)."""
    return resp(timestamp_start=1000.5, timestamp_end=1001.0, **kw)


class DumperTests(SynchronousTestCase):
    """
    What the dumper writes for a flow.
    """

    def test_one_line(self):
        d = _dumper(1)
        d.response(http_flow(response=_response(content=b"x" * 2000)))
        self.assertEqual(d.outfile.getvalue(),
                         "127.0.0.1:50000: GET http://example.com/ << 200 OK 2.0k 1000ms\n")

    def test_sizes(self):
        self.assertEqual([human_size(n) for n in (0, 1023, 1024, 1536, 1024**2)],
                         ["0b", "1023b", "1.0k", "1.5k", "1.0m"])

    def test_detail_zero_and_negative_silent(self):
        for detail in (0, -1):
            d = _dumper(detail)
            d.response(http_flow(response=_response()))
            f = http_flow()
            f.error = Error("boom")
            d.error(f)
            self.assertEqual(d.outfile.getvalue(), "")

    def test_killed_flow_line(self):
        d = _dumper(1)
        f = http_flow()
        f.kill()
        d.error(f)
        self.assertIn("Connection killed", d.outfile.getvalue())

    def test_detail_three_truncates_big_bodies_detail_four_does_not(self):
        body = b"a" * 10000
        d = _dumper(3)
        d.response(http_flow(response=_response(content=body)))
        text = d.outfile.getvalue()
        self.assertNotIn("a" * 4097, text)
        self.assertIn("more)", text)
        d = _dumper(4)
        d.response(http_flow(response=_response(content=body)))
        self.assertIn("a" * 10000, d.outfile.getvalue())

    def test_non_utf8_header_on_strict_terminal(self):
        """
        A header with non-UTF-8 bytes (kept as surrogates in str) must not
        make the -v output fail on a normal UTF-8 stdout (errors="strict").
        """
        out = _StrictOut()
        d = _dumper(2, out)
        response = _response(headers=[(b"X-Latin", b"caf\xe9")])
        d.response(http_flow(response=response))
        self.assertIn("X-Latin", out.value())

    def test_non_utf8_host_on_strict_terminal(self):
        """The one-line output of a request whose Host header is not UTF-8 must not fail."""
        out = _StrictOut()
        d = _dumper(1, out)
        d.response(http_flow(req("/", [(b"Host", b"caf\xe9.example")]), _response()))
        self.assertIn("<< 200 OK", out.value())

    def test_body_control_characters_escaped(self):
        """
        Bodies printed at -vv must not carry terminal control sequences
        (ESC, NUL...) to the terminal; mitmdump escapes control characters.
        """
        d = _dumper(3)
        d.response(http_flow(response=_response(content=b"\x1b]0;pwned\x07\x1b[2Jhi\x00there")))
        text = d.outfile.getvalue()
        self.assertNotIn("\x1b", text)
        self.assertNotIn("\x00", text)
        self.assertNotIn("\x07", text)

    def test_binary_body_gzip_shown_decoded(self):
        import gzip
        d = _dumper(3)
        response = _response(headers=[(b"Content-Encoding", b"gzip")], content=gzip.compress(b"plain text"))
        d.response(http_flow(response=response))
        self.assertIn("plain text", d.outfile.getvalue())

    def test_body_too_large_to_decode(self):
        """
        At -vv a body that decodes to more than the cap prints a note, not
        the body (nor a MemoryError); the flow's line is there.
        """
        encoding.decode_cap.hold(self, 1 << 20)
        self.addCleanup(encoding.decode_cap.release, self)
        bomb = encoding.encode(bytes(10 << 20), "gzip")
        for detail in (3, 4):
            d = _dumper(detail)
            response = _response(headers=[(b"Content-Encoding", b"gzip")], content=bomb)
            d.response(http_flow(response=response))
            text = d.outfile.getvalue()
            self.assertIn("<< 200 OK 10.0k", text)
            self.assertIn("(body too large to decode: gzip content of 10.0k decodes to more "
                          "than 1.0m; max_decoded_size)", text)
            self.assertNotIn("\\x00", text)

    def test_http_versions(self):
        """
        The version follows the URL and the << unless both sides are the
        same HTTP/1.x (mitmdump's rule); an h2 flow no longer looks like HTTP/1.
        """
        cases = [
            ("HTTP/1.1", "HTTP/1.1", "GET http://example.com/ << 200 OK"),
            ("HTTP/1.0", "HTTP/1.0", "GET http://example.com/ << 200 OK"),
            ("HTTP/2.0", "HTTP/2.0", "GET http://example.com/ HTTP/2.0 << HTTP/2.0 200 OK"),
            ("HTTP/1.1", "HTTP/2.0", "GET http://example.com/ HTTP/1.1 << HTTP/2.0 200 OK"),
            ("HTTP/1.1", "HTTP/1.0", "GET http://example.com/ HTTP/1.1 << HTTP/1.0 200 OK"),
        ]
        for request_version, response_version, expected in cases:
            d = _dumper(1)
            response = _response()
            response.http_version = response_version
            d.response(http_flow(req("/", [], http_version=request_version), response))
            self.assertIn(": " + expected + " 0b", d.outfile.getvalue(), request_version)
        d = _dumper(1)
        f = http_flow(req("/", [], http_version="HTTP/2.0"))
        f.error = Error("boom")
        d.error(f)
        self.assertEqual(d.outfile.getvalue(),
                         "127.0.0.1:50000: GET http://example.com/ HTTP/2.0 << error: boom\n")

    def test_detail_two_request_block_then_response_block(self):
        """-v: request line, its headers and trailers; then << status and the response's."""
        d = _dumper(2)
        request = req("/", [(b"Host", b"example.com")], timestamp_start=1000.0)
        request.trailers = Headers([(b"X-Checksum", b"abc")])
        d.response(http_flow(request, _response(headers=[(b"Server", b"test")])))
        self.assertEqual(d.outfile.getvalue(), "\n".join([
            "127.0.0.1:50000: GET http://example.com/",
            "    Host: example.com",
            "    --- HTTP Trailers",
            "    X-Checksum: abc",
            " << 200 OK 0b 1000ms",
            "    Server: test",
        ]) + "\n")

    def test_detail_two_error(self):
        """-v with an error: the request block, then << error."""
        d = _dumper(2)
        f = http_flow(req("/", [(b"Host", b"example.com")]))
        f.error = Error("gone")
        d.error(f)
        self.assertEqual(d.outfile.getvalue(),
                         "127.0.0.1:50000: GET http://example.com/\n    Host: example.com\n"
                         " << error: gone\n")

    def test_to_log(self):
        """to_log (twistd without -n): each flow is one log event, not a write to stdout."""
        d = Dumper(to_log=True)
        with capturedLogs() as events:
            d.response(http_flow(response=_response()))
        [event] = events
        self.assertEqual(event["log_namespace"], "interceptor.dumper")
        self.assertEqual(formatEvent(event),
                         "127.0.0.1:50000: GET http://example.com/ << 200 OK 0b 1000ms")

    def test_lone_surrogate(self):
        _printable("caf\u00e9 \ud800 x")

    def test_surrogateescape(self):
        self.assertEqual(_printable("a\udcff\x1b"), "a\\xff\\x1b")
