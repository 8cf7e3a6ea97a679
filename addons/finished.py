# -*- test-case-name: tests.e2e.test_flowfile -*-
"""
L{FinishedFlows}: the events at which a flow is over, for the addons that
keep flows (C{save_stream_file}, C{hardump}, C{interceptor-read --har}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from zope.interface import implementer

from interceptor.core.interfaces import IError, IResponse, IWebSocketEnd, IWebSocketError

if TYPE_CHECKING:
    from interceptor.model.flow import Flow, HTTPFlow

__all__ = ["FinishedFlows"]


@implementer(IResponse, IError, IWebSocketEnd, IWebSocketError)
class FinishedFlows:
    """
    Hands each HTTP flow to L{add} once it is over, if it matches L{keep}:
    at C{response} (a WebSocket flow later, when its connection ends, with
    its messages), C{error}, C{websocket_end} or C{websocket_error}.

    @ivar keep: A filter (L{interceptor.flowfilter}), or None for every flow.
    @ivar count: How many flows were added.
    """

    def __init__(self, keep: Optional[Callable[[Any], bool]]) -> None:
        self.keep = keep
        self.count = 0

    def add(self, flow: Flow) -> bool:
        """
        Keep C{flow}; whether it was kept.
        """
        raise NotImplementedError

    def finished(self, flow: Flow) -> None:
        """
        C{flow} is over: add it if it matches L{keep}.
        """
        if (self.keep is None or self.keep(flow)) and self.add(flow):
            self.count += 1

    def response(self, flow: HTTPFlow) -> None:
        """
        A finished HTTP flow (an upgraded one is over when its connection ends).
        """
        if flow.websocket is None:
            self.finished(flow)

    def error(self, flow: HTTPFlow) -> None:
        """
        A failed HTTP flow.
        """
        self.finished(flow)

    def websocket_end(self, flow: HTTPFlow) -> None:
        """
        A WebSocket flow whose connection ended.
        """
        self.finished(flow)

    def websocket_error(self, flow: HTTPFlow) -> None:
        """
        A WebSocket flow whose connection failed.
        """
        self.finished(flow)
