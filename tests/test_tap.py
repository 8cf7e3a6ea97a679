"""
Tests for L{interceptor.tap}, L{interceptor.service} and the twistd plugin:
the command line, the IService, and real C{twistd interceptor} processes
(C{--help} from another directory; a clean stop on SIGTERM).
"""

import io
import os
import re
import signal
import sys

from twisted.application.service import IService, IServiceMaker
from twisted.internet import error, reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import Clock
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from interceptor.core.options import OptionsError
from interceptor.core import tap
from interceptor.core.master import Master
from interceptor.core.options import proxy_options
from interceptor.core.service import ProxyService
from interceptor.testing import LogRecorder
from tests.e2e.peers import RawClient

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


def parse(*argv):
    """
    Parse a C{twistd interceptor} command line.
    """
    config = tap.Options()
    config.parseOptions(list(argv))
    return config


class CommandLineTests(unittest.TestCase):
    """
    The usage.Options of C{twistd interceptor}.
    """

    def test_defaults(self):
        """With no arguments the proxy listens on 127.0.0.1:8080 with the default addons."""
        config = parse()
        self.assertEqual(config["listen"], [tap.DEFAULT_LISTEN])
        self.assertEqual(tap.DEFAULT_LISTEN, "tcp:8080:interface=127.0.0.1")
        names = [type(a).__name__ for a in config["master"].addons.chain]
        # Other built-in addons may sit in between; these keep their order:
        # the terminal log first, scripts before the dumper prints flows.
        foundation = [name for name in names if name in {"TermLog", "ScriptLoader", "Dumper"}]
        self.assertEqual(foundation, ["TermLog", "ScriptLoader", "Dumper"])
        self.assertEqual(names[0], "TermLog")

    def test_listen_repeatable(self):
        """--listen and -l take endpoint strings and may be repeated."""
        config = parse("--listen", "tcp:0:interface=127.0.0.1", "-l", "unix:/tmp/x.sock")
        self.assertEqual(config["listen"], ["tcp:0:interface=127.0.0.1", "unix:/tmp/x.sock"])

    def test_addon_and_alias(self):
        """--addon and -s (repeatable) fill the scripts option."""
        directory = self.mktemp()
        os.makedirs(directory)
        one, two = os.path.join(directory, "one.py"), os.path.join(directory, "two.py")
        for path in (one, two):
            open(path, "w").close()
        config = parse("--addon", one, "-s", two)
        self.assertEqual(config["master"].options.scripts, [one, two])

    def test_missing_addon(self):
        """--addon naming a missing file is a usage error naming it."""
        e = self.assertRaises(usage.UsageError, parse, "--addon", "/nonexistent/script.py")
        self.assertIn("/nonexistent/script.py", str(e))

    def test_set(self):
        """--set NAME=VALUE (repeatable) sets core and addon options with their types."""
        config = parse("--set", "read_timeout=5", "--set", "flow_detail=3", "--set", "termlog_verbosity=debug")
        options = config["master"].options
        self.assertEqual(options.read_timeout, 5.0)
        self.assertEqual(options.flow_detail, 3)
        self.assertEqual(options.termlog_verbosity, "debug")

    def test_set_option_of_a_script(self):
        """--set for an option an --addon script declares applies once the script loads; unknown ones are errors."""
        directory = self.mktemp()
        os.makedirs(directory)
        script = os.path.join(directory, "declares.py")
        with open(script, "w") as f:
            f.write(
                "def load(loader):\n"
                "    loader.add_option('script_level', int, 1, 'A script option.')\n"
            )
        config = parse("--addon", script, "--set", "script_level=7", "--set", "nosuch=1")
        master = config["master"]
        self.assertEqual(master.options.deferred, {"script_level", "nosuch"})
        termlog = master.addons.get("termlog")
        self.successResultOf(master.addons.remove(termlog))  # keep the terminal quiet
        recorder = LogRecorder()
        master.addons.add(recorder)
        self.addCleanup(master.stop)
        e = self.assertRaises(OptionsError, master.start)
        self.assertEqual(master.options.script_level, 7)
        self.assertIn("unknown option nosuch: no addon declared it", str(e))

    def test_bad_set(self):
        """A bad --set (unknown name, wrong type) is a usage error naming the option."""
        e = self.assertRaises(usage.UsageError, parse, "--set", "nosuch=1")
        self.assertIn("nosuch", str(e))
        e = self.assertRaises(usage.UsageError, parse, "--set", "read_timeout=soon")
        self.assertIn("read_timeout", str(e))

    def test_confdir_and_mode(self):
        """--confdir and --mode set their options."""
        options = parse("--confdir", "/tmp/ca", "-m", "regular")["master"].options
        self.assertEqual((options.confdir, options.mode), ("/tmp/ca", "regular"))

    def test_quiet(self):
        """-q prints no flows and only warnings and errors."""
        options = parse("-q")["master"].options
        self.assertEqual((options.flow_detail, options.termlog_verbosity), (0, "warn"))

    def test_verbose(self):
        """-v adds headers; -vv bodies and debug logs; none keeps the defaults."""
        options = parse()["master"].options
        self.assertEqual((options.flow_detail, options.termlog_verbosity), (1, "info"))
        options = parse("-v")["master"].options
        self.assertEqual((options.flow_detail, options.termlog_verbosity), (2, "info"))
        options = parse("-vv")["master"].options
        self.assertEqual((options.flow_detail, options.termlog_verbosity), (3, "debug"))
        options = parse("--verbose", "--verbose", "--verbose")["master"].options
        self.assertEqual(options.flow_detail, 4)

    def test_flow_flags(self):
        """
        mitmdump's flow flags map to the options of the flow addons, and the
        words after the flags form the dumper's filter.
        """
        options = parse(
            "-w", "+out.bin", "-r", "in.har", "-C", "a.bin", "-C", "b.bin", "-S", "c.bin",
            "~d", "example.org", "&", "!~a",
        )["master"].options
        self.assertEqual(options.save_stream_file, "+out.bin")
        self.assertEqual(options.rfile, "in.har")
        self.assertEqual(options.client_replay, ["a.bin", "b.bin"])
        self.assertEqual(options.server_replay, ["c.bin"])
        self.assertEqual(options.dumper_filter, "~d example.org & !~a")

    def test_filter_typo_is_a_usage_error(self):
        """
        A filter expression that does not parse is a usage error naming
        where it went wrong, whether positional or set as an option.
        """
        with self.assertRaises(usage.UsageError) as caught:
            parse("~c", "abc")
        self.assertIn("dumper_filter", str(caught.exception))
        self.assertIn("column", str(caught.exception))
        for name in ("save_stream_filter", "hardump_filter", "dumper_filter"):
            with self.assertRaises(usage.UsageError):
                parse("--set", f"{name}=~d (")

    def test_set_wins_over_quiet(self):
        """An explicit --set wins over what -q implies."""
        options = parse("-q", "--set", "termlog_verbosity=error")["master"].options
        self.assertEqual(options.termlog_verbosity, "error")

    def test_terminal_logger_under_nodaemon(self):
        """Under twistd -n without a log file, the terminal observer is installed as twistd's logger."""
        config = tap.Options()
        config.parent = {"nodaemon": True, "logfile": None, "logger": None}
        config.parseOptions([])
        self.assertEqual(config.parent["logger"], "interceptor.log.terminal_observer")
        config = tap.Options()
        config.parent = {"nodaemon": True, "logfile": "proxy.log", "logger": None}
        config.parseOptions([])
        self.assertIsNone(config.parent["logger"])

    def test_daemon_flows_to_log(self):
        """Without -n (a daemon, stdout /dev/null) the dumper writes flows to the log; with -n to stdout."""
        for nodaemon, to_log in ((False, True), (True, False)):
            config = tap.Options()
            config.parent = {"nodaemon": nodaemon, "logfile": None, "logger": None}
            config.parseOptions([])
            self.assertIs(config["master"].addons.get("dumper").to_log, to_log)
        self.assertIs(parse()["master"].addons.get("dumper").to_log, False)

    def test_make_service(self):
        """makeService returns the ProxyService with the parsed master and endpoints."""
        config = parse("-l", "tcp:0:interface=127.0.0.1")
        service = tap.makeService(config)
        self.assertIsInstance(service, ProxyService)
        self.assertTrue(verifyObject(IService, service))
        self.assertIs(service.master, config["master"])
        self.assertEqual(service.listen, ["tcp:0:interface=127.0.0.1"])
        self.assertTrue(service.clean_sigterm)

    def test_plugin_found(self):
        """The twistd plugin named interceptor is found and points at interceptor.tap."""
        [plugin] = [p for p in getPlugins(IServiceMaker) if p.tapname == "interceptor"]
        self.assertTrue(verifyObject(IServiceMaker, plugin))
        self.assertIs(plugin.options, tap.Options)
        self.assertIs(plugin.makeService, tap.makeService)

    def test_flow_detail_levels(self):
        cases = {(): 1, ("-q",): 0, ("-v",): 2, ("-vv",): 3, ("-vvv",): 4, ("-vvvvv",): 4,
                 ("-vv", "--set", "flow_detail=1"): 1}
        for argv, detail in cases.items():
            self.assertEqual(parse(*argv)["master"].options.flow_detail, detail, argv)

    def test_bad_set_values_are_usage_errors(self):
        for spec in ("flow_detail=abc", "flow_detail=", "flow_detail", "termlog_verbosity=loud",
                     "http2=maybe", "nosuch=1", "noequals", "flow_detail=9", "flow_detail=-1",
                     "connect_timeout=-1", "read_timeout=0"):
            self.assertRaises(usage.UsageError, parse, "--set", spec)

    def test_bad_size_options_are_usage_errors(self):
        """
        stream_large_bodies/body_size_limit take sizes ("1m"); a value that is
        not a size is silently treated as "no limit" by the layers
        (http1_framing._size_option), so it must be refused up front
        (mitmproxy raises OptionsError for an invalid size).
        """
        for spec in ("stream_large_bodies=1x", "body_size_limit=ten",
                     "websocket_history_size=lots", "max_decoded_size=lots",
                     "max_decoded_size=", "max_decoded_size=0"):
            self.assertRaises(usage.UsageError, parse, "--set", spec)
        self.assertEqual(parse("--set", "max_decoded_size=2g")["master"].options.max_decoded_size,
                         "2g")

    def test_bad_host_regex_is_usage_error(self):
        """An invalid regex in ignore_hosts/allow_hosts/tcp_hosts is refused up front."""
        for spec in ("ignore_hosts=[", "tcp_hosts=(", "allow_hosts=*"):
            self.assertRaises(usage.UsageError, parse, "--set", spec)

    def _twistd_usage_error(self, *argv):
        """
        Parse C{twistd interceptor ARGV} as twistd does: the usage error's
        exit status and what went to stderr.
        """
        from twisted.scripts.twistd import ServerOptions

        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        stdout = io.StringIO()
        self.patch(sys, "stdout", stdout)
        e = self.assertRaises(SystemExit, ServerOptions().parseOptions, ["interceptor", *argv])
        self.assertEqual(stdout.getvalue(), "")
        return e.code, stderr.getvalue()

    def test_twistd_usage_error_is_one_line_and_a_hint(self):
        """Under twistd a usage error prints the error and a hint, not the whole help, and exits 2."""
        code, err = self._twistd_usage_error("--set", "noequals")
        self.assertEqual(code, 2)
        self.assertEqual(err, f"twistd interceptor: --set noequals: expected NAME=VALUE\n{tap.USAGE_HINT}\n")

    def test_twistd_usage_errors_suggest(self):
        """A misspelt flag or option name gets the closest names; bad values are named."""
        cases = {
            ("--lisen", "tcp:0"): "unknown flag --lisen (did you mean --listen?)",
            ("--set", "strem_large_bodies=1m"): "unknown option 'strem_large_bodies' (did you mean stream_large_bodies?)",
            ("--set", "connect_timeout=-1"): "option connect_timeout: must be a number above 0, got -1.0",
            ("--set", "flow_detail=9"): "option flow_detail: 9 is not one of 0, 1, 2, 3, 4",
        }
        for argv, message in cases.items():
            code, err = self._twistd_usage_error(*argv)
            self.assertEqual((code, err.splitlines()[0]), (2, f"twistd interceptor: {message}"), argv)

    def test_bad_listen_is_usage_error(self):
        """A --listen that is not an endpoint string is a usage error, not a traceback at start."""
        self.assertRaises(usage.UsageError, parse, "--listen", "nonsense:1")


