#!/usr/bin/env python3
"""proxybench: side-by-side HTTP(S) proxy benchmark harness, loopback only.

Measures one or more proxies against a direct (no-proxy) baseline,
interleaving direct and proxied runs and reporting medians and proxy/direct
ratios.

    # interceptor and mitmdump side by side, one direct baseline, one table
    python3 bench/proxybench.py --compare interceptor,mitmdump --out /tmp/cmp.json
    # one proxy (the older single-proxy mode)
    python3 bench/proxybench.py --preset mitmdump --out /tmp/mitmdump.json

Everything runs on 127.0.0.1: a private nginx backend (its own config, prefix
and self-signed CA under the work directory), the proxies under test (started
from command templates), and the load generators (wrk, curl). Every load run
is bounded both in request count and in wall time. Every process the harness
starts gets its own session and is stopped by its own PID/PGID (SIGTERM, then
SIGKILL after 10 s).

A proxy is described by command templates; the harness fills these
placeholders before starting it:

    {port}               port the proxy must listen on (127.0.0.1)
    {host}               always 127.0.0.1
    {backend_http_port}  nginx plain-HTTP port
    {backend_https_port} nginx HTTPS (HTTP/1.1 + HTTP/2 via ALPN) port
    {backend_ca}         PEM of the CA that signed the backend cert (the proxy
                         must trust it for its upstream TLS leg)
    {workdir}            the harness work directory
    {confdir}            {workdir}/proxyconf/<proxy name>: the proxy's own state
    {twistd}             default: <project root>/.venv/bin/twistd
    {mitmdump}           default: /tmp/mitmvenv/bin/mitmdump
    {NAME}               any extra value given with --var NAME=VALUE

Templates:
    --forward-cmd   explicit (forward) proxy: absolute-form HTTP requests and
                    CONNECT with TLS interception. Used by S1, S3, S4, S5.
    --reverse-cmd   reverse proxy in front of http://127.0.0.1:{backend_http_port}.
                    Used by S2; S2 is skipped without it.
    --stream-cmd    forward proxy with body streaming enabled. Used by the
                    S4 *-streamed variants; skipped without it.
    --proxy-ca      path (template) of the PEM CA the client must trust to
                    accept the proxy's intercepted TLS certificates.

A proxy that fails to start (or fails during a scenario) is reported as
FAILED for that scenario; the run goes on with the other proxies and
scenarios. See README.md in this folder for the scenarios and the output.
Python 3.9+ stdlib only.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT_ROOT = os.path.dirname(HERE)
WRK_LUA = os.path.join(HERE, "wrk_report.lua")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_MIB = 1024 * 1024

SIZES = {"small": 1024, "1m": 1024 * 1024, "100m": 100 * 1024 * 1024}

# --------------------------------------------------------------------------
# Presets: ready-made templates for known proxies.
# --------------------------------------------------------------------------
_MITM_COMMON = ("{mitmdump} -q --listen-host 127.0.0.1 -p {port} "
                "--set confdir={confdir} ")
_ICP_COMMON = ("{twistd} -n --pidfile= interceptor -q --listen tcp:{port}:interface=127.0.0.1 "
               "--confdir {confdir} ")
# the same on Twisted's asyncio reactor (what asyncio code in hooks needs)
_ICP_ASYNCIO_COMMON = _ICP_COMMON.replace("--pidfile= ", "--pidfile= -r asyncio ")
PRESETS = {
    # the reference proxy (README: "Requirements" builds /tmp/mitmvenv)
    "mitmdump": {
        "forward_cmd": _MITM_COMMON + "--set ssl_verify_upstream_trusted_ca={backend_ca}",
        "reverse_cmd": _MITM_COMMON + "--mode reverse:http://127.0.0.1:{backend_http_port}",
        "stream_cmd": _MITM_COMMON + "--set ssl_verify_upstream_trusted_ca={backend_ca} "
                      "--set stream_large_bodies=1m",
        "proxy_ca": "{confdir}/mitmproxy-ca-cert.pem",
        "version_cmd": "{mitmdump} --version",
        "vars": {"mitmdump": "/tmp/mitmvenv/bin/mitmdump"},
    },
    # this project, as `twistd interceptor` from the project's .venv
    # (override with --var twistd=PATH)
    "interceptor": {
        "forward_cmd": _ICP_COMMON + "--set ssl_verify_upstream_trusted_ca={backend_ca}",
        "reverse_cmd": _ICP_COMMON + "--mode reverse:http://127.0.0.1:{backend_http_port}",
        "stream_cmd": _ICP_COMMON + "--set ssl_verify_upstream_trusted_ca={backend_ca} "
                      "--set stream_large_bodies=1m",
        "proxy_ca": "{confdir}/interceptor-ca-cert.pem",
        "version_cmd": "{twistd} --version",
        "vars": {"twistd": os.path.join(PROJECT_ROOT, ".venv", "bin", "twistd")},
    },
    "interceptor-asyncio": {
        "forward_cmd": _ICP_ASYNCIO_COMMON + "--set ssl_verify_upstream_trusted_ca={backend_ca}",
        "reverse_cmd": _ICP_ASYNCIO_COMMON
                       + "--mode reverse:http://127.0.0.1:{backend_http_port}",
        "stream_cmd": _ICP_ASYNCIO_COMMON + "--set ssl_verify_upstream_trusted_ca={backend_ca} "
                      "--set stream_large_bodies=1m",
        "proxy_ca": "{confdir}/interceptor-ca-cert.pem",
        "version_cmd": "{twistd} --version",
        "vars": {"twistd": os.path.join(PROJECT_ROOT, ".venv", "bin", "twistd")},
    },
}
TEMPLATE_KEYS = ("forward_cmd", "reverse_cmd", "stream_cmd", "proxy_ca", "version_cmd")

# --------------------------------------------------------------------------
# Scenarios. "needs" says which proxy instance the proxied side uses:
#   forward / reverse / stream. fresh=True: a new proxy process per run
#   (so VmHWM is the peak of that run alone).
# --------------------------------------------------------------------------
SCENARIOS = [
    dict(id="S1-c1", kind="wrk", needs="forward", path="/small", conns=1,
         desc="HTTP/1.1 explicit proxy (absolute-URI), 1 KiB GET, keep-alive, c=1"),
    dict(id="S1-c50", kind="wrk", needs="forward", path="/small", conns=50,
         desc="HTTP/1.1 explicit proxy (absolute-URI), 1 KiB GET, keep-alive, c=50"),
    dict(id="S1-1MiB-c10", kind="wrk", needs="forward", path="/1m", conns=10, show_mbps=True,
         desc="HTTP/1.1 explicit proxy, 1 MiB GET, keep-alive, c=10"),
    # Cross-check of S1 with ApacheBench (HTTP/1.0 + "Connection: Keep-Alive",
    # absolute-URI via -X). Not run unless selected: --scenarios S1ab
    dict(id="S1ab-c1", kind="ab", needs="forward", path="/small", conns=1, optional=True,
         desc="as S1-c1 but client = ab -k -X (HTTP/1.0 keep-alive)"),
    dict(id="S1ab-c50", kind="ab", needs="forward", path="/small", conns=50, optional=True,
         desc="as S1-c50 but client = ab -k -X (HTTP/1.0 keep-alive)"),
    dict(id="S2-c1", kind="wrk", needs="reverse", path="/small", conns=1,
         desc="reverse proxy, 1 KiB GET, keep-alive, c=1"),
    dict(id="S2-c50", kind="wrk", needs="reverse", path="/small", conns=50,
         desc="reverse proxy, 1 KiB GET, keep-alive, c=50"),
    dict(id="S3-newconn-c10", kind="curl", needs="forward", path="/small", conns=10,
         http="1.1", newconn=True,
         desc="HTTPS via CONNECT, intercepted; new TCP+TLS (full handshake) per request, c=10"),
    dict(id="S3-newhost-c10", kind="curl", needs="forward", path="/small", conns=10,
         http="1.1", newconn=True, newhost=True,
         desc="as S3-newconn, but every connection to a new hostname (SNI h<i>.bench.test, "
              "curl --connect-to 127.0.0.1): the proxy mints a new leaf per connection"),
    dict(id="S3-keepalive-c50", kind="curl", needs="forward", path="/small", conns=50,
         http="1.1", newconn=False,
         desc="HTTPS via CONNECT, intercepted; HTTP/1.1 keep-alive, c=50 connections"),
    dict(id="S3-plain-keepalive-c50", kind="curl", needs="forward", path="/small", conns=50,
         http="1.1", newconn=False, scheme="http",
         desc="plain HTTP through the explicit proxy with the S3 client (curl), keep-alive, "
              "c=50: the like-for-like baseline for S3-keepalive"),
    dict(id="S4-http-buffered", kind="download", needs="forward", scheme="http", fresh=True,
         desc="100 MiB GET over plain HTTP, explicit proxy, default settings"),
    dict(id="S4-http-streamed", kind="download", needs="stream", scheme="http", fresh=True,
         desc="100 MiB GET over plain HTTP, explicit proxy, streaming enabled"),
    dict(id="S4-https-buffered", kind="download", needs="forward", scheme="https", fresh=True,
         desc="100 MiB GET over intercepted HTTPS, default settings"),
    dict(id="S4-https-streamed", kind="download", needs="stream", scheme="https", fresh=True,
         desc="100 MiB GET over intercepted HTTPS, streaming enabled"),
    dict(id="S5-h2-m50", kind="curl", needs="forward", path="/small", conns=50,
         http="2", newconn=False,
         desc="HTTP/2 over intercepted TLS via CONNECT: 1 connection, 50 concurrent streams"),
]


def needs_tls(sc):
    return sc.get("scheme", "https" if sc["kind"] == "curl" else "http") == "https"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def clean_env():
    env = dict(os.environ)
    for k in list(env):
        if k.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            del env[k]
    return env


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def run_quiet(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, check=False, **kw)


def first_line(argv):
    try:
        out = run_quiet(argv, timeout=20).stdout.strip().splitlines()
        return out[0] if out else ""
    except Exception as e:  # noqa: BLE001 - a version probe must never fail the run
        return f"unavailable ({e})"


# --------------------------------------------------------------------------
# Processes we start. Each gets its own session (pgid == pid), so stopping it
# signals exactly that process group and nothing else on the machine.
# --------------------------------------------------------------------------
class Proc:
    def __init__(self, argv, log_path, env=None):
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "ab")
        try:
            self.p = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True,
                                      env=env or clean_env())
        except OSError:  # e.g. the binary does not exist
            self._log.close()
            raise
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def log_tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=10):
        # signals only this process group (pgid == our child's pid)
        if self.p.poll() is None:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(5)
        self._log.close()


def wait_listen(port, proc, timeout=30.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not proc.alive():
            raise RuntimeError(f"process {proc.argv[0]} exited (rc={proc.p.returncode}) "
                               f"before listening on {port}:\n{proc.log_tail()}")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return time.monotonic() - t0
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {HOST}:{port} after {timeout}s:\n{proc.log_tail()}")


# --------------------------------------------------------------------------
# /proc sampling: CPU (per process tree and per thread), RSS, VmHWM.
# --------------------------------------------------------------------------
def _read(path):
    with open(path) as f:
        return f.read()


def proc_tree(root):
    """root pid plus all its descendants (scan of /proc)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            rest = _read(f"/proc/{d}/stat").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(rest[1]), []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def thread_ticks(pids):
    """{(pid, tid): (user+sys ticks, name, sys ticks)} for every thread of the pids."""
    res = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                raw = _read(f"/proc/{pid}/task/{tid}/stat")
            except OSError:
                continue
            name = raw[raw.find("(") + 1:raw.rfind(")")]
            rest = raw.rsplit(")", 1)[1].split()
            res[(pid, int(tid))] = (int(rest[11]) + int(rest[12]), name, int(rest[12]))
    return res


