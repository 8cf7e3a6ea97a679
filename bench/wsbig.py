#!/usr/bin/env python3
"""
Peak memory of the proxy for one big WebSocket message.

    .venv/bin/python bench/wsbig.py                        # 100 MiB, HEAD's twistd
    .venv/bin/python bench/wsbig.py --twistd /other/venv/bin/twistd
    .venv/bin/python bench/wsbig.py --set websocket_max_message_size=

A fresh proxy (explicit-proxy mode); a loopback server that accepts the
WebSocket upgrade and reads what comes; a client that upgrades through the
proxy and sends one binary message of --mib MiB in one masked frame.  It
prints what became of the message (relayed whole, or the close code the
proxy answered) and the proxy's VmHWM.  Everything is on 127.0.0.1; the
proxy is stopped by its pid, every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bigbody import start_proxy  # noqa: E402
from wsbench import peak_rss_mib, stop  # noqa: E402

UPGRADE_ANSWER = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")


def serve(listener: socket.socket, got: list[int]) -> None:
    conn, _ = listener.accept()
    conn.settimeout(60)
    head = b""
    while b"\r\n\r\n" not in head:
        head += conn.recv(65536)
    conn.sendall(UPGRADE_ANSWER)
    total = 0
    try:
        while True:
            data = conn.recv(1 << 20)
            if not data:
                break
            total += len(data)
            got[0] = total
    except OSError:
        pass
    conn.close()


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=100)
    ap.add_argument("--twistd", default=os.path.join(os.path.dirname(here), ".venv", "bin", "twistd"))
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    a = ap.parse_args()
    size = a.mib << 20
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    got = [0]
    threading.Thread(target=serve, args=(listener, got), daemon=True).start()
    confdir = tempfile.mkdtemp(prefix="wsbig-")
    proc, proxy_port = start_proxy(a.twistd, confdir, a.set)
    try:
        client = socket.create_connection(("127.0.0.1", proxy_port), timeout=60)
        client.sendall(b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                       b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       b"Sec-WebSocket-Version: 13\r\n\r\n" % (port, port))
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += client.recv(65536)
        # One masked binary frame; a zero key leaves the payload as it is.
        head = struct.pack("!BBQ", 0x82, 0x80 | 127, size) + b"\0\0\0\0"
        t0 = time.monotonic()
        client.sendall(head)
        block = bytes(1 << 20)
        sent = 0
        try:
            while sent < size:
                client.sendall(block)
                sent += len(block)
        except OSError:
            pass
        client.settimeout(3)
        closed = b""
        try:
            closed = client.recv(1024)
        except OSError:
            pass
        # The server has it all, or the proxy refused it: either way, settle.
        deadline = time.monotonic() + 30
        while got[0] < size + 14 and time.monotonic() < deadline and not closed:
            time.sleep(0.1)
        seconds = time.monotonic() - t0
        peak = peak_rss_mib(proc.pid)
        client.close()
    finally:
        stop(proc)
    if closed[:1] == b"\x88" and len(closed) >= 4:
        outcome = f"closed by the proxy with {int.from_bytes(closed[2:4], 'big')}: {closed[4:].decode(errors='replace')!r}"
    else:
        outcome = f"server got {got[0]} bytes"
    print(f"{a.mib} MiB message: {outcome}; {seconds:.1f} s; peak RSS {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
