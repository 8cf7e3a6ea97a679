# -*- test-case-name: tests.test_io -*-
"""
Tests for L{interceptor.io}: interceptor's own flow files, written and read
back (round trips of every field, truncation, corruption, versions,
appending).
"""

from __future__ import annotations

import io
import os
import tempfile
from typing import Any

import msgpack
from cryptography.hazmat.primitives.serialization import Encoding
from twisted.trial.unittest import SynchronousTestCase

from interceptor.io import FlowReader, FlowReadException, FlowWriter, read_flows_from_paths
from interceptor.io.framing import HEADER, new_packer
from interceptor.io.state import UnknownFlowType, flow_from_state, flow_to_state
from interceptor.model.connection import ClientConnection, ServerConnection
from interceptor.model.flow import Error, Flow, HTTPFlow
from interceptor.model.headers import Headers
from interceptor.model.tcp import TCPFlow, TCPMessage
from interceptor.model.websocket import Opcode, WebSocketData, WebSocketMessage
from interceptor.tls.certs import CertStore
from tests.test_http import req, resp

ALL_BYTES = bytes(range(256))


def full_http_flow() -> HTTPFlow:
    """
    An HTTP flow with every field the format keeps set to something other
    than its default.
    """
    client = ClientConnection(("::1", 50000), ("::1", 8080))
    client.tls_established = True
    client.sni = "example.com"
    client.alpn = b"h2"
    client.tls_version = "TLSv1.3"
    client.timestamp_end = 1010.0
    server = ServerConnection(("example.com", 443))
    server.peername = ("127.0.0.1", 443)
    server.sockname = ("127.0.0.1", 40000)
    server.tls_established = True
    server.certificate_list = [CertStore.create_ca("roundtrip")[0]]
    server.error = "reset by peer"
    server.timestamp_start, server.timestamp_tcp_setup, server.timestamp_end = 1000.1, 1000.2, 1009.0
    request = req(
        "/p\udcff?q=\u00e9",
        [(b"Host", b"example.com"), (b"X-Odd", b"\x00\xff\r caf\xe9"), (b"x-odd", b"2")],
        ALL_BYTES,
        method="POST",
        scheme="https",
        port=443,
        authority="example.com:443",
        http_version="HTTP/2.0",
        timestamp_start=1000.0,
        timestamp_end=1000.5,
    )
    request.trailers = Headers([(b"grpc-status", b"0")])
    response = resp([(b"Content-Type", b"application/octet-stream")], ALL_BYTES[::-1],
                    timestamp_start=1001.0, timestamp_end=1002.0)
    response.status_code, response.reason = 599, "Odd \u00e9"
    response.trailers = Headers([(b"x-trailer", b"\xff")])
    flow = HTTPFlow(client, server, request)
    flow.response = response
    flow.error = Error("it broke", 1003.0)
    flow.killed = True
    flow.marked = ":star:"
    flow.comment = "a comment \u2603"
    flow.is_replay = "request"
    flow.metadata = {"n": 1, "list": [1, "two", b"\x03"], "nested": {"k": None}}
    flow.timestamp_created = 999.0
    return flow


def websocket_flow() -> HTTPFlow:
    """
    An upgraded flow with a text, a binary, a dropped and an injected message.
    """
    flow = HTTPFlow(ClientConnection(("127.0.0.1", 1)), ServerConnection(("h", 80)),
                    req("/ws", timestamp_start=1.0, timestamp_end=1.0))
    flow.response = resp([(b"Upgrade", b"websocket")], b"", timestamp_start=2.0, timestamp_end=2.0)
    flow.response.status_code = 101
    data = WebSocketData("permessage-deflate")
    data.messages = [
        WebSocketMessage(Opcode.TEXT, True, "h\u00e9llo".encode(), 3.0),
        WebSocketMessage(Opcode.BINARY, False, ALL_BYTES, 4.0),
        WebSocketMessage(Opcode.TEXT, True, b"dropped", 5.0, dropped=True),
        WebSocketMessage(Opcode.BINARY, False, b"", 6.0, injected=True),
    ]
    data.closed_by_client, data.close_code, data.close_reason = False, 1001, "going away"
    data.timestamp_start, data.timestamp_end = 2.5, 7.0
    flow.websocket = data
    return flow


