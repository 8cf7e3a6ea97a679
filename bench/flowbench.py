#!/usr/bin/env python3
"""flowbench: flow files, interceptor vs mitmdump: recording, reading, memory, loopback only.

    python3 bench/flowbench.py                        # every phase, 100,000 flows (~8-10 min)
    python3 bench/flowbench.py --flows 20000 --phases record,read --s1-repeats 1
    python3 bench/flowbench.py --phases s1 --s1-repeats 3 --s1-duration 10

Phases (each prints its rows; one table at the end, also written as markdown
with --out):

  record  a private nginx (proxybench's backend) serves 1 KiB; N distinct small
          GETs (``/small?t=..&i=..``) go through each proxy while it records:
          ``twistd -n interceptor -q -w WORK/icp.flows`` and
          ``mitmdump -q -w WORK/mitm.flows``. The client is wrk (one thread,
          --conns connections, a generated lua script that stops at N responses);
          bounded by N and by --record-timeout. Reports requests/s while
          recording, the proxy's peak RSS (VmHWM, read before SIGTERM), the file's
          size and the flows in it (counted by reading it back).
  write   each tool's own library writer, in a subprocess: the first flow of
          its recorded file written N times (interceptor.io.FlowWriter,
          mitmproxy.io.FlowWriter): flows/s written without a proxy around it.
  read    each file read with the filter ``~d x`` (no flow matches: every flow is
          decoded and tested): ``interceptor-read FILE '~d x'``, the library
          loop (FlowReader(f).stream() + flowfilter.parse),
          ``mitmdump -n -r FILE '~d x'`` and mitmproxy's own library loop
          (mitmproxy.io.FlowReader + mitmproxy.flowfilter); interceptor-read also reads
          mitmdump's file. Wall time minus the same command's time on an empty
          file (its start-up), peak RSS from /usr/bin/time -v (children's
          ru_maxrss when it is missing).
  flat    WORK/icp-big.flows = icp.flows concatenated --big-factor times (a
          header repeats mid-file, which the format allows; the count read back
          is checked), read like the 100 k file: peak RSS big vs small.
  s1      bench/proxybench.py S1-c50 (1 KiB GETs, 50 keep-alive connections,
          --s1-repeats x --s1-duration s, interleaved, medians) with interceptor
          plain vs with ``-w {workdir}/s1.flows``; then mitmdump plain vs -w
          (--no-s1-mitm skips it). Cost = 1 - (with -w / plain).

Every process it starts has its own session and is stopped by its own pid
(SIGTERM, then SIGKILL after 10 s); every wait is bounded; the whole run stops
at --max-minutes. Stdlib only; it imports proxybench's process helpers and
backend. It prints numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

import proxybench as pb

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(ROOT, ".venv", "bin")
FILTER = "~d x"

# wrk: N distinct absolute-form GETs through the proxy. At the N-th response
# the thread stops sending and writes FB_DONE; wrk itself only exits at its
# duration or on SIGINT, which the harness sends when it sees that file.
WRK_LUA = r"""
local base = os.getenv("FB_BASE")
local hostport = string.match(base, "^https?://([^/]+)")
local quota = tonumber(os.getenv("FB_QUOTA"))
local sent, got = 0, 0
function request()
   sent = sent + 1
   return wrk.format("GET", base .. "/small?i=" .. sent, {Host = hostport})
end
function response(status, headers, body)
   got = got + 1
   if got == quota then
      local f = io.open(os.getenv("FB_DONE"), "w")
      f:write(tostring(got))
      f:close()
      wrk.thread:stop()
   end
