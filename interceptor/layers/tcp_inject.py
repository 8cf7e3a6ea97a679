# -*- test-case-name: tests.compat.test_runtime -*-
"""
Sending bytes made by the proxy on a live raw TCP connection (mitmproxy's
C{inject.tcp})::

    inject_tcp(flow, to_client=True, content=b"hello from the proxy")

The bytes go through the C{tcp_message} hooks as if the other side had
sent them (recorded in C{flow.messages} when messages are kept), then on
to their peer, after the bytes already on their way in that direction.
"""

from __future__ import annotations

from typing import Any, Union
from weakref import WeakKeyDictionary

from interceptor.model.tcp import TCPFlow

__all__ = ["inject_tcp", "relay_of"]

relay_of: WeakKeyDictionary[TCPFlow, Any] = WeakKeyDictionary()
"""The TCP layer relaying each live flow (set by L{interceptor.layers.tcp};
kept off the flow itself, which copies and pickles)."""


def inject_tcp(flow: TCPFlow, to_client: bool, content: Union[bytes, str]) -> None:
    """
    Send C{content} on C{flow}'s connection, toward the client
    (C{to_client=True}) or toward the server.

    @param content: The bytes; a str is encoded as UTF-8.
    @raise ValueError: The flow is not a live relayed TCP connection.
    """
    layer = relay_of.get(flow) if isinstance(flow, TCPFlow) else None
    if layer is None or not flow.live:
        raise ValueError(f"{flow!r} is not a live TCP connection")
    data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    if data:
        layer.received(not to_client, data)
