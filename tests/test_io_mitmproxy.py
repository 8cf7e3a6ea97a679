# -*- test-case-name: tests.test_io_mitmproxy -*-
"""
Tests for reading mitmproxy's flow files (L{interceptor.io.tnetstring},
L{interceptor.io.mitmstate}) with L{interceptor.io.FlowReader}: the
committed mitmdump 12 fixture, a fresh one when mitmdump is at hand, and
files cut short or corrupt.
"""

from __future__ import annotations

import io
import os
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from interceptor.io import FlowReader, FlowReadException, read_flows_from_paths
from interceptor.io.tnetstring import parse
from interceptor.model.flow import Flow, HTTPFlow
from interceptor.model.tcp import TCPFlow
from interceptor.model.websocket import Opcode
from tests.fixtures import mitmtraffic

FIXTURE = os.path.join(os.path.dirname(mitmtraffic.__file__), "mitmproxy12.flows")


def dumps(value: Any) -> bytes:
    """
    A tnetstring, as mitmproxy writes them (tuples as lists, str as text).
    """
    if value is None:
        return b"0:~"
    if isinstance(value, bool):
        word = b"true" if value else b"false"
        return b"%d:%s!" % (len(word), word)
    if isinstance(value, int):
        return b"%d:%d#" % (len(str(value)), value)
    if isinstance(value, float):
        text = repr(value).encode()
        return b"%d:%s^" % (len(text), text)
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
        return b"%d:%s;" % (len(value), value)
    if isinstance(value, bytes):
        return b"%d:%s," % (len(value), value)
    if isinstance(value, (list, tuple)):
        body = b"".join(dumps(item) for item in value)
        return b"%d:%s]" % (len(body), body)
    body = b"".join(dumps(k) + dumps(v) for k, v in value.items())
    return b"%d:%s}" % (len(body), body)


def fixture_bytes() -> bytes:
    with open(FIXTURE, "rb") as f:
        return f.read()


def records(data: bytes) -> list[tuple[int, dict[str, Any]]]:
    """
    The top-level records of a mitmproxy file and their offsets.
    """
    out = []
    offset = 0
    while offset < len(data):
        colon = data.index(b":", offset)
        end = colon + 1 + int(data[offset:colon]) + 1
        out.append((offset, parse(data[offset:end])))
        offset = end
    return out


def read(data: bytes) -> tuple[list[Flow], FlowReader]:
    reader = FlowReader(io.BytesIO(data), "mitm.flows")
    return list(reader.stream()), reader


class TnetstringTests(SynchronousTestCase):
    """
    L{parse} reads every tnetstring type and refuses malformed ones.
    """

    def test_types(self) -> None:
        value = {"b": b"\x00\xff", "s": "caf\u00e9", "i": -12, "f": 1.5, "t": True, "n": None,
                 "l": [1, [False, b""]], "d": {}}
        self.assertEqual(parse(dumps(value)), value)

    def test_malformed(self) -> None:
        for data in [b"", b"3:ab,", b"2:ab?", b"x:ab,", b"4:true#", b"1:x~", b"5:maybe!",
                     b"3:1:a}", b"2:ab,extra", b"-1:,"]:
            self.assertRaises(ValueError, parse, data)

    def test_depth_bounded(self) -> None:
        """
        Lists nested past the limit are refused, not a RecursionError.
        """
        deep: Any = []
        for _ in range(200):
            deep = [deep]
        e = self.assertRaises(ValueError, parse, dumps(deep))
        self.assertIn("nested deeper", str(e))


