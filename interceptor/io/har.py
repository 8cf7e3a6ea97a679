# -*- test-case-name: tests.test_har,tests.e2e.test_har -*-
"""
HAR 1.2 (HTTP Archive) export and import of HTTP flows.

Writing, one entry as each flow completes (nothing is kept but the file)::

    with open("out.har", "wb") as f, HarWriter(f) as writer:
        for flow in flows:
            writer.add(flow)

Reading, from our own files and browsers' (Chromium's devtools export,
Firefox's)::

    with open("page.har", "rb") as f:
        for flow in read_har(f):
            print(flow.request.url, flow.response and flow.response.status_code)

Bodies are written decoded (C{content}, Content-Encoding removed; the raw
body when it cannot be decoded, marked C{"_undecoded": true}); text that
is not valid in its charset, or holds control characters, is written as
base64 (C{"encoding": "base64"} on response content, C{"_encoding":
"base64"} on postData, where HAR has no such field).  Reading re-encodes a
body with the message's Content-Encoding, so headers and body agree.

Timings: HAR orders an entry's phases blocked, dns, connect, send, wait,
receive from C{startedDateTime}, as a browser lives them.  A proxy lives
them in another order: it receives the request from the client (C{send},
from C{request.timestamp_start} to C{timestamp_end}), then opens the server
connection (C{connect}, C{ssl}; only for the flow that opened it: a
connection opened before the request started is a reused one, -1), then
waits and receives.  Files whose creator is C{interceptor} are read back
in the proxy's order, others in HAR's, so both round-trip to the
millisecond.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import ipaddress
import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import IO, Any, Optional

from interceptor.model.connection import ClientConnection, ServerConnection
from interceptor.model.flow import Error, HTTPFlow
from interceptor.model.headers import _SE, Headers, _b
from interceptor.model.message import Message, _charset_of
from interceptor.model.request import Request
from interceptor.model.response import Response
from interceptor.model.url import hostport, parse_url

__all__ = ["HarError", "HarWriter", "flow_to_entry", "read_har"]

HAR_VERSION = "1.2"
CREATOR_NAME = "interceptor"

# Characters that make a body binary even when its charset decodes it
# (tab, newline, form feed and carriage return are text).
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]")


class HarError(ValueError):
    """
    A HAR file that cannot be read: the message names the file and, for a
    bad entry, its index and field (C{"page.har: entry 3: request.url: ..."}).
    """


def _creator_version() -> str:
    try:
        return version("interceptor")
    except PackageNotFoundError:
        return "unknown"


# -- writing -------------------------------------------------------------------


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


def _ms(start: Optional[float], end: Optional[float]) -> float:
    """Milliseconds from C{start} to C{end}, -1 when either is unknown."""
    if start is None or end is None:
        return -1.0
    return round(max(end - start, 0.0) * 1000, 3)


def _pairs(items: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in items]


def _body_text(body: bytes, content_type: Optional[str]) -> tuple[str, bool]:
    """
    The body as HAR text: (text, False) when its charset (Content-Type's,
    else UTF-8) decodes it and it holds no control characters, else
    (base64, True).
    """
    charset = _charset_of(_b(content_type)) if content_type else None
    try:
        text = body.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        text = None
    if text is None or _CONTROL.search(text):
        return base64.b64encode(body).decode("ascii"), True
    return text, False


def _decoded_body(message: Message) -> tuple[Optional[bytes], bool]:
    """The decoded body (None if not kept), and whether decoding failed (then raw)."""
    try:
        return message.get_content(strict=True), False
    except ValueError:
        return message.raw_content, True


def _headers_size(first_line: str, message: Message) -> int:
    # HTTP/2 and 3 headers are compressed: their size on the wire is unknown.
    if message.is_http2 or message.is_http3:
        return -1
    return len(_b(first_line)) + 2 + len(message.headers.to_bytes()) + 2


def _request_target(request: Request) -> str:
    form = request.first_line_format
    if form == "authority":
        return hostport(request.scheme, request.host, request.port, True)
    return request.url if form == "absolute" else request.path


def _post_data(request: Request) -> Optional[dict[str, Any]]:
    body, undecoded = _decoded_body(request)
    if not body:
        return None
    content_type = request.headers.get("content-type")
    text, is_base64 = _body_text(body, content_type)
    post: dict[str, Any] = {"mimeType": content_type or "", "text": text}
    if is_base64:
        post["_encoding"] = "base64"
    if undecoded:
        post["_undecoded"] = True
    if request.urlencoded_form:
        post["params"] = _pairs(request.urlencoded_form.items(multi=True))
    elif request.multipart_form:
        post["params"] = [
            {"name": k.decode("utf-8", "replace"), "value": v.decode("utf-8", "replace")}
            for k, v in request.multipart_form.items(multi=True)
        ]
    return post


def _request_entry(request: Request) -> dict[str, Any]:
    raw = request.raw_content
    first_line = f"{request.method} {_request_target(request)} {request.http_version}"
    entry: dict[str, Any] = {
        "method": request.method,
        "url": request.url,
        "httpVersion": request.http_version,
        "cookies": _pairs(request.cookies.items(multi=True)),
        "headers": _pairs(request.headers.items(multi=True)),
        "queryString": _pairs(request.query.items(multi=True)),
        "headersSize": _headers_size(first_line, request),
        "bodySize": -1 if raw is None else len(raw),
    }
    post = _post_data(request)
    if post is not None:
        entry["postData"] = post
    return entry


def _cookie_expiry(attrs: Any, received: Optional[float]) -> Optional[str]:
    """Max-Age (from when the response came) wins over Expires, as RFC 6265 says."""
    max_age = attrs.get("max-age")
    if max_age is not None and received is not None:
        try:
            return _iso(received + int(max_age))
        except (ValueError, OverflowError, OSError):
            pass
    expires = attrs.get("expires")
    if expires:
        try:
            when = email.utils.parsedate_to_datetime(expires.strip('"'))
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return None


def _response_cookies(response: Response) -> list[dict[str, Any]]:
    cookies = []
    for name, (value, attrs) in response.cookies.items(multi=True):
        cookie: dict[str, Any] = {"name": name, "value": value}
        for attr, key in (("path", "path"), ("domain", "domain"), ("samesite", "sameSite")):
            if attrs.get(attr):
                cookie[key] = attrs.get(attr)
        expires = _cookie_expiry(attrs, response.timestamp_start)
        if expires is not None:
            cookie["expires"] = expires
        cookie["httpOnly"] = "httponly" in attrs
        cookie["secure"] = "secure" in attrs
        cookies.append(cookie)
    return cookies


def _content(response: Response) -> dict[str, Any]:
    content_type = response.headers.get("content-type")
    content: dict[str, Any] = {"size": 0, "mimeType": content_type or ""}
    raw = response.raw_content
    if raw is None:
        content["comment"] = "body not kept (streamed)"
        return content
    body, undecoded = _decoded_body(response)
    body = body or b""
    content["size"] = len(body)
    if len(body) != len(raw):
        content["compression"] = len(body) - len(raw)
    text, is_base64 = _body_text(body, content_type)
    content["text"] = text
    if is_base64:
        content["encoding"] = "base64"
    if undecoded:
        content["_undecoded"] = True
    return content


def _response_entry(flow: HTTPFlow) -> dict[str, Any]:
    response = flow.response
    if response is None:
        # As browsers write a request that got no response.
        return {
            "status": 0,
            "statusText": "",
            "httpVersion": "",
            "cookies": [],
            "headers": [],
            "content": {"size": 0, "mimeType": ""},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_error": flow.error.msg if flow.error is not None else "no response",
        }
    raw = response.raw_content
    first_line = f"{response.http_version} {response.status_code} {response.reason}"
    entry = {
        "status": response.status_code,
        "statusText": response.reason,
        "httpVersion": response.http_version,
        "cookies": _response_cookies(response),
        "headers": _pairs(response.headers.items(multi=True)),
        "content": _content(response),
        "redirectURL": response.headers.get("location", ""),
        "headersSize": _headers_size(first_line, response),
        "bodySize": -1 if raw is None else len(raw),
    }
    if flow.error is not None:
        entry["_error"] = flow.error.msg
    return entry


def _timings(flow: HTTPFlow, started: float) -> dict[str, float]:
    request, response, server = flow.request, flow.response, flow.server_conn
    connect = ssl = -1.0
    # Only the flow that opened the connection paid for it.
    if (
        server is not None
        and server.timestamp_start is not None
        and server.timestamp_tcp_setup is not None
        and server.timestamp_start >= started
    ):
        # (The model has no TLS setup time yet; mitmproxy's name is read if it comes.)
        tls_setup: Optional[float] = getattr(server, "timestamp_tls_setup", None)
        connect = _ms(server.timestamp_start, tls_setup or server.timestamp_tcp_setup)
        ssl = _ms(server.timestamp_tcp_setup, tls_setup)
    send = max(_ms(started, request.timestamp_end), 0.0)
    wait = receive = 0.0
    if response is not None:
        wait = max(_ms(request.timestamp_end, response.timestamp_start) - max(connect, 0), 0.0)
        receive = max(_ms(response.timestamp_start, response.timestamp_end), 0.0)
    return {
        "blocked": -1.0,
        "dns": -1.0,
        "connect": connect,
        "ssl": ssl,
        "send": send,
        "wait": wait,
        "receive": receive,
    }


def _server_ip(server: Optional[ServerConnection]) -> Optional[str]:
    if server is None or server.peername is None:
        return None
    try:
        return str(ipaddress.ip_address(server.peername[0]))
    except ValueError:
        return None


def _websocket_messages(flow: HTTPFlow) -> list[dict[str, Any]]:
    """As Chromium writes them: type, time (seconds), opcode, data (binary as base64)."""
    out = []
    for message in flow.messages:
        content = message.content or b""
        if message.is_text:
            data = content.decode("utf-8", "replace")
        else:
            data = base64.b64encode(content).decode("ascii")
        out.append(
            {
                "type": "send" if message.from_client else "receive",
                "time": message.timestamp,
                "opcode": int(message.type),
                "data": data,
            }
        )
    return out


def flow_to_entry(flow: HTTPFlow) -> dict[str, Any]:
    """
    One HAR 1.2 entry for C{flow}: request, response (status 0 and
    C{_error} when it has none), timings (ms, -1 when unknown), cache,
    serverIPAddress and connection (the server connection's id) when
    known, C{_clientAddress}, and for a WebSocket flow its messages
    (C{_webSocketMessages}, as Chromium writes them).

    @param flow: An L{HTTPFlow}, live or not; it is not changed.
    @return: A dict ready for C{json.dumps}.
    """
    if not isinstance(flow, HTTPFlow):
        raise TypeError(f"a HAR entry is made of an HTTPFlow, not {type(flow).__name__}")
    started = flow.request.timestamp_start
    if started is None:
        started = flow.timestamp_created
    timings = _timings(flow, started)
    entry: dict[str, Any] = {
        "startedDateTime": _iso(started),
        # (ssl is a part of connect.)
        "time": round(sum(v for k, v in timings.items() if v > 0 and k != "ssl"), 3),
        "request": _request_entry(flow.request),
        "response": _response_entry(flow),
        "cache": {},
        "timings": timings,
    }
    server_ip = _server_ip(flow.server_conn)
    if server_ip is not None:
        entry["serverIPAddress"] = server_ip
    if flow.server_conn is not None:
        entry["connection"] = str(flow.server_conn.id)
    if flow.client_conn.address is not None:
        entry["_clientAddress"] = list(flow.client_conn.address)
    if flow.comment:
        entry["comment"] = flow.comment
    if flow.websocket is not None:
        entry["_resourceType"] = "websocket"
        entry["_webSocketMessages"] = _websocket_messages(flow)
    return entry


class HarWriter:
    """
    Writes a HAR file entry by entry: the head when made, each flow's entry
    as it is added, the tail on L{close}, so no flow is kept.  Also a
    context manager (closing on exit).

    @ivar count: How many entries were written.
    """

    def __init__(self, fileobj: IO[bytes]) -> None:
        """
        @param fileobj: A binary file open for writing; it is not closed by
            L{close}.
        """
        self._file = fileobj
        self._closed = False
        self.count = 0
        head = {
            "version": HAR_VERSION,
            "creator": {"name": CREATOR_NAME, "version": _creator_version()},
            "pages": [],
        }
        # The head object without its closing brace, then the entries array.
        fileobj.write(b'{"log": ' + json.dumps(head).encode()[:-1] + b', "entries": [\n')

    def add(self, flow: HTTPFlow) -> None:
        """
        Write C{flow}'s entry (see L{flow_to_entry}).

        @raise ValueError: The writer is closed.
        """
        if self._closed:
            raise ValueError("HarWriter.add: the writer is closed")
        data = json.dumps(flow_to_entry(flow)).encode()
        self._file.write(b",\n" + data if self.count else data)
        self.count += 1

    def close(self) -> None:
        """
        Write the tail, ending the HAR document (again: nothing).
        """
        if not self._closed:
            self._closed = True
            self._file.write(b"\n]}}\n")

    def __enter__(self) -> HarWriter:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


# -- reading -------------------------------------------------------------------


class _Entry:
    """Typed access to one JSON object of an entry, errors naming where."""

    def __init__(self, obj: Any, where: str) -> None:
        if not isinstance(obj, dict):
            raise HarError(f"{where}: expected an object, got {type(obj).__name__}")
        self.obj: dict[str, Any] = obj
        self.where = where

    def error(self, key: str, problem: str) -> HarError:
        return HarError(f"{self.where}.{key}: {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        """C{obj[key]} of type C{kind}; C{default} if absent or null, an error if None."""
        value = self.obj.get(key)
        if value is None:
            if default is None:
                raise self.error(key, "missing")
            return default
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.error(key, f"expected {_kind_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            raise self.error(key, f"expected {_kind_name(kind)}, got {type(value).__name__}")
        return value

    def number(self, key: str, default: Optional[float] = None) -> float:
        return float(self.get(key, (int, float), default))

    def child(self, key: str, default: Optional[dict[str, Any]] = None) -> _Entry:
        return _Entry(self.get(key, dict, default), f"{self.where}.{key}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _read_headers(part: _Entry) -> tuple[Headers, dict[str, str]]:
    """The headers, and the HTTP/2 pseudo-headers (":authority", ...) Chromium lists with them."""
    fields: list[tuple[bytes, bytes]] = []
    pseudo: dict[str, str] = {}
    for i, header in enumerate(part.get("headers", list, [])):
        item = _Entry(header, f"{part.where}.headers[{i}]")
        name, value = item.get("name", str), item.get("value", str, "")
        if name.startswith(":"):
            pseudo[name] = value
        else:
            fields.append((_b(name), _b(value)))
    return Headers(fields), pseudo


def _http_version(value: str) -> str:
    normal = value.strip().upper()
    # (As the proxy names them: "HTTP/2.0", and mitmproxy's "HTTP/3".)
    if normal in ("HTTP/2", "HTTP/2.0", "H2", "H2C"):
        return "HTTP/2.0"
    if normal in ("HTTP/3", "HTTP/3.0", "H3") or normal.startswith("H3-"):
        return "HTTP/3"
    if normal in ("HTTP/1.0", "HTTP/0.9"):
        return normal
    return "HTTP/1.1"


def _body(part: _Entry, text_key: str, encoding_keys: tuple[str, ...], charset_of: str) -> bytes:
    """A HAR text as the bytes it stands for: base64 decoded, or text in its charset."""
    text: str = part.get(text_key, str, "")
    if any(part.obj.get(key) == "base64" for key in encoding_keys):
        try:
            return base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError) as e:
            raise part.error(text_key, f"bad base64: {e}") from None
    charset = _charset_of(_b(charset_of)) if charset_of else None
    try:
        return text.encode(charset or "utf-8", _SE)
    except (UnicodeEncodeError, LookupError):
        return text.encode("utf-8", _SE)


def _load_body(message: Message, body: bytes, undecoded: bool) -> None:
    """Store the decoded C{body}, re-encoded with the message's Content-Encoding."""
    if undecoded:
        message.raw_content = body
    else:
        message.content = body


def _parse_time(entry: _Entry) -> float:
    value = entry.get("startedDateTime", str)
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise entry.error("startedDateTime", f"not an ISO 8601 date: {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


class _Timeline:
    """The flow's timestamps from an entry's start and timings."""

    def __init__(self, entry: _Entry, proxy_order: bool) -> None:
        timings = entry.child("timings", {})
        started = _parse_time(entry)

        def phase(key: str) -> float:
            return max(timings.number(key, -1.0), 0.0) / 1000

        connect, ssl = timings.number("connect", -1.0), timings.number("ssl", -1.0)
        self.connect_start: Optional[float] = None
        if proxy_order:
            self.request_start = started
            self.request_end = started + phase("send")
            if connect >= 0:
                self.connect_start = self.request_end
            self.response_start = self.request_end + phase("connect") + phase("wait")
        else:
            self.request_start = started + phase("blocked") + phase("dns") + phase("connect")
            if connect >= 0:
                self.connect_start = started + phase("blocked") + phase("dns")
            self.request_end = self.request_start + phase("send")
            self.response_start = self.request_end + phase("wait")
        self.response_end = self.response_start + phase("receive")
        self.tcp_setup: Optional[float] = None
        if self.connect_start is not None:
            self.tcp_setup = self.connect_start + (connect - max(ssl, 0.0)) / 1000


def _read_request(entry: _Entry, times: _Timeline) -> Request:
    part = entry.child("request")
    method = part.get("method", str)
    url = part.get("url", str)
    try:
        scheme, host, port, path = parse_url(url)
    except ValueError as e:
        raise part.error("url", str(e)) from None
    headers, pseudo = _read_headers(part)
    http_version = _http_version(part.get("httpVersion", str, ""))
    authority = pseudo.get(":authority", "")
    if not authority and http_version in ("HTTP/2.0", "HTTP/3"):
        authority = hostport(scheme, host, port)
    request = Request(
        method, scheme, host, port, path, http_version, headers, b"", authority,
        times.request_start, times.request_end,
    )
    if "postData" in part.obj:
        post = part.child("postData")
        content_type = headers.get("content-type") or post.get("mimeType", str, "")
        if "text" in post.obj:
            body = _body(post, "text", ("_encoding", "encoding"), content_type)
            _load_body(request, body, post.obj.get("_undecoded") is True)
        else:
            _read_params(request, post, content_type)
    return request


def _read_params(request: Request, post: _Entry, content_type: str) -> None:
    """A postData with params but no text (the HAR spec allows it): the form is rebuilt."""
    pairs = []
    for i, param in enumerate(post.get("params", list, [])):
        item = _Entry(param, f"{post.where}.params[{i}]")
        pairs.append((item.get("name", str), item.get("value", str, "")))
    if not pairs:
        return
    if content_type.lower().startswith("multipart/form-data"):
        request.multipart_form = [(_b(k), _b(v)) for k, v in pairs]
    else:
        request.urlencoded_form = pairs


def _read_response(entry: _Entry, times: _Timeline) -> Optional[Response]:
    part = entry.child("response")
    status = part.get("status", int)
    if status == 0:
        return None
    if not 100 <= status <= 999:
        raise part.error("status", f"not an HTTP status: {status}")
    headers, _ = _read_headers(part)
    response = Response(
        _http_version(part.get("httpVersion", str, "")),
        status,
        part.get("statusText", str, ""),
        headers,
        b"",
        times.response_start,
        times.response_end,
    )
    content = part.child("content", {})
    if "text" in content.obj:
        body = _body(content, "text", ("encoding",), headers.get("content-type") or "")
        _load_body(response, body, content.obj.get("_undecoded") is True)
    return response


def _read_connections(entry: _Entry, request: Request, times: _Timeline) -> tuple[
    ClientConnection, ServerConnection
]:
    client_address: tuple[str, int] = ("", 0)
    given = entry.obj.get("_clientAddress")
    if (
        isinstance(given, list)
        and len(given) >= 2
        and isinstance(given[0], str)
        and isinstance(given[1], int)
    ):
        client_address = (given[0], given[1])
    client = ClientConnection(client_address)
    client.timestamp_start = times.request_start
    client.timestamp_end = times.response_end
    server = ServerConnection((request.host, request.port))
    server_ip = entry.get("serverIPAddress", str, "")
    if server_ip:
        server.peername = (server_ip.strip("[]"), request.port)
    server.timestamp_start = times.connect_start
    server.timestamp_tcp_setup = times.tcp_setup
    server.timestamp_end = times.response_end
    return client, server


def _read_entry(obj: Any, where: str, proxy_order: bool) -> HTTPFlow:
    entry = _Entry(obj, where)
    times = _Timeline(entry, proxy_order)
    request = _read_request(entry, times)
    client, server = _read_connections(entry, request, times)
    flow = HTTPFlow(client, server, request)
    flow.live = False
    flow.timestamp_created = times.request_start
    flow.comment = entry.get("comment", str, "")
    flow.response = _read_response(entry, times)
    error = entry.child("response").obj.get("_error")
    if isinstance(error, str) and error:
        flow.error = Error(error, times.response_end)
    elif flow.response is None:
        flow.error = Error("no response", times.response_end)
    return flow


def read_har(fileobj: IO[bytes] | IO[str], name: Optional[str] = None) -> Iterator[HTTPFlow]:
    """
    The HTTP flows of a HAR file (not live), in the file's order.  The
    document is parsed and its outline checked before this returns; each
    entry is checked as it is read.  Fields starting with C{_} are ignored
    but those this module writes; optional fields may be missing.

    @param fileobj: A file open for reading, binary or text.
    @param name: The file's name in error messages (default:
        C{fileobj.name}, else C{"<HAR>"}).
    @raise HarError: The file is not JSON or not a HAR (raised here), or
        an entry is malformed (raised when that entry is reached), naming
        the file and the entry's index.
    """
    label = name or str(getattr(fileobj, "name", "") or "<HAR>")
    try:
        document = json.loads(fileobj.read())
    except (ValueError, RecursionError) as e:
        raise HarError(f"{label}: not a JSON document: {e}") from None
    if not isinstance(document, dict) or not isinstance(document.get("log"), dict):
        raise HarError(f'{label}: not a HAR file (no "log" object)')
    log = _Entry(document["log"], f"{label}: log")
    entries = log.get("entries", list)
    creator = log.obj.get("creator")
    proxy_order = isinstance(creator, dict) and creator.get("name") == CREATOR_NAME
    return _flows(entries, label, proxy_order)


def _flows(entries: list[Any], label: str, proxy_order: bool) -> Iterator[HTTPFlow]:
    for index, obj in enumerate(entries):
        yield _read_entry(obj, f"{label}: entry {index}", proxy_order)