def tcp_flow() -> TCPFlow:
    """
    A TCP flow with a message each way, one killed.
    """
    flow = TCPFlow(ClientConnection(("127.0.0.1", 2)), ServerConnection(("127.0.0.1", 9)))
    flow.messages = [TCPMessage(True, ALL_BYTES, 1.5), TCPMessage(False, b"\x00", 1.75)]
    flow.messages[1].kill()
    flow.error = Error("closed", 2.0)
    return flow


def write(*flows: Flow) -> bytes:
    """
    A flow file holding C{flows}.
    """
    out = io.BytesIO()
    writer = FlowWriter(out)
    for flow in flows:
        writer.add(flow)
    return out.getvalue()


def read(data: bytes, **kwargs: Any) -> tuple[list[Flow], FlowReader]:
    """
    The flows of a file's bytes, and the reader (for its problems).
    """
    reader = FlowReader(io.BytesIO(data), "test.flows", **kwargs)
    return list(reader.stream()), reader


def conn_fields(conn: Any) -> dict[str, Any]:
    names = ["address", "sockname", "tls_established", "sni", "alpn", "tls_version", "error",
             "timestamp_start", "timestamp_end", "peername", "timestamp_tcp_setup"]
    fields = {name: getattr(conn, name, None) for name in names}
    fields["certificates"] = [c.public_bytes(Encoding.DER) for c in conn.certificate_list]
    return fields


def message_fields(message: Any) -> dict[str, Any]:
    names = ["http_version", "raw_content", "timestamp_start", "timestamp_end", "method",
             "scheme", "host", "port", "path", "authority", "status_code", "reason"]
    fields = {name: getattr(message, name, None) for name in names}
    fields["headers"] = message.headers.fields
    fields["trailers"] = None if message.trailers is None else message.trailers.fields
    return fields


