# -*- test-case-name: tests.e2e.test_loops -*-
"""
Proxy loops: a connection the proxy would open to one of its own listening
addresses (C{--mode reverse:http://127.0.0.1:OWN_PORT}, an upstream proxy
that is the proxy itself) comes straight back to it as a new client, which
does the same, and so on: one request used to become 14,000 file
descriptors in 5 seconds.

    own_address(master.ports, "127.0.0.1", 8080)   # True while listening there
    own_address(master.ports, "localhost", 8080)   # True too

L{interceptor.transport.connect.open_connection} refuses such a connection
with a L{ProxyLoopError}; the C{loopdetect} addon answers the HTTP request
with 508 before that, and catches loops through other proxies with its
C{Via} entry.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, Optional

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IListeningPort

__all__ = ["ProxyLoopError", "own_address", "loop_message"]

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_WILDCARDS = ("", "0.0.0.0", "::")


class ProxyLoopError(ConnectionError):
    """
    The proxy was about to connect to itself.
    """


def _is_localhost(host: str) -> bool:
    return host.lower().rstrip(".") == "localhost"


def _ip(host: str) -> Optional[_IP]:
    """
    C{host} as an IP address (an IPv4-mapped IPv6 address as IPv4; a zone
    index dropped), or None (a name).
    """
    try:
        ip = ipaddress.ip_address(host.strip("[]").partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def own_address(ports: Iterable[IListeningPort], host: str, port: int) -> bool:
    """
    Whether a connection to C{host}:C{port} would reach one of C{ports}:
    the same IP address and port; C{localhost} and the port of one
    listening on a loopback address; a loopback address and the port of
    one listening on every address.  Other names are not resolved (the
    C{Via} check of the C{loopdetect} addon still sees an HTTP request that
    comes back).
    """
    localhost = _is_localhost(host)
    target = _ip(host)
    if target is None and not localhost:
        return False
    for listening in ports:
        address = listening.getHost()
        if not isinstance(address, (IPv4Address, IPv6Address)) or address.port != port:
            continue
        if address.host in _WILDCARDS:
            if localhost or (target is not None and target.is_loopback):
                return True
            continue
        listen = _ip(address.host)
        if listen is None:
            continue
        if listen == target or (localhost and listen.is_loopback):
            return True
    return False


def loop_message(host: str, port: int) -> str:
    """
    What a refused connection says.
    """
    return f"{host}:{port} is this proxy's own address (a proxy loop)"
