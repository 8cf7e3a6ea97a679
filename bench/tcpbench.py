#!/usr/bin/env python3
"""
tcpbench: raw TCP relay throughput and reverse-mode small-request rate of
interceptor beside direct and mitmdump, in one run, on 127.0.0.1.

    python3 bench/tcpbench.py                       # everything, ~2 min
    python3 bench/tcpbench.py --bytes 1g --repeats 3 --duration 10
    python3 bench/tcpbench.py --only tcp            # or: --only reverse
    python3 bench/tcpbench.py --out /tmp/tcpbench.json

Scenarios:

  T-up / T-down   one connection moving --bytes (default 1 GiB) client->server
                  (upload) or server->client (download) through a CONNECT
                  tunnel the proxy relays as raw TCP (tcp_hosts); MB/s, and the
                  proxy's RSS at the start, peak (VmHWM) and at the end of the
                  transfer (flat RSS = the relay does not buffer).
  R-c1 / R-c50    reverse mode (--mode reverse:http://nginx) with wrk: 1 KiB GETs,
                  keep-alive, 1 and 50 connections; requests/s.

The source/sink peer is this script itself (--serve: a thread per
connection, 1 MiB sendall/recv_into loops); the HTTP backend is a private
nginx (1 worker).  Every process started here is in its own session and is
stopped by its own pid (SIGTERM, then SIGKILL after 10 s); nothing else is
signalled.  Each transfer and load run is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CHUNK = 1 << 20

PROXIES = {
    "interceptor": {
        "tcp": "{twistd} -n --pidfile= interceptor -q --listen tcp:{port}:interface=127.0.0.1 "
               "--confdir {confdir} --set tcp_hosts=127.0.0.1",
        "reverse": "{twistd} -n --pidfile= interceptor -q --listen tcp:{port}:interface=127.0.0.1 "
                   "--confdir {confdir} --mode reverse:http://127.0.0.1:{backend}",
    },
    "mitmdump": {
        "tcp": "{mitmdump} -q --listen-host 127.0.0.1 -p {port} --set confdir={confdir} "
               "--set tcp_hosts=127.0.0.1",
        "reverse": "{mitmdump} -q --listen-host 127.0.0.1 -p {port} --set confdir={confdir} "
                   "--mode reverse:http://127.0.0.1:{backend}",
    },
}


def log(message: str) -> None:
    print(f"[tcpbench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_bytes(text: str) -> int:
    match = re.fullmatch(r"(\d+)([kmg]?)", text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return int(match[1]) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match[2]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_listen(port: int, proc: "Proc", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.argv[0]} exited with {proc.popen.returncode}; see {proc.log_path}")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s; see {proc.log_path}")


class Proc:
    """
    A child process in its own session, stopped by its own pid.
    """

    def __init__(self, argv: list, log_path: str) -> None:
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.popen = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        self.pid = self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.log.close()


def status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# -- the source/sink peer (--serve) -------------------------------------------


def serve(port: int) -> None:
    """
    Per connection: a line "SINK N" (read N bytes, answer "OK") or
    "SOURCE N" (send N bytes, close).
    """
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, port))
    listener.listen(64)
    payload = memoryview(b"\x5a" * CHUNK)

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(120)
            line = b""
            while not line.endswith(b"\n"):
                piece = conn.recv(1)
                if not piece:
                    return
                line += piece
            command, count = line.split()
            left = int(count)
            if command == b"SINK":
                buf = bytearray(CHUNK)
                while left > 0:
                    n = conn.recv_into(buf, min(CHUNK, left))
                    if not n:
                        return
                    left -= n
                conn.sendall(b"OK\n")
            else:
                while left > 0:
                    n = min(CHUNK, left)
                    conn.sendall(payload[:n])
                    left -= n
                conn.shutdown(socket.SHUT_WR)
                conn.recv(1)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


# -- one transfer ----------------------------------------------------------------


def transfer(direction: str, size: int, target_port: int, proxy_port: int = 0,
             rss_pid: int = 0, timeout: float = 120.0) -> dict:
    """
    Move C{size} bytes (up: client->server, down: server->client), through a
    CONNECT tunnel of the proxy when C{proxy_port} is set; sample the
    proxy's RSS meanwhile.
    """
    sock = socket.create_connection((HOST, proxy_port or target_port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if proxy_port:
        sock.sendall(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
                     % (HOST.encode(), target_port, HOST.encode(), target_port))
        head = b""
        while b"\r\n\r\n" not in head:
            piece = sock.recv(1)
            if not piece:
                raise RuntimeError("proxy closed during CONNECT")
            head += piece
        if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
            raise RuntimeError(f"CONNECT refused: {head[:100]!r}")
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(status_kib(rss_pid, "VmRSS"))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True) if rss_pid else None
    rss_start = status_kib(rss_pid, "VmRSS") if rss_pid else 0
    start = time.monotonic()
    if sampler:
        sampler.start()
    if direction == "up":
        sock.sendall(b"SINK %d\n" % size)
        payload = memoryview(b"\xa5" * CHUNK)
        left = size
        while left > 0:
            n = min(CHUNK, left)
            sock.sendall(payload[:n])
            left -= n
        answer = sock.recv(3)
        if answer != b"OK\n":
            raise RuntimeError(f"sink answered {answer!r}")
    else:
        sock.sendall(b"SOURCE %d\n" % size)
        buf = bytearray(CHUNK)
        got = 0
        while got < size:
            n = sock.recv_into(buf)
            if not n:
                break
            got += n
        if got != size:
            raise RuntimeError(f"received {got} of {size} bytes")
    elapsed = time.monotonic() - start
    stop.set()
    if sampler:
        sampler.join()
    sock.close()
    result = {"seconds": round(elapsed, 3), "MBps": round(size / elapsed / 1e6, 1)}
    if rss_pid:
        result.update(rss_start_mib=round(rss_start / 1024, 1),
                      rss_max_mib=round(max(samples or [0]) / 1024, 1),
                      rss_end_mib=round((samples[-1] if samples else 0) / 1024, 1))
    return result


# -- reverse mode with wrk ---------------------------------------------------------


def start_nginx(workdir: str) -> tuple:
    prefix = os.path.join(workdir, "nginx")
    www = os.path.join(workdir, "www")
    for d in (prefix, os.path.join(prefix, "logs"), www, os.path.join(workdir, "tmp")):
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(www, "small"), "wb") as f:
        f.write(os.urandom(1024))
    port = free_port()
    conf = os.path.join(prefix, "nginx.conf")
    tmp = os.path.join(workdir, "tmp")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_timeout 120s;
    keepalive_requests 10000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{ listen {HOST}:{port} backlog=4096; root {www}; }}
}}
""")
    proc = Proc(["nginx", "-p", prefix + "/", "-c", conf, "-e", f"{prefix}/logs/error.log",
                 "-g", "daemon off;"], os.path.join(workdir, "nginx.log"))
    wait_listen(port, proc)
    return proc, port


