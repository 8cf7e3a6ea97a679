# -*- test-case-name: tests.compat.test_surface -*-
"""
Sizes, durations and times written for people, with the names of
mitmproxy's C{mitmproxy.utils.human}::

    from interceptor.utils import human

    def response(flow):
        print(human.pretty_size(len(flow.response.raw_content or b"")),   # "1.5k"
              human.format_timestamp(flow.request.timestamp_start))      # "2024-05-01 12:00:00"
"""

from __future__ import annotations

import datetime
import ipaddress
from typing import Optional

__all__ = ["format_address", "format_timestamp", "format_timestamp_with_milli", "parse_size",
           "pretty_duration", "pretty_size"]

_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def pretty_size(size: int) -> str:
    """
    A byte count in at most five characters: C{"512b"}, C{"1.5k"}, C{"120m"}.
    """
    if size < 1024:
        return f"{size}b"
    scaled = float(size)
    for suffix in "kmgt":
        scaled /= 1024
        if scaled < 99.95:
            return f"{scaled:.1f}{suffix}"
        if scaled < 1024 or suffix == "t":
            return f"{scaled:.0f}{suffix}"
    raise AssertionError("unreachable: the last suffix returns")


def parse_size(s: Optional[str]) -> Optional[int]:
    """
    A size with an optional b/k/m/g/t suffix (C{"10k"} is 10240); None
    for None.

    @raise ValueError: C{s} is not such a size.
    """
    if s is None:
        return None
    text = s.strip().lower()
    unit = _UNITS.get(text[-1:], 0)
    digits = text[:-1] if unit else text
    if digits.isdigit():
        return int(digits) * (unit or 1)
    raise ValueError(f"not a size: {s!r} (a number with an optional b, k, m, g or t)")


def pretty_duration(secs: Optional[float]) -> str:
    """
    A duration: C{"123s"}, C{"12.3s"}, C{"1.23s"}, or C{"123ms"} below one
    second; C{""} for None.
    """
    if secs is None:
        return ""
    if secs >= 100:
        return f"{secs:.0f}s"
    if secs >= 10:
        return f"{secs:.1f}s"
    if secs >= 1:
        return f"{secs:.2f}s"
    return f"{secs * 1000:.0f}ms"


def format_timestamp(s: float) -> str:
    """
    A C{time.time()} value as local time, C{"2024-05-01 12:00:00"}.
    """
    return datetime.datetime.fromtimestamp(s).strftime("%Y-%m-%d %H:%M:%S")


def format_timestamp_with_milli(s: float) -> str:
    """
    A C{time.time()} value as local time with milliseconds,
    C{"2024-05-01 12:00:00.123"}.
    """
    return datetime.datetime.fromtimestamp(s).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def format_address(address: Optional[tuple[str, int]]) -> str:
    """
    A (host, port) as C{"host:port"}, IPv6 in brackets, an IPv4-mapped
    IPv6 address as IPv4, an unspecified address as C{"*"}.
    """
    if address is None:
        return "<no address>"
    host, port = address[0], address[1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"{host}:{port}"
    if ip.is_unspecified:
        return f"*:{port}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"{ip.ipv4_mapped}:{port}"
        return f"[{ip}]:{port}"
    return f"{ip}:{port}"
