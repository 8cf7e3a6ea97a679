# -*- test-case-name: tests.e2e.test_examples_flows -*-
"""
An addon that sends a request once more, through client replay, when its
server answered 502, 503 or 504: the client gets the first answer, and the
retry is a flow of its own (C{flow.is_replay == "request"}) that the other
addons see, print and record like any other::

    twistd -n interceptor --addon examples/retry_on_error.py

Client replay is the built-in C{clientplayback} addon (C{-C FILE} replays a
flow file); C{start_replay} takes any flows that are not live, here a
copy of the live one.
"""

from __future__ import annotations

from typing import Any

RETRIED = (502, 503, 504)


class RetryOnError:
    name = "retry_on_error"

    def __init__(self) -> None:
        self.master: Any = None

    def load(self, loader: Any) -> None:
        self.master = loader.master

    def response(self, flow: Any) -> None:
        if flow.is_replay or flow.response.status_code not in RETRIED:
            return
        playback = self.master.addons.get("clientplayback")
        if playback is not None:
            retry = flow.copy()  # a copy is not live: it may be replayed
            retry.metadata["retry_of"] = flow.id
            playback.start_replay(iter([retry]))


addons = [RetryOnError()]
