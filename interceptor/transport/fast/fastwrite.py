# -*- test-case-name: tests.e2e.test_http1,tests.e2e.test_tls -*-
"""
Writing to a TCP transport without waiting for the next reactor turn.

Twisted buffers every C{transport.write}, registers the socket for
writability, and sends on the next reactor iteration, then unregisters it:
two C{epoll_ctl} calls and a loop turn per write.  A proxy writes once per
message in each direction, so that was a quarter of its CPU time per small
request.  When nothing is buffered, the bytes can go straight to the socket;
whatever the kernel does not take is handed to C{transport.write} as usual,
so ordering, backpressure and error handling stay Twisted's.

    write = writer_for(transport)
    write(b"HTTP/1.1 200 OK\\r\\n...")

With the fast paths off (L{interceptor.transport.fast.enabled}),
C{writer_for} returns C{transport.write} itself.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet import tcp

from interceptor.transport.fast import enabled

__all__ = ["writer_for", "writes_directly"]

# Bigger writes go through Twisted at once: the kernel takes a few hundred
# KiB of them, and handing Twisted the rest would copy the rest (a 1 GiB
# buffered body cost a second GiB); Twisted sends from its buffer by offset.
_DIRECT_MAX = 1 << 20


def writes_directly(transport: Any) -> bool:
    """
    Whether bytes may go straight to C{transport}'s socket now: a plain,
    open TCP connection with nothing waiting in Twisted's write buffer
    (which they would overtake).
    """
    return not bool(
        transport._tempDataBuffer
        or len(transport.dataBuffer) > transport.offset
        or transport.TLS
        or transport.disconnecting
        or not transport.connected
    )


def writer_for(transport: Any) -> Callable[[bytes], None]:
    """
    A function writing bytes to C{transport}: straight to the socket when
    that is safe (a plain TCP connection with nothing buffered), else
    through C{transport.write}; C{transport.write} itself when the fast
    paths are off.
    """
    fallback: Callable[[bytes], None] = transport.write
    if not enabled() or not isinstance(transport, tcp.Connection):
        return fallback
    sock = transport.socket

    def write(data: bytes) -> None:
        if len(data) > _DIRECT_MAX or not writes_directly(transport):
            fallback(data)
            return
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            # Let Twisted see (and report) the error on its own write path.
            fallback(data)
            return
        if sent < len(data):
            fallback(data[sent:])

    return write
