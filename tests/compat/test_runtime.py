# -*- test-case-name: tests.compat.test_runtime -*-
"""
mitmproxy-style scripts on interceptor's runtime (issue #16, points 2, 3, 4,
5, 7 and the option/SystemExit bugs): C{ctx}, the bridge from Python's
C{logging}, commands, script arguments, both C{configure} signatures, the
C{running} event, and what the proxy does with options a script rejects or
never declares.  The scripts are our own, written in mitmproxy's style, and
run through a real C{twistd interceptor --addon} against loopback servers.
"""

from __future__ import annotations

import json
import os

from twisted.trial import unittest

from addons.core import Inject
from addons.script import ScriptLoader
from interceptor.core import context
from interceptor.core.commands import CommandError, CommandManager, command
from interceptor.core.master import Master
from interceptor import types
from interceptor.core.options import OptionsError, proxy_options
from interceptor.model.flow import Flow
from interceptor.testing import LogRecorder, start_proxy
from tests.compat.test_surface import stopped_output as stop
from tests.scriptfiles import write_script
from tests.e2e.peers import RawServer, WebServer, curl, find_header, http_response, twistd_proxy, wait_until
from tests.e2e.tcppeers import TcpServer, connect_tunnel


async def failed_start(testcase: unittest.TestCase, *args: str) -> tuple[int, str]:
    """
    Run C{twistd -n interceptor ARGS}, which is expected to refuse to start.

    @return: (its exit code, its output)
    """
    from tests.test_tap import spawn_twistd

    cwd = os.path.abspath(testcase.mktemp())
    os.makedirs(cwd)
    argv = ["-n", "--pidfile=", "interceptor", "--confdir", os.path.join(cwd, "conf"),
            "--listen", "tcp:0:interface=127.0.0.1", *args]
    protocol, transport = spawn_twistd(testcase, argv, cwd)
    reason = await protocol.ended
    return reason.exitCode, protocol.output.decode(errors="replace")


CTX_AND_LOGGING = """
    import logging
    from interceptor import ctx, http


    class Tagger:
        def load(self, loader):
            loader.add_option("tag", str, "none", "A tag for requests.")

        def running(self):
            logging.warning("running with tag %s", ctx.options.tag)

        def request(self, flow):
            flow.request.headers["x-tag"] = ctx.options.tag
            logging.info("seen %s", flow.request.path)
            logging.getLogger("my.script").debug("quiet %s", flow.request.path)
            ctx.log.alert("alert " + flow.request.path)
            ctx.log.info("ctx info")
            ctx.log.warn("ctx warn")
            ctx.log.error("ctx error")
            if flow.request.path == "/echo/stop":
                ctx.master.shutdown()


    addons = [Tagger()]
"""


class ContextAndLoggingTests(unittest.TestCase):
    """
    Points 2 and 3: C{ctx} and Python's C{logging} in a script.
    """

    timeout = 30

    async def test_ctx_logging_running_and_shutdown(self) -> None:
        """
        ctx.options reads the script's option; logging.* and ctx.log.* lines
        appear like the proxy's own (debug hidden at the default verbosity);
        running fires once listening; ctx.master.shutdown() ends the process
        with status 0.
        """
        web = await WebServer.start(self)
        script = write_script(self, CTX_AND_LOGGING, "tagger.py")
        port, transport, protocol = await twistd_proxy(
            self, "-q", "--set", "termlog_verbosity=info", "--addon", script, "--set", "tag=blue")
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", web.url("/echo/one"))
        self.assertIn(["X-Tag", "blue"], json.loads(result.body)["headers"])
        await curl(self, "-x", f"http://127.0.0.1:{port}", web.url("/echo/stop"))
        reason = await protocol.ended
        output = protocol.output.decode(errors="replace")
        self.assertEqual(reason.exitCode, 0, output)
        self.assertIn("[warn] running with tag blue", output)
        self.assertIn("\nseen /echo/one\n", output)
        self.assertIn("\nalert /echo/one\n", output)
        self.assertIn("\nctx info\n", output)
        self.assertIn("[warn] ctx warn", output)
        self.assertIn("[error] ctx error", output)
        self.assertNotIn("quiet", output)
        self.assertEqual(output.count("running with tag"), 1)

    async def test_websocket_example_logs(self) -> None:
        """examples/websocket_rewrite.py's logging.info lines reach the log event."""
        from interceptor.testing import connect_websocket, start_websocket_server

        path = os.path.abspath(os.path.join(
            os.path.dirname(__file__), os.pardir, os.pardir, "examples", "websocket_rewrite.py"))
        recorder = LogRecorder()
        server = await start_websocket_server(self)
        proxy = await start_proxy(self, ScriptLoader(), recorder, scripts=[path])
        client = await connect_websocket(self, server.url("/"), proxy=proxy)
        await server.next_connection()
        self.assertTrue((await client.close()).was_clean)
        self.assertTrue(await wait_until(
            lambda: any(m.startswith("WebSocket open: ") for m in recorder.messages("info"))))

    def test_ctx_follows_the_master(self) -> None:
        """ctx is the master running a hook, else the last started; none after every stop."""
        seen = []

        class Look:
            def tick(self):
                from interceptor import ctx

                seen.append(ctx.master)

        first, second = Master(addons=[Look()]), Master()
        first.start()
        second.start()
        from interceptor import ctx

        self.assertIs(ctx.master, second)
        self.assertIs(ctx.options, second.options)
        self.successResultOf(first.addons.trigger("tick"))
        self.assertEqual(seen, [first])
        self.successResultOf(first.stop())
        self.successResultOf(second.stop())
        self.assertIsNone(context.current)
        self.assertRaises(AttributeError, getattr, ctx, "master")

    def test_ctx_after_a_hook_that_took_time(self) -> None:
        """
        The hooks after one whose Deferred fires later see their own master
        as ctx, even when another master's hooks ran meanwhile.
        """
        from twisted.internet.defer import Deferred

        from interceptor import ctx

        waiting: Deferred[None] = Deferred()
        seen = []

        class Slow:
            def tick(self):
                return waiting

        class Look:
            def tick(self):
                seen.append(ctx.master)

        first, second = Master(addons=[Slow(), Look()]), Master(addons=[Look()])
        first.start()
        second.start()
        done = first.addons.trigger("tick")
        self.successResultOf(second.addons.trigger("tick"))
        waiting.callback(None)
        self.successResultOf(done)
        self.assertEqual(seen, [second, first])
        self.successResultOf(first.stop())
        self.successResultOf(second.stop())


