# -*- test-case-name: tests.e2e.test_tcp -*-
"""
The flow model of raw TCP connections, with mitmproxy's names::

    def tcp_message(flow):
        message = flow.messages[-1]
        if message.from_client:
            message.content = message.content.replace(b"foo", b"barbaz")
        elif b"secret" in message.content:
            message.kill()                     # the client never sees it

A L{TCPFlow} is made by L{interceptor.layers.tcp.TcpLayer} for each
connection relayed as raw TCP (C{tcp_hosts}, or tunnelled bytes that are
neither TLS nor HTTP).  Each chunk of bytes read from either side becomes a
L{TCPMessage}; what the addons leave in C{content} is what the other side
receives.
"""

from __future__ import annotations

import time
from typing import Optional

from interceptor.model.connection import ClientConnection, ServerConnection
from interceptor.model.flow import Flow

__all__ = ["TCPFlow", "TCPMessage"]


class TCPMessage:
    """
    One chunk of bytes relayed by a TCP flow.

    @ivar from_client: True for bytes the client sent, False for the server's.
    @ivar content: The bytes; changing them changes what the peer receives
        (the length may change too).
    @ivar timestamp: When the proxy read them.
    @ivar killed: Whether L{kill} was called: the chunk is not forwarded.
    """

    __slots__ = ("from_client", "content", "timestamp", "killed")

    def __init__(self, from_client: bool, content: bytes, timestamp: Optional[float] = None) -> None:
        self.from_client = from_client
        self.content = content
        self.timestamp = time.time() if timestamp is None else timestamp
        self.killed = False

    def kill(self) -> None:
        """
        Drop this chunk: the peer does not receive it.  The connection stays
        open (use C{flow.kill()} to close it).
        """
        self.killed = True

    @property
    def text(self) -> str:
        """
        The content decoded as UTF-8 (invalid bytes replaced).
        """
        return self.content.decode("utf-8", "replace")

    def __repr__(self) -> str:
        side = "client" if self.from_client else "server"
        return f"<TCPMessage from {side} {len(self.content)} bytes>"


class TCPFlow(Flow):
    """
    A connection relayed as raw TCP.

    @ivar messages: The L{TCPMessage}s relayed so far, oldest first; the
        newest, C{messages[-1]}, is the one a C{tcp_message} hook is called
        for.  Messages are recorded only while some addon handles a TCP
        event (a relay nobody watches keeps no history, so its memory stays
        flat).
    @ivar live: Whether the connection is still open.
    """

    type = "tcp"

    def __init__(
        self, client_conn: ClientConnection, server_conn: Optional[ServerConnection] = None
    ) -> None:
        super().__init__(client_conn, server_conn)
        self.messages: list[TCPMessage] = []
        self.live = True

    def __repr__(self) -> str:
        address = self.server_conn.address if self.server_conn is not None else None
        return f"<TCPFlow {address} {len(self.messages)} messages>"
