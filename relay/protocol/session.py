"""The connection state machine, without I/O.

Rules:

1. Only this module changes a connection's state; state never depends on the transport.
2. The first command must be ``connect``; a failed connect leaves the connection
   unusable (any further command closes it with 3501).
3. Every command except ``send`` and the empty pong needs ``id > 0``.
4. A pong is an empty command; it is valid only when a ping is outstanding
   (Centrifugo closes with 3501 otherwise).

Source: centrifugal/centrifuge ``client.go`` (``dispatchCommand``), spec
client-protocol.md §3 and §7.1.
"""

from __future__ import annotations

import enum

from relay.errors import DISCONNECT_BAD_REQUEST, DisconnectError
from relay.protocol.schema import COMMAND_METHODS

__all__ = ["State", "Session", "PONG", "CONNECTING", "CONNECTED", "UNUSABLE", "CLOSED"]

PONG = "pong"


class State(enum.IntEnum):
    CONNECTING = 0
    CONNECTED = 1
    UNUSABLE = 2
    CLOSED = 3


CONNECTING, CONNECTED, UNUSABLE, CLOSED = State

#: state -> the states it may move to.
TRANSITIONS: dict[State, frozenset[State]] = {
    CONNECTING: frozenset({CONNECTED, UNUSABLE, CLOSED}),
    CONNECTED: frozenset({CLOSED}),
    UNUSABLE: frozenset({CLOSED}),
    CLOSED: frozenset(),
}


class Session:
    """Decides, for each decoded command, which handler runs or why the connection ends."""

    __slots__ = ("state", "ping_outstanding")

    def __init__(self) -> None:
        self.state = CONNECTING
        self.ping_outstanding = False

    def _move(self, new: State) -> None:
        if new not in TRANSITIONS[self.state]:
            raise RuntimeError(f"invalid transition {self.state.name} -> {new.name}")
        self.state = new

    # ---- transitions ------------------------------------------------------------------
    def connected(self) -> None:
        self._move(CONNECTED)

    def connect_failed(self) -> None:
        self._move(UNUSABLE)

    def closed(self) -> None:
        if self.state is not CLOSED:
            self._move(CLOSED)

    def ping_sent(self) -> None:
        self.ping_outstanding = True

    # ---- dispatch ---------------------------------------------------------------------
    def dispatch(self, cmd: dict[str, object]) -> str:
        """Return the method to run (or ``PONG``); raise DisconnectError(3501) otherwise."""
        method = next((m for m in COMMAND_METHODS if m in cmd), "")
        cmd_id = cmd.get("id", 0)
        if not method:
            if cmd_id or "ping" in cmd or self.state is not CONNECTED:
                raise DisconnectError(DISCONNECT_BAD_REQUEST)
            if not self.ping_outstanding:
                raise DisconnectError(DISCONNECT_BAD_REQUEST)
            self.ping_outstanding = False
            return PONG
        if not cmd_id and method != "send":
            raise DisconnectError(DISCONNECT_BAD_REQUEST)
        if self.state is CONNECTING:
            if method != "connect":
                raise DisconnectError(DISCONNECT_BAD_REQUEST)
        elif self.state is not CONNECTED or method == "connect":
            raise DisconnectError(DISCONNECT_BAD_REQUEST)
        return method