class ProxyServiceTests(unittest.TestCase):
    """
    ProxyService starts and stops a master and its ports.
    """

    async def test_start_listen_stop(self):
        """startService listens on every endpoint; stopService closes them and waits for done()."""
        calls = []

        class Done:
            def done(self):
                calls.append("done")

        master = Master(proxy_options(), [Done()])
        service = ProxyService(master, ["tcp:0:interface=127.0.0.1", "tcp:0:interface=127.0.0.1"])
        service.startService()
        ports = await service.listening
        self.assertEqual(len(ports), 2)
        self.assertTrue(master.running)
        self.assertTrue(all(port.getHost().port for port in ports))
        await service.stopService()
        self.assertEqual(calls, ["done"])
        self.assertFalse(master.running)
        self.assertFalse(any(port.connected for port in ports))

    async def test_listen_failure(self):
        """A failing endpoint is logged as 'Cannot listen' and the listening Deferred fires with None."""
        recorder = LogRecorder()
        blocker = ProxyService(Master(proxy_options()), ["tcp:0:interface=127.0.0.1"])
        blocker.startService()
        [port] = await blocker.listening
        self.addCleanup(blocker.stopService)

        class Reactor:
            """The real reactor, except that stop() is only recorded."""

            stopped = []

            def __getattr__(self, name):
                return getattr(reactor, name)

            running = True

            def stop(self):
                self.stopped.append(True)

        fake = Reactor()
        master = Master(proxy_options(), [recorder], reactor=fake)
        service = ProxyService(master, [f"tcp:{port.getHost().port}:interface=127.0.0.1"])
        service.startService()
        self.assertIsNone(await service.listening)
        self.assertIn("Cannot listen", recorder.text("error"))
        self.assertEqual(fake.stopped, [True])
        await service.stopService()

    async def test_exit_on_failure_listen(self):
        """With exit_on_failure (twistd), a port in use is logged and startService raises SystemExit(1)."""
        blocker = ProxyService(Master(proxy_options()), ["tcp:0:interface=127.0.0.1"])
        blocker.startService()
        [port] = await blocker.listening
        self.addCleanup(blocker.stopService)
        recorder = LogRecorder()
        master = Master(proxy_options(), [recorder])
        service = ProxyService(
            master, [f"tcp:{port.getHost().port}:interface=127.0.0.1"], exit_on_failure=True
        )
        self.addCleanup(master.stop)
        e = self.assertRaises(SystemExit, service.startService)
        self.assertEqual(e.code, 1)
        [line] = recorder.messages("error")
        self.assertIn(f"Cannot listen on tcp:{port.getHost().port}:interface=127.0.0.1", line)
        self.assertIsNone(await service.listening)

    def test_exit_on_failure_options(self):
        """An addon refusing the options at start (an unusable confdir): one error line, SystemExit(1)."""
        from addons.tlsconfig import TlsConfig

        path = self.mktemp()
        with open(path, "w") as f:
            f.write("a file")
        recorder = LogRecorder()
        master = Master(proxy_options(confdir=path), [recorder, TlsConfig()])
        self.addCleanup(master.stop)
        service = ProxyService(master, ["tcp:0:interface=127.0.0.1"], exit_on_failure=True)
        e = self.assertRaises(SystemExit, service.startService)
        self.assertEqual(e.code, 1)
        self.assertEqual(
            recorder.messages("error"),
            [f"Cannot start: confdir {os.path.abspath(path)} is not a directory"],
        )
        self.assertEqual(master.ports, [])

    def test_options_error_raised_when_embedded(self):
        """Without exit_on_failure (an application), the OptionsError is raised after the line is logged."""
        from addons.tlsconfig import TlsConfig
        from interceptor.core.options import OptionsError

        path = self.mktemp()
        with open(path, "w") as f:
            f.write("a file")
        master = Master(proxy_options(confdir=path), [TlsConfig()])
        self.addCleanup(master.stop)
        service = ProxyService(master, ["tcp:0:interface=127.0.0.1"])
        e = self.assertRaises(OptionsError, service.startService)
        self.assertIn("is not a directory", str(e))

    def test_named(self):
        """The service is named interceptor, so an application can find it."""
        self.assertEqual(ProxyService(Master(proxy_options(), reactor=Clock()), []).name, "interceptor")


