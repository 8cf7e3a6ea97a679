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

Beside the speed it prints the CPU each download cost every process on
the path (curl, the server, the relay or proxy; from getrusage and
/proc/PID/task/*/schedstat, the processes found by their listening
port) and the ceiling that CPU sets: no path can be faster than its
size over (all its CPU / the number of cores), nor than its size over
the CPU of its busiest process.  A proxy on a machine with few cores
pays for the second hop in CPU the direct path does not spend.

Run a proxy with streaming on (``twistd -n interceptor --set
stream_large_bodies=1m``) for a fair comparison.  Every download is
bounded by curl's --max-time; the relays listen on 127.0.0.1 and stop
with this script.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import resource
import socket
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
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


def listening_pids(port: int) -> list[int]:
    """
    The processes holding a TCP socket listening on C{port} (e.g. nginx's
    master and workers); empty if none is visible.
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{cols[9]}]")
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                pids.append(int(pid))
        except OSError:
            continue
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """
    CPU time so far of every thread of C{pids} (from schedstat: ns, not ticks).
    """
    total = 0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
        except OSError:
            continue
    return total / 1e9


@dataclass
class PathStats:
    """
    One path's downloads: speeds (MB/s) per round, bytes and CPU seconds in all.
    """

    rounds: list[float] = field(default_factory=list)
    downloads: int = 0
    size: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    def add_cpu(self, who: str, seconds: float) -> None:
        """
        Count C{seconds} of CPU spent by C{who} (client, server, relay).
        """
        self.cpu[who] = self.cpu.get(who, 0.0) + seconds


def _self_cpu_but_this_thread() -> float:
    # This process's CPU minus the calling thread's: the relay threads.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime - time.thread_time()


def download_mbps(url: str, proxy: str | None, max_time: float, stats: PathStats,
                  server: list[int], relay: list[int] | None) -> float:
    """
    One curl download of C{url} (through C{proxy} if given); MB/s.  Adds
    the CPU curl, the C{server} processes and the relay spent to C{stats}
    (the relay is C{relay}'s processes, or this script's relay threads
    when None).
    """
    argv = ["curl", "-s", "-o", "/dev/null", "--max-time", str(max_time),
            "-w", "%{http_code} %{speed_download} %{size_download} %{time_total}"]
    argv += ["-x", f"http://{proxy}"] if proxy else ["--noproxy", "*"]
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server0 = cpu_seconds(server)
    relay0 = _self_cpu_but_this_thread() if relay is None else cpu_seconds(relay)
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=max_time + 10).stdout.split()
    relay1 = _self_cpu_but_this_thread() if relay is None else cpu_seconds(relay)
    server1 = cpu_seconds(server)
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if len(out) != 4 or out[0] != "200":
        raise RuntimeError(f"download through {proxy or 'nothing'} failed: {out}")
    stats.downloads += 1
    stats.size += int(out[2])
    stats.seconds += float(out[3])
    stats.add_cpu("client", child1.ru_utime + child1.ru_stime - child0.ru_utime - child0.ru_stime)
    stats.add_cpu("server", server1 - server0)
    if proxy is not None:
        stats.add_cpu("relay", relay1 - relay0)
    return float(out[1]) / 1e6


def ceiling_mbps(stats: PathStats, cores: int) -> float:
    """
    The fastest this path could go with the CPU it took: all of it spread
    over C{cores}, and no process faster than its own share.
    """
    busiest = max(stats.cpu.values())
    needed = max(sum(stats.cpu.values()) / cores, busiest)
    return stats.size / needed / 1e6 if needed > 0 else float("inf")


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
    server = listening_pids(server_addr[1])
    relays: dict[str, list[int] | None] = {name: None for name in paths}
    for p in a.proxy:
        relays[p] = listening_pids(int(p.rsplit(":", 1)[1]))
    stats = {name: PathStats() for name in paths}
    for _ in range(a.rounds):
        for name, proxy in paths.items():
            speeds = [download_mbps(a.url, proxy, a.max_time, stats[name], server, relays[name])
                      for _ in range(a.per_round)]
            stats[name].rounds.append(statistics.median(speeds))
        print("  ".join(f"{name} {stats[name].rounds[-1]:,.0f}" for name in paths), flush=True)
    direct = statistics.median(stats["direct"].rounds)
    cores = os.cpu_count() or 1
    print(f"\nMB/s: median over {a.rounds} rounds (each the median of {a.per_round} downloads), and "
          f"mean (all bytes / all time); CPU ms per download (server: {len(server)} processes found); "
          f"ceiling: the most that CPU allows on {cores} cores, against the mean")
    for name in paths:
        st = stats[name]
        rate = statistics.median(st.rounds)
        cpu = "  ".join(f"{who} {1000 * sec / st.downloads:5.1f}" for who, sec in st.cpu.items())
        print(f"  {name:>22}: {rate:8,.0f} MB/s {rate / direct:5.2f} of direct | mean {st.size / st.seconds / 1e6:6,.0f}"
              f" | CPU ms {cpu} | ceiling {ceiling_mbps(st, cores):6,.0f}")


if __name__ == "__main__":
    main()
