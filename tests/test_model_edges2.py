"""
More edge cases of the flow model (from a review of the first round):
cookie values kept as sent, CookieAttrs as a list and a mapping,
multipart bodies, charset round trips, the Headers index, offline flow
copies, the dumper's escaping of odd strings.
"""

from __future__ import annotations

from twisted.trial import unittest

from addons.dumper import _printable
from interceptor.model.connection import ClientConnection
from interceptor.model.flow import HTTPFlow
from interceptor.model.http import Headers, Request, Response, _cookie_pairs, _parse_set_cookie


def _request(headers=(), body=b"", method="GET"):
    return Request(method, "http", "example.com", 80, "/", "HTTP/1.1", Headers(list(headers)),
                   body, "", 1000.0, 1000.5)


def _response(headers=(), body=b""):
    return Response("HTTP/1.1", 200, "OK", Headers(list(headers)), body, 1000.5, 1001.0)


class CookieTests(unittest.TestCase):
    def test_odd_quoting_no_exception(self):
        for line in ['a="', 'a="x', '"', '=', ';;;', 'a="x\\', 'a="x"y; b=2', '=";"', 'a=;b',
                     'a="\\"', ' ; = ; ', 'a=b=c; d', '"a;b"=c']:
            _cookie_pairs(line)
            _parse_set_cookie(line)

    def test_set_cookie_equals_in_value(self):
        name, (value, attrs) = _parse_set_cookie("tok=a=b==; Path=/; Secure")
        self.assertEqual((name, value), ("tok", "a=b=="))
        self.assertEqual(attrs, [("Path", "/"), ("Secure", None)])

    def test_request_cookie_rewrite_keeps_other_values(self):
        """Setting one cookie must not change how the server reads the others."""
        r = _request([(b"cookie", b"a=x,y; c=hello world; b=1")])
        r.cookies["b"] = "2"
        # A server (and browsers) do not unquote cookie values: "x,y" != x,y
        self.assertEqual(r.headers["cookie"], "a=x,y; c=hello world; b=2")

    def test_request_cookie_quoted_roundtrip(self):
        r = _request([(b"cookie", b'a="q"; b=1')])
        r.cookies["b"] = "2"
        self.assertEqual(r.headers["cookie"], 'a="q"; b=2')

    def test_set_cookie_backslash_in_quotes(self):
        # RFC 6265 has no backslash escapes: the value is C:\dir (quotes kept by browsers)
        name, (value, attrs) = _parse_set_cookie('p="C:\\dir"')
        self.assertIn("\\", value)


class CookieAttrsTests(unittest.TestCase):
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


class MultipartTests(unittest.TestCase):
    def _req(self, body, ct=b"multipart/form-data; boundary=XX"):
        return _request([(b"content-type", ct)], body, "POST")

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


class CharsetTests(unittest.TestCase):
    def test_text_roundtrip_keeps_bytes_meta_charset(self):
        """r.text = r.text on a windows-1252 page with a <meta> charset must keep its bytes."""
        body = b'<html><head><meta charset="windows-1252"></head><body>caf\xe9</body></html>'
        r = _response([(b"content-type", b"text/html")], body)
        self.assertEqual(r.text, '<html><head><meta charset="windows-1252"></head><body>caf\u00e9</body></html>')
        r.text = r.text.replace("caf", "CAF")
        self.assertEqual(r.content, body.replace(b"caf", b"CAF"))

    def test_json(self):
        r = _response([(b"content-type", b"application/json")], b'{"a": 1}')
        self.assertEqual(r.json(), {"a": 1})


class HeadersIndexTests(unittest.TestCase):
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


class FlowCopyTests(unittest.TestCase):
    def test_copy_offline(self):
        f = HTTPFlow(ClientConnection(("127.0.0.1", 1)), None, _request())
        f.response = _response()
        c = f.copy()
        self.assertNotEqual(c.id, f.id)
        self.assertFalse(c.live)


class DumperTests(unittest.TestCase):
    def test_lone_surrogate(self):
        _printable("caf\u00e9 \ud800 x")

    def test_surrogateescape(self):
        self.assertEqual(_printable("a\udcff\x1b"), "a\\xff\\x1b")
