# -*- test-case-name: tests.test_flowfilter -*-
"""
Tests for L{interceptor.flowfilter}: the syntax (errors naming a column,
mitmproxy's precedence and quoting), every operator over flows built with
the model, printing back, and boolean laws checked with hypothesis.  The
e2e table over flows recorded through the proxy is in
C{tests.e2e.test_flowfilter_real}.
"""

from __future__ import annotations

import gzip
from typing import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from interceptor import flowfilter
from interceptor.filters.nodes import And, Filter, Not, Or
from interceptor.filters.operators import OPERATORS, RegexOperator, StatusCode
from interceptor.filters.parser import MAX_NESTING
from interceptor.model.connection import ClientConnection, ServerConnection
from interceptor.model.flow import Error, HTTPFlow
from interceptor.model.request import Request
from interceptor.model.response import Response
from interceptor.model.tcp import TCPFlow, TCPMessage
from interceptor.model.websocket import Opcode, WebSocketData, WebSocketMessage


class CountingRequest(Request):
    """
    A request that counts how often its body is decoded.
    """

    decodes = 0

    def get_content(self, strict: bool = True) -> bytes | None:
        type(self).decodes += 1
        return super().get_content(strict)


def http_flow(url="http://example.com/index.html", method="GET", body=b"", headers=None,
              response=None, request_type=Request) -> HTTPFlow:
    """
    A flow from 127.0.0.1:50000 to example.com:80 with a request made by
    C{request_type.make} and C{response}.
    """
    request = request_type.make(method, url, body, headers)
    flow = HTTPFlow(ClientConnection(("127.0.0.1", 50000)),
                    ServerConnection(("example.com", 80)), request)
    flow.response = response
    return flow


def websocket_flow() -> HTTPFlow:
    """
    An upgraded flow: the client sent "hello client", the server "hello server".
    """
    flow = http_flow("http://chat.test/ws", response=Response.make(101))
    flow.websocket = WebSocketData()
    flow.websocket.messages += [
        WebSocketMessage(Opcode.TEXT, True, b"hello client"),
        WebSocketMessage(Opcode.BINARY, False, b"hello server"),
    ]
    return flow


def tcp_flow() -> TCPFlow:
    """
    A TCP flow from 10.0.0.1:4000 to 10.0.0.2:7000: "ping" up, "pong" down.
    """
    flow = TCPFlow(ClientConnection(("10.0.0.1", 4000)), ServerConnection(("10.0.0.2", 7000)))
    flow.messages += [TCPMessage(True, b"ping"), TCPMessage(False, b"pong")]
    return flow


def sample_flows() -> dict[str, object]:
    """
    Flows of every kind, by name, to check filters against.
    """
    flows: dict[str, object] = {}
    flows["get"] = http_flow(
        headers={"Host": "example.com", "Accept": "text/html"},
        response=Response.make(200, b"<html>welcome</html>", {"Content-Type": "text/html"}))
    flows["post"] = http_flow(
        "https://api.example.org/v1/items", "POST", b'{"name": "widget"}',
        {"Content-Type": "application/json"},
        Response.make(404, b"missing", {"Content-Type": "text/plain", "X-Trace": "abc"}))
    flows["pending"] = http_flow("http://slow.test/wait")
    flows["css"] = http_flow("http://cdn.test/site.css",
                             response=Response.make(200, b"body{}", {"Content-Type": "text/css"}))
    failed = http_flow("http://down.test/")
    failed.error = Error("connection refused")
    flows["failed"] = failed
    flows["websocket"] = websocket_flow()
    flows["tcp"] = tcp_flow()
    marked = http_flow("http://marked.test/")
    marked.marked = ":star:"
    marked.comment = "first line\nsecond line"
    marked.metadata["source"] = "import"
    marked.is_replay = "request"
    flows["marked"] = marked
    return flows


def matching(expression: str) -> set[str]:
    """
    The names of the sample flows C{expression} matches.
    """
    flt = flowfilter.parse(expression)
    return {name for name, flow in sample_flows().items() if flt(flow)}


def unlisted_operators(expressions: Iterable[str]) -> list[str]:
    """
    The operator codes that no expression starts with (C{~c 200} names
    C{~c}; C{~comment x} does not).
    """
    return [code for code in OPERATORS
            if not any(text == f"~{code}" or text.startswith(f"~{code} ") for text in expressions)]


