"""Where one worker sits in its node (what the front tells a worker it forks)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WorkerSpec"]


@dataclass(frozen=True)
class WorkerSpec:
    """Where this worker sits in its node."""

    id: int
    workers: int
    #: (peer worker, file descriptor of this worker's end of the link to it)
    links: tuple[tuple[int, int], ...]
    generation: int
    peer_generations: tuple[int, ...]
    node_uid: str
