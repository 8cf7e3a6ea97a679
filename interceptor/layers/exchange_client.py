# -*- test-case-name: tests.test_exchange -*-
"""
What an HTTP exchange uses of its client side, and in its place:

- L{HoldUntilTaken}: holds the reads of a client without flow control of
  its own (HTTP/1) while a piece of its request body waits at the server;
- L{ClientReads}: the client's reads as the hold/release pair that hooks
  taking time hold;
- L{CLIENT_GONE} (a L{ClientGone}): the client side of an exchange that is
  over both ways, which takes whatever still arrives and sends nothing.
"""

from __future__ import annotations

from typing import Callable, Optional

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from interceptor.layers.contracts import IClientSide, IServerSide
from interceptor.model.http import Request, Response

__all__ = ["CLIENT_GONE", "ClientGone", "ClientReads", "HoldUntilTaken"]


class HoldUntilTaken:
    """
    The acknowledgement of a piece of request body from a client without
    flow control of its own (HTTP/1): if the server does not take the piece
    at once (an HTTP/2 window), the client's reads are held until it does.
    """

    __slots__ = ("client", "taken", "holding")

    def __init__(self, client: IClientSide) -> None:
        self.client = client
        self.taken = False
        self.holding = False

    def __call__(self) -> None:
        """
        The server took the piece: read the client again if it was held.
        """
        self.taken = True
        if self.holding:
            self.holding = False
            self.client.release_reads()

    def sent(self) -> None:
        """
        The piece was handed to the server side: hold the client if it
        waits there.
        """
        if not self.taken:
            self.holding = True
            self.client.hold_reads()


class ClientReads:
    """
    The client's reads as a hold/release pair (what an exchange holds
    while its hooks take time).
    """

    __slots__ = ("client",)

    def __init__(self, client: IClientSide) -> None:
        self.client = client

    def hold(self) -> None:
        """
        Stop reading the client.
        """
        self.client.hold_reads()

    def release(self) -> None:
        """
        Read the client again.
        """
        self.client.release_reads()


@implementer(IClientSide)
class ClientGone:
    """
    The client side of an exchange that is over both ways: nothing is
    sent to the client any more, so every command does nothing.
    """

    can_upgrade = False
    chunked_ok = True
    direct_transport = None
    in_turn = True

    def idle_server(self, request: Request) -> Optional[IServerSide]:
        return None

    def connect(self, request: Request) -> Deferred[Optional[IServerSide]]:
        return succeed(None)

    def hold_reads(self) -> None:
        pass

    def release_reads(self) -> None:
        pass

    def send_continue(self) -> None:
        pass

    def send_response_head(self, response: Response) -> bool:
        return False

    def send_response_data(self, data: bytes, ack: Optional[Callable[[], None]]) -> None:
        if ack is not None:
            ack()

    def end_response(self, response: Response) -> None:
        pass

    def send_response(self, response: Response, early: bool) -> None:
        pass

    def send_error(self, status: int, reason: str, detail: str, started: bool) -> None:
        pass

    def abandon(self) -> None:
        pass

    def kill(self) -> None:
        pass

    def switch_protocols(self, server: IServerSide, after: list[bytes]) -> None:
        pass

    def finished(self) -> None:
        pass

    def flush(self) -> None:
        pass


CLIENT_GONE = ClientGone()
"""The one L{ClientGone}: an exchange that let go of its client side holds it."""
