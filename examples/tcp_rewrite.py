# -*- test-case-name: tests.e2e.test_tcp -*-
"""
Watch and rewrite raw TCP traffic (connections relayed as TCP because
their destination matches C{tcp_hosts}, or because their bytes are neither
TLS nor HTTP).

    twistd -n interceptor --set tcp_hosts=example.org:7 --addon examples/tcp_rewrite.py

Every chunk from the client has C{ping} replaced by C{PONG!} (the length
changes; the server receives the new bytes), chunks from the server
containing C{secret} are dropped, and each connection's end is logged with
its message count.
"""

from twisted.logger import Logger

_log = Logger(namespace="examples.tcp_rewrite")


def tcp_start(flow):
    """
    A TCP connection starts being relayed.
    """
    _log.info("tcp: {address} relayed as raw TCP", address=flow.server_conn.address)


def tcp_message(flow):
    """
    Rewrite client bytes; drop server chunks that give away a secret.
    """
    message = flow.messages[-1]
    if message.from_client:
        message.content = message.content.replace(b"ping", b"PONG!")
    elif b"secret" in message.content:
        message.kill()


def tcp_end(flow):
    """
    The connection closed cleanly.
    """
    _log.info("tcp: {address} closed after {count} messages",
              address=flow.server_conn.address, count=len(flow.messages))


def tcp_error(flow):
    """
    The connection failed (reset, or the server could not be reached).
    """
    _log.warn("tcp: {address} failed: {error}", address=flow.server_conn.address, error=flow.error)
