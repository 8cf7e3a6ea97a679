# -*- test-case-name: tests.e2e.test_examples_flows -*-
"""
An addon that keeps the flows that went wrong (an error, or a 5xx answer)
in a flow file of their own, with L{interceptor.io.FlowWriter}::

    twistd -n interceptor --addon examples/save_errors.py --set save_errors_file=bad.flows
    interceptor-read bad.flows -v          # later: what failed, with headers

The same file format as C{-w}: C{interceptor-read}, C{-r}, C{-C} and C{-S}
read it.  (C{-w FILE --set save_stream_filter='~e | ~c 5'} does the same
without a script; this one shows the library.)
"""

from __future__ import annotations

from typing import Any, Optional

from interceptor.io import FlowReadException, FlowWriter
from interceptor.options import OptionsError


class SaveErrors:
    """
    Writes each failed HTTP flow, or one answered with a 5xx, to
    C{save_errors_file}.
    """

    name = "save_errors"

    def __init__(self) -> None:
        self.writer: Optional[FlowWriter] = None

    def load(self, loader: Any) -> None:
        loader.add_option("save_errors_file", str, "", "Append failed flows to this flow file.")

    def configure(self, options: Any, updated: set[str]) -> None:
        if "save_errors_file" not in updated:
            return
        self.done()
        if options.save_errors_file:
            try:
                # "+": append, so that a restarted proxy keeps what was there.
                self.writer = FlowWriter.open("+" + options.save_errors_file)
            except FlowReadException as e:
                raise OptionsError(f"option save_errors_file: {e}") from None

    def _keep(self, flow: Any) -> None:
        if self.writer is not None:
            self.writer.add(flow)
            self.writer.flush()

    def response(self, flow: Any) -> None:
        if flow.response.status_code >= 500:
            self._keep(flow)

    def error(self, flow: Any) -> None:
        self._keep(flow)

    def done(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


addons = [SaveErrors()]
