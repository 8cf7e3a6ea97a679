# -*- test-case-name: tests.e2e.test_events,tests.e2e.test_flowmodel -*-
"""
What the proxy knows about each connection, as addons see it::

    def clientconnect(root_layer):
        print(root_layer.client_conn.address)      # ("127.0.0.1", 53124)

    def serverconnect(server_conn):
        print(server_conn.address)                 # ("example.org", 80)
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

__all__ = ["ClientConnection", "ServerConnection", "Address"]

Address = tuple[str, int]

_ids = itertools.count(1)


class _Connection:
    """
    Fields shared by both sides of a proxied connection.
    """

    __slots__ = (
        "id",
        "address",
        "sockname",
        "tls_established",
        "sni",
        "alpn",
        "tls_version",
        "error",
        "certificate_list",
        "timestamp_start",
        "timestamp_end",
    )

    def __init__(self, address: Optional[Address]) -> None:
        self.id = next(_ids)
        self.address = address
        self.sockname: Optional[Address] = None
        self.tls_established = False
        self.sni: Optional[str] = None
        self.alpn: Optional[bytes] = None
        self.tls_version: Optional[str] = None
        self.error: Optional[str] = None
        self.certificate_list: list[Certificate] = []
        self.timestamp_start: Optional[float] = None
        self.timestamp_end: Optional[float] = None

    @property
    def connected(self) -> bool:
        """
        Whether the connection is open.
        """
        return self.timestamp_start is not None and self.timestamp_end is None


class ClientConnection(_Connection):
    """
    A client connected to the proxy.

    @ivar address: The client's (host, port).
    @ivar sockname: The proxy's (host, port) the client connected to.
    """

    __slots__ = ()

    def __init__(self, address: Address, sockname: Optional[Address] = None) -> None:
        super().__init__(address)
        self.sockname = sockname
        self.timestamp_start = time.time()

    def __repr__(self) -> str:
        return f"<ClientConnection {self.address}>"


class ServerConnection(_Connection):
    """
    A connection from the proxy to an upstream server.

    @ivar address: The (host, port) the proxy connects to; never None once
        C{serverconnect} fires.
    @ivar peername: The resolved (ip, port) once connected.
    @ivar timestamp_tcp_setup: When the TCP connection was established.
    """

    __slots__ = ("peername", "timestamp_tcp_setup")

    def __init__(self, address: Address) -> None:
        super().__init__(address)
        self.peername: Optional[Address] = None
        self.timestamp_tcp_setup: Optional[float] = None

    def __repr__(self) -> str:
        return f"<ServerConnection {self.address}>"
