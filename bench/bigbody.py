#!/usr/bin/env python3
"""
Peak memory of the proxy for one big buffered body, each way.

    .venv/bin/python bench/bigbody.py                     # 1 GiB, HEAD's twistd
    .venv/bin/python bench/bigbody.py --mib 256 --twistd /other/venv/bin/twistd
    .venv/bin/python bench/bigbody.py --set stream_large_bodies=64m

For a download (GET of N MiB) and an upload (POST of N MiB), in a fresh
proxy process each: a loopback server sends or swallows the body, the
client reads or sends it through the proxy in explicit-proxy mode, and the
proxy's VmHWM (its lifetime peak RSS) is read from /proc when the transfer
is done.  Prints one line per direction: the status, the seconds, the peak
RSS, and the peak minus the body size.  Everything is on 127.0.0.1; the
proxy and server are stopped by pid.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from wsbench import free_port, peak_rss_mib, stop, wait_listen  # (stdlib only, next to this file)

CHUNK = 1 << 20


class Handler(BaseHTTPRequestHandler):
    """GET /big: N MiB of zeros; POST /sink: read and drop the body."""

    size = 0

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(self.size))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        block = bytes(CHUNK)
        left = self.size
        while left:
            n = min(left, CHUNK)
            self.wfile.write(block[:n])
            left -= n

    def do_POST(self):
        left = int(self.headers["Content-Length"])
        while left:
            data = self.rfile.read(min(left, CHUNK))
            if not data:
                break
            left -= len(data)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def start_proxy(twistd: str, confdir: str, extra: list[str]) -> tuple[subprocess.Popen, int]:
    """
    A fresh C{twistd interceptor} on a free port of 127.0.0.1 with the
    options C{extra} (NAME=VALUE), once it listens.
    """
    port = free_port()
    argv = [twistd, "-n", "--pidfile=", "interceptor", "-q",
            "--listen", f"tcp:{port}:interface=127.0.0.1", "--confdir", confdir]
    for setting in extra:
        argv += ["--set", setting]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    wait_listen(port, proc)
    return proc, port


def download(proxy_port: int, server_port: int, size: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=300)
    conn.request("GET", f"http://127.0.0.1:{server_port}/big")
    response = conn.getresponse()
    got = 0
    while True:
        data = response.read(CHUNK)
        if not data:
            break
        got += len(data)
    conn.close()
    if got != size and response.status == 200:
        raise RuntimeError(f"got {got} of {size} bytes")
    return response.status


def upload(proxy_port: int, server_port: int, size: int) -> int:
    def body():
        block = bytes(CHUNK)
        left = size
        while left:
            n = min(left, CHUNK)
            yield block[:n]
            left -= n

    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=300)
    conn.request("POST", f"http://127.0.0.1:{server_port}/sink", body=body(),
                 headers={"Content-Length": str(size)})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    default_twistd = os.path.join(os.path.dirname(here), ".venv", "bin", "twistd")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=1024, help="body size in MiB (default 1024)")
    ap.add_argument("--twistd", default=default_twistd)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="an option for the proxy (repeatable)")
    a = ap.parse_args()
    size = a.mib * CHUNK
    Handler.size = size
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    confdir = tempfile.mkdtemp(prefix="bigbody-")
    try:
        for name, run in (("download", download), ("upload", upload)):
            proc, port = start_proxy(a.twistd, confdir, a.set)
            try:
                t0 = time.monotonic()
                status = run(port, server.server_address[1], size)
                seconds = time.monotonic() - t0
                peak = peak_rss_mib(proc.pid)
            finally:
                stop(proc)
            print(f"{name:8s} {a.mib} MiB: status {status}, {seconds:.1f} s, "
                  f"peak RSS {peak:.0f} MiB (body + {peak - a.mib:.0f} MiB)", flush=True)
    finally:
        server.shutdown()
        shutil.rmtree(confdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
