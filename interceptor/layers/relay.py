# -*- test-case-name: tests.e2e.test_tls -*-
"""
Relays a client connection's bytes to an upstream server and back,
untouched: for TLS connections passed through (C{ignore_hosts}) and
tunnelled bytes that are neither TLS nor HTTP.

Backpressure is the port forwarder's: each side's read gate is the
producer registered on the other side's transport.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from interceptor.connection import ServerConnection
from interceptor.layers.upstream import open_connection
from interceptor.proxy import ReadGate

__all__ = ["RelayLayer"]

_log = Logger(namespace="interceptor.relay")


class _RelayUpstream(Protocol):
    """
    The upstream side of a relay.
    """

    def __init__(self, layer: "RelayLayer") -> None:
        self.layer = layer
        self.gate: Optional[ReadGate] = None

    def connectionMade(self) -> None:
        """
        Pair the two transports and flush what the client already sent.
        """
        self.layer.upstream_connected(self)

    def dataReceived(self, data: bytes) -> None:
        """
        Upstream bytes go to the client.
        """
        self.layer.client_transport.write(data)

    def connectionLost(self, reason: Failure = None) -> None:
        """
        Upstream closed: close the client too.
        """
        self.layer.upstream_lost(reason)


class RelayLayer:
    """
    Relays raw bytes between the client and C{address}.

    @ivar address: The (host, port) the bytes go to.
    @ivar server_conn: The upstream L{ServerConnection}.
    """

    def __init__(self, root: Any, address: tuple[str, int], transport: Any = None) -> None:
        self.root = root
        self.master = root.master
        self.address = address
        self.client_transport = transport if transport is not None else root.transport
        self.server_conn = ServerConnection(address)
        self.upstream: Optional[_RelayUpstream] = None
        self.layer: Any = None
        self._pending: list[bytes] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"<RelayLayer {self.address}>"

    def start(self) -> None:
        """
        Connect upstream (after C{serverconnect}); hold the client meanwhile.
        """
        self.root.gate.hold()
        d = self.master.addons.trigger("serverconnect", self.server_conn)
        d.addCallback(lambda _: open_connection(self.master, self.address, _RelayUpstream(self)))
        d.addErrback(self._connect_failed)

    def _connect_failed(self, failure: Failure) -> None:
        _log.info(
            "{client}: cannot connect to {host}:{port}: {error}",
            client=self.root.client_conn.address,
            host=self.address[0],
            port=self.address[1],
            error=failure.getErrorMessage(),
        )
        self.root.gate.release()
        self.client_transport.loseConnection()

    def upstream_connected(self, upstream: _RelayUpstream) -> None:
        """
        Both sides are up: pair them and relay.
        """
        if self._closed:
            upstream.transport.abortConnection()
            return
        self.upstream = upstream
        self.server_conn.timestamp_start = self.master.reactor.seconds()
        peer = upstream.transport.getPeer()
        self.server_conn.peername = (peer.host, peer.port)
        upstream.gate = ReadGate(upstream.transport)
        upstream.transport.registerProducer(self.root.gate, True)
        self.client_transport.registerProducer(upstream.gate, True)
        pending, self._pending = self._pending, []
        for data in pending:
            upstream.transport.write(data)
        self.root.dataReceived = upstream.transport.write
        self.root.gate.release()

    def data_received(self, data: bytes) -> None:
        """
        Client bytes before the upstream is connected are kept.
        """
        if self.upstream is not None:
            self.upstream.transport.write(data)
        else:
            self._pending.append(data)

    def upstream_lost(self, reason: Failure) -> None:
        """
        The upstream closed: close the client once everything is written.
        """
        self.server_conn.timestamp_end = self.master.reactor.seconds()
        self.master.addons.trigger("serverdisconnect", self.server_conn)
        try:
            self.client_transport.unregisterProducer()
        except Exception:
            pass
        self.client_transport.loseConnection()

    def connection_lost(self, reason: Failure) -> None:
        """
        The client closed: close the upstream.
        """
        self._closed = True
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.loseConnection()
