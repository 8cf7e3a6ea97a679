# -*- test-case-name: tests.test_io -*-
"""
Flows as plain state (dicts, lists, str, bytes, numbers), and back.

The state is what one record of a flow file holds (see
L{interceptor.io.framing}); it is also what L{interceptor.io.mitmstate}
turns mitmproxy's flow state into, so there is one way to build a flow from
a file.  Layout (format version L{STATE_VERSION}); every key is always
written, and a reader takes a missing optional key as its default::

    flow: {"type": "http" | "tcp", "id", "timestamp_created",
           "client_conn": conn, "server_conn": conn | None,
           "error": [msg, timestamp] | None, "killed", "marked", "comment",
           "is_replay", "metadata",
           http: "request": request, "response": response | None,
                 "websocket": websocket | None
           tcp:  "messages": [[from_client, content, timestamp, killed], ...]}
    conn: {"address", "sockname", "tls_established", "sni", "alpn",
           "tls_version", "error", "certificates": [DER bytes, ...],
           "timestamp_start", "timestamp_end",
           server only: "peername", "timestamp_tcp_setup"}
    request: {"method", "scheme", "host", "port", "path", "authority",
              "http_version", "headers": [[name, value], ...],
              "content": bytes | None, "trailers": [...] | None,
              "timestamp_start", "timestamp_end"}
    response: {"http_version", "status_code", "reason", "headers",
               "content", "trailers", "timestamp_start", "timestamp_end"}
    websocket: {"messages": [[type, from_client, content, timestamp,
                              dropped, injected], ...],
                "closed_by_client", "close_code", "close_reason",
                "extensions", "timestamp_start", "timestamp_end"}

Header fields are the message's own (name, value) pairs, written as they
are (flattening them first cost more than packing the pairs; files of the
first days, flat, still read).  Addresses are [host, port] lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional, TypeVar

from interceptor.model.connection import ClientConnection, ServerConnection, _Connection
from interceptor.model.flow import Error, Flow, HTTPFlow
from interceptor.model.headers import Headers
from interceptor.model.message import Message
from interceptor.model.request import Request
from interceptor.model.response import Response
from interceptor.model.tcp import TCPFlow, TCPMessage
from interceptor.model.websocket import WebSocketData, WebSocketMessage

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

__all__ = ["STATE_VERSION", "flow_to_state", "flow_from_state", "UnknownFlowType"]

STATE_VERSION = 1
"""The layout of the state this module writes and reads."""

State = dict[str, Any]

_C = TypeVar("_C", bound=_Connection)

_BODY = (bytes, type(None))


class UnknownFlowType(ValueError):
    """
    A state describes a kind of flow this proxy has no model for.

    @ivar flow_type: The kind, as the state names it (e.g. C{"udp"}).
    """

    def __init__(self, flow_type: object) -> None:
        super().__init__(f"no model for {flow_type!r} flows")
        self.flow_type = flow_type


# -- to state ----------------------------------------------------------------



def _der(certificates: list[Certificate]) -> list[bytes]:
    if not certificates:
        return []
    from cryptography.hazmat.primitives.serialization import Encoding

    return [certificate.public_bytes(Encoding.DER) for certificate in certificates]


def _conn_state(conn: _Connection) -> State:
    return {
        "address": conn.address,
        "sockname": conn.sockname,
        "tls_established": conn.tls_established,
        "sni": conn.sni,
        "alpn": conn.alpn,
        "tls_version": conn.tls_version,
        "error": conn.error,
        "certificates": _der(conn.certificate_list),
        "timestamp_start": conn.timestamp_start,
        "timestamp_end": conn.timestamp_end,
    }


def _server_state(conn: Optional[ServerConnection]) -> Optional[State]:
    if conn is None:
        return None
    state = _conn_state(conn)
    state["peername"] = conn.peername
    state["timestamp_tcp_setup"] = conn.timestamp_tcp_setup
    return state


def _message_state(message: Message) -> State:
    trailers = message.trailers
    return {
        "http_version": message.http_version,
        # (The (name, value) pairs as they are: msgpack writes each as an array.)
        "headers": message.headers.fields,
        "content": message.raw_content,
        "trailers": None if trailers is None else trailers.fields,
        "timestamp_start": message.timestamp_start,
        "timestamp_end": message.timestamp_end,
    }


def _request_state(request: Request) -> State:
    state = _message_state(request)
    state["method"] = request.method
    state["scheme"] = request.scheme
    state["host"] = request._host
    state["port"] = request._port
    state["path"] = request.path
    state["authority"] = request.authority
    return state


def _response_state(response: Optional[Response]) -> Optional[State]:
    if response is None:
        return None
    state = _message_state(response)
    state["status_code"] = response.status_code
    state["reason"] = response.reason
    return state


def _websocket_state(data: Optional[WebSocketData]) -> Optional[State]:
    if data is None:
        return None
    return {
        "messages": [
            [int(m.type), m.from_client, m.content, m.timestamp, m.dropped, m.injected]
            for m in data.messages
        ],
        "closed_by_client": data.closed_by_client,
        "close_code": data.close_code,
        "close_reason": data.close_reason,
        "extensions": data.extensions,
        "timestamp_start": data.timestamp_start,
        "timestamp_end": data.timestamp_end,
    }


def flow_to_state(flow: Flow) -> State:
    """
    The state of a flow, as a record of a flow file holds it.  Nothing is
    copied: bodies, metadata and the like are the flow's own objects.

    @param flow: An L{HTTPFlow} or a L{TCPFlow}.
    @raise UnknownFlowType: For any other kind of flow.
    """
    error = flow.error
    state: State = {
        "type": flow.type,
        "id": flow.id,
        "timestamp_created": flow.timestamp_created,
        "client_conn": _conn_state(flow.client_conn),
        "server_conn": _server_state(flow.server_conn),
        "error": None if error is None else [error.msg, error.timestamp],
        "killed": flow.killed,
        "marked": flow.marked,
        "comment": flow.comment,
        "is_replay": flow.is_replay,
        "metadata": flow.metadata,
    }
    if isinstance(flow, HTTPFlow):
        state["request"] = _request_state(flow.request)
        state["response"] = _response_state(flow.response)
        state["websocket"] = _websocket_state(flow.websocket)
    elif isinstance(flow, TCPFlow):
        state["messages"] = [
            [m.from_client, m.content, m.timestamp, m.killed] for m in flow.messages
        ]
    else:
        raise UnknownFlowType(flow.type)
    return state


# -- from state ---------------------------------------------------------------


def _typed(state: State, key: str, kinds: type | tuple[type, ...]) -> Any:
    """
    C{state[key]}, which must be of one of C{kinds}.
    """
    value = state[key]
    if not isinstance(value, kinds):
        raise ValueError(f"{key} is a {type(value).__name__}")
    return value


def _fields(value: list[Any]) -> list[tuple[bytes, bytes]]:
    # [[name, value], ...]; files written before 2026-12-03 12:00 have them
    # flat, [name, value, name, value, ...].
    if value and type(value[0]) is not bytes:
        pairs: list[tuple[bytes, bytes]] = []
        for pair in value:
            if len(pair) != 2 or type(pair[0]) is not bytes or type(pair[1]) is not bytes:
                raise ValueError("header fields: not a (name, value) pair of bytes")
            pairs.append((pair[0], pair[1]))
        return pairs
    if len(value) % 2:
        raise ValueError("header fields: a name without a value")
    if not all(type(part) is bytes for part in value):
        raise ValueError("header fields: a name or value that is not bytes")
    parts = iter(value)
    return list(zip(parts, parts))


def _address(value: Optional[Iterable[Any]]) -> Optional[tuple[str, int]]:
    if value is None:
        return None
    host, port = value
    return (host, port)


def _certificates(ders: list[bytes]) -> list[Certificate]:
    if not ders:
        return []
    from cryptography.x509 import load_der_x509_certificate

    return [load_der_x509_certificate(der) for der in ders]


def _conn_from_state(kind: type[_C], state: State, side: str) -> _C:
    address = _address(state["address"])
    if address is None:
        raise ValueError(f"{side} connection without an address")
    conn = kind(address)
    conn.sockname = _address(state.get("sockname"))
    conn.tls_established = bool(state.get("tls_established", False))
    conn.sni = state.get("sni")
    conn.alpn = state.get("alpn")
    conn.tls_version = state.get("tls_version")
    conn.error = state.get("error")
    conn.certificate_list = _certificates(state.get("certificates") or [])
    conn.timestamp_start = state.get("timestamp_start")
    conn.timestamp_end = state.get("timestamp_end")
    return conn


def _server_from_state(state: Optional[State]) -> Optional[ServerConnection]:
    if state is None:
        return None
    conn = _conn_from_state(ServerConnection, state, "server")
    conn.peername = _address(state.get("peername"))
    conn.timestamp_tcp_setup = state.get("timestamp_tcp_setup")
    return conn


def _trailers(flat: Optional[list[bytes]]) -> Optional[Headers]:
    return None if flat is None else Headers(_fields(flat))


def _message_fields(state: State) -> State:
    # The Message arguments of a request's or response's state (as _message_state wrote them).
    return {
        "http_version": _typed(state, "http_version", str),
        "headers": Headers(_fields(state["headers"])),
        "content": _typed(state, "content", _BODY),
        "timestamp_start": state.get("timestamp_start"),
        "timestamp_end": state.get("timestamp_end"),
    }


def _request_from_state(state: State) -> Request:
    request = Request(
        _typed(state, "method", str),
        _typed(state, "scheme", str),
        _typed(state, "host", str),
        _typed(state, "port", int),
        _typed(state, "path", str),
        authority=state.get("authority", ""),
        **_message_fields(state),
    )
    request.trailers = _trailers(state.get("trailers"))
    return request


def _response_from_state(state: Optional[State]) -> Optional[Response]:
    if state is None:
        return None
    response = Response(
        status_code=_typed(state, "status_code", int),
        reason=_typed(state, "reason", str),
        **_message_fields(state),
    )
    response.trailers = _trailers(state.get("trailers"))
    return response


def _websocket_from_state(state: Optional[State]) -> Optional[WebSocketData]:
    if state is None:
        return None
    data = WebSocketData(state.get("extensions"))
    data.messages = [
        WebSocketMessage(kind, from_client, content, timestamp, dropped, injected)
        for kind, from_client, content, timestamp, dropped, injected in state["messages"]
    ]
    data.closed_by_client = state.get("closed_by_client")
    data.close_code = state.get("close_code")
    data.close_reason = state.get("close_reason")
    data.timestamp_start = state.get("timestamp_start")  # type: ignore[assignment]
    data.timestamp_end = state.get("timestamp_end")
    return data


def _tcp_message(from_client: bool, content: bytes, timestamp: float, killed: bool) -> TCPMessage:
    message = TCPMessage(from_client, content, timestamp)
    message.killed = killed
    return message


def flow_from_state(state: State) -> Flow:
    """
    The flow a state describes; it is not live.

    @param state: What L{flow_to_state} made (read back from a file).
    @raise UnknownFlowType: The state is of a kind of flow with no model.
    @raise ValueError: A field is missing or malformed (L{KeyError},
        L{TypeError} and the like are turned into it, naming the field
        where possible).
    """
    try:
        return _build(state)
    except UnknownFlowType:
        raise
    except KeyError as e:
        raise ValueError(f"missing field {e.args[0]!r}") from e
    except (TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"malformed flow: {e}") from e


def _build(state: State) -> Flow:
    kind = state["type"]
    client = _conn_from_state(ClientConnection, state["client_conn"], "client")
    server = _server_from_state(state.get("server_conn"))
    flow: Flow
    if kind == "http":
        http = HTTPFlow(client, server, _request_from_state(state["request"]))
        http.response = _response_from_state(state.get("response"))
        http.websocket = _websocket_from_state(state.get("websocket"))
        flow = http
    elif kind == "tcp":
        tcp = TCPFlow(client, server)
        tcp.messages = [_tcp_message(*fields) for fields in state["messages"]]
        flow = tcp
    else:
        raise UnknownFlowType(kind)
    flow._id = state.get("id")
    flow.timestamp_created = state.get("timestamp_created", 0.0)
    error = state.get("error")
    if error is not None:
        flow.error = Error(error[0], error[1])
    flow.killed = bool(state.get("killed", False))
    flow.marked = state.get("marked", "")
    flow.comment = state.get("comment", "")
    flow.is_replay = state.get("is_replay")
    metadata = state.get("metadata")
    flow.metadata = metadata if isinstance(metadata, dict) else {}
    flow.live = False
    return flow
