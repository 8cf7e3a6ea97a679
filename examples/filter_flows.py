# -*- test-case-name: tests.e2e.test_flowfilter_real -*-
"""
An addon that logs the flows matching a filter expression given as an
option (the language mitmproxy users type, see L{interceptor.flowfilter})::

    twistd -n interceptor --addon examples/filter_flows.py \\
        --set 'filter_flows=~d example\\.com & (~c 500 | ~e)'

Each finished flow (a response, an error, the end of a WebSocket or TCP
connection) that matches is logged once.  An empty expression (the
default) logs nothing.  A malformed one is refused with the column and what
was expected there, and the option keeps its previous value.
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.logger import Logger

from interceptor import flowfilter
from interceptor.options import OptionsError

_log = Logger(namespace="examples.filter_flows")


class FilterFlows:
    """
    Logs the finished flows that match the option C{filter_flows}.

    @ivar filter: The parsed filter, or None when the option is empty.
    @ivar matched: The flows logged so far, in order.
    """

    name = "filter_flows"

    def __init__(self) -> None:
        self.filter: Optional[flowfilter.Filter] = None
        self.matched: list[Any] = []

    def load(self, loader: Any) -> None:
        """
        Declare the option C{filter_flows}.
        """
        loader.add_option(
            "filter_flows", str, "",
            "Log the finished flows matching this filter expression (empty: none).",
        )

    def configure(self, options: Any, updated: set[str]) -> None:
        """
        Parse C{filter_flows}; refuse a malformed expression.
        """
        if "filter_flows" in updated:
            text = options.filter_flows
            try:
                self.filter = flowfilter.parse(text) if text else None
            except flowfilter.FilterSyntaxError as e:
                raise OptionsError(f"option filter_flows: {e}") from None

    def _finished(self, flow: Any) -> None:
        if self.filter is not None and self.filter(flow):
            self.matched.append(flow)
            _log.info("filter_flows: {flow!r} matches {filter}", flow=flow, filter=self.filter)

    def response(self, flow: Any) -> None:
        """
        A response is complete (a WebSocket handshake's waits for its end).
        """
        if flow.websocket is None and flow.response.status_code != 101:
            self._finished(flow)

    def error(self, flow: Any) -> None:
        """
        An HTTP flow failed.
        """
        self._finished(flow)

    def websocket_end(self, flow: Any) -> None:
        """
        A WebSocket connection ended.
        """
        self._finished(flow)

    def tcp_end(self, flow: Any) -> None:
        """
        A raw TCP connection ended.
        """
        self._finished(flow)


addons = [FilterFlows()]