end
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'FBJSON {"requests": %d, "duration_us": %d, "err_connect": %d, "err_read": %d, ' ..
      '"err_write": %d, "err_status": %d, "err_timeout": %d}\n',
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
end
"""

# The library loop of interceptor: count the flows and the filter's matches.
ICP_LIB_READ = r"""
import json, sys, time
from interceptor.io import FlowReader
from interceptor import flowfilter
match = flowfilter.parse(sys.argv[2])
n = m = 0
t0 = time.monotonic()
with open(sys.argv[1], "rb") as f:
    for flow in FlowReader(f).stream():
        n += 1
        m += bool(match(flow))
print(json.dumps({"flows": n, "matched": m, "seconds": time.monotonic() - t0}))
"""

MITM_LIB_READ = r"""
import json, sys, time
from mitmproxy import flowfilter, io
match = flowfilter.parse(sys.argv[2])
n = m = 0
t0 = time.monotonic()
with open(sys.argv[1], "rb") as f:
    for flow in io.FlowReader(f).stream():
        n += 1
        m += bool(match(flow))
print(json.dumps({"flows": n, "matched": m, "seconds": time.monotonic() - t0}))
"""

ICP_LIB_WRITE = r"""
import json, sys, time
from interceptor.io import FlowReader, FlowWriter
with open(sys.argv[1], "rb") as f:
    flow = next(iter(FlowReader(f).stream()))
n = int(sys.argv[3])
t0 = time.monotonic()
with open(sys.argv[2], "wb") as out:
    w = FlowWriter(out)
    for _ in range(n):
        w.add(flow)
    w.flush()
print(json.dumps({"flows": n, "seconds": time.monotonic() - t0}))
"""

MITM_LIB_WRITE = r"""
import json, sys, time
from mitmproxy import io
with open(sys.argv[1], "rb") as f:
    flow = next(iter(io.FlowReader(f).stream()))
n = int(sys.argv[3])
t0 = time.monotonic()
with open(sys.argv[2], "wb") as out:
    w = io.FlowWriter(out)
    for _ in range(n):
        w.add(flow)
    out.flush()
