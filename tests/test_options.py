"""
Tests for L{interceptor.options}: typed options with defaults and help,
C{--set} parsing, all-or-nothing updates with rollback, and the
C{configure} event they drive.
"""

from typing import Optional, Sequence

from twisted.internet.task import Clock
from twisted.trial import unittest

from interceptor.core.master import Master
from interceptor.core.options import Options, OptionsError, did_you_mean, parse_size, proxy_options


def sample() -> Options:
    """
    Options of every supported type.
    """
    opts = Options()
    opts.add_option("flag", bool, False, "A flag.")
    opts.add_option("count", int, 3, "A count.")
    opts.add_option("ratio", float, 0.5, "A ratio.")
    opts.add_option("label", str, "x", "A label.")
    opts.add_option("maybe", Optional[str], None, "Maybe a string.")
    opts.add_option("limit", Optional[int], None, "Maybe a number.")
    opts.add_option("hosts", Sequence[str], [], "Host names.")
    opts.add_option("color", str, "red", "A color.", choices=["red", "green"])
    return opts


class DeclareTests(unittest.TestCase):
    """
    Options are typed, defaulted and documented.
    """

    def test_core_options(self):
        """proxy_options() declares the core options with their types, defaults and help."""
        opts = proxy_options()
        self.assertEqual(opts.tick_interval, 0.1)
        self.assertEqual(opts.mode, "regular")
        self.assertIs(opts.option("tick_interval").typespec, float)
        for name in opts:
            self.assertTrue(opts.option(name).help, name)

    def test_proxy_options_values(self):
        """proxy_options(**values) applies the values, and rejects bad ones."""
        self.assertEqual(proxy_options(read_timeout=5.0).read_timeout, 5.0)
        self.assertRaises(OptionsError, proxy_options, read_timeout="soon")

    def test_defaults(self):
        """Each option reads as its default until changed."""
        opts = sample()
        self.assertEqual(
            dict(opts.items()),
            {
                "flag": False,
                "count": 3,
                "ratio": 0.5,
                "label": "x",
                "maybe": None,
                "limit": None,
                "hosts": [],
                "color": "red",
            },
        )

    def test_help_text(self):
        """help_text() lists every option with its type, default, choices and help."""
        text = sample().help_text()
        self.assertIn("count (int, default 3)\n    A count.", text)
        self.assertIn("hosts (sequence of str, default [])", text)
        self.assertIn("(one of red, green)", text)

    def test_bad_default(self):
        """A default that does not fit the type is refused, naming the option."""
        opts = Options()
        e = self.assertRaises(OptionsError, opts.add_option, "n", int, "3", "help")
        self.assertIn("option n", str(e))

    def test_redeclare(self):
        """Declaring an option again with the same type keeps its value; another type is refused."""
        opts = sample()
        opts.update(count=9)
        opts.add_option("count", int, 1, "Again.")
        self.assertEqual(opts.count, 9)
        self.assertRaises(OptionsError, opts.add_option, "count", str, "1", "Again.")

    def test_reserved_names(self):
        """Names taken by Options methods or starting with _ cannot be options."""
        opts = Options()
        self.assertRaises(OptionsError, opts.add_option, "update", int, 1, "h")
        self.assertRaises(OptionsError, opts.add_option, "_private", int, 1, "h")
        self.assertRaises(OptionsError, opts.add_option, "two words", int, 1, "h")

    def test_sequence_spellings(self):
        """list[str] and collections.abc.Sequence[str] declare a sequence option too."""
        import collections.abc

        opts = Options()
        opts.add_option("a", list[str], [], "h")
        opts.add_option("b", collections.abc.Sequence[str], ("x",), "h")
        self.assertTrue(opts.option("a").is_sequence)
        self.assertEqual(opts.b, ["x"])