def mem_kib(pid, field):
    try:
        for line in _read(f"/proc/{pid}/status").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def sys_ticks():
    v = [int(x) for x in _read("/proc/stat").splitlines()[0].split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]), idle


class Sampler:
    """Samples a set of process trees during one measured run."""

    def __init__(self, roots, interval=0.25):
        self.roots = {k: v for k, v in roots.items() if v}
        self.interval = interval
        self._stop = threading.Event()
        self.rss_peak = {k: 0 for k in self.roots}
        self.interval_max = {k: 0.0 for k in self.roots}

    def _snap(self):
        return {k: thread_ticks(proc_tree(pid)) for k, pid in self.roots.items()}

    def start(self):
        self.t0 = time.monotonic()
        self.sys0 = sys_ticks()
        self.snap0 = self._snap()
        self._th = threading.Thread(target=self._loop, daemon=True)
        self._th.start()
        return self

    def _loop(self):
        prev, prev_t = self.snap0, self.t0
        while not self._stop.wait(self.interval):
            now, now_t = self._snap(), time.monotonic()
            for k in self.roots:
                tot_now = sum(v[0] for v in now[k].values())
                tot_prev = sum(v[0] for k2, v in prev[k].items() if k2 in now[k])
                pct = 100.0 * (tot_now - tot_prev) / CLK_TCK / max(now_t - prev_t, 1e-6)
                self.interval_max[k] = max(self.interval_max[k], pct)
                rss = sum(mem_kib(p, "VmRSS") for p in proc_tree(self.roots[k]))
                self.rss_peak[k] = max(self.rss_peak[k], rss)
            prev, prev_t = now, now_t

    def stop(self):
        self._stop.set()
        self._th.join()
        dt = time.monotonic() - self.t0
        snap1 = self._snap()
        s1 = sys_ticks()
        tot, idle = s1[0] - self.sys0[0], s1[1] - self.sys0[1]
        res = {"window_s": round(dt, 3),
               "sys_busy_pct": round(100.0 * (tot - idle) / tot, 1) if tot else None,
               "ncpu": os.cpu_count()}
        for k, pid in self.roots.items():
            a, b = self.snap0[k], snap1[k]
            per, sys_ticks_d = [], 0
            for key, (t1, name, st1) in b.items():
                t0, _, st0 = a.get(key, (0, name, 0))
                per.append((100.0 * (t1 - t0) / CLK_TCK / dt, name, key[1]))
                sys_ticks_d += st1 - st0
            per.sort(reverse=True)
            tree = proc_tree(pid)
            d = {
                "cpu_pct": round(sum(p[0] for p in per), 1),
                "cpu_sys_pct": round(100.0 * sys_ticks_d / CLK_TCK / dt, 1),
                "cpu_pct_max_interval": round(self.interval_max[k], 1),
                "threads": len(per),
                "busy_threads": sum(1 for p in per if p[0] >= 5.0),
                "top_threads": [{"tid": t, "name": n, "cpu_pct": round(c, 1)}
                                for c, n, t in per[:4]],
                "processes": len(tree),
                "rss_peak_mib": round(max(self.rss_peak[k],
                                          sum(mem_kib(p, "VmRSS") for p in tree)) / 1024, 1),
                "vmhwm_mib": round(sum(mem_kib(p, "VmHWM") for p in tree) / 1024, 1),
            }
            res[k] = d
        return res


