"""
Edge cases of the flow model (interceptor.http, interceptor.encoding,
interceptor.flow), the dumper's output and the twistd command line, checked
against README.md, docs/design.md and mitmproxy's documented behaviour.
"""

from __future__ import annotations

import io

from twisted.python import usage
from twisted.trial import unittest

from addons.dumper import Dumper, human_size
from interceptor.core import tap
from interceptor.model.connection import ClientConnection
from interceptor.model.flow import Error, HTTPFlow
from interceptor.model.http import Headers, Request, Response


def _request(path="/", headers=(), body=b"", method="GET", scheme="http", host="example.com",
             port=80, version="HTTP/1.1", authority=""):
    return Request(method, scheme, host, port, path, version, Headers(list(headers)), body,
                   authority, 1000.0, 1000.5)


def _response(status=200, headers=(), body=b"", reason="OK"):
    return Response("HTTP/1.1", status, reason, Headers(list(headers)), body, 1000.5, 1001.0)


def _flow(request=None, response=None):
    flow = HTTPFlow(ClientConnection(("127.0.0.1", 50000)), None, request or _request())
    flow.response = response
    return flow


# ---------------------------------------------------------------------------
# Headers
# ---------------------------------------------------------------------------


class HeadersProbeTests(unittest.TestCase):
    def test_delete_header_appearing_several_times(self):
        """del removes every field of that name, whatever its case, and keeps the others' order."""
        h = Headers([(b"A", b"1"), (b"B", b"2"), (b"a", b"3"), (b"b", b"4"), (b"A", b"5")])
        del h["a"]
        self.assertEqual(h.fields, [(b"B", b"2"), (b"b", b"4")])
        self.assertEqual(h.get_all("B"), ["2", "4"])
        self.assertNotIn("a", h)

    def test_str_and_bytes_access_and_in(self):
        """str keys give str, bytes keys give bytes; `in` works for both and any case."""
        h = Headers([(b"Content-Type", b"text/html")])
        self.assertEqual(h["content-type"], "text/html")
        self.assertEqual(h[b"CONTENT-TYPE"], b"text/html")
        self.assertIn(b"content-TYPE", h)
        self.assertIn("Content-type", h)
        self.assertNotIn(1, h)

    def test_empty_value(self):
        """An empty header value is present and reads as ''."""
        h = Headers([(b"X-Empty", b"")])
        self.assertIn("x-empty", h)
        self.assertEqual(h["X-Empty"], "")
        self.assertEqual(h.get("x-empty", "default"), "")

    def test_non_utf8_values_round_trip(self):
        """Non-UTF-8 header bytes survive a str read and write (surrogateescape)."""
        h = Headers([(b"X", b"\xff\xfe")])
        h["X"] = h["X"]
        self.assertEqual(h.fields, [(b"X", b"\xff\xfe")])

    def test_set_all_and_items_multi(self):
        """set_all keeps positions, items(multi=True) lists every field in order."""
        h = Headers([(b"Set-Cookie", b"a=1"), (b"X", b"y"), (b"set-cookie", b"b=2")])
        h.set_all("set-cookie", ["c=3", "d=4", "e=5"])
        self.assertEqual(
            h.items(multi=True),
            [("Set-Cookie", "c=3"), ("X", "y"), ("set-cookie", "d=4"), ("Set-Cookie", "e=5")],
        )

    def test_index_not_stale_after_remove_and_append(self):
        """
        The Headers docstring promises that appends and deletions made
        directly on C{fields} are detected.  A deletion followed by an append
        (same length) must not make lookups return another header's value.
        """
        h = Headers([(b"A", b"1"), (b"B", b"2")])
        self.assertEqual(h["a"], "1")  # builds the index
        h.fields.remove((b"A", b"1"))
        h.fields.append((b"C", b"3"))
        self.assertIsNone(h.get("a"))
        self.assertEqual(h.get("b"), "2")
        self.assertEqual(h.get("c"), "3")


# ---------------------------------------------------------------------------
# Request: url, host, query
# ---------------------------------------------------------------------------


