# -*- test-case-name: tests.e2e.test_examples_flows -*-
"""
End-to-end tests of the flow example addons in C{examples/} (flow files,
loaded flows, client and server replay), loaded as users load them: as
scripts, beside the built-in addons they use.
"""

from __future__ import annotations

import os
import signal

from twisted.trial import unittest

from addons.clientplayback import ClientPlayback
from addons.loopdetect import LoopDetect
from addons.save import Save
from addons.script import ScriptLoader
from addons.serverplayback import ServerPlayback
from interceptor.io import read_flows_from_paths
from interceptor.testing import start_proxy
from tests.e2e.peers import RawServer, Recorder, WebServer, curl, http_response, twistd_proxy, wait_until

EXAMPLES = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "examples"))


def example(name: str) -> str:
    return os.path.join(EXAMPLES, name)


async def recorded_file(testcase: unittest.TestCase, web: WebServer, *paths: str) -> str:
    """
    A flow file of GETs of C{paths} to C{web}, recorded through a proxy.
    """
    path = os.path.abspath(testcase.mktemp())
    proxy = await start_proxy(testcase, Save(), save_stream_file=path)
    for each in paths:
        await curl(testcase, "-x", proxy.url, web.url(each))
    await proxy.stop()
    return path


class SaveErrorsTests(unittest.TestCase):
    async def test_keeps_failed_flows_only(self) -> None:
        """
        A 5xx answer and a refused connection land in the file; a 200 does not.
        """
        path = os.path.abspath(self.mktemp())
        failing = await RawServer.start(self, lambda c, r: c.write(http_response(503, b"busy")))
        web = await WebServer.start(self)
        proxy = await start_proxy(self, ScriptLoader(), scripts=[example("save_errors.py")])
        proxy.master.options.update(save_errors_file=path)  # (declared by the script)
        await curl(self, "-x", proxy.url, web.url("/echo"))
        await curl(self, "-x", proxy.url, failing.url("/busy"))
        await curl(self, "-x", proxy.url, "http://127.0.0.1:1/refused")
        await proxy.stop()
        flows = read_flows_from_paths([path])
        self.assertEqual([f.request.path for f in flows], ["/busy", "/refused"])
        self.assertEqual(flows[0].response.status_code, 503)
        self.assertIsNotNone(flows[1].error)


class CountHostsTests(unittest.TestCase):
    timeout = 30

    async def test_over_a_flow_file(self) -> None:
        """
        Run with -r, the script sees the loaded flows and prints its table
        when the proxy stops.
        """
        web = await WebServer.start(self)
        path = await recorded_file(self, web, "/echo/1", "/echo/2", "/echo/3")
        port, transport, protocol = await twistd_proxy(
            self, "-q", "-r", path, "--addon", example("count_hosts.py"))
        await wait_until(lambda: False, 0.5)  # (the flows load right after the start)
        transport.signalProcess(signal.SIGTERM)
        await protocol.ended
        output = protocol.output.decode(errors="replace")
        self.assertIn("3 requests (3 loaded from a file)", output)
        self.assertIn("3  127.0.0.1", output)


class RetryOnErrorTests(unittest.TestCase):
    async def test_retried_once(self) -> None:
        """
        A 503 is sent once more as a replay; the retry is a flow the other
        addons see, and is not retried again.
        """
        answers = [503, 200]
        server = await RawServer.start(
            self, lambda c, r: c.write(http_response(answers.pop(0) if answers else 500, b"x")))
        events = Recorder()
        proxy = await start_proxy(self, ClientPlayback(), ScriptLoader(), events,
                                  scripts=[example("retry_on_error.py")])
        result = await curl(self, "-x", proxy.url, server.url("/flaky"))
        self.assertEqual(result.status, 503)
        self.assertTrue(await wait_until(lambda: len(events.flows()) == 2 and events.count("response") == 2))
        first, retry = events.flows()
        self.assertEqual(retry.is_replay, "request")
        self.assertEqual(retry.response.status_code, 200)
        self.assertEqual(retry.metadata["retry_of"], first.id)
        self.assertEqual(len(server.requests), 2)

    async def test_with_loop_detection(self) -> None:
        """
        The copy carries the Via entry its request went out with: loop
        detection lets the replay through, marked once, not as a loop.
        """
        answers = [503, 200]
        server = await RawServer.start(
            self, lambda c, r: c.write(http_response(answers.pop(0) if answers else 500, b"x")))
        events = Recorder()
        proxy = await start_proxy(self, LoopDetect(), ClientPlayback(), ScriptLoader(), events,
                                  scripts=[example("retry_on_error.py")])
        await curl(self, "-x", proxy.url, server.url("/flaky"))
        self.assertTrue(await wait_until(lambda: events.count("response") == 2))
        retry = events.flows()[1]
        self.assertEqual(retry.response.status_code, 200)
        self.assertEqual([v for n, v in server.requests[1].headers if n.lower() == b"via"], [server.requests[0].header(b"via")])


class ReplayHostTests(unittest.TestCase):
    async def test_one_host_from_the_file(self) -> None:
        """
        The matching flows of the file answer (the server is down); the
        others of the file do not.
        """
        web = await WebServer.start(self)
        path = await recorded_file(self, web, "/echo/api", "/echo/other")
        await web.stop()
        proxy = await start_proxy(self, ServerPlayback(), ScriptLoader(),
                                  scripts=[example("replay_host.py")])
        proxy.master.options.update(replay_host_file=path, replay_host_filter="~u /api")
        answered = await curl(self, "-x", proxy.url, web.url("/echo/api"))
        self.assertEqual(answered.status, 200)
        missed = await curl(self, "-x", proxy.url, web.url("/echo/other"))
        self.assertEqual(missed.status, 502)