def wrk(port: int, conns: int, duration: float) -> dict:
    argv = ["wrk", "-t", "1", "-c", str(conns), "-d", f"{duration:g}s", "--timeout", "5s",
            f"http://{HOST}:{port}/small"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(rate[1]) if rate else 0.0,
            "non2xx": int(errors[1]) if errors else 0,
            "socket_errors": sock_errors[1] if sock_errors else ""}


# -- the run -------------------------------------------------------------------------


def start_proxy(name: str, kind: str, args: argparse.Namespace, workdir: str, backend: int = 0):
    port = free_port()
    confdir = os.path.join(workdir, "conf", name)
    os.makedirs(confdir, exist_ok=True)
    cmd = PROXIES[name][kind].format(port=port, confdir=confdir, backend=backend,
                                     twistd=args.twistd, mitmdump=args.mitmdump)
    proc = Proc(shlex.split(cmd), os.path.join(workdir, f"{name}-{kind}.log"))
    wait_listen(port, proc)
    log(f"{name} [{kind}] pid {proc.pid} on {port}: {cmd}")
    return proc, port


def median(values: list) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0


def run(args: argparse.Namespace) -> dict:
    workdir = tempfile.mkdtemp(prefix="tcpbench-")
    os.chmod(workdir, 0o755)  # nginx's worker runs as another user
    results: dict = {"meta": {"bytes": args.bytes, "repeats": args.repeats,
                              "duration": args.duration, "proxies": args.proxies,
                              "date": time.strftime("%Y-%m-%d %H:%M:%S")},
                     "tcp": {}, "reverse": {}}
    started: list[Proc] = []
    deadline = time.monotonic() + args.max_minutes * 60
    try:
        if args.only in (None, "tcp"):
            sink_port = free_port()
            sink = Proc([sys.executable, os.path.abspath(__file__), "--serve", str(sink_port)],
                        os.path.join(workdir, "sink.log"))
            started.append(sink)
            wait_listen(sink_port, sink)
            for direction in ("up", "down"):
                sid = f"T-{direction}"
                entry = results["tcp"][sid] = {}
                for side in ["direct"] + args.proxies:
                    proc, port = (None, 0)
                    if side != "direct":
                        proc, port = start_proxy(side, "tcp", args, workdir)
                        started.append(proc)
                        transfer(direction, 64 << 20, sink_port, port, proc.pid)  # warm-up
                    runs = []
                    for _ in range(args.repeats):
                        if time.monotonic() > deadline:
                            raise RuntimeError("--max-minutes reached")
                        runs.append(transfer(direction, args.bytes, sink_port, port,
                                             proc.pid if proc else 0))
                    if proc is not None:
                        runs[-1]["rss_hwm_mib"] = round(status_kib(proc.pid, "VmHWM") / 1024, 1)
                        proc.stop()
                        started.remove(proc)
                    entry[side] = {"runs": runs, "MBps": median([r["MBps"] for r in runs])}
                    log(f"{sid} {side}: {entry[side]['MBps']} MB/s {runs[-1]}")
        if args.only in (None, "reverse"):
            nginx, backend = start_nginx(workdir)
            started.append(nginx)
            for conns in (1, 50):
                sid = f"R-c{conns}"
                entry = results["reverse"][sid] = {}
                for side in ["direct"] + args.proxies:
                    proc, port = (None, backend)
                    if side != "direct":
                        proc, port = start_proxy(side, "reverse", args, workdir, backend)
                        started.append(proc)
                    wrk(port, conns, 1)  # warm-up
                    runs = []
                    for _ in range(args.repeats):
                        if time.monotonic() > deadline:
                            raise RuntimeError("--max-minutes reached")
                        runs.append(wrk(port, conns, args.duration))
                    if proc is not None:
                        runs[-1]["rss_hwm_mib"] = round(status_kib(proc.pid, "VmHWM") / 1024, 1)
                        proc.stop()
                        started.remove(proc)
                    if any(r["non2xx"] or r["socket_errors"] for r in runs):
                        log(f"{sid} {side}: ERRORS in the runs (non-2xx or socket errors): {runs}")
                    entry[side] = {"runs": runs, "rps": median([r["rps"] for r in runs])}
                    log(f"{sid} {side}: {entry[side]['rps']} req/s {runs[-1]}")
    finally:
        for proc in reversed(started):
            proc.stop()
    results["meta"]["workdir"] = workdir
    return results