class OperatorTests(SynchronousTestCase):
    """
    Each operator matches the flows mitmproxy's does.
    """

    def test_table(self):
        """Every operator (the table names each) against flows of every kind."""
        everything = set(sample_flows())
        http = everything - {"tcp"}
        table = {
            "~all": everything,
            "~http": http,
            "~tcp": {"tcp"},
            "~websocket": {"websocket"},
            "~udp": set(),
            "~dns": set(),
            "~q": {"pending", "failed", "marked"},
            "~s": {"get", "post", "css", "websocket"},
            "~e": {"failed"},
            "~a": {"css"},
            "~marked": {"marked"},
            "~marker star": {"marked"},
            "~comment ^second": {"marked"},
            "~meta 'source: imp'": {"marked"},
            "~replay": {"marked"},
            "~replayq": {"marked"},
            "~replays": set(),
            "~c 404": {"post"},
            "~c 200": {"get", "css"},
            "~d example": {"get", "post"},
            "~d '^API\\\\.'": {"post"},
            "~u /v1/": {"post"},
            "~u ^https://": {"post"},
            "items": {"post"},
            "~m post": {"post"},
            "~h accept": {"get"},
            "~h x-trace": {"post"},
            "~hq x-trace": set(),
            "~hs '^x-trace: abc'": {"post"},
            "~t json": {"post"},
            "~tq json": {"post"},
            "~ts json": set(),
            "~ts css": {"css"},
            "~t html": {"get"},
            "~b widget": {"post"},
            "~bq widget": {"post"},
            "~bs widget": set(),
            "~bs missing": {"post"},
            "~b hello": {"websocket"},
            "~bq 'hello client'": {"websocket"},
            "~bs 'hello client'": set(),
            "~bs 'hello server'": {"websocket"},
            "~b ping|pong": {"tcp"},
            "~bq ping": {"tcp"},
            "~bq pong": set(),
            "~bs pong": {"tcp"},
            "~src ^10\\.0\\.0\\.1:4000$": {"tcp"},
            "~src 127.0.0.1:50000": http,
            "~dst 10.0.0.2:7000": {"tcp"},
            "~dst example.com:80": http,
        }
        self.assertEqual(unlisted_operators(table), [])
        for expression, expected in table.items():
            self.assertEqual(matching(expression), expected, expression)

    def test_case_insensitive(self):
        """Regexes ignore case, as mitmproxy's (its default)."""
        self.assertEqual(matching("~d EXAMPLE.COM"), {"get"})
        self.assertEqual(matching("~h 'ACCEPT: TEXT/HTML'"), {"get"})

    def test_domain_matches_host_header_and_authority(self):
        """~d searches the connection host and the Host header / :authority."""
        flow = http_flow("http://10.1.2.3/")
        flow.request.headers["Host"] = "named.example:8080"
        self.assertTrue(flowfilter.match("~d named", flow))
        self.assertTrue(flowfilter.match("~d 10.1.2.3", flow))
        h2 = http_flow("https://10.1.2.3/")
        h2.request.http_version = "HTTP/2.0"
        h2.request.authority = "authority.example"
        self.assertTrue(flowfilter.match("~d ^authority", h2))

    def test_url_is_the_pretty_url(self):
        """~u (and a bare word) searches the URL built from the Host header."""
        flow = http_flow("http://10.1.2.3/path")
        flow.request.headers["Host"] = "named.example"
        self.assertTrue(flowfilter.match("^http://named.example/path$", flow))

    def test_body_is_decoded(self):
        """~b searches the decoded body."""
        flow = http_flow(response=Response.make(
            200, b"secret word", {"Content-Encoding": "gzip"}))
        self.assertNotIn(b"secret", flow.response.raw_content)
        self.assertTrue(flowfilter.match("~bs 'secret word'", flow))

    def test_undecodable_body_is_searched_raw(self):
        """A body that does not decode is searched as it came, as mitmproxy's get_content(strict=False)."""
        flow = http_flow(response=Response.make(200))
        flow.response.headers["content-encoding"] = "gzip"
        flow.response.raw_content = b"not gzip at all"
        self.assertTrue(flowfilter.match("~bs 'not gzip'", flow))

    def test_only_body_operators_decode(self):
        """No operator but ~b/~bq/~bs reads the body."""
        flow = http_flow(method="POST", body=gzip.compress(b"x" * 100),
                         headers={"Content-Encoding": "gzip", "Host": "example.com"},
                         request_type=CountingRequest)
        CountingRequest.decodes = 0
        others = [f"~{code}" + (" 1" if kind is StatusCode else " x" if issubclass(kind, RegexOperator) else "")
                  for code, kind in OPERATORS.items() if code not in ("b", "bq", "bs")]
        for expression in others:
            flowfilter.parse(expression)(flow)
        self.assertEqual(CountingRequest.decodes, 0)
        flowfilter.parse("~bq xxx")(flow)
        self.assertEqual(CountingRequest.decodes, 1)

    def test_status_code_without_response(self):
        """~c never matches a flow without a response, nor a TCP flow."""
        self.assertEqual(matching("~c 101"), {"websocket"})
        self.assertFalse(flowfilter.parse("~c 200")(tcp_flow()))


