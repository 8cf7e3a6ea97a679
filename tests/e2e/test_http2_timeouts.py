"""
Timeouts over HTTP/2, per stream: a server stream that stays silent for
read_timeout is answered 504 (or reset once the response started) while
the other streams go on; a client that stops reading is not timed out; a
client stream silent in the middle of its request gets a 408; an idle
client connection is closed (GOAWAY) after idle_timeout.

The peers are real; the proxy's timers run on a Clock the tests advance
once the exchange is in the state under test.
"""

from h2.errors import ErrorCodes
from twisted.internet.task import Clock

from tests.e2e.h2peers import bounded
from tests.e2e.peers import Recorder, advance, stable, wait_until
from tests.e2e.test_http2 import _Base, path_handler

BIG = 4 * 1024 * 1024


def _silent_on(prefix: bytes, started: bool = False):
    """
    A handler answering every path but those starting with C{prefix}: those
    get nothing (or, with C{started}, a head and 1000 bytes of a longer body).
    """

    def handler(stream):
        if not stream.path.startswith(prefix):
            path_handler(stream)
        elif started:
            stream.respond(200, [(b"content-length", b"100000")], b"x" * 1000, end=False)

    return handler


class ServerSilenceTests(_Base):
    """
    h2 client -> proxy -> h2 server, read_timeout 1 s.
    """

    async def test_silent_stream_answered_504(self):
        """A stream the server never answers gets a 504 and one error event; a stream beside it is answered."""
        recorder = Recorder()
        clock = Clock()
        proxy = await self.proxy(recorder, read_timeout=1.0, clock=clock)
        server = await self.h2_server(_silent_on(b"/silent"))
        client = await self.client(proxy, server.port)
        silent = client.request("GET", "/silent")
        good = client.request("GET", "/good")
        await bounded(good.done)
        self.assertEqual(good.status, 200)
        self.assertTrue(await wait_until(lambda: [s for s in server.streams if s.path == b"/silent"]))
        await advance(clock, 0.75)
        self.assertEqual(recorder.count("error"), 0)
        await advance(clock, 0.25)
        await bounded(silent.done)
        self.assertEqual(silent.status, 504)
        self.assertIn(b"read timeout", bytes(silent.body))
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1))
        (flow,) = [f for f in recorder.flows() if f.request.path == "/silent"]
        self.assertIn("read timeout", flow.error.msg)
        self.assertFalse(client.closed)
        # The server's stream was cancelled.
        (stream,) = [s for s in server.streams if s.path == b"/silent"]
        self.assertTrue(await wait_until(lambda: stream.reset_code == ErrorCodes.CANCEL))

    async def test_silent_mid_response_resets_stream(self):
        """A server that stops in the middle of a body: the client's stream is reset, error fires."""
        recorder = Recorder()
        clock = Clock()
        proxy = await self.proxy(recorder, read_timeout=1.0, stream_large_bodies="1k", clock=clock)
        server = await self.h2_server(_silent_on(b"/stall", started=True))
        client = await self.client(proxy, server.port)
        stall = client.request("GET", "/stall")
        self.assertTrue(await wait_until(lambda: len(stall.body) == 1000))
        await advance(clock, 1.0)
        response = await bounded(stall.done)
        self.assertEqual(response.status, 200)
        self.assertIsNotNone(response.reset_code)
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1))
        self.assertIn("read timeout", recorder.flows()[0].error.msg)

    async def test_client_not_reading_is_not_timed_out(self):
        """A client that reads nothing for 3 s holds a streamed response back; it then arrives whole."""
        recorder = Recorder()
        clock = Clock()
        proxy = await self.proxy(recorder, read_timeout=1.0, stream_large_bodies="64k", clock=clock)

        def big(stream):
            stream.respond(200, [(b"content-length", b"%d" % BIG)], b"b" * BIG)

        server = await self.h2_server(big)
        client = await self.client(proxy, server.port, auto_ack=False)
        response = client.request("GET", "/big")

        # The client's window is used up, then the proxy's buffer: nothing
        # moves until the client reads.
        self.assertTrue(await wait_until(lambda: response.unacked == 65535 and server.streams))
        self.assertGreater(await stable(lambda: server.streams[0].sent), 65535)
        await advance(clock, 3.0)
        self.assertEqual(recorder.count("error"), 0)
        self.assertFalse(response.done.called)
        client.acknowledge(response.stream_id)
        await bounded(response.done, 10.0)
        self.assertEqual((response.status, len(response.body), response.reset_code), (200, BIG, None))
        self.assertEqual(recorder.count("error"), 0)