def child_cpu_s():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def pct(values, q):
    """Nearest-rank percentile of a list (q in 0..100)."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(q / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


# --------------------------------------------------------------------------
# The bench itself.
# --------------------------------------------------------------------------
class ProxyStartError(RuntimeError):
    pass


def last_output(proc):
    """The proxy's last line of output (not the harness's own '=== cmd' header)."""
    tail = [ln.strip() for ln in proc.log_tail(40).splitlines()
            if ln.strip() and not ln.startswith("=== ")]
    return f"; last output: {tail[-1]!r}" if tail else ""


def exit_msg(proc, when):
    return (f"proxy exited (rc={proc.p.returncode}) {when}{last_output(proc)} "
            f"(log: {proc.log_path})")


class Bench:
    def __init__(self, args):
        self.a = args
        self.specs = args.specs            # [{name, forward_cmd, ..., vars}]
        self.compare = args.compare_mode
        self.workdir = os.path.abspath(args.workdir)
        self.confroot = os.path.join(self.workdir, "proxyconf")
        self.logdir = os.path.join(self.workdir, "logs")
        self.env = clean_env()
        self.nginx = None
        self.running = {}                  # proxy name -> Proc currently running
        self.start_failed = {}             # (name, which) -> message
        self.nstarts = 0
        self.results = {}
        self.hard_deadline = time.monotonic() + args.max_total_minutes * 60

    # ---- setup ------------------------------------------------------------
    def setup(self):
        for d in (self.workdir, self.confroot, self.logdir,
                  os.path.join(self.workdir, "www"), os.path.join(self.workdir, "certs"),
                  os.path.join(self.workdir, "nginx", "logs"), os.path.join(self.workdir, "tmp")):
            os.makedirs(d, exist_ok=True)
        self._make_files()
        self._make_certs()
        self.bport = free_port()
        self.bsport = free_port()
        self._start_nginx()

    def _make_files(self):
        for name, size in SIZES.items():
            p = os.path.join(self.workdir, "www", name)
            if os.path.exists(p) and os.path.getsize(p) == size:
                continue
            with open(p, "wb") as f:
                left = size
                while left:
                    chunk = min(left, 4 * PAGE_MIB)
                    f.write(os.urandom(chunk))
                    left -= chunk

    def _make_certs(self):
        c = os.path.join(self.workdir, "certs")
        self.backend_ca = os.path.join(c, "backend-ca.pem")
        self.backend_cert = os.path.join(c, "backend.pem")
        self.backend_key = os.path.join(c, "backend.key")
        ext = os.path.join(c, "ext.cnf")
        wanted = ("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:*.bench.test\n"
                  "basicConstraints=CA:FALSE\n"
                  "keyUsage=critical,digitalSignature,keyEncipherment\n"
                  "extendedKeyUsage=serverAuth\n")
        paths = (self.backend_ca, self.backend_cert, self.backend_key, ext)
        if all(os.path.exists(p) for p in paths) and open(ext).read() == wanted:
            return
        with open(ext, "w") as f:
            f.write(wanted)
        steps = [
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
             "-keyout", os.path.join(c, "backend-ca.key"), "-out", self.backend_ca,
             "-days", "3650", "-subj", "/CN=proxybench backend CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-sha256",
             "-keyout", self.backend_key, "-out", os.path.join(c, "backend.csr"),
             "-subj", "/CN=127.0.0.1"],
            ["openssl", "x509", "-req", "-sha256", "-in", os.path.join(c, "backend.csr"),
             "-CA", self.backend_ca, "-CAkey", os.path.join(c, "backend-ca.key"),
             "-CAcreateserial", "-out", self.backend_cert, "-days", "3650", "-extfile", ext],
        ]
        for s in steps:
            r = run_quiet(s)
            if r.returncode:
                raise RuntimeError(f"openssl failed: {' '.join(s)}\n{r.stdout}")

    def _start_nginx(self):
        prefix = os.path.join(self.workdir, "nginx")
        www = os.path.join(self.workdir, "www")
        tmp = os.path.join(self.workdir, "tmp")
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""# generated by proxybench.py -- private backend, loopback only
worker_processes {self.a.nginx_workers};
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 10000000;   # also caps requests per HTTP/2 connection
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {HOST}:{self.bport} backlog=4096;
        root {www};
    }}
    server {{
        listen {HOST}:{self.bsport} ssl http2 backlog=4096;
        ssl_certificate {self.backend_cert};
        ssl_certificate_key {self.backend_key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        root {www};
    }}
}}
""")
        argv = ["nginx", "-p", prefix + "/", "-c", conf, "-e", f"{prefix}/logs/error.log",
                "-g", "daemon off;"]
        r = run_quiet(argv[:-2] + ["-t"])
        if r.returncode:
            raise RuntimeError(f"nginx config test failed:\n{r.stdout}")
        self.nginx = Proc(argv, os.path.join(self.logdir, "nginx.out"), self.env)
        wait_listen(self.bport, self.nginx)
        wait_listen(self.bsport, self.nginx)
        log(f"nginx pid {self.nginx.pid}: http {HOST}:{self.bport}, https+h2 {HOST}:{self.bsport}")

    # ---- proxies under test ---------------------------------------------------
    def fields(self, spec, port=None):
        f = dict(spec["vars"])
        f.update(port=port if port is not None else "", host=HOST,
                 backend_http_port=self.bport, backend_https_port=self.bsport,
                 backend_ca=self.backend_ca, workdir=self.workdir,
                 confdir=os.path.join(self.confroot, spec["name"]))
        return f

    def start_proxy(self, spec, which, need_ca, sid=""):
        """Start spec's `which` template; ProxyStartError if it does not come up.

        A template that failed to start once is not tried again in this run."""
        name = spec["name"]
        if (name, which) in self.start_failed:
            first_sid, first_msg = self.start_failed[(name, which)]
            raise ProxyStartError(f"{which} proxy failed to start in {first_sid}; not retried "
                                  f"({first_msg})")
        port = free_port()
        self.nstarts += 1
        logp = os.path.join(self.logdir, f"proxy-{self.nstarts:03d}-{name}-{which}.log")
        os.makedirs(os.path.join(self.confroot, name), exist_ok=True)
        proc = None
        try:
            cmd = spec[which + "_cmd"].format(**self.fields(spec, port))
            with open(logp, "wb") as f:
                f.write(f"=== {datetime.datetime.now().isoformat()} {cmd}\n".encode())
            proc = Proc(shlex.split(cmd), logp, self.env)
            t = wait_listen(port, proc, self.a.start_timeout)
        except Exception as e:  # noqa: BLE001 - any start problem is a start failure
            last = ""
            if proc:
                proc.stop()
                last = last_output(proc)
            short = (str(e).splitlines() or [type(e).__name__])[0].rstrip(":")
            self.start_failed[(name, which)] = (sid, short + last)
            raise ProxyStartError(f"{which} proxy did not start: {short}{last} "
                                  f"(log: {logp})") from None
        proc.port = port
        proc.which = which
        proc.name = name
        proc.startup_s = round(t, 3)
        proc.ca = None
        if spec.get("proxy_ca"):
            ca = spec["proxy_ca"].format(**self.fields(spec, port))
            t0 = time.monotonic()
            while need_ca and not os.path.exists(ca) and time.monotonic() - t0 < 15:
                time.sleep(0.1)
            if os.path.exists(ca):
                proc.ca = ca
            elif need_ca:
                proc.stop()
                raise ProxyStartError(f"proxy CA {ca} not found 15 s after start")
        self.running[name] = proc
        log(f"{name}[{which}] pid {proc.pid} listening on {HOST}:{port} after {t:.2f}s")
        return proc

    def stop_proxy(self, name):
        proc = self.running.pop(name, None)
        if proc:
            proc.stop()

    def stop_all(self):
        for name in list(self.running):
            self.stop_proxy(name)

    # ---- load generators ----------------------------------------------------
    def wrk(self, sc, proc, duration, warm=False):
        conns = sc["conns"]
        env = dict(self.env)
        if proc is None:
            url = f"http://{HOST}:{self.bport}{sc['path']}"
        elif sc["needs"] == "reverse":
            url = f"http://{HOST}:{proc.port}{sc['path']}"
        else:  # explicit proxy: connect to the proxy, send absolute-form URIs
            url = f"http://{HOST}:{proc.port}/"
            env["PB_ABS_URI"] = f"http://{HOST}:{self.bport}{sc['path']}"
        argv = ["wrk", f"-t{min(self.a.wrk_threads, conns)}", f"-c{conns}",
                f"-d{duration}s", "--timeout", "10s", "-s", WRK_LUA, url]
        cpu0 = child_cpu_s()
        t0 = time.monotonic()
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=env, timeout=duration + 30, check=False)
        elapsed = time.monotonic() - t0
        client_cpu = child_cpu_s() - cpu0
        js = [l for l in r.stdout.splitlines() if l.startswith("PBJSON ")]
        if not js:
            raise RuntimeError(f"wrk gave no result (rc={r.returncode}):\n{r.stdout[-2000:]}")
        d = json.loads(js[-1][7:])
        secs = d["duration_us"] / 1e6
        errors = sum(d[k] for k in d if k.startswith("err_"))
        out = {"rate": d["requests"] / secs, "count": d["requests"], "errors": errors,
               "p50_ms": d["lat_p50_us"] / 1000, "p99_ms": d["lat_p99_us"] / 1000,
               "elapsed_s": round(secs, 3), "mbps": d["bytes"] / secs / 1e6,
               "client_cpu_pct": round(100 * client_cpu / elapsed, 1), "raw": d}
        return out

    def curl_batch(self, sc, proc, duration, warm=False):
        n = self.a.max_requests
        scheme = sc.get("scheme", "https")
        scheme_port = self.bsport if scheme == "https" else self.bport
        url = f"{scheme}://{HOST}:{scheme_port}{sc['path']}?i=[1-{n}]"
        if sc.get("newhost"):
            # A new name (SNI) per connection, never seen in an earlier run
            # (the proxy's certificate cache must not turn them into
            # repeats); curl still connects to 127.0.0.1 (through the proxy:
            # CONNECT 127.0.0.1:port).
            self.newhost_runs = getattr(self, "newhost_runs", 0) + 1
            run = f"{os.getpid()}r{self.newhost_runs}"
            url = f"{scheme}://h[1-{n}]-{run}.bench.test:{scheme_port}{sc['path']}"
        fmt = "%{stderr}R %{http_code} %{time_total} %{num_connects} %{http_version}\\n"
        # NB: curl 7.88 prints the --parallel progress meter even with -s;
        # only --no-progress-meter silences it (it would garble the -w lines).
        argv = ["curl", "--no-progress-meter", "--parallel", "--parallel-max", str(sc["conns"]),
                "--http1.1" if sc["http"] == "1.1" else "--http2", "-w", fmt]
        if proc is None:
            argv += ["--noproxy", "*"] + (["--cacert", self.backend_ca] if scheme == "https" else [])
        else:
            argv += ["-x", f"http://{HOST}:{proc.port}"] + (
                ["--cacert", proc.ca] if scheme == "https" else [])
        if sc.get("newconn"):
            argv += ["--no-sessionid", "-H", "Connection: close"]
        if sc.get("newhost"):
            argv += ["--connect-to", f"::{HOST}:{scheme_port}"]
        argv.append(url)
        errp = os.path.join(self.workdir, "tmp", "curl.err")
        cpu0 = child_cpu_s()
        with open(errp, "wb") as ef:
            t0 = time.monotonic()
            p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=ef,
                                 stdin=subprocess.DEVNULL, env=self.env)
            try:
                p.wait(duration)
                elapsed = time.monotonic() - t0
            except subprocess.TimeoutExpired:
                elapsed = time.monotonic() - t0
                p.terminate()  # the curl we started, by its pid
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        client_cpu = child_cpu_s() - cpu0
        ok, errs, lat, conns, versions, other, truncated = 0, 0, [], 0, {}, [], 0
        # checks per request: S3-newconn opened exactly one new connection,
        # and the protocol used is the one asked for (S5: every response h2)
        want_version = "2" if sc["http"] == "2" else "1.1"
        check_failures = 0
        with open(errp, errors="replace") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] == "R" and (len(parts) != 5 or not line.endswith("\n")):
                    truncated += 1  # the line curl was writing when we stopped it
                    continue
                if len(parts) == 5 and parts[0] == "R":
                    if parts[1] != "200":
                        errs += 1
                    elif parts[4] != want_version or (sc.get("newconn") and parts[3] != "1"):
                        check_failures += 1
                    else:
                        ok += 1
                        lat.append(float(parts[2]) * 1000)
                    conns += int(parts[3])
                    versions[parts[4]] = versions.get(parts[4], 0) + 1
                elif line.strip():
                    other.append(line.strip())
        if ok == 0:
            raise RuntimeError(f"curl: no successful request; first messages: {other[:5]}")
        return {"rate": ok / elapsed, "count": ok,
                "errors": errs + check_failures + len(other),
                "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "elapsed_s": round(elapsed, 3),
                "new_connections": conns, "http_versions": versions,
                "check_failures": check_failures,
                "truncated_lines": truncated,
                "client_cpu_pct": round(100 * client_cpu / elapsed, 1),
                "error_samples": other[:3]}

    def ab(self, sc, proc, duration, warm=False):
        csv = os.path.join(self.workdir, "tmp", "ab.csv")
        # -r: keep going on receive errors. mitmproxy, for one, answers an
        # HTTP/1.0 "Connection: Keep-Alive" request with "Connection: keep-alive"
        # and then closes the socket; without -r ab aborts on the first reset.
        argv = ["ab", "-k", "-r", "-q", "-c", str(sc["conns"]), "-t", str(duration),
                "-n", str(self.a.max_requests * 5), "-s", "10", "-e", csv]
        if proc is not None:
            argv += ["-X", f"{HOST}:{proc.port}"]
        argv.append(f"http://{HOST}:{self.bport}{sc['path']}")
        cpu0 = child_cpu_s()
        t0 = time.monotonic()
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=self.env, timeout=duration + 30, check=False)
        elapsed = time.monotonic() - t0
        client_cpu = child_cpu_s() - cpu0
        vals = {}
        for line in r.stdout.splitlines():
            k, _, v = line.partition(":")
            vals[k.strip()] = v.strip()
        try:
            done = int(vals["Complete requests"])
            secs = float(vals["Time taken for tests"].split()[0])
        except (KeyError, ValueError):
            raise RuntimeError(f"ab failed (rc={r.returncode}):\n{r.stdout[-2000:]}")
        errors = int(vals.get("Failed requests", "0").split()[0]) + \
            int(vals.get("Non-2xx responses", "0") or 0)
        perc = {}
        if not warm:
            with open(csv) as f:
                for line in f.readlines()[1:]:
                    a, _, b = line.strip().partition(",")
                    perc[int(float(a))] = float(b)
        return {"rate": done / secs, "count": done, "errors": errors,
                "p50_ms": perc.get(50), "p99_ms": perc.get(99), "elapsed_s": round(secs, 3),
                "keepalive_requests": int(vals.get("Keep-Alive requests", "0") or 0),
                "client_cpu_pct": round(100 * client_cpu / elapsed, 1)}

    def download(self, sc, proc, duration=None, warm=False):
        port = self.bport if sc["scheme"] == "http" else self.bsport
        url = f"{sc['scheme']}://{HOST}:{port}/100m"
        argv = ["curl", "--no-progress-meter", "-o", "/dev/null", "--max-time", str(self.a.download_timeout),
                "--http1.1", "-w", "%{http_code} %{size_download} %{time_total}"]
        if proc is None:
            argv += ["--noproxy", "*", "--cacert", self.backend_ca]
        else:
            argv += ["-x", f"http://{HOST}:{proc.port}"]
            if proc.ca:
                argv += ["--cacert", proc.ca]
        argv.append(url)
        # --downloads-per-run sequential downloads, each a new connection; the
        # run's rate is their median (one 100 MiB download direct takes ~50 ms,
        # too short to time alone). A proxy's VmHWM covers all of them.
        cpu0 = child_cpu_s()
        speeds, total_t = [], 0.0
        for _ in range(self.a.downloads_per_run):
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=self.env, timeout=self.a.download_timeout + 30, check=False)
            try:
                code, size, tt = r.stdout.split()
                size, tt = int(size), float(tt)
            except ValueError:
                raise RuntimeError(f"curl download failed: {r.stdout} {r.stderr}")
            if code != "200" or size != SIZES["100m"]:
                raise RuntimeError(f"curl download: status {code}, {size} bytes: "
                                   f"{r.stderr.strip()}")
            speeds.append(size / tt / 1e6)
            total_t += tt
        client_cpu = child_cpu_s() - cpu0
        return {"rate": statistics.median(speeds), "speeds": [round(x, 1) for x in speeds],
                "count": len(speeds), "errors": 0, "elapsed_s": round(total_t, 3),
                "client_cpu_pct": round(100 * client_cpu / total_t, 1)}

    # ---- orchestration --------------------------------------------------------
    def measure(self, sc, proc, duration, warm=False):
        """One run of scenario sc: direct when proc is None, else through proc."""
        fn = {"wrk": self.wrk, "curl": self.curl_batch, "download": self.download,
              "ab": self.ab}[sc["kind"]]
        if proc is not None:
            if not proc.alive():
                raise RuntimeError(exit_msg(proc, "before the run"))
            if needs_tls(sc) and not proc.ca:
                raise RuntimeError("proxy CA not found: cannot verify intercepted TLS")
        if warm:
            return fn(sc, proc, duration, warm=True)
        roots = {"backend": self.nginx.pid}
        if proc is not None:
            roots["proxy"] = proc.pid
        s = Sampler(roots).start()
        try:
            res = fn(sc, proc, duration)
        finally:
            sampled = s.stop()
        res["sampled"] = sampled
        if proc is not None:
            res["proxy_startup_s"] = proc.startup_s
            if not proc.alive():
                raise RuntimeError(exit_msg(proc, "during the run"))
        return res

    def check_time(self):
        if time.monotonic() > self.hard_deadline:
            raise BudgetExhausted("--max-total-minutes reached")

    def run_scenario(self, sc):
        sid = sc["id"]
        unit = "MB/s" if sc["kind"] == "download" else (
            "handshakes/s" if sc.get("newconn") else "req/s")
        entry = {"desc": sc["desc"], "unit": unit, "kind": sc["kind"],
                 "client": {"wrk": "wrk (-t%d)" % self.a.wrk_threads,
                            "curl": "curl --parallel", "download": "curl",
                            "ab": "ab -k"}[sc["kind"]],
                 "show_mbps": bool(sc.get("show_mbps")),
                 "direct": {"runs": []}, "proxies": {}}
        self.results[sid] = entry
        tls = needs_tls(sc)
        by_name = {s["name"]: s for s in self.specs}
        active = []
        for spec in self.specs:
            pe = entry["proxies"][spec["name"]] = {"runs": []}
            if not spec.get(sc["needs"] + "_cmd"):
                pe["skipped"] = f"no --{sc['needs']}-cmd given"
            elif tls and not spec.get("proxy_ca"):
                pe["skipped"] = "no --proxy-ca given (needed to check intercepted TLS)"
            else:
                active.append(spec)
                continue
            log(f"{sid} [{spec['name']}]: skipped ({pe['skipped']})")

        def fail(spec, e):
            name = spec["name"]
            pe = entry["proxies"][name]
            pe["error"] = str(e) if isinstance(e, ProxyStartError) else f"{type(e).__name__}: {e}"
            log(f"{sid} [{name}]: FAILED {pe['error']}")
            self.stop_proxy(name)
            if spec in active:
                active.remove(spec)

        dur = self.a.duration
        fresh = sc.get("fresh", False)
        try:
            if not fresh:
                for spec in list(active):
                    try:
                        self.start_proxy(spec, sc["needs"], tls, sid)
                    except ProxyStartError as e:
                        fail(spec, e)
                # warm-up, not recorded: JIT-less Python still has caches
                # (cert generation, imports, connection pools) to fill.
                if active and self.a.warmup > 0:
                    self.measure(sc, None, self.a.warmup, warm=True)
                    for spec in list(active):
                        try:
                            self.measure(sc, self.running[spec["name"]], self.a.warmup, warm=True)
                        except Exception as e:  # noqa: BLE001 - this proxy only
                            fail(spec, e)
            # interleaved: the order of direct and the proxies rotates per repeat
            # (D A B, A B D, B D A, ...; single proxy: D P, P D, D P)
            sides = [None] + [s["name"] for s in self.specs]
            for rep in range(self.a.repeats):
                if not active:
                    break
                k = rep % len(sides)
                for side in sides[k:] + sides[:k]:
                    if not active:
                        break
                    self.check_time()
                    if side is None:
                        res = self.measure(sc, None, dur)  # a direct failure ends the scenario
                        self._record(entry["direct"], res, rep, sid, "direct", unit)
                        continue
                    spec = by_name[side]
                    if spec not in active:
                        continue
                    try:
                        if fresh:
                            proc = self.start_proxy(spec, sc["needs"], tls, sid)
                            idle_hwm = sum(mem_kib(p, "VmHWM") for p in proc_tree(proc.pid))
                        proc = self.running[side]
                        res = self.measure(sc, proc, dur)
                        if fresh:
                            res["idle_vmhwm_mib"] = round(idle_hwm / 1024, 1)
                            self.stop_proxy(side)
                    except BudgetExhausted:
                        raise
                    except Exception as e:  # noqa: BLE001 - this proxy only; others go on
                        fail(spec, e)
                        continue
                    self._record(entry["proxies"][side], res, rep, sid, side, unit)
        except Exception as e:  # noqa: BLE001 - one broken scenario must not sink the rest
            entry["error"] = f"{type(e).__name__}: {e}"
            log(f"{sid}: ERROR {entry['error']}")
        finally:
            self.stop_all()
        if all(pe.get("skipped") for pe in entry["proxies"].values()):
            entry["skipped"] = "; ".join(
                (f"{n}: " if self.compare else "") + pe["skipped"]
                for n, pe in entry["proxies"].items())
        summarize(entry)
        if not self.compare:
            to_single(entry)

    def _record(self, bucket, res, rep, sid, side, unit):
        res["rep"] = rep
        bucket["runs"].append(res)
        extra = ""
        sp = res.get("sampled", {}).get("proxy")
        if sp:
            top = sp["top_threads"][0]["cpu_pct"] if sp["top_threads"] else 0
            extra = f" proxy cpu {sp['cpu_pct']}% (top thread {top}%) hwm {sp['vmhwm_mib']} MiB"
        lat = ""
        if res.get("p50_ms") is not None:
            lat = f" p50 {res['p50_ms']:.3f} ms p99 {res['p99_ms']:.3f} ms"
        log(f"{sid} rep{rep} {side:11s}: {res['rate']:.1f} {unit}{lat}"
            f" err {res['errors']}{extra}")

    def run(self):
        meta = {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "mode": "compare" if self.compare else "single",
            "settings": {k: getattr(self.a, k) for k in
                         ("duration", "warmup", "repeats", "max_requests", "wrk_threads",
                          "nginx_workers", "downloads_per_run", "max_total_minutes")},
            "machine": {"nproc": os.cpu_count(), "kernel": platform.release(),
                        "python": platform.python_version(),
                        "loadavg_at_start": os.getloadavg()},
            "tools": {
                "wrk": first_line(["wrk", "-v"]),
                "curl": first_line(["curl", "--version"]),
                "nginx": run_quiet(["nginx", "-v"]).stdout.strip(),
                "openssl": first_line(["openssl", "version"]),
            },
        }
        self.setup()
        meta["backend"] = {"http_port": self.bport, "https_port": self.bsport,
                           "files": SIZES}
        versions = {}
        for spec in self.specs:
            v = None
            if spec.get("version_cmd"):
                try:
                    vc = spec["version_cmd"].format(**self.fields(spec))
                    v = run_quiet(shlex.split(vc), timeout=30).stdout.strip()
                except Exception as e:  # noqa: BLE001 - a version probe must never fail the run
                    v = f"unavailable ({type(e).__name__}: {e})"
            versions[spec["name"]] = v
        templates = {s["name"]: {k: s.get(k) for k in TEMPLATE_KEYS[:4]} for s in self.specs}
        pvars = {s["name"]: s["vars"] for s in self.specs}
        if self.compare:
            meta.update(proxies=[s["name"] for s in self.specs], templates=templates,
                        vars=pvars, proxy_versions=versions)
        else:  # the single-proxy JSON format (--preset mode)
            n = self.specs[0]["name"]
            meta.update(proxy_name=n, templates=templates[n], vars=pvars[n],
                        proxy_version=versions[n])
        out = {"meta": meta, "scenarios": self.results}
        wanted = [s for s in SCENARIOS if self._selected(s)]
        t0 = time.monotonic()
        try:
            for sc in wanted:
                if time.monotonic() > self.hard_deadline:
                    log("time budget exhausted; stopping")
                    break
                self.run_scenario(sc)
                self.save(out)
        finally:
            self.stop_all()
            if self.nginx:
                self.nginx.stop(signal.SIGQUIT)
        out["meta"]["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        out["meta"]["wall_s"] = round(time.monotonic() - t0, 1)
        self.save(out)
        print(render_table(out))
        return out

    def _selected(self, sc):
        sid = sc["id"]
        if not self.a.scenarios:
            return not sc.get("optional")
        return any(sid == s or sid.startswith(s + "-") for s in self.a.scenarios)

    def save(self, out):
        if self.a.out:
            os.makedirs(os.path.dirname(os.path.abspath(self.a.out)), exist_ok=True)
            with open(self.a.out, "w") as f:
                json.dump(out, f, indent=1, default=str)
            with open(os.path.splitext(self.a.out)[0] + ".md", "w") as f:
                f.write(render_table(out) + "\n")


class BudgetExhausted(Exception):
    pass


# --------------------------------------------------------------------------
# Summaries and the tables.
# --------------------------------------------------------------------------
def _med(runs, key, sub=None):
    vals = []
    for r in runs:
        v = r.get(key) if sub is None else r.get("sampled", {}).get(sub, {}).get(key)
        if v is not None:
            vals.append(v)
    return statistics.median(vals) if vals else None


def summarize_side(runs, is_proxy):
    m = {k: _med(runs, k) for k in ("rate", "p50_ms", "p99_ms", "errors", "client_cpu_pct",
                                     "mbps")}
    m["rate_min"] = min((r["rate"] for r in runs), default=None)
    m["rate_max"] = max((r["rate"] for r in runs), default=None)
    m["sys_busy_pct"] = _med([r.get("sampled", {}) for r in runs], "sys_busy_pct")
    m["backend_cpu_pct"] = _med(runs, "cpu_pct", "backend")
    if is_proxy:
        for k in ("cpu_pct", "cpu_sys_pct", "cpu_pct_max_interval", "busy_threads", "threads",
                  "vmhwm_mib", "rss_peak_mib"):
            m["proxy_" + k] = _med(runs, k, "proxy")
        tops = [r["sampled"]["proxy"]["top_threads"][0] for r in runs
                if r.get("sampled", {}).get("proxy", {}).get("top_threads")]
        m["proxy_top_thread_pct"] = statistics.median([t["cpu_pct"] for t in tops]) \
            if tops else None
        m["proxy_top_thread_name"] = tops[0]["name"] if tops else None
        m["proxy_vmhwm_mib_max"] = max((r["sampled"]["proxy"]["vmhwm_mib"] for r in runs
                                        if "proxy" in r.get("sampled", {})), default=None)
        idle = [r["idle_vmhwm_mib"] for r in runs if "idle_vmhwm_mib" in r]
        if idle:
            m["proxy_idle_vmhwm_mib"] = statistics.median(idle)
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in m.items()}


