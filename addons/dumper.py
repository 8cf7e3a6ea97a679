# -*- test-case-name: tests.test_dumper,tests.e2e.test_output -*-
"""
Prints the flows, as mitmdump does.  At the default detail, one line per
HTTP flow, one per WebSocket or raw TCP message, and one per WebSocket
close or error::

    127.0.0.1:53124: GET http://example.org/ << 200 OK 1.2k 14ms
    127.0.0.1:53126: GET https://example.org/ HTTP/2.0 << HTTP/2.0 200 OK 3.4k 20ms
    127.0.0.1:53128 -> WebSocket text message -> example.org:80/chat
    WebSocket connection closed by client: 1000 bye
    127.0.0.1:53130 -> tcp -> db.internal:5432
    Error in TCP connection to db.internal:5432: Cannot connect to ...

The HTTP version is shown when it is not HTTP/1.x on both sides.  The
option C{flow_detail} sets how much: 0 nothing (C{-q}), 1 the lines above
(the default), 2 also headers (C{-v}): the request line and its headers,
then C{<< status} and the response's, as mitmdump prints them; 3 also
bodies and message contents cut at 4 KiB (C{-vv}), 4 whole.

The lines go to C{outfile} (the process's real stdout by default), or to
the Twisted log with C{to_log} (C{twistd interceptor} without C{-n}: they
land in C{twistd.log}).  WebSocket and TCP messages are printed by a
L{MessageDumper} nested under the dumper only while C{flow_detail} is 1 or
more: an addon handling those events makes the proxy record and hand over
every message (raw TCP then leaves its direct relay), which C{-q} spares.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, Union

from twisted.logger import Logger
from zope.interface import implementer

from interceptor.core.interfaces import (
    IConfigure,
    IError,
    IResponse,
    ITCPError,
    ITCPMessage,
    IWebSocketEnd,
    IWebSocketError,
    IWebSocketMessage,
)
from interceptor.core.options import filter_check, filter_option
from interceptor.model.encoding import DecodedSizeError

if TYPE_CHECKING:
    from interceptor.core.addonmanager import Loader
    from interceptor.core.master import Master
    from interceptor.core.options import Options
    from interceptor.model.connection import Address
    from interceptor.model.flow import Flow, HTTPFlow
    from interceptor.model.headers import Headers
    from interceptor.model.message import Message
    from interceptor.model.tcp import TCPFlow

__all__ = ["Dumper", "MessageDumper", "TextOut", "human_size"]

_log = Logger(namespace="interceptor.dumper")

_BODY_PREVIEW = 4096


class TextOut(Protocol):
    """
    Where the dumper prints: a text file, or anything writing text.
    """

    def write(self, text: str, /) -> Any: ...

    def flush(self) -> Any: ...


def human_size(size: float) -> str:
    """
    C{1234} -> C{"1.2k"}, as mitmdump shows sizes.
    """
    for unit in ("b", "k", "m", "g"):
        if size < 1024 or unit == "g":
            return f"{size}{unit}" if unit == "b" else f"{size:.1f}{unit}"
        size /= 1024
    raise AssertionError("unreachable")


# C0 controls but tab and newline, DEL, and C1 controls: shown escaped, so a
# peer cannot drive the user's terminal (as mitmdump escapes them).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    # Bytes that were not UTF-8 (surrogate escapes) become \xNN, and
    # control characters \xNN too: any terminal can print the result.
    if not text.isascii():
        try:
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate that is no escaped byte
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _address(address: Optional[Address]) -> str:
    if not address:
        return "?"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_H1 = ("HTTP/1.0", "HTTP/1.1")


def _versions(request: str, response: Optional[str]) -> tuple[str, str]:
    """
    What to print after the URL and after C{<<}: nothing for HTTP/1.x on
    both sides (the usual case), else each side's version (mitmdump's rule).
    """
    if response is None:
        return ("" if request in _H1 else f" {request}"), ""
    if request in _H1 and response == request:
        return "", ""
    return f" {request}", f"{response} "


@implementer(IConfigure, IResponse, IError)
class Dumper:
    """
    Writes flows to C{outfile} (the process's real stdout when not given),
    or to the Twisted log when C{to_log} is true.

    @ivar messages: The L{MessageDumper} nested under this addon while
        C{flow_detail} is 1 or more (once loaded by a master).
    """

    name = "dumper"

    def __init__(self, outfile: Optional[TextOut] = None, to_log: bool = False) -> None:
        self.outfile = outfile
        self.to_log = to_log
        self.flow_detail = 1
        self.filter: Optional[Callable[[Any], bool]] = None
        self.master: Optional[Master] = None
        self.messages = MessageDumper(self)

    def load(self, loader: Loader) -> None:
        """
        Declare C{flow_detail}.
        """
        self.master = loader.master
        loader.add_option(
            "flow_detail",
            int,
            1,
            "Flow output: 0 none, 1 one line per flow and per WebSocket/TCP message, "
            "2 headers, 3 bodies and messages (cut), 4 whole.",
            choices=[0, 1, 2, 3, 4],
        )
        loader.add_option(
            "dumper_filter",
            Optional[str],
            None,
            "Print only the flows matching this filter expression (also the "
            "command line's positional argument).",
        )
        loader.master.options.subscribe(filter_check("dumper_filter"))

    def configure(self, options: Options, updated: set[str]) -> None:
        """
        Follow C{flow_detail}: nest the L{MessageDumper} while it is 1 or more.
        """
        if "flow_detail" in updated:
            self.flow_detail = options.flow_detail
        if "dumper_filter" in updated:
            self.filter = filter_option(options, "dumper_filter")
        if self.master is not None:
            self.master.addons.nest(self.messages, self, self.flow_detail >= 1)

    def _write(self, text: str) -> None:
        """
        Print C{text} (control characters and bytes that are not UTF-8 escaped).
        """
        text = _printable(text)
        if self.to_log:
            _log.info("{flow}", flow=text)
            return
        out = self.outfile or sys.__stdout__
        if out is None:  # (no standard output at all)
            return
        out.write(text + "\n")
        out.flush()

    def shows(self, flow: Flow) -> bool:
        """
        Whether C{flow} is printed: it matches C{dumper_filter}, if set.
        """
        keep = self.filter
        return keep is None or keep(flow)

    def response(self, flow: HTTPFlow) -> None:
        """
        Print a finished flow.
        """
        if self.flow_detail > 0 and self.shows(flow):
            self._write(self._http(flow))

    def error(self, flow: HTTPFlow) -> None:
        """
        Print a failed flow (once: its error line is the only one printed).
        """
        if self.flow_detail > 0 and self.shows(flow):
            self._write(self._http(flow))

    def _http(self, flow: HTTPFlow) -> str:
        request, response, error = flow.request, flow.response, flow.error
        before, after = _versions(
            request.http_version, response.http_version if response is not None else None
        )
        client = "[replay]" if flow.is_replay == "request" else _address(flow.client_conn.address)
        line = f"{client}: {request.method} {request.pretty_url}{before}"
        ending = ""
        if error is not None:
            ending = f" << error: {error.msg}"
        elif response is not None:
            size = "streamed" if response.stream else human_size(len(response.raw_content or b""))
            duration = ""
            start, end = request.timestamp_start, response.timestamp_end
            if start is not None and end is not None:
                duration = f" {max(end - start, 0) * 1000:.0f}ms"
            replay = "[replay] " if flow.is_replay == "response" else ""
            ending = f" << {replay}{after}{response.status_code} {response.reason} {size}{duration}"
        if self.flow_detail < 2:
            return line + ending
        # As mitmdump: the request and its headers, then the response line
        # and its headers (an error takes the response's place).
        lines = [line, *self._message(request)]
        if ending:
            lines.append(ending)
        if response is not None and error is None:
            lines.extend(self._message(response))
        return "\n".join(lines)

    def _message(self, message: Message) -> list[str]:
        lines = _fields(message.headers)
        if self.flow_detail >= 3 and not message.stream:
            try:
                body = message.get_content() or b""
            except DecodedSizeError as e:
                lines += ["", f"    (body too large to decode: {e.encoding} content of "
                              f"{human_size(len(message.raw_content or b''))} decodes to more "
                              f"than {human_size(e.limit)}; max_decoded_size)"]
                body = b""
            except ValueError:
                body = message.raw_content or b""
            lines += self._contents(body)
        if message.trailers:
            lines += ["    --- HTTP Trailers", *_fields(message.trailers)]
        return lines

    def _contents(self, body: bytes) -> list[str]:
        """
        The lines showing a body or a message's content: none below
        C{flow_detail} 3, cut at 4 KiB at 3.
        """
        if self.flow_detail < 3 or not body:
            return []
        shown = body if self.flow_detail >= 4 else body[:_BODY_PREVIEW]
        lines = ["", *("    " + line for line in shown.decode("utf-8", "replace").splitlines())]
        if len(shown) < len(body):
            lines.append(f"    ... ({human_size(len(body) - len(shown))} more)")
        return lines


def _fields(headers: Headers) -> list[str]:
    return [f"    {name}: {value}" for name, value in headers.items(multi=True)]


_CLOSED_NORMALLY = (1000, 1001, 1005)


@implementer(IWebSocketMessage, IWebSocketEnd, IWebSocketError, ITCPMessage, ITCPError)
class MessageDumper:
    """
    Prints WebSocket and raw TCP messages, WebSocket closes and the errors
    of both, as mitmdump does, through its L{Dumper} (which nests it only
    while C{flow_detail} is 1 or more).
    """

    name = "dumper.messages"

    def __init__(self, dumper: Dumper) -> None:
        self.dumper = dumper

    def _print(self, flow: Flow, line: str, content: bytes = b"") -> None:
        if not self.dumper.shows(flow):
            return
        self.dumper._write("\n".join([line, *self.dumper._contents(content)]))

    def websocket_message(self, flow: HTTPFlow) -> None:
        """
        One line per message: who sent it to whom, and its type.
        """
        message = flow.messages[-1]
        arrow = "->" if message.from_client else "<-"
        line = (
            f"{_address(flow.client_conn.address)} {arrow} WebSocket "
            f"{message.type.name.lower()} message {arrow} {_server(flow)}{flow.request.path}"
        )
        self._print(flow, line, message.content if self.dumper.flow_detail >= 3 else b"")

    def websocket_end(self, flow: HTTPFlow) -> None:
        """
        The close handshake ended the connection.
        """
        data = flow.websocket
        assert data is not None  # (the event comes with the upgraded flow)
        code, reason = data.close_code, data.close_reason or ""
        if code is None or code in _CLOSED_NORMALLY:
            by = "client" if data.closed_by_client else "server"
            self._print(flow, f"WebSocket connection closed by {by}: {code} {reason}".rstrip())
        else:
            self._print(flow, f"Error in WebSocket connection to {_server(flow)}: "
                        f"close code {code} {reason}".rstrip())

    def websocket_error(self, flow: HTTPFlow) -> None:
        """
        The connection failed or was killed.
        """
        self._print(flow, f"Error in WebSocket connection to {_server(flow)}: {_error(flow)}")

    def tcp_message(self, flow: TCPFlow) -> None:
        """
        One line per chunk relayed.
        """
        message = flow.messages[-1]
        arrow = "->" if message.from_client else "<-"
        line = f"{_address(flow.client_conn.address)} {arrow} tcp {arrow} {_server(flow)}"
        self._print(flow, line, bytes(message.content) if self.dumper.flow_detail >= 3 else b"")

    def tcp_error(self, flow: TCPFlow) -> None:
        """
        The connection failed (or could not be made).
        """
        self._print(flow, f"Error in TCP connection to {_server(flow)}: {_error(flow)}")


def _server(flow: Union[HTTPFlow, TCPFlow]) -> str:
    conn = flow.server_conn
    return _address(conn.address) if conn is not None else "?"


def _error(flow: Flow) -> str:
    return flow.error.msg if flow.error is not None else "Connection killed."
