# -*- test-case-name: tests.e2e.test_examples_flows -*-
"""
An addon that answers one host's requests from a flow file (server
replay) while every other host goes to the network: a flaky or paid API
replaced by what it answered yesterday::

    twistd -n interceptor --addon examples/replay_host.py \\
        --set replay_host_file=api.flows --set 'replay_host_filter=~d api\\.example\\.com'

It hands the matching flows of the file to the built-in C{serverplayback}
addon (C{-S FILE} replays a whole file); its C{server_replay_*} options
still decide how requests match.
"""

from __future__ import annotations

from typing import Any

from interceptor import flowfilter
from interceptor.io import FlowReadException, read_flows_from_paths
from interceptor.options import OptionsError


class ReplayHost:
    name = "replay_host"

    def __init__(self) -> None:
        self.master: Any = None

    def load(self, loader: Any) -> None:
        self.master = loader.master
        loader.add_option("replay_host_file", str, "", "A flow file whose responses answer.")
        loader.add_option("replay_host_filter", str, "~all", "Which of its flows answer.")

    def configure(self, options: Any, updated: set[str]) -> None:
        if not updated & {"replay_host_file", "replay_host_filter"} or not options.replay_host_file:
            return
        try:
            keep = flowfilter.parse(options.replay_host_filter)
            flows = read_flows_from_paths([options.replay_host_file])
        except (flowfilter.FilterSyntaxError, FlowReadException) as e:
            raise OptionsError(f"replay_host: {e}") from None
        self.master.addons.get("serverplayback").load_flows(f for f in flows if keep(f))


addons = [ReplayHost()]
