"""
Tests for L{addons.script}: addon scripts loaded with C{--addon FILE},
their hooks, and reloading them when the file changes (polling driven by
a L{Clock}).
"""

import os
import sys
import textwrap

from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from addons.script import ScriptLoader, load_script
from interceptor.core.interfaces import IConfigure, IDone
from interceptor.core.log import LogEntry
from interceptor.core.master import Master
from interceptor.core.options import OptionsError, proxy_options
from interceptor.testing import LogRecorder

POLL = 0.5  # ScriptLoader's default reload_interval


class ScriptTestCase(unittest.TestCase):
    """
    Writes scripts into a fresh directory and runs them in a master on a
    Clock.  Scripts append lines to the file named by RECORD.
    """

    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.record_path = os.path.join(self.dir, "record.txt")
        self.mtime = 1_000_000_000

    def write(self, name, code, mtime=None):
        """
        Write a script, followed by a C{_record(text)} helper appending to
        the record file, and give it a new mtime so the loader sees the
        change.
        """
        path = os.path.join(self.dir, name)
        text = textwrap.dedent(code) + RECORDING.replace("RECORD", repr(self.record_path))
        with open(path, "w") as f:
            f.write(text)
        self.mtime += 10
        stamp = self.mtime if mtime is None else mtime
        os.utime(path, (stamp, stamp))
        return path

    def records(self):
        """
        The lines the scripts recorded so far.
        """
        if not os.path.exists(self.record_path):
            return []
        with open(self.record_path) as f:
            return f.read().splitlines()

    def start(self, *paths, before=(), after=()):
        """
        A running master with a LogRecorder, the ScriptLoader loading
        C{paths}, and extra addons around it.
        """
        self.clock = Clock()
        self.recorder = LogRecorder()
        self.loader = ScriptLoader()
        self.master = Master(
            proxy_options(),
            [self.recorder, *before, self.loader, *after],
            reactor=self.clock,
        )
        self.master.options.update(scripts=list(paths))
        self.master.start()
        self.addCleanup(self.master.stop)
        return self.master


RECORDING = """

def _record(text):
    with open(RECORD, "a") as f:
        f.write(text + "\\n")
"""


