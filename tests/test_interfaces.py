"""
Tests for L{interceptor.interfaces}: one interface per event of the spec,
and the built-in addons verified against the interfaces they declare.
"""

from zope.interface import Interface, implementer, providedBy
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from twisted.trial import unittest

from addons.dumper import Dumper
from addons.script import ScriptLoader
from addons.termlog import TermLog
from interceptor.core import interfaces
from interceptor.core.interfaces import EVENT_INTERFACES, EVENTS, FAMILIES

# Every event of the spec (shared/spec/events.rst), by family.
SPEC = {
    "general": {"configure", "done", "log", "start", "running", "tick"},
    "connection": {"clientconnect", "clientdisconnect", "next_layer", "serverconnect", "serverdisconnect"},
    "http": {"http_connect", "requestheaders", "request", "responseheaders", "response", "error"},
    "websocket": {
        "websocket_handshake",
        "websocket_start",
        "websocket_message",
        "websocket_end",
        "websocket_error",
    },
    "tcp": {"tcp_start", "tcp_message", "tcp_end", "tcp_error"},
}
ALL_EVENTS = set().union(*SPEC.values())


class EventInterfacesTests(unittest.TestCase):
    """
    The interfaces declare exactly the events of the spec.
    """

    def test_spec_has_26_events(self):
        """The expected set itself has the 25 events of the spec and mitmproxy's running (a typo would shrink it)."""
        self.assertEqual(len(ALL_EVENTS), 26)

    def test_events_constant(self):
        """EVENTS is exactly the set of events of the spec."""
        self.assertEqual(set(EVENTS), ALL_EVENTS)

    def test_families_declare_exactly_the_events(self):
        """The family interfaces together declare exactly the spec's events, no more, no fewer."""
        declared = set()
        for family in FAMILIES:
            declared |= set(family.names(all=True))
        self.assertEqual(declared, ALL_EVENTS)

    def test_each_family_matches_the_spec(self):
        """Each family interface declares the events of its section of the spec."""
        families = dict(zip(["general", "connection", "http", "websocket", "tcp"], FAMILIES))
        for name, family in families.items():
            self.assertEqual(set(family.names(all=True)), SPEC[name], name)

    def test_one_interface_per_event(self):
        """Each event's interface declares that one method and nothing else."""
        self.assertEqual(set(EVENT_INTERFACES), ALL_EVENTS)
        for event, iface in EVENT_INTERFACES.items():
            self.assertTrue(iface.isOrExtends(Interface))
            self.assertEqual(list(iface.names(all=True)), [event], event)

    def test_every_interface_in_the_module(self):
        """Every per-event interface defined in the module is listed in EVENT_INTERFACES."""
        defined = {
            value
            for value in vars(interfaces).values()
            if isinstance(value, type(Interface)) and value.__module__ == interfaces.__name__
        }
        self.assertEqual(defined - set(FAMILIES), set(EVENT_INTERFACES.values()))

    def test_hooks_are_documented_with_their_arguments(self):
        """Every event method has a docstring, and its arguments follow the spec."""
        expected_args = {"configure": ("options", "updated"), "done": (), "start": (), "running": (), "tick": ()}
        for event, iface in EVENT_INTERFACES.items():
            method = iface[event]
            self.assertTrue(method.getDoc().strip(), event)
            self.assertTrue(iface.getDoc().strip(), event)
            args = expected_args.get(event)
            if args is not None:
                self.assertEqual(method.positional, args, event)
            else:
                self.assertEqual(len(method.positional), 1, event)

    def test_argument_names_follow_the_spec(self):
        """Connection events take root_layer, layer or server_conn; the rest take flow or entry."""
        self.assertEqual(EVENT_INTERFACES["clientconnect"]["clientconnect"].positional, ("root_layer",))
        self.assertEqual(EVENT_INTERFACES["next_layer"]["next_layer"].positional, ("layer",))
        self.assertEqual(EVENT_INTERFACES["serverconnect"]["serverconnect"].positional, ("server_conn",))
        self.assertEqual(EVENT_INTERFACES["log"]["log"].positional, ("entry",))
        self.assertEqual(EVENT_INTERFACES["tcp_message"]["tcp_message"].positional, ("flow",))


class BuiltinAddonsTests(unittest.TestCase):
    """
    The built-in addons provide the interfaces they declare.
    """

    def _verify(self, addon, expected):
        provided = set(providedBy(addon))
        self.assertTrue(set(expected) <= provided, provided)
        for iface in provided:
            self.assertTrue(verifyObject(iface, addon))

    def test_termlog(self):
        """TermLog provides and verifies against IConfigure, IDone and ILog."""
        self._verify(
            TermLog(), [interfaces.IConfigure, interfaces.IDone, interfaces.ILog]
        )

    def test_scriptloader(self):
        """ScriptLoader provides and verifies against IConfigure and IDone."""
        self._verify(ScriptLoader(), [interfaces.IConfigure, interfaces.IDone])

    def test_dumper(self):
        """Dumper provides and verifies against IConfigure, IResponse and IError."""
        self._verify(
            Dumper(), [interfaces.IConfigure, interfaces.IResponse, interfaces.IError]
        )

    def test_verify_rejects_a_wrong_hook(self):
        """verifyObject rejects an addon declaring IRequest with a hook of the wrong arity."""

        @implementer(interfaces.IRequest)
        class Wrong:
            def request(self):
                pass

        self.assertRaises(Invalid, verifyObject, interfaces.IRequest, Wrong())

    def test_family_interface_for_a_full_addon(self):
        """An addon implementing every HTTP event verifies against IHTTPEvents."""

        @implementer(interfaces.IHTTPEvents)
        class Full:
            pass

        for event in SPEC["http"]:
            setattr(Full, event, lambda self, flow: None)
        self.assertTrue(verifyObject(interfaces.IHTTPEvents, Full()))
