"""
Flow files on real traffic: recording every kind of flow through a running
proxy (curl, an h2 client, a WebSocket client, raw TCP), a proxy killed
with SIGKILL mid-run, loading with C{rfile}, replaying from files, the
HAR written at shutdown, and the C{interceptor-read} command.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from addons.clientplayback import ClientPlayback
from addons.readfile import ReadFile
from addons.save import Save
from addons.savehar import SaveHar
from addons.serverplayback import ServerPlayback
from interceptor.io import FlowReader
from interceptor.model.flow import HTTPFlow
from interceptor.model.tcp import TCPFlow
from interceptor.testing import LogRecorder, connect_websocket, start_proxy, start_websocket_server
from tests.e2e.h2peers import H2ProxyClient, H2Server, TestPKI, echo_handler
from tests.e2e.peers import Recorder, WebServer, curl, twistd_proxy, unused_port, wait_until
from tests.e2e.tcppeers import TcpServer, connect_tunnel
from tests.test_har import schema_errors

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


def read_flows(path: str) -> tuple[list, list]:
    """
    The flows of the file at C{path}, and the problems the reader reported.
    """
    with open(path, "rb") as f:
        reader = FlowReader(f, name=path)
        flows = list(reader.stream())
    return flows, list(reader.problems)


async def read_command(*args: str) -> tuple[int, str, str]:
    """
    Run C{interceptor-read ARGS}: (exit status, stdout, stderr).
    """
    out, err, code = await getProcessOutputAndValue(
        sys.executable, ["-m", "interceptor.readflows", *args], env=dict(os.environ)
    )
    return code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


class RecordTests(unittest.TestCase):
    """
    save_stream_file records every kind of flow as it finishes.
    """

    async def test_every_kind(self) -> None:
        """
        HTTP/1 (and a failed one), HTTP/2, WebSocket with its messages and
        raw TCP with its messages all land in the file, and read back.
        """
        path = os.path.abspath(self.mktemp())
        pki = TestPKI(self.mktemp())
        web = await WebServer.start(self)
        h2 = await H2Server.start(self, pki, echo_handler)
        tcp = await TcpServer.start(self, "echo")
        ws_server = await start_websocket_server(self)
        save = Save()
        proxy = await start_proxy(
            self, save, confdir=self.mktemp(), ssl_verify_upstream_trusted_ca=pki.ca_path,
            tcp_hosts=[rf"^127\.0\.0\.1:{tcp.port}$"], save_stream_file=path,
        )
        self.assertEqual((await curl(self, "-x", proxy.url, "-d", "\x01\x02body", web.url("/echo"))).status, 200)
        closed = await unused_port()
        self.assertEqual((await curl(self, "-x", proxy.url, f"http://127.0.0.1:{closed}/")).status, 502)
        client = await H2ProxyClient.connect(self, proxy, h2.port)
        self.assertEqual((await client.request("GET", "/h2").done).status, 200)
        ws = await connect_websocket(self, ws_server.url("/chat"), proxy=proxy)
        ws.send_text("hello")
        await ws.next_message()
        ws.send_binary(b"\x00\xff")
        await ws.next_message()
        await ws.close(1000, "bye")
        tunnel = await connect_tunnel(self, proxy.port_number, tcp.port)
        tunnel.send(b"ping")
        await tunnel.wait_for(lambda d: d == b"ping")
        tunnel.shut_write()
        await tunnel.wait_closed()
        recorder = save.recorder
        assert recorder is not None
        self.assertTrue(await wait_until(lambda: recorder.count >= 5))
        await proxy.stop()
        flows, problems = read_flows(path)
        self.assertEqual(problems, [])
        http = [f for f in flows if isinstance(f, HTTPFlow) and f.websocket is None]
        [websocket] = [f for f in flows if isinstance(f, HTTPFlow) and f.websocket is not None]
        [raw] = [f for f in flows if isinstance(f, TCPFlow)]
        self.assertEqual(len(flows), 5)
        by_path = {f.request.path: f for f in http}
        self.assertEqual(by_path["/echo"].request.content, b"\x01\x02body")
        self.assertEqual(by_path["/echo"].response.status_code, 200)
        self.assertIn("Cannot connect", by_path["/"].error.msg)
        self.assertEqual(by_path["/h2"].request.http_version, "HTTP/2.0")
        self.assertEqual(
            [(m.from_client, m.content) for m in websocket.websocket.messages],
            [(True, b"hello"), (False, b"hello"), (True, b"\x00\xff"), (False, b"\x00\xff")],
        )
        self.assertEqual(websocket.websocket.close_code, 1000)
        self.assertEqual([(m.from_client, m.content) for m in raw.messages], [(True, b"ping"), (False, b"ping")])
        self.assertTrue(all(not f.live for f in flows))

    async def test_open_flow_written_at_stop(self) -> None:
        """
        A flow still waiting for its response when the proxy stops is
        written, with its error.
        """
        from tests.e2e.peers import RawServer

        path = os.path.abspath(self.mktemp())
        server = await RawServer.start(self, lambda conn, request: None)  # never answers
        proxy = await start_proxy(self, Save(), save_stream_file=path)
        pending = ensureDeferred(curl(self, "-x", proxy.url, server.url("/hanging")))
        self.assertTrue(await wait_until(lambda: len(server.requests) == 1))
        await proxy.stop()
        await pending
        flows, _ = read_flows(path)
        self.assertEqual([f.request.path for f in flows], ["/hanging"])
        self.assertIsNone(flows[0].response)
        self.assertIsNotNone(flows[0].error)

    async def test_filter_and_append(self) -> None:
        """
        save_stream_filter keeps the matching flows; +PATH appends to what
        the file holds.
        """
        path = os.path.abspath(self.mktemp())
        web = await WebServer.start(self)
        proxy = await start_proxy(self, Save(), save_stream_file=path, save_stream_filter="~u keep")
        for name in ("keep1", "drop", "keep2"):
            await curl(self, "-x", proxy.url, web.url(f"/echo/{name}"))
        await proxy.stop()
        proxy = await start_proxy(self, Save(), save_stream_file="+" + path)
        await curl(self, "-x", proxy.url, web.url("/echo/appended"))
        await proxy.stop()
        flows, problems = read_flows(path)
        self.assertEqual([f.request.path for f in flows], ["/echo/keep1", "/echo/keep2", "/echo/appended"])

    async def test_filter_typo_is_refused(self) -> None:
        """
        A filter that does not parse is refused when it is set, naming the
        option and the position.
        """
        from interceptor.options import OptionsError

        proxy = await start_proxy(self, Save())
        with self.assertRaises(OptionsError) as caught:
            proxy.master.options.save_stream_filter = "~d example.org & ~c abc"
        self.assertIn("save_stream_filter", str(caught.exception))
        self.assertIn("column", str(caught.exception))


class KilledProxyTests(unittest.TestCase):
    """
    A proxy killed with SIGKILL leaves a file that reads up to the flows
    finished before the last tick.
    """

    timeout = 60

    async def test_sigkill(self) -> None:
        path = os.path.abspath(self.mktemp())
        web = await WebServer.start(self)
        port, transport, protocol = await twistd_proxy(self, "-q", "-w", path)
        proxy_url = f"http://127.0.0.1:{port}"
        for n in range(5):
            self.assertEqual((await curl(self, "-x", proxy_url, web.url(f"/echo/{n}"))).status, 200)
        # (Records leave the process at each tick, every 0.1 s.)
        self.assertTrue(await wait_until(lambda: os.path.getsize(path) > 0, 3.0))
        await wait_until(lambda: len(read_flows(path)[0]) == 5, 3.0)
        transport.signalProcess(signal.SIGKILL)
        await protocol.ended
        flows, problems = read_flows(path)
        self.assertEqual([f.request.path for f in flows], [f"/echo/{n}" for n in range(5)])


class LoadTests(unittest.TestCase):
    """
    rfile: loaded flows reach the addons through their usual events.
    """

    async def _recorded(self, *paths: str) -> tuple[str, Any]:
        path = os.path.abspath(self.mktemp())
        web = await WebServer.start(self)
        proxy = await start_proxy(self, Save(), save_stream_file=path)
        for each in paths:
            await curl(self, "-x", proxy.url, web.url(each))
        await proxy.stop()
        return path, web

    async def test_rfile_events(self) -> None:
        """
        Each loaded flow fires requestheaders, request, responseheaders and
        response, not live.
        """
        path, _ = await self._recorded("/echo/a", "/echo/b")
        events = Recorder()
        readfile = ReadFile()
        await start_proxy(self, readfile, events, rfile=path)
        self.assertEqual(await readfile.finished, 2)
        flows = events.flows()
        self.assertEqual([f.request.path for f in flows], ["/echo/a", "/echo/b"])
        self.assertEqual(events.flow_events(flows[0]), ["requestheaders", "request", "responseheaders", "response"])
        self.assertFalse(any(f.live for f in flows))

    async def test_rfile_from_command_line(self) -> None:
        """
        twistd interceptor -r FILE FILTER prints the matching loaded flows.
        """
        path, _ = await self._recorded("/echo/first", "/echo/second")
        port, transport, protocol = await twistd_proxy(self, "-r", path, "~u", "second")
        self.assertTrue(await wait_until(lambda: b"/echo/second" in protocol.output, 5.0))
        self.assertNotIn(b"/echo/first", protocol.output)
        transport.signalProcess(signal.SIGTERM)
        await protocol.ended

    async def test_bad_file_is_refused(self) -> None:
        """
        A file that is not a flow file stops the start with one line
        naming it.
        """
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\nnot flows at all")
        from interceptor.options import OptionsError

        with self.assertRaises(OptionsError) as caught:
            await start_proxy(self, ReadFile(), rfile=path)
        self.assertIn(path, str(caught.exception))


class ReplayFromFileTests(unittest.TestCase):
    """
    Client and server replay read their flows from files.
    """

    async def test_client_replay_recorded(self) -> None:
        """
        Recorded requests are sent again; the replayed flows are saved like
        live ones, with is_replay == "request".
        """
        recorded = os.path.abspath(self.mktemp())
        again = os.path.abspath(self.mktemp())
        web = await WebServer.start(self)
        proxy = await start_proxy(self, Save(), save_stream_file=recorded)
        await curl(self, "-x", proxy.url, "-d", "x=1", web.url("/echo/post"))
        await curl(self, "-x", proxy.url, web.url("/echo/get"))
        await proxy.stop()
        before = len(web.connections)
        playback = ClientPlayback()
        proxy = await start_proxy(self, playback, Save(), client_replay=[recorded], save_stream_file=again)
        self.assertTrue(await wait_until(lambda: playback.replayed == 2, 5.0))
        await proxy.stop()
        self.assertEqual(len(web.connections), before + 2)
        flows, _ = read_flows(again)
        self.assertEqual([f.is_replay for f in flows], ["request", "request"])
        self.assertEqual(json.loads(flows[0].response.content)["body"], "x=1")

    async def test_client_replay_into_the_same_file(self) -> None:
        """
        -C FILE -w +FILE replays the flows the file held when the replay
        began, once each, and appends the replays (flows appended meanwhile
        are not replayed again).
        """
        from twisted.internet import reactor

        from tests.e2e.peers import RawServer, http_response

        path = os.path.abspath(self.mktemp())
        # (Answers come slowly and records are flushed often: each replay's
        # record is in the file before the next flow is read.)
        server = await RawServer.start(
            self, lambda c, r: reactor.callLater(0.05, c.write, http_response(200, b"ok")))
        proxy = await start_proxy(self, Save(), save_stream_file=path)
        for n in range(3):
            await curl(self, "-x", proxy.url, server.url(f"/{n}"))
        await proxy.stop()
        playback = ClientPlayback()
        proxy = await start_proxy(self, playback, Save(), client_replay=[path],
                                  save_stream_file="+" + path, tick_interval=0.01)
        self.assertTrue(await wait_until(lambda: playback.replayed == 3, 5.0))
        await wait_until(lambda: playback.replayed > 3, 0.5)
        await proxy.stop()
        self.assertEqual(playback.replayed, 3)
        flows, _ = read_flows(path)
        self.assertEqual([f.is_replay for f in flows], [None] * 3 + ["request"] * 3)

    async def test_server_replay_backend_stopped(self) -> None:
        """
        With the backend stopped, recorded responses answer from the file.
        """
        recorded = os.path.abspath(self.mktemp())
        web = await WebServer.start(self)
        proxy = await start_proxy(self, Save(), save_stream_file=recorded)
        first = await curl(self, "-x", proxy.url, web.url("/echo/x"))
        await proxy.stop()
        await web.stop()
        proxy = await start_proxy(self, ServerPlayback(), server_replay=[recorded])
        result = await curl(self, "-x", proxy.url, web.url("/echo/x"))
        self.assertEqual((result.status, result.body), (200, first.body))

    async def test_missing_replay_file(self) -> None:
        """
        A replay file that does not exist is refused at start.
        """
        from interceptor.options import OptionsError

        with self.assertRaises(OptionsError):
            await start_proxy(self, ServerPlayback(), server_replay=[os.path.abspath(self.mktemp())])


class HarDumpTests(unittest.TestCase):
    """
    hardump writes HAR 1.2 at shutdown.
    """

    async def test_written_at_stop_and_valid(self) -> None:
        path = os.path.abspath(self.mktemp())
        web = await WebServer.start(self)
        proxy = await start_proxy(self, SaveHar(), hardump=path)
        await curl(self, "-x", proxy.url, web.url("/echo?q=1"))
        await curl(self, "-x", proxy.url, web.url("/bytes?n=300"))
        self.assertFalse(os.path.exists(path))
        await proxy.stop()
        with open(path, encoding="utf-8") as f:
            har = json.load(f)
        self.assertEqual(schema_errors(har), [])
        self.assertEqual([e["request"]["url"] for e in har["log"]["entries"]],
                         [web.url("/echo?q=1"), web.url("/bytes?n=300")])


class ReadCommandTests(unittest.TestCase):
    """
    interceptor-read prints, filters and converts flow files.
    """

    async def _recorded(self) -> str:
        path = os.path.abspath(self.mktemp())
        web = await WebServer.start(self)
        proxy = await start_proxy(self, Save(), save_stream_file=path)
        await curl(self, "-x", proxy.url, web.url("/echo/get"))
        await curl(self, "-x", proxy.url, "-d", "a=b", web.url("/echo/post"))
        await proxy.stop()
        return path

    async def test_print_and_filter(self) -> None:
        path = await self._recorded()
        code, out, err = await read_command(path)
        self.assertEqual(code, 0, err)
        self.assertIn("GET http://127.0.0.1", out)
        self.assertIn("POST http://127.0.0.1", out)
        code, out, err = await read_command(path, "~m", "POST", "-v")
        self.assertEqual(code, 0, err)
        self.assertNotIn("GET http", out)
        self.assertIn("content-type: application/x-www-form-urlencoded", out.lower())

    async def test_har_conversion(self) -> None:
        path = await self._recorded()
        out_path = os.path.abspath(self.mktemp())
        code, _, err = await read_command(path, "--har", out_path, "~m GET")
        self.assertEqual(code, 0, err)
        with open(out_path, encoding="utf-8") as f:
            har = json.load(f)
        self.assertEqual(schema_errors(har), [])
        self.assertEqual([e["request"]["method"] for e in har["log"]["entries"]], ["GET"])

    async def test_bad_input(self) -> None:
        """
        A filter typo is a usage error (2); a corrupt file an error naming
        the file and offset (1); a cut last record a warning (0).
        """
        path = await self._recorded()
        code, _, err = await read_command(path, "~c", "abc")
        self.assertEqual(code, 2)
        self.assertIn("column", err)
        with open(path, "rb") as f:
            data = f.read()
        corrupt = os.path.abspath(self.mktemp())
        with open(corrupt, "wb") as f:
            f.write(b"\x89PNG not a flow file" + data)
        code, _, err = await read_command(corrupt)
        self.assertEqual(code, 1)
        self.assertIn(corrupt, err)
        self.assertIn("byte", err)
        self.assertNotIn("Traceback", err)
        cut = os.path.abspath(self.mktemp())
        with open(cut, "wb") as f:
            f.write(data[:-10])
        code, out, err = await read_command(cut)
        self.assertEqual(code, 0, err)
        self.assertIn("GET http", out)
        self.assertIn("byte", err)

    async def test_piped_into_head(self) -> None:
        """
        Piped into a reader that stops early, it ends quietly with 0.
        """
        from interceptor.io import FlowWriter
        from interceptor.model.connection import ClientConnection
        from interceptor.model.http import Request, Response

        path = os.path.abspath(self.mktemp())
        with FlowWriter.open(path) as writer:
            for n in range(5000):
                flow = HTTPFlow(ClientConnection(("127.0.0.1", 1)), None,
                                Request.make("GET", f"http://a.example/{n}"))
                flow.response = Response.make(204)
                writer.add(flow)
        script = f"{sys.executable} -m interceptor.readflows {path} | head -n 1; exit ${{PIPESTATUS[0]}}"
        out, err, code = await getProcessOutputAndValue("/bin/bash", ["-c", script], env=dict(os.environ))
        self.assertEqual((code, err), (0, b""))
        self.assertEqual(out.count(b"\n"), 1)

    async def test_mitmproxy_fixture(self) -> None:
        """
        A flow file written by mitmdump 12 prints too.
        """
        fixture = os.path.join(FIXTURES, "mitmproxy12.flows")
        code, out, err = await read_command(fixture)
        self.assertEqual(code, 0, err)
        self.assertIn("http://127.0.0.1", out)