class ClientSilenceTests(_Base):
    """
    The client's side of an h2 connection.
    """

    async def test_silent_request_body_408(self):
        """A client stream that sends half a body and nothing more gets a 408; the connection stays."""
        recorder = Recorder()
        clock = Clock()
        proxy = await self.proxy(recorder, read_timeout=1.0, clock=clock)
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        half = client.request("POST", "/half", headers=[(b"content-length", b"100")], body=b"x" * 50, end=False)
        self.assertTrue(await wait_until(lambda: recorder.count("requestheaders") == 1))
        await advance(clock, 0.75)
        self.assertEqual(recorder.count("error"), 0)
        await advance(clock, 0.25)
        await bounded(half.done)
        self.assertEqual(half.status, 408)
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1))
        good = await bounded(client.request("GET", "/after").done)
        self.assertEqual(good.status, 200)

    async def test_server_not_taking_upload(self):
        """A server that takes none of a streamed upload gets the timeout (504), not the client (408)."""
        recorder = Recorder()
        clock = Clock()
        proxy = await self.proxy(recorder, read_timeout=1.0, stream_large_bodies="64k", clock=clock)
        server = await self.h2_server(path_handler, auto_ack=False)
        client = await self.client(proxy, server.port)
        upload = client.request("POST", "/up", headers=[(b"content-length", b"%d" % BIG)], body=b"u" * BIG)
        # The server's window is full: the proxy waits for the server.
        self.assertTrue(await wait_until(lambda: server.streams and len(server.streams[0].body) == 65535))
        await advance(clock, 1.0)
        await bounded(upload.done)
        self.assertEqual(upload.status, 504)
        self.assertTrue(await wait_until(lambda: recorder.count("error") == 1))
        self.assertIn("read timeout", recorder.flows()[0].error.msg)

    async def test_idle_connection_closed(self):
        """An h2 client connection with no open stream is closed with GOAWAY after idle_timeout."""
        clock = Clock()
        proxy = await self.proxy(idle_timeout=1.0, clock=clock)
        server = await self.h2_server(path_handler)
        client = await self.client(proxy, server.port)
        first = await bounded(client.request("GET", "/one").done)
        self.assertEqual(first.status, 200)
        await advance(clock, 0.75)
        self.assertIsNone(client.terminated)
        await advance(clock, 0.25)
        self.assertTrue(await wait_until(lambda: client.closed))
        self.assertIsNotNone(client.terminated)
        self.assertEqual(client.terminated.error_code, ErrorCodes.NO_ERROR)

    async def test_goaway_not_sent_right_after_a_long_stream(self):
        """A stream that lasted longer than idle_timeout: the connection must stay idle_timeout after it ends."""
        clock = Clock()
        proxy = await self.proxy(idle_timeout=2.0, read_timeout=4.0, clock=clock)
        waiting = []
        server = await self.h2_server(waiting.append)
        client = await self.client(proxy, server.port)
        request = client.request("GET", "/slow")
        self.assertTrue(await wait_until(lambda: waiting))
        # The server answers 3 s later.
        await advance(clock, 3.0)
        path_handler(waiting[0])
        first = await bounded(request.done)
        self.assertEqual(first.status, 200)
        # 1.5 s after the stream ended: less than idle_timeout (2 s).
        await advance(clock, 1.5)
        self.assertIsNone(client.terminated, "GOAWAY sent %s s after the stream ended" % 1.5)
        self.assertFalse(client.closed)
        # 2 s after: it is idle now.
        await advance(clock, 0.5)
        self.assertTrue(await wait_until(lambda: client.closed))
        self.assertIsNotNone(client.terminated)
