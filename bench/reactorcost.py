#!/usr/bin/env python3
"""
What the reactor costs the proxy per request, counted in CPU instructions.

    python3 bench/reactorcost.py --reactors default,asyncio --conns 1,50 --repeats 3
    python3 bench/reactorcost.py --proxybench /tmp/r.json     # from proxybench results

On a shared 2-core machine requests per second (and even per CPU-second)
of a proxy move 20-60 % between identical runs: they say more about the
neighbours than about the proxy.  The instructions the proxy's process
executes per request hardly depend on them.  For each reactor and connection count this starts a
private nginx (1 worker, 1 KiB file) and C{twistd [-r REACTOR] interceptor
-q}, warms it up, then counts the proxy's instructions while wrk sends
keep-alive absolute-form GETs through it (as proxybench's S1), and prints
instructions per request: every run, the median, and each reactor's median
over the first reactor's.  The proxy runs under valgrind's callgrind (the VM
has no hardware counters for perf): ~100x slower, so the request rates are
low, but the instruction counts do not depend on the machine's load.

C{--proxybench FILE...} instead prints requests per proxy CPU-second for
every run of proxybench.py result files (rate / proxy CPU share).

Loopback only; every process it starts is stopped by its pid; every wait
is bounded.  Needs nginx, wrk and valgrind (callgrind_control).  Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from wsbench import free_port, wait_listen  # noqa: E402  (a sibling script)

TWISTD = os.path.join(os.path.dirname(HERE), ".venv", "bin", "twistd")
TWISTD_PYTHON = os.path.join(os.path.dirname(HERE), ".venv", "bin", "python")
WRK_LUA = os.path.join(HERE, "wrk_report.lua")
OUT_DIR = tempfile.mkdtemp(prefix="reactorcost-callgrind-")
HOST = "127.0.0.1"


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def start_nginx(workdir: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    www = os.path.join(workdir, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "small"), "wb") as f:
        f.write(os.urandom(1024))
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off; worker_processes 1; pid {workdir}/nginx.pid;
error_log {workdir}/error.log; events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen {HOST}:{port}; root {www}; }} }}
""")
    process = subprocess.Popen(["nginx", "-p", workdir, "-c", conf], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listen(port, process)
    return process, port


def start_proxy(reactor: str, workdir: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={OUT_DIR}/callgrind.%p",
            TWISTD_PYTHON, TWISTD, "-n", "--pidfile="]
    if reactor != "default":
        argv += ["-r", reactor]
    argv += ["interceptor", "-q", "--listen", f"tcp:{port}:interface={HOST}",
             "--confdir", os.path.join(workdir, "conf")]
    process = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_listen(port, process, timeout=180)
    return process, port


def wrk(proxy_port: int, backend_port: int, conns: int, seconds: int) -> int:
    """
    Run wrk through the proxy; the number of requests it completed.
    """
    env = dict(os.environ, PB_ABS_URI=f"http://{HOST}:{backend_port}/small")
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", WRK_LUA,
            f"http://{HOST}:{proxy_port}/"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 30,
                         check=True).stdout
    report = json.loads(out.split("PBJSON", 1)[1].strip().splitlines()[0])
    errors = sum(v for k, v in report.items() if k.startswith("err_"))
    if errors:
        raise RuntimeError(f"wrk: {errors} errors")
    return int(report["requests"])


def instructions_per_request(proxy: subprocess.Popen, proxy_port: int, backend_port: int,
                             conns: int, seconds: int) -> float:
    """
    Count the instructions the proxy (running under callgrind) executes
    over a wrk run of C{seconds}: counters zeroed before, dumped after.
    """
    subprocess.run(["callgrind_control", "-z", str(proxy.pid)], capture_output=True,
                   timeout=60, check=True)
    requests = wrk(proxy_port, backend_port, conns, seconds)
    before = set(os.listdir(OUT_DIR))
    subprocess.run(["callgrind_control", "-d", str(proxy.pid)], capture_output=True,
                   timeout=60, check=True)
    [dump] = [os.path.join(OUT_DIR, n) for n in set(os.listdir(OUT_DIR)) - before]
    with open(dump) as f:
        match = re.search(r"^summary: (\d+)", f.read(), re.M)
    if not match:
        raise RuntimeError(f"no summary line in {dump}")
    return int(match.group(1)) / requests


def measure(a: argparse.Namespace) -> int:
    workdir = tempfile.mkdtemp(prefix="reactorcost-")
    os.chmod(workdir, 0o755)  # nginx's workers (user nobody) read www/
    nginx, backend = start_nginx(workdir)
    results: dict[tuple[int, str], list[float]] = {}
    try:
        for repeat in range(a.repeats):
            # Interleaved, so a slow phase of the machine hits every reactor.
            for reactor in a.reactors:
                proxy, port = start_proxy(reactor, os.path.join(workdir, reactor))
                try:
                    for conns in a.conns:
                        wrk(port, backend, conns, a.warmup)
                        value = instructions_per_request(proxy, port, backend, conns, a.duration)
                        results.setdefault((conns, reactor), []).append(value)
                        print(f"rep {repeat} c{conns:<3d} {reactor:8s} {value:10,.0f} instr/req",
                              flush=True)
                finally:
                    stop(proxy)
    finally:
        stop(nginx)
        shutil.rmtree(OUT_DIR, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    for conns in a.conns:
        first = None
        for reactor in a.reactors:
            values = results[(conns, reactor)]
            median = statistics.median(values)
            first = first or median
            spread = (max(values) - min(values)) / median
            print(f"S1-c{conns:<3d} {reactor:8s} median {median:10,.0f} instr/req  "
                  f"x{median / first:.3f}  spread {spread:.1%}  runs: "
                  + " ".join(f"{v:,.0f}" for v in values))
    return 0


def from_proxybench(paths: list[str]) -> int:
    table: dict[tuple[str, str], list[float]] = {}
    order: list[str] = []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for scenario, result in data["scenarios"].items():
            for proxy, measured in result.get("proxies", {}).items():
                order += [proxy] if proxy not in order else []
                for run in measured.get("runs", []):
                    cpu = ((run.get("sampled") or {}).get("proxy") or {}).get("cpu_pct")
                    if cpu:
                        table.setdefault((scenario, proxy), []).append(run["rate"] / (cpu / 100))
    for scenario in sorted({s for s, _ in table}):
        first = None
        for proxy in order:
            values = table.get((scenario, proxy))
            if values:
                median = statistics.median(values)
                first = first or median
                print(f"{scenario:8s} {proxy:22s} median {median:9,.0f} req/CPU-s  "
                      f"x{median / first:.3f}  runs: " + " ".join(f"{v:,.0f}" for v in values))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reactors", default="default,asyncio",
                    help="comma list: default, or any twistd -r name (asyncio, epoll, poll)")
    ap.add_argument("--conns", default="1,50", help="comma list of wrk connection counts")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="counted seconds per run")
    ap.add_argument("--warmup", type=int, default=1, help="uncounted seconds before each run")
    ap.add_argument("--proxybench", nargs="+", metavar="JSON",
                    help="print requests per CPU-second of proxybench.py results instead")
    a = ap.parse_args(argv)
    if a.proxybench:
        return from_proxybench(a.proxybench)
    a.reactors = [r.strip() for r in a.reactors.split(",") if r.strip()]
    a.conns = [int(c) for c in a.conns.split(",") if c.strip()]
    return measure(a)


if __name__ == "__main__":
    sys.exit(main())