class MitmdumpFileTests(SynchronousTestCase):
    """
    The flows mitmdump 12 recorded (tests/fixtures/mitmproxy12.flows) load
    with their fields.
    """

    def check_traffic(self, flows: list[Flow]) -> None:
        """
        C{flows} are what L{mitmtraffic.record} sends, in order.
        """
        self.assertEqual([f.type for f in flows], ["http"] * 4 + ["tcp"])
        get, post, secure, ws = [f for f in flows if isinstance(f, HTTPFlow)]
        for flow in flows:
            self.assertFalse(flow.live)
            self.assertEqual(flow.client_conn.address[0], mitmtraffic.LOOPBACK)
            self.assertEqual(len(flow.id), 36)
            self.assertIsNone(flow.error)
        self.assertEqual((get.request.method, get.request.scheme, get.request.path),
                         ("GET", "http", "/get?q=1"))
        self.assertEqual(get.request.host, mitmtraffic.LOOPBACK)
        assert get.response is not None and get.server_conn is not None
        self.assertEqual(get.request.port, get.server_conn.address[1])
        self.assertEqual((get.response.status_code, get.response.reason), (200, "OK"))
        self.assertEqual(get.response.headers[b"X-Odd"], b"caf\xe9")
        self.assertEqual(get.response.content, b"hello from /get?q=1")
        self.assertLess(get.request.timestamp_start, get.response.timestamp_end)
        self.assertEqual(post.request.raw_content, mitmtraffic.BINARY_BODY)
        assert post.response is not None
        self.assertEqual((post.response.status_code, post.response.reason), (201, "Created"))
        self.assertEqual(post.response.raw_content, mitmtraffic.BINARY_BODY[::-1])
        assert secure.server_conn is not None and secure.response is not None
        self.assertEqual(secure.request.url.split(":")[0], "https")
        self.assertTrue(secure.server_conn.tls_established)
        self.assertTrue(secure.client_conn.tls_established)
        self.assertEqual(secure.server_conn.sni, mitmtraffic.LOOPBACK)
        self.assertTrue(secure.server_conn.tls_version.startswith("TLS"))
        [cert] = secure.server_conn.certificate_list
        self.assertIn(mitmtraffic.LOOPBACK, cert.subject.rfc4514_string())
        self.assertEqual(secure.response.content, b"hello from /secure")
        assert ws.response is not None and ws.websocket is not None
        self.assertEqual(ws.response.status_code, 101)
        self.assertEqual(
            [(m.type, m.from_client, m.content) for m in ws.websocket.messages],
            [(Opcode.TEXT, True, mitmtraffic.WS_TEXT.encode()),
             (Opcode.TEXT, False, mitmtraffic.WS_TEXT.encode()),
             (Opcode.BINARY, True, mitmtraffic.WS_BINARY),
             (Opcode.BINARY, False, mitmtraffic.WS_BINARY)],
        )
        self.assertEqual(ws.websocket.close_code, 1000)
        tcp = flows[4]
        assert isinstance(tcp, TCPFlow)
        self.assertEqual(
            [(m.from_client, m.content) for m in tcp.messages],
            [(True, mitmtraffic.TCP_BYTES), (False, mitmtraffic.TCP_BYTES[::-1])],
        )

    def test_fixture(self) -> None:
        flows, reader = read(fixture_bytes())
        self.check_traffic(flows)
        self.assertEqual(reader.problems, [])

    def test_fresh_mitmdump(self) -> None:
        """
        A file mitmdump writes now (the binary named by
        C{INTERCEPTOR_MITMDUMP}) loads with the same fields.
        """
        mitmdump = os.environ.get("INTERCEPTOR_MITMDUMP")
        if not mitmdump:
            raise SkipTest("INTERCEPTOR_MITMDUMP does not name a mitmdump binary")
        path = self.mktemp()
        mitmtraffic.record(mitmdump, path)
        self.check_traffic(read_flows_from_paths([path]))

    def test_cut_at_every_byte(self) -> None:
        """
        The fixture cut at every byte of its last record: the other flows,
        and one problem naming the offset.
        """
        data = fixture_bytes()
        last = records(data)[-1][0]
        for cut in range(last + 1, len(data)):
            flows, reader = read(data[:cut])
            self.assertEqual(len(flows), 4, cut)
            self.assertEqual(len(reader.problems), 1, cut)
            self.assertIn(f"mitm.flows: the last record, at byte {last}", reader.problems[0])

    def test_udp_and_dns_skipped(self) -> None:
        """
        UDP and DNS flows are skipped, each kind reported in one line with
        its count and first offset.
        """
        data = fixture_bytes()
        tcp = records(data)[-1][1]
        extra = dumps(dict(tcp, type="dns")) * 2 + dumps(dict(tcp, type="udp"))
        flows, reader = read(data + extra)
        self.assertEqual(len(flows), 5)
        self.assertEqual(len(reader.problems), 2)
        self.assertIn(f"skipped 2 mitmproxy dns flow(s), the first at byte {len(data)}",
                      reader.problems[0])
        self.assertIn("udp", reader.problems[1])

    def test_versions(self) -> None:
        """
        State versions outside those known are refused, naming the version
        and the offset.
        """
        data = fixture_bytes()
        offset, first = records(data)[1]
        for version in (22, 18, "21"):
            e = self.assertRaises(
                FlowReadException, read, data[:offset] + dumps(dict(first, version=version))
            )
            self.assertIn(f"mitm.flows: byte {offset}", str(e))
            self.assertIn(f"version {version!r}", str(e))

    def test_corrupt(self) -> None:
        """
        A record whose inside is broken, or a record missing a field, is
        one error naming its offset.
        """
        data = fixture_bytes()
        offset, first = records(data)[1]
        broken = data[:offset] + dumps(first).replace(b"4:http,", b"4:httpX", 1)
        e = self.assertRaises(FlowReadException, read, broken + data[offset:])
        self.assertIn(f"byte {offset}", str(e))
        del first["request"]
        e = self.assertRaises(FlowReadException, read, data[:offset] + dumps(first))
        self.assertIn("'request'", str(e))
        e = self.assertRaises(FlowReadException, read, data[:offset] + b"x" + data[offset:])
        self.assertEqual(e.offset, offset)
