"""
Tests for L{interceptor.addonmanager}: the ordered chain, waiting for each
hook, error handling, per-flow holding, start/nested/done semantics.
"""

import types

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock, deferLater
from twisted.trial import unittest

from interceptor.core.addonmanager import AddonManager, addon_name, get_hook, near_misses
from interceptor.core.master import Master
from interceptor.core.options import OptionsError, proxy_options
from interceptor.testing import LogRecorder


class Calls:
    """
    An addon recording its calls into a shared list.
    """

    def __init__(self, name, calls, returns=None):
        self.name = name
        self.calls = calls
        self.returns = returns

    def request(self, flow):
        self.calls.append((self.name, flow))
        return self.returns


def make_master(test, *addons, start=True, **values):
    """
    A master on a Clock, stopped at the end of the test.
    """
    clock = Clock()
    master = Master(proxy_options(**values), addons, reactor=clock)
    if start:
        master.start()
    test.addCleanup(master.stop)
    return master, clock


class ChainTests(unittest.TestCase):
    """
    trigger() calls every hook in chain order and waits for each.
    """

    def test_order(self):
        """Hooks are called in the order the addons were added, and trigger fires after the last."""
        calls = []
        master, _ = make_master(self, Calls("a", calls), Calls("b", calls))
        master.addons.add(Calls("c", calls))
        d = master.addons.trigger("request", "flow")
        self.assertEqual(calls, [("a", "flow"), ("b", "flow"), ("c", "flow")])
        self.assertIsNone(self.successResultOf(d))

    def test_no_hooks(self):
        """An event no addon handles fires at once, and has_hooks says so."""
        master, _ = make_master(self, Calls("a", []))
        self.assertIsNone(self.successResultOf(master.addons.trigger("response", "f")))
        self.assertFalse(master.addons.has_hooks("response"))
        self.assertTrue(master.addons.has_hooks("request"))

    def test_waits_for_deferred(self):
        """A hook returning an unfired Deferred holds the next hook until it fires."""
        calls = []
        gate = Deferred()
        master, _ = make_master(self, Calls("a", calls, gate), Calls("b", calls))
        d = master.addons.trigger("request", "f")
        self.assertEqual(calls, [("a", "f")])
        self.assertNoResult(d)
        gate.callback(None)
        self.assertEqual(calls, [("a", "f"), ("b", "f")])
        self.successResultOf(d)

    def test_called_only_when_finished(self):
        """An early hook's fired Deferred and a later one's pending Deferred: trigger's Deferred is not yet called."""
        gate = Deferred()
        calls = []
        master, _ = make_master(
            self, Calls("fired", calls, succeed("early")), Calls("pending", calls, gate)
        )
        d = master.addons.trigger("request", "f")
        self.assertEqual(len(calls), 2)
        self.assertFalse(d.called)
        gate.callback("late")
        self.assertTrue(d.called)
        self.assertEqual(self.successResultOf(d), "late")

    def test_waits_for_coroutine(self):
        """An async def hook is awaited before the next hook runs."""
        calls = []
        gate = Deferred()

        class Async:
            async def request(self, flow):
                calls.append("async-start")
                await gate
                calls.append("async-end")

        master, _ = make_master(self, Async(), Calls("b", calls))
        d = master.addons.trigger("request", "f")
        self.assertEqual(calls, ["async-start"])
        self.assertNoResult(d)
        gate.callback(None)
        self.assertEqual(calls, ["async-start", "async-end", ("b", "f")])
        self.successResultOf(d)

    def test_result_is_last_non_none(self):
        """trigger fires with the last non-None value a hook returned (plain, Deferred or coroutine)."""

        class Coro:
            async def next_layer(self, layer):
                return "from-coroutine"

        class Plain:
            def next_layer(self, layer):
                return "plain"

        class Later:
            def next_layer(self, layer):
                return succeed("deferred")

        class Nothing:
            def next_layer(self, layer):
                return None

        master, _ = make_master(self, Plain(), Nothing())
        self.assertEqual(self.successResultOf(master.addons.trigger("next_layer", 1)), "plain")
        master.addons.add(Later(), Nothing())
        self.assertEqual(self.successResultOf(master.addons.trigger("next_layer", 1)), "deferred")
        master.addons.add(Coro())
        self.assertEqual(self.successResultOf(master.addons.trigger("next_layer", 1)), "from-coroutine")


