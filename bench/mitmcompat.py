#!/usr/bin/env python3
"""
How many of mitmproxy's published example scripts run on interceptor
(issue #16).

Usage::

    python3 bench/mitmcompat.py --twistd .venv/bin/twistd \\
        /tmp/mitmexamples/v12 /tmp/mitmexamples/v2 --out FILE.md

For each C{*.py} in the given directories: the script is copied to a
temporary directory with only its imports renamed (every Python name token
C{mitmproxy} becomes C{interceptor}: C{import mitmproxy}, C{from
mitmproxy.x import y}, C{mitmproxy.ctx}; strings and comments are left
alone), C{twistd -n interceptor} is started on a free loopback port with
the script as C{--addon} (and the arguments of
L{bench.mitmcompat_expect}), and once it listens the harness drives
loopback traffic through it: HTTP (an HTML page, a JSON response, a PNG, a
form POST), a WebSocket exchange and a raw TCP exchange over CONNECT.  It
then stops the proxy with SIGTERM (by pid) and classifies the run:

  - C{FAIL-import}: the script did not load ("Error loading script", or
    the proxy refused its command line, e.g. arguments after the path).
  - C{FAIL-error}: a traceback or "Addon error" in the proxy's output.
  - C{FAIL-silent}: it loaded and raised nothing, but an expected effect
    (a log line, a header, a rewritten body, a file) is missing.
  - C{PASS}: every expected effect is there.
  - C{N/A}: needs what the issue excludes (not run; the reason is given).

Every server is on 127.0.0.1; every request names 127.0.0.1, so a script
that looks for a public host name (C{example.com}) never sends traffic
anywhere else.  Each run is bounded (C{--per-script} seconds) and so is the
whole run (C{--total}).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tokenize
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import socketserver
from socketserver import BaseRequestHandler, ThreadingTCPServer
from typing import Sequence, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mitmcompat_expect import Expectation, expectation_for  # noqa: E402

HTML_PAGE = (
    b"<html><head><title>t</title></head><body><p>hello streamed-body streamed-foo</p>"
    b'<a href="https://strip.invalid/">link</a></body></html>'
)
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def rename_imports(source: str) -> str:
    """Replace every Python name token C{mitmproxy} by C{interceptor}.

    Only NAME tokens change, so C{import mitmproxy}, C{from mitmproxy.http
    import X} and C{mitmproxy.ctx.log} are renamed while strings
    (C{"mitmproxy.org"}) and comments are not.

    @param source: The script's text.
    @return: The renamed text.
    @raise SyntaxError: If the script cannot be tokenized.
    """
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int]] = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.string == "mitmproxy":
            edits.append(tok.start)
    for row, col in reversed(edits):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + "interceptor" + line[col + len("mitmproxy"):]
    return "".join(lines)


def _png() -> bytes:
    """A valid 2x1 RGB PNG, so an image-rewriting script has one to open."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"\x00" + b"\xff\x00\x00" + b"\x00\x00\xff"
    header = struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


class _Origin(BaseHTTPRequestHandler):
    """The loopback HTTP server: a page, JSON, a PNG, and an echo of what it got."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, ctype: str, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Strict-Transport-Security", "max-age=1")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/data.json"):
            self._send("application/json", json.dumps({"hello": "json", "path": self.path}).encode())
        elif self.path.startswith("/img.png"):
            self._send("image/png", _png())
        else:
            self._send("text/html", HTML_PAGE + b"<!-- path " + self.path.encode() + b" -->")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, 1 << 20))
        self._send("text/plain", b"hello echo path=" + self.path.encode() + b" body=" + body)


class _TcpEcho(BaseRequestHandler):
    """Echoes what it reads until the peer closes (bounded)."""

    def handle(self) -> None:
        self.request.settimeout(5)
        for _ in range(100):
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.request.sendall(data)


def _recv_until(sock: socket.socket, marker: bytes, limit: int = 1 << 16) -> bytes:
    data = b""
    while marker not in data and len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _read_frame(sock: socket.socket) -> bytes:
    """One WebSocket frame's payload (unmasking it if masked)."""
    head = _recv_exact(sock, 2)
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack(">H", _recv_exact(sock, 2))[0]
    elif length == 127:
        length = struct.unpack(">Q", _recv_exact(sock, 8))[0]
    mask = _recv_exact(sock, 4) if head[1] & 0x80 else b""
    payload = _recv_exact(sock, min(length, 1 << 20))
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return payload


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"peer closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def _frame(payload: bytes, masked: bool) -> bytes:
    """A single text frame (payloads under 126 bytes)."""
    if masked:
        key = os.urandom(4)
        body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return bytes([0x81, 0x80 | len(payload)]) + key + body
    return bytes([0x81, len(payload)]) + payload


