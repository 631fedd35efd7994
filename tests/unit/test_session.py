"""Pure unit tests for the connection state machine (relay.protocol.session)."""

from __future__ import annotations

import pytest

from relay.errors import DISCONNECT_BAD_REQUEST, DisconnectError
from relay.protocol.schema import COMMAND_METHODS
from relay.protocol.session import (
    CLOSED,
    CONNECTED,
    CONNECTING,
    PONG,
    TRANSITIONS,
    UNUSABLE,
    Session,
    State,
)

METHODS_AFTER_CONNECT = [m for m in COMMAND_METHODS if m != "connect"]


def _session(state: State, *, ping: bool = False) -> Session:
    s = Session()
    if state is CONNECTED:
        s.connected()
    elif state is UNUSABLE:
        s.connect_failed()
    elif state is CLOSED:
        s.closed()
    if ping:
        s.ping_sent()
    return s


def test_initial_state() -> None:
    s = Session()
    assert s.state is CONNECTING
    assert s.ping_outstanding is False


# ---- dispatch: allowed ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "cmd", "expected"),
    [
        (CONNECTING, {"id": 1, "connect": {}}, "connect"),
        (CONNECTING, {"id": 7, "connect": {"token": "x"}}, "connect"),
        *[(CONNECTED, {"id": 2, m: {}}, m) for m in METHODS_AFTER_CONNECT],
        (CONNECTED, {"send": {"data": "x"}}, "send"),
        (CONNECTED, {"id": 0, "send": {}}, "send"),
        (CONNECTED, {"id": 5, "send": {}}, "send"),
    ],
)
def test_dispatch_allowed(state: State, cmd: dict[str, object], expected: str) -> None:
    assert _session(state).dispatch(cmd) == expected


# ---- dispatch: refused with 3501 ---------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "cmd"),
    [
        # the first command must be connect
        *[(CONNECTING, {"id": 1, m: {}}) for m in METHODS_AFTER_CONNECT],
        (CONNECTING, {"send": {}}),
        # id rules: every method but send needs id > 0
        (CONNECTING, {"connect": {}}),
        (CONNECTING, {"id": 0, "connect": {}}),
        *[(CONNECTED, {m: {}}) for m in METHODS_AFTER_CONNECT if m != "send"],
        *[(CONNECTED, {"id": 0, m: {}}) for m in METHODS_AFTER_CONNECT if m != "send"],
        # connect twice
        (CONNECTED, {"id": 3, "connect": {}}),
        # unknown method and ping method
        (CONNECTING, {"id": 1, "foo": {}}),
        (CONNECTED, {"id": 1, "foo": {}}),
        (CONNECTED, {"id": 1, "ping": {}}),
        (CONNECTED, {"ping": {}}),
        # anything after a failed connect
        *[(UNUSABLE, {"id": 1, m: {}}) for m in COMMAND_METHODS],
        (UNUSABLE, {"send": {}}),
        (UNUSABLE, {}),
        # anything once closed
        *[(CLOSED, {"id": 1, m: {}}) for m in COMMAND_METHODS],
        (CLOSED, {}),
        # an empty command (pong) with no ping outstanding
        (CONNECTED, {}),
        (CONNECTED, {"id": 0}),
        (CONNECTING, {}),
    ],
)
def test_dispatch_refused(state: State, cmd: dict[str, object]) -> None:
    with pytest.raises(DisconnectError) as ei:
        _session(state).dispatch(cmd)
    assert _code(ei.value) == 3501


@pytest.mark.parametrize("state", [CONNECTING, UNUSABLE, CLOSED])
def test_pong_refused_outside_connected_even_with_ping(state: State) -> None:
    s = _session(state, ping=True)
    with pytest.raises(DisconnectError) as ei:
        s.dispatch({})
    assert _code(ei.value) == 3501


def _code(exc: DisconnectError) -> int:
    assert exc.disconnect == DISCONNECT_BAD_REQUEST
    return exc.disconnect.code


# ---- pong -------------------------------------------------------------------------------
def test_pong_only_once_per_ping() -> None:
    s = _session(CONNECTED, ping=True)
    assert s.ping_outstanding is True
    assert s.dispatch({}) == PONG
    assert s.ping_outstanding is False
    with pytest.raises(DisconnectError) as ei:
        s.dispatch({})
    assert _code(ei.value) == 3501


def test_pong_with_zero_id_is_a_pong() -> None:
    s = _session(CONNECTED, ping=True)
    assert s.dispatch({"id": 0}) == PONG


def test_pong_with_id_refused_even_with_ping() -> None:
    s = _session(CONNECTED, ping=True)
    with pytest.raises(DisconnectError) as ei:
        s.dispatch({"id": 4})
    assert _code(ei.value) == 3501


def test_ping_pong_cycles() -> None:
    s = _session(CONNECTED)
    for _ in range(3):
        s.ping_sent()
        assert s.dispatch({"id": 1, "rpc": {}}) == "rpc"
        assert s.ping_outstanding is True
        assert s.dispatch({}) == PONG


def test_repeated_ping_sent_needs_one_pong() -> None:
    s = _session(CONNECTED)
    s.ping_sent()
    s.ping_sent()
    assert s.dispatch({}) == PONG
    with pytest.raises(DisconnectError):
        s.dispatch({})


def test_dispatch_does_not_change_state() -> None:
    s = Session()
    assert s.dispatch({"id": 1, "connect": {}}) == "connect"
    assert s.state is CONNECTING
    s.connected()
    assert s.dispatch({"id": 2, "subscribe": {"channel": "a"}}) == "subscribe"
    assert s.state is CONNECTED


# ---- transitions ------------------------------------------------------------------------
_MOVES = {
    CONNECTED: Session.connected,
    UNUSABLE: Session.connect_failed,
}


@pytest.mark.parametrize(
    ("start", "target", "ok"),
    [
        (CONNECTING, CONNECTED, True),
        (CONNECTING, UNUSABLE, True),
        (CONNECTED, CONNECTED, False),
        (CONNECTED, UNUSABLE, False),
        (UNUSABLE, CONNECTED, False),
        (UNUSABLE, UNUSABLE, False),
        (CLOSED, CONNECTED, False),
        (CLOSED, UNUSABLE, False),
    ],
)
def test_transition_table(start: State, target: State, ok: bool) -> None:
    s = _session(start)
    move = _MOVES[target]
    if ok:
        move(s)
        assert s.state is target
    else:
        with pytest.raises(RuntimeError, match="invalid transition"):
            move(s)
        assert s.state is start


@pytest.mark.parametrize("start", [CONNECTING, CONNECTED, UNUSABLE, CLOSED])
def test_closed_from_any_state_and_idempotent(start: State) -> None:
    s = _session(start)
    s.closed()
    assert s.state is CLOSED
    s.closed()
    assert s.state is CLOSED


def test_transitions_map_matches_spec() -> None:
    assert TRANSITIONS[CONNECTING] == {CONNECTED, UNUSABLE, CLOSED}
    assert TRANSITIONS[CONNECTED] == {CLOSED}
    assert TRANSITIONS[UNUSABLE] == {CLOSED}
    assert TRANSITIONS[CLOSED] == frozenset()
    assert set(TRANSITIONS) == set(State)


def test_move_to_closed_via_private_move_rejected_twice() -> None:
    s = _session(CLOSED)
    with pytest.raises(RuntimeError):
        s._move(CLOSED)
