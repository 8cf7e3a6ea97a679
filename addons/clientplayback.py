# -*- test-case-name: tests.e2e.test_replay -*-
"""
Client replay: send recorded requests to their servers again, as
mitmproxy's C{--client-replay}::

    twistd -n interceptor --client-replay flows.bin
    twistd -n interceptor --client-replay flows.bin --set client_replay_concurrency=10

Each request runs through the addon chain like a live one (scripts see
C{requestheaders}, C{request}, C{response} or C{error}, with
C{flow.is_replay == "request"}), so replayed flows are printed and saved
(C{save_stream_file}) like live ones.  The files are read as the replay
goes, never all at once; C{client_replay_concurrency} requests are in
flight at a time (1 by default, as mitmproxy; -1 for no limit).  A server
that refuses or resets gives that flow an error and the replay goes on.
Progress goes to the log every few seconds, and a summary at the end.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

from twisted.logger import Logger
from zope.interface import implementer

from interceptor.core.commands import command
from interceptor.core.interfaces import IConfigure, IDone
from interceptor.core.options import OptionsError
from interceptor.io import FlowReadException, check_flow_files, flows_from_paths, log_problem
from interceptor.layers.replay import ReplayClientSide, prepare_for_replay
from interceptor.model.flow import Flow, HTTPFlow

if TYPE_CHECKING:
    from interceptor.core.addonmanager import Loader
    from interceptor.core.master import Master
    from interceptor.core.options import Options

__all__ = ["ClientPlayback", "replay_problem"]

_log = Logger(namespace="interceptor.clientplayback")

PROGRESS_EVERY = 5.0
"""Seconds between two progress lines in the log."""


def replay_problem(flow: Flow) -> Optional[str]:
    """
    Why C{flow} cannot be replayed, or None if it can.
    """
    if not isinstance(flow, HTTPFlow):
        return f"only HTTP flows can be replayed, not {flow.type}"
    if flow.websocket is not None:
        return "WebSocket flows cannot be replayed"
    if flow.request.raw_content is None:
        return "its request body was streamed, not recorded"
    if flow.live:
        return "it is live"
    return None


@implementer(IConfigure, IDone)
class ClientPlayback:
    """
    Replays the flows of C{client_replay}.

    @ivar replayed: Flows replayed so far (with a response or an error).
    @ivar failed: Of those, the flows that ended with an error.
    @ivar skipped: Flows that could not be replayed.
    @ivar inflight: The replays under way.
    """

    name = "clientplayback"

    def __init__(self) -> None:
        self.master: Optional[Master] = None
        self.replayed = 0
        self.failed = 0
        self.skipped = 0
        self.inflight: list[ReplayClientSide] = []
        self._source: Optional[Iterator[Flow]] = None
        self._started = 0.0
        self._progress_at = 0.0
        self._stopped = False

    def load(self, loader: Loader) -> None:
        """
        Declare C{client_replay} and C{client_replay_concurrency}.
        """
        self.master = loader.master
        loader.add_option("client_replay", Sequence[str], [], "Replay the requests of these flow files.")
        loader.add_option(
            "client_replay_concurrency",
            int,
            1,
            "Replayed requests in flight at a time (-1: no limit).",
        )

    def configure(self, options: Options, updated: set[str]) -> None:
        """
        Check the files of C{client_replay} and start replaying them once
        the proxy runs.

        @raise OptionsError: A file is missing or not a flow file, or the
            concurrency is neither -1 nor 1 or more.
        """
        concurrency = options.client_replay_concurrency
        if "client_replay_concurrency" in updated and not (concurrency == -1 or concurrency >= 1):
            raise OptionsError(
                f"option client_replay_concurrency: -1 (no limit) or 1 or more, got {concurrency}"
            )
        if "client_replay" in updated and options.client_replay:
            paths = list(options.client_replay)
            try:
                check_flow_files(paths)
            except (OSError, FlowReadException) as e:
                raise OptionsError(f"client_replay: {e}") from None
            master = self.master
            if master is not None:
                master.reactor.callLater(0, self.start_replay, flows_from_paths(paths, report=log_problem))

    def start_replay(self, flows: Iterator[Flow]) -> None:
        """
        Replay C{flows} (after those still queued), as many at a time as
        C{client_replay_concurrency} allows.
        """
        if self._source is not None:
            self._source = itertools.chain(self._source, flows)
        else:
            self._source = flows
            self._started = self._progress_at = time.monotonic()
        self._stopped = False
        self._fill()

    def _limit(self) -> Optional[int]:
        master = self.master
        if master is None:
            return 1
        concurrency = master.options.client_replay_concurrency
        return None if concurrency == -1 else concurrency

    def _fill(self) -> None:
        master = self.master
        limit = self._limit()
        while self._source is not None and master is not None and not self._stopped:
            if limit is not None and len(self.inflight) >= limit:
                return
            try:
                flow = next(self._source)
            except StopIteration:
                self._source = None
                break
            except (OSError, FlowReadException) as e:
                _log.error("Client replay stopped: {error}", error=e)
                self._source = None
                break
            problem = replay_problem(flow)
            if problem is not None:
                self.skipped += 1
                _log.warn("Client replay skips {flow!r}: {problem}", flow=flow, problem=problem)
                continue
            assert isinstance(flow, HTTPFlow)
            self._replay(master, flow)
        if self._source is None and not self.inflight:
            self._summary()

    def _replay(self, master: Master, flow: HTTPFlow) -> None:
        prepare_for_replay(flow)
        replay = ReplayClientSide(master, flow)
        self.inflight.append(replay)

        def over(flow: HTTPFlow) -> None:
            self.inflight.remove(replay)
            self.replayed += 1
            flow.live = False
            if flow.error is not None:
                self.failed += 1
                _log.warn("Client replay: {url}: {error}", url=flow.request.url, error=flow.error.msg)
            self._progress()
            self._fill()

        replay.run().addCallback(over).addErrback(
            lambda f: _log.failure("Client replay of {url} crashed", f, url=flow.request.url)
        )

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self._progress_at >= PROGRESS_EVERY:
            self._progress_at = now
            _log.info(
                "Client replay: {replayed} replayed ({failed} failed), {inflight} in flight",
                replayed=self.replayed,
                failed=self.failed,
                inflight=len(self.inflight),
            )

    def _summary(self) -> None:
        if not (self.replayed or self.skipped):
            return
        _log.info(
            "Client replay finished: {replayed} replayed, {ok} answered, {failed} failed, "
            "{skipped} skipped, in {seconds:.1f} s",
            replayed=self.replayed,
            ok=self.replayed - self.failed,
            failed=self.failed,
            skipped=self.skipped,
            seconds=time.monotonic() - self._started,
        )

    def count(self) -> int:
        """
        Replays in flight (the files' flows still to come are not counted:
        they are read as the replay goes).
        """
        return len(self.inflight)

    def stop_replay(self) -> None:
        """
        Send no more of the queued flows (those in flight finish).
        """
        self._stopped = True
        self._source = None

    @command("replay.client")
    def replay_client(self, flows: Sequence[Flow]) -> None:
        """
        The command C{replay.client}: replay C{flows} (after those queued).
        """
        self.start_replay(iter(list(flows)))

    @command("replay.client.stop")
    def replay_client_stop(self) -> None:
        """
        The command C{replay.client.stop}: as L{stop_replay}.
        """
        self.stop_replay()

    @command("replay.client.count")
    def replay_client_count(self) -> int:
        """
        The command C{replay.client.count}: as L{count}.
        """
        return self.count()

    def done(self) -> None:
        """
        The proxy stops: replay no more.
        """
        self.stop_replay()