class _WsEcho(BaseRequestHandler):
    """A minimal WebSocket server: the handshake, then echoes one text frame and stays open."""

    def handle(self) -> None:
        sock = self.request
        sock.settimeout(5)
        try:
            head = _recv_until(sock, b"\r\n\r\n")
            key = re.search(rb"(?im)^sec-websocket-key:\s*(\S+)", head)
            if key is None:
                return
            accept = base64.b64encode(hashlib.sha1(key.group(1) + WS_GUID).digest())
            sock.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            payload = _read_frame(sock)
            sock.sendall(_frame(b"echo " + payload[:100], masked=False))
            # Open until the client goes (it lingers for messages a script
            # injects), bounded.
            sock.settimeout(15)
            while sock.recv(65536):
                pass
        except (OSError, ConnectionError):
            return


class _QuietHTTPServer(ThreadingHTTPServer):
    """An HTTP server that does not print the resets of idle keep-alive connections."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class _QuietTCPServer(ThreadingTCPServer):
    """A TCP server that does not print its clients' resets."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@dataclass
class Servers:
    """The loopback peers, each in its own thread of this process.

    @ivar http: The HTTP origin's port.
    @ivar ws: The WebSocket echo server's port.
    @ivar tcp: The raw TCP echo server's port.
    """

    http: int = 0
    ws: int = 0
    tcp: int = 0
    _servers: list[socketserver.BaseServer] = field(default_factory=list)

    def start(self) -> None:
        """Start the three servers on ephemeral loopback ports."""
        for attr, server in (
            ("http", _QuietHTTPServer(("127.0.0.1", 0), _Origin)),
            ("ws", _QuietTCPServer(("127.0.0.1", 0), _WsEcho)),
            ("tcp", _QuietTCPServer(("127.0.0.1", 0), _TcpEcho)),
        ):
            server.daemon_threads = True
            setattr(self, attr, server.server_address[1])
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)

    def stop(self) -> None:
        """Stop all three."""
        for server in self._servers:
            server.shutdown()
            server.server_close()


@dataclass
class Traffic:
    """What the clients saw through the proxy.

    @ivar http: Every HTTP response (head and body), concatenated.
    @ivar ws: What the WebSocket client received (or its error).
    @ivar tcp: What the raw TCP client received (or its error).
    """

    http: str = ""
    ws: str = ""
    tcp: str = ""


def _curl(proxy: int, url: str, deadline: float, *extra: str) -> str:
    timeout = max(1.0, min(7.0, deadline - time.monotonic()))
    cmd = ["curl", "-s", "-i", "--noproxy", "", "-x", f"http://127.0.0.1:{proxy}", "--max-time", str(timeout), *extra, url]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout + 2)
    except subprocess.TimeoutExpired:
        return f"[curl {url}: timed out]\n"
    return done.stdout.decode("latin-1") + (f"[curl exit {done.returncode}]\n" if done.returncode else "")


def loopback_only() -> bool:
    """
    Whether this process sees no network interface but loopback (a network
    namespace of its own, C{unshare -n}), so that a request to a name a
    script should have answered cannot leave the machine.
    """
    try:
        return [name for _, name in socket.if_nameindex()] == ["lo"]
    except OSError:
        return False


def drive(
    proxy: int, servers: Servers, deadline: float, ws_linger: float = 0.5, urls: Sequence[str] = ()
) -> Traffic:
    """Send the loopback traffic through the proxy on port C{proxy}.

    @param proxy: The proxy's port on 127.0.0.1.
    @param servers: The loopback peers.
    @param deadline: A C{time.monotonic()} value no step may pass.
    @param ws_linger: Seconds the WebSocket client waits for a message after the echo.
    @param urls: More URLs to GET through the proxy (virtual hosts a script
        serves itself, such as a WSGI app's: run the harness in a network
        namespace with only loopback, C{unshare -n}, so that nothing leaves
        the machine if the script does not answer).
    @return: What the clients received.
    """
    seen = Traffic()
    base = f"http://127.0.0.1:{servers.http}"
    requests: list[tuple[str, tuple[str, ...]]] = [
        (f"{base}/page.html", ()),
        (f"{base}/data.json?q=1", ()),
        (f"{base}/img.png", ()),
        (f"{base}/form", ("-d", "a=b&hello=1")),
        (f"{base}/path", ()),
        *((url, ()) for url in urls),
    ]
    for url, extra in requests:
        if time.monotonic() >= deadline:
            break
        seen.http += _curl(proxy, url, deadline, *extra)
    if time.monotonic() < deadline:
        seen.ws = _websocket(proxy, servers.ws, deadline, ws_linger)
    if time.monotonic() < deadline:
        seen.tcp = _tcp(proxy, servers.tcp, deadline)
    return seen


