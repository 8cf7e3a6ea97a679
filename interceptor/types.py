"""
The argument types of commands, as mitmproxy's C{mitmproxy.types}: a
command annotates a parameter with one of them
(C{def histogram(self, flows: Sequence[flow.Flow], path: types.Path)}).

They are strs: a command line's word converts to the type (C{Path}
expands C{~}), and a caller of C{master.commands.call} may pass a plain
str.
"""

from __future__ import annotations

import os

__all__ = ["Path", "Cmd", "CmdArgs", "Marker", "Choice", "Unknown", "Space", "CutSpec", "Data"]


class Path(str):
    """
    A file name (C{~} expanded when it comes from a command line).
    """

    def __new__(cls, value: str) -> Path:
        return super().__new__(cls, os.path.expanduser(value))


class Cmd(str):
    """
    The name of a command.
    """


class CmdArgs(str):
    """
    The arguments of a command.
    """


class Marker(str):
    """
    A flow marker (an emoji name, or a character).
    """


class Choice(str):
    """
    One of a set of values.
    """


class Unknown(str):
    """
    A word of unknown type.
    """


class Space(str):
    """
    Whitespace.
    """


CutSpec = list[str]
"""Which parts of flows a cut takes (mitmproxy's C{cut} commands)."""

Data = list[list[str | bytes]]
"""Rows of cut data."""
