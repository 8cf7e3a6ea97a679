# -*- test-case-name: tests.e2e.test_examples_flows -*-
"""
An addon that counts requests per host and prints the table when the proxy
stops.  Run it on live traffic, or over a flow file (C{-r}: loaded flows
fire the same events, with C{flow.live == False}), without sending
anything::

    twistd -n interceptor -q -r flows.bin --addon examples/count_hosts.py --listen tcp:0:interface=127.0.0.1

(mitmproxy users know this as C{mitmdump -nr flows.bin -s count_hosts.py}.)
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any


class CountHosts:
    name = "count_hosts"

    def __init__(self) -> None:
        self.hosts: Counter[str] = Counter()
        self.loaded = 0

    def request(self, flow: Any) -> None:
        self.hosts[flow.request.pretty_host] += 1
        if not flow.live:
            self.loaded += 1

    def done(self) -> None:
        out = sys.__stdout__
        if out is None or not self.hosts:
            return
        out.write(f"{sum(self.hosts.values())} requests ({self.loaded} loaded from a file):\n")
        for host, count in self.hosts.most_common():
            out.write(f"{count:8d}  {host}\n")
        out.flush()


addons = [CountHosts()]
