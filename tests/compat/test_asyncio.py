"""
mitmproxy-style scripts that use asyncio or C{@concurrent}, each run by a
real C{twistd interceptor --addon} (issue #16, point 8) against loopback
servers.

The reactor is the point here, so the proxy is a subprocess: there
C{twistd interceptor} picks the asyncio reactor for a script that uses
asyncio (or takes the one C{-r} names), as a user's proxy would.  A test
suite of users' own that drives hooks with C{interceptor.testing.start_proxy}
runs on trial's reactor instead: asyncio hooks need C{trial --reactor=asyncio}
there.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial import unittest

from tests.scriptfiles import write_script as script
from tests.e2e.peers import WebServer, curl, sleep, twistd_proxy, unused_port, wait_listening, wait_until
from tests.test_tap import spawn_twistd


def sent_headers(body: bytes) -> dict[str, str]:
    """
    The request headers the echo server saw (lower-cased names).
    """
    return {name.lower(): value for name, value in json.loads(body)["headers"]}


async def twistd_proxy_on(testcase: unittest.TestCase, reactor: str, *args: str) -> tuple:
    """
    As L{twistd_proxy}, with C{twistd -r REACTOR} (a flag of twistd's own,
    before the subcommand).
    """
    directory = os.path.abspath(testcase.mktemp())
    os.makedirs(directory)
    port = await unused_port()
    protocol, _ = spawn_twistd(testcase, [
        "-n", "--pidfile=", "-r", reactor, "interceptor", "--confdir",
        os.path.join(directory, "conf"), "--listen", f"tcp:{port}:interface=127.0.0.1", *args,
    ], directory)
    testcase.assertTrue(await wait_listening(port, protocol.ended), protocol.output)
    return port, protocol


class AsyncioTestCase(unittest.TestCase):
    timeout = 30

    async def proxied(self, *args: str) -> tuple[WebServer, int, object]:
        """
        An echo server, and a twistd interceptor with C{args}.

        @return: (the server, the proxy's port, the proxy's protocol)
        """
        web = await WebServer.start(self)
        port, _, protocol = await twistd_proxy(self, "-q", *args)
        return web, port, protocol

    def output(self, protocol: object) -> str:
        return protocol.output.decode(errors="replace")  # type: ignore[attr-defined]


class AwaitAsyncioTests(AsyncioTestCase):
    async def test_asyncio_sleep(self) -> None:
        """
        An C{async def} hook awaits C{asyncio.sleep}; the flow waits for
        it and goes out with what the hook did.  C{twistd interceptor}
        chose the asyncio reactor for the script on its own.
        """
        path = script(self, """
            import asyncio

            async def request(flow):
                await asyncio.sleep(0.2)
                flow.request.headers["x-slept"] = "1"
        """)
        web, port, protocol = await self.proxied("--addon", path)
        started = time.monotonic()
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", web.url("/echo"))
        self.assertEqual(result.status, 200, result.stderr)
        self.assertGreaterEqual(time.monotonic() - started, 0.2)
        self.assertEqual(sent_headers(result.body).get("x-slept"), "1")
        self.assertIn("AsyncioSelectorReactor", self.output(protocol))
        self.assertNotIn("error", self.output(protocol).lower())

    async def test_deferreds_and_asyncio_in_one_hook(self) -> None:
        """
        On the asyncio reactor a hook may await Deferreds (Twisted's API)
        and asyncio awaitables in turn, and a Deferred's error reaches it
        as an exception it can catch.
        """
        path = script(self, """
            import asyncio
            from twisted.internet import reactor
            from twisted.internet.defer import fail
            from twisted.internet.task import deferLater

            async def request(flow):
                value = await deferLater(reactor, 0.05, lambda: "deferred")
                await asyncio.sleep(0.05)
                try:
                    await fail(ValueError("from a Deferred"))
                except ValueError as e:
                    caught = str(e)
                loop = asyncio.get_running_loop()
                future = loop.create_future()
                loop.call_later(0.05, future.set_result, "future")
                flow.request.headers["x-got"] = f"{value},{await future},{caught}"
        """)
        web, port, protocol = await self.proxied("--addon", path)
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", web.url("/echo"))
        self.assertEqual(result.status, 200, result.stderr)
        self.assertEqual(
            sent_headers(result.body).get("x-got"), "deferred,future,from a Deferred")

    async def test_error_after_awaiting(self) -> None:
        """
        A hook that raises after awaiting asyncio is that addon's error, as
        any hook's: logged with its name, and the next addon and the flow
        go on.
        """
        path = script(self, """
            import asyncio

            class Fails:
                async def request(self, flow):
                    await asyncio.sleep(0.01)
                    raise ValueError("bad flow")

            class Next:
                def request(self, flow):
                    flow.request.headers["x-next"] = "1"

            addons = [Fails(), Next()]
        """)
        web, port, protocol = await self.proxied("--addon", path)
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", web.url("/echo"))
        self.assertEqual(result.status, 200, result.stderr)
        self.assertEqual(sent_headers(result.body).get("x-next"), "1")
        self.assertTrue(await wait_until(lambda: "bad flow" in self.output(protocol)))
        self.assertIn("Addon error in Fails.request", self.output(protocol))

    async def test_background_task(self) -> None:
        """
        A hook starts an C{asyncio.create_task} and returns; the flow does
        not wait for the task, and the task runs to its end afterwards.
        """
        marker = os.path.abspath(self.mktemp())
        path = script(self, f"""
            import asyncio

            tasks = set()

            async def note(path):
                await asyncio.sleep(0.3)
                with open({marker!r}, "w") as f:
                    f.write(path)

            def request(flow):
                task = asyncio.create_task(note(flow.request.path))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        """)
        web, port, protocol = await self.proxied("--addon", path)
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", web.url("/echo/task"))
        self.assertEqual(result.status, 200, result.stderr)
        self.assertFalse(os.path.exists(marker), "the flow waited for the background task")
        self.assertTrue(await wait_until(lambda: os.path.exists(marker), 5))
        with open(marker) as f:
            self.assertEqual(f.read(), "/echo/task")

    async def test_asyncio_on_another_reactor(self) -> None:
        """
        With a reactor that is not asyncio-based named on the command line
        (C{-r poll}), asyncio in a hook cannot run: the hook's error says
        what it needs, and the flow goes on.
        """
        path = script(self, """
            import asyncio

            async def request(flow):
                await asyncio.sleep(0.01)
                flow.request.headers["x-slept"] = "1"
        """)
        web = await WebServer.start(self)
        port, protocol = await twistd_proxy_on(self, "poll", "-q", "--addon", path)
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", web.url("/echo"))
        self.assertEqual(result.status, 200, result.stderr)
        self.assertNotIn("x-slept", sent_headers(result.body))
        self.assertTrue(await wait_until(lambda: "asyncio reactor" in self.output(protocol)))
        self.assertIn("the request hook awaits asyncio", self.output(protocol))
        self.assertIn("twistd -r asyncio", self.output(protocol))

    async def test_deferred_coroutine_keeps_the_default_reactor(self) -> None:
        """
        An C{async def} hook that awaits only Deferreds runs on the default
        reactor too.  (An C{async def} alone makes C{twistd interceptor}
        choose the asyncio reactor, so this names the default, C{-r epoll},
        as a user keeping it would.)
        """
        path = script(self, """
            from twisted.internet import reactor
            from twisted.internet.task import deferLater

            async def request(flow):
                await deferLater(reactor, 0.05, lambda: None)
                flow.request.headers["x-waited"] = "1"
        """)
        web = await WebServer.start(self)
        port, protocol = await twistd_proxy_on(self, "epoll", "-q", "--addon", path)
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", web.url("/echo"))
        self.assertEqual(sent_headers(result.body).get("x-waited"), "1")
        self.assertIn("EPollReactor", self.output(protocol))


class ConcurrentTests(AsyncioTestCase):
    async def slow_and_fast(self, path: str) -> None:
        """
        Through a proxy with the script at C{path}: a request the script
        holds for 1 s in a thread, and meanwhile another one that passes.
        """
        web, port, protocol = await self.proxied("--addon", path)
        proxy = f"http://127.0.0.1:{port}"
        slow: Deferred = ensureDeferred(curl(self, "-x", proxy, web.url("/echo/slow")))
        await sleep(0.2)  # (curl starts, and its request reaches the hook)
        started = time.monotonic()
        fast = await curl(self, "-x", proxy, web.url("/echo/fast"))
        self.assertEqual(fast.status, 200, fast.stderr)
        self.assertLess(time.monotonic() - started, 0.8)
        self.assertFalse(slow.called, "the slow hook did not hold its flow")
        self.assertEqual(sent_headers(fast.body).get("x-hook"), "fast")
        done = await slow
        self.assertEqual(done.status, 200, done.stderr)
        self.assertEqual(sent_headers(done.body).get("x-hook"), "slow")
        self.assertIn("EPollReactor", self.output(protocol))

    async def test_mitmproxy2_function(self) -> None:
        """
        mitmproxy 2.x's C{from ... .script import concurrent} on a module
        function: the slow hook blocks its thread, not the proxy.
        """
        await self.slow_and_fast(script(self, """
            import time
            from interceptor.script import concurrent

            @concurrent
            def request(flow):
                if flow.request.path.endswith("/slow"):
                    time.sleep(1)
                    flow.request.headers["x-hook"] = "slow"
                else:
                    flow.request.headers["x-hook"] = "fast"
        """))

    async def test_method(self) -> None:
        """
        mitmproxy 12's C{from ... .concurrent import concurrent} on an
        addon class's method.
        """
        await self.slow_and_fast(script(self, """
            import time
            from interceptor.concurrent import concurrent

            class Slow:
                @concurrent
                def request(self, flow):
                    slow = flow.request.path.endswith("/slow")
                    if slow:
                        time.sleep(1)
                    flow.request.headers["x-hook"] = "slow" if slow else "fast"

            addons = [Slow()]
        """))


class ConcurrentDecoratorTests(unittest.TestCase):
    """
    The decorator itself, in this process.
    """

    async def test_runs_in_a_thread(self) -> None:
        """
        The hook runs in another thread; its result (an C{async def}
        hook's too) comes back through the Deferred.
        """
        import threading

        from interceptor.concurrent import concurrent

        @concurrent
        def request(flow: list) -> str:
            flow.append(threading.get_ident())
            return "plain"

        @concurrent
        async def response(flow: list) -> str:
            await asyncio.sleep(0.01)
            flow.append(threading.get_ident())
            return "async"

        seen: list = []
        self.assertEqual(await request(seen), "plain")
        self.assertEqual(await response(seen), "async")
        self.assertNotIn(threading.get_ident(), seen)
        self.assertEqual(request.__name__, "request")

    def test_not_for_synchronous_hooks(self) -> None:
        """
        C{load}, C{configure}, C{start} and names that are not events are
        refused when the script is imported, naming the function.
        """
        from interceptor.concurrent import concurrent

        for name in ("load", "configure", "start", "helper"):
            function = lambda *args: None  # noqa: E731
            function.__name__ = name
            with self.assertRaises(NotImplementedError) as caught:
                concurrent(function)
            self.assertIn(repr(name), str(caught.exception))

    def test_same_in_script(self) -> None:
        from interceptor import concurrent, script

        self.assertIs(script.concurrent, concurrent.concurrent)


class InUsersTrialSuiteTests(unittest.TestCase):
    """
    An asyncio hook in a user's own trial suite, with the proxy in-process
    (L{interceptor.testing.start_proxy}): it runs when the suite runs on the
    asyncio reactor (C{trial --reactor=asyncio tests}); on any other
    reactor the hook fails with the error that says so and the flow goes on.
    """

    async def test_asyncio_hook(self) -> None:
        from interceptor.core.coroutines import AsyncioNeeded, asyncio_loop
        from interceptor.testing import LogRecorder, start_proxy

        class Slept:
            async def request(self, flow: object) -> None:
                await asyncio.sleep(0.05)
                flow.request.headers["x-slept"] = "1"  # type: ignore[attr-defined]

        recorder = LogRecorder()
        web = await WebServer.start(self)
        proxy = await start_proxy(self, Slept(), recorder)
        result = await curl(self, "-x", proxy.url, web.url("/echo"))
        self.assertEqual(result.status, 200, result.stderr)
        if asyncio_loop() is not None:
            self.assertEqual(sent_headers(result.body).get("x-slept"), "1")
            self.assertEqual(recorder.text("error"), "")
        else:
            self.assertNotIn("x-slept", sent_headers(result.body))
            self.assertIn("Slept.request", recorder.text("error"))
            [failure] = self.flushLoggedErrors(AsyncioNeeded)
            self.assertIn("trial --reactor=asyncio", str(failure.value))