print(json.dumps({"flows": n, "seconds": time.monotonic() - t0}))
"""


class OutOfTime(RuntimeError):
    """The run reached --max-minutes."""


class FlowBench:
    """
    One run: the backend, the phases, and the rows they produced.

    @ivar rows: Table rows, (phase, what, value, note), in the order measured.
    @ivar data: Every number measured, by phase, for --json.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.work = os.path.abspath(args.workdir)
        self.deadline = time.monotonic() + args.max_minutes * 60
        self.rows: list[tuple[str, str, str, str]] = []
        self.data: dict[str, Any] = {}
        self.time_v = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None
        self.backend: Optional[pb.Bench] = None
        self.env = pb.clean_env()
        self.env["PYTHONPATH"] = ROOT
        self.counts: dict[str, int] = {}

    # ---- helpers -------------------------------------------------------------
    def path(self, name: str) -> str:
        return os.path.join(self.work, name)

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise OutOfTime(f"--max-minutes {self.a.max_minutes} reached")
        return left

    def row(self, phase: str, what: str, value: str, note: str = "") -> None:
        self.rows.append((phase, what, value, note))
        print(f"  {phase:7s} {what:52s} {value:>16s}  {note}", flush=True)

    def run_measured(self, argv: list[str], timeout: float) -> dict[str, Any]:
        """
        Run C{argv} in its own session under C{/usr/bin/time -v}; return its
        wall seconds, peak RSS (MiB) and standard output.

        @raise RuntimeError: It failed, or did not end within C{timeout}
            seconds (its process group is then killed).
        """
        timeout = min(timeout, self.left())
        with tempfile.NamedTemporaryFile("w+", dir=self.work, suffix=".time") as tf:
            full = ([self.time_v, "-v", "-o", tf.name] + argv) if self.time_v else argv
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t0 = time.monotonic()
            p = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL, start_new_session=True, env=self.env)
            try:
                out, err = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate(timeout=10)
                raise RuntimeError(f"{shlex.join(argv)}: no exit within {timeout:.0f} s, killed")
            wall = time.monotonic() - t0
            if p.returncode != 0:
                raise RuntimeError(f"{shlex.join(argv)}: exit {p.returncode}: "
                                   f"{err.decode(errors='replace').strip()[-400:]}")
            rss_mib = None
            if self.time_v:
                m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tf.read())
                rss_mib = int(m.group(1)) / 1024 if m else None
            if rss_mib is None:
                after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                # (ru_maxrss of children is the largest so far: only a new peak shows.)
                rss_mib = after / 1024 if after > before else None
        return {"wall": wall, "rss_mib": rss_mib, "stdout": out.decode(errors="replace"),
                "stderr": err.decode(errors="replace")}

    # ---- setup ---------------------------------------------------------------
    def setup(self) -> None:
        os.makedirs(self.work, exist_ok=True)
        pb_args = pb.parse_args(["--compare", "interceptor", "--workdir", self.path("backend")])
        self.backend = pb.Bench(pb_args)
        self.backend.setup()
        with open(self.path("record.lua"), "w") as f:
            f.write(WRK_LUA)
        open(self.path("empty.flows"), "wb").close()

    def teardown(self) -> None:
        if self.backend is not None and self.backend.nginx is not None:
            self.backend.nginx.stop(signal.SIGQUIT)

    # ---- record ----------------------------------------------------------------
    def proxy_argv(self, tool: str, port: int, flows: Optional[str]) -> list[str]:
        if tool == "interceptor":
            argv = [os.path.join(VENV, "twistd"), "-n", "--pidfile=", "interceptor", "-q",
                    "--listen", f"tcp:{port}:interface=127.0.0.1",
                    "--confdir", self.path("conf-icp")]
            return argv + (["-w", flows] if flows else [])
        argv = [self.a.mitmdump, "-q", "--listen-host", "127.0.0.1", "-p", str(port),
                "--set", f"confdir={self.path('conf-mitm')}"]
        return argv + (["-w", flows] if flows else [])

    def record(self, tool: str, flows_path: str) -> dict[str, Any]:
        assert self.backend is not None
        port = pb.free_port()
        if os.path.exists(flows_path):
            os.unlink(flows_path)
        proc = pb.Proc(self.proxy_argv(tool, port, flows_path),
                       self.path(f"{tool}-record.log"), self.env)
        try:
            pb.wait_listen(port, proc, timeout=30)
            done = self.path("record.done")
            if os.path.exists(done):
                os.unlink(done)
            env = dict(self.env, FB_BASE=f"http://127.0.0.1:{self.backend.bport}",
                       FB_QUOTA=str(self.a.flows), FB_DONE=done)
            limit = min(self.a.record_timeout, self.left())
            wrk = ["wrk", "-t1", f"-c{self.a.conns}", f"-d{int(limit)}s", "--timeout", "10s",
                   "-s", self.path("record.lua"), f"http://127.0.0.1:{port}/"]
            t0 = time.monotonic()
            client = subprocess.Popen(wrk, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      env=env, start_new_session=True)
            while (client.poll() is None and not os.path.exists(done)
                   and time.monotonic() - t0 < limit + 30):
                time.sleep(0.02)
            seconds = time.monotonic() - t0
            if client.poll() is None:
                client.send_signal(signal.SIGINT)
            try:
                out = client.communicate(timeout=30)[0].decode(errors="replace")
            except subprocess.TimeoutExpired:
                os.killpg(client.pid, signal.SIGKILL)
                client.communicate(timeout=10)
                raise RuntimeError("wrk did not exit within 30 s of SIGINT; killed")
            m = re.search(r"^FBJSON (\{.*\})$", out, re.M)
            if not m or not os.path.exists(done):
                raise RuntimeError(f"wrk through {tool}: not {self.a.flows} responses within "
                                   f"{limit:.0f} s (exit {client.returncode}): {out[-400:]}")
            res = json.loads(m.group(1))
            res["seconds"] = seconds
            if not proc.alive():
                raise RuntimeError(f"{tool} exited while recording:\n{proc.log_tail()}")
            res["vmhwm_mib"] = pb.mem_kib(proc.pid, "VmHWM") / 1024
        finally:
            t_stop = time.monotonic()
            proc.stop()
        res["stop_s"] = time.monotonic() - t_stop
        res["rate"] = self.a.flows / res["seconds"]
        res["errors"] = sum(v for k, v in res.items() if k.startswith("err_"))
        res["size"] = os.path.getsize(flows_path)
        return res

    def phase_record(self) -> None:
        print(f"record: {self.a.flows} GETs through each proxy while it records", flush=True)
        for tool, name in (("interceptor", "icp.flows"), ("mitmdump", "mitm.flows")):
            res = self.record(tool, self.path(name))
            self.data.setdefault("record", {})[tool] = res
            err = f", {res['errors']} errors" if res["errors"] else ""
            self.row("record", f"{tool}: req/s while recording (-w)", f"{res['rate']:.0f}",
                     f"{self.a.flows} responses in {res['seconds']:.1f} s, "
                     f"c={self.a.conns}{err}")
            self.row("record", f"{tool}: proxy peak RSS", f"{res['vmhwm_mib']:.1f} MiB")
            self.row("record", f"{tool}: file size", f"{res['size'] / 1e6:.1f} MB",
                     f"{name}; stop took {res['stop_s']:.1f} s")

    # ---- write (library) -------------------------------------------------------
    def phase_write(self) -> None:
        print(f"write: each library writes the first recorded flow {self.a.flows} times",
              flush=True)
        jobs = (("interceptor", os.path.join(VENV, "python"), ICP_LIB_WRITE, "icp.flows"),
                ("mitmdump", self.a.mitmpython, MITM_LIB_WRITE, "mitm.flows"))
        for tool, python, code, src in jobs:
            label = "mitmproxy" if tool == "mitmdump" else tool
            out = self.path(f"write-{tool}.flows")
            res = self.run_measured([python, "-c", code, self.path(src), out, str(self.a.flows)],
                                    timeout=600)
            got = json.loads(res["stdout"].strip().splitlines()[-1])
            rate = got["flows"] / got["seconds"]
            size = os.path.getsize(out)
            os.unlink(out)
            self.data.setdefault("write", {})[tool] = dict(got, rate=rate, size=size)
            self.row("write", f"{label} library FlowWriter: flows/s", f"{rate:.0f}",
                     f"{got['flows']} flows, {size / got['flows']:.0f} B/flow")

    # ---- read --------------------------------------------------------------------
    def readers(self) -> dict[str, list[str]]:
        return {
            # (No -q: with it, neither command tests the filter, both skip the
            # dumper at flow_detail 0. No flow matches, so nothing is printed.)
            "interceptor-read": [os.path.join(VENV, "interceptor-read"), "{file}", FILTER],
            "interceptor library": [os.path.join(VENV, "python"), "-c", ICP_LIB_READ, "{file}",
                                    FILTER],
            "mitmproxy library": [self.a.mitmpython, "-c", MITM_LIB_READ, "{file}", FILTER],
            # (The filter last: mitmdump's positional filter takes every word after it.)
            "mitmdump -nr": [self.a.mitmdump, "--set", f"confdir={self.path('conf-mitm')}",
                             "-n", "-r", "{file}", FILTER],
        }

    def startup(self, reader: str) -> float:
        """The reader's wall time on an empty file: best of three."""
        cache = self.data.setdefault("startup", {})
        if reader not in cache:
            argv = [a.replace("{file}", self.path("empty.flows")) for a in self.readers()[reader]]
            cache[reader] = min(self.run_measured(argv, timeout=120)["wall"] for _ in range(3))
        return float(cache[reader])

    def count(self, name: str) -> int:
        """Flows in WORK/name, as the library reads them (checked against
        the filter's matches: none)."""
        if name not in self.counts:
            res = self.read(name, "interceptor library", label=None)
            self.counts[name] = res["flows"]
        return self.counts[name]

    def read(self, name: str, reader: str, label: Optional[str] = "read") -> dict[str, Any]:
        argv = [a.replace("{file}", self.path(name)) for a in self.readers()[reader]]
        base = self.startup(reader)
        runs = [self.run_measured(argv, timeout=self.a.read_timeout)
                for _ in range(self.a.read_repeats)]
        best = min(runs, key=lambda r: r["wall"])
        res: dict[str, Any] = {"wall": best["wall"], "startup": base,
                               "rss_mib": max(r["rss_mib"] or 0 for r in runs),
                               "walls": [r["wall"] for r in runs]}
        if reader.endswith(" library"):
            got = json.loads(best["stdout"].strip().splitlines()[-1])
            res.update(flows=got["flows"], matched=got["matched"], loop_s=got["seconds"])
            if got["matched"]:
                raise RuntimeError(f"{reader} {name}: {got['matched']} flows match {FILTER!r}")
            if reader == "interceptor library":
                self.counts[name] = got["flows"]
        else:
            printed = sum(1 for line in best["stdout"].splitlines()
                          if "Only processing flows that match" not in line)
            if printed:
                raise RuntimeError(f"{reader} {name}: printed {printed} lines, expected none "
                                   f"(no flow matches {FILTER!r}): {best['stdout'][:300]}")
        if label is None:
            return res
        flows = self.count(name)
        res["flows"] = flows
        res["rate"] = flows / max(best["wall"] - base, 1e-6)
        self.data.setdefault(label, {})[f"{reader} {name}"] = res
        self.row(label, f"{reader} {name}: flows/s", f"{res['rate']:.0f}",
                 f"{flows} flows; {best['wall']:.2f} s - {base:.2f} s start-up")
        self.row(label, f"{reader} {name}: peak RSS", f"{res['rss_mib']:.1f} MiB")
        return res

    def phase_read(self) -> None:
        print(f"read: each file with the filter {FILTER!r}", flush=True)
        for name in ("icp.flows", "mitm.flows"):
            self.row("read", f"{name}: flows in the file", str(self.count(name)),
                     f"{os.path.getsize(self.path(name)) / self.count(name):.0f} B/flow")
        icp = self.read("icp.flows", "interceptor-read")
        self.read("icp.flows", "interceptor library")
        mitm = self.read("mitm.flows", "mitmdump -nr")
        self.read("mitm.flows", "mitmproxy library")
        self.read("mitm.flows", "interceptor-read")
        self.row("read", "interceptor-read / mitmdump -nr (own files)",
                 f"{icp['rate'] / mitm['rate']:.2f}x", "goal >= 3x")

    # ---- flat RSS ----------------------------------------------------------------
    def phase_flat(self) -> None:
        k = self.a.big_factor
        print(f"flat: icp.flows concatenated {k} times", flush=True)
        big = f"icp-x{k}.flows"
        with open(self.path(big), "wb") as out:
            for _ in range(k):
                with open(self.path("icp.flows"), "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        want = k * self.count("icp.flows")
        res = self.read(big, "interceptor-read", label="flat")
        if res["flows"] != want:
            raise RuntimeError(f"{big}: read {res['flows']} flows, expected {want}")
        lib = self.read(big, "interceptor library", label="flat")
        for reader, big_res in (("interceptor-read", res), ("interceptor library", lib)):
            small = self.data["read"][f"{reader} icp.flows"]
            growth = big_res["rss_mib"] / small["rss_mib"] - 1
            self.row("flat", f"{reader} RSS {big_res['flows']} vs {small['flows']} flows",
                     f"{growth * 100:+.1f} %", "goal within 10 %")
        if self.a.mitm_big:
            mitm = self.read(big, "mitmdump -nr", label="flat")
            self.row("flat", "interceptor-read / mitmdump -nr (big file)",
                     f"{res['rate'] / mitm['rate']:.2f}x")
        os.unlink(self.path(big))

    # ---- S1-c50 recording cost ---------------------------------------------------
    def s1(self, preset: str, template: str, name: str) -> dict[str, Any]:
        out = self.path(f"s1-{preset}.json")
        argv = [sys.executable, os.path.join(HERE, "proxybench.py"), "--compare", preset,
                "--forward-cmd", template, "--name", name, "--scenarios", "S1-c50",
                "--repeats", str(self.a.s1_repeats), "--duration", str(self.a.s1_duration),
                "--workdir", self.path("pb"), "--out", out,
                "--max-total-minutes", f"{self.left() / 60:.1f}",
                # (a --forward-cmd proxy gets no preset's placeholders)
                "--var", f"twistd={os.path.join(VENV, 'twistd')}",
                "--var", f"mitmdump={self.a.mitmdump}"]
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=self.left() + 60, check=False, env=self.env)
        if r.returncode:
            raise RuntimeError(f"proxybench failed: {r.stdout.decode(errors='replace')[-600:]}")
        with open(out) as f:
            sc = json.load(f)["scenarios"]["S1-c50"]
        flows = os.path.join(self.path("pb"), "s1.flows")
        size = os.path.getsize(flows) if os.path.exists(flows) else 0
        if os.path.exists(flows):
            os.unlink(flows)
        res = {"direct": sc["direct"]["median"], "size": size}
        for side in (preset, name):
            entry = sc["proxies"][side]
            if "error" in entry:
                raise RuntimeError(f"proxybench: {side} failed: {entry['error']}")
            res[side] = entry["median"]
        return res

    def phase_s1(self) -> None:
        ca = " --set ssl_verify_upstream_trusted_ca={backend_ca}"
        jobs = [("interceptor", pb._ICP_COMMON + "-w {workdir}/s1.flows" + ca, "interceptor-w")]
        if self.a.s1_mitm:
            jobs.append(("mitmdump", pb._MITM_COMMON + "-w {workdir}/s1.flows" + ca,
                         "mitmdump-w"))
        for preset, template, name in jobs:
            print(f"s1: S1-c50, {preset} plain vs {name} "
                  f"({self.a.s1_repeats} x {self.a.s1_duration} s)", flush=True)
            res = self.s1(preset, template, name)
            self.data.setdefault("s1", {})[preset] = res
            plain, rec = res[preset], res[name]
            spread = (f"runs {plain['rate_min']:.0f}-{plain['rate_max']:.0f} / "
                      f"{rec['rate_min']:.0f}-{rec['rate_max']:.0f}")
            self.row("s1", f"{preset} S1-c50 req/s plain / with -w",
                     f"{plain['rate']:.0f} / {rec['rate']:.0f}",
                     f"direct {res['direct']['rate']:.0f}; {spread}")
            self.row("s1", f"{preset} recording cost (1 - with/plain)",
                     f"{(1 - rec['rate'] / plain['rate']) * 100:.1f} %",
                     f"file {res['size'] / 1e6:.0f} MB at the end" +
                     ("; goal <= 15 %" if preset == "interceptor" else ""))
            self.row("s1", f"{preset} peak RSS plain / with -w",
                     f"{plain['proxy_vmhwm_mib_max']:.0f} / {rec['proxy_vmhwm_mib_max']:.0f} MiB")

    # ---- output ------------------------------------------------------------------
    def table(self, argv: list[str], seconds: float) -> str:
        lines = [
            "# flowbench: flow files, interceptor vs mitmdump",
            "",
            f"Command: `python3 bench/flowbench.py {shlex.join(argv)}`",
            f"Date: {time.strftime('%Y-%m-%d %H:%M')}; machine: {platform.node()}, "
            f"{os.cpu_count()} cores (shared with other work), {platform.platform()}; "
            f"mitmdump: {pb.first_line([self.a.mitmdump, '--version'])}; "
            f"run took {seconds / 60:.1f} min.",
            f"Flows: {self.a.flows} distinct 1 KiB GETs (wrk, c={self.a.conns}); "
            f"filter `{FILTER}` (matches none); read rates subtract each command's "
            "start-up on an empty file; RSS: /usr/bin/time -v (read, write), VmHWM (proxies).",
            "",
            "| phase | what | value | note |",
            "|---|---|---:|---|",
        ]
        lines += [f"| {p} | {w} | {v} | {n} |" for p, w, v, n in self.rows]
        return "\n".join(lines) + "\n"