COMMANDS = """
    import logging
    import typing
    from interceptor import command, ctx, flow, http


    class Greeter:
        def __init__(self):
            self.replayed = False

        @command.command("greeter.greet")
        def greet(self, name: str, times: int = 1) -> str:
            return " ".join(["hello " + name] * times)

        @command.command("greeter.count")
        def count(self, flows: typing.Sequence[flow.Flow]) -> int:
            return len(flows)

        def running(self):
            logging.info("call: %s", ctx.master.commands.call("greeter.greet", "you", 2))
            logging.info("execute: %s", ctx.master.commands.execute("greeter.greet 'you two' 1"))
            try:
                ctx.master.commands.call("greeter.greet", 3)
            except command.CommandError as e:
                logging.info("refused: %s", e)

        def request(self, flow):
            if flow.is_replay:
                return
            duplicate = flow.copy()
            ctx.master.commands.call("view.flows.add", [duplicate])
            logging.info("view: %s", ctx.master.commands.execute("greeter.count @all"))
            duplicate.request.path = "/again"
            ctx.master.commands.call("replay.client", [duplicate])


    addons = [Greeter()]
"""


class CommandTests(unittest.TestCase):
    """
    Point 4: commands declared by a script, and the built-in ones it calls.
    """

    timeout = 30

    async def test_script_commands_and_builtins(self) -> None:
        """
        A script's typed command runs by call() and execute(); a wrong type
        is a CommandError naming the argument; view.flows.add and
        replay.client make the server see the request twice.
        """
        requests = []

        def handler(connection, request):
            requests.append(request)
            connection.write(http_response(200, b"ok"))

        server = await RawServer.start(self, handler)
        script = write_script(self, COMMANDS, "greeter.py")
        port, transport, protocol = await twistd_proxy(self, "-q", "--set", "termlog_verbosity=info",
                                                       "--addon", script)
        await curl(self, "-x", f"http://127.0.0.1:{port}", f"http://127.0.0.1:{server.port}/once")
        replayed = await wait_until(lambda: len(requests) == 2)
        output = await stop(transport, protocol)
        self.assertTrue(replayed, output)
        self.assertIn("call: hello you hello you", output)
        self.assertIn("execute: hello you two", output)
        self.assertIn("refused: command greeter.greet: argument name expects str, got int 3", output)
        self.assertIn("view: 1", output)
        self.assertEqual(sorted(r.target for r in requests), [b"/again", b"/once"])

    def test_conversions_and_errors(self) -> None:
        """Command-line words become typed values; bad ones are CommandErrors naming what is wrong."""

        class Typed:
            @command("t.all")
            def all(self, n: int, on: bool, words: list[str], data: bytes, *rest: str) -> tuple:
                return (n, on, words, data, rest)

        manager = CommandManager(Master(addons=[Typed()]))
        manager.collect(Typed())
        self.assertEqual(manager.execute("t.all 3 true a,b 'x y' r1 r2"),
                         (3, True, ["a", "b"], b"x y", ("r1", "r2")))
        for line, message in [
            ("t.all x true a b", "argument n: invalid literal"),
            ("t.all 1 maybe a b", "argument on: expected true or false"),
            ("t.all 1", "missing argument on"),
            ("t.al", "unknown command 't.al' (did you mean t.all?)"),
            ("t.all 'unclosed", "No closing quotation"),
        ]:
            e = self.assertRaises(CommandError, manager.execute, line)
            self.assertIn(message, str(e))

    def test_path_and_str_types(self) -> None:
        """
        A parameter typed with interceptor.types (mitmproxy.types) takes a
        command-line word (Path expands ~) or any str from call().
        """

        class Paths:
            @command("p.show")
            def show(self, path: types.Path, marker: types.Marker) -> str:
                return f"{type(path).__name__}:{path}:{marker}"

        manager = CommandManager(Master(addons=[Paths()]))
        manager.collect(Paths())
        home = os.path.expanduser("~")
        self.assertEqual(manager.execute("p.show ~/x.txt :star:"), f"Path:{home}/x.txt::star:")
        self.assertEqual(manager.call("p.show", "/tmp/y", "m"), "str:/tmp/y:m")

    async def test_inject_tcp(self) -> None:
        """inject.tcp sends the proxy's bytes to the client of a live TCP connection."""
        flows: list[Flow] = []

        class Watch:
            def tcp_start(self, flow):
                flows.append(flow)

        proxy = await start_proxy(self, Watch(), Inject(), tcp_hosts=[r"^127\.0\.0\.1:"])
        server = await TcpServer.start(self, "echo")
        client = await connect_tunnel(self, proxy.port_number, server.port)
        client.send(b"hello")
        await client.wait_for(lambda d: d == b"hello")
        proxy.master.commands.call("inject.tcp", flows[0], True, b" injected")
        await client.wait_for(lambda d: d == b"hello injected")
        proxy.master.commands.call("inject.tcp", flows[0], False, b"to server")
        await client.wait_for(lambda d: d.endswith(b"to server"))
        client.transport.loseConnection()
        self.assertTrue(await wait_until(lambda: not flows[0].live))
        e = self.assertRaises(CommandError, proxy.master.commands.call,
                              "inject.tcp", flows[0], True, b"late")
        self.assertIn("is not a live TCP connection", str(e))


