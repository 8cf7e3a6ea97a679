# -*- test-case-name: tests.test_http -*-
"""
Tests for the HTTP messages of L{interceptor.model}: headers, multidict,
url, cookies, message bodies, Request and Response.
"""

from __future__ import annotations

import gzip
import time
import zlib
from http import HTTPStatus

import brotli
import zstandard
from twisted.trial.unittest import SynchronousTestCase

from interceptor.model import encoding
from interceptor.model.http import (
    Headers,
    MultiDictView,
    Request,
    Response,
    hostport,
    parse_authority,
    parse_url,
)
from interceptor.model.cookies import _cookie_pairs, _parse_set_cookie


def req(
    path: str = "/",
    headers: list[tuple[bytes, bytes]] | None = None,
    content: bytes | None = b"",
    *,
    method: str = "GET",
    scheme: str = "http",
    host: str = "example.com",
    port: int = 80,
    authority: str = "",
    http_version: str = "HTTP/1.1",
    timestamp_start: float | None = None,
    timestamp_end: float | None = None,
) -> Request:
    """Build a Request the way the wire parser would."""
    if headers is None:
        headers = [(b"Host", b"example.com")]
    return Request(
        method, scheme, host, port, path, http_version, Headers(headers), content, authority,
        timestamp_start, timestamp_end,
    )


def resp(
    headers: list[tuple[bytes, bytes]] | None = None,
    content: bytes | None = b"",
    *,
    timestamp_start: float | None = None,
    timestamp_end: float | None = None,
) -> Response:
    """Build a Response the way the wire parser would."""
    return Response(
        "HTTP/1.1", 200, "OK", Headers(headers if headers is not None else []), content,
        timestamp_start, timestamp_end,
    )


# ---------------------------------------------------------------------------
# Headers
# ---------------------------------------------------------------------------