class HookErrorTests(unittest.TestCase):
    """
    An exception in a hook is logged as an error entry with its traceback;
    the chain and the flow go on.
    """

    def test_exception_logged_and_chain_goes_on(self):
        """A raising hook becomes an error entry with a traceback; later hooks still run."""
        calls = []
        recorder = LogRecorder()

        class Broken:
            def request(self, flow):
                1 / 0

        master, _ = make_master(self, recorder, Broken(), Calls("after", calls))
        d = master.addons.trigger("request", "f")
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(calls, [("after", "f")])
        errors = recorder.messages("error")
        self.assertEqual(len(errors), 1)
        self.assertIn("Broken.request", errors[0])
        self.assertIn("Traceback", errors[0])
        self.assertIn("ZeroDivisionError", errors[0])
        self.assertIn("1 / 0", errors[0])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_failed_deferred_logged_and_chain_goes_on(self):
        """A hook whose Deferred fails is logged as an error and the next hook runs."""
        calls = []
        recorder = LogRecorder()
        gate = Deferred()
        master, _ = make_master(self, recorder, Calls("a", calls, gate), Calls("b", calls))
        d = master.addons.trigger("request", "f")
        gate.errback(ValueError("boom"))
        self.successResultOf(d)
        self.assertEqual(calls, [("a", "f"), ("b", "f")])
        self.assertIn("ValueError: boom", recorder.text("error"))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_failed_coroutine_logged(self):
        """An async def hook that raises is logged with its traceback and the chain goes on."""
        calls = []
        recorder = LogRecorder()

        class Async:
            async def request(self, flow):
                raise KeyError("missing")

        master, _ = make_master(self, recorder, Async(), Calls("b", calls))
        self.successResultOf(master.addons.trigger("request", "f"))
        self.assertEqual(calls, [("b", "f")])
        self.assertIn("KeyError", recorder.text("error"))
        self.assertIn("Traceback", recorder.text("error"))
        self.flushLoggedErrors(KeyError)