PHASES = {"record": FlowBench.phase_record, "write": FlowBench.phase_write,
          "read": FlowBench.phase_read, "flat": FlowBench.phase_flat, "s1": FlowBench.phase_s1}


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    ap.add_argument("--phases", default=",".join(PHASES),
                    help="comma list of " + ", ".join(PHASES) + " (read/write/flat need "
                    "record's files in --workdir)")
    ap.add_argument("--flows", type=int, default=100000, help="flows to record and write")
    ap.add_argument("--conns", type=int, default=50, help="wrk connections while recording")
    ap.add_argument("--record-timeout", type=float, default=300.0,
                    help="seconds one recording run may take")
    ap.add_argument("--read-repeats", type=int, default=1, help="runs per read (best kept)")
    ap.add_argument("--read-timeout", type=float, default=600.0)
    ap.add_argument("--big-factor", type=int, default=10, help="flat: copies of icp.flows")
    ap.add_argument("--mitm-big", action="store_true", help="flat: mitmdump reads it too")
    ap.add_argument("--s1-repeats", type=int, default=3)
    ap.add_argument("--s1-duration", type=int, default=10)
    ap.add_argument("--no-s1-mitm", dest="s1_mitm", action="store_false",
                    help="s1: skip mitmdump plain vs -w")
    ap.add_argument("--mitmdump", default="/tmp/mitmvenv/bin/mitmdump")
    ap.add_argument("--mitmpython", default="/tmp/mitmvenv/bin/python")
    ap.add_argument("--workdir", default="/tmp/flowbench")
    ap.add_argument("--max-minutes", type=float, default=20.0, help="hard stop for the run")
    ap.add_argument("--out", help="also write the table here, as markdown (every number: "
                    "WORK/flowbench.json)")
    a = ap.parse_args(argv)
    a.phase_list = [p.strip() for p in a.phases.split(",") if p.strip()]
    unknown = [p for p in a.phase_list if p not in PHASES]
    if unknown:
        ap.error(f"--phases: unknown {', '.join(unknown)} (known: {', '.join(PHASES)})")
    if a.flows < 1:
        ap.error("--flows must be at least 1")
    return a


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    for tool in ("wrk", "nginx", "openssl", a.mitmdump, os.path.join(VENV, "twistd")):
        if not shutil.which(tool):
            print(f"flowbench: missing {tool}", file=sys.stderr)
            return 2
    bench = FlowBench(a)
    t0 = time.monotonic()

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)
    status = 0
    try:
        bench.setup()
        for phase in a.phase_list:
            PHASES[phase](bench)
    except (RuntimeError, OSError, KeyError) as e:
        print(f"flowbench: {e}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("flowbench: interrupted", file=sys.stderr)
        status = 130
    finally:
        bench.teardown()
    md = bench.table(argv, time.monotonic() - t0)
    print()
    print(md)
    if a.out:
        with open(a.out, "w") as f:
            f.write(md)
    with open(bench.path("flowbench.json"), "w") as f:
        json.dump(bench.data, f, indent=1, default=str)
    return status


if __name__ == "__main__":
    sys.exit(main())