class RoundTripTests(SynchronousTestCase):
    """
    Every field written is read back as it was.
    """

    def test_flat_header_fields_still_read(self) -> None:
        """
        Records of the first files, with header fields flattened (name,
        value, name, value, ...), read as the pairs they were.
        """
        flow = HTTPFlow(ClientConnection(("127.0.0.1", 1)), None, req())
        state = flow_to_state(flow)
        pairs = list(state["request"]["headers"])
        state["request"]["headers"] = [part for pair in pairs for part in pair]
        read = flow_from_state(msgpack.unpackb(new_packer().pack(state), raw=False))
        assert isinstance(read, HTTPFlow)
        self.assertEqual(read.request.headers.fields, pairs)

    def assertSameFlow(self, got: Flow, want: Flow) -> None:
        self.assertIs(type(got), type(want))
        self.assertFalse(got.live)
        for name in ["id", "timestamp_created", "killed", "marked", "comment", "is_replay",
                     "metadata"]:
            self.assertEqual(getattr(got, name), getattr(want, name), name)
        self.assertEqual(conn_fields(got.client_conn), conn_fields(want.client_conn))
        if want.server_conn is None:
            self.assertIsNone(got.server_conn)
        else:
            self.assertEqual(conn_fields(got.server_conn), conn_fields(want.server_conn))
        if want.error is None:
            self.assertIsNone(got.error)
        else:
            self.assertEqual((got.error.msg, got.error.timestamp),
                             (want.error.msg, want.error.timestamp))

    def test_http(self) -> None:
        """
        An HTTP flow with every field set: bodies of all 256 byte values,
        odd header bytes, trailers, str fields with lone surrogates, a
        certificate, an error, metadata.
        """
        want = full_http_flow()
        [got] = read(write(want))[0]
        self.assertSameFlow(got, want)
        assert isinstance(got, HTTPFlow)
        self.assertEqual(message_fields(got.request), message_fields(want.request))
        self.assertEqual(message_fields(got.response), message_fields(want.response))
        self.assertEqual(got.request.raw_content, ALL_BYTES)
        self.assertIsNone(got.websocket)

    def test_no_response_no_server_streamed_body(self) -> None:
        """
        A flow without a response or server connection, whose request body
        was streamed (C{raw_content} None), comes back so.
        """
        want = HTTPFlow(ClientConnection(("127.0.0.1", 1)), None, req("/", [], None))
        [got] = read(write(want))[0]
        self.assertSameFlow(got, want)
        assert isinstance(got, HTTPFlow)
        self.assertIsNone(got.response)
        self.assertIsNone(got.request.raw_content)
        self.assertIsNone(got.request.trailers)
        self.assertEqual(got.request.headers.fields, [])

    def test_websocket(self) -> None:
        """
        The WebSocket data and each message's fields come back.
        """
        want = websocket_flow()
        [got] = read(write(want))[0]
        self.assertSameFlow(got, want)
        assert isinstance(got, HTTPFlow) and got.websocket is not None
        assert want.websocket is not None
        fields = ["closed_by_client", "close_code", "close_reason", "extensions",
                  "timestamp_start", "timestamp_end"]
        for name in fields:
            self.assertEqual(getattr(got.websocket, name), getattr(want.websocket, name), name)
        def messages(flow: HTTPFlow) -> list[tuple[Any, ...]]:
            return [(m.type, m.from_client, m.content, m.timestamp, m.dropped, m.injected)
                    for m in flow.messages]
        self.assertEqual(messages(got), messages(want))
        self.assertEqual(got.messages[0].text, "h\u00e9llo")
        self.assertFalse(got.websocket.live)

    def test_tcp(self) -> None:
        """
        A TCP flow's messages (and which were killed) come back.
        """
        want = tcp_flow()
        [got] = read(write(want))[0]
        self.assertSameFlow(got, want)
        assert isinstance(got, TCPFlow)
        self.assertEqual(
            [(m.from_client, m.content, m.timestamp, m.killed) for m in got.messages],
            [(True, ALL_BYTES, 1.5, False), (False, b"\x00", 1.75, True)],
        )

    def test_many_in_order(self) -> None:
        """
        Several flows of each kind come back in the order written.
        """
        flows = [full_http_flow(), tcp_flow(), websocket_flow()] * 3
        got = read(write(*flows))[0]
        self.assertEqual([f.id for f in got], [f.id for f in flows])

    def test_unpackable_metadata_dropped(self) -> None:
        """
        Metadata values msgpack cannot write are left out; the rest of the
        flow, and the other metadata, are written.
        """
        want = tcp_flow()
        want.metadata = {"ok": [1, 2], "object": object(), "huge": 2**80, "fine": "yes"}
        [got] = read(write(want))[0]
        self.assertEqual(got.metadata, {"ok": [1, 2], "fine": "yes"})
        self.assertIn("object", want.metadata)  # (the flow itself is left alone)

    def test_unknown_flow_type(self) -> None:
        """
        A kind of flow with no record layout is refused by name.
        """
        flow = Flow(ClientConnection(("127.0.0.1", 1)))
        self.assertRaises(UnknownFlowType, FlowWriter(io.BytesIO()).add, flow)
        self.assertRaises(UnknownFlowType, flow_from_state, dict(flow_to_state(tcp_flow()), type="udp"))


