# -*- test-case-name: tests.e2e.test_cli -*-
"""
The flow output of real proxies (in-process and `twistd -n interceptor`
subprocesses) and the command line's error handling.
"""

from __future__ import annotations

import os
import signal

from twisted.internet import error, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial import unittest

from tests.e2e.peers import RawServer, curl, http_response, unused_port, wait_listening, wait_until
from tests.test_tap import spawn_twistd


def _latin_header_handler(conn, request):
    """
    Answer with a header value that is not UTF-8.
    """
    conn.write(http_response(200, b"body", [(b"X-Latin", b"caf\xe9"),
                                            (b"Content-Type", b"text/plain")]))


class TwistdCommandLineTests(unittest.TestCase):
    """
    Real C{twistd -n interceptor} processes on 127.0.0.1.
    """

    timeout = 40

    def _spawn(self, *args):
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONIOENCODING")}
        # An ordinary UTF-8 terminal (e.g. LANG=en_US.UTF-8): stdout errors="strict".
        # (C.UTF-8/POSIX locales would give surrogateescape instead.)
        env["PYTHONIOENCODING"] = "utf-8:strict"
        argv = ["-n", "--pidfile=", "interceptor", "--confdir", os.path.join(cwd, "conf"), *args]
        return spawn_twistd(self, argv, cwd, env)

    async def _ended(self, protocol, seconds=15):
        ok = await wait_until(lambda: protocol.ended.called, seconds)
        self.assertTrue(ok, protocol.output.decode(errors="replace"))

    async def test_options_lists_and_exits(self):
        """twistd -n interceptor --options lists every option and exits with status 0."""
        protocol, _ = self._spawn("--options")
        await self._ended(protocol)
        out = protocol.output.decode(errors="replace")
        reason = await protocol.ended
        self.assertIsInstance(reason, error.ProcessDone, out)
        for name in ("flow_detail", "termlog_verbosity", "stream_large_bodies", "mode"):
            self.assertIn(name, out)
        self.assertNotIn("Traceback", out)

    async def test_bad_listen_clear_error(self):
        """A --listen that is no endpoint string fails with a clear message, not a traceback."""
        protocol, _ = self._spawn("--listen", "nonsense:1")
        await self._ended(protocol)
        out = protocol.output.decode(errors="replace")
        self.assertNotIn("Traceback", out)
        self.assertIn("nonsense", out)

    async def _exits_with(self, status, *args):
        """
        Run twistd with C{args}; it must exit with C{status} without a
        traceback.  Returns its output.
        """
        protocol, _ = self._spawn(*args)
        await self._ended(protocol)
        out = protocol.output.decode(errors="replace")
        reason = await protocol.ended
        self.assertIsInstance(reason, error.ProcessTerminated, out)
        self.assertEqual(reason.exitCode, status, out)
        self.assertNotIn("Traceback", out)
        return out

    async def test_bad_set_clear_error(self):
        """--set flow_detail=abc: a usage error naming the option, no traceback."""
        out = await self._exits_with(2, "--set", "flow_detail=abc")
        self.assertIn("flow_detail", out)

    async def test_usage_error_without_the_help(self):
        """--set noequals: the error asking for NAME=VALUE and a hint, not the whole help; status 2."""
        out = await self._exits_with(2, "--set", "noequals")
        self.assertEqual(
            out.splitlines(),
            [
                "twistd interceptor: --set noequals: expected NAME=VALUE",
                "Run 'twistd interceptor --help' for the command line, "
                "'twistd interceptor --options' for every option --set takes.",
            ],
        )

    async def test_misspelt_flag_suggested(self):
        """--lisen: the closest flag is suggested, no help text."""
        out = await self._exits_with(2, "--lisen", "tcp:0:interface=127.0.0.1")
        self.assertIn("twistd interceptor: unknown flag --lisen (did you mean --listen?)", out)
        self.assertNotIn("--verbose", out)

    async def test_port_in_use_exits_with_status_1(self):
        """A port already in use: one '[error] Cannot listen on ...' line and exit status 1 (it was 0)."""
        taken = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        port = taken.getHost().port
        out = await self._exits_with(1, "--listen", f"tcp:{port}:interface=127.0.0.1")
        lines = [line for line in out.splitlines() if "Cannot listen" in line]
        self.assertEqual(len(lines), 1, out)
        self.assertIn(f"tcp:{port}:interface=127.0.0.1", lines[0])
        self.assertIn("Address already in use", lines[0])
        self.assertNotIn("Proxy listening", out)

    async def test_second_listen_in_use_exits_with_status_1(self):
        """One of two --listen endpoints in use: exit status 1 (the process ends, the other port with it)."""
        taken = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        port = taken.getHost().port
        out = await self._exits_with(1, 
            "--listen", "tcp:0:interface=127.0.0.1", "--listen", f"tcp:{port}:interface=127.0.0.1"
        )
        self.assertIn(f"Cannot listen on tcp:{port}:interface=127.0.0.1", out)

    async def test_confdir_is_a_file(self):
        """--confdir naming a file: one clear line, exit status 1, no traceback (it ran on, resetting HTTPS)."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("not a directory")
        out = await self._exits_with(1, "--listen", "tcp:0:interface=127.0.0.1", "--confdir", path)
        self.assertIn(f"[error] Cannot start: confdir {path} is not a directory", out)
        self.assertNotIn("Proxy listening", out)

    async def test_confdir_below_a_file(self):
        """--confdir that cannot be created (below a file): one clear line, exit status 1."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("not a directory")
        confdir = os.path.join(path, "conf")
        out = await self._exits_with(1, "--listen", "tcp:0:interface=127.0.0.1", "--confdir", confdir)
        self.assertIn(f"Cannot start: cannot create the CA in confdir {confdir}: Not a directory", out)

    async def _run_proxy_and_request(self, *args):
        """
        Start a proxy on a free port, send one request through it once it
        listens, then stop it with SIGTERM: its whole output is in then.
        """
        port = await unused_port()
        protocol, transport = self._spawn("--listen", f"tcp:{port}:interface=127.0.0.1", *args)
        server = await RawServer.start(self, _latin_header_handler)
        # -q hides the "listening" line: try the port until it takes a connection.
        await wait_listening(port, protocol.ended)
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", server.url("/latin"))
        self.assertEqual(result.status, 200, protocol.output.decode(errors="replace"))
        transport.signalProcess("TERM")
        await self._ended(protocol)
        return protocol

    async def test_verbose_non_utf8_header_printed(self):
        """
        -v prints the headers; a server header with a non-UTF-8 byte must not
        break the output (UnicodeEncodeError on stdout) and lose the flow.
        """
        protocol = await self._run_proxy_and_request("-v")
        out = protocol.output.decode(errors="replace")
        self.assertIn("GET http://127.0.0.1", out)
        self.assertIn("X-Latin", out)
        self.assertNotIn("UnicodeEncodeError", out)

    async def test_quiet_prints_no_flow(self):
        """-q: a flow through the proxy prints nothing (the whole output, up to the exit, is checked)."""
        protocol = await self._run_proxy_and_request("-q")
        out = protocol.output.decode(errors="replace")
        self.assertNotIn("/latin", out)


