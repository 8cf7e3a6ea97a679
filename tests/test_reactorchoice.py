"""
Tests for L{interceptor.core.reactorchoice}: which scripts make
C{twistd interceptor} take the asyncio reactor.  (That it does take it is
shown with real processes in L{tests.compat.test_asyncio}.)
"""

from __future__ import annotations


from twisted.trial import unittest

from tests.scriptfiles import write_script

from interceptor.core.reactorchoice import reactor_installed, scripts_need_asyncio


class ScriptsNeedAsyncioTests(unittest.TestCase):
    def write(self, source: str, name: str = "script.py") -> str:
        return write_script(self, source, name)

    def test_import_asyncio(self) -> None:
        self.assertTrue(scripts_need_asyncio([self.write("import asyncio\n")]))
        self.assertTrue(scripts_need_asyncio([self.write("import os, asyncio.tasks\n")]))

    def test_from_asyncio(self) -> None:
        self.assertTrue(scripts_need_asyncio([self.write("from asyncio import sleep\n")]))

    def test_async_def(self) -> None:
        """
        An C{async def} anywhere, a method's too.
        """
        path = self.write("""
            class A:
                async def request(self, flow):
                    pass
        """)
        self.assertTrue(scripts_need_asyncio([path]))

    def test_plain_scripts(self) -> None:
        """
        Scripts with neither keep the default reactor; a name that only
        contains "asyncio" does not count.
        """
        plain = self.write("import time\nasyncio_like = 1\ndef request(flow):\n    pass\n")
        other = self.write("from twisted.internet import asyncioreactor\n")
        self.assertFalse(scripts_need_asyncio([plain, other]))
        self.assertFalse(scripts_need_asyncio([]))

    def test_any_of_several(self) -> None:
        plain = self.write("x = 1\n")
        uses = self.write("import asyncio\n")
        self.assertTrue(scripts_need_asyncio([plain, uses]))

    def test_with_arguments(self) -> None:
        """
        A C{--addon} value with the script's arguments after its path.
        """
        path = self.write("import asyncio\n", name="with args.py")
        self.assertTrue(scripts_need_asyncio([f"'{path}' --flag 2"]))

    def test_unreadable(self) -> None:
        """
        A missing file, a syntax error, or an argument string that does not
        split count as not needing asyncio (the script loader reports
        them); nothing raises.
        """
        broken = self.write("import asyncio\ndef (:\n")
        self.assertFalse(scripts_need_asyncio(
            [broken, "/nonexistent/script.py", "'unterminated", ""]))

    def test_reactor_installed(self) -> None:
        """
        Under trial a reactor is installed: the choice is never made here.
        """
        self.assertTrue(reactor_installed())