class StreamTests(SynchronousTestCase):
    """
    Reading is incremental and files can be appended to.
    """

    def test_one_at_a_time(self) -> None:
        """
        The first flow is handed on before later bytes are read: a file
        whose end is garbage yields its first flow, then fails.
        """
        data = write(tcp_flow()) + b"\xc1" * 10
        stream = FlowReader(io.BytesIO(data), "x").stream()
        self.assertIsInstance(next(stream), TCPFlow)
        self.assertRaises(FlowReadException, next, stream)

    def test_empty(self) -> None:
        """
        An empty file has no flows and no problems; a header alone neither.
        """
        for data in (b"", HEADER, HEADER + HEADER):
            flows, reader = read(data)
            self.assertEqual((flows, reader.problems), ([], []))

    def test_append(self) -> None:
        """
        A file written in two goes (the second opened with "ab", so a header
        comes mid-file) reads as one.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            FlowWriter(f).add(tcp_flow())
        with open(path, "ab") as f:
            FlowWriter(f).add(websocket_flow())
        self.assertEqual([f.type for f in read_flows_from_paths([path])], ["tcp", "http"])

    def test_open_plus_appends(self) -> None:
        """
        C{FlowWriter.open("+path")} appends, after dropping a cut last
        record; without "+" it replaces.
        """
        path = self.mktemp()
        with FlowWriter.open(path) as writer:
            writer.add(tcp_flow())
        with open(path, "ab") as f:
            f.write(write(tcp_flow())[:-5])  # (killed mid-write)
        with FlowWriter.open("+" + path) as writer:
            writer.add(websocket_flow())
        problems: list[str] = []
        self.assertEqual([f.type for f in read_flows_from_paths([path], problems.append)],
                         ["tcp", "http"])
        self.assertEqual(problems, [])
        with FlowWriter.open(path) as writer:
            writer.add(websocket_flow())
        self.assertEqual(len(read_flows_from_paths([path])), 1)

    def test_open_plus_makes_a_new_file(self) -> None:
        """
        C{FlowWriter.open("+path")} of a file that does not exist yet makes it.
        """
        path = self.mktemp()
        with FlowWriter.open("+" + path) as writer:
            writer.add(tcp_flow())
        self.assertEqual([f.type for f in read_flows_from_paths([path])], ["tcp"])

    def test_open_plus_refuses_foreign(self) -> None:
        """
        Appending to a file of another kind is refused, naming it; the file
        is left as it was.
        """
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"12:{not ours}")
        e = self.assertRaises(FlowReadException, FlowWriter.open, "+" + path)
        self.assertIn(path, str(e))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"12:{not ours}")

    def test_missing_file(self) -> None:
        """
        A file that cannot be opened is a FlowReadException naming it.
        """
        path = os.path.join(tempfile.gettempdir(), "no-such-dir-interceptor", "x.flows")
        e = self.assertRaises(FlowReadException, read_flows_from_paths, [path])
        self.assertIn(path, str(e))


class BadFileTests(SynchronousTestCase):
    """
    A truncated last record is a problem, reported; anything else wrong is
    one FlowReadException naming the file and offset.
    """

    def test_cut_at_every_byte(self) -> None:
        """
        A file cut at every byte of its last record yields the whole
        records before it and reports the cut, with its offset, once.
        """
        flows = [full_http_flow(), tcp_flow(), websocket_flow()]
        head = write(*flows[:2])
        whole = write(*flows)
        last_start = len(head)
        self.assertEqual(len(read(whole)[0]), 3)
        for cut in range(last_start + 1, len(whole)):
            reported: list[str] = []
            flows, reader = read(whole[:cut], report=reported.append)
            self.assertEqual([f.type for f in flows], ["http", "tcp"], cut)
            self.assertEqual(len(reader.problems), 1, cut)
            self.assertEqual(reported, reader.problems)
            self.assertIn(f"byte {last_start}", reader.problems[0])
            self.assertIn("test.flows", reader.problems[0])
        flows, reader = read(whole[:last_start])
        self.assertEqual((len(flows), reader.problems), (2, []))

    def test_header_cut(self) -> None:
        """
        A file cut inside its header has no flows and reports the cut.
        """
        for cut in range(1, len(HEADER)):
            flows, reader = read(HEADER[:cut])
            self.assertEqual(flows, [])
            self.assertEqual(len(reader.problems), 1, cut)

    def test_foreign(self) -> None:
        """
        A file of no known kind is refused at byte 0, its start shown.
        """
        e = self.assertRaises(FlowReadException, read, b"GIF89a\x00\x00")
        self.assertEqual(str(e), "test.flows: byte 0: not a flow file (it starts with b'GIF89a\\x00\\x00')")
        self.assertEqual((e.name, e.offset), ("test.flows", 0))

    def test_newer_version(self) -> None:
        """
        A file of a newer format version is refused, saying so.
        """
        data = msgpack.packb({"format": "interceptor-flows", "version": 99})
        e = self.assertRaises(FlowReadException, read, data)
        self.assertIn("newer interceptor", str(e))
        self.assertIn("version 99", str(e))
        later = write(tcp_flow()) + data
        e = self.assertRaises(FlowReadException, read, later)
        self.assertIn(f"byte {len(write(tcp_flow()))}", str(e))

    def test_not_msgpack_mid_file(self) -> None:
        """
        Bytes that are not msgpack after a whole record: the error names
        their offset.
        """
        good = write(tcp_flow())
        e = self.assertRaises(FlowReadException, read, good + b"\xc1rest")
        self.assertEqual(e.offset, len(good))
        self.assertIn(f"test.flows: byte {len(good)}", str(e))

    def test_bad_records(self) -> None:
        """
        Records that are msgpack but not flows (not a map, missing or
        wrongly typed fields) are errors naming their offset.
        """
        good_state = flow_to_state(tcp_flow())
        bad: list[Any] = [
            [1, 2],
            {"type": "tcp"},
            dict(good_state, messages=[[True]]),
            dict(good_state, client_conn=dict(good_state["client_conn"], address=None)),
            dict(good_state, type="udp"),
            dict(flow_to_state(full_http_flow()), request=dict(
                flow_to_state(full_http_flow())["request"], method=5)),
            dict(flow_to_state(full_http_flow()), response=dict(
                flow_to_state(full_http_flow())["response"], headers=[b"a", "b"])),
        ]
        for record in bad:
            data = HEADER + new_packer().pack(record)
            e = self.assertRaises(FlowReadException, read, data)
            self.assertEqual(e.offset, len(HEADER), record)
            self.assertIn(f"byte {len(HEADER)}", str(e))

    def test_huge_declared_length(self) -> None:
        """
        A record that announces 4 GiB in a short file is a cut record, read
        without allocating what it announces.
        """
        data = write(tcp_flow()) + b"\xc6\xff\xff\xff\xf0" + b"x" * 10
        flows, reader = read(data)
        self.assertEqual(len(flows), 1)
        self.assertEqual(len(reader.problems), 1)


class _Unseekable(io.RawIOBase):
    """
    A pipe-like stream: readable, not seekable.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._data.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


