# -*- test-case-name: tests.e2e.test_har -*-
"""
Record every HTTP flow into a HAR file as it completes, and summarise a HAR
file (ours or a browser's)::

    twistd -n interceptor --addon examples/har_summary.py --set hardump=flows.har
    python examples/har_summary.py flows.har

As an addon it writes each flow's entry when the flow ends (its response,
its error when it got none, or the end of its WebSocket), so no flow is
kept; the file is a complete HAR once the proxy stops (or C{hardump}
changes), and one line says how many entries it holds.  As a script it
prints one line per entry: method, status, response size, time, URL.
"""

from __future__ import annotations

import sys
from typing import IO, Any, Optional

from twisted.logger import Logger

from interceptor.flow import HTTPFlow
from interceptor.io.har import HarError, HarWriter, read_har
from interceptor.options import OptionsError

_log = Logger(namespace="examples.har_summary")


class HarSummary:
    """
    Writes flows to the HAR file named by the option C{hardump}.

    @ivar writer: The open L{HarWriter}, or None when C{hardump} is "".
    """

    name = "har_summary"

    def __init__(self) -> None:
        self.writer: Optional[HarWriter] = None
        self._file: Optional[IO[bytes]] = None
        self._path = ""

    def load(self, loader: Any) -> None:
        """
        Declare the option C{hardump}.
        """
        loader.add_option("hardump", str, "", "Write every HTTP flow to this HAR file.")

    def configure(self, options: Any, updated: set[str]) -> None:
        """
        Finish the current file and start the newly named one.
        """
        if "hardump" not in updated or options.hardump == self._path:
            return
        self._finish()
        if options.hardump:
            try:
                self._file = open(options.hardump, "wb")
            except OSError as e:
                raise OptionsError(f"option hardump: cannot write {options.hardump}: {e}") from e
            self._path = options.hardump
            self.writer = HarWriter(self._file)

    def _add(self, flow: HTTPFlow) -> None:
        if self.writer is not None:
            self.writer.add(flow)

    def response(self, flow: HTTPFlow) -> None:
        """
        A flow with its response is written now, unless it goes on as a WebSocket.
        """
        if flow.websocket is None:
            self._add(flow)

    def error(self, flow: HTTPFlow) -> None:
        """
        A flow that failed before its response is written with its error.
        """
        if flow.response is None:
            self._add(flow)

    def websocket_end(self, flow: HTTPFlow) -> None:
        """
        A WebSocket flow is written with its messages when it ends.
        """
        self._add(flow)

    def done(self) -> None:
        """
        Complete the file.
        """
        self._finish()

    def _finish(self) -> None:
        if self.writer is None or self._file is None:
            return
        self.writer.close()
        self._file.close()
        _log.info(
            "har_summary: {count} entries written to {path}", count=self.writer.count, path=self._path
        )
        self.writer = self._file = None
        self._path = ""


def summary(fileobj: IO[bytes], name: Optional[str] = None) -> list[str]:
    """
    One line per flow of a HAR file: method, status (or "---"), response
    body size, milliseconds from request to response end, URL.
    """
    lines = []
    for flow in read_har(fileobj, name):
        response = flow.response
        status = str(response.status_code) if response is not None else "---"
        size = len(response.raw_content or b"") if response is not None else 0
        end = response.timestamp_end if response is not None else None
        start = flow.request.timestamp_start
        took = f"{(end - start) * 1000:.0f}ms" if end is not None and start is not None else "-"
        lines.append(f"{flow.request.method} {status} {size}B {took} {flow.request.url}")
    return lines


def main(argv: list[str]) -> int:
    """
    Print the summary of each HAR file named in C{argv}.
    """
    if not argv:
        print("usage: python examples/har_summary.py FILE.har...", file=sys.stderr)
        return 2
    for path in argv:
        try:
            with open(path, "rb") as f:
                print("\n".join(summary(f, path)))
        except (OSError, HarError) as e:
            print(f"har_summary: {e}", file=sys.stderr)
            return 1
    return 0


addons = [HarSummary()]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
