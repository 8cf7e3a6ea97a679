# -*- test-case-name: tests.e2e.test_modes -*-
"""
Proxy modes: parsing the C{mode} option, and the connection helpers the
modes need.

    mode = parse_mode("reverse:https://example.org")
    mode.kind, mode.scheme, mode.address     # "reverse", "https", ("example.org", 443)
    parse_mode("upstream:http://127.0.0.1:3128").address   # ("127.0.0.1", 3128)
    parse_mode("socks5").kind                               # "socks5"

The modes, as mitmproxy spells them:

    - C{regular}: clients are configured with the proxy (absolute-form
      requests, CONNECT for HTTPS).
    - C{upstream:http://HOST:PORT}: as regular, but every request goes
      through another HTTP proxy: absolute-form for plain HTTP, CONNECT
      through it for anything else (TLS, raw TCP); C{upstream_auth}
      (C{user:pass}) is sent to it as C{Proxy-Authorization}.
    - C{reverse:http[s]://HOST[:PORT]}: the proxy acts as that server;
      clients send origin-form requests, plain or TLS (a certificate is
      minted for them).
    - C{transparent}: connections redirected to the proxy (iptables
      REDIRECT/TPROXY on Linux) go where they were headed
      (C{SO_ORIGINAL_DST}).
    - C{socks5}: a SOCKS5 server (CONNECT; no authentication, or
      username/password).

L{ConnectTunnelEndpoint} is the client endpoint of upstream mode: it opens
a CONNECT tunnel through the upstream proxy and then connects the caller's
protocol (with TLS, if it is wrapped in TLS) to the far end through it.
"""

from __future__ import annotations

import base64
import functools
import re
import socket
import struct
import typing
from typing import Optional, Sequence, cast

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = [
    "MODE_KINDS",
    "ProxyMode",
    "parse_mode",
    "matches_hosts",
    "original_destination",
    "ConnectTunnelEndpoint",
    "UpstreamProxyError",
    "proxy_authorization",
]

MODE_KINDS = ("regular", "upstream", "reverse", "transparent", "socks5")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_URL = re.compile(r"^(?P<scheme>[a-z]+)://(?P<host>\[[^\]]+\]|[^:/\[\]]+)(?::(?P<port>\d+))?/?$", re.I)


@attrs.frozen
class ProxyMode:
    """
    A parsed C{mode} option.

    @ivar kind: One of L{MODE_KINDS}.
    @ivar scheme: For upstream and reverse: C{"http"} or C{"https"}.
    @ivar address: For upstream and reverse: the (host, port) of the
        upstream proxy or of the server the proxy stands for.
    @ivar spec: The option text as given.
    """

    kind: str
    scheme: Optional[str] = None
    address: Optional[tuple[str, int]] = None
    spec: str = ""

    @property
    def authority(self) -> str:
        """
        C{host} or C{host:port} (the port only when it is not the scheme's
        default), as a Host header names the reverse target.
        """
        assert self.address is not None, "only upstream and reverse modes have an address"
        host, port = self.address
        if ":" in host:
            host = f"[{host}]"
        if port == _DEFAULT_PORTS.get(self.scheme or ""):
            return host
        return f"{host}:{port}"


@functools.lru_cache(maxsize=32)
def parse_mode(spec: str) -> ProxyMode:
    """
    Parse a C{mode} option value.

    @raise ValueError: The text is not a mode, saying what is expected.
    """
    text = spec.strip()
    kind, sep, rest = text.partition(":")
    kind = kind.lower()
    if kind not in MODE_KINDS:
        raise ValueError(
            f"invalid mode {spec!r}: expected regular, transparent, socks5, "
            "upstream:http://HOST:PORT or reverse:http[s]://HOST[:PORT]"
        )
    if kind in ("regular", "transparent", "socks5"):
        if sep:
            raise ValueError(f"invalid mode {spec!r}: {kind} takes no argument")
        return ProxyMode(kind, spec=text)
    if not rest:
        raise ValueError(f"invalid mode {spec!r}: {kind} needs a URL, e.g. {kind}:http://127.0.0.1:8081")
    match = _URL.match(rest)
    if match is None:
        raise ValueError(f"invalid mode {spec!r}: {rest!r} is not a URL like http://host:port")
    scheme = match["scheme"].lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"invalid mode {spec!r}: the scheme must be http or https")
    host = match["host"].strip("[]")
    port = int(match["port"]) if match["port"] else _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise ValueError(f"invalid mode {spec!r}: port {port} is out of range")
    if kind == "upstream" and scheme != "http":
        raise ValueError(f"invalid mode {spec!r}: the upstream proxy must be an http:// URL")
    return ProxyMode(kind, scheme, (host, port), spec=text)