class UpdateTests(unittest.TestCase):
    """
    update() validates everything first and is all or nothing.
    """

    def test_update(self):
        """update() changes values and returns the names that changed."""
        opts = sample()
        self.assertEqual(opts.update(count=4, label="x", hosts=("a", "b")), {"count", "hosts"})
        self.assertEqual(opts.count, 4)
        self.assertEqual(opts.hosts, ["a", "b"])

    def test_attribute_assignment(self):
        """Assigning an attribute goes through update() and its checks."""
        opts = sample()
        opts.count = 7
        self.assertEqual(opts.count, 7)
        with self.assertRaises(OptionsError):
            opts.count = "seven"

    def test_wrong_type(self):
        """A value of the wrong type is an error naming the option, and nothing changes."""
        opts = sample()
        for name, value in [
            ("flag", "true"),
            ("count", 1.5),
            ("count", True),
            ("ratio", "fast"),
            ("label", 3),
            ("limit", "3"),
            ("hosts", "a,b"),
            ("hosts", ["a", 1]),
        ]:
            values = {"label": "changed", name: value}
            e = self.assertRaises(OptionsError, opts.update, **values)
            self.assertIn(f"option {name}", str(e))
            self.assertEqual(opts.label, "x", name)

    def test_unknown_name(self):
        """An unknown name is an error naming it, and the other values given are not applied."""
        opts = sample()
        e = self.assertRaises(OptionsError, opts.update, count=5, nosuch=1)
        self.assertIn("'nosuch'", str(e))
        self.assertEqual(opts.count, 3)

    def test_choices(self):
        """A value outside the choices is refused, naming the option."""
        opts = sample()
        e = self.assertRaises(OptionsError, opts.update, color="blue")
        self.assertIn("option color", str(e))
        self.assertEqual(opts.color, "red")
        opts.update(color="green")
        self.assertEqual(opts.color, "green")

    def test_subscriber_sees_changed_names(self):
        """Subscribers are told only the names whose value changed, and not at all when none did."""
        opts = sample()
        seen = []
        opts.subscribe(lambda o, updated: seen.append(updated))
        opts.update(count=3)
        opts.update(count=4, label="x")
        self.assertEqual(seen, [{"count"}])

    def test_subscriber_rollback(self):
        """A subscriber raising OptionsError rolls every value back and is told about the restored values."""
        opts = sample()
        seen = []

        def picky(o, updated):
            seen.append((set(updated), o.count, o.label))
            if o.count > 10:
                raise OptionsError("option count: too many")

        opts.subscribe(picky)
        e = self.assertRaises(OptionsError, opts.update, count=11, label="y")
        self.assertIn("too many", str(e))
        self.assertEqual((opts.count, opts.label), (3, "x"))
        self.assertEqual(
            seen, [({"count", "label"}, 11, "y"), ({"count", "label"}, 3, "x")]
        )

    def test_unsubscribe(self):
        """An unsubscribed callback is not called any more."""
        opts = sample()
        seen = []
        callback = lambda o, updated: seen.append(updated)  # noqa: E731
        opts.subscribe(callback)
        opts.unsubscribe(callback)
        opts.update(count=4)
        self.assertEqual(seen, [])

    def test_reset(self):
        """reset() puts every option back to its default."""
        opts = sample()
        opts.update(count=4, flag=True)
        self.assertEqual(opts.reset(), {"count", "flag"})
        self.assertEqual((opts.count, opts.flag), (3, False))