class RequestUrlProbeTests(unittest.TestCase):
    def test_url_ipv6_and_default_ports(self):
        """IPv6 hosts are bracketed; default ports are left out of url and pretty_url."""
        self.assertEqual(Request.make("GET", "http://[::1]:8080/p").url, "http://[::1]:8080/p")
        self.assertEqual(Request.make("GET", "http://[::1]/p").url, "http://[::1]/p")
        self.assertEqual(Request.make("GET", "https://example.com:443/").url, "https://example.com/")
        r = _request("/p", [(b"Host", b"[::1]:8080")], host="::1", port=8080)
        self.assertEqual(r.pretty_url, "http://[::1]:8080/p")
        r = _request("/p", [(b"Host", b"example.com:80")])
        self.assertEqual(r.pretty_url, "http://example.com/p")

    def test_url_setter_changes_scheme_port_and_host_header(self):
        """Setting url with another scheme re-targets everything and fixes the Host header."""
        r = Request.make("GET", "http://example.com/a", headers={"Host": "example.com"})
        r.url = "https://example.com/b?c=d"
        self.assertEqual((r.scheme, r.host, r.port, r.path), ("https", "example.com", 443, "/b?c=d"))
        self.assertEqual(r.headers["Host"], "example.com")
        r.url = "http://other.org:8080/"
        self.assertEqual(r.headers["Host"], "other.org:8080")
        self.assertEqual(r.url, "http://other.org:8080/")

    def test_host_setter_updates_host_header_like_mitmproxy(self):
        """mitmproxy: setting host also updates the Host header and authority, if present."""
        r = _request("/", [(b"Host", b"example.com")], port=8080)
        r.host = "other.org"
        self.assertEqual(r.headers["host"], "other.org:8080")
        r = _request("/", [], authority="example.com:80")
        r.host = "other.org"
        self.assertEqual(r.authority, "other.org")
        self.assertNotIn("host", r.headers)

    def test_query_multi_and_order(self):
        """query keeps repeated keys, empty values and order; assignment keeps order."""
        r = _request("/a?x=1&y=&x=2")
        self.assertEqual(r.query.fields, (("x", "1"), ("y", ""), ("x", "2")))
        self.assertEqual(r.query.get_all("x"), ["1", "2"])
        r.query["y"] = "3"
        self.assertEqual(r.path, "/a?x=1&y=3&x=2")
        r.query = [("b", "1"), ("a", "2"), ("b", "3")]
        self.assertEqual(r.path, "/a?b=1&a=2&b=3")
        del r.query["b"]
        self.assertEqual(r.path, "/a?a=2")
        r.query.clear()
        self.assertEqual(r.path, "/a")

    def test_query_non_ascii_and_invalid_percent(self):
        """Non-ASCII values round-trip; invalid percent-encoding does not raise."""
        r = _request("/a?q=caf%C3%A9&bad=%zz&raw=%e9")
        self.assertEqual(r.query["q"], "café")
        self.assertEqual(r.query["bad"], "%zz")
        r.query["q"] = "naïve +"
        self.assertEqual(r.query["q"], "naïve +")
        self.assertEqual(r.query["raw"].encode("utf-8", "surrogateescape"), b"\xe9")

    def test_query_write_keeps_fragment_and_bare_keys(self):
        r = _request("/a?flag&x=1#frag")
        r.query["x"] = "2"
        self.assertEqual(r.path, "/a?flag&x=2#frag")


# ---------------------------------------------------------------------------
# Cookies and forms
# ---------------------------------------------------------------------------


