# -*- test-case-name: tests.e2e.test_http1 -*-
"""
The root layer: one L{ProxyProtocol} per client connection, built by the
L{ProxyFactory} a master listens with.

    factory = ProxyFactory(master)
    endpoint.listen(factory)

The root protocol fires C{clientconnect}, asks C{next_layer} which layer
handles the connection's bytes, hands them to that layer, and fires
C{clientdisconnect} when the connection closes.

The first layer depends on the option C{mode} (L{interceptor.transport.modes}):
regular and upstream mode start with HTTP/1 (CONNECT opens a tunnel);
reverse, transparent and socks5 mode know (or learn, for SOCKS5) where the
connection goes and treat it as a tunnel to there.  A tunnel's layer is
raw TCP when its destination matches C{tcp_hosts}; otherwise its first
bytes decide: TLS, HTTP, or raw TCP for anything else.  Every choice goes
through C{next_layer}, where an addon may substitute another layer.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IProtocolNegotiationFactory,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer

from interceptor.model.connection import ClientConnection
from interceptor.transport.modes import ProxyMode, matches_hosts, original_destination, parse_mode
from interceptor.transport.readgate import ReadGate

__all__ = ["ProxyFactory", "ProxyProtocol", "ReadGate"]

_log = Logger(namespace="interceptor.proxy")

_HTTP_METHOD = re.compile(rb"^[A-Z]{3,16} ")


class ProxyProtocol(Protocol):
    """
    The root layer of one client connection.

    @ivar client_conn: The L{ClientConnection} addons see.
    @ivar layer: The layer currently handling the connection's bytes.
    @ivar gate: The L{ReadGate} of the client transport.
    @ivar mode: The L{ProxyMode} this connection was accepted in.
    @ivar tunnel_address: Where the connection's bytes go once that is
        known: the CONNECT or SOCKS5 target, the reverse target, the
        original destination in transparent mode; else None.
    @ivar socks_username: The username a SOCKS5 client authenticated with.
    """

    def __init__(self, master: Any, factory: "ProxyFactory") -> None:
        self.master = master
        self.factory = factory
        self.layer: Any = None
        self.client_conn: Optional[ClientConnection] = None
        self.gate: Optional[ReadGate] = None
        self.closed: Deferred = Deferred()
        self.tunnel_address: Optional[tuple[str, int]] = None
        self.mode: ProxyMode = parse_mode(master.options.mode)
        self.socks_username: Optional[str] = None
        self._early: list[bytes] = []
        self._early_eof = False
        self._detect_buffer = b""
        self._detect_timer: Any = None

    @property
    def root(self) -> "ProxyProtocol":
        """
        The root layer itself (layers expose C{root} the same way).
        """
        return self

    def connectionMade(self) -> None:
        """
        Fire C{clientconnect}, then pick the first layer.
        """
        peer, host = self.transport.getPeer(), self.transport.getHost()
        self.client_conn = ClientConnection(
            (peer.host, peer.port), (host.host, host.port)
        )
        self.gate = ReadGate(self.transport)
        self.factory.connections.add(self)
        d = self.master.addons.trigger("clientconnect", self)
        if d.called:
            d.addCallback(self._connected)
        else:
            self.gate.hold()
            d.addCallback(self._connected)
            d.addCallback(lambda _: self.gate.release())

    def _connected(self, _: Any) -> Deferred:
        if self.client_conn.timestamp_end is not None:
            return succeed(None)
        kind = self.mode.kind
        if kind == "reverse":
            self.start_tunnel(self.mode.address, b"")
            return succeed(None)
        if kind == "transparent":
            try:
                address = original_destination(self.transport.getHandle())
            except (OSError, AttributeError) as e:
                _log.info(
                    "{client}: transparent mode: no original destination ({error}); closing",
                    client=self.client_conn.address,
                    error=e,
                )
                self.transport.loseConnection()
                return succeed(None)
            self.start_tunnel(address, b"")
            return succeed(None)
        if kind == "socks5":
            from interceptor.layers.socks5 import Socks5Layer

            return self.next_layer(Socks5Layer(self))
        from interceptor.layers.http1 import Http1Layer

        return self.next_layer(Http1Layer(self))

    def buffer_input(self) -> None:
        """
        Keep the client's bytes until the next layer is chosen.
        """
        self.__dict__.pop("dataReceived", None)

    def switch_layer(self, layer: Any, early: list[bytes] = ()) -> Deferred:
        """
        Hand the connection to C{layer} (through C{next_layer}), feeding it
        C{early} bytes first.
        """
        self.buffer_input()
        self._early[:0] = [data for data in early if data]
        return self.next_layer(layer)

    def start_tunnel(self, address: tuple[str, int], rest: bytes) -> None:
        """
        A tunnel to C{address} is open (CONNECT, SOCKS5, or the target of
        reverse and transparent mode): raw TCP if C{tcp_hosts} matches it,
        else look at its first bytes to choose the layer (TLS, HTTP, or raw
        TCP).
        """
        self.tunnel_address = address
        if matches_hosts(self.master.options.tcp_hosts, address[0], address[1]):
            from interceptor.layers.tcp import TcpLayer

            self.switch_layer(TcpLayer(self, address), [rest])
            return
        self.buffer_input()
        self._early[:0] = [rest] if rest else []
        self.dataReceived = self._detect
        # A client that shuts its writing half before the protocol is known
        # gets raw TCP with its bytes and its FIN (see readConnectionLost).
        alsoProvides(self, IHalfCloseableProtocol)
        # A client that says nothing (the server may speak first): relay as
        # raw TCP after read_timeout.
        self._detect_timer = self.master.reactor.callLater(
            self.master.options.read_timeout, self._detect_timed_out
        )
        early, self._early = self._early, []
        for data in early:
            self._detect(data)

    def _detect_timed_out(self) -> None:
        self._detect_timer = None
        if self.dataReceived == self._detect and self.client_conn.timestamp_end is None:
            self._detect_as_tcp()

    def _detect_as_tcp(self) -> None:
        # Relay what arrived so far as raw TCP.
        from interceptor.layers.tcp import TcpLayer

        if self._detect_timer is not None and self._detect_timer.active():
            self._detect_timer.cancel()
        self._detect_timer = None
        buffered, self._detect_buffer = self._detect_buffer, b""
        self.switch_layer(TcpLayer(self, self.tunnel_address), [buffered])

    def _detect(self, data: bytes) -> None:
        buffered = self._detect_buffer = self._detect_buffer + data
        if len(buffered) < 3 or (len(buffered) < 17 and buffered.isalpha() and buffered.isupper()):
            # Not enough to tell yet (a method name may still be arriving).
            return
        if self._detect_timer is not None and self._detect_timer.active():
            self._detect_timer.cancel()
        self._detect_timer = None
        from interceptor.layers.http1 import Http1Layer
        from interceptor.layers.tcp import TcpLayer
        from interceptor.layers.tls import TlsLayer
        from interceptor.tls.handshake import NotTLS, looks_like_tls, parse_client_hello

        host, port = self.tunnel_address
        reverse = self.mode.kind == "reverse"
        if looks_like_tls(buffered):
            try:
                hello = parse_client_hello(buffered)
            except NotTLS:
                hello = None
            sni = hello.sni if hello is not None else None
            if sni and matches_hosts(self.master.options.tcp_hosts, sni, port):
                layer: Any = TcpLayer(self, self.tunnel_address)
            else:
                layer = TlsLayer(self, self.tunnel_address)
        elif reverse:
            layer = Http1Layer(self, target=(self.mode.scheme, host, port))
        elif _HTTP_METHOD.match(buffered):
            layer = Http1Layer(self, target=("http", host, port))
        else:
            layer = TcpLayer(self, self.tunnel_address)
        self._detect_buffer = b""
        self.switch_layer(layer, [buffered])

    def next_layer(self, layer: Any) -> Deferred:
        """
        Fire C{next_layer(layer)} and switch to the layer the addons chose
        (the one given, the one a hook returned, or the one it put in
        C{layer.layer}).
        """
        layer.layer = None
        d = self.master.addons.trigger("next_layer", layer)

        def switch(chosen: Any) -> None:
            chosen = chosen or layer.layer or layer
            if self.client_conn.timestamp_end is not None:
                return
            self.layer = chosen
            self.dataReceived = chosen.data_received
            if getattr(chosen, "half_close", False):
                # The layer relays half-closes: Twisted tells this protocol
                # about the client's FIN instead of closing the connection.
                alsoProvides(self, IHalfCloseableProtocol)
            chosen.start()
            self._connect_eagerly(chosen)
            early, self._early = self._early, []
            for data in early:
                if self.layer is chosen:
                    chosen.data_received(data)
            if self._early_eof and self.layer is chosen:
                self._early_eof = False
                self.readConnectionLost()

        return d.addCallback(switch)

    def _connect_eagerly(self, layer: Any) -> None:
        """
        With C{connection_strategy=eager}, an HTTP/1 layer whose server is
        known (reverse, transparent, socks5 mode, CONNECT tunnels) connects
        right away, so C{serverconnect} fires before the first request.
        """
        target = getattr(layer, "target", None)
        if (
            target is None
            or self.master.options.connection_strategy != "eager"
            or getattr(layer, "upstream", True) is not None
            or not hasattr(layer, "get_upstream")
            or getattr(layer, "transport", None) is not self.transport
        ):
            return
        scheme, host, port = target

        def failed(failure: Failure) -> None:
            # The first request tries again and reports the failure.
            _log.info("{client}: eager connection to {host}:{port} failed: {error}",
                      client=self.client_conn.address, host=host, port=port,
                      error=failure.getErrorMessage())

        layer.get_upstream((host, port), scheme).addErrback(failed)

    def dataReceived(self, data: bytes) -> None:
        """
        Bytes before any layer was chosen are kept for it.
        """
        self._early.append(data)

    def readConnectionLost(self) -> None:
        """
        The client shut its writing half (only for layers that relay
        half-closes, see L{next_layer}).
        """
        if self.dataReceived == self._detect:
            self._early_eof = True
            self._detect_as_tcp()
            return
        layer = self.layer
        if self._early_eof:
            return  # (told once the next layer is in charge)
        if layer is not None and hasattr(layer, "read_connection_lost"):
            layer.read_connection_lost()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """
        Our writing half toward the client is shut.
        """

    def connectionLost(self, reason: Failure = None) -> None:
        """
        Tell the layer, then fire C{clientdisconnect}.
        """
        self.client_conn.timestamp_end = self.master.reactor.seconds()
        self.factory.connections.discard(self)
        if self._detect_timer is not None and self._detect_timer.active():
            self._detect_timer.cancel()
        if self.layer is not None:
            try:
                self.layer.connection_lost(reason)
            except Exception:
                _log.failure("Error while closing a client connection")
        d = self.master.addons.trigger("clientdisconnect", self)
        d.chainDeferred(self.closed)

    def __repr__(self) -> str:
        return f"<ProxyProtocol {self.client_conn!r} {type(self.layer).__name__}>"


@implementer(IProtocolNegotiationFactory)
class ProxyFactory(Factory):
    """
    Builds a L{ProxyProtocol} for each client of one master, and keeps track
    of them so the master can close them all.
    """

    noisy = False

    def acceptableProtocols(self) -> list[bytes]:
        """
        What a TLS listener (C{--listen ssl:...}) answers to ALPN: the proxy
        speaks HTTP/1.1 there.
        """
        return [b"http/1.1"]

    def __init__(self, master: Any) -> None:
        self.master = master
        self.connections: set[ProxyProtocol] = set()
        # The layers are imported where they are first used; import them
        # now, when the proxy starts listening, rather than while the first
        # client waits (~150 ms).
        import interceptor.layers.http1  # noqa: F401
        import interceptor.layers.socks5  # noqa: F401
        import interceptor.layers.tls  # noqa: F401

    def buildProtocol(self, addr: Any) -> ProxyProtocol:
        """
        A new root layer for a new client.
        """
        return ProxyProtocol(self.master, self)

    def close_all(self) -> Deferred:
        """
        Abort every open client connection (and through the layers their
        upstream connections).

        @return: A Deferred firing once every C{clientdisconnect} has run.
        """
        waiting = []
        for protocol in list(self.connections):
            waiting.append(protocol.closed)
            protocol.transport.abortConnection()
        return DeferredList(waiting, consumeErrors=True)
