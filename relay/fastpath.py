"""Selector for the byte-level hot path: the Cython build, else the pure-Python twin.

``RELAY_NO_EXTENSIONS=1`` (or a non-CPython interpreter) forces the pure twin; a missing
or broken extension falls back to it silently. ``IMPLEMENTATION`` says which one runs.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Literal

__all__ = [
    "IMPLEMENTATION",
    "FrameError",
    "FrameParser",
    "build_frame",
    "build_close_frame",
    "frame_messages",
    "encode_varint",
    "join_delimited",
    "split_delimited",
    "FossilError",
    "fossil_create",
    "fossil_apply",
]

NO_EXTENSIONS = os.environ.get("RELAY_NO_EXTENSIONS", "") not in ("", "0")
if sys.implementation.name != "cpython":
    NO_EXTENSIONS = True

IMPLEMENTATION: Literal["cython", "python"]

if TYPE_CHECKING:
    from relay._fastpath import (
        FossilError,
        FrameError,
        FrameParser,
        build_close_frame,
        build_frame,
        encode_varint,
        fossil_apply,
        fossil_create,
        frame_messages,
        join_delimited,
        split_delimited,
    )

    IMPLEMENTATION = "cython"
else:
    try:
        if NO_EXTENSIONS:
            raise ImportError("extensions disabled")
        from relay._fastpath import (
            FossilError,
            FrameError,
            FrameParser,
            build_close_frame,
            build_frame,
            encode_varint,
            fossil_apply,
            fossil_create,
            frame_messages,
            join_delimited,
            split_delimited,
        )

        IMPLEMENTATION = "cython"
    except ImportError:
        from relay._fastpath_py import (
            FossilError,
            FrameError,
            FrameParser,
            build_close_frame,
            build_frame,
            encode_varint,
            fossil_apply,
            fossil_create,
            frame_messages,
            join_delimited,
            split_delimited,
        )

        IMPLEMENTATION = "python"