class CookieProbeTests(unittest.TestCase):
    def test_request_cookie_quoted_value_with_semicolon(self):
        """
        mitmproxy's Cookie parser (net/http/cookies._read_value) reads a
        quoted value as one value, so C{a="x;y"; b=2} is two cookies.
        """
        r = _request("/", [(b"Cookie", b'a="x;y"; b=2')])
        self.assertEqual(list(r.cookies.keys()), ["a", "b"])
        self.assertIn("x;y", r.cookies["a"])

    def test_request_cookie_value_with_separator_round_trips(self):
        """
        A value that needs quoting (contains ';' or a space) must read back the
        same after being written: mitmproxy quotes such values when formatting
        the Cookie header.
        """
        r = _request("/")
        r.cookies["session"] = "x;y z"
        r.cookies["other"] = "2"
        self.assertEqual(r.cookies.fields[-1], ("other", "2"))
        self.assertEqual(len(r.cookies.fields), 2, r.headers.fields)
        self.assertIn("x;y z", r.cookies["session"])

    def test_request_cookies_read_and_write(self):
        """Several Cookie headers are read; a write produces one header."""
        r = _request("/", [(b"Cookie", b"a=1; b=2"), (b"cookie", b"a=3")])
        self.assertEqual(r.cookies.get_all("a"), ["1", "3"])
        r.cookies["c"] = "4"
        self.assertEqual(r.headers.get_all("cookie"), ["a=1; b=2; a=3; c=4"])
        r.cookies = {}
        self.assertNotIn("cookie", r.headers)

    def test_response_cookie_attributes_are_a_mapping(self):
        """
        mitmproxy: Response.cookies maps a name to (value, attrs), attrs
        being a MultiDict of the attributes, so attrs["Path"] works.
        """
        line = b"sid=abc; Path=/; HttpOnly; Expires=Wed, 21 Oct 2015 07:28:00 GMT"
        resp = _response(headers=[(b"Set-Cookie", line)])
        value, attrs = resp.cookies["sid"]
        self.assertEqual(value, "abc")
        self.assertEqual(attrs["Path"], "/")
        self.assertEqual(attrs["Expires"], "Wed, 21 Oct 2015 07:28:00 GMT")

    def test_response_cookies_parsed_with_attributes(self):
        resp = _response(headers=[(b"Set-Cookie", b"sid=abc; Path=/; HttpOnly"),
                                  (b"Set-Cookie", b"x=1")])
        self.assertEqual(resp.cookies["sid"][0], "abc")
        self.assertIn(("HttpOnly", None), list(resp.cookies["sid"][1]))
        self.assertEqual(resp.cookies["x"][0], "1")

    def test_urlencoded_form(self):
        r = _request("/", [(b"Content-Type", b"application/x-www-form-urlencoded")],
                     b"a=1&b=%C3%A9&a=2", method="POST")
        self.assertEqual(r.urlencoded_form.get_all("a"), ["1", "2"])
        self.assertEqual(r.urlencoded_form["b"], "é")
        r2 = _request("/", [], b"", method="POST")
        r2.urlencoded_form = {"k": "v w"}
        self.assertEqual(r2.content, b"k=v+w")
        self.assertEqual(r2.headers["content-type"], "application/x-www-form-urlencoded")
        self.assertEqual(r2.headers["content-length"], "5")


# ---------------------------------------------------------------------------
# Bodies, encodings, text
# ---------------------------------------------------------------------------


class BodyProbeTests(unittest.TestCase):
    def test_each_encoding_round_trips_and_fixes_length(self):
        for ce in ("gzip", "GZIP", "x-gzip", "deflate", "br", "zstd", "gzip, br"):
            r = Response.make(200, b"", {"Content-Encoding": ce})
            r.content = b"hello world" * 10
            self.assertEqual(r.content, b"hello world" * 10, ce)
            self.assertNotEqual(r.raw_content, b"hello world" * 10, ce)
            self.assertEqual(r.headers["content-length"], str(len(r.raw_content)), ce)

    def test_unknown_encoding_left_raw(self):
        r = _response(headers=[(b"Content-Encoding", b"compress")], body=b"raw")
        self.assertEqual(r.get_content(strict=False), b"raw")
        self.assertEqual(r.raw_content, b"raw")

    def test_text_html_meta_charset(self):
        """
        mitmproxy (Message._guess_encoding) reads the charset from an HTML
        <meta> tag when Content-Type has none.
        """
        r = Response.make(200, b'<html><meta charset="windows-1252"><p>\x80</p></html>',
                          {"Content-Type": "text/html"})
        self.assertIn("\u20ac", r.text)

    def test_text_json_is_utf8(self):
        r = Response.make(200, '{"a": "é"}'.encode(), {"Content-Type": "application/json"})
        self.assertEqual(r.text, '{"a": "é"}')

    def test_text_setter_uses_charset(self):
        r = Response.make(200, b"", {"Content-Type": "text/plain; charset=iso-8859-1"})
        r.text = "é"
        self.assertEqual(r.raw_content, b"\xe9")
        self.assertEqual(r.headers["content-length"], "1")

    def test_response_make_variants(self):
        """make accepts dict/list/Headers and str/bytes content and sets Content-Length."""
        r = Response.make(404, "nope", [("X", "1"), (b"Y", b"2")])
        self.assertEqual((r.status_code, r.reason, r.content), (404, "Not Found", b"nope"))
        self.assertEqual(r.headers["content-length"], "4")
        r = Response.make(200, b"abc", Headers([(b"Content-Length", b"99")]))
        self.assertEqual(r.headers.get_all("content-length"), ["3"])
        r = Response.make()
        self.assertEqual((r.status_code, r.content, r.headers["content-length"]), (200, b"", "0"))


