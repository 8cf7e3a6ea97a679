# -*- test-case-name: tests.test_dumper,tests.e2e.test_output -*-
"""
Prints one line per finished flow, as mitmdump does::

    127.0.0.1:53124: GET http://example.org/ << 200 OK 1.2k 14ms

The option C{flow_detail} sets how much: 0 nothing (C{-q}), 1 one line
(the default), 2 also headers (C{-v}), 3 also bodies cut at 4 KiB
(C{-vv}), 4 whole bodies.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Optional, TextIO

from zope.interface import implementer

from interceptor.core.interfaces import IConfigure, IError, IResponse
from interceptor.model.encoding import DecodedSizeError

if TYPE_CHECKING:
    from interceptor.core.addonmanager import Loader
    from interceptor.core.options import Options
    from interceptor.model.connection import Address
    from interceptor.model.flow import HTTPFlow
    from interceptor.model.message import Message

__all__ = ["Dumper", "human_size"]

_BODY_PREVIEW = 4096


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


@implementer(IConfigure, IResponse, IError)
class Dumper:
    """
    Writes flows to C{outfile} (the process's real stdout when not given).
    """

    name = "dumper"

    def __init__(self, outfile: Optional[TextIO] = None) -> None:
        self.outfile = outfile
        self.flow_detail = 1

    def load(self, loader: Loader) -> None:
        """
        Declare C{flow_detail}.
        """
        loader.add_option(
            "flow_detail",
            int,
            1,
            "Flow output: 0 none, 1 one line per flow, 2 headers, 3 bodies (cut), 4 full bodies.",
            choices=[0, 1, 2, 3, 4],
        )

    def configure(self, options: Options, updated: set[str]) -> None:
        """
        Follow C{flow_detail}.
        """
        if "flow_detail" in updated:
            self.flow_detail = options.flow_detail

    def _write(self, text: str) -> None:
        out = self.outfile or sys.__stdout__
        if out is None:  # (no standard output at all)
            return
        out.write(_printable(text) + "\n")
        out.flush()

    def _first_line(self, flow: HTTPFlow) -> str:
        request = flow.request
        return f"{_address(flow.client_conn.address)}: {request.method} {request.pretty_url}"

    def response(self, flow: HTTPFlow) -> None:
        """
        Print a finished flow.
        """
        if self.flow_detail <= 0:
            return
        response = flow.response
        assert response is not None  # (the response event comes with one)
        if response.stream:
            size = "streamed"
        else:
            size = human_size(len(response.raw_content or b""))
        duration = ""
        start, end = flow.request.timestamp_start, response.timestamp_end
        if start is not None and end is not None:
            duration = f" {max(end - start, 0) * 1000:.0f}ms"
        lines = [
            f"{self._first_line(flow)} << {response.status_code} {response.reason} {size}{duration}"
        ]
        if self.flow_detail >= 2:
            lines.append(self._details(flow.request))
            lines.append(self._details(response))
        self._write("\n".join(line for line in lines if line))

    def error(self, flow: HTTPFlow) -> None:
        """
        Print a failed flow.
        """
        if self.flow_detail <= 0 or getattr(flow, "request", None) is None:
            return
        assert flow.error is not None  # (the error event comes with one)
        self._write(f"{self._first_line(flow)} << error: {flow.error.msg}")

    def _details(self, message: Message) -> str:
        lines = [f"    {name}: {value}" for name, value in message.headers.items(multi=True)]
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
            if body:
                shown = body if self.flow_detail >= 4 else body[:_BODY_PREVIEW]
                lines.append("")
                lines.extend("    " + line for line in shown.decode("utf-8", "replace").splitlines())
                if len(shown) < len(body):
                    lines.append(f"    ... ({human_size(len(body) - len(shown))} more)")
        return "\n".join(lines)
