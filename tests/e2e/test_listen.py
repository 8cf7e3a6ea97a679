# -*- test-case-name: tests.e2e.test_listen -*-
"""
How the proxy listens: the backlog of its listening sockets (hardening
issue, item 15).
"""

from __future__ import annotations

import select
import socket
import time

from twisted.trial import unittest

from interceptor.core.master import DEFAULT_BACKLOG
from interceptor.testing import start_proxy
from tests.e2e.peers import sleep, wait_until


def handshakes_completed(port: int, count: int, within: float = 0.3) -> int:
    """
    Open C{count} TCP connections to 127.0.0.1:C{port} at once, while the
    reactor does not run (so the proxy accepts none of them), and return
    how many the kernel completed: the listening socket's accept queue
    (backlog + 1) bounds that, further SYNs are dropped.  The sockets are
    closed before returning.
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            sockets.append(s)
            s.connect_ex(("127.0.0.1", port))
        poller = select.poll()
        waiting = {s.fileno(): s for s in sockets}
        for fd in waiting:
            poller.register(fd, select.POLLOUT)
        connected = 0
        deadline = time.monotonic() + within
        while waiting and time.monotonic() < deadline:
            for fd, _ in poller.poll(20):
                poller.unregister(fd)
                s = waiting.pop(fd)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    connected += 1
        return connected
    finally:
        for s in sockets:
            s.close()


class BacklogTests(unittest.TestCase):
    """
    A burst of new connections is queued by the kernel up to the backlog.
    """

    timeout = 20

    async def _burst(self, listen: str, count: int) -> int:
        proxy = await start_proxy(self, listen=listen)
        completed = handshakes_completed(proxy.port_number, count)
        # Let the proxy accept (and see closed) what was queued.
        await sleep(0.05)
        factory = proxy.master.factories[0]
        await wait_until(lambda: not factory.connections, 3)
        return completed

    async def test_default_backlog_takes_a_burst(self) -> None:
        """300 connections at once, none accepted yet: all are queued (Twisted's default queued 51)."""
        self.assertGreaterEqual(DEFAULT_BACKLOG, 511)
        completed = await self._burst("tcp:0:interface=127.0.0.1", 300)
        self.assertEqual(completed, 300)

    async def test_endpoint_string_sets_backlog(self) -> None:
        """--listen tcp:0:...:backlog=20: the kernel queues 21 of a burst of 60."""
        completed = await self._burst("tcp:0:interface=127.0.0.1:backlog=20", 60)
        self.assertEqual(completed, 21)

    def test_positional_backlog_kept(self) -> None:
        """A backlog given positionally (tcp:PORT:INTERFACE:BACKLOG) is the one used, not a usage error."""
        from twisted.internet import reactor

        from interceptor.core.master import server_endpoint

        endpoint = server_endpoint(reactor, "tcp:0:127.0.0.1:20")
        self.assertEqual(endpoint._backlog, 20)
        self.assertEqual(server_endpoint(reactor, "tcp:0:interface=127.0.0.1")._backlog, DEFAULT_BACKLOG)
