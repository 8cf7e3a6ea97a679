"""
Tests for L{interceptor.model.validate}: which fields an addon set make a
message unwritable, and how the answer names them.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from interceptor.model.headers import Headers
from interceptor.model.http import Request, Response
from interceptor.model.validate import fields_problem, request_problem, response_problem


def request(**changes) -> Request:
    r = Request("GET", "http", "example.com", 80, "/a?b=c", "HTTP/1.1",
                Headers([(b"Host", b"example.com"), (b"Accept", b"*/*")]), None, "", 1.0, None)
    for name, value in changes.items():
        setattr(r, name, value)
    return r


class FieldsTests(SynchronousTestCase):

    def test_valid(self):
        self.assertIsNone(fields_problem([]))
        self.assertIsNone(fields_problem([(b"X-A", b"1"), (b"x_b!", b"a, b; q=1\t\x80\xff")]))

    def test_bad_values(self):
        for value in (b"a\r\nX-Injected: 1", b"a\nb", b"a\rb", b"a\x00b"):
            self.assertEqual(fields_problem([(b"Ok", b"1"), (b"X-User", value)]),
                             "header value of 'X-User': CR, LF or NUL")

    def test_bad_names(self):
        for name in (b"X Y", b"a:b", b"", b"a\r\nb", b"\xff"):
            problem = fields_problem([(b"Ok", b"1"), (name, b"v")], "trailer")
            self.assertTrue(problem.startswith("trailer name "), problem)
            self.assertTrue(problem.endswith(": not a token"), problem)


class RequestTests(SynchronousTestCase):

    def test_valid(self):
        self.assertIsNone(request_problem(request()))
        self.assertIsNone(request_problem(request(method="M-SEARCH", path="*")))

    def test_each_field(self):
        self.assertIn("method", request_problem(request(method="GET /x HTTP/1.1\r\n")))
        self.assertIn("method", request_problem(request(method="")))
        self.assertIn("request target", request_problem(request(path="/a b")))
        self.assertIn("request target", request_problem(request(path="/a\r\nHost: x")))
        r = request()
        r.headers["X-From-Query"] = "a\r\nX-Injected: 1"
        self.assertEqual(request_problem(r), "header value of 'X-From-Query': CR, LF or NUL")
        r = request()
        r.trailers = Headers([(b"X-T", b"a\nb")])
        self.assertEqual(request_problem(r), "trailer value of 'X-T': CR, LF or NUL")


class ResponseTests(SynchronousTestCase):

    def test_valid(self):
        self.assertIsNone(response_problem(Response.make(204)))

    def test_each_field(self):
        r = Response.make(200)
        for status in ("abc", 99, 1000, True, None, 200.0):
            r.status_code = status
            self.assertIn("status code", response_problem(r))
        r = Response.make(200)
        r.reason = "OK\r\nSet-Cookie: a=b"
        self.assertIn("reason", response_problem(r))
        r = Response.make(200)
        r.headers["Location"] = "/x\r\n\r\n<script>"
        self.assertEqual(response_problem(r), "header value of 'Location': CR, LF or NUL")
