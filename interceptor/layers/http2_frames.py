# -*- test-case-name: tests.e2e.test_http2,tests.test_h2pump -*-
"""
What both HTTP/2 sides share: the h2 configuration and settings the proxy
uses on its connections, and a stream's output queue sent within flow
control; and the h2 connection toward servers that outlives their GOAWAY
(L{DrainingH2Connection}).
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Optional

from h2.config import H2Configuration
from h2.connection import ConnectionInputs, H2Connection, H2ConnectionStateMachine
from h2.events import (
    Event,
    DataReceived,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.settings import SettingCodes, Settings

__all__ = [
    "Output",
    "pump",
    "h2_config",
    "initiate",
    "stream_id_of",
    "HIGH_WATER",
    "DrainingH2Connection",
]

_WINDOW = 1 << 24  # our receive windows: 16 MiB per connection
_STREAM_WINDOW = 1 << 20  # and 1 MiB per stream
HIGH_WATER = 1 << 20  # pending output per stream before its source is held


def h2_config(client_side: bool) -> H2Configuration:
    """
    The h2 configuration of a proxy connection: header bytes kept as they
    are, inbound headers validated, outbound ones sent as the flow has them.
    """
    return H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_inbound_headers=True,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


def initiate(conn: H2Connection, client: bool) -> None:
    """
    Start the connection: the preface (toward a server) and our settings,
    in one SETTINGS frame (no server push toward a server), then our
    connection window.  (h2 would send its defaults first, and ours in a
    second frame, as an update.)
    """
    values: dict[SettingCodes, int] = {
        SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
        SettingCodes.MAX_CONCURRENT_STREAMS: 256,
        SettingCodes.MAX_HEADER_LIST_SIZE: H2Connection.DEFAULT_MAX_HEADER_LIST_SIZE,
    }
    if client:
        values[SettingCodes.ENABLE_PUSH] = 0
    conn.local_settings = Settings(client=client, initial_values=values)
    conn.initiate_connection()
    conn.increment_flow_control_window(_WINDOW - 65535)


class _DrainingStateMachine(H2ConnectionStateMachine):
    """
    h2's connection state machine, except that after the peer's GOAWAY the
    streams it still processes go on, both ways (RFC 9113 6.8: "activity on
    streams numbered lower or equal to the last stream identifier might
    still complete successfully").  h2 closes the whole connection when a
    GOAWAY comes in, so every frame after it was a ProtocolError: the
    answers nginx sends after its GOAWAY failed.  Opening a new stream is
    the one thing not allowed any more, and the connection's owner does not.
    """

    draining = False

    def process_input(self, input_: ConnectionInputs) -> list[Event]:
        if self.draining and input_ not in _GOAWAY_INPUTS:
            return []
        events = super().process_input(input_)
        if input_ is ConnectionInputs.RECV_GOAWAY:
            self.draining = True
        return events


_GOAWAY_INPUTS = frozenset((ConnectionInputs.SEND_GOAWAY, ConnectionInputs.RECV_GOAWAY))


class DrainingH2Connection(H2Connection):
    """
    An h2 connection that keeps the streams a GOAWAY spared (the proxy's
    connections to servers).
    """

    def __init__(self, config: H2Configuration) -> None:
        super().__init__(config=config)
        self.state_machine = _DrainingStateMachine()


class Output:
    """
    Data waiting to be sent on one HTTP/2 stream, within flow control.
    """

    __slots__ = ("chunks", "offset", "size", "end", "trailers", "on_sent")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        # How much of chunks[0] is sent already (a big body goes out a
        # frame at a time; copying its rest for each frame was quadratic).
        self.offset = 0
        self.size = 0
        self.end = False
        self.trailers: Optional[list[tuple[bytes, bytes]]] = None
        self.on_sent: Optional[Callable[[int], None]] = None


def pump(conn: H2Connection, stream_id: int, out: Output) -> bool:
    """
    Send as much of C{out} on C{stream_id} as the windows allow.

    @return: Whether everything, including the end of the stream, was sent.
    """
    chunks = out.chunks
    while chunks:
        window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
        if window <= 0:
            return False
        whole, start = chunks[0], out.offset
        end = start + window
        if end >= len(whole):
            chunk = whole[start:] if start else whole
            chunks.popleft()
            out.offset = 0
        else:
            chunk = whole[start:end]
            out.offset = end
        conn.send_data(stream_id, chunk)
        out.size -= len(chunk)
        if out.on_sent is not None:
            out.on_sent(len(chunk))
    if out.end:
        if out.trailers:
            conn.send_headers(stream_id, out.trailers, end_stream=True)
        else:
            conn.end_stream(stream_id)
        out.end = False
        return True
    return False


_STREAM_EVENTS = (
    RequestReceived,
    ResponseReceived,
    DataReceived,
    StreamEnded,
    TrailersReceived,
    StreamReset,
    WindowUpdated,
)


def stream_id_of(event: object) -> Optional[int]:
    """
    The stream an h2 event is about (None for connection-level events, and
    0 for a connection-level window update).
    """
    if isinstance(event, _STREAM_EVENTS):
        return event.stream_id
    return None
