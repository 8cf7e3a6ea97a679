#!/usr/bin/env python3
"""
decodebomb: the proxy's peak memory (VmHWM) when it decodes a compressed
response that inflates to far more than it weighs, on 127.0.0.1.

    python3 bench/decodebomb.py                        # gzip, gzip x10, br, zstd; addon reads content
    python3 bench/decodebomb.py --reader dumper        # no addon: -vv, the dumper decodes
    python3 bench/decodebomb.py --scenarios gzip --decoded 256m
    python3 bench/decodebomb.py --limit-as 4g          # the proxy's address-space cap

Each scenario starts a fresh `twistd -n interceptor` (its own session,
stopped by its pid: SIGTERM, then SIGKILL after 10 s) with an addon whose
`response` hook reads `flow.response.content` (or, with --reader dumper, no
addon and -vv), and asks it, through the proxy, for a body from a loopback
server in this process:

  gzip      one gzip member decoding to --decoded (default 1 GiB, ~1 MB on the wire)
  gzip10    ten such members in one body (10 x --decoded)
  br, zstd  one brotli / zstd stream decoding to --decoded (when the libraries are installed)

Printed per scenario: the status the client got, how long the request took,
the latency of a small request sent 0.2 s after it on another connection
(the reactor's responsiveness meanwhile), what the addon saw, and the proxy's
VmHWM. The proxy runs with an address-space limit (--limit-as, default 8g)
so that a proxy without bounds fails with MemoryError instead of taking the
machine's memory. Every request and the whole scenario are bounded in time.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from typing import Callable, Optional

from wsbench import free_port, peak_rss_mib, stop, wait_listen  # (stdlib only, next to this file)

HOST = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CHUNK = 1 << 20

ADDON = '''\
import sys, time

def response(flow):
    started = time.monotonic()
    try:
        outcome = f"read {len(flow.response.content)} bytes"
    except Exception as e:
        outcome = f"{type(e).__name__}: {e}"
    took = time.monotonic() - started
    print(f"ADDON {outcome} in {took:.2f} s", file=sys.__stdout__, flush=True)
'''


def parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower()
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _compress_zeros(size: int, compressor: Callable[[bytes], bytes], flush: Callable[[], bytes]) -> bytes:
    zeros = bytes(CHUNK)
    out = []
    for _ in range(size // CHUNK):
        out.append(compressor(zeros))
    out.append(compressor(bytes(size % CHUNK)))
    out.append(flush())
    return b"".join(out)


def gzip_bomb(size: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return _compress_zeros(size, c.compress, c.flush)


def br_bomb(size: int) -> Optional[bytes]:
    try:
        import brotli
    except ImportError:
        return None
    c = brotli.Compressor(quality=5)
    return _compress_zeros(size, c.process, c.finish)


def zstd_bomb(size: int) -> Optional[bytes]:
    try:
        import zstandard
    except ImportError:
        return None
    c = zstandard.ZstdCompressor(level=3).compressobj()
    return _compress_zeros(size, c.compress, c.flush)


class Backend(http.server.ThreadingHTTPServer):
    daemon_threads = True
    bodies: dict[str, tuple[bytes, str]] = {}

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # (a proxy closing a kept-alive connection is no news)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body, coding = self.server.bodies.get(self.path, (b"small", ""))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if coding:
            self.send_header("Content-Encoding", coding)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def get(proxy_port: int, url: str, timeout: float) -> tuple[int, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection(HOST, proxy_port, timeout=timeout)
    try:
        conn.request("GET", url, headers={"Accept-Encoding": "gzip, br, zstd"})
        response = conn.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    except (OSError, http.client.HTTPException):
        return 0, time.monotonic() - started
    finally:
        conn.close()


def run_scenario(name: str, path: str, backend_port: int, args: argparse.Namespace,
                 workdir: str) -> dict[str, object]:
    port = free_port()
    command = [args.twistd, "-n", "--pidfile=", "interceptor",
               "--listen", f"tcp:{port}:interface={HOST}", "--confdir", os.path.join(workdir, "conf")]
    if args.reader == "addon":
        command += ["-q", "--addon", os.path.join(workdir, "reader.py")]
    else:
        command += ["-vv"]
    command += [f"--set={spec}" for spec in args.set]
    limit = args.limit_as

    def cap_memory() -> None:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    log_path = os.path.join(workdir, f"{name}.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                                preexec_fn=cap_memory)
    result: dict[str, object] = {"scenario": name}
    try:
        try:
            wait_listen(port, proc)
        except RuntimeError as e:
            result["error"] = f"the proxy did not start: {e}"
            return result
        url = f"http://{HOST}:{backend_port}"
        probe: dict[str, object] = {}

        def small() -> None:
            time.sleep(0.2)
            probe["status"], probe["seconds"] = get(port, url + "/small", args.timeout)

        prober = threading.Thread(target=small, daemon=True)
        prober.start()
        status, seconds = get(port, url + path, args.timeout)
        prober.join(args.timeout + 1)
        result.update(status=status, seconds=seconds, probe=probe.get("seconds"),
                      hwm=peak_rss_mib(proc.pid) if proc.poll() is None else None)
    finally:
        stop(proc)
    with open(log_path, "rb") as f:
        lines = f.read().decode("utf-8", "replace").splitlines()
    seen = [line for line in lines if line.startswith("ADDON ")]
    seen += [line.strip() for line in lines if "too large to decode" in line or "MemoryError" in line]
    result["seen"] = seen[0][:110] if seen else ""
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="gzip,gzip10,br,zstd")
    parser.add_argument("--decoded", default="1g", help="decoded size of one bomb (default 1g)")
    parser.add_argument("--reader", choices=["addon", "dumper"], default="addon")
    parser.add_argument("--limit-as", default="8g", help="the proxy's RLIMIT_AS (default 8g)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="an option for the proxy (repeatable)")
    parser.add_argument("--twistd", default=os.path.join(ROOT, ".venv", "bin", "twistd"))
    args = parser.parse_args()
    args.limit_as = parse_size(args.limit_as)
    decoded = parse_size(args.decoded)
    makers: dict[str, Callable[[], Optional[bytes]]] = {
        "gzip": lambda: gzip_bomb(decoded),
        "gzip10": lambda: gzip_bomb(decoded) * 10,
        "br": lambda: br_bomb(decoded),
        "zstd": lambda: zstd_bomb(decoded),
    }
    codings = {"gzip": "gzip", "gzip10": "gzip", "br": "br", "zstd": "zstd"}
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in makers]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")

    backend = Backend((HOST, 0), Handler)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    backend_port = backend.server_address[1]
    print(f"# decoded size per bomb: {decoded / (1 << 20):.0f} MiB; reader: {args.reader}; "
          f"proxy RLIMIT_AS {args.limit_as / (1 << 30):.1f} GiB; options: {args.set or 'defaults'}")
    print(f"{'scenario':<8} {'wire':>9} {'status':>6} {'request':>8} {'probe':>7} {'VmHWM':>10}  seen")
    with tempfile.TemporaryDirectory(prefix="decodebomb-") as workdir:
        with open(os.path.join(workdir, "reader.py"), "w") as f:
            f.write(ADDON)
        for name in wanted:
            body = makers[name]()
            if body is None:
                print(f"{name:<8} skipped: library not installed")
                continue
            path = f"/{name}"
            backend.bodies[path] = (body, codings[name])
            r = run_scenario(name, path, backend_port, args, workdir)
            if "error" in r:
                print(f"{name:<8} {r['error']}")
                continue
            probe = f"{r['probe']:.2f}s" if isinstance(r["probe"], float) else "-"
            hwm = f"{r['hwm']:.0f} MiB" if isinstance(r["hwm"], float) else "(exited)"
            print(f"{name:<8} {len(body) / (1 << 20):>7.2f}MB {r['status']:>6} "
                  f"{r['seconds']:>7.2f}s {probe:>7} {hwm:>10}  {r['seen']}")
            del backend.bodies[path]
    backend.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
