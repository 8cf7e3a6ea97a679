"""
Script files for tests: a script's source written to a directory of the
test's own, as users give scripts to C{twistd interceptor --addon}.
"""

from __future__ import annotations

import os
import textwrap
from typing import Any

__all__ = ["write_script"]


def write_script(testcase: Any, source: str, name: str = "script.py") -> str:
    """
    Write C{source} (dedented) as C{name} in a fresh directory of
    C{testcase}'s (a trial TestCase); its absolute path.
    """
    directory = os.path.abspath(testcase.mktemp())
    os.makedirs(directory)
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(textwrap.dedent(source))
    return path
