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

While a master runs it is what C{interceptor.ctx} refers to (see
L{interceptor.core.context}), and records of Python's C{logging} reach its
log (L{interceptor.core.log.StdlibBridge}).  Its L{CommandManager}
(C{master.commands}) holds the commands of its addons.

The tick loop calls every addon's C{tick()} each C{tick_interval} seconds
(0.1 by default) on the master's clock; a tick whose Deferred has not
fired yet is never started again before it does.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Iterable, Optional, cast

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IReactorCore,
    IReactorTCP,
    IReactorThreads,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from interceptor.core import context
from interceptor.core.access import listens_beyond_loopback
from interceptor.core.addonmanager import AddonManager
from interceptor.core.commands import CommandManager
from interceptor.core.log import LogBridge, LogEntry, stdlib_bridge
from interceptor.core.options import (
    Options,
    OptionsError,
    did_you_mean,
    parse_size,
    proxy_options,
)
from interceptor.model.encoding import decode_cap

if TYPE_CHECKING:
    from interceptor.proxy import ProxyFactory

__all__ = ["Master", "IProxyReactor", "DEFAULT_BACKLOG", "listening_at", "server_endpoint"]

_log = Logger(namespace="interceptor.master")

DEFAULT_BACKLOG = 511
"""The listen backlog unless an endpoint string gives one (C{backlog=N}): nginx's
default; the kernel caps it at C{net.core.somaxconn}.  Twisted's default, 50,
dropped 44 % of a burst of 10,000 new connections."""

# The endpoint types of Twisted that take a backlog keyword.
_BACKLOG_TYPES = frozenset({"tcp", "tcp6", "ssl", "unix"})


def server_endpoint(reactor: Any, description: str) -> IStreamServerEndpoint:
    """
    The server endpoint of C{description}, as L{serverFromString} makes it,
    but listening with a backlog of L{DEFAULT_BACKLOG} unless the string
    gives its own (C{tcp:8080:backlog=N}).

    @raise ValueError: (or TypeError, KeyError, OSError) as
        L{serverFromString} does for a bad string.
    """
    endpoint: IStreamServerEndpoint
    parts = re.split(r"(?<!\\):", description)
    if parts[0].lower() in _BACKLOG_TYPES and not any(
        part.startswith("backlog=") for part in parts[1:]
    ):
        try:
            endpoint = serverFromString(reactor, f"{description}:backlog={DEFAULT_BACKLOG}")
            return endpoint
        except TypeError:
            # (The backlog was given positionally: tcp:8080:127.0.0.1:100.)
            pass
    endpoint = serverFromString(reactor, description)
    return endpoint


_DECODE_CAP_OPTIONS = ("max_decoded_size", "body_size_limit")


class IProxyReactor(IReactorCore, IReactorTime, IReactorTCP, IReactorThreads):
    """
    The reactor a master runs on, for the type checker: what the reactors
    Twisted installs provide (Twisted types its own global reactor with such
    a make-believe interface).  Tests may inject a
    L{twisted.internet.task.Clock}: it has only L{IReactorTime}, which is
    all that a master without ports and a service uses.
    """


