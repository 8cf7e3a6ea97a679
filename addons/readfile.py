# -*- test-case-name: tests.e2e.test_flowfile -*-
"""
Loads flow files at start, as mitmdump's C{-r}, without sending any
traffic::

    twistd -n interceptor -r flows.bin                    # printed by the dumper
    twistd -n interceptor -r flows.bin -w +kept.bin '~d example.org'

Addons see each loaded flow through the events a live flow of its kind
fires, in the same order (as mitmproxy's C{load_flow} does):
C{requestheaders}, C{request}, C{responseheaders}, C{response}, then for a
WebSocket flow C{websocket_start}, one C{websocket_message} per message
and C{websocket_end}, or C{error}; for raw TCP C{tcp_start}, one
C{tcp_message} per message, C{tcp_end} or C{tcp_error}.  A loaded flow has
C{flow.live == False}: addons that act on traffic (access control, loop
detection, server replay) leave it alone.

The files may be interceptor's own flow files, mitmproxy's, or HAR
(L{interceptor.io.FlowReader}); they are read one flow at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from interceptor.core.interfaces import IConfigure
from interceptor.core.options import OptionsError
from interceptor.io import FlowReadException, check_flow_files, flows_from_paths, log_problem
from interceptor.model.flow import Flow, HTTPFlow
from interceptor.model.tcp import TCPFlow

if TYPE_CHECKING:
    from interceptor.core.addonmanager import AddonManager, Loader
    from interceptor.core.master import Master
    from interceptor.core.options import Options

__all__ = ["ReadFile", "lifecycle", "load_flow"]

_log = Logger(namespace="interceptor.readfile")


def lifecycle(flow: Flow) -> Iterator[str]:
    """
    The events a finished flow fired, in order; the messages of a
    WebSocket or TCP flow are put back one by one as their events are
    yielded (each handler sees C{messages[-1]} as the newest).
    """
    if isinstance(flow, HTTPFlow):
        yield "requestheaders"
        yield "request"
        if flow.response is not None:
            yield "responseheaders"
            yield "response"
        websocket = flow.websocket
        if websocket is not None:
            yield from _one_by_one(websocket.messages, "websocket_start", "websocket_message")
            yield "websocket_error" if flow.error is not None else "websocket_end"
        elif flow.error is not None:
            yield "error"
    elif isinstance(flow, TCPFlow):
        yield from _one_by_one(flow.messages, "tcp_start", "tcp_message")
        yield "tcp_error" if flow.error is not None else "tcp_end"


def _one_by_one(messages: list[Any], start: str, event: str) -> Iterator[str]:
    # Empty the list for the start event, then put each message back
    # before its event.
    pending = list(messages)
    messages.clear()
    yield start
    for message in pending:
        messages.append(message)
        yield event


def load_flow(addons: AddonManager, flow: Flow) -> Optional[Deferred[Any]]:
    """
    Fire C{flow}'s events (L{lifecycle}) through C{addons}.

    @return: None when every hook finished at once, else a Deferred firing
        once the last has.
    """
    return _fire(addons, flow, lifecycle(flow))


def _fire(addons: AddonManager, flow: Flow, events: Iterator[str]) -> Optional[Deferred[Any]]:
    for event in events:
        d = addons.run(event, flow)
        if d is not None and not d.called:
            return d.addCallback(lambda _: _fire(addons, flow, events))
    return None


@implementer(IConfigure)
class ReadFile:
    """
    The C{rfile} option: loads its flows once the proxy has started.

    @ivar loaded: How many flows were loaded.
    @ivar finished: Fires once the files have been read (or reading
        stopped on an error).
    """

    name = "readfile"

    def __init__(self) -> None:
        self.master: Optional[Master] = None
        self.loaded = 0
        self.finished: Deferred[int] = Deferred()

    def load(self, loader: Loader) -> None:
        """
        Declare C{rfile}.
        """
        self.master = loader.master
        loader.add_option(
            "rfile",
            Optional[str],
            None,
            "Load the flows of this file at start (interceptor's or mitmproxy's "
            "flow files, or HAR); addons see them through their events.",
        )

    def configure(self, options: Options, updated: set[str]) -> None:
        """
        Check the file of C{rfile}, and load it once the proxy runs.

        @raise OptionsError: The file is missing or not a flow file.
        """
        if "rfile" not in updated or not options.rfile:
            return
        path = options.rfile
        try:
            check_flow_files([path])
        except (OSError, FlowReadException) as e:
            raise OptionsError(f"rfile: {e}") from None
        master = self.master
        if master is not None:
            master.reactor.callLater(0, self.load_flows, flows_from_paths([path], report=log_problem))

    def load_flows(self, flows: Iterator[Flow]) -> Deferred[int]:
        """
        Fire the events of each flow of C{flows}, one flow after the other.

        @return: L{finished}, firing with the number of flows loaded.
        """
        master = self.master
        if master is None:
            raise RuntimeError("ReadFile.load_flows before the addon was loaded")
        self._next(master.addons, flows)
        return self.finished

    def _next(self, addons: AddonManager, flows: Iterator[Flow]) -> None:
        # A loop while hooks finish at once (no recursion however many
        # flows); a hook taking time resumes it when it is done.
        while True:
            try:
                flow = next(flows)
            except StopIteration:
                self._done()
                return
            except (OSError, FlowReadException) as e:
                _log.error("Loading flows stopped: {error}", error=e)
                self._done()
                return
            flow.live = False
            self.loaded += 1
            d = load_flow(addons, flow)
            if d is not None:
                d.addCallback(lambda _: self._next(addons, flows))
                return

    def _done(self) -> None:
        _log.info("Loaded {count} flows", count=self.loaded)
        if not self.finished.called:
            self.finished.callback(self.loaded)

