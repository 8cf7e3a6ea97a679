"""
What counts as "it ran" for each of mitmproxy's example scripts, as
C{bench/mitmcompat.py} drives them.

Each entry names the script's file (without directory) and gives:

  - C{args}: extra C{twistd interceptor} arguments a user would pass, as
    the script's docstring or usage line says (C{--set ...}; a v2 script's
    own arguments go after its path, C{-s "script.py ARG"}).
  - C{expect}: checks, all of which must hold for PASS.  Each check is a
    pair C{(where, regex)}: C{where} is C{"out"} (the proxy's output),
    C{"http"} (every HTTP response, head and body, as the client saw it),
    C{"ws"} (what the WebSocket client received), C{"tcp"} (what the raw
    TCP client received) or C{"file"} (the contents of the file the
    harness names C{{out}} in C{args}).
  - C{na}: set when the script needs what issue #16 excludes (content
    views, a console UI, DNS/UDP, external services, a standalone program
    rather than an addon, a third-party package not installed); the
    reason is reported and the script is not run.
  - C{ws_linger}: seconds the WebSocket client waits, after the echo, for
    a message the script injects.
  - C{note}: a remark for the table (e.g. a hard-coded host the loopback
    traffic cannot reach, so only "loads and handles traffic" is checked).

A script with no entry is expected to load and to raise nothing on the
traffic (C{expect} empty).
"""

from __future__ import annotations

from typing import TypedDict


class Expectation(TypedDict, total=False):
    """One script's arguments and its visible effects.

    @ivar args: Extra command-line arguments for C{twistd interceptor}.
    @ivar expect: C{(where, regex)} checks that must all match.
    @ivar na: Why the script is not applicable (not run), if it is not.
    @ivar note: A remark shown in the results table.
    @ivar ws_linger: Seconds the WebSocket client waits for a further message.
    @ivar urls: More URLs to GET through the proxy (a virtual host the script
        serves; the harness must then run in a loopback-only network namespace).
    """

    args: list[str]
    expect: list[tuple[str, str]]
    na: str
    note: str
    ws_linger: float
    urls: list[str]


HARD_CODED_HOST = "effect needs a hard-coded public host; loopback traffic only checks it loads and runs"