class InjectWebSocketTests(unittest.TestCase):
    """
    The built-in command inject.websocket.
    """

    timeout = 20

    async def test_inject_websocket(self) -> None:
        """inject.websocket sends a text message to the client; a non-WebSocket flow is a CommandError."""
        from interceptor.testing import connect_websocket, start_websocket_server

        flows: list[Flow] = []

        class Watch:
            def websocket_start(self, flow):
                flows.append(flow)

        server = await start_websocket_server(self)
        proxy = await start_proxy(self, Watch(), Inject())
        client = await connect_websocket(self, server.url("/"), proxy=proxy)
        await server.next_connection()
        self.assertTrue(await wait_until(lambda: bool(flows)))
        proxy.master.commands.call("inject.websocket", flows[0], True, "from the proxy")
        self.assertEqual((await client.next_message()).payload, b"from the proxy")
        e = self.assertRaises(CommandError, proxy.master.commands.call,
                              "inject.websocket", Flow.__new__(Flow), True, b"x")
        self.assertIn("is not a WebSocket flow", str(e))
        self.assertTrue((await client.close()).was_clean)


ARGUMENTS = """
    import argparse
    import logging
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("--greeting", required=True)
    args = parser.parse_args()
    logging.info("argv %s", sys.argv)


    def response(flow):
        flow.response.headers["x-greeting"] = args.greeting
"""


class ScriptArgumentTests(unittest.TestCase):
    """
    Point 5: C{--addon "script.py ARGS"}, and argparse exiting.
    """

    timeout = 30

    async def test_arguments_and_argparse_exit(self) -> None:
        """
        The script sees sys.argv == [name, args...]; the same script given
        bad arguments exits in argparse: logged as its error, the proxy runs on.
        """
        web = await WebServer.start(self)
        script = write_script(self, ARGUMENTS, "greet.py")
        port, transport, protocol = await twistd_proxy(
            self, "-q", "--set", "termlog_verbosity=info",
            "--addon", f"{script} --greeting 'good day'", "--addon", f"{script} --nonsense")
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", web.url("/echo"))
        self.assertEqual(result.status, 200)
        self.assertEqual(find_header(result.heads[-1].headers, b"x-greeting", True), b"good day")
        output = await stop(transport, protocol)
        self.assertIn("argv ['greet.py', '--greeting', 'good day']", output)
        self.assertIn("SystemExit(2) while imported with the arguments ['--nonsense']", output)


