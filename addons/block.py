# -*- test-case-name: tests.test_access -*-
"""
Refuses clients by where they connect from, as mitmproxy's C{block} addon:

    - C{block_global} (default on): clients from globally reachable
      addresses are refused, so a proxy listening beyond loopback by
      mistake is not an open proxy for the internet;
    - C{block_private} (default off): clients from private networks are
      refused.

Loopback clients are never refused.  A refused client's connection is
closed before any of its bytes are read, with one log line naming the
option.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from zope.interface import implementer

from interceptor.core.access import refused_by
from interceptor.core.interfaces import IClientConnect

if TYPE_CHECKING:
    from interceptor.core.addonmanager import Loader

__all__ = ["Block"]

_log = Logger(namespace="interceptor.block")


@implementer(IClientConnect)
class Block:
    """
    Declares C{block_global} and C{block_private}, and applies them to
    each new client.
    """

    name = "block"

    def __init__(self) -> None:
        self.options: Any = None

    def load(self, loader: Loader) -> None:
        """
        Declare the options.
        """
        self.options = loader.master.options
        loader.add_option(
            "block_global",
            bool,
            True,
            "Refuse clients connecting from globally reachable addresses (IANA "
            "special-purpose registries); loopback clients are never refused.",
        )
        loader.add_option(
            "block_private",
            bool,
            False,
            "Refuse clients connecting from private networks (IANA special-purpose "
            "registries); loopback clients are never refused.",
        )

    def clientconnect(self, root_layer: Any) -> None:
        """
        Refuse the client if its address is blocked.
        """
        client_conn = root_layer.client_conn
        host = str(client_conn.address[0])
        options = self.options
        option = refused_by(host, options.block_global, options.block_private)
        if option is None:
            return
        _log.warn(
            "Client connection from {host} refused by {option} (set {option}=false to allow it)",
            host=host,
            option=option,
        )
        client_conn.error = f"Connection refused by {option}."
