# -*- test-case-name: tests.e2e.test_http1,tests.e2e.test_tls -*-
"""
Opening connections to upstream servers, plain or TLS, through Twisted's
endpoints::

    d = open_connection(master, ("example.org", 443), protocol, tls=creator)
    d.addCallback(lambda connected: ...)   # fires once TCP is connected

IP literals use the TCP4/TCP6 endpoints directly; names use
C{HostnameEndpoint} (resolution off the reactor thread, happy eyeballs).
The option C{connect_timeout} bounds the attempt.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.protocol import Factory, Protocol

from interceptor.tls import FastTLSFactory

__all__ = ["open_connection"]


class _OneProtocolFactory(Factory):
    """
    Hands one prepared protocol to an endpoint, quietly.
    """

    noisy = False

    def __init__(self, protocol: Protocol) -> None:
        self.protocol_instance = protocol

    def buildProtocol(self, addr: Any) -> Protocol:
        """
        The prepared protocol.
        """
        return self.protocol_instance


def open_connection(
    master: Any, address: tuple[str, int], protocol: Protocol, tls: Optional[Any] = None
) -> Deferred:
    """
    Connect C{protocol} to C{address}, wrapped in TLS made by the
    L{IOpenSSLClientConnectionCreator} C{tls} if given.

    @return: A Deferred firing when the TCP connection is up (the TLS
        handshake, if any, is still running then).
    """
    host, port = address
    reactor, timeout = master.reactor, master.options.connect_timeout
    if isIPAddress(host):
        endpoint: Any = TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
    elif isIPv6Address(host):
        endpoint = TCP6ClientEndpoint(reactor, host, port, timeout=timeout)
    else:
        endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)
    factory: Factory = _OneProtocolFactory(protocol)
    if tls is not None:
        factory = FastTLSFactory(tls, True, factory)
    return endpoint.connect(factory)