OPTIONS_CONFIGURE = """
    import logging
    from typing import Optional

    from interceptor import ctx
    from interceptor.core.options import OptionsError


    class AddHeader:
        def load(self, loader):
            loader.add_option("addheader", Optional[int], None, "Add a header, at most 100.")

        def configure(self, updates):
            if "addheader" in updates and ctx.options.addheader is not None:
                if ctx.options.addheader > 100:
                    raise OptionsError("addheader must be <= 100")

        def running(self):
            try:
                ctx.options.update(addheader=500)
            except OptionsError as e:
                logging.info("runtime change refused: %s", e)

        def response(self, flow):
            if ctx.options.addheader is not None:
                flow.response.headers["addheader"] = str(ctx.options.addheader)


    addons = [AddHeader()]
"""


class OptionTests(unittest.TestCase):
    """
    Point 7 and the option bugs: mitmproxy's one-argument C{configure}, a
    value a script rejects, and an option nobody declares.
    """

    timeout = 30

    async def test_one_argument_configure_and_runtime_rollback(self) -> None:
        """configure(updates) works; a value it refuses at run time leaves the previous one."""
        web = await WebServer.start(self)
        script = write_script(self, OPTIONS_CONFIGURE, "addheader.py")
        port, transport, protocol = await twistd_proxy(
            self, "-q", "--set", "termlog_verbosity=info", "--addon", script, "--set", "addheader=50")
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", web.url("/echo"))
        self.assertEqual(find_header(result.heads[-1].headers, b"addheader", True), b"50")
        output = await stop(transport, protocol)
        self.assertIn("runtime change refused: addheader must be <= 100", output)
        self.assertNotIn("Traceback", output)

    async def refused(self, setting: str) -> str:
        """
        The output of a proxy with the script and C{--set setting}, which
        must refuse to start (exit status 1).
        """
        script = write_script(self, OPTIONS_CONFIGURE, "addheader.py")
        code, output = await failed_start(self, "--addon", script, "--set", setting)
        self.assertEqual(code, 1, output)
        return output

    async def test_rejected_value_at_start(self) -> None:
        """A --set value the script's configure rejects: exit status 1, the reason on one line."""
        output = await self.refused("addheader=500")
        self.assertIn("Cannot start: ", output)
        self.assertIn("addheader must be <= 100", output)

    async def test_unknown_option_with_scripts(self) -> None:
        """--set of a name no addon declares, scripts loaded: exit 1 naming it and the closest names."""
        output = await self.refused("adheader=5")
        self.assertIn("unknown option adheader: no addon declared it (did you mean addheader", output)


FAILING_ADDONS = """
    import logging
    import sys


    class ExitsInLoad:
        def load(self, loader):
            sys.exit(3)


    class ExitsInStart:
        def start(self):
            raise SystemExit("no thanks")


    class ExitsInRunning:
        def runing(self):
            pass

        def running(self):
            logging.info("running reached")
            raise SystemExit(4)


    addons = [ExitsInLoad(), ExitsInStart(), ExitsInRunning()]
"""


class AddonErrorTests(unittest.TestCase):
    """
    Bugs (c) and (d): SystemExit in an addon is that addon's error; a
    misspelt event is warned about.
    """

    timeout = 30

    async def test_system_exit_is_the_addons_error(self) -> None:
        """SystemExit in load(), start() and running() is logged per addon; the proxy keeps serving."""
        web = await WebServer.start(self)
        script = write_script(self, FAILING_ADDONS, "exits.py")
        port, transport, protocol = await twistd_proxy(self, "-q", "--set", "termlog_verbosity=info",
                                                       "--addon", script)
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", web.url("/echo"))
        self.assertEqual(result.status, 200)
        output = await stop(transport, protocol)
        self.assertIn("Addon ExitsInLoad failed in load() and was not loaded", output)
        self.assertIn("Addon ExitsInStart failed in start() and was not loaded", output)
        self.assertIn("running reached", output)
        self.assertIn("Addon error in ExitsInRunning.running", output)
        self.assertIn("'runing' is not an event; did you mean 'running'?", output)
        self.assertEqual(protocol.output.count(b"did you mean 'running'"), 1)

    def test_start_refuses_rejected_option(self) -> None:
        """Embedded: Master.start raises the OptionsError of a configure that refuses, naming the addon."""

        class Refuses:
            def configure(self, updated):
                raise OptionsError("never")

        master = Master(proxy_options(), addons=[Refuses()])
        self.addCleanup(master.stop)
        e = self.assertRaises(OptionsError, master.start)
        self.assertEqual(str(e), "never")