class TwistdDaemonTests(unittest.TestCase):
    """
    C{twistd interceptor} without C{-n}: a daemon whose flow lines go to
    twistd.log (its stdout is /dev/null).
    """

    timeout = 40

    async def test_flows_in_twistd_log(self):
        """The start-up lines and a flow's line are in twistd.log; SIGTERM stops the daemon."""
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        pidfile = os.path.join(cwd, "twistd.pid")
        logfile = os.path.join(cwd, "twistd.log")
        port = await unused_port()
        server = await RawServer.start(self, _latin_header_handler)
        protocol, _ = spawn_twistd(self, ["--pidfile", pidfile, "interceptor", "--listen",
                                          f"tcp:{port}:interface=127.0.0.1",
                                          "--confdir", os.path.join(cwd, "conf")], cwd)
        # The first process exits once the daemon has forked and written its pid.
        self.assertTrue(await wait_until(lambda: protocol.ended.called, 15))
        self.assertTrue(await wait_until(lambda: _read(pidfile).strip().isdigit(), 10),
                        protocol.output.decode(errors="replace"))
        pid = int(_read(pidfile))
        self.addCleanup(_kill_if_alive, pid)
        self.assertTrue(await wait_until(lambda: "Proxy listening on" in _read(logfile), 15),
                        _read(logfile))
        result = await curl(self, "-x", f"http://127.0.0.1:{port}", server.url("/daemon"))
        self.assertEqual(result.status, 200)
        line = f"GET {server.url('/daemon')} << 200 OK"
        self.assertTrue(await wait_until(lambda: line in _read(logfile), 10), _read(logfile))
        os.kill(pid, signal.SIGTERM)
        self.assertTrue(await wait_until(lambda: not _alive(pid), 15))
        log = _read(logfile)
        self.assertIn(f"Proxy listening on http://127.0.0.1:{port}\n", log)
        self.assertIn(f"CA certificate for clients: {cwd}/conf/interceptor-ca-cert.pem\n", log)
        self.assertEqual(log.count(line), 1, log)
        self.assertNotIn("Traceback", log)


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_if_alive(pid):
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