def matches_hosts(patterns: Optional[Sequence[str]], host: str, port: int, sni: Optional[str] = None) -> bool:
    """
    Whether C{host:port} (or C{sni:port}) matches one of the regexes in
    C{patterns}, as mitmproxy matches C{tcp_hosts} and C{ignore_hosts}.
    """
    if not patterns:
        return False
    targets = [f"{host}:{port}"]
    if sni and sni != host:
        targets.append(f"{sni}:{port}")
    return any(re.search(p, t, re.IGNORECASE) for p in patterns for t in targets)


# Linux netfilter: getsockopt(SOL_IP, SO_ORIGINAL_DST) gives a sockaddr_in;
# IP6T_SO_ORIGINAL_DST (same number, SOL_IPV6) a sockaddr_in6.
_SO_ORIGINAL_DST = 80


def original_destination(sock: socket.socket) -> tuple[str, int]:
    """
    Where a connection redirected to the proxy (iptables REDIRECT) was
    headed, from C{SO_ORIGINAL_DST}.

    @raise OSError: The socket was not redirected (or this is not Linux).
    """
    if sock.family == socket.AF_INET6:
        raw = sock.getsockopt(socket.IPPROTO_IPV6, _SO_ORIGINAL_DST, 28)
        port = struct.unpack_from("!H", raw, 2)[0]
        host = socket.inet_ntop(socket.AF_INET6, raw[8:24])
        return host, port
    raw = sock.getsockopt(socket.SOL_IP, _SO_ORIGINAL_DST, 16)
    port = struct.unpack_from("!H", raw, 2)[0]
    host = socket.inet_ntoa(raw[4:8])
    return host, port


def proxy_authorization(upstream_auth: Optional[str]) -> Optional[bytes]:
    """
    The C{Proxy-Authorization} value for C{upstream_auth} (C{user:pass}),
    or None when it is unset.
    """
    if not upstream_auth:
        return None
    return b"Basic " + base64.b64encode(upstream_auth.encode("utf-8"))


class UpstreamProxyError(ConnectionError):
    """
    The upstream proxy refused (or botched) a CONNECT.
    """


class _ProxyConnection(typing.Protocol):
    """
    What a tunnel uses of its TCP connection to the upstream proxy (made by
    a client endpoint: a Twisted C{tcp.Client}).
    """

    protocol: IProtocol

    def write(self, data: bytes) -> None: ...

    def abortConnection(self) -> None: ...

    def getPeer(self) -> IAddress: ...


