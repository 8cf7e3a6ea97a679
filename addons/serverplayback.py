# -*- test-case-name: tests.test_serverplayback,tests.e2e.test_replay -*-
"""
Server replay: answer requests from recorded responses, without contacting
the server, as mitmproxy's C{--server-replay}::

    twistd -n interceptor --server-replay flows.bin
    twistd -n interceptor --server-replay flows.bin --set server_replay_extra=404

A request matches a recorded one with the same method, scheme, host, port,
path, query and body; the C{server_replay_ignore_*} options leave parts
out, C{server_replay_use_headers} adds request headers.  Each recorded
response answers once, in the order recorded (C{server_replay_reuse}:
again and again).  A request that matches nothing goes to its server, is
killed, or gets an empty response with a status code
(C{server_replay_extra}).  The answered flow has C{is_replay == "response"}.

The recorded flows are indexed by that key when the option is set: a
lookup is one dict access, whatever the number of flows.  The C{request}
hook (an L{Answerer} nested under L{ServerPlayback}) is in the chain only
while there are recorded responses: otherwise server replay costs the
proxy nothing.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Hashable, Iterable, Optional, Sequence

from twisted.logger import Logger
from zope.interface import implementer

from interceptor.core.commands import command
from interceptor.core.interfaces import IConfigure, IRequest
from interceptor.core.options import OptionsError
from interceptor.io import FlowReadException, flows_from_paths, log_problem
from interceptor.model.flow import Flow, HTTPFlow
from interceptor.model.http import Response
from interceptor.model.url import _qs_decode

if TYPE_CHECKING:
    from interceptor.core.addonmanager import Loader
    from interceptor.core.master import Master
    from interceptor.core.options import Options

__all__ = ["ServerPlayback", "Answerer", "KEY_OPTIONS"]

_log = Logger(namespace="interceptor.serverplayback")

KEY_OPTIONS = frozenset(
    {
        "server_replay_ignore_content",
        "server_replay_ignore_host",
        "server_replay_ignore_params",
        "server_replay_ignore_payload_params",
        "server_replay_ignore_port",
        "server_replay_use_headers",
    }
)
"""The options that change which requests match: the index is rebuilt when one changes."""

_EXTRA = ["forward", "kill", "204", "400", "404", "500"]


@implementer(IRequest)
class Answerer:
    """
    The C{request} hook of a L{ServerPlayback} with recorded responses.
    """

    name = "serverplayback.answerer"

    def __init__(self, playback: ServerPlayback) -> None:
        self.playback = playback

    def request(self, flow: HTTPFlow) -> None:
        """
        See L{ServerPlayback.answer}.
        """
        self.playback.answer(flow)


@implementer(IConfigure)
class ServerPlayback:
    """
    Answers matching requests from the flows of C{server_replay}.

    @ivar index: The recorded flows with a response, by request key, each
        key's flows in the order recorded.
    """

    name = "serverplayback"

    def __init__(self) -> None:
        self.index: dict[Hashable, deque[HTTPFlow]] = {}
        self.options: Optional[Options] = None
        self.master: Optional[Master] = None
        self.answerer = Answerer(self)
        self._ignored_params: frozenset[str] = frozenset()
        self._ignored_fields: frozenset[str] = frozenset()
        self._loaded: Sequence[str] = ()

    def load(self, loader: Loader) -> None:
        """
        Declare mitmproxy's server replay options.
        """
        self.master = loader.master
        add = loader.add_option
        add("server_replay", Sequence[str], [], "Replay server responses from these flow files.")
        add(
            "server_replay_extra",
            str,
            "forward",
            "What a request that matches no recorded flow gets: forward (sent to its "
            "server), kill, or an empty response with that status code.",
            choices=_EXTRA,
        )
        add(
            "server_replay_kill_extra",
            bool,
            False,
            "Kill requests that match no recorded flow (deprecated: server_replay_extra=kill).",
        )
        add(
            "server_replay_reuse",
            bool,
            False,
            "Answer with a recorded response again and again, instead of once each.",
        )
        add("server_replay_nopop", bool, False, "Deprecated alias of server_replay_reuse.")
        add(
            "server_replay_refresh",
            bool,
            True,
            "Move the Date, Expires, Last-Modified and cookie expiry of replayed "
            "responses by the time since they were recorded.",
        )
        add(
            "server_replay_use_headers",
            Sequence[str],
            [],
            "Request headers that must match too.",
        )
        add(
            "server_replay_ignore_content",
            bool,
            False,
            "Match requests whatever their body.",
        )
        add(
            "server_replay_ignore_params",
            Sequence[str],
            [],
            "Query parameters left out of the match.",
        )
        add(
            "server_replay_ignore_payload_params",
            Sequence[str],
            [],
            "Form fields (urlencoded or multipart body) left out of the match.",
        )
        add("server_replay_ignore_host", bool, False, "Match requests whatever their host.")
        add("server_replay_ignore_port", bool, False, "Match requests whatever their port.")

    def configure(self, options: Options, updated: set[str]) -> None:
        """
        Load and index the flows of C{server_replay} when it changes; index
        them again when a matching option changes.

        @raise OptionsError: A file is missing, corrupt or not a flow file.
        """
        self.options = options
        # (Made once here, not for each request's key.)
        self._ignored_params = frozenset(options.server_replay_ignore_params)
        self._ignored_fields = frozenset(options.server_replay_ignore_payload_params)
        if "server_replay_kill_extra" in updated and options.server_replay_kill_extra:
            _log.warn("server_replay_kill_extra is deprecated: use server_replay_extra=kill")
        if "server_replay_nopop" in updated and options.server_replay_nopop:
            _log.warn("server_replay_nopop is deprecated: use server_replay_reuse")
        if "server_replay" in updated and list(options.server_replay) != list(self._loaded):
            try:
                self.load_flows(flows_from_paths(options.server_replay, report=log_problem))
            except (OSError, FlowReadException) as e:
                raise OptionsError(f"server_replay: {e}") from None
            self._loaded = list(options.server_replay)
            if self._loaded:
                _log.info(
                    "Server replay: {count} recorded responses from {paths}",
                    count=self.count(),
                    paths=", ".join(self._loaded),
                )
        elif not updated.isdisjoint(KEY_OPTIONS):
            self.load_flows([flow for flows in self.index.values() for flow in flows])

    def load_flows(self, flows: Iterable[Flow]) -> None:
        """
        Answer from C{flows} (HTTP flows with a response) from now on,
        instead of what was loaded before.
        """
        index: dict[Hashable, deque[HTTPFlow]] = {}
        for flow in flows:
            if isinstance(flow, HTTPFlow) and flow.response is not None:
                flow.websocket = None
                index.setdefault(self.key(flow), deque()).append(flow)
        self.index = index
        self._answering()

    @command("replay.server")
    def replay_server(self, flows: Sequence[Flow]) -> None:
        """
        The command C{replay.server}: answer from C{flows} instead.
        """
        self.load_flows(list(flows))

    @command("replay.server.add")
    def replay_server_add(self, flows: Sequence[Flow]) -> None:
        """
        The command C{replay.server.add}: answer from C{flows} too.
        """
        self.load_flows([*(f for kept in self.index.values() for f in kept), *flows])

    @command("replay.server.stop")
    def replay_server_stop(self) -> None:
        """
        The command C{replay.server.stop}: answer no more.
        """
        self.load_flows([])

    @command("replay.server.count")
    def replay_server_count(self) -> int:
        """
        The command C{replay.server.count}: as L{count}.
        """
        return self.count()

    def _answering(self) -> None:
        # The request hook is in the chain while there is something to answer with.
        if self.master is not None:
            self.master.addons.nest(self.answerer, self, bool(self.index))

    def count(self) -> int:
        """
        How many recorded responses are left to answer with.
        """
        return sum(len(flows) for flows in self.index.values())

    def key(self, flow: HTTPFlow) -> Hashable:
        """
        What a request must have in common with a recorded one to be
        answered by it, with the C{server_replay_*} options in effect.
        """
        options = self.options
        if options is None:
            raise RuntimeError("ServerPlayback.key called before configure")
        request = flow.request
        path, _, query = request.path.partition("?")
        key: list[Any] = [request.scheme, request.method, path]
        if not options.server_replay_ignore_content:
            key.append(self._payload(flow, self._ignored_fields))
        if not options.server_replay_ignore_host:
            key.append(request.pretty_host)
        if not options.server_replay_ignore_port:
            key.append(request.port)
        ignored = self._ignored_params
        key.append(tuple(pair for pair in _qs_decode(query) if pair[0] not in ignored))
        use_headers = options.server_replay_use_headers
        if use_headers:
            key.append(tuple(request.headers.get(name) for name in use_headers))
        return tuple(key)

    @staticmethod
    def _payload(flow: HTTPFlow, ignored: frozenset[str]) -> Hashable:
        request = flow.request
        if ignored:
            content_type = (request.headers.get("content-type") or "").lower()
            if content_type.startswith("application/x-www-form-urlencoded"):
                return tuple(p for p in request.urlencoded_form.items(multi=True) if p[0] not in ignored)
            if content_type.startswith("multipart/form-data"):
                return tuple(
                    p
                    for p in request.multipart_form.items(multi=True)
                    if p[0].decode("utf-8", "replace") not in ignored
                )
        return request.raw_content

    def next_flow(self, flow: HTTPFlow) -> Optional[HTTPFlow]:
        """
        The recorded flow that answers C{flow}, or None; unless reused, it
        answers only once.
        """
        options = self.options
        key = self.key(flow)
        recorded = self.index.get(key)
        if not recorded:
            return None
        if options is not None and (options.server_replay_reuse or options.server_replay_nopop):
            return recorded[0]
        answer = recorded.popleft()
        if not recorded:
            del self.index[key]
            if not self.index:
                # (As mitmproxy: with nothing left, every request goes to its server.)
                self._answering()
        return answer

    def answer(self, flow: HTTPFlow) -> None:
        """
        Answer C{flow} from a recorded response, or as C{server_replay_extra} says.
        """
        options = self.options
        if not self.index or options is None or not flow.live or flow.response is not None:
            return
        recorded = self.next_flow(flow)
        if recorded is not None and recorded.response is not None:
            response = recorded.response.copy()
            if options.server_replay_refresh:
                response.refresh()
            flow.response = response
            flow.is_replay = "response"
            return
        extra = options.server_replay_extra
        if options.server_replay_kill_extra or extra == "kill":
            _log.warn("Server replay: killed {url}: no recorded response", url=flow.request.url)
            flow.kill()
        elif extra != "forward":
            _log.warn(
                "Server replay: answered {url} with {status}: no recorded response",
                url=flow.request.url,
                status=extra,
            )
            flow.response = Response.make(int(extra))
            flow.is_replay = "response"