class Master:
    """
    One proxy instance.

    @ivar options: The L{Options}.
    @ivar addons: The L{AddonManager}.
    @ivar running: Whether L{start} has been called and L{stop} not yet.
    @ivar starting: Whether L{start} is configuring the addons (an addon
        that rejects the options then makes L{start} fail).
    @ivar commands: The L{CommandManager} of the addons' commands.
    @ivar owns_reactor: Whether L{shutdown} stops the reactor (C{twistd
        interceptor} sets it) rather than only this master.
    @ivar ports: The listening ports opened by L{listen}.
    @ivar reactor: The reactor the sockets run on (injected for tests).
    @ivar clock: The L{IReactorTime} every proxy timer runs on: the tick
        loop, the read and idle timeouts, the ClientHello, protocol
        detection, CONNECT tunnel and WebSocket close timers.  It is the
        reactor unless given; a test passes a L{twisted.internet.task.Clock}
        to run real sockets but advance the timeouts itself.  Flow
        timestamps stay real time.
    """

    def __init__(
        self,
        options: Optional[Options] = None,
        addons: Iterable[Any] = (),
        reactor: Optional[IProxyReactor] = None,
        clock: Optional[IReactorTime] = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            # (Twisted types it as provided by _IReactorCommon, which leaves
            # out IReactorThreads; its reactors provide that too.)
            reactor = cast(IProxyReactor, global_reactor)
        self.reactor: IProxyReactor = reactor
        self.clock: IReactorTime = clock if clock is not None else reactor
        self.options = options if options is not None else proxy_options()
        self.commands = CommandManager(self)
        self.addons = AddonManager(self)
        self.running = False
        self.starting = False
        self.owns_reactor = False
        self._announced = False
        self.ports: list[IListeningPort] = []
        self.factories: list[ProxyFactory] = []
        self._ticker: Optional[LoopingCall] = None
        self._ticking: Optional[Deferred[None]] = None
        # (Its result is what the chain leaves, unused: _follow fires with None.)
        self._stopping: Optional[Deferred[Any]] = None
        self._bridge = LogBridge(self._deliver_log, reactor)
        self.options.subscribe(self._options_changed)
        self.addons.add(*addons)

    def _deliver_log(self, entry: LogEntry) -> None:
        self.addons.trigger("log", entry)

    def _options_changed(self, options: Options, updated: set[str]) -> None:
        if not self.running:
            return
        if "tick_interval" in updated:
            self._check_tick_interval()
        if not updated.isdisjoint(_DECODE_CAP_OPTIONS):
            self._hold_decode_cap()
        self.addons.configure_all(options, updated)
        if "tick_interval" in updated:
            self._start_ticking()

    def _tick_interval(self) -> float:
        return getattr(self.options, "tick_interval", 0.1)

    def _check_tick_interval(self) -> None:
        interval = self._tick_interval()
        if not interval > 0:
            raise OptionsError(f"option tick_interval: must be more than 0, got {interval!r}")

    def start(self) -> None:
        """
        Start the proxy: addons get C{configure} with every option, the log
        bridge and the tick loop start.

        @raise OptionsError: An addon (a script too) rejected the options,
            or a C{--set} name held until every addon had loaded was
            declared by none of them.  L{stop} still cleans up.
        """
        if self.running:
            return
        self._check_tick_interval()
        self.running = True
        self.starting = True
        self._bridge.install()
        stdlib_bridge.join()
        context.started(self)
        try:
            self._hold_decode_cap()
            self.addons.configure_all(self.options, self.options.keys())
            unknown = sorted(getattr(self.options, "deferred", ()))
            if unknown:
                raise OptionsError(
                    f"unknown option {unknown[0]}: no addon declared it"
                    f"{did_you_mean(unknown[0], self.options.keys())}"
                )
        finally:
            self.starting = False
        self._start_ticking()

    def announce_running(self) -> Deferred[Any]:
        """
        Fire the C{running} event (once per start): the proxy is up and
        listens on its endpoints.  C{twistd interceptor} calls it once every
        endpoint listens; an embedding application calls it when it is ready.

        @return: A Deferred firing when every C{running} hook has finished.
        """
        if not self.running or self._announced:
            return succeed(None)
        self._announced = True
        return self.addons.trigger("running")

    def shutdown(self) -> Deferred[None]:
        """
        Stop the proxy, as mitmproxy's C{ctx.master.shutdown()}: under
        C{twistd} (L{owns_reactor}) the reactor stops, which stops this
        master and ends the process; otherwise only this master stops.

        @return: A Deferred firing once this master has stopped.
        """
        if self.owns_reactor and getattr(self.reactor, "running", False):
            stopped: Deferred[None] = Deferred()
            self.reactor.callLater(0, self.reactor.stop)
            self.reactor.addSystemEventTrigger("after", "shutdown", stopped.callback, None)
            return stopped
        return self.stop()

    def _hold_decode_cap(self) -> None:
        # What a message may decode to while this master runs: the smallest
        # of max_decoded_size and body_size_limit (see encoding.DecodeCap).
        options = self.options
        sizes = [parse_size(getattr(options, name)) for name in _DECODE_CAP_OPTIONS if name in options]
        caps = [size for size in sizes if size]
        if caps:
            decode_cap.hold(self, min(caps))

    def _start_ticking(self) -> None:
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = self.clock
        self._ticker.start(self._tick_interval(), now=False)

    def _tick(self) -> Optional[Deferred[None]]:
        # The LoopingCall waits for the Deferred; the flag also covers a
        # tick still running when a new tick_interval restarted the loop.
        if self._ticking is not None:
            return None
        d = self.addons.trigger("tick")
        finished: list[Any] = []
        d.addBoth(finished.append)
        if finished:
            return None
        self._ticking = d

        def over(_: Any) -> None:
            self._ticking = None

        return d.addBoth(over)

    def listen(self, description: str) -> Deferred[IListeningPort]:
        """
        Accept proxy clients on a server endpoint string such as
        C{"tcp:8080:interface=127.0.0.1"} or C{"ssl:8443:..."}, with a
        backlog of L{DEFAULT_BACKLOG} unless it says C{backlog=N}.

        @return: A Deferred firing with the L{IListeningPort}.
        """
        from interceptor.proxy import ProxyFactory

        factory = ProxyFactory(self)
        self.factories.append(factory)
        endpoint = server_endpoint(self.reactor, description)
        d: Deferred[IListeningPort] = endpoint.listen(factory)

        def listening(port: IListeningPort) -> IListeningPort:
            self.ports.append(port)
            mode = self.options.mode if "mode" in self.options else "regular"
            address = port.getHost()
            _log.info("Proxy listening on {where}", where=listening_at(mode, description, address))
            self._warn_if_open(address)
            return port

        return d.addCallback(listening)

    def _warn_if_open(self, address: Any) -> None:
        # Listening beyond loopback without proxyauth: whoever reaches the
        # address may use the proxy (block_global still refuses public
        # clients when the block addon is loaded).
        if not isinstance(address, (IPv4Address, IPv6Address)):
            return
        options = self.options
        if not listens_beyond_loopback(address.host) or (
            "proxyauth" in options and options.proxyauth
        ):
            return
        _log.warn(
            "Listening on {host}:{port}, beyond loopback, without proxyauth: anyone who "
            "can reach it may use the proxy (set proxyauth=USER:PASS or @HTPASSWD_FILE)",
            host=address.host,
            port=address.port,
        )

    def stop(self) -> Deferred[None]:
        """
        Stop the proxy: close the listening ports and every open connection,
        stop ticking, and call every addon's C{done()}.

        @return: A Deferred firing once all of that has finished (also when
            called again while the proxy is stopping).
        """
        if self._stopping is not None:
            return _follow(self._stopping)
        if not self.running and not self.ports:
            return succeed(None)
        self.running = False
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        self._ticker = None
        closing: list[Deferred[Any]] = [
            d for port in self.ports if (d := port.stopListening()) is not None
        ]
        self.ports = []
        for factory in self.factories:
            closing.append(factory.close_all())
        self.factories = []
        stopping: Deferred[Any] = DeferredList(closing, consumeErrors=True)
        self._stopping = stopping
        stopping.addCallback(lambda _: self.addons.clear())
        stopping.addBoth(self._stopped)
        return _follow(stopping)

    def _stopped(self, result: object) -> None:
        self._released()
        self._stopping = None
        self._announced = False
        return None

    def _released(self) -> None:
        # What start() holds: the log bridges, ctx, the decode cap.
        self._bridge.uninstall()
        stdlib_bridge.leave()
        context.stopped(self)
        decode_cap.release(self)


def listening_at(mode: str, description: str, address: IAddress) -> str:
    """
    Where clients reach a proxy in C{mode} listening on C{address} (from the
    endpoint string C{description}), as the start-up line says it:
    C{http://127.0.0.1:8080}, C{socks5://[::1]:1080 (SOCKS5 mode)},
    C{https://127.0.0.1:8443 (reverse mode: https://example.org)}.
    """
    kind, _, target = mode.partition(":")
    if isinstance(address, (IPv4Address, IPv6Address)):
        host = f"[{address.host}]" if isinstance(address, IPv6Address) else address.host
        tls = description.partition(":")[0] in ("ssl", "tls")
        scheme = {"socks5": "socks5://", "transparent": ""}.get(
            kind, "https://" if tls else "http://"
        )
        where = f"{scheme}{host}:{address.port}"
    else:
        where = str(address)
    note = {
        "upstream": f" (upstream mode: {target})",
        "reverse": f" (reverse mode: {target})",
        "socks5": " (SOCKS5 mode)",
        "transparent": " (transparent mode)",
    }.get(kind, "")
    return where + note


def _follow(d: Deferred[Any]) -> Deferred[None]:
    """
    A new Deferred that fires with C{d}'s result, leaving C{d} as it is.
    """
    follower: Deferred[None] = Deferred()

    def relay(result: Any) -> Any:
        follower.callback(None)
        return result

    d.addBoth(relay)
    return follower