class SyntaxTests(SynchronousTestCase):
    """
    Precedence, words and quoting as mitmproxy's grammar reads them.
    """

    def test_precedence(self):
        """! binds tightest, then &, then |; side by side is the weakest "and"."""
        self.assertEqual(str(flowfilter.parse("a | b & c")), "~u a | ~u b & ~u c")
        self.assertEqual(flowfilter.parse("a | b & c"),
                         Or([OPERATORS["u"]("a") , And([OPERATORS["u"]("b"), OPERATORS["u"]("c")])]))
        self.assertEqual(str(flowfilter.parse("!a & b")), "!~u a & ~u b")
        self.assertEqual(str(flowfilter.parse("~a | ~b x ~c 200")), "(~a | ~b x) & ~c 200")
        self.assertEqual(str(flowfilter.parse("!(~q | ~s)")), "!(~q | ~s)")
        self.assertEqual(str(flowfilter.parse("~q !~s")), "~q & !~s")

    def test_words(self):
        """A bare word runs to whitespace, a parenthesis, ~ or a quote; &, | and ! are word characters inside it."""
        cases = {
            "a|b": "~u a|b",
            "foo!bar": "~u foo!bar",
            "~d !a": "~d !a",
            "~d a|~s": "~d a| & ~s",
            "&": "~u &",
            "~q|~s": "~q | ~s",
            "(~q)": "~q",
            "~d \\d+": "~d \\d+",
        }
        for text, printed in cases.items():
            self.assertEqual(str(flowfilter.parse(text)), printed, text)

    def test_quotes(self):
        """Quoted words take mitmproxy's escapes: \\n \\t \\r \\f \\0 are characters, a backslash escapes anything else."""
        cases = {
            '~d "a b"': "a b",
            "~d 'a\\'b'": "a'b",
            '~d "a\\"b"': 'a"b',
            '~d "a\\\\b"': "a\\b",
            '~d "a\\nb"': "a\nb",
            '~d "a\\tb"': "a\tb",
            '~d "a\\db"': "adb",
            '~d "(x)"': "(x)",
            '~d ""': "",
        }
        for text, expr in cases.items():
            self.assertEqual(flowfilter.parse(text).expr, expr, text)

    def test_errors(self):
        """A malformed expression raises FilterSyntaxError naming the column and what was wrong."""
        cases = {
            "~c abc": "~c abc: expected a status code at column 4",
            "~c 200x": "~c 200x: expected a status code at column 4",
            "~c": "~c: expected a status code at column 3",
            "~x": "~x: unknown operator ~x at column 1",
            "~dfoo": "~dfoo: unknown operator ~dfoo at column 1",
            "~d": "~d: expected a regular expression after ~d at column 3",
            "~d (x)": "~d (x): expected a regular expression after ~d at column 4",
            "~d [": "~d [: bad regular expression for ~d "
                    "(unterminated character set at position 0) at column 4",
            "~q & ": "~q & : expected a filter expression after '&' at column 6",
            "!": "!: expected a filter expression after '!' at column 2",
            "()": "(): expected a filter expression after '(' at column 2",
            "(~q": "(~q: unclosed '(' at column 1",
            "~q)": "~q): unexpected ')' at column 3",
            "~d 'abc": "~d 'abc: unterminated '-quoted string at column 4",
            '~d "a\nb"': '~d "a\nb": unterminated "-quoted string at column 4',
            "": "empty filter expression ''",
            " \t": "empty filter expression ' \\t'",
        }
        for text, message in cases.items():
            with self.assertRaises(flowfilter.FilterSyntaxError, msg=text) as raised:
                flowfilter.parse(text)
            self.assertEqual(str(raised.exception), message)
            self.assertIsInstance(raised.exception, ValueError)

    def test_nesting_is_bounded(self):
        """Deep nesting is a syntax error, not a RecursionError."""
        for text in ["(" * 10000 + "a" + ")" * 10000, "!" * 10000 + "a"]:
            with self.assertRaises(flowfilter.FilterSyntaxError) as raised:
                flowfilter.parse(text)
            self.assertIn(f"nested deeper than {MAX_NESTING} levels", str(raised.exception))
        flowfilter.parse("(" * MAX_NESTING + "a" + ")" * MAX_NESTING)

    def test_unencodable_regex(self):
        """A byte-searching regex that is not UTF-8 text is a syntax error."""
        with self.assertRaises(flowfilter.FilterSyntaxError) as raised:
            flowfilter.parse("~b \udcff")
        self.assertIn("bad regular expression for ~b", str(raised.exception))

    def test_not_text(self):
        """parse wants a str."""
        self.assertRaises(TypeError, flowfilter.parse, b"~q")

    def test_cached(self):
        """The same text gives the same filter, which remembers its text."""
        self.assertIs(flowfilter.parse("~d x & ~q"), flowfilter.parse("~d x & ~q"))
        self.assertEqual(flowfilter.parse("~d x & ~q").pattern, "~d x & ~q")

    def test_match(self):
        """match takes text, a filter or None (every flow)."""
        flow = sample_flows()["post"]
        self.assertTrue(flowfilter.match("~m POST", flow))
        self.assertFalse(flowfilter.match(flowfilter.parse("~m GET"), flow))
        self.assertTrue(flowfilter.match(None, flow))
        self.assertRaises(flowfilter.FilterSyntaxError, flowfilter.match, "~c x", flow)

    def test_help(self):
        """help lists every operator and the combinators."""
        self.assertEqual(len(flowfilter.help), len(OPERATORS) + 4)
        self.assertIn(("~c int", "HTTP response code"), flowfilter.help)
        self.assertIn(("~d regex", "Domain"), flowfilter.help)


