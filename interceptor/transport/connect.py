# -*- test-case-name: tests.e2e.test_http1,tests.e2e.test_tls -*-
"""
Opening connections to upstream servers, plain or TLS, through Twisted's
endpoints::

    d = open_connection(master, ("example.org", 443), protocol, tls=creator)
    d.addCallback(lambda connected: ...)   # fires once TCP is connected

IP literals use the TCP4/TCP6 endpoints directly; names use
C{HostnameEndpoint} (resolution off the reactor thread, happy eyeballs).
The option C{connect_timeout} bounds the attempt.  In upstream mode
(C{mode=upstream:http://HOST:PORT}) every connection but one to the
upstream proxy itself is a CONNECT tunnel through that proxy.  A connection
that would reach one of the proxy's own listening addresses (directly, or
the upstream proxy) fails at once with a L{ProxyLoopError}
(L{interceptor.transport.loops}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
)
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol

from interceptor.transport.modes import (
    ConnectTunnelEndpoint,
    _OneProtocolFactory,
    parse_mode,
    proxy_authorization,
)
from interceptor.transport.fast.fasttls import tls_factory
from interceptor.transport.loops import ProxyLoopError, loop_message, own_address

if TYPE_CHECKING:
    from interceptor.core.master import IProxyReactor, Master

__all__ = ["open_connection"]


def _endpoint(
    reactor: IProxyReactor, address: tuple[str, int], timeout: float
) -> IStreamClientEndpoint:
    host, port = address
    if isIPAddress(host):
        return TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
    if isIPv6Address(host):
        return TCP6ClientEndpoint(reactor, host, port, timeout=timeout)
    return HostnameEndpoint(reactor, host, port, timeout=timeout)


def open_connection(
    master: Master,
    address: tuple[str, int],
    protocol: Protocol,
    tls: Optional[IOpenSSLClientConnectionCreator] = None,
) -> Deferred[IProtocol]:
    """
    Connect C{protocol} to C{address}, wrapped in TLS made by the
    L{IOpenSSLClientConnectionCreator} C{tls} if given.

    @return: A Deferred firing when the TCP connection is up (the TLS
        handshake, if any, is still running then), or failing with a
        L{ProxyLoopError} when it would go to this proxy itself.
    """
    reactor, timeout = master.reactor, master.options.connect_timeout
    mode = parse_mode(master.options.mode)
    upstream = mode.address if mode.kind == "upstream" else None
    host, port = upstream if upstream is not None else address
    if own_address(master.ports, host, port):
        # Failed on the next turn of the reactor, as a refused connection
        # is: callers set up their handling after this returns.
        refused: Deferred[IProtocol] = Deferred()
        error = Failure(ProxyLoopError(loop_message(host, port)))
        reactor.callLater(0, refused.errback, error)
        return refused
    endpoint: IStreamClientEndpoint
    if upstream is not None and tuple(address) != upstream:
        # Upstream mode: everything but the plain-HTTP requests sent to the
        # upstream proxy itself goes through a CONNECT tunnel.
        endpoint = ConnectTunnelEndpoint(
            reactor,
            _endpoint(reactor, upstream, timeout),
            address,
            proxy_authorization(master.options.upstream_auth),
            timeout,
            master.clock,
        )
    else:
        endpoint = _endpoint(reactor, address, timeout)
    factory: IProtocolFactory = _OneProtocolFactory(protocol)
    if tls is not None:
        factory = tls_factory(tls, True, factory)
    return endpoint.connect(factory)