def ratios(d, p):
    out = {}
    for k in ("rate", "p50_ms", "p99_ms"):
        if d.get(k) and p.get(k) is not None:
            out[k] = round(p[k] / d[k], 4)
    return out


def summarize(entry):
    entry["direct"]["median"] = d = summarize_side(entry["direct"]["runs"], False)
    entry["ratios"] = {}
    for name, pe in entry["proxies"].items():
        pe["median"] = summarize_side(pe["runs"], True)
        entry["ratios"][name] = ratios(d, pe["median"])


def to_single(entry):
    """Single-proxy mode: the original JSON layout (direct/proxy/ratio_proxy_over_direct)."""
    (name, pe), = entry.pop("proxies").items()
    entry["proxy"] = {"runs": pe["runs"], "median": pe["median"]}
    entry["ratio_proxy_over_direct"] = entry.pop("ratios")[name]
    if pe.get("error") and not entry.get("error"):
        entry["error"] = pe["error"]


def _f(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, (int, float)):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{nd}f}"
    return str(v)


def render_table(out):
    if out["meta"].get("mode") == "compare":
        return render_compare_table(out)
    return render_single_table(out)


def render_single_table(out):
    name = out["meta"].get("proxy_name", "proxy")
    lines = [f"proxybench: direct vs {name}  ({out['meta'].get('date')}, "
             f"medians of {out['meta']['settings']['repeats']} runs, "
             f"{out['meta']['settings']['duration']} s each)", ""]
    hdr = ("| scenario | unit | direct | proxy | ratio | p50 ms direct/proxy | "
           "p99 ms direct/proxy | proxy CPU % (top thread; busy/all threads) | proxy peak RSS MiB |")
    lines += [hdr, "|" + "---|" * 9]
    for sid, e in out["scenarios"].items():
        if e.get("skipped"):
            lines.append(f"| {sid} | {e['unit']} | skipped: {e['skipped']} |||||||")
            continue
        d = e["direct"].get("median", {})
        p = e["proxy"].get("median", {})
        r = e.get("ratio_proxy_over_direct", {})
        lat50 = f"{_f(d.get('p50_ms'), 3)} / {_f(p.get('p50_ms'), 3)}" \
            if d.get("p50_ms") is not None else "-"
        lat99 = f"{_f(d.get('p99_ms'), 3)} / {_f(p.get('p99_ms'), 3)}" \
            if d.get("p99_ms") is not None else "-"
        cpu = (f"{_f(p.get('proxy_cpu_pct'), 0)} ({_f(p.get('proxy_top_thread_pct'), 0)}; "
               f"{_f(p.get('proxy_busy_threads'), 0)}/{_f(p.get('proxy_threads'), 0)})")
        rss = _f(p.get("proxy_vmhwm_mib_max"), 0)
        err = ""
        if e.get("error"):
            err = " **ERROR: " + _one_line(e["error"]) + "**"
        elif (p.get("errors") or 0) > 0 or (d.get("errors") or 0) > 0:
            err = f" (errors d/p {d.get('errors')}/{p.get('errors')})"
        dr, pr = _f(d.get("rate")), _f(p.get("rate"))
        if e.get("show_mbps"):
            dr += f" ({_f(d.get('mbps'))} MB/s)"
            pr += f" ({_f(p.get('mbps'))} MB/s)"
        lines.append(f"| {sid}{err} | {e['unit']} | {dr} | {pr} | "
                     f"{_f(r.get('rate'), 3)} | {lat50} | {lat99} | {cpu} | {rss} |")
    lines.append("")
    lines.append("ratio = proxy/direct of the median rate (lower = proxy slower). "
                 "CPU %: 100 = one full core, averaged over the timed window; busy thread = "
                 ">= 5 % CPU. RSS: VmHWM (lifetime peak) of the proxy process tree, max over "
                 "runs; S4 uses a fresh proxy process per run. MB = 10^6 bytes.")
    return "\n".join(lines)


