# -*- test-case-name: tests.e2e.test_tcp -*-
"""
Choose the layer yourself with C{next_layer}: relay one port as raw TCP
whatever its bytes look like, and pass TLS to some hosts through without
intercepting it.

    twistd -n interceptor --addon examples/tcp_next_layer.py \\
        --set raw_tcp_ports=5432 --set no_intercept=bank.example

The proxy calls C{next_layer(layer)} with the layer it is about to use
(C{Http1Layer}, C{TlsLayer}, C{TcpLayer}, ...); returning another layer
object replaces it.  C{layer.root.tunnel_address} is where the tunnel
goes.
"""

from typing import Sequence

from interceptor.layers.relay import RelayLayer
from interceptor.layers.tcp import TcpLayer
from interceptor.layers.tls import TlsLayer


class ChooseLayer:
    """
    Raw TCP for C{raw_tcp_ports}, TLS pass-through for C{no_intercept}.
    """

    def load(self, loader):
        """
        Declare the two options.
        """
        loader.add_option("raw_tcp_ports", Sequence[str], [], "Ports relayed as raw TCP.")
        loader.add_option("no_intercept", Sequence[str], [], "Hosts whose TLS is passed through.")

    def __init__(self):
        self.raw_tcp_ports = set()
        self.no_intercept = set()

    def configure(self, options, updated):
        """
        Keep the options at hand.
        """
        self.raw_tcp_ports = {int(p) for p in options.raw_tcp_ports}
        self.no_intercept = set(options.no_intercept)

    def next_layer(self, layer):
        """
        Replace the proxy's choice where the options say so.
        """
        address = layer.root.tunnel_address
        if address is None:
            return None
        if address[1] in self.raw_tcp_ports and not isinstance(layer, TcpLayer):
            return TcpLayer(layer.root, address)
        if isinstance(layer, TlsLayer) and address[0] in self.no_intercept:
            return RelayLayer(layer.root, address)
        return None


addons = [ChooseLayer()]
