# -*- test-case-name: tests.test_layer_contracts -*-
"""
Protocol detection: the root's first layer of a tunnel whose destination
does not match C{tcp_hosts} (after CONNECT, SOCKS5, and in reverse and
transparent mode).

L{DetectLayer} reads the tunnel's first bytes and switches the root
(L{interceptor.proxy.ProxyProtocol.switch_layer}, so through C{next_layer})
to the layer they call for, handing it the bytes read so far:

- a TLS ClientHello: L{interceptor.layers.tls.TlsLayer}, or
  L{interceptor.layers.tcp.TcpLayer} when its SNI matches C{tcp_hosts};
- the HTTP/2 connection preface (h2c with prior knowledge):
  L{interceptor.layers.http2.Http2Layer}, to the reverse target in reverse
  mode, else to the tunnel's address over plain HTTP;
- in reverse mode, anything else: L{interceptor.layers.http1.Http1Layer}
  to the reverse target;
- an HTTP method and a space: L{interceptor.layers.http1.Http1Layer} to
  the tunnel's address;
- anything else: L{interceptor.layers.tcp.TcpLayer}.

A client that says nothing for C{read_timeout} (the server may speak
first), or shuts its writing half before the protocol is known, gets raw
TCP with what it sent (and then its half-close).

The root puts this layer in charge itself, without C{next_layer}: it is a
step of the root, not a choice addons make.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from twisted.internet.interfaces import IDelayedCall
from zope.interface import implementer

from interceptor.layers.contracts import IHalfCloseLayer, ILayer
from interceptor.layers.http1 import Http1Layer
from interceptor.layers.http2 import PREFACE, Http2Layer
from interceptor.layers.tcp import TcpLayer
from interceptor.layers.tls import TlsLayer
from interceptor.transport.modes import matches_hosts
from interceptor.tls.handshake import NotTLS, looks_like_tls, parse_client_hello

__all__ = ["DetectLayer"]

_HTTP_METHOD = re.compile(rb"^[A-Z]{3,16} ")


@implementer(IHalfCloseLayer)
class DetectLayer:
    """
    Chooses a tunnel's layer from its first bytes.

    @ivar root: The L{interceptor.proxy.ProxyProtocol}.
    @ivar address: The (host, port) the tunnel goes to.
    """

    def __init__(self, root: Any, address: tuple[str, int]) -> None:
        self.root = root
        self.master = root.master
        self.address = address
        self.layer: Optional[ILayer] = None
        self._buffer = b""
        self._timer: Optional[IDelayedCall] = None

    def __repr__(self) -> str:
        return f"<DetectLayer {self.address}>"

    def start(self) -> None:
        """
        Wait for the first bytes, for at most C{read_timeout} seconds.
        """
        self._timer = self.master.clock.callLater(
            self.master.options.read_timeout, self._timed_out
        )

    def _stop_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _timed_out(self) -> None:
        # The client said nothing: relay as raw TCP (the server may speak first).
        self._timer = None
        self._choose(self._tcp_layer())

    def data_received(self, data: bytes) -> None:
        """
        Collect bytes until they tell the protocol, then switch.
        """
        buffered = self._buffer = self._buffer + data
        if (
            len(buffered) < 3
            or (len(buffered) < 17 and buffered.isalpha() and buffered.isupper())
            or (len(buffered) < len(PREFACE) and PREFACE.startswith(buffered))
        ):
            # Not enough to tell yet (a method name or the HTTP/2 preface
            # may still be arriving).
            return
        self._choose(self._layer_for(buffered))

    def _layer_for(self, buffered: bytes) -> ILayer:
        root = self.root
        host, port = self.address
        if looks_like_tls(buffered):
            try:
                hello = parse_client_hello(buffered)
            except NotTLS:
                hello = None
            sni = hello.sni if hello is not None else None
            if sni and matches_hosts(self.master.options.tcp_hosts, sni, port):
                return self._tcp_layer()
            return TlsLayer(root, self.address)
        scheme = root.mode.scheme if root.mode.kind == "reverse" else "http"
        if buffered.startswith(PREFACE):
            return Http2Layer(root, target=(scheme, host, port))
        if root.mode.kind == "reverse":
            return Http1Layer(root, target=(scheme, host, port))
        if _HTTP_METHOD.match(buffered):
            return Http1Layer(root, target=("http", host, port))
        return self._tcp_layer()

    def _tcp_layer(self) -> ILayer:
        return TcpLayer(self.root, self.address)

    def _choose(self, layer: ILayer) -> None:
        self._stop_timer()
        buffered, self._buffer = self._buffer, b""
        self.root.switch_layer(layer, [buffered])

    def read_connection_lost(self) -> None:
        """
        The client shut its writing half before the protocol was known:
        raw TCP, which gets the bytes so far and then the half-close (the
        root keeps it for the new layer until that is in charge).
        """
        self._choose(self._tcp_layer())
        self.root.readConnectionLost()

    def connection_lost(self, reason: object) -> None:
        """
        The client went away before the protocol was known.
        """
        self._stop_timer()
