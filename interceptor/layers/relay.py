# -*- test-case-name: tests.e2e.test_tcp -*-
"""
Relays a client connection's bytes to an upstream server and back,
untouched and without events: for TLS connections passed through
(C{ignore_hosts}, C{allow_hosts}), or wherever an addon's C{next_layer}
wants a connection left alone::

    from interceptor.layers.relay import RelayLayer

    def next_layer(layer):
        # skip TLS interception for one host
        if type(layer).__name__ == "TlsLayer" and layer.address[0] == "bank.example":
            return RelayLayer(layer.root, layer.address)

It is L{interceptor.layers.tcp.TcpLayer} without the C{tcp_*} events (and
without recording messages): half-closes are honoured, backpressure is the
port forwarder's (each side's read gate is the producer registered on the
other side's transport), C{serverconnect}/C{serverdisconnect} still fire.
"""

from __future__ import annotations

from zope.interface import implementer

from interceptor.layers.contracts import IHalfCloseLayer
from interceptor.layers.tcp import TcpLayer

__all__ = ["RelayLayer"]


@implementer(IHalfCloseLayer)
class RelayLayer(TcpLayer):
    """
    Relays raw bytes between the client and C{address}, firing no TCP
    events (it relays the client's half-close, as L{TcpLayer} does).

    @ivar address: The (host, port) the bytes go to.
    @ivar server_conn: The upstream L{ServerConnection}.
    """

    emit_events = False

    def start(self) -> None:
        """
        Connect upstream now, whatever C{connection_strategy} says: a
        passed-through TLS connection needs the server's answer to the
        ClientHello already buffered.
        """
        self.connect()