class _Collect(ProcessProtocol):
    """
    Collects a child's output; C{ended} fires with the exit reason, and
    C{seen(text)} fires once the output contains C{text}.
    """

    def __init__(self):
        self.output = b""
        self.ended = Deferred()
        self._waiting = []

    def seen(self, text):
        d = Deferred()
        self._waiting.append((text, d))
        self._check()
        return d

    def _check(self):
        for text, d in list(self._waiting):
            if text in self.output:
                self._waiting.remove((text, d))
                d.callback(None)

    def outReceived(self, data):
        self.output += data
        self._check()

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback(reason.value)


def spawn_twistd(testcase, argv, cwd, env=None):
    """
    Start C{twistd} with C{argv} in C{cwd} (C{env}: the environment, by
    default this one without PYTHONPATH); the child is killed if still
    running at cleanup, and cleanup waits until it has ended.

    @return: (its L{_Collect} protocol, its process transport)
    """
    protocol = _Collect()
    if env is None:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
    transport = reactor.spawnProcess(protocol, TWISTD, [TWISTD, *argv], env=env, path=cwd)

    def kill_if_running():
        try:
            transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass

    # Cleanups run last-added first: kill the child if it still runs,
    # then wait until it has ended (no process left behind).
    testcase.addCleanup(lambda: protocol.ended)
    testcase.addCleanup(kill_if_running)
    return protocol, transport


