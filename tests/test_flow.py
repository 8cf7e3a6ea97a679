# -*- test-case-name: tests.test_flow -*-
"""
Tests for L{interceptor.model.flow}: flows outside a running proxy (the
e2e tests in C{tests.e2e.test_flowmodel} cover live ones).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from interceptor.model.connection import ClientConnection
from interceptor.model.flow import Error, HTTPFlow
from tests.test_http import req, resp


def http_flow(request=None, response=None) -> HTTPFlow:
    """
    A flow of the client 127.0.0.1:50000 (no server connection): C{request}
    (by default GET http://example.com/ from t=1000.0 to 1000.5) and
    C{response}.
    """
    request = request or req("/", [], timestamp_start=1000.0, timestamp_end=1000.5)
    flow = HTTPFlow(ClientConnection(("127.0.0.1", 50000)), None, request)
    flow.response = response
    return flow


class HTTPFlowTests(SynchronousTestCase):
    """
    An L{HTTPFlow}'s identity, kill, mitmproxy attributes and copies.
    """

    def test_kill_and_id(self):
        f = http_flow()
        self.assertEqual(f.id, f.id)
        self.assertNotEqual(f.id, http_flow().id)
        self.assertTrue(f.killable)
        f.kill()
        self.assertFalse(f.killable)
        self.assertEqual(f.error.msg, Error.KILLED_MESSAGE)
        f.metadata["k"] = 1
        self.assertEqual(f.metadata, {"k": 1})

    def test_flow_mitmproxy_attributes(self):
        """marked, comment, is_replay, intercepted, live and timestamp_start, as mitmproxy has them."""
        f = http_flow()
        self.assertEqual((f.marked, f.comment, f.is_replay, f.intercepted, f.live), ("", "", None, False, True))
        self.assertEqual(f.timestamp_start, f.request.timestamp_start)
        f.marked = ":star:"
        self.assertEqual(f.marked, ":star:")

    def test_flow_copy(self):
        """copy() is a deep copy with a new id, not live; changing it leaves the original alone."""
        f = http_flow()
        f.metadata["k"] = [1]
        c = f.copy()
        self.assertNotEqual(c.id, f.id)
        self.assertFalse(c.live)
        self.assertTrue(f.live)
        c.request.headers["X-Copy"] = "1"
        c.metadata["k"].append(2)
        self.assertNotIn("X-Copy", f.request.headers)
        self.assertEqual(f.metadata["k"], [1])

    def test_copy_offline(self):
        """A flow with its response copies too."""
        f = http_flow(response=resp())
        c = f.copy()
        self.assertNotEqual(c.id, f.id)
        self.assertFalse(c.live)


class NewIdTests(SynchronousTestCase):
    """
    Flow ids are random version 4 UUIDs.
    """

    def test_uuid4(self) -> None:
        import uuid

        from interceptor.model.flow import new_id

        ids = {new_id() for _ in range(2000)}
        self.assertEqual(len(ids), 2000)
        for each in list(ids)[:50]:
            parsed = uuid.UUID(each)
            self.assertEqual((parsed.version, parsed.variant, str(parsed)), (4, uuid.RFC_4122, each))
