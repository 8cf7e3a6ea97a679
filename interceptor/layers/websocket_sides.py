# -*- test-case-name: tests.e2e.test_websocket -*-
"""
The two peers of a WebSocket relay, one L{Side} each, and what goes over
a side's wire:

- L{Side}: one peer's wsproto connection, transport and read gate, the
  message it is sending in pieces, and its messages still on their way;
- L{UpstreamSink}: what the server connection relays its bytes and its end
  to once it has switched protocols;
- L{wire_size}, L{split_by_sizes}, L{write_batched}: a message's size on the
  wire, its cutting back into the frames it came in, and the batched
  writes of a side's output.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Optional, Union

from wsproto.connection import Connection
from wsproto.events import Event

from interceptor.model.websocket import WebSocketMessage
from interceptor.model.wsframes import BIG, FrameSplitter

__all__ = ["Side", "UpstreamSink", "split_by_sizes", "wire_size", "write_batched"]


class Side:
    """
    One peer of the relay: its wsproto connection, its transport, and the
    messages from it still on their way.
    """

    __slots__ = (
        "from_client", "name", "conn", "transport", "write", "gate", "peer", "out",
        "queue", "busy", "held", "chunks", "message_size", "frames", "frame_size", "lost", "closing",
        "tcp_closed", "timer", "early", "splitter",
    )

    def __init__(self, from_client: bool, conn: Connection, transport: Any,
                 write: Callable[[bytes], None], gate: Any) -> None:
        self.from_client = from_client
        self.name = "client" if from_client else "server"
        self.conn = conn
        self.transport = transport
        self.write = write
        self.gate = gate
        self.peer: Any = None
        # Bytes to send to this side, written once per batch of events.
        self.out: list[bytes] = []
        # Messages and control frames from this side waiting behind a hook.
        self.queue: deque[Union[WebSocketMessage, Event]] = deque()
        self.busy = False
        self.held = False
        # The message being reassembled.
        self.chunks: list[Any] = []
        self.message_size = 0
        self.frames: list[int] = []
        self.frame_size = 0
        self.lost = False
        self.closing = False
        self.tcp_closed = False
        self.timer: Any = None
        self.early: Optional[list[bytes]] = []
        # Without extensions, big whole frames skip wsproto (see
        # interceptor.model.wsframes): this cuts the side's bytes into frames.
        self.splitter: Optional[FrameSplitter] = None


class UpstreamSink:
    """
    What L{interceptor.layers.http1_server.Http1ServerConnection.relay_to}
    relays the upstream's bytes and its end to: C{data_received} and
    C{connection_lost} (the layer's server side).
    """

    __slots__ = ("write", "loseConnection")

    def __init__(self, data_received: Callable[[bytes], None],
                 connection_lost: Callable[[], None]) -> None:
        self.write = data_received
        self.loseConnection = connection_lost


def wire_size(data: Any) -> int:
    """
    A message's size in bytes: text counts as its UTF-8 encoding.
    """
    if isinstance(data, str) and not data.isascii():
        return len(data.encode("utf-8"))
    return len(data)


def split_by_sizes(data: Any, sizes: list[int]) -> list[Any]:
    """
    Cut C{data} into pieces of C{sizes} (the last piece takes any rest).
    """
    pieces, start = [], 0
    for size in sizes[:-1]:
        pieces.append(data[start : start + size])
        start += size
    pieces.append(data[start:])
    return pieces


def write_batched(write: Callable[[bytes], None], out: list[bytes]) -> None:
    """
    Write C{out} with as few calls as possible, big pieces as they are
    (not copied into one string).
    """
    if len(out) == 1:
        write(out[0])
        return
    small: list[bytes] = []
    for piece in out:
        if len(piece) >= BIG:
            if small:
                write(b"".join(small))
                small = []
            write(piece)
        else:
            small.append(piece)
    if small:
        write(b"".join(small))
