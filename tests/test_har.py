"""
Tests for L{interceptor.io.har}: flows to HAR entries and back, the output
checked against the HAR 1.2 JSON schema (tests/fixtures/har-1.2.schema.json,
har-schema's), browsers' HARs read, malformed files refused clearly.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from interceptor.http import Request, Response
from interceptor.io.har import HarError, HarWriter, flow_to_entry, read_har
from interceptor.model.connection import ClientConnection, ServerConnection
from interceptor.model.flow import Error, HTTPFlow

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "fixtures", "har-1.2.schema.json")

with open(SCHEMA_PATH, encoding="utf-8") as _schema_file:
    _VALIDATOR = jsonschema.Draft6Validator(
        json.load(_schema_file), format_checker=jsonschema.FormatChecker()
    )


def schema_errors(document: Any) -> list[str]:
    """
    What the HAR 1.2 schema finds wrong with C{document}, and the timing
    rule the schema states but does not enforce (its C{min} is no JSON
    Schema keyword): every timing is -1 or more, send/wait/receive 0 or more.
    """
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in _VALIDATOR.iter_errors(document)]
    for i, entry in enumerate(document.get("log", {}).get("entries", [])):
        for key, value in entry.get("timings", {}).items():
            floor = 0 if key in ("send", "wait", "receive") else -1
            if isinstance(value, (int, float)) and value < floor:
                errors.append(f"entry {i}: timings.{key} = {value}")
    return errors


T0 = 1_700_000_000.25


def make_flow(
    method: str = "GET",
    url: str = "http://example.com/path?a=1&b=two%20words",
    request_body: bytes = b"",
    request_headers: Any = None,
    status: int | None = 200,
    response_body: bytes = b"hello",
    response_headers: Any = None,
) -> HTTPFlow:
    """A flow as the proxy would have recorded it, with every timestamp set."""
    request = Request.make(method, url, request_body, request_headers)
    request.timestamp_start, request.timestamp_end = T0, T0 + 0.010
    server = ServerConnection((request.host, request.port))
    server.peername = ("127.0.0.1", request.port)
    server.timestamp_start = T0 + 0.011
    server.timestamp_tcp_setup = T0 + 0.019
    flow = HTTPFlow(ClientConnection(("127.0.0.1", 50123)), server, request)
    if status is not None:
        response = Response.make(status, response_body, response_headers)
        response.timestamp_start, response.timestamp_end = T0 + 0.050, T0 + 0.0625
        flow.response = response
    return flow


def write(*flows: HTTPFlow) -> bytes:
    out = io.BytesIO()
    with HarWriter(out) as writer:
        for flow in flows:
            writer.add(flow)
    return out.getvalue()


def round_trip(*flows: HTTPFlow) -> list[HTTPFlow]:
    return list(read_har(io.BytesIO(write(*flows)), "test.har"))


class RoundTripTests(unittest.TestCase):
    """
    A flow written and read back keeps what a HAR can hold.
    """

    def assertSameTimes(self, before: Any, after: Any) -> None:
        """Both timestamps of two messages agree to the millisecond."""
        for name in ("timestamp_start", "timestamp_end"):
            self.assertAlmostEqual(getattr(after, name), getattr(before, name), delta=0.001)

    def assertSameFlow(self, before: HTTPFlow, after: HTTPFlow) -> None:
        self.assertFalse(after.live)
        self.assertEqual(after.request.method, before.request.method)
        self.assertEqual(after.request.url, before.request.url)
        self.assertEqual(after.request.http_version, before.request.http_version)
        self.assertEqual(after.request.headers.fields, before.request.headers.fields)
        self.assertEqual(after.request.content, before.request.content)
        self.assertSameTimes(before.request, after.request)
        if before.response is None:
            self.assertIsNone(after.response)
            return
        assert after.response is not None
        self.assertEqual(after.response.status_code, before.response.status_code)
        self.assertEqual(after.response.reason, before.response.reason)
        self.assertEqual(after.response.headers.fields, before.response.headers.fields)
        self.assertEqual(after.response.content, before.response.content)
        self.assertSameTimes(before.response, after.response)

    def test_text(self) -> None:
        """Method, URL, headers, bodies, status and timestamps (to the ms) come back."""
        flow = make_flow(
            "POST",
            request_body=b'{"k": "v\xc3\xa9"}',
            request_headers={"content-type": "application/json", "x-a": "1"},
            response_body="caf\u00e9 \u2603\n".encode(),
            response_headers={"content-type": "text/plain; charset=utf-8"},
        )
        [back] = round_trip(flow)
        self.assertSameFlow(flow, back)
        self.assertEqual(back.client_conn.address, ("127.0.0.1", 50123))
        assert back.server_conn is not None
        self.assertEqual(back.server_conn.peername, ("127.0.0.1", 80))
        self.assertAlmostEqual(back.server_conn.timestamp_start, T0 + 0.010, delta=0.001)
        self.assertAlmostEqual(back.server_conn.timestamp_tcp_setup, T0 + 0.018, delta=0.001)

    def test_binary(self) -> None:
        """Binary bodies both ways are written as base64 and come back byte for byte."""
        body = bytes(range(256)) * 3
        flow = make_flow(
            "PUT",
            request_body=body,
            request_headers={"content-type": "application/octet-stream"},
            response_body=body[::-1],
            response_headers={"content-type": "image/png"},
        )
        entry = flow_to_entry(flow)
        self.assertEqual(entry["response"]["content"]["encoding"], "base64")
        self.assertEqual(entry["request"]["postData"]["_encoding"], "base64")
        [back] = round_trip(flow)
        self.assertSameFlow(flow, back)

    def test_latin1(self) -> None:
        """Text in a declared charset is written as text and encoded back in that charset."""
        flow = make_flow(
            response_body="d\u00e9j\u00e0 vu".encode("latin-1"),
            response_headers={"content-type": "text/html; charset=iso-8859-1"},
        )
        entry = flow_to_entry(flow)
        self.assertEqual(entry["response"]["content"]["text"], "d\u00e9j\u00e0 vu")
        self.assertNotIn("encoding", entry["response"]["content"])
        [back] = round_trip(flow)
        self.assertSameFlow(flow, back)

    def test_gzip(self) -> None:
        """
        A gzip body is written decoded, with its size and compression, and
        re-encoded on the way back (Content-Length follows the new body).
        """
        text = b"compress me " * 200
        flow = make_flow(response_headers={"content-encoding": "gzip"}, response_body=text)
        assert flow.response is not None
        content = flow_to_entry(flow)["response"]["content"]
        self.assertEqual(content["text"], text.decode())
        self.assertEqual(content["size"], len(text))
        self.assertEqual(content["compression"], len(text) - len(flow.response.raw_content or b""))
        [back] = round_trip(flow)
        assert back.response is not None
        self.assertEqual(back.response.content, text)
        self.assertEqual(gzip.decompress(back.response.raw_content or b""), text)
        self.assertEqual(
            back.response.headers["content-length"], str(len(back.response.raw_content or b""))
        )

    def test_undecodable(self) -> None:
        """A body its Content-Encoding cannot decode is written raw, marked, and read back raw."""
        flow = make_flow(response_headers={"content-encoding": "gzip"})
        assert flow.response is not None
        flow.response.raw_content = b"not gzip at all"
        content = flow_to_entry(flow)["response"]["content"]
        self.assertEqual(content["text"], "not gzip at all")
        self.assertIs(content["_undecoded"], True)
        [back] = round_trip(flow)
        assert back.response is not None
        self.assertEqual(back.response.raw_content, b"not gzip at all")
        self.assertEqual(back.response.headers["content-encoding"], "gzip")

    def test_no_response(self) -> None:
        """A flow without a response is status 0 with _error, and comes back with that error."""
        flow = make_flow(status=None)
        flow.error = Error("Connection refused")
        entry = flow_to_entry(flow)
        self.assertEqual(entry["response"]["status"], 0)
        self.assertEqual(entry["response"]["_error"], "Connection refused")
        [back] = round_trip(flow)
        self.assertSameFlow(flow, back)
        assert back.error is not None
        self.assertEqual(back.error.msg, "Connection refused")

    def test_http2(self) -> None:
        """An HTTP/2 flow keeps its version and authority; its header sizes are unknown (-1)."""
        flow = make_flow(url="https://example.com:8443/x")
        flow.request.http_version = "HTTP/2.0"
        flow.request.authority = "example.com:8443"
        assert flow.response is not None
        flow.response.http_version = "HTTP/2.0"
        entry = flow_to_entry(flow)
        self.assertEqual(entry["request"]["headersSize"], -1)
        self.assertEqual(entry["response"]["headersSize"], -1)
        [back] = round_trip(flow)
        self.assertSameFlow(flow, back)
        self.assertEqual(back.request.authority, "example.com:8443")

    @settings(max_examples=60, deadline=None)
    @given(
        body=st.binary(max_size=300),
        content_type=st.sampled_from(
            ["text/plain", "text/html; charset=latin-1", "application/octet-stream", ""]
        ),
    )
    def test_any_body(self, body: bytes, content_type: str) -> None:
        """Whatever the bytes and their declared type, the body comes back exact."""
        headers = {"content-type": content_type} if content_type else {}
        flow = make_flow("POST", request_body=body, request_headers=headers,
                         response_body=body, response_headers=headers)
        [back] = round_trip(flow)
        assert back.response is not None
        self.assertEqual(back.request.content, body)
        self.assertEqual(back.response.content, body)


class EntryTests(unittest.TestCase):
    """
    What an entry holds, and that it is valid HAR 1.2.
    """

    def test_fields(self) -> None:
        """Query, cookies, form params, sizes, timings and server address are filled in."""
        flow = make_flow(
            "POST",
            request_body=b"name=a+b&x=%26",
            request_headers={
                "content-type": "application/x-www-form-urlencoded",
                "cookie": "sid=abc; theme=dark",
            },
            response_headers={
                "set-cookie": "sid=new; Path=/app; Domain=example.com; HttpOnly; Secure; "
                "Expires=Wed, 21 Oct 2037 07:28:00 GMT; SameSite=Lax",
                "location": "/next",
            },
            status=302,
        )
        entry = flow_to_entry(flow)
        request, response = entry["request"], entry["response"]
        self.assertEqual(
            request["queryString"], [{"name": "a", "value": "1"}, {"name": "b", "value": "two words"}]
        )
        self.assertEqual(
            request["cookies"], [{"name": "sid", "value": "abc"}, {"name": "theme", "value": "dark"}]
        )
        self.assertEqual(
            request["postData"]["params"],
            [{"name": "name", "value": "a b"}, {"name": "x", "value": "&"}],
        )
        self.assertEqual(request["bodySize"], 14)
        head = b"POST /path?a=1&b=two%20words HTTP/1.1\r\n" + flow.request.headers.to_bytes() + b"\r\n"
        self.assertEqual(request["headersSize"], len(head))
        self.assertEqual(
            response["cookies"],
            [
                {
                    "name": "sid",
                    "value": "new",
                    "path": "/app",
                    "domain": "example.com",
                    "sameSite": "Lax",
                    "expires": "2037-10-21T07:28:00.000+00:00",
                    "httpOnly": True,
                    "secure": True,
                }
            ],
        )
        self.assertEqual(response["redirectURL"], "/next")
        self.assertEqual(entry["serverIPAddress"], "127.0.0.1")
        self.assertEqual(entry["startedDateTime"], "2023-11-14T22:13:20.250+00:00")
        timings = entry["timings"]
        self.assertEqual((timings["blocked"], timings["dns"], timings["ssl"]), (-1, -1, -1))
        self.assertAlmostEqual(timings["send"], 10, places=3)
        self.assertAlmostEqual(timings["connect"], 8, places=3)
        self.assertAlmostEqual(timings["wait"], 32, places=3)
        self.assertAlmostEqual(timings["receive"], 12.5, places=3)
        self.assertAlmostEqual(entry["time"], 62.5, places=3)

    def test_reused_connection(self) -> None:
        """A connection opened before the request started was not paid for by it: connect -1."""
        flow = make_flow()
        assert flow.server_conn is not None
        flow.server_conn.timestamp_start = T0 - 5
        flow.server_conn.timestamp_tcp_setup = T0 - 4.9
        timings = flow_to_entry(flow)["timings"]
        self.assertEqual(timings["connect"], -1)
        self.assertAlmostEqual(timings["wait"], 40, places=3)

    def test_schema(self) -> None:
        """A HAR of varied flows is valid against the HAR 1.2 schema; an invalid one is caught."""
        failed = make_flow(status=None)
        failed.error = Error("refused")
        unknown = make_flow()
        unknown.request.timestamp_end = None
        assert unknown.response is not None
        unknown.response.timestamp_end = None
        unknown.response.raw_content = None
        unknown.server_conn = None
        flows = [
            make_flow(),
            make_flow("POST", request_body=bytes(range(40)), response_body=b"\x00\xff"),
            failed,
            unknown,
            make_flow(response_headers={"set-cookie": "a=b; Expires=nonsense; Max-Age=x"}),
        ]
        document = json.loads(write(*flows))
        self.assertEqual(len(document["log"]["entries"]), len(flows))
        self.assertEqual(document["log"]["creator"]["name"], "interceptor")
        self.assertEqual(schema_errors(document), [])
        del document["log"]["entries"][0]["request"]["url"]
        document["log"]["entries"][1]["timings"]["wait"] = -1
        self.assertEqual(len(schema_errors(document)), 2)

    def test_not_http(self) -> None:
        """Only HTTP flows make entries."""
        self.assertRaises(TypeError, flow_to_entry, object())


class WriterTests(unittest.TestCase):
    """
    L{HarWriter} writes as it goes.
    """

    def test_streams(self) -> None:
        """The head is written at once, each entry when added, the tail on close."""
        out = io.BytesIO()
        writer = HarWriter(out)
        self.assertIn(b'"entries": [', out.getvalue())
        writer.add(make_flow())
        after_one = len(out.getvalue())
        self.assertIn(b'"url": "http://example.com/path', out.getvalue())
        writer.add(make_flow(url="http://example.com/second"))
        self.assertGreater(len(out.getvalue()), after_one)
        self.assertEqual(writer.count, 2)
        writer.close()
        writer.close()
        document = json.loads(out.getvalue())
        self.assertEqual(
            [e["request"]["url"] for e in document["log"]["entries"]],
            ["http://example.com/path?a=1&b=two%20words", "http://example.com/second"],
        )
        self.assertEqual(document["log"]["pages"], [])
        self.assertEqual(document["log"]["version"], "1.2")
        e = self.assertRaises(ValueError, writer.add, make_flow())
        self.assertIn("closed", str(e))

    def test_empty(self) -> None:
        """A writer closed with no entries leaves a valid, empty HAR."""
        document = json.loads(write())
        self.assertEqual(document["log"]["entries"], [])
        self.assertEqual(schema_errors(document), [])


def _har(*entries: Any, creator: str = "WebInspector") -> bytes:
    return json.dumps(
        {"log": {"version": "1.2", "creator": {"name": creator, "version": "537.36"},
                 "pages": [], "entries": list(entries)}}
    ).encode()


# Entries as Chromium's devtools export writes them (trimmed of nothing it needs).
CHROMIUM_ENTRY = {
    "_initiator": {"type": "other"},
    "_priority": "VeryHigh",
    "_resourceType": "document",
    "cache": {},
    "connection": "52718",
    "pageref": "page_1",
    "request": {
        "method": "POST",
        "url": "https://example.com/api?q=1",
        "httpVersion": "http/2.0",
        "headers": [
            {"name": ":authority", "value": "example.com"},
            {"name": ":method", "value": "POST"},
            {"name": ":path", "value": "/api?q=1"},
            {"name": ":scheme", "value": "https"},
            {"name": "content-type", "value": "application/x-www-form-urlencoded"},
            {"name": "accept-encoding", "value": "gzip, deflate, br"},
        ],
        "queryString": [{"name": "q", "value": "1"}],
        "cookies": [],
        "headersSize": -1,
        "bodySize": 7,
        "postData": {
            "mimeType": "application/x-www-form-urlencoded",
            "text": "a=1&b=2",
            "params": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}],
        },
    },
    "response": {
        "status": 200,
        "statusText": "",
        "httpVersion": "http/2.0",
        "headers": [
            {"name": "content-encoding", "value": "gzip"},
            {"name": "content-type", "value": "image/gif"},
        ],
        "cookies": [],
        "content": {
            "size": 6,
            "mimeType": "image/gif",
            "text": "R0lGODlh",
            "encoding": "base64",
        },
        "redirectURL": "",
        "headersSize": -1,
        "bodySize": -1,
        "_transferSize": 400,
        "_error": None,
        "_fetchedViaServiceWorker": False,
    },
    "serverIPAddress": "[2606:2800:220:1:248:1893:25c8:1946]",
    "startedDateTime": "2024-05-01T12:00:00.100Z",
    "time": 60.5,
    "timings": {
        "blocked": 2.5,
        "dns": 4,
        "ssl": 10,
        "connect": 20,
        "send": 1,
        "wait": 30,
        "receive": 3,
        "_blocked_queueing": 1.2,
        "_workerStart": -1,
    },
}

CHROMIUM_FAILED = {
    "cache": {},
    "request": {
        "method": "GET", "url": "http://example.com/blocked", "httpVersion": "",
        "headers": [], "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0,
    },
    "response": {
        "status": 0, "statusText": "", "httpVersion": "", "headers": [], "cookies": [],
        "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "",
        "headersSize": -1, "bodySize": -1, "_transferSize": 0,
        "_error": "net::ERR_CONNECTION_REFUSED",
    },
    "startedDateTime": "2024-05-01T12:00:01.000Z",
    "time": 0,
    "timings": {"blocked": -1, "dns": -1, "ssl": -1, "connect": -1, "send": 0, "wait": 0,
                "receive": 0},
}

# As Firefox writes an image: no content text, HTTP/2, a local time offset.
FIREFOX_ENTRY = {
    "pageref": "page_1",
    "startedDateTime": "2024-05-01T14:00:00.500+02:00",
    "request": {
        "bodySize": 0, "method": "GET", "url": "https://example.com/logo.png",
        "httpVersion": "HTTP/2",
        "headers": [{"name": "Host", "value": "example.com"},
                    {"name": "Cookie", "value": "a=1"}],
        "cookies": [{"name": "a", "value": "1"}], "queryString": [], "headersSize": 60,
    },
    "response": {
        "status": 200, "statusText": "OK", "httpVersion": "HTTP/2",
        "headers": [{"name": "content-type", "value": "image/png"}],
        "cookies": [],
        "content": {"mimeType": "image/png", "size": 5000},
        "redirectURL": "", "headersSize": 120, "bodySize": 5120,
    },
    "cache": {},
    "timings": {"blocked": 0, "dns": 0, "connect": 0, "ssl": 0, "send": 0, "wait": 35,
                "receive": 1},
    "time": 36,
    "_securityState": "secure",
    "serverIPAddress": "93.184.216.34",
    "connection": "443",
}


class BrowserHarTests(unittest.TestCase):
    """
    HARs as browsers export them are read leniently.
    """

    def test_chromium(self) -> None:
        """Chromium's fields: pseudo-headers, http/2.0, base64 content, its timing order."""
        [flow, failed] = read_har(io.BytesIO(_har(CHROMIUM_ENTRY, CHROMIUM_FAILED)), "c.har")
        request = flow.request
        self.assertEqual((request.method, request.url), ("POST", "https://example.com/api?q=1"))
        self.assertEqual(request.http_version, "HTTP/2.0")
        self.assertEqual(request.authority, "example.com")
        self.assertNotIn(":method", request.headers)
        self.assertEqual(request.content, b"a=1&b=2")
        assert flow.response is not None
        self.assertEqual(flow.response.content, b"GIF89a")
        self.assertEqual(flow.response.headers["content-encoding"], "gzip")
        self.assertEqual(gzip.decompress(flow.response.raw_content or b""), b"GIF89a")
        assert flow.server_conn is not None
        self.assertEqual(flow.server_conn.peername, ("2606:2800:220:1:248:1893:25c8:1946", 443))
        start = 1714564800.100
        # blocked, dns and connect come before the request is sent.
        self.assertAlmostEqual(request.timestamp_start, start + 0.0265, delta=0.001)
        self.assertAlmostEqual(request.timestamp_end, start + 0.0275, delta=0.001)
        self.assertAlmostEqual(flow.response.timestamp_start, start + 0.0575, delta=0.001)
        self.assertAlmostEqual(flow.response.timestamp_end, start + 0.0605, delta=0.001)
        self.assertAlmostEqual(flow.server_conn.timestamp_start, start + 0.0065, delta=0.001)
        self.assertAlmostEqual(flow.server_conn.timestamp_tcp_setup, start + 0.0165, delta=0.001)
        self.assertIsNone(failed.response)
        assert failed.error is not None
        self.assertEqual(failed.error.msg, "net::ERR_CONNECTION_REFUSED")
        self.assertEqual(failed.request.http_version, "HTTP/1.1")

    def test_firefox(self) -> None:
        """Firefox's: a missing content text is an empty body; a local offset is honoured."""
        [flow] = read_har(io.BytesIO(_har(FIREFOX_ENTRY, creator="Firefox")), "f.har")
        self.assertEqual(flow.request.cookies["a"], "1")
        self.assertEqual(flow.request.headers["host"], "example.com")
        assert flow.response is not None
        self.assertEqual(flow.response.content, b"")
        self.assertAlmostEqual(flow.request.timestamp_start, 1714564800.5, delta=0.001)
        self.assertAlmostEqual(flow.response.timestamp_end, 1714564800.536, delta=0.001)

    def test_rewritten_is_valid(self) -> None:
        """Browsers' flows written again by us are valid HAR 1.2."""
        flows = list(read_har(io.BytesIO(_har(CHROMIUM_ENTRY, CHROMIUM_FAILED, FIREFOX_ENTRY))))
        self.assertEqual(schema_errors(json.loads(write(*flows))), [])

    def test_text_file(self) -> None:
        """A file opened in text mode reads as well; its name is the default label."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(_har(FIREFOX_ENTRY))
        with open(path, encoding="utf-8") as f:
            [flow] = read_har(f)
        self.assertEqual(flow.request.url, "https://example.com/logo.png")


class MalformedTests(unittest.TestCase):
    """
    A malformed HAR is refused with a HarError naming the file and the entry.
    """

    def refuse(self, data: bytes, *expected: str) -> str:
        def read() -> list[HTTPFlow]:
            return list(read_har(io.BytesIO(data), "bad.har"))

        message = str(self.assertRaises(HarError, read))
        for part in ("bad.har", *expected):
            self.assertIn(part, message)
        return message

    def entry_with(self, path: list[Any], value: Any) -> bytes:
        entry = json.loads(json.dumps(FIREFOX_ENTRY))
        target = entry
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return _har(FIREFOX_ENTRY, entry)

    def test_not_json(self) -> None:
        self.refuse(b'{"log": ', "not a JSON document")
        self.refuse(b"[" * 100_000, "not a JSON document")

    def test_not_har(self) -> None:
        self.refuse(b"[]", "not a HAR file")
        self.refuse(b'{"log": {"entries": {}}}', "log.entries: expected list")

    def test_bad_entries(self) -> None:
        self.refuse(_har(FIREFOX_ENTRY, 5), "entry 1: expected an object")
        self.refuse(self.entry_with(["request"], KeyError), "entry 1.request: missing")
        self.refuse(self.entry_with(["request", "url"], "not a url"), "entry 1.request.url")
        self.refuse(self.entry_with(["request", "method"], 7), "request.method: expected str")
        self.refuse(self.entry_with(["startedDateTime"], "yesterday"), "entry 1.startedDateTime")
        self.refuse(self.entry_with(["response", "status"], 42), "response.status")
        self.refuse(self.entry_with(["response", "status"], True), "got a boolean")
        self.refuse(self.entry_with(["timings", "wait"], "slow"), "timings.wait")
        self.refuse(
            self.entry_with(["request", "headers", 1], ["Cookie", "a=1"]),
            "entry 1.request.headers[1]",
        )
        self.refuse(
            self.entry_with(["response", "content"], {"text": "@@@", "encoding": "base64"}),
            "content.text: bad base64",
        )

    def test_first_entries_come_first(self) -> None:
        """Entries before a bad one are read; the error comes when the bad one is reached."""
        flows = read_har(io.BytesIO(_har(FIREFOX_ENTRY, {})), "bad.har")
        self.assertEqual(next(flows).request.url, "https://example.com/logo.png")
        self.assertRaises(HarError, next, flows)
