# -*- test-case-name: tests.compat.test_runtime -*-
"""
Built-in commands that belong to no other addon, as mitmproxy's:

- C{inject.websocket FLOW TO_CLIENT MESSAGE [IS_TEXT]} and
  C{inject.tcp FLOW TO_CLIENT MESSAGE}: send a message made by the proxy on
  a live connection;
- C{view.flows.add FLOWS}, C{view.flows.count}, C{view.flows.clear}: a
  minimal view, the flows that commands name with C{@all} or a filter
  expression.  It keeps only the flows added to it (unlike mitmproxy's,
  which keeps every flow), so a long-running proxy's memory stays flat.
"""

from __future__ import annotations

from typing import Sequence, Union

from interceptor.core.commands import CommandError, command
from interceptor.layers.tcp_inject import inject_tcp
from interceptor.model.flow import Flow, HTTPFlow
from interceptor.model.tcp import TCPFlow
from interceptor.model.websocket import inject

__all__ = ["Inject", "View"]


class Inject:
    """
    The C{inject.websocket} and C{inject.tcp} commands.
    """

    name = "inject"

    @command("inject.websocket")
    def inject_websocket(
        self, flow: Flow, to_client: bool, message: Union[bytes, str], is_text: bool = True
    ) -> None:
        """
        Send C{message} on the live WebSocket connection of C{flow}.
        """
        if not isinstance(flow, HTTPFlow):
            raise CommandError(f"inject.websocket: {flow!r} is not a WebSocket flow")
        try:
            inject(flow, to_client, message, is_text)
        except ValueError as e:
            raise CommandError(f"inject.websocket: {e}") from None

    @command("inject.tcp")
    def inject_tcp(self, flow: Flow, to_client: bool, message: Union[bytes, str]) -> None:
        """
        Send C{message} on the live raw TCP connection of C{flow}.
        """
        if not isinstance(flow, TCPFlow):
            raise CommandError(f"inject.tcp: {flow!r} is not a TCP flow")
        try:
            inject_tcp(flow, to_client, message)
        except ValueError as e:
            raise CommandError(f"inject.tcp: {e}") from None


class View:
    """
    A list of flows that commands can name (see the module docstring).

    @ivar flows: The flows added, oldest first.
    """

    name = "view"

    def __init__(self) -> None:
        self.flows: list[Flow] = []

    @command("view.flows.add")
    def add(self, flows: Sequence[Flow]) -> None:
        """
        Add C{flows} (those not in the view yet).
        """
        known = {id(f) for f in self.flows}
        for flow in flows:
            if id(flow) not in known:
                known.add(id(flow))
                self.flows.append(flow)

    @command("view.flows.count")
    def count(self) -> int:
        """
        How many flows the view holds.
        """
        return len(self.flows)

    @command("view.flows.clear")
    def clear(self) -> None:
        """
        Forget every flow.
        """
        self.flows.clear()