class HeadersTests(SynchronousTestCase):
    """Headers: case-insensitive, ordered, multi-valued."""

    def setUp(self) -> None:
        """Create headers with a repeated field."""
        self.fields = [
            (b"Host", b"example.com"),
            (b"Accept", b"text/html"),
            (b"X-Multi", b"a"),
            (b"x-multi", b"b"),
            (b"Content-Length", b"0"),
        ]
        self.h = Headers(self.fields)

    def test_fields_kept_by_reference(self) -> None:
        """The list given to the constructor is used as-is, not copied."""
        self.assertIs(self.h.fields, self.fields)

    def test_tuple_fields_become_list(self) -> None:
        """A non-list iterable of fields is converted to a list."""
        h = Headers(((b"A", b"1"),))  # type: ignore[arg-type]
        self.assertEqual(h.fields, [(b"A", b"1")])
        h["B"] = "2"
        self.assertEqual(h["b"], "2")

    def test_case_insensitive_lookup(self) -> None:
        """Lookups ignore the case of the name."""
        self.assertEqual(self.h["host"], "example.com")
        self.assertEqual(self.h["HOST"], "example.com")
        self.assertIn("content-LENGTH", self.h)
        self.assertNotIn("cookie", self.h)

    def test_case_preserved_in_fields(self) -> None:
        """Field names keep the case they arrived with."""
        self.assertEqual(
            [n for n, _ in self.h.fields],
            [b"Host", b"Accept", b"X-Multi", b"x-multi", b"Content-Length"],
        )

    def test_str_vs_bytes_access(self) -> None:
        """A str key returns str, a bytes key returns bytes."""
        self.assertEqual(self.h["Host"], "example.com")
        self.assertEqual(self.h[b"Host"], b"example.com")
        self.assertEqual(self.h.get(b"host"), b"example.com")
        self.assertIn(b"HOST", self.h)

    def test_multi_values_joined(self) -> None:
        """Repeated fields are joined with ", " on get."""
        self.assertEqual(self.h["x-multi"], "a, b")
        self.assertEqual(self.h[b"X-MULTI"], b"a, b")

    def test_get_all(self) -> None:
        """get_all returns each value separately, str or bytes like the key."""
        self.assertEqual(self.h.get_all("X-Multi"), ["a", "b"])
        self.assertEqual(self.h.get_all(b"x-multi"), [b"a", b"b"])
        self.assertEqual(self.h.get_all("missing"), [])

    def test_get_default(self) -> None:
        """get returns the default for a missing name."""
        self.assertIsNone(self.h.get("missing"))
        self.assertEqual(self.h.get("missing", "d"), "d")

    def test_getitem_missing(self) -> None:
        """A missing name raises KeyError."""
        self.assertRaises(KeyError, lambda: self.h["missing"])

    def test_setitem_existing_keeps_position_and_case(self) -> None:
        """Setting an existing name replaces the value in place, keeping the name's case."""
        self.h["ACCEPT"] = "*/*"
        self.assertEqual(self.h.fields[1], (b"Accept", b"*/*"))
        self.assertEqual(len(self.h.fields), 5)

    def test_setitem_multi_collapses_at_first_position(self) -> None:
        """Setting a repeated name leaves a single field at the first occurrence."""
        self.h["x-multi"] = b"c"
        self.assertEqual(
            self.h.fields,
            [
                (b"Host", b"example.com"),
                (b"Accept", b"text/html"),
                (b"X-Multi", b"c"),
                (b"Content-Length", b"0"),
            ],
        )
        self.assertEqual(self.h.get_all("x-multi"), ["c"])

    def test_setitem_new_appends_with_given_case(self) -> None:
        """Setting a new name appends a field with the case given."""
        self.h["X-New"] = "v"
        self.assertEqual(self.h.fields[-1], (b"X-New", b"v"))
        self.assertEqual(self.h["x-new"], "v")

    def test_set_all(self) -> None:
        """set_all reuses positions, drops surplus fields and appends extra values."""
        self.h.set_all("x-multi", ["1", "2", "3"])
        self.assertEqual(
            self.h.fields[2:],
            [
                (b"X-Multi", b"1"),
                (b"x-multi", b"2"),
                (b"Content-Length", b"0"),
                (b"X-Multi", b"3"),
            ],
        )
        self.h.set_all(b"X-MULTI", [b"only"])
        self.assertEqual(self.h.get_all("x-multi"), ["only"])
        self.assertEqual(self.h.fields[2], (b"X-Multi", b"only"))
        self.h.set_all("x-multi", [])
        self.assertNotIn("x-multi", self.h)
        self.h.set_all("Set-Cookie", ["a=1", "b=2"])
        self.assertEqual(self.h.fields[-2:], [(b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2")])

    def test_add_and_insert(self) -> None:
        """add appends a field even if the name exists; insert puts one at an index."""
        self.h.add("accept", "text/plain")
        self.assertEqual(self.h.get_all("Accept"), ["text/html", "text/plain"])
        self.assertEqual(self.h.fields[-1], (b"accept", b"text/plain"))
        self.h.insert(0, b"Via", b"1.1 proxy")
        self.assertEqual(self.h.fields[0], (b"Via", b"1.1 proxy"))
        self.assertEqual(self.h["via"], "1.1 proxy")
        self.assertEqual(self.h["host"], "example.com")

    def test_delitem(self) -> None:
        """del removes every field of that name; a missing name raises KeyError."""
        del self.h["X-MULTI"]
        self.assertEqual([n for n, _ in self.h.fields], [b"Host", b"Accept", b"Content-Length"])
        self.assertEqual(self.h["content-length"], "0")

        def delete() -> None:
            del self.h["missing"]

        self.assertRaises(KeyError, delete)

    def test_len_and_iter(self) -> None:
        """len counts distinct names; iteration yields them in first-seen order and case."""
        self.assertEqual(len(self.h), 4)
        self.assertEqual(list(self.h), ["Host", "Accept", "X-Multi", "Content-Length"])
        self.assertEqual(self.h.keys(), ["Host", "Accept", "X-Multi", "Content-Length"])
        self.assertEqual(
            self.h.keys(multi=True), ["Host", "Accept", "X-Multi", "x-multi", "Content-Length"]
        )

    def test_items_and_values(self) -> None:
        """items/values join repeated names unless multi=True."""
        self.assertEqual(self.h.items()[2], ("X-Multi", "a, b"))
        self.assertEqual(self.h.items(multi=True)[2:4], [("X-Multi", "a"), ("x-multi", "b")])
        self.assertEqual(self.h.values(), ["example.com", "text/html", "a, b", "0"])

    def test_equality(self) -> None:
        """Headers compare equal by fields (names case-insensitively, order-sensitive)."""
        self.assertEqual(Headers([(b"A", b"1")]), Headers([(b"a", b"1")]))
        self.assertNotEqual(Headers([(b"A", b"1")]), Headers([(b"A", b"2")]))
        self.assertNotEqual(
            Headers([(b"A", b"1"), (b"B", b"2")]), Headers([(b"B", b"2"), (b"A", b"1")])
        )
        self.assertNotEqual(Headers(), {})

    def test_copy_independent(self) -> None:
        """copy() returns equal headers with their own field list."""
        c = self.h.copy()
        self.assertEqual(c, self.h)
        c["Host"] = "other"
        self.assertEqual(self.h["Host"], "example.com")

    def test_kwargs(self) -> None:
        """Keyword arguments become fields with underscores turned into dashes."""
        h = Headers(content_type="text/html", x_foo="bar")
        self.assertEqual(h.fields, [(b"content-type", b"text/html"), (b"x-foo", b"bar")])
        self.assertEqual(h["Content-Type"], "text/html")

    def test_to_bytes(self) -> None:
        """to_bytes serializes the fields in order with original case."""
        h = Headers([(b"Host", b"a"), (b"X-A", b"1"), (b"x-a", b"2")])
        self.assertEqual(h.to_bytes(), b"Host: a\r\nX-A: 1\r\nx-a: 2\r\n")
        self.assertEqual(bytes(h), h.to_bytes())
        self.assertEqual(Headers().to_bytes(), b"")

    def test_non_utf8_bytes_round_trip(self) -> None:
        """Values that are not UTF-8 survive a str round trip via surrogateescape."""
        h = Headers([(b"X-Bin", b"\xff\xfe")])
        value = h["x-bin"]
        h["x-bin"] = value
        self.assertEqual(h[b"x-bin"], b"\xff\xfe")

    def test_external_append_detected(self) -> None:
        """Fields appended directly to the list are visible to lookups."""
        self.assertNotIn("x-late", self.h)
        self.fields.append((b"X-Late", b"1"))
        self.assertEqual(self.h["x-late"], "1")

    def test_fields_assignment(self) -> None:
        """Assigning fields replaces the content and resets the index."""
        self.assertIn("host", self.h)
        self.h.fields = [(b"A", b"1")]
        self.assertNotIn("host", self.h)
        self.assertEqual(self.h["a"], "1")

    def test_mutable_mapping_helpers(self) -> None:
        """pop, setdefault, update and clear work like on a dict."""
        self.assertEqual(self.h.pop("accept"), "text/html")
        self.assertIsNone(self.h.pop("accept", None))
        self.assertEqual(self.h.setdefault("host", "x"), "example.com")
        self.h.update({"X-U": "1"})
        self.assertEqual(self.h["x-u"], "1")
        self.h.clear()
        self.assertEqual(len(self.h), 0)
        self.assertFalse(self.h)

    def test_repr(self) -> None:
        """repr shows the raw fields."""
        self.assertEqual(repr(Headers([(b"A", b"1")])), "Headers([(b'A', b'1')])")

    def test_no_instance_dict(self) -> None:
        """Headers and messages use __slots__ (no per-instance __dict__)."""
        self.assertFalse(hasattr(Headers(), "__dict__"))
        self.assertFalse(hasattr(req(), "__dict__"))
        self.assertFalse(hasattr(resp(), "__dict__"))

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

    def test_in_place_replace_last(self):
        h = Headers([(b"a", b"1"), (b"b", b"2")])
        self.assertEqual(h["b"], "2")
        h.fields[-1] = (b"c", b"3")
        self.assertEqual(h.get("c"), "3")
        self.assertIsNone(h.get("b"))

    def test_ops_keep_ilast(self):
        h = Headers([(b"a", b"1"), (b"b", b"2"), (b"b", b"3")])
        h.get("a")
        h["b"] = "9"   # multi-position set
        self.assertEqual(h.get_all("b"), ["9"])
        self.assertIs(h._ilast, h.fields[-1])
        h.insert(0, "z", "1")
        h.get("a")
        self.assertIs(h._ilast, h.fields[-1])
        del h["z"]
        h.get("a")
        self.assertIs(h._ilast, h.fields[-1])
        h.add("q", "1")
        self.assertIs(h._ilast, h.fields[-1])
        h.set_all("q", ["1", "2"])
        h.get("a")
        self.assertIs(h._ilast, h.fields[-1])
        before = h._index
        h.get("a")
        self.assertIs(h._index, before)


# ---------------------------------------------------------------------------
# MultiDictView
# ---------------------------------------------------------------------------


class MultiDictViewTests(SynchronousTestCase):
    """MultiDictView reads through a getter and writes through a setter."""

    def setUp(self) -> None:
        """Back a view by a plain list."""
        self.data: list[tuple[str, str]] = [("a", "1"), ("b", "2"), ("a", "3")]
        self.writes = 0

        def setter(pairs: list[tuple[str, str]]) -> None:
            self.writes += 1
            self.data = pairs

        self.view: MultiDictView[str, str] = MultiDictView(lambda: self.data, setter)

    def test_read(self) -> None:
        """[] returns the first value; get_all, keys, items, len and in behave like a multidict."""
        self.assertEqual(self.view["a"], "1")
        self.assertEqual(self.view.get_all("a"), ["1", "3"])
        self.assertEqual(self.view.get("zz", "d"), "d")
        self.assertEqual(self.view.keys(), ["a", "b"])
        self.assertEqual(list(self.view), ["a", "b"])
        self.assertEqual(self.view.items(), [("a", "1"), ("b", "2")])
        self.assertEqual(self.view.items(multi=True), self.data)
        self.assertEqual(len(self.view), 2)
        self.assertIn("b", self.view)
        self.assertNotIn("A", self.view)
        self.assertEqual(self.view.fields, (("a", "1"), ("b", "2"), ("a", "3")))

    def test_setitem_writes_back(self) -> None:
        """Setting a key collapses its values at the first position and calls the setter."""
        self.view["a"] = "x"
        self.assertEqual(self.data, [("a", "x"), ("b", "2")])
        self.assertEqual(self.writes, 1)

    def test_delitem_add_insert_set_all(self) -> None:
        """del, add, insert and set_all all write back."""
        del self.view["a"]
        self.assertEqual(self.data, [("b", "2")])
        self.view.add("c", "3")
        self.view.insert(0, "z", "0")
        self.assertEqual(self.data, [("z", "0"), ("b", "2"), ("c", "3")])
        self.view.set_all("b", ["4", "5"])
        self.assertEqual(self.data, [("z", "0"), ("b", "4"), ("c", "3"), ("b", "5")])
        self.assertRaises(KeyError, self.view.__delitem__, "nope")

    def test_fields_setter(self) -> None:
        """Assigning fields replaces all pairs."""
        self.view.fields = [("q", "1")]  # type: ignore[assignment]
        self.assertEqual(self.data, [("q", "1")])


# ---------------------------------------------------------------------------
# Request target
# ---------------------------------------------------------------------------


class RequestConstructionTests(SynchronousTestCase):
    """The constructor stores what the parser hands over."""

    def test_stores_as_is(self) -> None:
        """Headers and raw body are stored by reference without fixing framing."""
        h = Headers([(b"Host", b"example.com")])
        body = b"abc"
        r = Request("POST", "http", "example.com", 80, "/p", "HTTP/1.1", h, body, "", 1.0, 2.0)
        self.assertIs(r.headers, h)
        self.assertIs(r.raw_content, body)
        self.assertNotIn("content-length", h)
        self.assertEqual(
            (r.method, r.scheme, r.host, r.port, r.path, r.http_version, r.authority),
            ("POST", "http", "example.com", 80, "/p", "HTTP/1.1", ""),
        )
        self.assertEqual((r.timestamp_start, r.timestamp_end), (1.0, 2.0))
        self.assertIs(r.stream, False)
        self.assertIsNone(r.trailers)

    def test_repr(self) -> None:
        """repr shows method, host:port and path."""
        self.assertEqual(repr(req("/x")), "Request(GET example.com:80/x)")


class RequestTargetTests(SynchronousTestCase):
    """url/host/port re-targeting."""

    def test_url_default_port_omitted(self) -> None:
        """url omits the scheme's default port and includes others."""
        self.assertEqual(req("/a?b=c").url, "http://example.com/a?b=c")
        self.assertEqual(req(port=8080).url, "http://example.com:8080/")
        self.assertEqual(req(scheme="https", port=443).url, "https://example.com/")
        self.assertEqual(req(scheme="https", port=80).url, "https://example.com:80/")

    def test_url_ipv6(self) -> None:
        """IPv6 hosts are bracketed in url."""
        self.assertEqual(req(host="::1", port=8080).url, "http://[::1]:8080/")
        self.assertEqual(req(host="2001:db8::1").url, "http://[2001:db8::1]/")

    def test_url_connect(self) -> None:
        """A CONNECT request's url is host:port."""
        r = req(
            "example.com:443",
            method="CONNECT",
            scheme="http",
            port=443,
            authority="example.com:443",
        )
        self.assertEqual(r.url, "example.com:443")
        self.assertEqual(r.first_line_format, "authority")

    def test_url_setter_retargets(self) -> None:
        """Setting url changes scheme, host, port and path and updates the Host header."""
        r = req("/old")
        r.url = "https://Other.ORG:8443/new/path?x=1#frag"
        self.assertEqual(
            (r.scheme, r.host, r.port, r.path), ("https", "other.org", 8443, "/new/path?x=1")
        )
        self.assertEqual(r.headers["Host"], "other.org:8443")
        self.assertEqual(r.headers.fields[0][0], b"Host")
        self.assertEqual(r.url, "https://other.org:8443/new/path?x=1")

    def test_url_setter_default_port(self) -> None:
        """A URL without port gets the scheme's default port and a port-less Host header."""
        r = req(port=8080, headers=[(b"host", b"example.com:8080")])
        r.url = "https://secure.example"
        self.assertEqual((r.scheme, r.host, r.port, r.path), ("https", "secure.example", 443, "/"))
        self.assertEqual(r.headers.fields, [(b"host", b"secure.example")])

    def test_url_setter_ipv6(self) -> None:
        """Setting an IPv6 URL stores the bare address and brackets it in the Host header."""
        r = req()
        r.url = "http://[::1]:8080/x"
        self.assertEqual((r.host, r.port), ("::1", 8080))
        self.assertEqual(r.headers["host"], "[::1]:8080")

    def test_url_setter_invalid(self) -> None:
        """Invalid URLs raise ValueError."""
        r = req()
        for bad in ("/relative", "http://", "http://host:99999/", "foo://host/"):
            self.assertRaises(ValueError, setattr, r, "url", bad)

    def test_url_setter_without_host_header(self) -> None:
        """Setting url does not create a Host header that was not there."""
        r = req(headers=[])
        r.url = "http://a.example/"
        self.assertNotIn("host", r.headers)

    def test_host_setter_updates_host_header_and_authority(self) -> None:
        """Setting host updates Host header and non-empty authority, keeping a non-default port."""
        r = req(
            port=8080,
            headers=[(b"Accept", b"*/*"), (b"HOST", b"example.com:8080")],
            authority="example.com:8080",
        )
        r.host = "new.example"
        self.assertEqual(r.host, "new.example")
        self.assertEqual(r.headers.fields, [(b"Accept", b"*/*"), (b"HOST", b"new.example:8080")])
        self.assertEqual(r.authority, "new.example:8080")

    def test_host_setter_leaves_empty_authority(self) -> None:
        """An empty authority stays empty when the host changes."""
        r = req()
        r.host = "new.example"
        self.assertEqual(r.authority, "")
        self.assertEqual(r.headers["host"], "new.example")

    def test_host_setter_ipv6(self) -> None:
        """An IPv6 host is bracketed in the Host header."""
        r = req(port=8080)
        r.host = "::1"
        self.assertEqual(r.headers["host"], "[::1]:8080")

    def test_port_setter(self) -> None:
        """Setting port updates Host/authority, omitting the default port."""
        r = req(authority="example.com")
        r.port = 8080
        self.assertEqual(r.headers["host"], "example.com:8080")
        self.assertEqual(r.authority, "example.com:8080")
        r.port = 80
        self.assertEqual(r.headers["host"], "example.com")
        self.assertEqual(r.authority, "example.com")
        self.assertRaises(ValueError, setattr, r, "port", 70000)
        self.assertRaises(ValueError, setattr, r, "port", "80")

    def test_connect_keeps_port(self) -> None:
        """CONNECT authorities always include the port."""
        r = req("example.com:443", method="CONNECT", port=443, authority="example.com:443")
        r.host = "other.example"
        self.assertEqual(r.authority, "other.example:443")

    def test_host_header(self) -> None:
        """host_header reads and writes the Host header for HTTP/1."""
        r = req()
        self.assertEqual(r.host_header, "example.com")
        r.host_header = "spoof.example"
        self.assertEqual(r.headers["Host"], "spoof.example")
        self.assertEqual(r.host, "example.com")
        r.host_header = None
        self.assertNotIn("host", r.headers)
        self.assertIsNone(r.host_header)

    def test_host_header_http2(self) -> None:
        """For HTTP/2, host_header is the authority; setting it creates no Host header."""
        r = req(headers=[], authority="example.com", http_version="HTTP/2.0")
        self.assertEqual(r.host_header, "example.com")
        r.host_header = "other.example"
        self.assertEqual(r.authority, "other.example")
        self.assertNotIn("host", r.headers)

    def test_pretty_host_and_url(self) -> None:
        """pretty_host/pretty_url prefer the Host header over the connection target."""
        r = req("/p", headers=[(b"Host", b"example.com:8080")], host="10.0.0.1", port=8080)
        self.assertEqual(r.pretty_host, "example.com")
        self.assertEqual(r.pretty_url, "http://example.com:8080/p")
        self.assertEqual(r.url, "http://10.0.0.1:8080/p")
        r = req("/p", headers=[], host="10.0.0.1")
        self.assertEqual(r.pretty_host, "10.0.0.1")
        self.assertEqual(r.pretty_url, "http://10.0.0.1/p")
        r = req("/", headers=[(b"Host", b"[::1]:81")], host="10.0.0.1", scheme="https", port=443)
        self.assertEqual(r.pretty_host, "::1")
        self.assertEqual(r.pretty_url, "https://[::1]:81/")

    def test_helpers(self) -> None:
        """hostport, parse_authority and parse_url handle IPv6 and default ports."""
        self.assertEqual(hostport("https", "::1", 443), "[::1]")
        self.assertEqual(hostport("https", "a", 443, always_port=True), "a:443")
        self.assertEqual(parse_authority("[::1]:8080"), ("::1", 8080))
        self.assertEqual(parse_authority("[::1]"), ("::1", None))
        self.assertEqual(parse_authority("a.b:1"), ("a.b", 1))
        self.assertEqual(parse_authority("a.b"), ("a.b", None))
        self.assertEqual(parse_url("http://a.b"), ("http", "a.b", 80, "/"))
        self.assertEqual(parse_url("http://a.b?x"), ("http", "a.b", 80, "/?x"))

    def test_url_ipv6_and_default_ports(self):
        """IPv6 hosts are bracketed; default ports are left out of url and pretty_url."""
        self.assertEqual(Request.make("GET", "http://[::1]:8080/p").url, "http://[::1]:8080/p")
        self.assertEqual(Request.make("GET", "http://[::1]/p").url, "http://[::1]/p")
        self.assertEqual(Request.make("GET", "https://example.com:443/").url, "https://example.com/")
        r = req("/p", [(b"Host", b"[::1]:8080")], host="::1", port=8080)
        self.assertEqual(r.pretty_url, "http://[::1]:8080/p")
        r = req("/p", [(b"Host", b"example.com:80")])
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
        r = req("/", [(b"Host", b"example.com")], port=8080)
        r.host = "other.org"
        self.assertEqual(r.headers["host"], "other.org:8080")
        r = req("/", [], authority="example.com:80")
        r.host = "other.org"
        self.assertEqual(r.authority, "other.org")
        self.assertNotIn("host", r.headers)


# ---------------------------------------------------------------------------
# query / path / cookies / forms
# ---------------------------------------------------------------------------


class QueryTests(SynchronousTestCase):
    """request.query and path_components."""

    def test_read(self) -> None:
        """query parses the path's query string, keeping blank values."""
        r = req("/s?a=1&b=&a=2&c=%20x+y")
        self.assertEqual(r.query["a"], "1")
        self.assertEqual(r.query.get_all("a"), ["1", "2"])
        self.assertEqual(r.query["b"], "")
        self.assertEqual(r.query["c"], " x y")
        self.assertEqual(len(req("/s").query), 0)

    def test_write_goes_into_path(self) -> None:
        """Modifying query rewrites request.path."""
        r = req("/s?a=1&b=2")
        r.query["a"] = "new value"
        self.assertEqual(r.path, "/s?a=new+value&b=2")
        r.query.add("c", "&")
        self.assertEqual(r.path, "/s?a=new+value&b=2&c=%26")
        del r.query["b"]
        self.assertEqual(r.path, "/s?a=new+value&c=%26")
        self.assertEqual(r.url, "http://example.com/s?a=new+value&c=%26")

    def test_write_to_path_without_query(self) -> None:
        """Adding a parameter to a path without query adds a "?"; removing all drops it."""
        r = req("/s")
        r.query["q"] = "x"
        self.assertEqual(r.path, "/s?q=x")
        del r.query["q"]
        self.assertEqual(r.path, "/s")

    def test_assign(self) -> None:
        """Assigning a list or dict to query replaces the query string."""
        r = req("/s?old=1")
        r.query = [("x", "1"), ("x", "2")]
        self.assertEqual(r.path, "/s?x=1&x=2")
        r.query = {"y": "3"}
        self.assertEqual(r.path, "/s?y=3")

    def test_bare_keys_kept(self) -> None:
        """Query strings with bare keys keep them bare when rewritten."""
        r = req("/s?flag&a=1")
        r.query["a"] = "2"
        self.assertEqual(r.path, "/s?flag&a=2")

    def test_path_components(self) -> None:
        """path_components splits and unquotes the path and can be assigned."""
        r = req("/a/b%20c//d?x=1")
        self.assertEqual(r.path_components, ("a", "b c", "d"))
        r.path_components = ["x y", "z/w"]
        self.assertEqual(r.path, "/x%20y/z%2Fw?x=1")

    def test_query_multi_and_order(self):
        """query keeps repeated keys, empty values and order; assignment keeps order."""
        r = req("/a?x=1&y=&x=2")
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
        r = req("/a?q=caf%C3%A9&bad=%zz&raw=%e9")
        self.assertEqual(r.query["q"], "café")
        self.assertEqual(r.query["bad"], "%zz")
        r.query["q"] = "naïve +"
        self.assertEqual(r.query["q"], "naïve +")
        self.assertEqual(r.query["raw"].encode("utf-8", "surrogateescape"), b"\xe9")

    def test_query_write_keeps_fragment_and_bare_keys(self):
        r = req("/a?flag&x=1#frag")
        r.query["x"] = "2"
        self.assertEqual(r.path, "/a?flag&x=2#frag")


class RequestCookieTests(SynchronousTestCase):
    """request.cookies."""

    def test_read_multiple_headers(self) -> None:
        """Cookies are read from all Cookie headers."""
        r = req(headers=[(b"Host", b"h"), (b"Cookie", b"a=1; b=2"), (b"cookie", b"c=3")])
        self.assertEqual(r.cookies.items(multi=True), [("a", "1"), ("b", "2"), ("c", "3")])
        self.assertEqual(r.cookies["b"], "2")

    def test_write_single_header(self) -> None:
        """Modifying cookies writes back one Cookie header at the first one's position."""
        r = req(
            headers=[
                (b"Host", b"h"),
                (b"Cookie", b"a=1; b=2"),
                (b"Accept", b"*/*"),
                (b"cookie", b"c=3"),
            ]
        )
        r.cookies["b"] = "x"
        self.assertEqual(
            r.headers.fields, [(b"Host", b"h"), (b"Cookie", b"a=1; b=x; c=3"), (b"Accept", b"*/*")]
        )

    def test_add_to_request_without_cookie(self) -> None:
        """Adding a cookie creates a Cookie header; removing the last one deletes it."""
        r = req()
        r.cookies["s"] = "1"
        self.assertEqual(r.headers["Cookie"], "s=1")
        del r.cookies["s"]
        self.assertNotIn("cookie", r.headers)

    def test_request_cookie_quoted_value_with_semicolon(self):
        """
        mitmproxy's Cookie parser (net/http/cookies._read_value) reads a
        quoted value as one value, so C{a="x;y"; b=2} is two cookies.
        """
        r = req("/", [(b"Cookie", b'a="x;y"; b=2')])
        self.assertEqual(list(r.cookies.keys()), ["a", "b"])
        self.assertIn("x;y", r.cookies["a"])

    def test_request_cookie_value_with_separator_round_trips(self):
        """
        A value that needs quoting (contains ';' or a space) must read back the
        same after being written: mitmproxy quotes such values when formatting
        the Cookie header.
        """
        r = req("/")
        r.cookies["session"] = "x;y z"
        r.cookies["other"] = "2"
        self.assertEqual(r.cookies.fields[-1], ("other", "2"))
        self.assertEqual(len(r.cookies.fields), 2, r.headers.fields)
        self.assertIn("x;y z", r.cookies["session"])

    def test_request_cookies_read_and_write(self):
        """Several Cookie headers are read; a write produces one header."""
        r = req("/", [(b"Cookie", b"a=1; b=2"), (b"cookie", b"a=3")])
        self.assertEqual(r.cookies.get_all("a"), ["1", "3"])
        r.cookies["c"] = "4"
        self.assertEqual(r.headers.get_all("cookie"), ["a=1; b=2; a=3; c=4"])
        r.cookies = {}
        self.assertNotIn("cookie", r.headers)

    def test_request_cookie_rewrite_keeps_other_values(self):
        """Setting one cookie must not change how the server reads the others."""
        r = req("/", [(b"cookie", b"a=x,y; c=hello world; b=1")])
        r.cookies["b"] = "2"
        # A server (and browsers) do not unquote cookie values: "x,y" != x,y
        self.assertEqual(r.headers["cookie"], "a=x,y; c=hello world; b=2")

    def test_request_cookie_quoted_roundtrip(self):
        r = req("/", [(b"cookie", b'a="q"; b=1')])
        r.cookies["b"] = "2"
        self.assertEqual(r.headers["cookie"], 'a="q"; b=2')


class UrlencodedFormTests(SynchronousTestCase):
    """request.urlencoded_form."""

    def test_read(self) -> None:
        """The form is parsed from an application/x-www-form-urlencoded body."""
        r = req(
            headers=[(b"Content-Type", b"application/x-www-form-urlencoded; charset=utf-8")],
            content=b"a=1&b=x+y&a=%C3%A9",
        )
        self.assertEqual(r.urlencoded_form.get_all("a"), ["1", "\u00e9"])
        self.assertEqual(r.urlencoded_form["b"], "x y")

    def test_other_content_type_is_empty(self) -> None:
        """Bodies of other content types read as an empty form."""
        r = req(headers=[(b"Content-Type", b"text/plain")], content=b"a=1")
        self.assertEqual(len(r.urlencoded_form), 0)

    def test_write_into_body(self) -> None:
        """Modifying the form rewrites the body and Content-Length."""
        r = req(
            headers=[
                (b"Content-Type", b"application/x-www-form-urlencoded"),
                (b"Content-Length", b"3"),
            ],
            content=b"a=1",
            method="POST",
        )
        r.urlencoded_form["b"] = "two words"
        self.assertEqual(r.content, b"a=1&b=two+words")
        self.assertEqual(r.headers["content-length"], str(len(b"a=1&b=two+words")))

    def test_write_sets_content_type(self) -> None:
        """Writing a form onto a request without that Content-Type sets it."""
        r = req(method="POST")
        r.urlencoded_form = [("x", "1")]
        self.assertEqual(r.headers["content-type"], "application/x-www-form-urlencoded")
        self.assertEqual(r.content, b"x=1")
        self.assertEqual(r.headers["content-length"], "3")

    def test_write_gzip_body(self) -> None:
        """Form writes to a gzip body stay gzip-encoded."""
        r = req(
            headers=[
                (b"Content-Type", b"application/x-www-form-urlencoded"),
                (b"Content-Encoding", b"gzip"),
            ],
            content=gzip.compress(b"a=1"),
            method="POST",
        )
        r.urlencoded_form["a"] = "2"
        self.assertEqual(gzip.decompress(r.raw_content or b""), b"a=2")

    def test_urlencoded_form(self):
        r = req("/", [(b"Content-Type", b"application/x-www-form-urlencoded")],
                     b"a=1&b=%C3%A9&a=2", method="POST")
        self.assertEqual(r.urlencoded_form.get_all("a"), ["1", "2"])
        self.assertEqual(r.urlencoded_form["b"], "é")
        r2 = req("/", [], b"", method="POST")
        r2.urlencoded_form = {"k": "v w"}
        self.assertEqual(r2.content, b"k=v+w")
        self.assertEqual(r2.headers["content-type"], "application/x-www-form-urlencoded")
        self.assertEqual(r2.headers["content-length"], "5")


class MultipartFormTests(SynchronousTestCase):
    def _req(self, body, ct=b"multipart/form-data; boundary=XX"):
        return req("/", [(b"content-type", ct)], body, method="POST")

    def test_basic(self):
        body = (b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
                b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.bin\"\r\n"
                b"Content-Type: application/octet-stream\r\n\r\n\x00\xff\r\n\n\r\xfe\r\n--XX--\r\n")
        self.assertEqual(list(self._req(body).multipart_form.items(multi=True))
                         if hasattr(self._req(body).multipart_form, "items") else None,
                         [(b"a", b"1"), (b"f", b"\x00\xff\r\n\n\r\xfe")])

    def test_malformed(self):
        for body in [b"", b"garbage", b"--XX\r\n", b"--XX\r\nContent-Disposition: form-data\r\n\r\n",
                     b"--XX\r\n\r\n--XX--", b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n"
                     b"Content-Transfer-Encoding: base64\r\n\r\n!!!\r\n--XX--",
                     b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n"
                     b"Content-Type: multipart/mixed; boundary=YY\r\n\r\n--YY\r\n\r\nz\r\n--XX--"]:
            list(self._req(body).multipart_form.keys())
        for ct in [b"multipart/form-data", b"multipart/form-data; boundary=", b"multipart/form-data; boundary=\"",
                   b"multipart/form-data; boundary=XX\r\nX-Injected: 1", b"multipart/form-data;;;=;"]:
            list(self._req(b"--XX\r\n\r\n--XX--", ct).multipart_form.keys())

    def test_rfc2231_name(self):
        body = (b"--XX\r\nContent-Disposition: form-data; name*=utf-8''%C3%A9\r\n\r\n1\r\n--XX--\r\n")
        self.assertEqual(list(self._req(body).multipart_form.keys()), ["\u00e9".encode()])

    def test_utf8_name(self):
        body = (b"--XX\r\nContent-Disposition: form-data; name=\"\xc3\xa9\"\r\n\r\n1\r\n--XX--\r\n")
        self.assertEqual(list(self._req(body).multipart_form.keys()), ["\u00e9".encode()])

    def test_multipart_form_read(self):
        """multipart_form reads fields and file parts as bytes, in order, repeated names kept."""
        body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
                b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\n"
                b"Content-Type: text/plain\r\n\r\nfile body\r\n"
                b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n2\r\n--XyZ--\r\n")
        r = req("/", [(b"Content-Type", b"multipart/form-data; boundary=XyZ")], body, method="POST")
        self.assertEqual(list(r.multipart_form.fields), [(b"a", b"1"), (b"f", b"file body"), (b"a", b"2")])
        self.assertEqual(r.multipart_form.get_all(b"a"), [b"1", b"2"])
        self.assertEqual(list(req("/", [], b"x=1").multipart_form.fields), [])

    def test_multipart_form_write(self):
        """Setting multipart_form writes a body that reads back the same, with a new boundary."""
        r = req("/", [], b"", method="POST")
        r.multipart_form = [(b"a", b"1"), (b"b", b"two\r\nlines")]
        self.assertTrue(r.headers["content-type"].startswith("multipart/form-data; boundary="))
        self.assertEqual(list(r.multipart_form.fields), [(b"a", b"1"), (b"b", b"two\r\nlines")])
        r.multipart_form[b"c"] = b"3"
        self.assertEqual(r.multipart_form[b"c"], b"3")
        self.assertEqual(r.headers["content-length"], str(len(r.raw_content)))


# ---------------------------------------------------------------------------
# Content
# ---------------------------------------------------------------------------


class ContentTests(SynchronousTestCase):
    """content/raw_content/text and Content-Encoding transparency."""

    def test_identity(self) -> None:
        """Without Content-Encoding, content is raw_content (same object)."""
        body = b"hello"
        r = resp(content=body)
        self.assertIs(r.content, body)

    def test_none(self) -> None:
        """content and text are None when raw_content is None."""
        r = resp(content=None)
        self.assertIsNone(r.content)
        self.assertIsNone(r.text)

    def test_decode_each_encoding(self) -> None:
        """content decodes gzip, deflate, br and zstd bodies."""
        body = b"payload " * 20
        for name, raw in [
            ("gzip", gzip.compress(body)),
            ("deflate", zlib.compress(body)),
            ("br", brotli.compress(body)),
            ("zstd", zstandard.ZstdCompressor(write_content_size=False).compress(body)),
            ("gzip, br", brotli.compress(gzip.compress(body))),
        ]:
            r = resp([(b"Content-Encoding", name.encode())], raw)
            self.assertEqual(r.content, body, name)
            self.assertIs(r.raw_content, raw)

    def test_set_content_gzip(self) -> None:
        """Setting content on a gzip body stores gzip(new) and updates Content-Length in place."""
        r = resp(
            [(b"Content-Encoding", b"gzip"), (b"Content-Length", b"999"), (b"X-After", b"1")],
            gzip.compress(b"old"),
        )
        r.content = b"new content"
        raw = r.raw_content or b""
        self.assertEqual(gzip.decompress(raw), b"new content")
        self.assertEqual(
            r.headers.fields,
            [
                (b"Content-Encoding", b"gzip"),
                (b"Content-Length", str(len(raw)).encode()),
                (b"X-After", b"1"),
            ],
        )
        self.assertEqual(r.content, b"new content")

    def test_set_content_transparent_each_encoding(self) -> None:
        """Setting content re-encodes with deflate, br and zstd too."""
        for name in ("deflate", "br", "zstd", "gzip, br"):
            r = resp([(b"Content-Encoding", name.encode())], encoding.encode(b"old", name))
            r.content = b"new"
            self.assertEqual(encoding.decode(r.raw_content or b"", name), b"new", name)
            self.assertEqual(r.headers["content-length"], str(len(r.raw_content or b"")), name)

    def test_content_cached(self) -> None:
        """Repeated content gets return the same decoded object."""
        r = resp([(b"Content-Encoding", b"gzip")], gzip.compress(b"x" * 100))
        self.assertIs(r.content, r.content)

    def test_cache_invalidated(self) -> None:
        """Changing raw_content or Content-Encoding invalidates the decoded cache."""
        r = resp([(b"Content-Encoding", b"gzip")], gzip.compress(b"one"))
        self.assertEqual(r.content, b"one")
        r.raw_content = gzip.compress(b"two")
        self.assertEqual(r.content, b"two")
        r.headers["content-encoding"] = "br"
        r.raw_content = brotli.compress(b"three")
        self.assertEqual(r.content, b"three")

    def test_undecodable_raises(self) -> None:
        """Undecodable content raises ValueError; get_content(strict=False) returns raw."""
        r = resp([(b"Content-Encoding", b"gzip")], b"not gzip")
        self.assertRaises(ValueError, lambda: r.content)
        self.assertEqual(r.get_content(strict=False), b"not gzip")

    def test_unknown_encoding_on_set(self) -> None:
        """Setting content under an unknown Content-Encoding drops the header, stores plain."""
        r = resp([(b"Content-Encoding", b"snappy")], b"whatever")
        r.content = b"plain"
        self.assertEqual(r.raw_content, b"plain")
        self.assertNotIn("content-encoding", r.headers)

    def test_adds_content_length_when_unframed(self) -> None:
        """A non-empty body without Content-Length or Transfer-Encoding gets a Content-Length."""
        r = resp([(b"Server", b"x")])
        r.content = b"abc"
        self.assertEqual(r.headers.fields, [(b"Server", b"x"), (b"content-length", b"3")])

    def test_no_content_length_for_empty_body(self) -> None:
        """An empty body does not add a Content-Length."""
        r = req()
        r.content = b""
        self.assertNotIn("content-length", r.headers)

    def test_no_content_length_with_transfer_encoding(self) -> None:
        """With Transfer-Encoding and no Content-Length, none is added."""
        r = resp([(b"Transfer-Encoding", b"chunked")])
        r.content = b"abc"
        self.assertNotIn("content-length", r.headers)

    def test_raw_content_setter_fixes_length(self) -> None:
        """Setting raw_content updates Content-Length without encoding."""
        r = resp([(b"Content-Length", b"0"), (b"Content-Encoding", b"gzip")])
        raw = gzip.compress(b"abc")
        r.raw_content = raw
        self.assertIs(r.raw_content, raw)
        self.assertEqual(r.headers["Content-Length"], str(len(raw)))
        self.assertRaises(TypeError, setattr, r, "raw_content", "str")

    def test_content_type_error(self) -> None:
        """Setting content to a str raises TypeError."""
        self.assertRaises(TypeError, setattr, resp(), "content", "text")

    def test_decode(self) -> None:
        """decode() removes Content-Encoding and stores the decoded body."""
        r = resp(
            [(b"Content-Encoding", b"br"), (b"Content-Length", b"1")], brotli.compress(b"hello")
        )
        r.decode()
        self.assertEqual(r.raw_content, b"hello")
        self.assertNotIn("content-encoding", r.headers)
        self.assertEqual(r.headers["content-length"], "5")

    def test_encode(self) -> None:
        """encode() compresses the body and sets Content-Encoding; unknown encodings raise."""
        r = resp([(b"Content-Length", b"5")], b"hello")
        r.encode("zstd")
        self.assertEqual(r.headers["content-encoding"], "zstd")
        self.assertEqual(zstandard.ZstdDecompressor().decompress(r.raw_content or b""), b"hello")
        self.assertEqual(r.headers["content-length"], str(len(r.raw_content or b"")))
        self.assertEqual(r.content, b"hello")
        self.assertRaises(ValueError, r.encode, "bogus")
        self.assertEqual(r.headers["content-encoding"], "zstd")

    def test_each_encoding_round_trips_and_fixes_length(self):
        for ce in ("gzip", "GZIP", "x-gzip", "deflate", "br", "zstd", "gzip, br"):
            r = Response.make(200, b"", {"Content-Encoding": ce})
            r.content = b"hello world" * 10
            self.assertEqual(r.content, b"hello world" * 10, ce)
            self.assertNotEqual(r.raw_content, b"hello world" * 10, ce)
            self.assertEqual(r.headers["content-length"], str(len(r.raw_content)), ce)

    def test_unknown_encoding_left_raw(self):
        r = resp(headers=[(b"Content-Encoding", b"compress")], content=b"raw")
        self.assertEqual(r.get_content(strict=False), b"raw")
        self.assertEqual(r.raw_content, b"raw")

    def test_json(self):
        """json() parses the decoded body; no body is a ValueError."""
        r = req("/", [(b"Content-Type", b"application/json")], b'{"a": [1, "\xc3\xa9"]}')
        self.assertEqual(r.json(), {"a": [1, "\u00e9"]})
        self.assertRaises(ValueError, req("/", [], b"not json").json)

    def test_json_of_response(self):
        r = resp([(b"content-type", b"application/json")], b'{"a": 1}')
        self.assertEqual(r.json(), {"a": 1})


class DecodedSizeTests(SynchronousTestCase):
    """
    Reading a body that decodes to more than the process's cap
    (encoding.decode_cap, held by a running proxy) raises DecodedSizeError;
    the body itself and setting content are unaffected.
    """

    def setUp(self) -> None:
        encoding.decode_cap.hold(self, 1 << 20)
        self.addCleanup(encoding.decode_cap.release, self)
        self.bomb = encoding.encode(bytes(10 << 20), "gzip")

    def _bomb(self) -> Response:
        return resp([(b"Content-Encoding", b"gzip"), (b"Content-Type", b"text/plain")], self.bomb)

    def test_content_text_json_raise(self) -> None:
        """content, text, get_content() and json() raise DecodedSizeError (a ValueError)."""
        r = self._bomb()
        for read in (lambda: r.content, lambda: r.text, r.get_content, r.json):
            e = self.assertRaises(encoding.DecodedSizeError, read)
            self.assertIsInstance(e, ValueError)
            self.assertEqual(e.limit, 1 << 20)
        self.assertIs(r.raw_content, self.bomb)

    def test_not_strict_gives_raw(self) -> None:
        """get_content(strict=False) gives the raw body, as for undecodable data."""
        r = self._bomb()
        self.assertIs(r.get_content(strict=False), self.bomb)
        self.assertIs(r.get_content(strict=False), self.bomb)

    def test_failure_remembered_until_the_cap_grows(self) -> None:
        """A body too large for a cap is not decoded again for it; a larger cap decodes it."""
        r = self._bomb()
        self.assertRaises(encoding.DecodedSizeError, lambda: r.content)
        self.assertEqual(r._cache, (self.bomb, b"gzip", 1 << 20))
        self.assertRaises(encoding.DecodedSizeError, lambda: r.content)
        encoding.decode_cap.hold(self, 16 << 20)
        self.assertEqual(len(r.content or b""), 10 << 20)

    def test_setting_content_works(self) -> None:
        """Setting a body (larger than the cap, too) encodes it; reading it back gives it."""
        r = self._bomb()
        big = b"y" * (2 << 20)
        r.content = big
        self.assertIs(r.content, big)
        self.assertEqual(gzip.decompress(r.raw_content or b""), big)
        r.text = "small"
        self.assertEqual(r.content, b"small")
        r = self._bomb()
        r.text = "replaced"
        self.assertEqual(gzip.decompress(r.raw_content or b""), b"replaced")


class TextTests(SynchronousTestCase):
    """text with charsets."""

    def test_default_utf8(self) -> None:
        """Without charset, text is UTF-8."""
        r = resp([(b"Content-Type", b"text/plain")], "h\u00e9".encode())
        self.assertEqual(r.text, "h\u00e9")

    def test_charset(self) -> None:
        """The Content-Type charset is used for reading and writing."""
        r = resp([(b"Content-Type", b'text/html; Charset="ISO-8859-1"')], b"caf\xe9")
        self.assertEqual(r.text, "caf\u00e9")
        r.text = "na\u00efve"
        self.assertEqual(r.raw_content, b"na\xefve")
        self.assertEqual(r.headers["content-length"], "5")

    def test_unencodable_falls_back_to_utf8(self) -> None:
        """Text the charset cannot represent is stored as UTF-8 and the charset updated."""
        r = resp([(b"Content-Type", b"text/plain; charset=latin-1; format=flowed")])
        r.text = "\u20ac"
        self.assertEqual(r.raw_content, "\u20ac".encode())
        self.assertEqual(r.headers["content-type"], "text/plain; format=flowed; charset=utf-8")

    def test_unknown_charset(self) -> None:
        """An unknown charset falls back to UTF-8."""
        r = resp([(b"Content-Type", b"text/plain; charset=nope")], b"ok")
        self.assertEqual(r.text, "ok")

    def test_surrogateescape(self) -> None:
        """Invalid UTF-8 round-trips through text."""
        r = resp([], b"\xff\xfe")
        r.text = r.text
        self.assertEqual(r.raw_content, b"\xff\xfe")

    def test_text_through_gzip(self) -> None:
        """text is decoded from and encoded into a gzip body."""
        r = resp(
            [(b"Content-Encoding", b"gzip"), (b"Content-Type", b"text/plain; charset=utf-8")],
            gzip.compress("\u00e9t\u00e9".encode()),
        )
        self.assertEqual(r.text, "\u00e9t\u00e9")
        r.text = "hiver"
        self.assertEqual(gzip.decompress(r.raw_content or b""), b"hiver")

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

    def test_text_css_charset(self):
        """A CSS @charset is read when Content-Type has none; gbk is read as gb18030."""
        r = Response.make(200, b'@charset "iso-8859-1"; a { content: "\xe9" }', {"Content-Type": "text/css"})
        self.assertIn("\u00e9", r.text)
        r = Response.make(200, "\u4e2d".encode("gbk"), {"Content-Type": "text/plain; charset=gbk"})
        self.assertEqual(r.text, "\u4e2d")

    def test_text_roundtrip_keeps_bytes_meta_charset(self):
        """r.text = r.text on a windows-1252 page with a <meta> charset must keep its bytes."""
        body = b'<html><head><meta charset="windows-1252"></head><body>caf\xe9</body></html>'
        r = resp([(b"content-type", b"text/html")], body)
        self.assertEqual(r.text, '<html><head><meta charset="windows-1252"></head><body>caf\u00e9</body></html>')
        r.text = r.text.replace("caf", "CAF")
        self.assertEqual(r.content, body.replace(b"caf", b"CAF"))


# ---------------------------------------------------------------------------
# make()
# ---------------------------------------------------------------------------


class RequestMakeTests(SynchronousTestCase):
    """Request.make."""

    def test_basic(self) -> None:
        """make parses the URL and sets HTTP/1.1, empty body and timestamps."""
        before = time.time()
        r = Request.make("GET", "https://example.com:8443/a?b=c")
        self.assertEqual(
            (r.method, r.scheme, r.host, r.port, r.path, r.http_version),
            ("GET", "https", "example.com", 8443, "/a?b=c", "HTTP/1.1"),
        )
        self.assertEqual(r.raw_content, b"")
        self.assertEqual(len(r.headers), 0)
        self.assertGreaterEqual(r.timestamp_start or 0, before)
        self.assertEqual(r.authority, "")

    def test_str_content_and_dict_headers(self) -> None:
        """str content is UTF-8 encoded and gets a Content-Length; dict headers are accepted."""
        r = Request.make(
            "POST", "http://a.example/", "\u00e9", {"Content-Type": "text/plain", b"X-B": b"1"}
        )
        self.assertEqual(r.raw_content, b"\xc3\xa9")
        self.assertEqual(r.headers["content-length"], "2")
        self.assertEqual(r.headers["x-b"], "1")

    def test_list_headers_and_host_update(self) -> None:
        """A list of pairs is accepted and an existing Host header is made to match the URL."""
        r = Request.make("GET", "http://a.example:81/", headers=[("Host", "stale")])
        self.assertEqual(r.headers["Host"], "a.example:81")

    def test_headers_instance_used(self) -> None:
        """A Headers instance is used as-is."""
        h = Headers()
        self.assertIs(Request.make("GET", "http://a/", headers=h).headers, h)

    def test_bad_content(self) -> None:
        """Non bytes/str content raises TypeError."""
        self.assertRaises(TypeError, Request.make, "GET", "http://a/", 123)


class ResponseMakeTests(SynchronousTestCase):
    """Response.make."""

    def test_status_code_checked(self):
        """
        A status that is no integer from 100 to 999 (an addon's
        ``Response.make("abc")``) is a ValueError saying so, at once.
        """
        for bad in ("abc", "200", 200.0, True, None, 99, 1000, -1):
            with self.assertRaises(ValueError) as caught:
                Response.make(bad)  # type: ignore[arg-type]
            self.assertIn("integer from 100 to 999", str(caught.exception))
        self.assertEqual(Response.make(999).status_code, 999)
        self.assertEqual(Response.make(100).status_code, 100)
        made = Response.make(HTTPStatus.NOT_FOUND)
        self.assertEqual((made.status_code, type(made.status_code), made.reason),
                         (404, int, "Not Found"))

    def test_defaults(self) -> None:
        """make() gives 200 OK, HTTP/1.1, empty body with Content-Length 0 and timestamps."""
        before = time.time()
        r = Response.make()
        self.assertEqual((r.status_code, r.reason, r.http_version), (200, "OK", "HTTP/1.1"))
        self.assertEqual(r.content, b"")
        self.assertEqual(r.headers["Content-Length"], "0")
        self.assertGreaterEqual(r.timestamp_start or 0, before)
        self.assertGreaterEqual(r.timestamp_end or 0, before)

    def test_str_content(self) -> None:
        """str content is UTF-8 encoded and Content-Length is its byte length."""
        r = Response.make(404, "n\u00f6pe", {"Content-Type": "text/plain"})
        self.assertEqual(r.reason, "Not Found")
        self.assertEqual(r.raw_content, "n\u00f6pe".encode())
        self.assertEqual(r.headers["content-length"], "5")
        self.assertEqual(r.headers["content-type"], "text/plain")

    def test_unknown_status(self) -> None:
        """An unknown status code has an empty reason."""
        self.assertEqual(Response.make(599).reason, "")

    def test_list_headers_and_bytes(self) -> None:
        """A list of byte pairs is accepted; an existing Content-Length is corrected in place."""
        r = Response.make(201, b"abc", [(b"Content-Length", b"99"), (b"X", b"y")])
        self.assertEqual(r.headers.fields, [(b"Content-Length", b"3"), (b"X", b"y")])

    def test_encoded_content(self) -> None:
        """With Content-Encoding the body is encoded and Content-Length is the encoded size."""
        r = Response.make(200, b"hello" * 10, {"Content-Encoding": "gzip"})
        self.assertEqual(gzip.decompress(r.raw_content or b""), b"hello" * 10)
        self.assertEqual(r.headers["content-length"], str(len(r.raw_content or b"")))

    def test_repr(self) -> None:
        """repr shows status, content type and size."""
        self.assertEqual(
            repr(Response.make(200, b"ab", {"content-type": "text/plain"})),
            "Response(200 OK, text/plain, 2 bytes)",
        )

    def test_response_make_variants(self):
        """make accepts dict/list/Headers and str/bytes content and sets Content-Length."""
        r = Response.make(404, "nope", [("X", "1"), (b"Y", b"2")])
        self.assertEqual((r.status_code, r.reason, r.content), (404, "Not Found", b"nope"))
        self.assertEqual(r.headers["content-length"], "4")
        r = Response.make(200, b"abc", Headers([(b"Content-Length", b"99")]))
        self.assertEqual(r.headers.get_all("content-length"), ["3"])
        r = Response.make()
        self.assertEqual((r.status_code, r.content, r.headers["content-length"]), (200, b"", "0"))


class ResponseCookieTests(SynchronousTestCase):
    """response.cookies over Set-Cookie."""

    def test_read(self) -> None:
        """Set-Cookie headers map name -> (value, attrs) with None for flag attributes."""
        r = resp(
            [
                (
                    b"Set-Cookie",
                    b"id=a3fWa; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Secure; HttpOnly",
                ),
                (b"set-cookie", b"lang=en; Path=/"),
            ]
        )
        value, attrs = r.cookies["id"]
        self.assertEqual(value, "a3fWa")
        self.assertEqual(
            attrs,
            [("Expires", "Wed, 21 Oct 2015 07:28:00 GMT"), ("Secure", None), ("HttpOnly", None)],
        )
        self.assertEqual(r.cookies["lang"], ("en", [("Path", "/")]))
        self.assertEqual(r.cookies.keys(), ["id", "lang"])

    def test_write(self) -> None:
        """Modifying cookies rewrites the Set-Cookie headers in place."""
        r = resp([(b"Set-Cookie", b"a=1; Path=/"), (b"X", b"y"), (b"Set-Cookie", b"b=2")])
        r.cookies["b"] = ("3", [("Secure", None), ("Max-Age", "60")])
        self.assertEqual(
            r.headers.fields,
            [
                (b"Set-Cookie", b"a=1; Path=/"),
                (b"X", b"y"),
                (b"Set-Cookie", b"b=3; Secure; Max-Age=60"),
            ],
        )
        del r.cookies["a"]
        self.assertEqual(r.headers.get_all("set-cookie"), ["b=3; Secure; Max-Age=60"])

    def test_add(self) -> None:
        """Adding a cookie to a response without Set-Cookie creates the header."""
        r = resp()
        r.cookies["s"] = ("v", [])
        self.assertEqual(r.headers["set-cookie"], "s=v")

    def test_response_cookie_attributes_are_a_mapping(self):
        """
        mitmproxy: Response.cookies maps a name to (value, attrs), attrs
        being a MultiDict of the attributes, so attrs["Path"] works.
        """
        line = b"sid=abc; Path=/; HttpOnly; Expires=Wed, 21 Oct 2015 07:28:00 GMT"
        response = resp(headers=[(b"Set-Cookie", line)])
        value, attrs = response.cookies["sid"]
        self.assertEqual(value, "abc")
        self.assertEqual(attrs["Path"], "/")
        self.assertEqual(attrs["Expires"], "Wed, 21 Oct 2015 07:28:00 GMT")

    def test_response_cookies_parsed_with_attributes(self):
        response = resp(headers=[(b"Set-Cookie", b"sid=abc; Path=/; HttpOnly"),
                                  (b"Set-Cookie", b"x=1")])
        self.assertEqual(response.cookies["sid"][0], "abc")
        self.assertIn(("HttpOnly", None), list(response.cookies["sid"][1]))
        self.assertEqual(response.cookies["x"][0], "1")

    def test_odd_quoting_no_exception(self):
        for line in ['a="', 'a="x', '"', '=', ';;;', 'a="x\\', 'a="x"y; b=2', '=";"', 'a=;b',
                     'a="\\"', ' ; = ; ', 'a=b=c; d', '"a;b"=c']:
            _cookie_pairs(line)
            _parse_set_cookie(line)

    def test_set_cookie_equals_in_value(self):
        name, (value, attrs) = _parse_set_cookie("tok=a=b==; Path=/; Secure")
        self.assertEqual((name, value), ("tok", "a=b=="))
        self.assertEqual(attrs, [("Path", "/"), ("Secure", None)])

    def test_set_cookie_backslash_in_quotes(self):
        # RFC 6265 has no backslash escapes: the value is C:\dir (quotes kept by browsers)
        name, (value, attrs) = _parse_set_cookie('p="C:\\dir"')
        self.assertIn("\\", value)


class CookieAttrsTests(SynchronousTestCase):
    def setUp(self):
        self.attrs = _parse_set_cookie("a=1; Path=/; Domain=x; Secure")[1][1]

    def test_list_paths(self):
        a = self.attrs
        self.assertEqual(a[0], ("Path", "/"))
        self.assertEqual(a[-1], ("Secure", None))
        self.assertEqual(a[1:], [("Domain", "x"), ("Secure", None)])
        self.assertEqual(repr(a), "[('Path', '/'), ('Domain', 'x'), ('Secure', None)]")
        self.assertEqual(a, [("Path", "/"), ("Domain", "x"), ("Secure", None)])
        a[0] = ("Path", "/x")
        del a[1]
        a[0:1] = [("Path", "/y")]
        self.assertIn(("Secure", None), a)
        self.assertEqual(a["path"], "/y")
        self.assertTrue("secure" in a)
        self.assertEqual(a.get("nope", 5), 5)

    def test_pop_by_name(self):
        # mitmproxy attrs is a MultiDict: attrs.pop("secure") works there
        a = self.attrs
        a.pop("Secure")

    def test_items(self):
        dict(self.attrs.items())


class ResponseRefreshTests(SynchronousTestCase):
    """
    Response.refresh moves a recorded response's dates by the time since it
    was recorded (server replay), as mitmproxy's.
    """

    def test_dates_and_cookies_move(self) -> None:
        r = Response.make(200, b"", {
            "Date": "Wed, 01 Jan 2025 00:00:00 GMT",
            "Last-Modified": "not a date",
        })
        r.headers.add("Set-Cookie", "a=1; Expires=Wed, 01 Jan 2025 00:00:00 GMT; Path=/")
        r.headers.add("Set-Cookie", "b=2; Expires=someday")
        r.headers.add("Set-Cookie", "c=3")
        r.timestamp_start = 1735689600.0  # 2025-01-01 00:00:00 UTC
        r.refresh(now=r.timestamp_start + 3600)
        self.assertEqual(r.headers["Date"], "Wed, 01 Jan 2025 01:00:00 GMT")
        self.assertEqual(r.headers["Last-Modified"], "not a date")
        self.assertEqual(r.headers.get_all("Set-Cookie"), [
            "a=1; Expires=Wed, 01 Jan 2025 01:00:00 GMT; Path=/",
            "b=2",
            "c=3",
        ])

    def test_copy_is_deep(self) -> None:
        r = Response.make(200, b"body", {"X": "1"})
        c = r.copy()
        c.headers["X"] = "2"
        c.content = b"other"
        self.assertEqual((r.headers["X"], r.content), ("1", b"body"))