def table(results: dict) -> str:
    proxies = results["meta"]["proxies"]
    lines = []
    if results["tcp"]:
        head = "| scenario | direct MB/s | " + " | ".join(
            f"{p} MB/s | {p}/direct | {p} RSS start/max/end MiB" for p in proxies) + " |"
        lines += [head, "|" + "---|" * (2 + 3 * len(proxies))]
        for sid, entry in results["tcp"].items():
            direct = entry["direct"]["MBps"]
            cells = [sid, f"{direct:.0f}"]
            for p in proxies:
                rate = entry[p]["MBps"]
                last = entry[p]["runs"][-1]
                cells += [f"{rate:.0f}", f"{rate / direct:.2f}",
                          f"{last['rss_start_mib']:.0f}/{last['rss_max_mib']:.0f}/{last['rss_end_mib']:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if results["reverse"]:
        head = "| scenario | direct req/s | " + " | ".join(f"{p} req/s" for p in proxies)
        if "interceptor" in proxies and "mitmdump" in proxies:
            head += " | interceptor/mitmdump"
        lines += [head + " |", "|" + "---|" * (2 + len(proxies) + (1 if "mitmdump" in proxies and "interceptor" in proxies else 0))]
        for sid, entry in results["reverse"].items():
            cells = [sid, f"{entry['direct']['rps']:.0f}"]
            cells += [f"{entry[p]['rps']:.0f}" for p in proxies]
            if "interceptor" in proxies and "mitmdump" in proxies:
                cells.append(f"{entry['interceptor']['rps'] / max(entry['mitmdump']['rps'], 1e-9):.1f}x")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bytes", type=parse_bytes, default=parse_bytes("1g"),
                        help="bytes per TCP transfer (default 1g)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--proxies", default="interceptor,mitmdump")
    parser.add_argument("--only", choices=["tcp", "reverse"])
    parser.add_argument("--twistd", default=os.path.join(ROOT, ".venv", "bin", "twistd"))
    parser.add_argument("--mitmdump", default="/tmp/mitmvenv/bin/mitmdump")
    parser.add_argument("--max-minutes", type=float, default=20.0)
    parser.add_argument("--out", help="write the results as JSON (and the table as .md beside it)")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    args.proxies = [p for p in args.proxies.split(",") if p]
    results = run(args)
    text = table(results)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
        with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
