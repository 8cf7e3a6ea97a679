# -*- test-case-name: tests.test_master -*-
"""
The master: options, the addon chain, the tick loop and the log bridge,
and the listening ports of one proxy instance.

Embedding the proxy in a Twisted application::

    from interceptor.master import Master
    from interceptor.options import proxy_options

    master = Master(proxy_options(), addons=[MyAddon()])
    master.start()
    d = master.listen("tcp:8080:interface=127.0.0.1")   # fires with the port
    ...
    d = master.stop()    # closes ports and connections, waits for done()
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorCore
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from interceptor.addonmanager import AddonManager
from interceptor.log import LogBridge, LogEntry
from interceptor.options import Options, proxy_options

__all__ = ["Master"]

_log = Logger(namespace="interceptor.master")


class Master:
    """
    One proxy instance.

    @ivar options: The L{Options}.
    @ivar addons: The L{AddonManager}.
    @ivar running: Whether L{start} has been called and L{stop} not yet.
    @ivar ports: The listening ports opened by L{listen}.
    @ivar reactor: The reactor everything runs on (injected for tests).
    """

    def __init__(
        self,
        options: Optional[Options] = None,
        addons: Iterable[Any] = (),
        reactor: Optional[IReactorCore] = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.reactor = reactor
        self.options = options if options is not None else proxy_options()
        self.addons = AddonManager(self)
        self.running = False
        self.ports: list[IListeningPort] = []
        self.factories: list[Any] = []
        self._ticker: Optional[LoopingCall] = None
        self._bridge = LogBridge(self._deliver_log)
        self.options.subscribe(self._options_changed)
        self.addons.add(*addons)

    def _deliver_log(self, entry: LogEntry) -> None:
        self.addons.trigger("log", entry)

    def _options_changed(self, options: Options, updated: set[str]) -> None:
        if not self.running:
            return
        self.addons.configure_all(options, updated)
        if "tick_interval" in updated:
            self._start_ticking()

    def start(self) -> None:
        """
        Start the proxy: addons get C{configure} with every option, the log
        bridge and the tick loop start.
        """
        if self.running:
            return
        self.running = True
        self._bridge.install()
        self.addons.configure_all(self.options, self.options.keys())
        self._start_ticking()

    def _start_ticking(self) -> None:
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        self._ticker = LoopingCall(self.addons.trigger, "tick")
        self._ticker.clock = self.reactor
        self._ticker.start(self.options.tick_interval, now=False)

    def listen(self, description: str) -> Deferred:
        """
        Accept proxy clients on a server endpoint string such as
        C{"tcp:8080:interface=127.0.0.1"} or C{"ssl:8443:..."}.

        @return: A Deferred firing with the L{IListeningPort}.
        """
        from interceptor.proxy import ProxyFactory

        factory = ProxyFactory(self)
        self.factories.append(factory)
        endpoint = serverFromString(self.reactor, description)
        d = endpoint.listen(factory)

        def listening(port: IListeningPort) -> IListeningPort:
            self.ports.append(port)
            _log.info("Proxy listening on {address}", address=port.getHost())
            return port

        return d.addCallback(listening)

    def stop(self) -> Deferred:
        """
        Stop the proxy: close the listening ports and every open connection,
        stop ticking, and call every addon's C{done()}.

        @return: A Deferred firing once all of that has finished.
        """
        if not self.running and not self.ports:
            return succeed(None)
        self.running = False
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        closing = [d for port in self.ports if (d := port.stopListening()) is not None]
        self.ports = []
        for factory in self.factories:
            closing.append(factory.close_all())
        self.factories = []
        d = DeferredList(closing, consumeErrors=True)
        d.addCallback(lambda _: self.addons.clear())
        d.addBoth(self._stopped)
        return d

    def _stopped(self, result: Any) -> Any:
        self._bridge.uninstall()
        return None