EXPECTATIONS: dict[str, Expectation] = {
    # v2.0 examples/simple
    "add_header.py": {"expect": [("http", r"(?im)^newheader: foo")]},
    "add_header_class.py": {"expect": [("http", r"(?im)^newheader: foo")]},
    "custom_contentview.py": {"na": "content view (excluded by the issue)"},
    "filter_flows.py": {"args": ["--addon-args", "~s"], "expect": [("out", r"Flow matches filter")]},
    "io_read_dumpfile.py": {"na": "standalone program reading a flow file, not an addon"},
    "io_write_dumpfile.py": {"args": ["--addon-args", "{out}"], "expect": [("file", r".")],
                              "note": "writes a random half of the flows; 6 flows make an empty file unlikely (1/64)"},
    "log_events.py": {"expect": [("out", r"This is some informative text"), ("out", r"This is an error")]},
    "modify_body_inject_iframe.py": {"args": ["--addon-args", "http://frame.example/frame"],
                                      "expect": [("http", r"<iframe[^>]*frame\.example/frame")],
                                      "note": "needs bs4"},
    "modify_form.py": {"expect": [("http", r"mitmproxy=rocks")]},
    "modify_querystring.py": {"expect": [("http", r"mitmproxy=rocks")]},
    "redirect_requests.py": {"note": HARD_CODED_HOST},
    "script_arguments.py": {"args": ["--addon-args", "hello HELLO-REPLACED"],
                             "expect": [("http", r"HELLO-REPLACED")]},
    "send_reply_from_proxy.py": {"note": HARD_CODED_HOST},
    "upsidedownternet.py": {"expect": [("http", r"(?im)^content-type: image/png")], "note": "needs PIL"},
    "wsgi_flask_app.py": {"urls": ["http://proxapp/"], "expect": [("http", r"Hello World!")],
                          "note": "needs flask; a virtual host: run under unshare -n"},
    # v2.0 examples/complex
    "change_upstream_proxy.py": {"na": "upstream proxy mode with a live server switch (flow.live), needs upstream proxies"},
    "dns_spoofing.py": {"na": "reverse/transparent mode with spoofed DNS"},
    "dup_and_replay.py": {"expect": [("out", r"/changed")]},
    "flowbasic.py": {"na": "standalone program building its own master, not an addon"},
    "har_dump.py": {"args": ["--addon-args", "{out}"], "expect": [("file", r'"entries"')]},
    "mitmproxywrapper.py": {"na": "standalone macOS proxy-settings tool, not an addon"},
    "nonblocking.py": {"expect": [("out", r"handle request"), ("out", r"start  request")]},
    "remote_debug.py": {"na": "connects to a PyCharm debug server (external service)"},
    "sslstrip.py": {"expect": [("http", r"http://strip\.invalid/")]},
    "stream.py": {"expect": [("http", r"streamed-body")]},
    "stream_modify.py": {"expect": [("http", r"streamed-bar")]},
    "tcp_message.py": {"args": ["--set", "tcp_hosts=.*"], "expect": [("tcp", r"bar"), ("out", r"tcp_message")]},
    "tls_passthrough.py": {"na": "replaces mitmproxy 2's TLS layer classes (mitmproxy.proxy.protocol internals)"},
    # v12 examples/addons
    "anatomy.py": {"expect": [("out", r"We've seen \d+ flows")]},
    "anatomy2.py": {"expect": [("out", r"(?i)myheader")], "note": "request header seen in -v output"},
    "commands-flows.py": {"expect": [], "note": "defines a command for the console; checks it loads"},
    "commands-paths.py": {"expect": [], "note": "defines a command for the console; checks it loads"},
    "commands-simple.py": {"expect": [], "note": "defines a command for the console; checks it loads"},
    "duplicate-modify-replay.py": {"expect": [("out", r"/changed")]},
    "filter-flows.py": {"args": ["--set", "flowfilter=~s"], "expect": [("out", r"Flow matches filter")]},
    "http-add-header.py": {"expect": [("http", r"(?im)^count: \d+")]},
    "http-modify-form.py": {"expect": [("http", r"mitmproxy=rocks")]},
    "http-modify-query-string.py": {"expect": [("http", r"mitmproxy=rocks")]},
    "http-redirect-requests.py": {"note": HARD_CODED_HOST},
    "http-reply-from-proxy.py": {"note": HARD_CODED_HOST},
    "http-stream-modify.py": {"expect": [("http", r"streamed-bar")]},
    "log-events.py": {"expect": [("out", r"This is some informative text"), ("out", r"This is a warning"),
                                 ("out", r"This is an error")]},
    "options-configure.py": {"args": ["--set", "addheader=7"], "expect": [("http", r"(?im)^addheader: 7")]},
    "options-simple.py": {"args": ["--set", "addheader=true"], "expect": [("http", r"(?im)^count: \d+")]},
    "tcp-simple.py": {"args": ["--set", "tcp_hosts=.*"], "expect": [("tcp", r"bar"), ("out", r"tcp_message\[")]},
    "shutdown.py": {"note": HARD_CODED_HOST},
    "io-write-flow-file.py": {"args": ["--addon-args", "{out}"], "expect": [("file", r".")],
                              "note": "takes the file from sys.argv[1] at import; writes a random half of the flows"},
    "io-read-saved-flows.py": {"na": "standalone program reading a flow file, not an addon"},
    "websocket-inject-message.py": {"expect": [("ws", r"injected message")], "ws_linger": 7.0,
                                    "note": "injects every 5 s; the client waits 7 s for it"},
    "internet-in-mirror.py": {"expect": [("http", r"scaleX\(-1\)")]},
    "dns-simple.py": {"na": "DNS (excluded by the issue)"},
    "wsgi-flask-app.py": {"urls": ["http://example.com/"], "expect": [("http", r"Hello World!")],
                          "note": "needs flask; a virtual host: run under unshare -n"},
    "contentview-interactive.py": {"na": "content view (excluded by the issue)"},
    "contentview.py": {"na": "content view (excluded by the issue)"},
    "http-trailers.py": {"note": "no trailers in the loopback traffic; checks it loads and runs"},
    "websocket-simple.py": {"expect": [("out", r"Client sent a message"), ("ws", r"HAPPY")]},
}


def expectation_for(name: str) -> Expectation:
    """The expectation of the script file C{name} (its base name).

    @param name: The script's file name, e.g. C{"anatomy.py"}.
    @return: Its entry, or an empty one (loads and raises nothing).
    """
    return EXPECTATIONS.get(name, {})
