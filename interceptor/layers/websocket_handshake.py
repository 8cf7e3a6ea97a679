# -*- test-case-name: tests.e2e.test_websocket -*-
"""
The WebSocket handshake as the HTTP layers see it: whether a request or a
response is an upgrade to WebSocket (L{is_websocket_upgrade}), which of a
client's extension offers the proxy can relay (L{supported_offers}), and
the wsproto extensions each side of the relay uses once the server has
answered (L{negotiated_extensions}).
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.logger import Logger
from wsproto.extensions import Extension, PerMessageDeflate

__all__ = ["is_websocket_upgrade", "negotiated_extensions", "supported_offers"]

_log = Logger(namespace="interceptor.websocket")


def is_websocket_upgrade(headers: Any) -> bool:
    """
    Whether request or response C{headers} ask for (or accept) an upgrade
    to WebSocket.
    """
    value = headers.get(b"upgrade")
    return value is not None and b"websocket" in value.lower()


def supported_offers(value: str) -> Optional[str]:
    """
    Keep only the C{permessage-deflate} offers of a client's
    C{Sec-WebSocket-Extensions} value: the proxy cannot relay frames of an
    extension it does not know.

    @return: The filtered value, or None when nothing is left.
    """
    kept = [
        offer.strip()
        for offer in value.split(",")
        if offer.split(";", 1)[0].strip().lower() == PerMessageDeflate.name
    ]
    return ", ".join(kept) or None


def negotiated_extensions(value: Optional[str]) -> list[Extension]:
    """
    The wsproto extensions for one side, from the server's
    C{Sec-WebSocket-Extensions} answer (a fresh object per call: each side
    keeps its own compression state).
    """
    if not value:
        return []
    for accepted in value.split(","):
        if accepted.split(";", 1)[0].strip().lower() == PerMessageDeflate.name:
            extension = PerMessageDeflate()
            try:
                extension.finalize(accepted.strip())
            except (ValueError, IndexError):
                _log.info("Ignoring malformed permessage-deflate parameters {value!r}",
                          value=accepted)
                return []
            return [extension]
    return []