class _TunnelOpener(Protocol):
    """
    Sends CONNECT to the upstream proxy, waits for its answer, then hands
    the transport to the caller's protocol.
    """

    def __init__(
        self,
        endpoint: ConnectTunnelEndpoint,
        factory: IProtocolFactory,
        done: Deferred[IProtocol],
    ) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.done: Optional[Deferred[IProtocol]] = done
        self.buffer = b""
        self.timer: Optional[IDelayedCall] = None

    @property
    def _connection(self) -> _ProxyConnection:
        # (Twisted types a protocol's transport as an ITransport, or None
        # before the connection is made.)
        return cast(_ProxyConnection, self.transport)

    def connectionMade(self) -> None:
        """
        Ask for the tunnel.
        """
        host, port = self.endpoint.address
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n".encode()
        if self.endpoint.authorization is not None:
            head += b"Proxy-Authorization: " + self.endpoint.authorization + b"\r\n"
        self._connection.write(head + b"\r\n")
        self.timer = self.endpoint.clock.callLater(self.endpoint.timeout, self._timed_out)

    def _timed_out(self) -> None:
        self.timer = None
        self._fail(UpstreamProxyError(
            f"the upstream proxy did not answer CONNECT within {self.endpoint.timeout:g} s"
        ))

    def _fail(self, error: Exception) -> None:
        done, self.done = self.done, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._connection.abortConnection()
        if done is not None:
            done.errback(Failure(error))

    def dataReceived(self, data: bytes) -> None:
        """
        Read the proxy's answer to CONNECT.
        """
        if self.done is None:
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > 65536:
                self._fail(UpstreamProxyError("the upstream proxy's answer to CONNECT is too long"))
            return
        head, rest = self.buffer[:end], self.buffer[end + 4:]
        status_line = head.split(b"\r\n", 1)[0]
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            self._fail(UpstreamProxyError(f"the upstream proxy sent {status_line[:100]!r}"))
            return
        status = int(parts[1])
        if not 200 <= status < 300:
            host, port = self.endpoint.address
            self._fail(UpstreamProxyError(
                f"the upstream proxy refused CONNECT {host}:{port}: "
                f"{status_line.decode('latin-1')[:200]}"
            ))
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        done, self.done = self.done, None
        transport = self._connection
        protocol = self.factory.buildProtocol(transport.getPeer())
        if protocol is None:
            transport.abortConnection()
            done.errback(Failure(ConnectionError("the protocol factory refused the connection")))
            return
        transport.protocol = protocol
        protocol.makeConnection(transport)
        done.callback(protocol)
        if rest:
            protocol.dataReceived(rest)

    def connectionLost(self, reason: Optional[Failure] = None) -> None:
        """
        The proxy closed before the tunnel was up.
        """
        if self.done is not None:
            detail = reason.getErrorMessage() if reason is not None else "closed"
            self._fail(UpstreamProxyError(
                f"the upstream proxy closed the connection before answering CONNECT ({detail})"
            ))


class _OneProtocolFactory(Factory):
    """
    Hands one prepared protocol to an endpoint, quietly (also used by
    L{interceptor.transport.connect}).
    """

    noisy = False

    def __init__(self, protocol: Protocol) -> None:
        self.protocol_instance = protocol

    def buildProtocol(self, addr: Optional[IAddress]) -> Protocol:
        """
        The prepared protocol.
        """
        return self.protocol_instance


@implementer(IStreamClientEndpoint)
class ConnectTunnelEndpoint:
    """
    A client endpoint reaching C{address} through an HTTP proxy's CONNECT.

    @ivar proxy: The endpoint of the upstream proxy itself.
    @ivar address: The (host, port) to tunnel to.
    @ivar authorization: The C{Proxy-Authorization} value, or None.
    @ivar clock: What times the answer to CONNECT (C{timeout} seconds): the
        reactor unless given.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        proxy: IStreamClientEndpoint,
        address: tuple[str, int],
        authorization: Optional[bytes] = None,
        timeout: float = 10.0,
        clock: Optional[IReactorTime] = None,
    ) -> None:
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.proxy = proxy
        self.address = address
        self.authorization = authorization
        self.timeout = timeout

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Connect to the proxy, open the tunnel, then connect a protocol from
        C{protocolFactory} through it.

        @return: A Deferred firing with that protocol once the tunnel is up.
        """
        done: Deferred[IProtocol] = Deferred()
        opener = _TunnelOpener(self, protocolFactory, done)
        connecting = self.proxy.connect(_OneProtocolFactory(opener))

        def not_connected(failure: Failure) -> None:
            if opener.done is not None:
                opener.done = None
                done.errback(failure)

        connecting.addErrback(not_connected)
        return done
