# -*- test-case-name: tests.test_script -*-
"""
The entries of the C{scripts} option (C{--addon}): a file, possibly
followed by the script's arguments, as mitmproxy 2.x took them.
"""

from __future__ import annotations

import os
import shlex

__all__ = ["split_script_entry"]


def split_script_entry(entry: str) -> tuple[str, list[str]]:
    """
    The file and the arguments of a C{scripts} entry: C{"a.py x 'y z'"}
    gives C{("a.py", ["x", "y z"])}; an entry that names an existing file
    (or does not split) is a file with no arguments.
    """
    if os.path.isfile(os.path.expanduser(entry)):
        return entry, []
    try:
        words = shlex.split(entry)
    except ValueError:
        return entry, []
    if not words:
        return entry, []
    return words[0], words[1:]