def _one_line(s, n=240):
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[:n - 3] + "..."


def render_compare_table(out):
    meta = out["meta"]
    names = meta["proxies"]
    st = meta["settings"]
    lines = [f"proxybench: direct vs {' vs '.join(names)}  ({meta.get('date')}, interleaved, "
             f"medians of {st['repeats']} runs, {st['duration']} s each)", ""]
    first, others = names[0], names[1:]
    slash = " / ".join
    hdr = ["scenario", "unit", "direct"]
    for n in names:
        hdr += [n, f"{n}/direct"]
    hdr += [f"{first}/{o}" for o in others]
    hdr += [f"p50 ms {slash(['direct'] + names)}", f"p99 ms {slash(['direct'] + names)}",
            f"peak RSS MiB {slash(names)}", f"CPU % (busy/all threads) {slash(names)}"]
    lines += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    notes = []
    for sid, e in out["scenarios"].items():
        if e.get("error"):
            notes.append(f"- {sid}: ERROR {_one_line(e['error'])}")
        d = e["direct"].get("median", {})
        pes = {n: e["proxies"].get(n, {}) for n in names}
        pm = {n: pes[n].get("median", {}) for n in names}

        def val(m, runs=True):
            if not runs or m.get("rate") is None:
                return None
            v = _f(m.get("rate"))
            if e.get("show_mbps") and m.get("mbps") is not None:
                v += f" ({_f(m['mbps'])} MB/s)"
            return v

        row = [sid, e["unit"], val(d) or "-"]
        for n in names:
            pe, m = pes[n], pm[n]
            v = val(m, bool(pe.get("runs")))
            if pe.get("skipped"):
                cell = "skipped"
                notes.append(f"- {sid} {n}: skipped: {pe['skipped']}")
            elif pe.get("error"):
                cell = f"{v} FAILED" if v else "FAILED"
                notes.append(f"- {sid} {n}: {_one_line(pe['error'], 400)}")
            else:
                cell = v or "-"
            if v and (m.get("errors") or 0) > 0:
                cell += f" ({_f(m['errors'], 0)} err)"
                notes.append(f"- {sid} {n}: {_f(m['errors'], 0)} errors in the median run "
                             "(failed requests, non-2xx/3xx or socket errors): not comparable")
            row += [cell, _f(e.get("ratios", {}).get(n, {}).get("rate"), 3)]
        for o in others:
            a, b = pm[first].get("rate"), pm[o].get("rate")
            row.append(f"{a / b:.2f}" if a and b else "-")
        for key in ("p50_ms", "p99_ms"):
            vals = [d.get(key)] + [pm[n].get(key) for n in names]
            row.append(slash(_f(v, 3) for v in vals) if any(v is not None for v in vals)
                       else "-")
        row.append(slash(_f(pm[n].get("proxy_vmhwm_mib_max"), 0) for n in names))
        row.append(slash(
            f"{_f(pm[n].get('proxy_cpu_pct'), 0)} ({_f(pm[n].get('proxy_busy_threads'), 0)}/"
            f"{_f(pm[n].get('proxy_threads'), 0)})" if pm[n].get("proxy_cpu_pct") is not None
            else "-" for n in names))
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    vs = (f"{first}/Y = {first}'s median rate / Y's (> 1: {first} faster). "
          if others else "")
    lines.append("X/direct = median rate through proxy X / median direct rate, same run "
                 f"(1.0 = as fast as no proxy; lower = slower). {vs}"
                 "p50/p99: latency medians over runs. "
                 "peak RSS: VmHWM (lifetime peak) of the proxy's process tree, max over runs; "
                 "S4 uses a fresh proxy process per run. CPU %: 100 = one full core, averaged "
                 "over the timed window; busy thread = >= 5 % CPU. MB = 10^6 bytes. "
                 f"Wall time {_f(meta.get('wall_s'), 0)} s.")
    if notes:
        lines += ["", "Skipped / failed:"] + notes
    return "\n".join(lines)