def _websocket(proxy: int, port: int, deadline: float, linger: float) -> str:
    key = base64.b64encode(os.urandom(16))
    try:
        with socket.create_connection(("127.0.0.1", proxy), timeout=max(1.0, min(5.0, deadline - time.monotonic()))) as sock:
            sock.sendall(
                f"GET http://127.0.0.1:{port}/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
                + b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                + b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
            )
            head = _recv_until(sock, b"\r\n\r\n")
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                return "[ws: no 101] " + head[:200].decode("latin-1")
            sock.sendall(_frame(b"Hello world", masked=True))
            got = _read_frame(sock).decode("utf-8", "replace")
            # Messages a script injects come later; wait for them while the run allows.
            sock.settimeout(max(0.1, min(linger, deadline - time.monotonic())))
            try:
                got += " | " + _read_frame(sock).decode("utf-8", "replace")
            except (OSError, ConnectionError):
                pass
            return got
    except (OSError, ConnectionError) as e:
        return f"[ws: {e}]"


def _tcp(proxy: int, port: int, deadline: float) -> str:
    try:
        with socket.create_connection(("127.0.0.1", proxy), timeout=max(1.0, min(5.0, deadline - time.monotonic()))) as sock:
            sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            head = _recv_until(sock, b"\r\n\r\n")
            if b" 200" not in head.split(b"\r\n", 1)[0]:
                return "[tcp: CONNECT refused] " + head[:200].decode("latin-1")
            sock.sendall(b"foo says foo")
            time.sleep(0.3)
            return sock.recv(4096).decode("latin-1")
    except (OSError, ConnectionError) as e:
        return f"[tcp: {e}]"


@dataclass
class Result:
    """One script's outcome.

    @ivar name: C{dir/file.py}.
    @ivar verdict: PASS, FAIL-import, FAIL-error, FAIL-silent or N/A.
    @ivar reason: Why (the first error line, the missing effect, the N/A reason).
    @ivar args: The arguments it ran with.
    @ivar seconds: How long its run took.
    """

    name: str
    verdict: str
    reason: str
    args: str = ""
    seconds: float = 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _first_error(output: str) -> str:
    for pattern in (r"Error loading script[^\n]*", r"Addon error[^\n]*", r"(?m)^\S*(Error|Exception)\b[^\n]*"):
        m = re.search(pattern, output)
        if m:
            # The exception line closest after the first error names the cause.
            tail = output[m.start():]
            cause = re.search(r"(?m)^(?:\S+\.)?\w*(?:Error|Exception)\b: [^\n]*", tail)
            line = m.group(0).strip()
            if cause and cause.group(0).strip() not in line:
                line += " / " + cause.group(0).strip()
            return line[:300]
    return ""


def run_script(script: Path, twistd: str, servers: Servers, work: Path, confdir: Path, budget: float) -> Result:
    """Run one example script through interceptor and classify it.

    @param script: The example script (original, not renamed).
    @param twistd: The C{twistd} executable to run.
    @param servers: The loopback peers.
    @param work: A temporary directory for this run.
    @param confdir: The shared C{--confdir}.
    @param budget: Seconds this run may take.
    @return: The classified result.
    """
    name = f"{script.parent.name}/{script.name}"
    exp: Expectation = expectation_for(script.name)
    if "na" in exp:
        return Result(name, "N/A", exp["na"])
    if exp.get("urls") and not loopback_only():
        return Result(name, "N/A", "asks a virtual host: run the harness under `unshare -n` (loopback only)")
    started = time.monotonic()
    deadline = started + budget
    work.mkdir(parents=True, exist_ok=True)
    copy = work / script.name
    try:
        copy.write_text(rename_imports(script.read_text()))
    except (SyntaxError, tokenize.TokenError, UnicodeDecodeError) as e:
        return Result(name, "FAIL-import", f"cannot tokenize: {e}")
    outfile = work / "out.file"
    port = _free_port()
    addon = str(copy)
    extra: list[str] = []
    args = list(exp.get("args", []))
    i = 0
    while i < len(args):
        if args[i] == "--addon-args":
            addon = f"{copy} {args[i + 1].format(out=outfile)}"
            i += 2
        else:
            extra.append(args[i].format(out=outfile))
            i += 1
    cmd = [twistd, "-n", "--pidfile=", "interceptor", "-v", "--listen", f"tcp:{port}:interface=127.0.0.1",
           "--confdir", str(confdir), "--addon", addon, *extra]
    log = work / "proxy.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=work, start_new_session=True)
    try:
        listening = False
        while time.monotonic() < min(deadline, started + 12) and proc.poll() is None:
            text = log.read_text(errors="replace")
            if "listening on" in text or "Error loading script" in text:
                listening = "listening on" in text
                if listening:
                    break
            time.sleep(0.1)
        traffic = drive(port, servers, deadline, exp.get("ws_linger", 0.5), exp.get("urls", [])) if listening and proc.poll() is None else Traffic()
        # Flows finish (and their log lines print) after the client saw the response.
        time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    output = log.read_text(errors="replace")
    shown = " ".join(["--addon", f'"{addon.replace(str(work) + "/", "")}"', *extra])
    result = Result(name, "PASS", "", shown.replace(str(outfile), "OUT"), time.monotonic() - started)
    if "Error loading script" in output:
        result.verdict, result.reason = "FAIL-import", _first_error(output)
    elif not listening:
        # The proxy refused the command line (e.g. a v2 script's arguments after
        # its path), so the script never loaded.
        tail = " ".join(output.strip().splitlines()[-2:])[-300:]
        result.verdict, result.reason = "FAIL-import", "proxy did not start: " + (_first_error(output) or tail)
    elif "Traceback" in output or "Addon error" in output:
        result.verdict, result.reason = "FAIL-error", _first_error(output) or "traceback in output"
    else:
        seen = {"out": output, "http": traffic.http, "ws": traffic.ws, "tcp": traffic.tcp,
                "file": outfile.read_text(errors="replace") if outfile.exists() else ""}
        missing = [f"{where}~/{regex}/" for where, regex in exp.get("expect", []) if not re.search(regex, seen[where])]
        if missing:
            result.verdict, result.reason = "FAIL-silent", "missing: " + ", ".join(missing)
        else:
            result.reason = exp.get("note", "")
    result.reason = result.reason.replace(str(work) + "/", "")
    return result


