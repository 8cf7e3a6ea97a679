# -*- test-case-name: tests.e2e.test_http1,tests.e2e.test_tls,tests.e2e.test_http2 -*-
"""
What the proxy's connections to servers use of their Twisted transports,
as typing protocols: L{ServerTransport} (a TCP connection, or TLS over
one) and L{ServerTLSTransport} (the TLS transport besides).  Twisted types
a protocol's C{transport} as an C{ITransport} (or None before the
connection is made); a server connection casts it to what it uses.
"""

from __future__ import annotations

import typing
from typing import Any, Optional

from OpenSSL.crypto import X509
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IProtocol

__all__ = ["ServerTLSTransport", "ServerTransport"]


class ServerTransport(typing.Protocol):
    """
    What a server connection uses of its transport: a Twisted TCP
    connection, or the TLS transport over one (L{ServerTLSTransport}).
    """

    def write(self, data: bytes) -> None: ...

    def loseConnection(self) -> None: ...

    def abortConnection(self) -> None: ...

    def getPeer(self) -> IPv4Address | IPv6Address: ...

    def getHost(self) -> IPv4Address | IPv6Address: ...

    def registerProducer(self, producer: object, streaming: bool) -> None: ...

    def unregisterProducer(self) -> None: ...


class ServerTLSTransport(ServerTransport, typing.Protocol):
    """
    What a server connection uses of its TLS transport (Twisted's
    C{TLSMemoryBIOProtocol}) besides.
    """

    negotiatedProtocol: Optional[bytes]
    transport: Any
    """The TCP connection beneath."""
    wrappedProtocol: IProtocol

    def getPeerCertificate(self) -> Optional[X509]: ...