# --------------------------------------------------------------------------
def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Loopback proxy benchmark: direct vs proxies, interleaved, medians.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--compare", metavar="PRESET,PRESET",
                    help="measure several presets in one run against one direct baseline "
                         f"(presets: {', '.join(sorted(PRESETS))}); with --forward-cmd, "
                         "that proxy (--name) is added as well")
    ap.add_argument("--name", default=None, help="label for the proxy under test")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="fill templates for a known proxy")
    ap.add_argument("--forward-cmd", help="explicit-proxy command template (needs {port})")
    ap.add_argument("--reverse-cmd", help="reverse-proxy command template")
    ap.add_argument("--stream-cmd", help="explicit proxy with streaming enabled (S4 streamed)")
    ap.add_argument("--proxy-ca", help="path template of the proxy's interception CA (PEM)")
    ap.add_argument("--version-cmd", help="command template printing the proxy's version")
    ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                    help="extra template placeholder, for every proxy (repeatable), e.g. "
                         "twistd=/path/to/twistd or mitmdump=/path/to/mitmdump")
    ap.add_argument("--scenarios", default="",
                    help="comma list of scenario ids or prefixes (S1,S3-newconn-c10,...)")
    ap.add_argument("--duration", type=int, default=10, help="seconds per timed run")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of unrecorded warm-up")
    ap.add_argument("--repeats", type=int, default=3, help="repeats per side (median)")
    ap.add_argument("--max-requests", type=int, default=200000,
                    help="cap on requests in one curl batch run")
    ap.add_argument("--download-timeout", type=int, default=120,
                    help="curl --max-time for one 100 MiB download")
    ap.add_argument("--downloads-per-run", type=int, default=3,
                    help="sequential 100 MiB downloads in one S4 run (median speed)")
    ap.add_argument("--start-timeout", type=float, default=30.0,
                    help="seconds a proxy gets to listen before it counts as failed")
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--nginx-workers", type=int, default=1)
    ap.add_argument("--max-total-minutes", type=float, default=None,
                    help="hard stop for the whole run (default 30 + 15 per proxy)")
    ap.add_argument("--workdir", default="/tmp/proxybench")
    ap.add_argument("--out", default=None, help="JSON results path (a .md table is written beside)")
    ap.add_argument("--list", action="store_true", help="list scenarios and exit")
    ap.add_argument("--table", metavar="JSON", help="print the table of a results file and exit")
    a = ap.parse_args(argv)
    gvars = {}
    for kv in a.var:
        k, _, v = kv.partition("=")
        gvars[k] = v

    def spec(name, preset=None, from_args=False):
        s = {"name": name, "vars": {}}
        if preset:
            s.update({k: PRESETS[preset].get(k) for k in TEMPLATE_KEYS})
            s["vars"].update(PRESETS[preset].get("vars", {}))
        if from_args:
            for k in TEMPLATE_KEYS:
                if getattr(a, k) is not None:
                    s[k] = getattr(a, k)
        s["vars"].update(gvars)
        return s

    a.specs = []
    a.compare_mode = bool(a.compare)
    if a.compare:
        if a.preset:
            ap.error("--preset is for one proxy; list presets in --compare instead")
        for p in (x.strip() for x in a.compare.split(",")):
            if not p:
                continue
            if p not in PRESETS:
                ap.error(f"--compare: unknown preset {p!r} (known: {', '.join(sorted(PRESETS))})")
            if any(s["name"] == p for s in a.specs):
                ap.error(f"--compare: {p} given twice")
            a.specs.append(spec(p, preset=p))
        if a.forward_cmd:
            a.specs.append(spec(a.name or "proxy", from_args=True))
        if not a.specs:
            ap.error("--compare: no proxy given")
    elif a.preset or a.forward_cmd:
        a.specs.append(spec(a.name or a.preset or "proxy", preset=a.preset, from_args=True))
    a.name = a.specs[0]["name"] if a.specs else None
    if a.max_total_minutes is None:
        a.max_total_minutes = 30.0 + 15.0 * max(1, len(a.specs))
    a.scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    return a


def main(argv=None):
    a = parse_args(argv)
    if a.list:
        for s in SCENARIOS:
            print(f"{s['id']:20s} [{s['needs']}] {s['desc']}")
        return 0
    if a.table:
        with open(a.table) as f:
            print(render_table(json.load(f)))
        return 0
    if not a.specs or not all(s.get("forward_cmd") for s in a.specs):
        print("need --compare, --preset or --forward-cmd; see --help", file=sys.stderr)
        return 2
    for tool in ("wrk", "curl", "nginx", "openssl"):
        if not shutil.which(tool):
            print(f"missing tool: {tool} (apt-get install -y wrk curl nginx openssl)",
                  file=sys.stderr)
            return 2
    b = Bench(a)

    def on_signal(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)
    try:
        b.run()
    except KeyboardInterrupt:
        log("interrupted; stopping processes we started")
        b.stop_all()
        if b.nginx:
            b.nginx.stop(signal.SIGQUIT)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