# -- properties ----------------------------------------------------------------

_REGEX_CODES = sorted(code for code, kind in OPERATORS.items() if issubclass(kind, RegexOperator))
_PLAIN_CODES = sorted(code for code, kind in OPERATORS.items()
                      if not issubclass(kind, (RegexOperator, StatusCode)))
# Words likely to match the sample flows, and any text at all (quoting).
_WORDS = st.sampled_from(["example", "POST", "html", "hello", "ping", "^http", "1", "x-trace",
                          "star", "a b", "it's", 'say "hi"', "\\\\", "tab\there", "\\(", "~q", "!",
                          "&", "|", ""])
_ANY_WORD = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12).filter(
    lambda word: _compiles(word))


def _compiles(word: str) -> bool:
    try:
        OPERATORS["b"](word)
        OPERATORS["d"](word)
    except Exception:
        return False
    return True


def _leaves(words: st.SearchStrategy[str]) -> st.SearchStrategy[Filter]:
    regex = st.builds(lambda code, word: OPERATORS[code](word), st.sampled_from(_REGEX_CODES), words)
    plain = st.builds(lambda code: OPERATORS[code](), st.sampled_from(_PLAIN_CODES))
    status = st.builds(StatusCode, st.sampled_from([101, 200, 404, 500]))
    return st.one_of(regex, plain, status)


def _trees(words: st.SearchStrategy[str]) -> st.SearchStrategy[Filter]:
    return st.recursive(
        _leaves(words),
        lambda children: st.one_of(
            st.builds(Not, children),
            st.builds(And, st.lists(children, min_size=2, max_size=3)),
            st.builds(Or, st.lists(children, min_size=2, max_size=3)),
        ),
        max_leaves=8,
    )


_FLOWS = list(sample_flows().values())


class PropertyTests(SynchronousTestCase):
    """
    Printing and parsing agree, and the combinators are boolean algebra.
    """

    @settings(max_examples=300, deadline=None)
    @given(_trees(_ANY_WORD))
    def test_print_parse(self, tree):
        """str() of any tree parses to an equal tree, which prints the same."""
        parsed = flowfilter.parse(str(tree))
        self.assertEqual(parsed, tree)
        self.assertEqual(str(parsed), str(tree))

    @settings(max_examples=200, deadline=None)
    @given(_trees(_WORDS), _trees(_WORDS), _trees(_WORDS))
    def test_boolean_laws(self, a, b, c):
        """Parsed !, &, | evaluate as not, and, or; De Morgan and distribution hold."""
        p, q, r = str(a), str(b), str(c)
        for flow in _FLOWS:
            x, y, z = a(flow), b(flow), c(flow)
            value = lambda text: flowfilter.parse(text)(flow)  # noqa: E731
            self.assertEqual(value(f"!({p})"), not x)
            self.assertEqual(value(f"({p}) & ({q})"), x and y)
            self.assertEqual(value(f"({p}) | ({q})"), x or y)
            self.assertEqual(value(f"({p}) ({q})"), x and y)
            self.assertEqual(value(f"!(({p}) & ({q}))"), value(f"!({p}) | !({q})"))
            self.assertEqual(value(f"!(({p}) | ({q}))"), value(f"!({p}) & !({q})"))
            self.assertEqual(value(f"({p}) & (({q}) | ({r}))"),
                             value(f"(({p}) & ({q})) | (({p}) & ({r}))"))
            self.assertEqual(value(f"({p}) | ({q}) & ({r})"), x or (y and z))
            self.assertEqual(value(f"!!({p})"), x)
