#!/usr/bin/env python3
"""wsbench: WebSocket relay throughput, direct vs interceptor vs mitmdump, loopback only.

    .venv/bin/python bench/wsbench.py                       # all three, default sizes
    .venv/bin/python bench/wsbench.py --proxies interceptor --small 50000 --large 100

Scenarios (each on a fresh WebSocket connection, opened through the proxy with
CONNECT, as browsers and autobahn do):

    small-up     N small TEXT messages (32 bytes) client -> server
    small-down   N small TEXT messages server -> client
    1MiB-up      M 1 MiB BINARY messages client -> server (masked: the proxy unmasks and re-masks)
    1MiB-down    M 1 MiB BINARY messages server -> client

The peers cost almost nothing, so the proxy is what is measured: the sender
writes pre-built frames in one go; the receiver only counts bytes (frame sizes
do not change through a proxy: same payload, same header form) and the server
answers "done" when it has them all.  Rates are messages/s and MB/s (10^6
bytes of payload) from the first byte sent to the last byte received. Peak
RSS is the proxy process's VmHWM after all its scenarios.

Processes: the server runs in a child process (this script, `server`
subcommand), each proxy is started by its own command and stopped by its own
PID (SIGTERM, then SIGKILL); the client runs here. Every wait is bounded.
Stdlib only (plus the project's venv for interceptor itself).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SMALL = b"0123456789abcdef0123456789abcdef"  # 32 bytes
LARGE = 1 << 20
TIMEOUT = 120.0


def frame(payload: bytes, opcode: int, masked: bool) -> bytes:
    """One FIN frame (masked with a fixed key when sent by a client)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n | (0x80 if masked else 0))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126 | (0x80 if masked else 0), n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127 | (0x80 if masked else 0), n)
    if not masked:
        return head + payload
    key = b"\x12\x34\x56\x78"
    k = int.from_bytes(key * ((n + 3) // 4), "little") >> (8 * ((4 - n % 4) % 4))
    body = (int.from_bytes(payload, "little") ^ (k & ((1 << (8 * n)) - 1))).to_bytes(n, "little")
    return head + key + body


def scenario_params(name: str, args: argparse.Namespace) -> tuple[int, int, int]:
    """(count, payload size, opcode) of a scenario."""
    if name.startswith("small"):
        return args.small, len(SMALL), 1
    return args.large, LARGE, 2


def send_frames(sock: socket.socket, data: bytes, count: int) -> None:
    """Send C{count} copies of the frame C{data}, in writes of about 8 MiB."""
    per = max(1, min(count, (8 << 20) // len(data)))
    blob = data * per
    left = count
    while left >= per:
        sock.sendall(blob)
        left -= per
    if left:
        sock.sendall(data * left)


def payload_of(size: int) -> bytes:
    return SMALL if size == len(SMALL) else (b"\xa5\x5a" * (size // 2))


# -- the server (child process) ---------------------------------------------


def serve(port_file: str) -> None:
    """Accept connections forever: `/up/N/SIZE` counts, `/down/N/SIZE` sends."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(listener.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    import threading

    def run(conn: socket.socket) -> None:
        try:
            handle(conn)
        except OSError:
            pass
        finally:
            conn.close()

    while True:
        conn, _ = listener.accept()
        conn.settimeout(TIMEOUT)
        # A thread per connection: a proxy may keep an old one open a while.
        threading.Thread(target=run, args=(conn,), daemon=True).start()


def handle(conn: socket.socket) -> None:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(65536)
        if not chunk:
            return
        head += chunk
    head, rest = head.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    path = lines[0].split(b" ")[1].decode()
    key = [l.split(b":", 1)[1].strip() for l in lines if l.lower().startswith(b"sec-websocket-key:")][0]
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    _, direction, count, size = path.split("/")[-4:]
    count, size = int(count), int(size)
    opcode = 1 if size == len(SMALL) else 2
    if direction == "up":
        one = len(frame(payload_of(size), opcode, True))
        expected, got = one * count, len(rest)
        buf = bytearray(1 << 20)
        while got < expected:
            n = conn.recv_into(buf)
            if not n:
                return
            got += n
        conn.sendall(frame(b"done", 1, False))
    else:
        go = len(frame(b"go", 1, True))
        while len(rest) < go:
            chunk = conn.recv(65536)
            if not chunk:
                return
            rest += chunk
        send_frames(conn, frame(payload_of(size), opcode, False), count)
    # wait for the client to go away
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


# -- the client (this process) ----------------------------------------------


def connect(server_port: int, proxy_port: int | None, path: str) -> tuple[socket.socket, bytes]:
    if proxy_port is None:
        sock = socket.create_connection(("127.0.0.1", server_port), timeout=TIMEOUT)
    else:
        sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=TIMEOUT)
        sock.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                     % (server_port, server_port))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("proxy closed during CONNECT")
            answer += chunk
        if b" 200 " not in answer.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"CONNECT refused: {answer[:100]!r}")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                 % (path.encode(), server_port, key))
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        answer += chunk
    head, rest = answer.split(b"\r\n\r\n", 1)
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise ConnectionError(f"no 101: {head[:200]!r}")
    return sock, rest


def run_scenario(name: str, args: argparse.Namespace, server_port: int, proxy_port: int | None) -> float:
    """Seconds for the scenario."""
    count, size, opcode = scenario_params(name, args)
    direction = "up" if name.endswith("up") else "down"
    sock, rest = connect(server_port, proxy_port, f"/{direction}/{count}/{size}")
    try:
        if direction == "up":
            data = frame(payload_of(size), opcode, True)
            start = time.perf_counter()
            send_frames(sock, data, count)
            done = frame(b"done", 1, False)
            got = rest
            while len(got) < len(done):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed before done")
                got += chunk
            return time.perf_counter() - start
        expected = len(frame(payload_of(size), opcode, False)) * count
        got = len(rest)
        buf = bytearray(1 << 20)
        start = time.perf_counter()
        sock.sendall(frame(b"go", 1, True))
        while got < expected:
            n = sock.recv_into(buf)
            if not n:
                raise ConnectionError(f"closed after {got} of {expected} bytes")
            got += n
        return time.perf_counter() - start
    finally:
        try:
            sock.sendall(frame(struct.pack("!H", 1000), 8, True))
        except OSError:
            pass
        sock.close()


# -- processes --------------------------------------------------------------


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listen(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def proxy_command(name: str, port: int, workdir: str, args: argparse.Namespace) -> list[str]:
    confdir = os.path.join(workdir, name)
    if name == "interceptor":
        return [args.twistd, "-n", "--pidfile=", "interceptor", "-q",
                "--listen", f"tcp:{port}:interface=127.0.0.1", "--confdir", confdir]
    return [args.mitmdump, "-q", "--listen-host", "127.0.0.1", "-p", str(port),
            "--set", f"confdir={confdir}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--proxies", default="interceptor,mitmdump")
    parser.add_argument("--small", type=int, default=100000, help="small messages per run")
    parser.add_argument("--large", type=int, default=200, help="1 MiB messages per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (best is kept)")
    parser.add_argument("--scenarios", default="small-up,small-down,1MiB-up,1MiB-down")
    parser.add_argument("--twistd", default=os.path.join(ROOT, ".venv", "bin", "twistd"))
    parser.add_argument("--mitmdump", default="/tmp/mitmvenv/bin/mitmdump")
    parser.add_argument("--workdir", default="/tmp/wsbench")
    parser.add_argument("command", nargs="?", default="run")
    parser.add_argument("port_file", nargs="?")
    args = parser.parse_args()
    if args.command == "server":
        serve(args.port_file)
        return
    os.makedirs(args.workdir, exist_ok=True)
    port_file = os.path.join(args.workdir, f"server-port-{os.getpid()}")
    server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "server", port_file],
                              start_new_session=True)
    results: dict[str, dict[str, float]] = {}
    rss: dict[str, float] = {}
    scenarios = args.scenarios.split(",")
    try:
        deadline = time.time() + 10
        while not os.path.exists(port_file) and time.time() < deadline:
            time.sleep(0.05)
        server_port = int(open(port_file).read())
        for name in ["direct"] + [p for p in args.proxies.split(",") if p]:
            proc = None
            proxy_port = None
            if name != "direct":
                proxy_port = free_port()
                log = open(os.path.join(args.workdir, f"{name}.log"), "w")
                proc = subprocess.Popen(proxy_command(name, proxy_port, args.workdir, args),
                                        stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
                wait_listen(proxy_port, proc)
            try:
                for scenario in scenarios:
                    best = min(run_scenario(scenario, args, server_port, proxy_port)
                               for _ in range(args.repeat))
                    results.setdefault(scenario, {})[name] = best
                    print(f"  {name:12} {scenario:11} {best:8.3f} s", file=sys.stderr)
                if proc is not None:
                    rss[name] = peak_rss_mib(proc.pid)
            finally:
                if proc is not None:
                    stop(proc)
    finally:
        stop(server)
        if os.path.exists(port_file):
            os.remove(port_file)
    names = list(next(iter(results.values())).keys())
    print(f"\n{'scenario':12}" + "".join(f"{n:>26}" for n in names))
    for scenario in scenarios:
        count, size, _ = scenario_params(scenario, args)
        cells = []
        for n in names:
            seconds = results[scenario][n]
            cells.append(f"{count / seconds:>11,.0f} msg/s {count * size / seconds / 1e6:>7,.0f} MB/s")
        print(f"{scenario:12}" + "".join(f"{c:>26}" for c in cells))
    print(f"{'peak RSS':12}" + "".join(
        f"{(f'{rss[n]:.0f} MiB' if n in rss else '-'):>26}" for n in names))
    if "interceptor" in names and "mitmdump" in names:
        print("\ninterceptor / mitmdump: " + ", ".join(
            f"{s} {results[s]['mitmdump'] / results[s]['interceptor']:.1f}x" for s in scenarios))


if __name__ == "__main__":
    main()
