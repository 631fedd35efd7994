"""The engine's Lua scripts, read from ``scripts/*.lua`` next to this module.

Each ``.lua`` file starts with comments naming its KEYS, ARGV and reply.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files

__all__ = [
    "Script",
    "PUBLISH",
    "HISTORY",
    "PRESENCE_ADD",
    "PRESENCE_REMOVE",
    "PRESENCE_GET",
    "ALL_SCRIPTS",
    "source_of",
]


class Script:
    """A Lua script run by EVALSHA, falling back to EVAL when Redis lost its cache."""

    __slots__ = ("source", "sha")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


def _load(name: str) -> Script:
    """The script in ``scripts/<name>`` of this package."""
    path = files("relay.engines.redis").joinpath(f"scripts/{name}")
    return Script(path.read_text(encoding="utf-8"))


PUBLISH = _load("publish.lua")
HISTORY = _load("history.lua")
PRESENCE_ADD = _load("presence_add.lua")
PRESENCE_REMOVE = _load("presence_remove.lua")
PRESENCE_GET = _load("presence_get.lua")

ALL_SCRIPTS = (PUBLISH, HISTORY, PRESENCE_ADD, PRESENCE_REMOVE, PRESENCE_GET)
_SCRIPTS_BY_SHA = {s.sha: s.source for s in ALL_SCRIPTS}


def source_of(sha: str) -> str:
    return _SCRIPTS_BY_SHA.get(sha, "")
