# -*- test-case-name: tests.e2e.test_http1 -*-
"""
The root layer: one L{ProxyProtocol} per client connection, built by the
L{ProxyFactory} a master listens with.

    factory = ProxyFactory(master)
    endpoint.listen(factory)

The root protocol fires C{clientconnect}, asks C{next_layer} which layer
handles the connection's bytes, hands them to that layer, and fires
C{clientdisconnect} when the connection closes.  A C{clientconnect} hook
that sets C{client_conn.error} refuses the client: the connection is
closed before any layer sees it.

The first layer depends on the option C{mode} (L{interceptor.transport.modes}):
regular and upstream mode start with HTTP/1 (CONNECT opens a tunnel);
reverse, transparent and socks5 mode know (or learn, for SOCKS5) where the
connection goes and treat it as a tunnel to there.  A tunnel's layer is
raw TCP when its destination matches C{tcp_hosts}; otherwise its first
bytes decide (L{interceptor.layers.detect.DetectLayer}): TLS, HTTP, or raw
TCP for anything else.  Every choice goes through C{next_layer}, where an
addon may substitute another layer.

The contract between the root and its layers is
L{interceptor.layers.contracts.ILayer}: the root holds one current layer
(C{root.layer}) and hands it every read through one path
(L{ProxyProtocol.dataReceived}); the one switch is
L{ProxyProtocol.switch_layer} (C{next_layer}, then the chosen layer is
started and fed what arrived meanwhile).  A layer that provides
L{interceptor.layers.contracts.IHalfCloseLayer} is told about the client's
half-close; one that provides L{interceptor.layers.contracts.IEagerLayer}
is asked to connect right away.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Iterable, Optional, cast

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IProtocolNegotiationFactory,
    ISystemHandle,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer

from interceptor.layers.contracts import IEagerLayer, IHalfCloseLayer, ILayer
from interceptor.model.connection import ClientConnection
from interceptor.transport import fast
from interceptor.transport.modes import ProxyMode, matches_hosts, original_destination, parse_mode
from interceptor.transport.readgate import ReadGate

if TYPE_CHECKING:
    from interceptor.core.master import Master

__all__ = ["ProxyFactory", "ProxyProtocol", "ReadGate"]

_log = Logger(namespace="interceptor.proxy")


class ProxyProtocol(Protocol):
    """
    The root layer of one client connection.

    @ivar client_conn: The L{ClientConnection} addons see.
    @ivar layer: The L{ILayer} currently handling the connection's bytes
        (None until the first one is chosen).
    @ivar gate: The L{ReadGate} of the client transport.
    @ivar mode: The L{ProxyMode} this connection was accepted in (always
        set: layers read C{root.mode} directly).
    @ivar tunnel_address: Where the connection's bytes go once that is
        known: the CONNECT or SOCKS5 target, the reverse target, the
        original destination in transparent mode; else None.
    @ivar socks_username: The username a SOCKS5 client authenticated with.
    """

    def __init__(self, master: Master, factory: "ProxyFactory") -> None:
        self.master = master
        self.factory = factory
        self.layer: Optional[ILayer] = None
        self.client_conn: Optional[ClientConnection] = None
        self.gate: Optional[ReadGate] = None
        self.closed: Deferred[Any] = Deferred()
        self.tunnel_address: Optional[tuple[str, int]] = None
        self.mode: ProxyMode = parse_mode(master.options.mode)
        self.socks_username: Optional[str] = None
        # Whether the next layer is being chosen: the client's bytes (and
        # its half-close) are kept for it meanwhile.
        self._choosing = True
        self._early: list[bytes] = []
        self._early_eof = False

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
        transport = _tcp_transport(self)
        peer, host = transport.getPeer(), transport.getHost()
        self.client_conn = ClientConnection(
            (peer.host, peer.port), (host.host, host.port)
        )
        gate = self.gate = ReadGate(transport)
        self.factory.connections.add(self)
        d = self.master.addons.trigger("clientconnect", self)
        if d.called:
            d.addCallback(self._connected)
        else:
            gate.hold()
            d.addCallback(self._connected)
            d.addCallback(lambda _: gate.release())

    def _connected(self, _: Any) -> Deferred[None]:
        client_conn = self.client_conn
        assert client_conn is not None  # (connectionMade set it)
        if client_conn.timestamp_end is not None:
            return succeed(None)
        if client_conn.error is not None:
            # A clientconnect hook refused the client (the block addon).
            _tcp_transport(self).loseConnection()
            return succeed(None)
        kind = self.mode.kind
        if kind == "reverse":
            address = self.mode.address
            assert address is not None  # (reverse mode has a target)
            self.start_tunnel(address, b"")
            return succeed(None)
        if kind == "transparent":
            try:
                # (A TCP transport's handle is its socket; AttributeError:
                # a transport without one.)
                handle = cast(ISystemHandle, self.transport).getHandle()
                address = original_destination(cast(socket.socket, handle))
            except (OSError, AttributeError) as e:
                _log.info(
                    "{client}: transparent mode: no original destination ({error}); closing",
                    client=client_conn.address,
                    error=e,
                )
                _tcp_transport(self).loseConnection()
                return succeed(None)
            self.start_tunnel(address, b"")
            return succeed(None)
        if kind == "socks5":
            from interceptor.layers.socks5 import Socks5Layer

            return self.next_layer(Socks5Layer(self))
        from interceptor.layers.http1 import Http1Layer

        return self.next_layer(Http1Layer(self))

    def dataReceived(self, data: bytes) -> None:
        """
        The one path of the client's bytes: to the current layer's
        C{data_received}, or, while the next layer is being chosen, kept
        for it (in order).
        """
        if self._choosing:
            self._early.append(data)
        else:
            # (Not choosing: a layer is in charge.)
            cast(ILayer, self.layer).data_received(data)

    def buffer_input(self) -> None:
        """
        Keep the client's bytes until the next layer is chosen (see
        L{switch_layer}).
        """
        self._choosing = True

    def switch_layer(self, layer: ILayer, early: Iterable[bytes] = ()) -> Deferred[None]:
        """
        Hand the connection to C{layer} (through C{next_layer}), feeding it
        C{early} bytes first, then the bytes that arrive meanwhile.

        This is the one switch: until the chosen layer is in charge, the
        client's bytes (and its half-close) are kept for it.
        """
        self.buffer_input()
        self._early[:0] = [data for data in early if data]
        return self.next_layer(layer)

    def start_tunnel(self, address: tuple[str, int], rest: bytes) -> None:
        """
        A tunnel to C{address} is open (CONNECT, SOCKS5, or the target of
        reverse and transparent mode): raw TCP if C{tcp_hosts} matches it,
        else a L{DetectLayer} looks at its first bytes to choose the layer
        (TLS, HTTP, or raw TCP).
        """
        self.tunnel_address = address
        if matches_hosts(self.master.options.tcp_hosts, address[0], address[1]):
            from interceptor.layers.tcp import TcpLayer

            self.switch_layer(TcpLayer(self, address), [rest])
            return
        from interceptor.layers.detect import DetectLayer

        # The detection is the root's own step, not a choice addons see: the
        # layer it picks goes through next_layer.
        self.buffer_input()
        self._early[:0] = [rest] if rest else []
        self._install(DetectLayer(self, address))

    def next_layer(self, layer: ILayer) -> Deferred[None]:
        """
        Fire C{next_layer(layer)} and switch to the layer the addons chose
        (the one given, the one a hook returned, or the one it put in
        C{layer.layer}); the client's bytes are kept for it meanwhile.
        """
        self.buffer_input()
        layer.layer = None
        d = self.master.addons.trigger("next_layer", layer)

        def switch(chosen: Any) -> None:
            chosen = chosen or layer.layer or layer
            client_conn = self.client_conn
            assert client_conn is not None  # (connectionMade set it)
            if client_conn.timestamp_end is not None:
                return
            self._install(chosen)

        return d.addCallback(switch)

    def _install(self, layer: ILayer) -> None:
        """
        Put C{layer} in charge: start it, then feed it what was kept for it
        (bytes, then a half-close), as long as it stays in charge.
        """
        self.layer = layer
        self._choosing = False
        if IHalfCloseLayer.providedBy(layer):
            # The layer relays half-closes: Twisted tells this protocol
            # about the client's FIN instead of closing the connection.
            alsoProvides(self, IHalfCloseableProtocol)
        layer.start()
        if IEagerLayer.providedBy(layer):
            layer.connect_eagerly()
        early = self._early
        # (A layer may switch again while fed: the rest is then kept for
        # the next one, after the bytes it hands back.)
        while early and not self._choosing:
            self.layer.data_received(early.pop(0))
        if self._early_eof and not self._choosing:
            self._early_eof = False
            self.readConnectionLost()

    def readConnectionLost(self) -> None:
        """
        The client shut its writing half (only once a layer that relays
        half-closes was in charge, see L{_install}): an L{IHalfCloseLayer}
        is told, any other layer's connection is closed.  While the next
        layer is being chosen, the half-close is kept for it.
        """
        if self._choosing:
            self._early_eof = True
            return
        layer = self.layer
        if IHalfCloseLayer.providedBy(layer):
            layer.read_connection_lost()
        else:
            _tcp_transport(self).loseConnection()

    def writeConnectionLost(self) -> None:
        """
        Our writing half toward the client is shut.
        """

    def connectionLost(self, reason: Optional[Failure] = None) -> None:
        """
        Tell the layer, then fire C{clientdisconnect}.
        """
        assert self.client_conn is not None  # (connectionMade set it)
        self.client_conn.timestamp_end = self.master.reactor.seconds()
        self.factory.connections.discard(self)
        if self.layer is not None:
            try:
                self.layer.connection_lost(
                    reason if reason is not None else Failure(ConnectionDone())
                )
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

    def __init__(self, master: Master) -> None:
        self.master = master
        self.connections: set[ProxyProtocol] = set()
        # While this proxy listens with fast_paths=false the fast paths are
        # off (for the process: interceptor.transport.fast).
        self._fast_paths(master.options, {"fast_paths"})
        master.options.subscribe(self._fast_paths)
        self._following_options = True
        # The layers are imported where they are first used; import them
        # now, when the proxy starts listening, rather than while the first
        # client waits (~150 ms).
        import interceptor.layers.detect  # noqa: F401
        import interceptor.layers.http1  # noqa: F401
        import interceptor.layers.socks5  # noqa: F401
        import interceptor.layers.tls  # noqa: F401

    def buildProtocol(self, addr: Any) -> ProxyProtocol:
        """
        A new root layer for a new client.
        """
        return ProxyProtocol(self.master, self)

    def _fast_paths(self, options: Any, updated: set[str]) -> None:
        if "fast_paths" in updated:
            if options.fast_paths:
                fast.release(self)
            else:
                fast.hold_off(self)

    def close_all(self) -> Deferred[list[tuple[bool, Any]]]:
        """
        Abort every open client connection (and through the layers their
        upstream connections).

        @return: A Deferred firing once every C{clientdisconnect} has run.
        """
        if self._following_options:
            self._following_options = False
            self.master.options.unsubscribe(self._fast_paths)
        fast.release(self)
        waiting = []
        for protocol in list(self.connections):
            waiting.append(protocol.closed)
            _tcp_transport(protocol).abortConnection()
        return DeferredList(waiting, consumeErrors=True)


def _tcp_transport(protocol: Protocol) -> ITCPTransport:
    """
    A connected client's transport, as what it is: TCP, or TLS over TCP (a
    C{--listen ssl:} listener).  (Twisted types a protocol's transport as an
    ITransport, or None before it connects.)
    """
    return cast(ITCPTransport, protocol.transport)