class SetTests(unittest.TestCase):
    """
    set("name=value") parses the text of C{--set}.
    """

    def test_parse_each_type(self):
        """Text values are converted to each option's type."""
        opts = sample()
        opts.set(
            "flag=yes",
            "count=12",
            "ratio=2",
            "label=hello world",
            "maybe=",
            "limit=5",
            "hosts=a.example",
            "hosts=b.example",
        )
        self.assertEqual(opts.flag, True)
        self.assertEqual(opts.count, 12)
        self.assertEqual(opts.ratio, 2.0)
        self.assertEqual(opts.label, "hello world")
        self.assertIsNone(opts.maybe)
        self.assertEqual(opts.limit, 5)
        self.assertEqual(opts.hosts, ["a.example", "b.example"])

    def test_bare_flag(self):
        """A bare name sets a bool to true; a bare non-bool name is an error."""
        opts = sample()
        opts.set("flag")
        self.assertTrue(opts.flag)
        self.assertRaises(OptionsError, opts.set, "count")

    def test_bad_text(self):
        """Unparsable text is an error naming the option; earlier specs are not applied either."""
        opts = sample()
        for spec in ["count=many", "flag=perhaps", "ratio=", "limit=x", "color=blue", "nosuch=1"]:
            e = self.assertRaises(OptionsError, opts.set, "label=changed", spec)
            self.assertIn(spec.partition("=")[0], str(e))
            self.assertEqual(opts.label, "x")

    def test_deferred_until_declared(self):
        """With defer=True an unknown name waits, and applies when an option of that name is declared."""
        opts = sample()
        opts.set("count=4", "later=9", "later_list=a", "later_list=b", defer=True)
        self.assertEqual(opts.count, 4)
        self.assertEqual(opts.deferred, {"later", "later_list"})
        opts.add_option("later", int, 1, "Declared by a script.")
        opts.add_option("later_list", Sequence[str], [], "Declared by a script.")
        self.assertEqual((opts.later, opts.later_list), (9, ["a", "b"]))
        self.assertEqual(opts.deferred, set())

    def test_deferred_bad_value(self):
        """A deferred value that does not fit the declared option is logged and the default kept."""
        opts = sample()
        opts.set("later=lots", defer=True)
        opts.add_option("later", int, 1, "Declared by a script.")
        self.assertEqual(opts.later, 1)
        self.assertEqual(opts.deferred, set())

    def test_parse_size(self):
        """parse_size understands plain, k, m and g sizes, and refuses nonsense."""
        self.assertEqual(parse_size("100"), 100)
        self.assertEqual(parse_size("512k"), 512 * 1024)
        self.assertEqual(parse_size("1m"), 1024**2)
        self.assertEqual(parse_size("2G"), 2 * 1024**3)
        self.assertIsNone(parse_size(""))
        self.assertRaises(ValueError, parse_size, "lots")


class UsageMessageTests(unittest.TestCase):
    """
    A mistake gets a message that says what to write instead (hardening
    issue, item 22).
    """

    def test_did_you_mean(self):
        self.assertEqual(did_you_mean("lisen", ["listen", "set", "mode"], "--"), " (did you mean --listen?)")
        self.assertEqual(did_you_mean("zzz", ["listen"]), "")

    def test_unknown_name_suggests_close_ones(self):
        """A misspelt option name is refused with the closest names."""
        e = self.assertRaises(OptionsError, proxy_options().set, "strem_large_bodies=1m")
        self.assertEqual(str(e), "unknown option 'strem_large_bodies' (did you mean stream_large_bodies?)")
        e = self.assertRaises(OptionsError, proxy_options().update, conect_timeout=3)
        self.assertEqual(str(e), "unknown option 'conect_timeout' (did you mean connect_timeout?)")

    def test_set_without_equals_asks_for_name_value(self):
        """--set noequals (no such option, no '='): the message asks for NAME=VALUE."""
        e = self.assertRaises(OptionsError, proxy_options().set, "noequals")
        self.assertEqual(str(e), "--set noequals: expected NAME=VALUE")
        e = self.assertRaises(OptionsError, proxy_options().set, "htp2")
        self.assertEqual(str(e), "--set htp2: expected NAME=VALUE (did you mean http2?)")

    def test_bad_text_names_the_type(self):
        """A value that does not parse names the type expected, not Python's int() message."""
        e = self.assertRaises(OptionsError, proxy_options().set, "max_header_size=big")
        self.assertEqual(str(e), "option max_header_size: invalid value 'big', expected a value of type int")

    def test_timeouts_above_zero(self):
        """Timeouts, tick_interval and max_header_size must be finite numbers above 0; nothing changes otherwise."""
        for spec in ("connect_timeout=-1", "read_timeout=0", "idle_timeout=nan", "connect_timeout=inf",
                     "tick_interval=0", "max_header_size=-5"):
            opts = proxy_options()
            before = dict(opts.items())
            e = self.assertRaises(OptionsError, opts.set, spec)
            self.assertIn("must be a number above 0", str(e))
            self.assertIn(spec.partition("=")[0], str(e))
            self.assertEqual(dict(opts.items()), before)
        opts = proxy_options()
        opts.set("connect_timeout=0.5", "read_timeout=30")
        self.assertEqual((opts.connect_timeout, opts.read_timeout), (0.5, 30.0))

    def test_int_choices(self):
        """An int option may list its choices (flow_detail: 0 to 4)."""
        opts = Options()
        opts.add_option("detail", int, 1, "How much.", choices=[0, 1, 2])
        opts.set("detail=2")
        e = self.assertRaises(OptionsError, opts.set, "detail=9")
        self.assertEqual(str(e), "option detail: 9 is not one of 0, 1, 2")
        self.assertEqual(opts.detail, 2)
        self.assertIn("(one of 0, 1, 2)", opts.help_text())


