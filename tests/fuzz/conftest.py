"""The fuzz tests are synchronous: one event loop policy, not the suite's two."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest


@pytest.fixture(scope="session")
def event_loop_policy() -> Any:
    return asyncio.DefaultEventLoopPolicy()
