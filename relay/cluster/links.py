"""How a worker reaches the other workers of the cluster for node-wide operations.

Two operations need every worker: *control* (server API subscribe, unsubscribe,
disconnect, refresh of connections wherever they live) and *surveys* (``channels``,
``info``). Two links provide them:

* ``BusLink`` — the workers of one node over the bus (memory engine);
* ``RedisLink`` — every worker of every node over Redis PUB/SUB (``engine.type: redis``):
  ``P.control`` reaches all, ``P.node.<worker>`` one worker. Each worker announces itself
  every 3 s; a peer not heard from for 7 s is dropped (Centrifugo's node heartbeat).
  Messages are JSON (never pickle: other nodes share the Redis); the raw-JSON fields of a
  decoded request, which are bytes, travel as ``{"\\u0000b": base64}``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from relay.cluster.bus import Bus

__all__ = ["ClusterLink", "LinkOwner", "BusLink", "RedisLink"]

log = logging.getLogger("relay.cluster")

HEARTBEAT = 3.0
PEER_TTL = 7.0
SURVEY_TIMEOUT = 2.0
_BYTES = "\u0000b"


def _encode_bytes(value: Any) -> Any:
    if isinstance(value, bytes):
        return {_BYTES: base64.b64encode(value).decode("ascii")}
    raise TypeError(f"{type(value).__name__} does not travel in a control message")


def _decode_bytes(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _BYTES in obj:
        return base64.b64decode(obj[_BYTES])
    return obj


def encode_message(message: dict[str, Any]) -> bytes:
    """One control message as JSON text."""
    return json.dumps(message, separators=(",", ":"), default=_encode_bytes).encode()


def decode_message(data: bytes) -> Any:
    return json.loads(data, object_hook=_decode_bytes)


class LinkOwner(Protocol):
    """The node side of a link."""

    def apply_control(self, op: str, req: dict[str, Any]) -> None: ...

    def local_survey(self, op: str) -> Any: ...


class ClusterLink(Protocol):
    async def attach(self, owner: LinkOwner) -> None: ...

    def broadcast(self, op: str, req: dict[str, Any]) -> None:
        """Run a control operation on every *other* worker."""

    async def survey(self, op: str) -> list[Any]:
        """Every other live worker's ``local_survey(op)``."""

    async def close(self) -> None: ...


class BusLink:
    """Control and surveys among the workers of one node (the bus)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def attach(self, owner: LinkOwner) -> None:
        self.bus.on("control", lambda _s, op, req: owner.apply_control(op, req))
        self.bus.serve("survey", lambda _s, op: owner.local_survey(op))

    def broadcast(self, op: str, req: dict[str, Any]) -> None:
        self.bus.cast_all("control", op, req)

    async def survey(self, op: str) -> list[Any]:
        from relay.cluster.bus import BusError

        others = [w for w in range(self.bus.workers) if w != self.bus.id]
        answers = await asyncio.gather(
            *(self.bus.request(w, "survey", op, timeout=SURVEY_TIMEOUT) for w in others),
            return_exceptions=True,
        )
        out = []
        for answer in answers:
            if isinstance(answer, BusError):
                log.warning("survey %s: %s", op, answer)
            elif not isinstance(answer, BaseException):
                out.append(answer)
        return out

    async def close(self) -> None:
        return None


class _ControlEngine(Protocol):
    async def start_control(self, on_control: Callable[[bytes], None]) -> None: ...

    async def publish_control(self, data: bytes, node_id: str = "") -> None: ...


class RedisLink:
    """Control, surveys and heartbeats of all workers of all nodes, over Redis."""

    def __init__(self, engine: _ControlEngine, worker_key: str) -> None:
        self.engine = engine
        self.key = worker_key
        self.peers: dict[str, float] = {}
        self._owner: LinkOwner | None = None
        self._ids = itertools.count(1)
        self._surveys: dict[int, tuple[list[Any], set[str], asyncio.Event]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._foreign = 0  # control messages of other servers, ignored

    async def attach(self, owner: LinkOwner) -> None:
        self._owner = owner
        await self.engine.start_control(self._on_message)
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()

    def live_nodes(self) -> int:
        """Nodes heard from lately, this one included (a key is ``<node>.<worker>``)."""
        return len({key.rsplit(".", 1)[0] for key in [self.key, *self.live_peers()]})

    def live_peers(self) -> list[str]:
        now = time.monotonic()
        for key in [k for k, seen in self.peers.items() if now - seen > PEER_TTL]:
            del self.peers[key]
        return list(self.peers)

    # ---- sending ----------------------------------------------------------------------
    def _send(self, message: dict[str, Any], to: str = "") -> None:
        message["from"] = self.key
        data = encode_message(message)
        task = asyncio.get_running_loop().create_task(self._publish(data, to))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, data: bytes, to: str) -> None:
        try:
            await self.engine.publish_control(data, to)
        except Exception as exc:
            log.warning("control message not sent: %s", exc)

    async def _beat(self) -> None:
        self._send({"op": "hb", "hello": True})
        while True:
            await asyncio.sleep(HEARTBEAT)
            self._send({"op": "hb"})

    def broadcast(self, op: str, req: dict[str, Any]) -> None:
        self._send({"op": "control", "control": op, "req": req})

    async def survey(self, op: str) -> list[Any]:
        peers = set(self.live_peers())
        if not peers:
            return []
        survey_id = next(self._ids)
        answers: list[Any] = []
        done = asyncio.Event()
        self._surveys[survey_id] = (answers, peers, done)
        self._send({"op": "survey", "id": survey_id, "q": op})
        try:
            async with asyncio.timeout(SURVEY_TIMEOUT):
                await done.wait()
        except TimeoutError:
            log.warning("survey %s: %d of %d workers answered", op, len(answers), len(peers))
        finally:
            self._surveys.pop(survey_id, None)
        return answers

    # ---- receiving --------------------------------------------------------------------
    def _on_message(self, data: bytes) -> None:
        try:
            msg = decode_message(data)
        except ValueError:  # not relay's (a Centrifugo node's protobuf on the same prefix)
            self._foreign += 1
            if self._foreign == 1:
                log.warning("ignoring control messages that are not relay's (another "
                            "server uses the same prefix?)")  # fmt: skip
            return
        if not isinstance(msg, dict):
            return
        sender = msg.get("from", "")
        if sender == self.key or self._owner is None:
            return
        self.peers[sender] = time.monotonic()
        op = msg.get("op")
        if op == "hb":
            if msg.get("hello"):
                self._send({"op": "hb"}, to=sender)
        elif op == "control":
            self._owner.apply_control(msg["control"], msg["req"])
        elif op == "survey":
            answer = self._owner.local_survey(msg["q"])
            self._send({"op": "answer", "id": msg["id"], "data": answer}, to=sender)
        elif op == "answer":
            entry = self._surveys.get(msg["id"])
            if entry is not None:
                answers, waiting, done = entry
                if sender in waiting:
                    waiting.discard(sender)
                    answers.append(msg["data"])
                    if not waiting:
                        done.set()
