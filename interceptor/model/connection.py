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

__all__ = ["ClientConnection", "ServerConnection", "Address", "Connected"]

Address = tuple[str, int]

_ids = itertools.count(1)


class Connected(int):
    """
    Whether a connection is open, as both mitmproxy versions ask it: a
    value that is true or false (mitmproxy 7 and later, C{if
    conn.connected:}, C{conn.connected == True}) and also callable
    (mitmproxy 2.x's C{conn.connected()}), the call giving the same answer
    as a bool.  It is an int (1 or 0), not a bool, so C{conn.connected is
    True} does not hold: compare with C{==} or use it as a condition.
    """

    __slots__ = ()

    def __call__(self) -> bool:
        return bool(self)

    def __repr__(self) -> str:
        return repr(bool(self))


_OPEN = Connected(1)
_CLOSED = Connected(0)


class _Connection:
    """
    Fields shared by both sides of a proxied connection.

    @ivar tls_established: Whether TLS is up on it (C{ssl_established} is
        mitmproxy 2.x's name).
    @ivar timestamp_tls_setup: When its TLS handshake completed, or None
        (C{timestamp_ssl_setup} is mitmproxy 2.x's name).
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
        "timestamp_tls_setup",
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
        self.timestamp_tls_setup: Optional[float] = None

    @property
    def connected(self) -> Connected:
        """
        Whether the connection is open: true or false, and callable as
        mitmproxy 2.x's C{connected()} (see L{Connected}).
        """
        return _OPEN if self.timestamp_start is not None and self.timestamp_end is None else _CLOSED

    @property
    def ssl_established(self) -> bool:
        """
        mitmproxy 2.x's name for C{tls_established}.
        """
        return self.tls_established

    @ssl_established.setter
    def ssl_established(self, value: bool) -> None:
        self.tls_established = value

    @property
    def timestamp_ssl_setup(self) -> Optional[float]:
        """
        mitmproxy 2.x's name for C{timestamp_tls_setup}.
        """
        return self.timestamp_tls_setup

    @timestamp_ssl_setup.setter
    def timestamp_ssl_setup(self, value: Optional[float]) -> None:
        self.timestamp_tls_setup = value


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

    @property
    def ip_address(self) -> Optional[Address]:
        """
        mitmproxy 2.x's name for C{peername}: the resolved (ip, port) once
        connected, else None.
        """
        return self.peername

    @ip_address.setter
    def ip_address(self, value: Optional[Address]) -> None:
        self.peername = value

    def __repr__(self) -> str:
        return f"<ServerConnection {self.address}>"