# ---------------------------------------------------------------------------
# Flow
# ---------------------------------------------------------------------------


class FlowProbeTests(unittest.TestCase):
    def test_kill_and_id(self):
        f = _flow()
        self.assertEqual(f.id, f.id)
        self.assertNotEqual(f.id, _flow().id)
        self.assertTrue(f.killable)
        f.kill()
        self.assertFalse(f.killable)
        self.assertEqual(f.error.msg, Error.KILLED_MESSAGE)
        f.metadata["k"] = 1
        self.assertEqual(f.metadata, {"k": 1})

    def test_flow_mitmproxy_attributes(self):
        """marked, comment, is_replay, intercepted, live and timestamp_start, as mitmproxy has them."""
        f = _flow()
        self.assertEqual((f.marked, f.comment, f.is_replay, f.intercepted, f.live), ("", "", None, False, True))
        self.assertEqual(f.timestamp_start, f.request.timestamp_start)
        f.marked = ":star:"
        self.assertEqual(f.marked, ":star:")

    def test_flow_copy(self):
        """copy() is a deep copy with a new id, not live; changing it leaves the original alone."""
        f = _flow()
        f.metadata["k"] = [1]
        c = f.copy()
        self.assertNotEqual(c.id, f.id)
        self.assertFalse(c.live)
        self.assertTrue(f.live)
        c.request.headers["X-Copy"] = "1"
        c.metadata["k"].append(2)
        self.assertNotIn("X-Copy", f.request.headers)
        self.assertEqual(f.metadata["k"], [1])

    def test_json(self):
        """json() parses the decoded body; no body is a ValueError."""
        r = _request("/", [(b"Content-Type", b"application/json")], b'{"a": [1, "\xc3\xa9"]}')
        self.assertEqual(r.json(), {"a": [1, "\u00e9"]})
        self.assertRaises(ValueError, _request("/", [], b"not json").json)

    def test_multipart_form_read(self):
        """multipart_form reads fields and file parts as bytes, in order, repeated names kept."""
        body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
                b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\n"
                b"Content-Type: text/plain\r\n\r\nfile body\r\n"
                b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n2\r\n--XyZ--\r\n")
        r = _request("/", [(b"Content-Type", b"multipart/form-data; boundary=XyZ")], body, method="POST")
        self.assertEqual(list(r.multipart_form.fields), [(b"a", b"1"), (b"f", b"file body"), (b"a", b"2")])
        self.assertEqual(r.multipart_form.get_all(b"a"), [b"1", b"2"])
        self.assertEqual(list(_request("/", [], b"x=1").multipart_form.fields), [])

    def test_multipart_form_write(self):
        """Setting multipart_form writes a body that reads back the same, with a new boundary."""
        r = _request("/", [], b"", method="POST")
        r.multipart_form = [(b"a", b"1"), (b"b", b"two\r\nlines")]
        self.assertTrue(r.headers["content-type"].startswith("multipart/form-data; boundary="))
        self.assertEqual(list(r.multipart_form.fields), [(b"a", b"1"), (b"b", b"two\r\nlines")])
        r.multipart_form[b"c"] = b"3"
        self.assertEqual(r.multipart_form[b"c"], b"3")
        self.assertEqual(r.headers["content-length"], str(len(r.raw_content)))

    def test_text_css_charset(self):
        """A CSS @charset is read when Content-Type has none; gbk is read as gb18030."""
        r = Response.make(200, b'@charset "iso-8859-1"; a { content: "\xe9" }', {"Content-Type": "text/css"})
        self.assertIn("\u00e9", r.text)
        r = Response.make(200, "\u4e2d".encode("gbk"), {"Content-Type": "text/plain; charset=gbk"})
        self.assertEqual(r.text, "\u4e2d")


# ---------------------------------------------------------------------------
# Dumper
# ---------------------------------------------------------------------------


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


