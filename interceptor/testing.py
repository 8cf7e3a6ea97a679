# -*- test-case-name: tests.test_testing -*-
"""
Helpers for trial test suites that run the proxy in-process::

    from interceptor.testing import start_proxy

    class MyTests(unittest.TestCase):
        async def test_header_added(self):
            proxy = await start_proxy(self, AddHeader(), stream_large_bodies="1m")
            # point a client at proxy.url ("http://127.0.0.1:<port>")
            ...

The proxy listens on C{tcp:0:interface=127.0.0.1}; it is stopped when the
test ends (C{addCleanup}), leaving a clean reactor.

L{LogRecorder} is an addon that keeps the log entries it sees, to check
what the proxy (or an addon) logged::

    recorder = LogRecorder()
    proxy = await start_proxy(self, MyAddon(), recorder)
    ...
    self.assertIn("blocked", recorder.text("warn"))
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.internet.defer import Deferred
from zope.interface import implementer

from interceptor.interfaces import ILog
from interceptor.log import LogEntry
from interceptor.master import Master
from interceptor.options import Options, proxy_options

__all__ = ["LogRecorder", "RunningProxy", "start_proxy"]


@implementer(ILog)
class LogRecorder:
    """
    An addon keeping every log entry it is given.

    @ivar entries: The L{interceptor.log.LogEntry} objects, oldest first.
    """

    name = "logrecorder"

    def __init__(self) -> None:
        self.entries: list[LogEntry] = []

    def log(self, entry: LogEntry) -> None:
        """
        Keep the entry.
        """
        self.entries.append(entry)

    def messages(self, level: Optional[str] = None) -> list[str]:
        """
        The messages of the entries (of one level, when given).
        """
        return [e.msg for e in self.entries if level is None or e.level == level]

    def text(self, level: Optional[str] = None) -> str:
        """
        L{messages}, joined with newlines: handy for C{assertIn}.
        """
        return "\n".join(self.messages(level))


class RunningProxy:
    """
    A proxy started by L{start_proxy}.

    @ivar master: Its L{Master}.
    @ivar port: Its listening port.
    @ivar host: The address it listens on.
    @ivar port_number: The TCP port number.
    @ivar url: C{http://host:port}, to use as a client's proxy URL.
    """

    def __init__(self, master: Master, port: Any) -> None:
        self.master = master
        self.port = port
        address = port.getHost()
        self.host = address.host
        self.port_number = address.port
        self.url = f"http://{self.host}:{self.port_number}"

    def stop(self) -> Deferred:
        """
        Stop the proxy (also done automatically at the end of the test).
        """
        return self.master.stop()


def start_proxy(
    testcase: Optional[Any] = None,
    *addons: Any,
    options: Optional[Options] = None,
    listen: str = "tcp:0:interface=127.0.0.1",
    reactor: Any = None,
    **option_values: Any,
) -> Deferred:
    """
    Start a proxy in this process with C{addons}, listening on C{listen}.

    @param testcase: A trial C{TestCase}; the proxy is stopped in its
        cleanup.  Pass None to stop it yourself.
    @param option_values: Option values to set before starting.
    @return: A Deferred firing with a L{RunningProxy}.
    """
    opts = options if options is not None else proxy_options()
    master = Master(opts, addons=addons, reactor=reactor)
    if option_values:
        opts.update(**option_values)
    master.start()
    if testcase is not None:
        testcase.addCleanup(master.stop)

    def listening(port: Any) -> RunningProxy:
        return RunningProxy(master, port)

    def failed(failure: Any) -> Any:
        # Without a test case nobody else would stop the master: stop it,
        # then report the failure.
        if testcase is not None:
            return failure
        return master.stop().addCallback(lambda _: failure)

    return master.listen(listen).addCallbacks(listening, failed)
