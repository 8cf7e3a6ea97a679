#!/usr/bin/env python3
"""
relayceiling: how fast can ANY proxy relay a big plain-HTTP download on this
machine?  Times curl downloading one URL (a big file on a loopback server)
directly, through a minimal relay built into this script, and through the
proxies given, and prints the median MB/s of each and its ratio to direct.

    python3 bench/relayceiling.py http://127.0.0.1:PORT/100m
    python3 bench/relayceiling.py http://127.0.0.1:PORT/100m --proxy 127.0.0.1:8080 --rounds 5

The built-in relays are the least a proxy can do: read the absolute-form
request head, connect to the server, forward the request in origin form,
then move the response with blocking calls in one thread per connection
and no parsing at all: "splice" (Linux splice(2) through a 1 MiB pipe)
and "copy" (recv_into/sendall with a 1 MiB buffer; interceptor's streamed
bodies do the same, non-blocking).  A proxy that matches them has no
overhead left to remove; the gap between them and direct is the second
loopback TCP hop (bench/proxybench.py's S4-http-streamed compares against
direct).

Run a proxy with streaming on (``twistd -n interceptor --set
stream_large_bodies=1m``) for a fair comparison.  Every download is
bounded by curl's --max-time; the relays listen on 127.0.0.1 and stop
with this script.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import socket
import statistics
import subprocess
import threading
from urllib.parse import urlsplit

_PIPE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def _read_head(client: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = client.recv(65536)
        if not chunk:
            raise ConnectionError("client closed before the request head")
        head += chunk
    return head


def _relay(client: socket.socket, server_addr: tuple[str, int], splice: bool) -> None:
    with client:
        head = _read_head(client)
        line, rest = head.split(b"\r\n", 1)
        method, url, version = line.split(b" ")
        path = b"/" + url.split(b"/", 3)[3] if url.count(b"/") >= 3 else b"/"
        with socket.create_connection(server_addr) as server:
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            server.sendall(b" ".join([method, path, version]) + b"\r\n" + rest)
            if splice:
                r, w = os.pipe()
                try:
                    fcntl.fcntl(w, _F_SETPIPE_SZ, _PIPE)
                    while True:
                        n = os.splice(server.fileno(), w, _PIPE)
                        if n == 0:
                            return
                        while n:
                            n -= os.splice(r, client.fileno(), n)
                finally:
                    os.close(r)
                    os.close(w)
            else:
                buffer = memoryview(bytearray(_PIPE))
                while True:
                    n = server.recv_into(buffer)
                    if n == 0:
                        return
                    client.sendall(buffer[:n])


def start_relay(server_addr: tuple[str, int], splice: bool) -> int:
    """
    A minimal relay on 127.0.0.1 (a thread per connection); its port.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve() -> None:
        while True:
            client, _ = listener.accept()
            threading.Thread(target=_relay, args=(client, server_addr, splice), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def download_mbps(url: str, proxy: str | None, max_time: float) -> float:
    """
    One curl download of C{url} (through C{proxy} if given); MB/s.
    """
    argv = ["curl", "-s", "-o", "/dev/null", "--max-time", str(max_time), "-w", "%{http_code} %{speed_download}"]
    argv += ["-x", f"http://{proxy}"] if proxy else ["--noproxy", "*"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=max_time + 10).stdout.split()
    if len(out) != 2 or out[0] != "200":
        raise RuntimeError(f"download through {proxy or 'nothing'} failed: {out}")
    return float(out[1]) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", help="a big file on a loopback HTTP server")
    ap.add_argument("--proxy", action="append", default=[], help="HOST:PORT of a proxy to time too")
    ap.add_argument("--rounds", type=int, default=4, help="rounds; each times every path --per-round times")
    ap.add_argument("--per-round", type=int, default=7, help="downloads per path per round (median)")
    ap.add_argument("--max-time", type=float, default=60.0, help="curl --max-time per download")
    a = ap.parse_args()
    target = urlsplit(a.url)
    if target.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the server must be on loopback")
    server_addr = (target.hostname, target.port or 80)
    paths = {"direct": None,
             "relay-splice": f"127.0.0.1:{start_relay(server_addr, True)}",
             "relay-copy": f"127.0.0.1:{start_relay(server_addr, False)}"}
    paths.update({p: p for p in a.proxy})
    results: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(a.rounds):
        for name, proxy in paths.items():
            speeds = [download_mbps(a.url, proxy, a.max_time) for _ in range(a.per_round)]
            results[name].append(statistics.median(speeds))
        print("  ".join(f"{name} {results[name][-1]:,.0f}" for name in paths), flush=True)
    direct = statistics.median(results["direct"])
    print(f"\nmedian MB/s over {a.rounds} rounds (each the median of {a.per_round} downloads):")
    for name in paths:
        rate = statistics.median(results[name])
        print(f"  {name:>22}: {rate:8,.0f} MB/s  {rate / direct:5.2f} of direct")


if __name__ == "__main__":
    main()