class LoadTests(ScriptTestCase):
    """
    What a script's module offers as hooks.
    """

    def test_provides_interfaces(self):
        """ScriptLoader verifies against IConfigure and IDone."""
        loader = ScriptLoader()
        self.assertTrue(verifyObject(IConfigure, loader))
        self.assertTrue(verifyObject(IDone, loader))

    def test_module_functions_are_hooks(self):
        """Module-level functions named after events are called as hooks."""
        path = self.write("hooks.py", """
            def request(flow):
                flow.append("script request")
        """)
        master = self.start(path)
        flow = []
        self.successResultOf(master.addons.trigger("request", flow))
        self.assertEqual(flow, ["script request"])

    def test_addons_list(self):
        """A module-level addons list supplies the addon objects, in order."""
        path = self.write("listed.py", """
            class Tag:
                def __init__(self, tag):
                    self.tag = tag
                def request(self, flow):
                    flow.append(self.tag)
            addons = [Tag("one"), Tag("two")]
        """)
        master = self.start(path)
        flow = []
        self.successResultOf(master.addons.trigger("request", flow))
        self.assertEqual(flow, ["one", "two"])

    def test_module_attributes_are_not_hooks(self):
        """A script's imported modules (logging as log, a sibling request.py) are not hooks."""
        with open(os.path.join(self.dir, "request.py"), "w") as f:
            f.write("VALUE = 'sibling'\n")
        path = self.write("imports.py", """
            import logging as log
            import request
            import tick
            SEEN = request.VALUE
        """)
        with open(os.path.join(self.dir, "tick.py"), "w") as f:
            f.write("")
        master = self.start(path)
        module = self.loader.loaded[path].module
        self.assertEqual(module.SEEN, "sibling")
        self.successResultOf(master.addons.trigger("log", LogEntry("x", "info")))
        self.successResultOf(master.addons.trigger("request", []))
        self.clock.advance(0.1)
        self.assertEqual(self.recorder.messages("error"), [])
        self.assertNotIn(module, [addon for addon, _ in master.addons.hooks("log")])
        self.assertNotIn(module, [addon for addon, _ in master.addons.hooks("request")])

    def test_near_miss_warning(self):
        """A function named like a misspelt event gets a warning naming the event it resembles."""
        path = self.write("typo.py", """
            def reqeust(flow):
                pass
            def helper():
                pass
        """)
        self.start(path)
        [warning] = self.recorder.messages("warn")
        self.assertIn("typo.py", warning)
        self.assertIn("'reqeust'", warning)
        self.assertIn("did you mean 'request'", warning)

    def test_start_and_configure(self):
        """A script gets start() then configure() with every option name, once each."""
        path = self.write("life.py", """
            def start():
                _record("start")
            def configure(options, updated):
                _record(f"configure {len(updated)}")
        """)
        master = self.start(path)
        self.assertEqual(self.records(), ["start", f"configure {len(master.options.keys())}"])

    def test_done_on_shutdown(self):
        """Stopping the master calls the script's done()."""
        path = self.write("bye.py", """
            def done():
                _record("done")
        """)
        master = self.start(path)
        self.successResultOf(master.stop())
        self.assertEqual(self.records(), ["done"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_scripts_run_at_the_loaders_place(self):
        """Script hooks run where the ScriptLoader sits, before addons after it (the dumper)."""

        class Tag:
            def __init__(self, tag):
                self.tag = tag

            def request(self, flow):
                flow.append(self.tag)

        path = self.write("middle.py", """
            def request(flow):
                flow.append("script")
        """)
        master = self.start(path, before=[Tag("before")], after=[Tag("after")])
        flow = []
        self.successResultOf(master.addons.trigger("request", flow))
        self.assertEqual(flow, ["before", "script", "after"])

    def test_missing_file(self):
        """Naming a file that does not exist is an OptionsError naming it; the option is unchanged."""
        master = self.start()
        missing = os.path.join(self.dir, "missing.py")
        e = self.assertRaises(OptionsError, master.options.update, scripts=[missing])
        self.assertIn("missing.py", str(e))
        self.assertEqual(master.options.scripts, [])

    def test_unload_when_removed_from_option(self):
        """Taking a script out of the scripts option calls its done() and removes its hooks."""
        path = self.write("gone.py", """
            def done():
                _record("done")
            def request(flow):
                flow.append("script")
        """)
        master = self.start(path)
        master.options.update(scripts=[])
        self.assertEqual(self.records(), ["done"])
        flow = []
        self.successResultOf(master.addons.trigger("request", flow))
        self.assertEqual(flow, [])

    def test_script_options(self):
        """A script declares its own option in load(loader); it can be set at run time."""
        path = self.write("opt.py", """
            def load(loader):
                loader.add_option("greeting", str, "hello", "What to say.")
            def configure(options, updated):
                if "greeting" in updated:
                    _record(options.greeting)
        """)
        master = self.start(path)
        master.options.set("greeting=bonjour")
        self.assertEqual(self.records(), ["hello", "bonjour"])


class ErrorTests(ScriptTestCase):
    """
    A broken script is logged with file and line, and the proxy goes on.
    """

    def test_syntax_error(self):
        """A syntax error is logged with the file and line; other addons keep getting events."""
        path = self.write("broken.py", """
            def request(flow):
                pass

            def response(flow)
                pass
        """)
        ticks = []

        class Ticker:
            def tick(self):
                ticks.append(1)

        master = self.start(path, after=[Ticker()])
        [error] = self.recorder.messages("error")
        self.assertIn(f"{path}, line 5", error)
        self.assertIn("SyntaxError", error)
        self.clock.advance(0.1)
        self.assertEqual(ticks, [1])
        self.assertTrue(master.running)

    def test_exception_at_import(self):
        """An exception raised while importing is logged with the file, the line and the traceback."""
        path = self.write("raises.py", """
            X = 1
            def helper():
                return {}["nope"]
            helper()
        """)
        self.start(path)
        [error] = self.recorder.messages("error")
        self.assertIn(f"{path}, line 4", error)
        self.assertIn("KeyError", error)
        self.assertIn("Traceback", error)

    def test_sys_exit_at_import(self):
        """A script calling sys.exit() while importing is logged like any other failure; the proxy runs on."""
        path = self.write("quits.py", """
            import sys
            sys.exit(3)
        """)
        master = self.start(path)
        [error] = self.recorder.messages("error")
        self.assertIn(f"{path}, line 3", error)
        self.assertIn("SystemExit", error)
        self.assertTrue(master.running)

    def test_fixed_file_loads_on_next_change(self):
        """A script that failed to load is loaded once its file changes and works."""
        path = self.write("fixme.py", "def request(flow)\n    pass\n")
        master = self.start(path)
        self.assertEqual(len(self.recorder.messages("error")), 1)
        self.clock.advance(POLL)
        self.assertEqual(len(self.recorder.messages("error")), 1)
        self.write("fixme.py", """
            def request(flow):
                flow.append("fixed")
        """)
        self.clock.advance(POLL)
        flow = []
        self.successResultOf(master.addons.trigger("request", flow))
        self.assertEqual(flow, ["fixed"])
        self.assertEqual(len(self.recorder.messages("error")), 1)


class ReloadTests(ScriptTestCase):
    """
    A changed script is reloaded: done() on the old, start()/configure() on
    the new.
    """

    VERSION = """
        VERSION = {version!r}
        def start():
            _record("start " + VERSION)
        def configure(options, updated):
            _record("configure " + VERSION)
        def done():
            _record("done " + VERSION)
        def request(flow):
            flow.append(VERSION)
    """

    def test_reload_on_change(self):
        """After the file changes and the poll runs, the old done() and the new start()/configure() ran."""
        path = self.write("live.py", self.VERSION.format(version="v1"))
        master = self.start(path)
        self.assertEqual(self.records(), ["start v1", "configure v1"])
        self.clock.advance(POLL)
        self.assertEqual(len(self.records()), 2)
        self.write("live.py", self.VERSION.format(version="v2"))
        self.clock.advance(POLL)
        self.assertEqual(
            self.records(), ["start v1", "configure v1", "done v1", "start v2", "configure v2"]
        )
        flow = []
        self.successResultOf(master.addons.trigger("request", flow))
        self.assertEqual(flow, ["v2"])
        self.assertIn(f"Reloading script {path}", self.recorder.text("info"))

    def test_no_reload_without_change(self):
        """Polling an unchanged file reloads nothing."""
        path = self.write("still.py", self.VERSION.format(version="v1"))
        self.start(path)
        self.clock.pump([POLL] * 10)
        self.assertEqual(self.records(), ["start v1", "configure v1"])

    def test_same_second_same_size_edit(self):
        """Two versions of equal size written within one second are both seen (no stale byte code)."""
        # Byte-code writing on (whatever PYTHONDONTWRITEBYTECODE says), so a
        # loader that used the import system's cache would be caught.
        self.patch(sys, "dont_write_bytecode", False)
        path = self.write("quick.py", "VALUE = 1\n", mtime=2_000_000_000.1)
        self.start(path)
        self.assertEqual(self.loader.loaded[path].module.VALUE, 1)
        self.write("quick.py", "VALUE = 2\n", mtime=2_000_000_000.6)
        self.clock.advance(POLL)
        self.assertEqual(self.loader.loaded[path].module.VALUE, 2)

    def test_reload_waits_for_done(self):
        """The new version is imported only after the old done()'s Deferred fires."""
        path = self.write("slow.py", """
            from twisted.internet.defer import Deferred
            gate = Deferred()
            def done():
                _record("done v1")
                return gate
        """)
        self.start(path)
        gate = self.loader.loaded[path].module.gate
        self.write("slow.py", self.VERSION.format(version="v2"))
        self.clock.advance(POLL)
        self.assertEqual(self.records(), ["done v1"])
        self.clock.pump([POLL] * 4)
        self.assertEqual(self.records(), ["done v1"])
        gate.callback(None)
        self.assertEqual(self.records(), ["done v1", "start v2", "configure v2"])

    def test_reload_into_broken_then_fixed(self):
        """A reload that hits a syntax error leaves the proxy running; the next fix loads."""
        path = self.write("flaky.py", self.VERSION.format(version="v1"))
        master = self.start(path)
        self.write("flaky.py", "def request(flow:\n")
        self.clock.advance(POLL)
        self.assertIn(f"{path}, line 1", self.recorder.text("error"))
        flow = []
        self.successResultOf(master.addons.trigger("request", flow))
        self.assertEqual(flow, [])
        self.write("flaky.py", self.VERSION.format(version="v3"))
        self.clock.advance(POLL)
        self.successResultOf(master.addons.trigger("request", flow))
        self.assertEqual(flow, ["v3"])
        self.assertEqual(self.records()[-2:], ["start v3", "configure v3"])


class LoadScriptTests(ScriptTestCase):
    """
    load_script() on its own.
    """

    def test_fresh_module_each_time(self):
        """Each load is a new module object with the script's file name."""
        path = self.write("plain.py", "X = []\n")
        first, second = load_script(path), load_script(path)
        self.assertIsNot(first, second)
        self.assertIsNot(first.X, second.X)
        self.assertEqual(first.__file__, path)

    def test_no_bytecode_written(self):
        """Loading a script writes no __pycache__ next to it."""
        self.patch(sys, "dont_write_bytecode", False)
        path = self.write("clean.py", "X = 1\n")
        load_script(path)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "__pycache__")))