class ConfigureEventTests(unittest.TestCase):
    """
    configure(options, updated): every name at start, changed names after,
    and rollback when an addon refuses.
    """

    def _master(self, *addons):
        master = Master(proxy_options(), addons, reactor=Clock())
        self.addCleanup(master.stop)
        return master

    def test_every_name_at_start_then_changes(self):
        """configure gets every option name at start, then only the names that changed."""
        seen = []

        class Watch:
            def configure(self, options, updated):
                seen.append(set(updated))

        master = self._master(Watch())
        self.assertEqual(seen, [])
        master.start()
        self.assertEqual(seen, [master.options.keys()])
        self.assertIn("tick_interval", seen[0])
        master.options.update(read_timeout=5.0, mode="regular")
        self.assertEqual(seen[1:], [{"read_timeout"}])

    def test_addon_rejects_change(self):
        """An addon's OptionsError rolls the change back, and addons that saw it are configured back."""
        first = []

        class Follow:
            def configure(self, options, updated):
                if "read_timeout" in updated:
                    first.append(options.read_timeout)

        class Refuse:
            def configure(self, options, updated):
                if options.read_timeout > 100:
                    raise OptionsError("option read_timeout: at most 100")

        master = self._master(Follow(), Refuse())
        master.start()
        e = self.assertRaises(OptionsError, master.options.update, read_timeout=500.0)
        self.assertIn("read_timeout", str(e))
        self.assertEqual(master.options.read_timeout, 60.0)
        self.assertEqual(first, [60.0, 500.0, 60.0])

    def test_addon_options_through_set(self):
        """An option an addon declares in load() can be set with --set syntax and reaches its configure."""
        seen = []

        class Own:
            def load(self, loader):
                loader.add_option("own_limit", int, 1, "A limit of this addon.")

            def configure(self, options, updated):
                if "own_limit" in updated:
                    seen.append(options.own_limit)

        master = self._master(Own())
        master.start()
        master.options.set("own_limit=42")
        self.assertEqual(seen, [1, 42])

    def test_no_configure_before_start(self):
        """Changes before start() do not call configure; start() sends every name once."""
        seen = []

        class Watch:
            def configure(self, options, updated):
                seen.append((set(updated), options.read_timeout))

        master = self._master(Watch())
        master.options.update(read_timeout=3.0)
        self.assertEqual(seen, [])
        master.start()
        self.assertEqual(seen, [(master.options.keys(), 3.0)])
