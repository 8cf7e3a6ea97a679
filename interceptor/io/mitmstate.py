# -*- test-case-name: tests.test_io_mitmproxy -*-
"""
mitmproxy's flow state, as its flow files hold it, turned into the state of
L{interceptor.io.state} (so flows are built from it the one way).

mitmproxy writes C{flow.get_state()}: a dict with a C{"version"} (21 for
mitmproxy 12; its C{io/compat.py} migrates older ones) and a C{"type"}
(C{"http"}, C{"tcp"}, C{"udp"}, C{"dns"}).  Requests and responses keep
their method, path, version and reason as bytes, headers as
C{[name, value]} pairs; connections keep certificates as PEM; WebSocket
messages are C{[type, from_client, content, timestamp, dropped, injected]}
in C{flow["websocket"]["messages"]}, TCP messages
C{[from_client, content, timestamp]} in C{flow["messages"]}.
"""

from __future__ import annotations

import base64
from typing import Any, Optional

from interceptor.io.state import State, UnknownFlowType

__all__ = ["OLDEST_VERSION", "NEWEST_VERSION", "state_from_mitmproxy"]

OLDEST_VERSION = 19
"""The oldest mitmproxy flow state version read (older ones have other field names)."""

NEWEST_VERSION = 21
"""The newest one known (what mitmproxy 12 writes)."""


def _text(value: Any) -> Any:
    """bytes as mitmproxy decodes them (UTF-8, undecodable bytes kept); str as it is."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def _pem_to_der(pem: Any) -> bytes:
    if isinstance(pem, str):
        pem = pem.encode("ascii")
    lines = [line for line in pem.strip().splitlines() if not line.startswith(b"-----")]
    return base64.b64decode(b"".join(lines))


def _conn(state: dict[str, Any], address: Any) -> State:
    return {
        "address": address,
        "sockname": state.get("sockname"),
        "tls_established": bool(state.get("tls", False)),
        "sni": state.get("sni"),
        "alpn": state.get("alpn") or None,
        "tls_version": state.get("tls_version"),
        "error": state.get("error"),
        "certificates": [_pem_to_der(pem) for pem in state.get("certificate_list") or []],
        "timestamp_start": state.get("timestamp_start"),
        "timestamp_end": state.get("timestamp_end"),
    }


def _server(state: Optional[dict[str, Any]]) -> Optional[State]:
    if not state or state.get("address") is None:
        return None
    conn = _conn(state, state["address"])
    conn["peername"] = state.get("peername")
    conn["timestamp_tcp_setup"] = state.get("timestamp_tcp_setup")
    return conn


def _request(state: dict[str, Any]) -> State:
    return {
        "method": _text(state["method"]).upper(),
        "scheme": _text(state["scheme"]).lower(),
        "host": _text(state["host"]),
        "port": state["port"],
        "path": _text(state["path"]),
        "authority": _text(state.get("authority") or b""),
        "http_version": _text(state["http_version"]),
        "headers": state["headers"],
        "content": state.get("content"),
        "trailers": state.get("trailers"),
        "timestamp_start": state.get("timestamp_start"),
        "timestamp_end": state.get("timestamp_end"),
    }


def _response(state: Optional[dict[str, Any]]) -> Optional[State]:
    if state is None:
        return None
    reason = state.get("reason") or b""
    return {
        "http_version": _text(state["http_version"]),
        "status_code": state["status_code"],
        "reason": reason.decode("latin-1") if isinstance(reason, bytes) else reason,
        "headers": state["headers"],
        "content": state.get("content"),
        "trailers": state.get("trailers"),
        "timestamp_start": state.get("timestamp_start"),
        "timestamp_end": state.get("timestamp_end"),
    }


def _websocket(state: Optional[dict[str, Any]], started: Optional[float]) -> Optional[State]:
    if state is None:
        return None
    messages = []
    for message in state.get("messages") or []:
        kind, from_client, content, timestamp = message[:4]
        dropped = bool(message[4]) if len(message) > 4 else False
        injected = bool(message[5]) if len(message) > 5 else False
        messages.append([kind, from_client, content, timestamp, dropped, injected])
    return {
        "messages": messages,
        "closed_by_client": state.get("closed_by_client"),
        "close_code": state.get("close_code"),
        "close_reason": state.get("close_reason"),
        "extensions": None,
        "timestamp_start": started,
        "timestamp_end": state.get("timestamp_end"),
    }


def _marked(value: Any) -> str:
    # (mitmproxy before version 10 of its state marked with a bool.)
    if value is True:
        return ":default:"
    return value if isinstance(value, str) else ""


def state_from_mitmproxy(flow: dict[str, Any]) -> State:
    """
    The L{interceptor.io.state} state of one mitmproxy flow.

    @param flow: One record of a mitmproxy flow file (version
        L{OLDEST_VERSION} to L{NEWEST_VERSION}).
    @raise UnknownFlowType: A UDP or DNS flow (interceptor has no model for
        them).
    @raise ValueError: Another version, or a malformed flow; the message
        says which.
    """
    if not isinstance(flow, dict):
        raise ValueError(f"a flow is a dict, not {type(flow).__name__}")
    version = flow.get("version")
    if not isinstance(version, int) or not OLDEST_VERSION <= version <= NEWEST_VERSION:
        raise ValueError(
            f"mitmproxy flow state version {version!r} is not supported "
            f"(versions {OLDEST_VERSION} to {NEWEST_VERSION} are; mitmproxy 12 writes "
            f"{NEWEST_VERSION})"
        )
    kind = flow.get("type")
    if kind not in ("http", "tcp"):
        raise UnknownFlowType(kind)
    try:
        return _convert(flow, kind)
    except KeyError as e:
        raise ValueError(f"mitmproxy flow without the field {e.args[0]!r}") from e
    except (TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"malformed mitmproxy flow: {e}") from e


def _convert(flow: dict[str, Any], kind: str) -> State:
    client = flow["client_conn"]
    error = flow.get("error")
    state: State = {
        "type": kind,
        "id": flow.get("id"),
        "timestamp_created": flow.get("timestamp_created", 0.0),
        "client_conn": _conn(client, client.get("peername") or ("", 0)),
        "server_conn": _server(flow.get("server_conn")),
        "error": None if error is None else [error["msg"], error["timestamp"]],
        "killed": False,
        "marked": _marked(flow.get("marked", "")),
        "comment": flow.get("comment", ""),
        "is_replay": flow.get("is_replay"),
        "metadata": flow.get("metadata") or {},
    }
    if kind == "http":
        request = flow["request"]
        response = flow.get("response")
        state["request"] = _request(request)
        state["response"] = _response(response)
        started = response.get("timestamp_end") if response else None
        state["websocket"] = _websocket(flow.get("websocket"), started)
    else:
        state["messages"] = [
            [message[0], message[1], message[2], False] for message in flow.get("messages") or []
        ]
    return state