def table(results: list[Result]) -> str:
    """The results as a markdown table."""
    lines = ["| script | verdict | arguments | reason / note |", "| --- | --- | --- | --- |"]
    for r in results:
        reason = r.reason.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {r.name} | {r.verdict} | `{r.args}` | {reason} |" if r.args else f"| {r.name} | {r.verdict} | | {reason} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    """Run every script of the given directories; print the summary; write the table.

    @param argv: The command line (without the program name).
    @return: The exit status: 0 once every script was classified.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="+", type=Path, help="directories of example scripts (*.py)")
    parser.add_argument("--twistd", default=str(Path(__file__).resolve().parent.parent / ".venv/bin/twistd"))
    parser.add_argument("--out", type=Path, help="write the markdown table here")
    parser.add_argument("--per-script", type=float, default=20.0, help="seconds per script (default 20)")
    parser.add_argument("--total", type=float, default=1500.0, help="seconds for the whole run (default 1500)")
    parser.add_argument("--only", default="", help="regex: run only scripts whose dir/name matches")
    opts = parser.parse_args(argv)
    scripts: list[Path] = []
    for d in opts.dirs:
        if not d.is_dir():
            parser.error(f"not a directory: {d}")
        scripts += sorted(p for p in d.glob("*.py") if re.search(opts.only, f"{d.name}/{p.name}"))
    if not scripts:
        parser.error("no *.py scripts in " + ", ".join(map(str, opts.dirs)))
    if not os.access(opts.twistd, os.X_OK):
        parser.error(f"--twistd {opts.twistd}: not an executable")
    # Runs happen in their own directories, so a relative path would not resolve.
    twistd = os.path.abspath(opts.twistd)
    servers = Servers()
    servers.start()
    results: list[Result] = []
    end = time.monotonic() + opts.total
    top = Path(tempfile.mkdtemp(prefix="mitmcompat-"))
    try:
        confdir = top / "conf"
        for n, script in enumerate(scripts):
            if time.monotonic() >= end:
                results.append(Result(f"{script.parent.name}/{script.name}", "FAIL-error", "not run: --total exhausted"))
                continue
            r = run_script(script, twistd, servers, top / f"{n:02d}", confdir, min(opts.per_script, end - time.monotonic()))
            print(f"{r.verdict:12} {r.name:45} {r.reason[:110]}", flush=True)
            results.append(r)
    finally:
        servers.stop()
        if not os.environ.get("MITMCOMPAT_KEEP"):
            shutil.rmtree(top, ignore_errors=True)
    passed = sum(r.verdict == "PASS" for r in results)
    na = sum(r.verdict == "N/A" for r in results)
    summary = f"{passed} of {len(results)} run ({na} N/A; {passed} of {len(results) - na} applicable)"
    print(summary)
    if opts.out:
        counts = {v: sum(r.verdict == v for r in results) for v in ("PASS", "FAIL-import", "FAIL-error", "FAIL-silent", "N/A")}
        opts.out.write_text(f"{summary}\n\n" + ", ".join(f"{k}: {v}" for k, v in counts.items()) + "\n\n" + table(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
