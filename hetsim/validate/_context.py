"""The cache state a microbenchmark call starts from (see :class:`Context`).

Examples
--------
>>> sizes = cache_sizes()
>>> all(level >= 1 and size > 0 for level, size in sizes.items())
True
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def cache_sizes() -> dict[int, int]:
    """Bytes of the CPU's data/unified cache at each level (Linux sysfs; empty when unreadable)."""
    sizes: dict[int, int] = {}
    for d in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        with contextlib.suppress(OSError, ValueError):
            if (d / "type").read_text().strip() == "Instruction":
                continue
            text = (d / "size").read_text().strip().upper()
            scale = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(text[-1:], 1)
            level = int((d / "level").read_text())
            sizes[level] = max(sizes.get(level, 0), int(text.rstrip("KMG")) * scale)
    return sizes


def last_level_cache_bytes() -> int:
    """Size of the largest CPU cache (Linux sysfs), 32 MiB when it cannot be read."""
    return max(cache_sizes().values(), default=32 * 1024 ** 2)


#: at most this many bytes of input copies per case (on top of the inputs themselves)
_ROTATION_BYTES = 512 * 1024 ** 2
#: outputs kept alive at most (fewer when big)
_RING = 16


@dataclass(frozen=True)
class Context:
    """What each timed call starts from: caches that other ops have since filled.

    Inside a forward pass an op reads activations written several ops ago and weights not read
    since the last pass, writes into memory freed long ago, and follows ops that streamed
    megabytes through the caches. A cold context recreates that for one op in a loop: before
    each call, ``flush`` reads a buffer of four times the L2 cache (evicting L1 and L2, leaving
    the last-level cache to what the dispatch code itself uses), and the op gets the next of
    ``copies`` sets of its inputs, so that between two uses of one copy more than the last-level
    cache has streamed past it; the last outputs are kept alive, so each output lands in memory
    that is not hot either.

    (Chosen by checking, not fitting, single-op times against the per-node times of GPT-2, BERT,
    SmolLM2 and a tiny Llama measured by :mod:`hetsim.validate.measure`: hot, single ops ran 2-4x
    faster than inside a model; after a flush of the whole last-level cache, dispatch itself
    turned cold and small ops ran 2-3x slower than inside a model.)
    """

    flush: Callable[[], None] | None
    copies: int
    flush_bytes: int

    @classmethod
    def cold(cls, device: str = "cpu") -> Context:
        """The cold context of this machine's caches (on CUDA: a 128 MiB flush of device memory,
        more than any GPU's L2, and two input sets)."""
        if device.startswith("cuda"):
            nbytes = 128 * 1024 ** 2
            return cls(Flush(nbytes, device), 2, nbytes)
        sizes = cache_sizes()
        nbytes = 4 * sizes.get(2, 1024 ** 2)
        llc = max(sizes.values(), default=32 * 1024 ** 2)
        copies = max(1, min(_RING, math.ceil(1.5 * llc / nbytes)))
        return cls(Flush(nbytes, device), copies, nbytes)

    def describe(self) -> dict:
        """Plain data for a profile's manifest."""
        return {"flush_bytes": self.flush_bytes, "input_copies": self.copies, "output_ring": _RING}


class Flush:
    """Reads ``nbytes`` of a private buffer (see :class:`Context`)."""

    def __init__(self, nbytes: int, device: Any = "cpu"):
        import torch

        self.buffer = torch.ones(max(1, nbytes // 4), device=device)

    def __call__(self) -> None:
        self.buffer.sum()