class TwistdProcessTests(unittest.TestCase):
    """
    Real C{twistd interceptor} processes, each bounded by a timeout.
    """

    timeout = 30

    def _spawn(self, args, cwd):
        return spawn_twistd(self, args, cwd)

    async def _within(self, d, seconds, what, protocol):
        """
        Wait for C{d}, failing the test after C{seconds} (C{d} itself is
        left alone, so cleanup can still wait for the process to end).
        """
        waiter = Deferred()

        def relay(result):
            if not waiter.called:
                waiter.callback(result)
            return result

        def expire():
            if not waiter.called:
                waiter.errback(TimeoutError(f"{what} not within {seconds}s"))

        d.addBoth(relay)
        timer = reactor.callLater(seconds, expire)
        try:
            return await waiter
        except TimeoutError as e:
            self.fail(f"{e}; output:\n{protocol.output.decode(errors='replace')}")
        finally:
            if timer.active():
                timer.cancel()

    async def test_help_from_any_directory(self):
        """twistd interceptor --help, run from an unrelated directory, prints the plugin's options."""
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        protocol, _ = self._spawn(["interceptor", "--help"], cwd)
        reason = await self._within(protocol.ended, 10, "twistd --help exit", protocol)
        output = protocol.output.decode()
        self.assertIsInstance(reason, error.ProcessDone, output)
        self.assertIn("Usage: twistd [options] interceptor [options]", output)
        for flag in ("--listen=", "--addon=", "--set=", "--confdir=", "--quiet", "--verbose"):
            self.assertIn(flag, output)
        self.assertEqual(os.listdir(cwd), [])

    async def test_sigterm_stops_cleanly(self):
        """SIGTERM to twistd -n interceptor runs done(), closes the port and exits with status 0."""
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        marker = os.path.join(cwd, "marker")
        script = os.path.join(cwd, "marker_addon.py")
        with open(script, "w") as f:
            f.write(
                "def done():\n"
                f"    with open({marker!r}, 'w') as f:\n"
                "        f.write('done ran')\n"
            )
        protocol, transport = self._spawn(
            [
                "-n",
                "--pidfile=",
                "interceptor",
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--addon",
                script,
                "--confdir",
                os.path.join(cwd, "conf"),
            ],
            cwd,
        )
        await self._within(protocol.seen(b"Proxy listening on"), 10, "'Proxy listening on'", protocol)
        self.assertFalse(os.path.exists(marker))
        # The port listens before the reactor runs (twistd starts services
        # first): an answer says the reactor runs, with the service's own
        # SIGTERM handler in place (a SIGTERM before that is the start-up
        # race only the fast paths' forget_exit_signal covers).
        port = int(re.search(rb"Proxy listening on http://127\.0\.0\.1:(\d+)", protocol.output)[1])
        client = await RawClient.connect(self, port)
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await client.wait_for(lambda data: b"\r\n\r\n" in data, 10)
        os.kill(transport.pid, signal.SIGTERM)
        reason = await self._within(protocol.ended, 10, "exit after SIGTERM", protocol)
        output = protocol.output.decode(errors="replace")
        self.assertIsInstance(reason, error.ProcessDone, output)
        self.assertEqual(reason.exitCode, 0, output)
        with open(marker) as f:
            self.assertEqual(f.read(), "done ran")
        self.assertIn("Received SIGTERM, shutting down.", output)
        self.assertRegex(output, r"\(TCP Port \d+ Closed\)")
        # Where the proxy listens and where the CA is, not an IPv4Address repr.
        self.assertRegex(output, r"\nProxy listening on http://127\.0\.0\.1:\d+\n")
        self.assertIn(f"\nCA certificate for clients: {cwd}/conf/interceptor-ca-cert.pem\n", output)
        self.assertNotIn("Traceback", output)