class RunTests(unittest.TestCase):
    """
    C{AddonManager.run}: C{trigger} without a Deferred when every hook
    finished at once.
    """

    def test_all_at_once(self):
        calls = []
        master, _ = make_master(self, Calls("a", calls), Calls("b", calls))
        self.assertIsNone(master.addons.run("request", "f"))
        self.assertEqual(calls, [("a", "f"), ("b", "f")])

    def test_a_hook_that_waits(self):
        calls = []
        gate = Deferred()
        master, _ = make_master(self, Calls("a", calls, gate), Calls("b", calls))
        d = master.addons.run("request", "f")
        self.assertNoResult(d)
        self.assertEqual(calls, [("a", "f")])
        gate.callback(None)
        self.successResultOf(d)
        self.assertEqual(calls, [("a", "f"), ("b", "f")])

    def test_a_raising_hook(self):
        calls = []

        class Broken:
            def request(self, flow):
                1 / 0

        recorder = LogRecorder()
        master, _ = make_master(self, recorder, Broken(), Calls("b", calls))
        self.assertIsNone(master.addons.run("request", "f"))
        self.assertEqual(calls, [("b", "f")])
        self.assertIn("Broken.request", recorder.text("error"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class PerFlowTests(unittest.TestCase):
    """
    A hook's Deferred holds only the flow it was returned for.
    """

    def test_held_flow_does_not_delay_another(self):
        """Flow A held for 2 s by a hook does not delay flow B through the same chain."""
        clock = Clock()
        calls = []

        class HoldA:
            def request(self, flow):
                if flow == "A":
                    return deferLater(clock, 2.0, lambda: None)

        master = Master(proxy_options(), [HoldA(), Calls("next", calls)], reactor=clock)
        master.start()
        self.addCleanup(master.stop)
        a = master.addons.trigger("request", "A")
        b = master.addons.trigger("request", "B")
        self.assertNoResult(a)
        self.successResultOf(b)
        self.assertEqual(calls, [("next", "B")])
        clock.advance(1.9)
        self.assertNoResult(a)
        clock.advance(0.1)
        self.successResultOf(a)
        self.assertEqual(calls, [("next", "B"), ("next", "A")])

    def test_shared_deferred_holds_each_flow_separately(self):
        """One Deferred returned for two flows: when it fires, a flow held further on does not hold the other."""
        gate = Deferred()
        hold_a = Deferred()
        seen = []

        class Gate:
            def request(self, flow):
                return gate

        class HoldA:
            def request(self, flow):
                seen.append(flow)
                if flow == "A":
                    return hold_a

        master, _ = make_master(self, Gate(), HoldA())
        done = []
        master.addons.trigger("request", "A").addCallback(lambda _: done.append("A"))
        master.addons.trigger("request", "B").addCallback(lambda _: done.append("B"))
        gate.callback("gate-result")
        self.assertEqual(seen, ["A", "B"])
        self.assertEqual(done, ["B"])
        hold_a.callback(None)
        self.assertEqual(done, ["B", "A"])
        # The addon's own Deferred keeps its result.
        self.assertEqual(self.successResultOf(gate), "gate-result")


class StartTests(unittest.TestCase):
    """
    start() runs first; a non-None return value replaces the addon.
    """

    def test_start_before_any_other_event(self):
        """start() is called when the addon is added, before configure and any other event."""
        calls = []

        class Addon:
            def start(self):
                calls.append("start")

            def configure(self, options, updated):
                calls.append("configure")

            def tick(self):
                calls.append("tick")

        master, clock = make_master(self, Addon(), start=False)
        self.assertEqual(calls, ["start"])
        master.start()
        clock.advance(0.1)
        self.assertEqual(calls, ["start", "configure", "tick"])

    def test_start_return_value_replaces_addon(self):
        """The object start() returns takes the addon's place in the chain and gets its events."""
        calls = []
        replacement = Calls("replacement", calls)

        class Boot:
            def start(self):
                return replacement

            def request(self, flow):
                calls.append(("boot", flow))

        master, _ = make_master(self, Boot())
        self.assertEqual(master.addons.chain, [replacement])
        master.addons.trigger("request", "f")
        self.assertEqual(calls, [("replacement", "f")])

    def test_module_start_boots_into_instance(self):
        """A module-level start() returning an instance boots the script into that instance."""
        calls = []
        module = types.ModuleType("script")
        module.start = lambda: Calls("instance", calls)
        master, _ = make_master(self, module)
        master.addons.trigger("request", "f")
        self.assertEqual(calls, [("instance", "f")])

    def test_start_returning_fired_coroutine(self):
        """An async def start() that finishes at once replaces the addon with its result."""
        calls = []

        class Boot:
            async def start(self):
                return Calls("async-replacement", calls)

        master, _ = make_master(self, Boot())
        master.addons.trigger("request", "f")
        self.assertEqual(calls, [("async-replacement", "f")])

    def test_failing_start_skips_addon(self):
        """An addon whose start() raises is logged as an error and not loaded."""
        recorder = LogRecorder()

        class Broken:
            def start(self):
                raise RuntimeError("no start")

        master, _ = make_master(self, recorder)
        self.assertEqual(master.addons.add(Broken()), [])
        self.assertEqual(master.addons.chain, [recorder])
        self.assertIn("Broken failed in start()", recorder.text("error"))
        self.flushLoggedErrors(RuntimeError)

    def test_failing_load_skips_addon(self):
        """An addon whose load() raises is logged as an error and not loaded."""
        recorder = LogRecorder()

        class Broken:
            def load(self, loader):
                raise RuntimeError("no load")

        master, _ = make_master(self, recorder)
        self.assertEqual(master.addons.add(Broken()), [])
        self.assertIn("RuntimeError: no load", recorder.text("error"))
        self.flushLoggedErrors(RuntimeError)


class NestedTests(unittest.TestCase):
    """
    An addon may carry a list of nested addons in C{addons}.
    """

    def _tree(self, calls):
        grandchild = Calls("grandchild", calls)
        child = Calls("child", calls)
        child.addons = [grandchild]
        parent = Calls("parent", calls)
        parent.addons = [child, Calls("child2", calls)]
        return parent

    def test_nest_while_wanted(self):
        """nest() adds a child under its parent while wanted, once, and takes it out when not."""
        calls = []
        parent, child = Calls("parent", calls), Calls("child", calls)
        master, _ = make_master(self, parent)
        addons = master.addons
        for wanted in (True, True, False, False, True):
            addons.nest(child, parent, wanted)
            self.assertEqual([a for a in addons if a is child], [child] if wanted else [])
        self.successResultOf(addons.trigger("request", "f"))
        self.assertEqual(calls, [("parent", "f"), ("child", "f")])

    def test_nested_order(self):
        """Nested addons get events right after their parent, depth first, then later addons."""
        calls = []
        master, _ = make_master(self, self._tree(calls), Calls("last", calls))
        master.addons.trigger("request", "f")
        self.assertEqual(
            [name for name, _ in calls], ["parent", "child", "grandchild", "child2", "last"]
        )
        self.assertEqual(
            [addon_name(a) for a in master.addons],
            ["parent", "child", "grandchild", "child2", "last"],
        )

    def test_nested_start_and_configure(self):
        """Nested addons get start() when added and configure() with every option name on start."""
        calls = []

        class Child:
            def start(self):
                calls.append("start")

            def configure(self, options, updated):
                calls.append(updated)

        parent = Calls("parent", [])
        parent.addons = [Child()]
        master, _ = make_master(self, parent)
        self.assertEqual(calls, ["start", master.options.keys()])

    def test_add_under_parent(self):
        """add(..., parent=p) runs the new addon at p's place, before later top-level addons."""
        calls = []
        parent = Calls("parent", calls)
        master, _ = make_master(self, parent, Calls("last", calls))
        master.addons.add(Calls("child", calls), parent=parent)
        master.addons.trigger("request", "f")
        self.assertEqual([name for name, _ in calls], ["parent", "child", "last"])
        self.assertRaises(ValueError, master.addons.add, Calls("x", calls), parent=object())

    def test_get_by_name(self):
        """get(name) finds nested addons by name."""
        master, _ = make_master(self, self._tree([]))
        self.assertEqual(master.addons.get("grandchild").name, "grandchild")
        self.assertIsNone(master.addons.get("nobody"))


class DoneTests(unittest.TestCase):
    """
    done() runs on unload and on shutdown; shutdown waits for it.
    """

    class Done:
        def __init__(self, name, calls, returns=None):
            self.name = name
            self.calls = calls
            self.returns = returns

        def done(self):
            self.calls.append(self.name)
            return self.returns

    def test_done_on_remove(self):
        """Removing an addon calls done() on it and its nested addons, and it gets no more events."""
        calls = []
        addon = self.Done("top", calls)
        addon.addons = [self.Done("nested", calls)]
        addon.request = lambda flow: calls.append("request")
        master, _ = make_master(self, addon)
        self.successResultOf(master.addons.remove(addon))
        self.assertEqual(calls, ["top", "nested"])
        master.addons.trigger("request", "f")
        self.assertEqual(calls, ["top", "nested"])
        self.assertEqual(list(master.addons), [])

    def test_remove_nested(self):
        """A nested addon can be removed on its own; its parent stays."""
        calls = []
        nested = self.Done("nested", calls)
        parent = self.Done("parent", calls)
        parent.addons = [nested]
        master, _ = make_master(self, parent)
        self.successResultOf(master.addons.remove(nested))
        self.assertEqual(calls, ["nested"])
        self.assertEqual(list(master.addons), [parent])
        self.assertRaises(ValueError, master.addons.remove, nested)

    def test_stop_waits_for_done(self):
        """Master.stop() calls every done() and fires only when a done() Deferred has fired."""
        calls = []
        clock = Clock()
        slow = self.Done("slow", calls, deferLater(clock, 2.0, lambda: None))
        master = Master(proxy_options(), [slow, self.Done("fast", calls)], reactor=clock)
        master.start()
        d = master.stop()
        self.assertEqual(calls, ["slow"])
        self.assertNoResult(d)
        clock.advance(2.0)
        self.assertEqual(calls, ["slow", "fast"])
        self.successResultOf(d)

    def test_done_error_does_not_stop_shutdown(self):
        """A done() that raises is logged; the other addons still get done() and stop fires."""
        calls = []
        recorder = LogRecorder()

        class Broken:
            def done(self):
                raise RuntimeError("bad done")

        master, _ = make_master(self, recorder, Broken(), self.Done("after", calls))
        self.successResultOf(master.stop())
        self.assertEqual(calls, ["after"])
        self.assertIn("RuntimeError: bad done", recorder.text("error"))
        self.flushLoggedErrors(RuntimeError)


class ConfigureOnAddTests(unittest.TestCase):
    """
    Addons added to a running master get configure with every option.
    """

    def test_added_while_running(self):
        """An addon added after start gets configure(options, every name) once."""
        calls = []

        class Conf:
            def configure(self, options, updated):
                calls.append(set(updated))

        master, _ = make_master(self)
        master.addons.add(Conf())
        self.assertEqual(calls, [master.options.keys()])

    def test_added_addon_rejecting_options_is_logged(self):
        """An addon added at run time whose configure raises OptionsError is logged, not raised."""
        recorder = LogRecorder()

        class Picky:
            def configure(self, options, updated):
                raise OptionsError("option mode: not for me")

        master, _ = make_master(self, recorder)
        master.addons.add(Picky())
        self.assertIn("not for me", recorder.text("error"))

    def test_options_declared_in_load(self):
        """An addon's load(loader) declares options through loader.add_option."""

        class WithOption:
            def load(self, loader):
                loader.add_option("greeting", str, "hello", "What to say.")

        master, _ = make_master(self, WithOption())
        self.assertEqual(master.options.greeting, "hello")
        self.assertEqual(master.options.option("greeting").help, "What to say.")


class HookLookupTests(unittest.TestCase):
    """
    get_hook and near_misses: what counts as a hook.
    """

    def test_modules_and_classes_are_not_hooks(self):
        """An attribute that is a module, a class or not callable is not a hook."""
        import logging

        module = types.ModuleType("script")
        module.log = logging
        module.request = type("request", (), {})
        module.response = "text"
        module.tick = lambda: None
        self.assertIsNone(get_hook(module, "log"))
        self.assertIsNone(get_hook(module, "request"))
        self.assertIsNone(get_hook(module, "response"))
        self.assertIsNotNone(get_hook(module, "tick"))

    def test_near_misses(self):
        """A function named like a misspelt event is reported with the event it resembles."""
        module = types.ModuleType("script")
        module.reqeust = lambda flow: None
        module.respose = lambda flow: None
        module.helper = lambda: None
        module.request = lambda flow: None
        self.assertEqual(
            sorted(near_misses(module)), [("reqeust", "request"), ("respose", "response")]
        )

    def test_near_miss_warning_logged(self):
        """Adding an addon with a near-miss method logs a warning naming the event."""
        recorder = LogRecorder()

        class Typo:
            def websocket_mesage(self, flow):
                pass

        master, _ = make_master(self, recorder)
        master.addons.add(Typo())
        warning = recorder.text("warn")
        self.assertIn("'websocket_mesage'", warning)
        self.assertIn("'websocket_message'", warning)

    def test_manager_without_master_options(self):
        """An AddonManager works with any master object (no options needed for events)."""
        calls = []
        manager = AddonManager(types.SimpleNamespace(running=False))
        manager.add(Calls("a", calls))
        self.successResultOf(manager.trigger("request", "f"))
        self.assertEqual(calls, [("a", "f")])
