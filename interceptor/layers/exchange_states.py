# -*- test-case-name: tests.test_exchange -*-
"""
Where an HTTP exchange is: the states of its request and of its response
(L{RequestState}, L{ResponseState}), and the rule that decides whether a
body is streamed rather than buffered (L{wants_streaming}).

L{interceptor.layers.exchange.HttpExchange} moves through these states;
they are explicit enums rather than booleans so that every transition is
named in one place.
"""

from __future__ import annotations

import enum
from typing import Optional

from interceptor.model.http import Message

__all__ = ["RequestState", "ResponseState", "wants_streaming"]


def wants_streaming(message: Message, length: Optional[int], limit: Optional[int]) -> bool:
    """
    Whether C{message}'s body is streamed: an addon set C{message.stream},
    or its announced C{length} is over C{stream_large_bodies} (C{limit}).
    Marks the message as streamed when the size decided it.
    """
    if message.stream:
        return True
    if limit is not None and length is not None and length > limit:
        message.stream = True
        return True
    return False


class RequestState(enum.Enum):
    """
    Where the request side of an exchange is.
    """

    HEADERS = "headers"
    """The C{websocket_handshake}/C{requestheaders} hooks run."""
    READING = "reading"
    """The body is read into memory until it is complete."""
    HOOKS = "hooks"
    """The C{request} hooks run on the whole request."""
    CONNECTING = "connecting"
    """Waiting for a server connection (the body waits too when streamed)."""
    STREAMING = "streaming"
    """The body goes to the server as it arrives."""
    SENT = "sent"
    """The whole request was handed to the server."""
    ANSWERED = "answered"
    """Answered without the server: an addon's response, or an error."""


class ResponseState(enum.Enum):
    """
    Where the response side of an exchange is.
    """

    WAITING = "waiting"
    """No response yet."""
    HEADERS = "headers"
    """The C{responseheaders} hooks run (the server's body waits)."""
    READING = "reading"
    """The body is read into memory until it is complete."""
    STREAMING = "streaming"
    """The body goes to the client as it arrives."""
    HOOKS = "hooks"
    """The C{response} hooks run on the whole response."""
    COMPLETE = "complete"
    """A streamed response went out whole; its C{response} hooks run."""
    DONE = "done"
    """The exchange is over: answered, failed or killed."""
