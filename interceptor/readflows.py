# -*- test-case-name: tests.test_readflows -*-
"""
C{interceptor-read}: print the flows of a flow file as the proxy prints
them live, filtered, or convert them to HAR::

    interceptor-read flows.bin                       # one line per flow
    interceptor-read flows.bin '~d example.org & ~c 500' -v
    interceptor-read mitmproxy.flows --har out.har   # mitmproxy's files too
    interceptor-read capture.har '~m POST' -vv       # and HAR files

The flows are read one at a time (a file of any size takes the memory of
one flow), each goes through the same dumper as C{twistd interceptor}'s
output, with its events in the order they happened.  On a terminal, a
progress line on standard error follows big files.

Exit status: 0, also when the last record was cut short (a killed proxy:
reported on standard error); 1 when the file cannot be read (one line
naming the file and the offset); 2 for a usage error (a filter typo).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import IO, Optional, Sequence

from interceptor.core.master import Master
from interceptor import flowfilter
from interceptor.core.options import proxy_options

__all__ = ["main"]

PROGRESS_EVERY = 0.2
"""Seconds between two updates of the progress line."""

PROGRESS_FROM = 4 * 1024 * 1024
"""Files smaller than this (bytes) get no progress line."""


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interceptor-read",
        description="Print the flows of a flow file (interceptor's, mitmproxy's, or HAR) "
        "as the proxy prints them, optionally filtered, or convert them to HAR.",
    )
    parser.add_argument("file", help="the flow file")
    parser.add_argument("filter", nargs="*", help="a filter expression (words are joined)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="-v headers, -vv bodies (cut at 4 KiB), -vvv whole bodies")
    parser.add_argument("-q", "--quiet", action="store_true", help="print no flows")
    parser.add_argument("--har", metavar="OUT", help="also write the HTTP flows to OUT as HAR (- for stdout)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """
    Run C{interceptor-read} with C{argv} (the process's arguments when None).

    @return: The exit status.
    """
    from addons.dumper import Dumper
    from addons.readfile import load_flow
    from addons.savehar import HarRecorder
    from interceptor.io import FlowReader, FlowReadException

    parser = _arguments()
    args = parser.parse_intermixed_args(argv)
    detail = 0 if args.quiet or args.har == "-" else min(1 + args.verbose, 4)
    options = proxy_options()
    progress = _Progress(sys.stderr) if sys.stdout.isatty() else None
    out = _Out(sys.stdout, progress)
    dumper = Dumper(outfile=out)
    master = Master(options, addons=[dumper])
    expression = " ".join(args.filter) or None
    try:
        if expression is not None:
            flowfilter.parse(expression)
    except flowfilter.FilterSyntaxError as e:
        parser.exit(2, f"interceptor-read: bad filter expression: {e}\n")
    options.update(flow_detail=detail, dumper_filter=expression)
    master.addons.configure_all(options, options.keys())
    har = HarRecorder(dumper.filter) if args.har else None
    if har is not None:
        master.addons.add(har)
    try:
        fileobj = open(args.file, "rb")
    except OSError as e:
        parser.exit(1, f"interceptor-read: {args.file}: {e.strerror}\n")
    if progress is not None:
        progress.follow(fileobj)
    count = 0
    with fileobj:
        reader = FlowReader(fileobj, name=args.file)
        try:
            for flow in reader.stream():
                flow.live = False
                load_flow(master.addons, flow)
                if out.gone:
                    return 0
                count += 1
                if progress is not None:
                    progress.update(count)
        except FlowReadException as e:
            if progress is not None:
                progress.clear()
            print(f"interceptor-read: {e}", file=sys.stderr)
            return 1
    if progress is not None:
        progress.clear()
    for problem in reader.problems:
        print(f"interceptor-read: {problem}", file=sys.stderr)
    if har is not None:
        har.finish(args.har)
    return 0


class _Progress:
    """
    A progress line on a terminal: flows read, and how far into the file.
    """

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.fileobj: Optional[IO[bytes]] = None
        self.size = 0
        self.shown = False
        self.at = time.monotonic()

    def follow(self, fileobj: IO[bytes]) -> None:
        self.fileobj = fileobj
        try:
            self.size = os.fstat(fileobj.fileno()).st_size
        except OSError:
            self.size = 0

    def update(self, count: int) -> None:
        if self.size < PROGRESS_FROM:
            return
        now = time.monotonic()
        if now - self.at < PROGRESS_EVERY:
            return
        self.at = now
        done = min(self.fileobj.tell(), self.size) if self.fileobj is not None else 0
        self.out.write(f"\r{count} flows, {done * 100 // self.size}% of {self.size // 1024} KiB")
        self.out.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.shown = False
            self.out.write("\r\x1b[K")
            self.out.flush()


class _Out:
    """
    Standard output for the dumper: the progress line is cleared before a
    flow is printed over it.
    """

    def __init__(self, out: IO[str], progress: Optional[_Progress]) -> None:
        self.out = out
        self.progress = progress
        self.gone = False

    def write(self, text: str) -> int:
        if self.progress is not None:
            self.progress.clear()
        try:
            return self.out.write(text)
        except BrokenPipeError:
            self._went_away()
            return 0

    def flush(self) -> None:
        try:
            self.out.flush()
        except BrokenPipeError:
            self._went_away()

    def _went_away(self) -> None:
        # (Piped into head, which has read enough.)  Stop, and keep Python
        # from failing to flush at exit.
        self.gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.out.fileno())
        os.close(devnull)


def run() -> None:
    """
    The console script's entry point.
    """
    sys.exit(main())


if __name__ == "__main__":
    run()
