# -*- test-case-name: tests.e2e.test_websocket -*-
"""
Watch, rewrite, drop and inject WebSocket messages.

    twistd -n interceptor --addon examples/websocket_rewrite.py
    # then point a WebSocket client at the proxy (ws:// or wss://)

- text from the client has "hello" replaced by "HELLO";
- messages containing "drop me" (either way) never reach the peer;
- when the client sends "ping proxy", the proxy itself answers "pong from proxy";
- the end of each connection is logged with its close code.
"""

import logging

from interceptor.websocket import inject


def websocket_start(flow):
    """
    A WebSocket connection opened.
    """
    logging.info("WebSocket open: %s", flow.request.url)


def websocket_message(flow):
    """
    Rewrite, drop, or answer the newest message.
    """
    message = flow.websocket.messages[-1]
    if message.injected:
        return
    if b"drop me" in message.content:
        message.kill()
        return
    if message.from_client and message.is_text:
        if message.text == "ping proxy":
            message.kill()
            inject(flow, to_client=True, content="pong from proxy")
            return
        message.text = message.text.replace("hello", "HELLO")


def websocket_end(flow):
    """
    The connection closed cleanly.
    """
    ws = flow.websocket
    who = "client" if ws.closed_by_client else "server"
    logging.info("WebSocket closed by the %s: %s %s", who, ws.close_code, ws.close_reason)