HAR = b"""\xef\xbb\xbf {"log": {"version": "1.2", "creator": {"name": "t", "version": "1"},
 "entries": [{"startedDateTime": "2026-01-01T00:00:00.000Z", "time": 1,
  "request": {"method": "GET", "url": "http://example.com/har", "httpVersion": "HTTP/1.1",
   "cookies": [], "headers": [{"name": "Host", "value": "example.com"}],
   "queryString": [], "headersSize": -1, "bodySize": 0},
  "response": {"status": 204, "statusText": "No Content", "httpVersion": "HTTP/1.1",
   "cookies": [], "headers": [], "content": {"size": 0, "mimeType": ""},
   "redirectURL": "", "headersSize": -1, "bodySize": 0},
  "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}}]}}"""


class HarDispatchTests(SynchronousTestCase):
    """
    A JSON file goes to L{interceptor.io.har}.
    """

    def test_har(self) -> None:
        """
        A HAR file (with a BOM, from a seekable file or a pipe) is read by
        the HAR reader.
        """
        for stream in (io.BytesIO(HAR), io.BufferedReader(_Unseekable(HAR))):
            reader = FlowReader(stream, "x.har")
            [flow] = reader.stream()
            assert isinstance(flow, HTTPFlow) and flow.response is not None
            self.assertEqual((flow.request.url, flow.response.status_code),
                             ("http://example.com/har", 204))
            self.assertFalse(flow.live)

    def test_bad_har(self) -> None:
        """
        A JSON file that is not a HAR is one FlowReadException naming the file.
        """
        e = self.assertRaises(FlowReadException, read, b'{"not": "har"}')
        self.assertIn("test.flows", str(e))