class DumperProbeTests(unittest.TestCase):
    def test_one_line(self):
        d = _dumper(1)
        d.response(_flow(response=_response(body=b"x" * 2000)))
        self.assertEqual(d.outfile.getvalue(),
                         "127.0.0.1:50000: GET http://example.com/ << 200 OK 2.0k 1000ms\n")

    def test_sizes(self):
        self.assertEqual([human_size(n) for n in (0, 1023, 1024, 1536, 1024**2)],
                         ["0b", "1023b", "1.0k", "1.5k", "1.0m"])

    def test_detail_zero_and_negative_silent(self):
        for detail in (0, -1):
            d = _dumper(detail)
            d.response(_flow(response=_response()))
            f = _flow()
            f.error = Error("boom")
            d.error(f)
            self.assertEqual(d.outfile.getvalue(), "")

    def test_killed_flow_line(self):
        d = _dumper(1)
        f = _flow()
        f.kill()
        d.error(f)
        self.assertIn("Connection killed", d.outfile.getvalue())

    def test_detail_three_truncates_big_bodies_detail_four_does_not(self):
        body = b"a" * 10000
        d = _dumper(3)
        d.response(_flow(response=_response(body=body)))
        text = d.outfile.getvalue()
        self.assertNotIn("a" * 4097, text)
        self.assertIn("more)", text)
        d = _dumper(4)
        d.response(_flow(response=_response(body=body)))
        self.assertIn("a" * 10000, d.outfile.getvalue())

    def test_non_utf8_header_on_strict_terminal(self):
        """
        A header with non-UTF-8 bytes (kept as surrogates in str) must not
        make the -v output fail on a normal UTF-8 stdout (errors="strict").
        """
        out = _StrictOut()
        d = _dumper(2, out)
        resp = _response(headers=[(b"X-Latin", b"caf\xe9")])
        d.response(_flow(response=resp))
        self.assertIn("X-Latin", out.value())

    def test_non_utf8_host_on_strict_terminal(self):
        """The one-line output of a request whose Host header is not UTF-8 must not fail."""
        out = _StrictOut()
        d = _dumper(1, out)
        d.response(_flow(_request("/", [(b"Host", b"caf\xe9.example")]), _response()))
        self.assertIn("<< 200 OK", out.value())

    def test_body_control_characters_escaped(self):
        """
        Bodies printed at -vv must not carry terminal control sequences
        (ESC, NUL...) to the terminal; mitmdump escapes control characters.
        """
        d = _dumper(3)
        d.response(_flow(response=_response(body=b"\x1b]0;pwned\x07\x1b[2Jhi\x00there")))
        text = d.outfile.getvalue()
        self.assertNotIn("\x1b", text)
        self.assertNotIn("\x00", text)
        self.assertNotIn("\x07", text)

    def test_binary_body_gzip_shown_decoded(self):
        import gzip
        d = _dumper(3)
        resp = _response(headers=[(b"Content-Encoding", b"gzip")], body=gzip.compress(b"plain text"))
        d.response(_flow(response=resp))
        self.assertIn("plain text", d.outfile.getvalue())


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def parse(*argv):
    config = tap.Options()
    config.parseOptions(list(argv))
    return config


class CommandLineProbeTests(unittest.TestCase):
    def test_flow_detail_levels(self):
        cases = {(): 1, ("-q",): 0, ("-v",): 2, ("-vv",): 3, ("-vvv",): 4, ("-vvvvv",): 4,
                 ("-vv", "--set", "flow_detail=1"): 1}
        for argv, detail in cases.items():
            self.assertEqual(parse(*argv)["master"].options.flow_detail, detail, argv)

    def test_bad_set_values_are_usage_errors(self):
        for spec in ("flow_detail=abc", "flow_detail=", "flow_detail", "termlog_verbosity=loud",
                     "http2=maybe", "nosuch=1"):
            self.assertRaises(usage.UsageError, parse, "--set", spec)

    def test_bad_size_options_are_usage_errors(self):
        """
        stream_large_bodies/body_size_limit take sizes ("1m"); a value that is
        not a size is silently treated as "no limit" by the layers
        (http1_framing._size_option), so it must be refused up front
        (mitmproxy raises OptionsError for an invalid size).
        """
        for spec in ("stream_large_bodies=1x", "body_size_limit=ten",
                     "websocket_history_size=lots"):
            self.assertRaises(usage.UsageError, parse, "--set", spec)

    def test_bad_host_regex_is_usage_error(self):
        """An invalid regex in ignore_hosts/allow_hosts/tcp_hosts is refused up front."""
        for spec in ("ignore_hosts=[", "tcp_hosts=(", "allow_hosts=*"):
            self.assertRaises(usage.UsageError, parse, "--set", spec)

    def test_bad_listen_is_usage_error(self):
        """A --listen that is not an endpoint string is a usage error, not a traceback at start."""
        self.assertRaises(usage.UsageError, parse, "--listen", "nonsense:1")
