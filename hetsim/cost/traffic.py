"""DRAM traffic of matrix ops under a reuse model: the bytes a kernel really moves.

The roofline counts every operand once (``bytes_read + bytes_written``): perfect reuse, as if
the whole op fitted on chip. A real kernel keeps only what its on-chip memory holds (GPU L2, TPU
VMEM/CMEM, NPU SRAM) and re-reads the rest from DRAM. This module counts those re-reads for the
two op kinds where reuse decides the traffic, GEMMs and attention, given the on-chip capacity
``S`` (bytes) and the element size ``e``. Everything is an upper-level count of DRAM bytes; the
model never returns less than each operand once.

GEMM, ``C[M,N] = A[M,K]·B[K,N]`` (:func:`gemm_traffic`)
    Output-stationary tiling: a ``Tm×Tn`` tile of C stays on chip while K streams through it in
    ``Tk``-deep slivers of A and B, so A is read ``⌈N/Tn⌉`` times and B ``⌈M/Tm⌉`` times::

        traffic = e·(M·K·⌈N/Tn⌉ + K·N·⌈M/Tm⌉ + M·N)

    For large matrices this is ``e·M·N·K·(1/Tm + 1/Tn) + e·M·N``, the blocked-GEMM traffic of
    Goto & van de Geijn ("Anatomy of high-performance matrix multiplication", ACM TOMS 2008);
    with square tiles ``T ≈ √(S/3e)`` it is ``Θ(M·N·K/√S)``, the order of Hong & Kung's lower
    bound ``Ω(n³/√S)`` ("I/O complexity: the red-blue pebble game", STOC 1981). Tiles must fit:
    ``Tm·Tn + Tk·(Tm + Tn) ≤ S/e`` with ``Tk = min(Tm, K)`` (for square tiles the three
    ``r×r`` blocks, ``r = √(S/3)``, of the pebbling strategy that attains Hong & Kung's bound, as
    in Savage, *Models of Computation*, 1998, §11.5; LLMCompass, Zhang et al. ISCA 2024, checks
    the same ``Tm·Tk + Tk·Tn + Tm·Tn ≤ SRAM/word`` and uses power-of-two tiles). One tile side
    is a power of two or the whole dimension, the other the widest that fits; both orientations
    are tried and the least traffic wins. When the whole product fits the traffic is the ideal
    ``e·(M·K + K·N + M·N)``; a GEMV (``M = 1``, decode) reads its weights exactly once.

Attention (:func:`attention_traffic`, :func:`naive_attention_traffic`)
    Standard attention materialises the ``N×N`` scores and probabilities in DRAM:
    ``Θ(N·d + N²)`` accesses. FlashAttention keeps them on chip: ``Θ(N²·d²/M)`` accesses for
    on-chip size ``M`` (Dao et al., NeurIPS 2022, Theorem 2). Counted here in FlashAttention-2's
    loop order (Dao, 2023): a block of ``Br`` query rows stays on chip with its output
    accumulator while K and V stream past, so Q is read and O written once and K, V are read
    once per query block. FlashAttention sizes its blocks as ``⌈M/4d⌉`` (Algorithm 1), i.e.
    Q and O blocks take half the on-chip memory: ``Br = ⌊S/(2·e·(d + dv))⌋``. Query heads
    sharing a KV head (grouped-query attention) share its blocks. A decode step (one query row
    per head) streams the KV cache once.

:func:`op_traffic` recovers M, N, K or the attention sizes from an op's node attributes and
returns ``None`` when they do not determine them (hand-built ops), so the caller keeps
``bytes_read + bytes_written``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from hetsim.graph.schema import DTYPE_BYTES

#: how far the reads implied by recovered shapes may differ from ``bytes_read`` (a bias, scales)
_READ_TOLERANCE = 0.1


def gemm_traffic(m: int, n: int, k: int, capacity_bytes: float, elem_bytes: float) -> float:
    """DRAM bytes of ``C[m,n] = A[m,k]·B[k,n]`` tiled for ``capacity_bytes`` of on-chip memory.

    Never below the ideal ``elem_bytes·(m·k + k·n + m·n)`` and non-increasing in
    ``capacity_bytes``. With less room than a 1×1 tile every product re-reads its operands.

    Examples
    --------
    Everything fits: each matrix crosses DRAM once, 2·(64·32 + 32·64 + 64·64) bytes.

    >>> gemm_traffic(64, 64, 32, capacity_bytes=1e6, elem_bytes=2)
    16384.0

    1024 elements on chip: 16×24 output tiles (16·24 + 16·(16 + 24) = 1024), so A is read
    ⌈64/24⌉ = 3 times and B ⌈64/16⌉ = 4 times: 64·32·3 + 32·64·4 + 64·64 elements.

    >>> gemm_traffic(64, 64, 32, capacity_bytes=1024, elem_bytes=1)
    18432.0

    A GEMV (decode) with 2000 elements on chip: 1×999 output tiles, so the 4096-element input is
    read ⌈4096/999⌉ = 5 times but the 4096×4096 weight matrix once.

    >>> gemm_traffic(1, 4096, 4096, capacity_bytes=4000, elem_bytes=2) == 2 * (5 * 4096 + 4096 * 4096 + 4096)
    True
    """
    room = capacity_bytes / elem_bytes
    best = _tiled(m, n, k, 1, 1)
    for tm in _sides(m):
        tn = _widest(tm, k, room, n)
        if tn >= 1:
            best = min(best, _tiled(m, n, k, tm, tn))
    for tn in _sides(n):
        tm = _widest(tn, k, room, m)
        if tm >= 1:
            best = min(best, _tiled(m, n, k, tm, tn))
    return float(elem_bytes * best)


def _tiled(m: int, n: int, k: int, tm: int, tn: int) -> int:
    return m * k * -(-n // tn) + k * n * -(-m // tm) + m * n


def _sides(size: int) -> list[int]:
    """Candidate tile sides: powers of two below ``size``, and ``size`` itself."""
    return [1 << i for i in range((size - 1).bit_length())] + [size]


def _widest(side: int, k: int, room: float, limit: int) -> int:
    """Largest other side ``u ≤ limit`` with ``side·u + tk·(side + u) ≤ room``, ``tk = min(side, k)``."""
    tk = min(side, k)
    return min(limit, math.floor((room - tk * side) / (side + tk)))


def attention_traffic(lq: int, s: int, d: int, capacity_bytes: float, elem_bytes: float, *,
                      heads: int = 1, kv_heads: int | None = None, dv: int | None = None) -> float:
    """DRAM bytes of fused (FlashAttention) attention.

    Parameters
    ----------
    lq, s : int
        Query and key/value lengths.
    d, dv : int
        Head dimension of queries and keys, and of values (``dv`` defaults to ``d``).
    heads, kv_heads : int
        Query heads and key/value heads (``kv_heads`` divides ``heads``; defaults to ``heads``).
        Fold the batch into both.

    Examples
    --------
    One head, N = 4096, d = 128, bf16, 256 KiB on chip: blocks of 131072 / 512 = 256 query rows,
    so K and V are read 16 times: 2·(2·4096·128 + 2·4096·128·16) bytes, Θ(N²d²/M).

    >>> attention_traffic(4096, 4096, 128, 256 * 1024, 2)
    35651584.0
    >>> naive_attention_traffic(4096, 4096, 128, 2)  # the scores written and read in DRAM
    138412032.0

    Decode with grouped-query attention (32 query heads on 8 KV heads, 4096 cached tokens):
    the KV cache is streamed once.

    >>> attention_traffic(1, 4096, 128, 50e6, 2, heads=32, kv_heads=8) == 2 * (2 * 32 * 128 + 2 * 8 * 4096 * 128)
    True
    """
    dv = d if dv is None else dv
    kv_heads = heads if kv_heads is None else kv_heads
    block_rows = max(1, math.floor(capacity_bytes / (2 * elem_bytes * (d + dv))))
    passes = -(-(heads // kv_heads) * lq // block_rows)
    return float(elem_bytes * (heads * lq * (d + dv) + kv_heads * s * (d + dv) * passes))


def naive_attention_traffic(lq: int, s: int, d: int, elem_bytes: float, *, heads: int = 1,
                            kv_heads: int | None = None, dv: int | None = None) -> float:
    """DRAM bytes of standard attention (FlashAttention paper, Algorithm 0): read Q and K, write
    the scores S; read S, write P; read P and V, write O — ``Θ(N·d + N²)``."""
    dv = d if dv is None else dv
    kv_heads = heads if kv_heads is None else kv_heads
    return float(elem_bytes * (heads * lq * (d + dv) + kv_heads * s * (d + dv) + 4 * heads * lq * s))


def op_traffic(op: Mapping, capacity_bytes: float) -> float | None:
    """DRAM bytes of a matmul or attention op on a unit with ``capacity_bytes`` on chip.

    ``bytes_read + bytes_written`` plus the re-reads the reuse model adds; ``None`` when the op is
    of another kind or its attributes (``shape``, ``flop``, ``dtype``, ``bytes_read``) do not
    determine its sizes.

    Examples
    --------
    A captured prefill projection, ``x[2048,4096] @ W[4096,14336]`` in bf16, with 4 MB on chip:
    A is re-read.

    >>> op = {"op": "matmul", "flop": 2 * 2048 * 4096 * 14336, "dtype": "bf16", "shape": (1, 2048, 14336),
    ...       "bytes_read": 2 * (2048 * 4096 + 4096 * 14336), "bytes_written": 2 * 2048 * 14336}
    >>> op_traffic(op, 4e6) > op["bytes_read"] + op["bytes_written"]
    True
    >>> op_traffic(op, 1e9) == op["bytes_read"] + op["bytes_written"]
    True
    >>> op_traffic({"op": "matmul", "flop": 1e9, "bytes_read": 1e6, "dtype": "bf16"}, 4e6) is None
    True
    """
    kind = op.get("op")
    elem = DTYPE_BYTES.get(op.get("dtype"))  # type: ignore[arg-type]
    shape = tuple(op.get("shape") or ())
    flop, read = op.get("flop", 0), op.get("bytes_read", 0)
    if elem is None or len(shape) < 2 or not flop or not read or not all(shape):
        return None
    if kind == "matmul":
        extra = _matmul_extra(shape, flop, read, elem, capacity_bytes)
    elif kind == "attention":
        extra = _attention_extra(shape, flop, read, elem, capacity_bytes)
    else:
        return None
    return None if extra is None else read + op.get("bytes_written", 0) + extra


def _whole(x: float) -> int | None:
    r = round(x)
    return r if r >= 1 and abs(x - r) <= 1e-9 * r else None


def _close(implied: float, read: float) -> bool:
    return abs(implied - read) <= _READ_TOLERANCE * read


def gemm_layout(shape: tuple, flop: float, read: float, elem: float) -> tuple[int, int, int, int] | None:
    """``(batch, M, N, K)`` of a matmul whose output is ``shape``, or ``None`` if undetermined.

    ``N`` is the output's last dimension and ``K = flop / (2·outputs)``; the op is one GEMM with a
    shared B (a linear: ``M`` = all other output elements) or a batch of independent GEMMs over
    the leading dimensions (a bmm), whichever matches the bytes it reads (within 10 %, for a bias
    or scales).

    Examples
    --------
    >>> gemm_layout((8, 128, 64), 2 * 8 * 128 * 64 * 128, 2 * 8 * (128 * 128 + 128 * 64), 2)
    (8, 128, 64, 128)
    """
    n, outputs = shape[-1], math.prod(shape)
    k = _whole(flop / (2 * outputs))
    if k is None:
        return None
    layouts = [(1, outputs // n)]
    if len(shape) >= 3:
        layouts.append((math.prod(shape[:-2]), shape[-2]))
    batch, m = min(layouts, key=lambda bm: abs(elem * bm[0] * (bm[1] * k + k * n) - read))
    if not _close(elem * batch * (m * k + k * n), read):
        return None
    return batch, m, n, k


def _matmul_extra(shape: tuple, flop: float, read: float, elem: float, capacity: float) -> float | None:
    """Re-read bytes of a matmul whose output is ``shape`` (:func:`gemm_layout`)."""
    layout = gemm_layout(shape, flop, read, elem)
    if layout is None:
        return None
    batch, m, n, k = layout
    return batch * (gemm_traffic(m, n, k, capacity, elem) - elem * (m * k + k * n + m * n))


def _attention_extra(shape: tuple, flop: float, read: float, elem: float, capacity: float) -> float | None:
    """Re-read bytes of an attention whose output is ``(..., Lq, dv)``, assuming query/key head
    dimension = dv; the KV head count comes from the bytes read beyond Q."""
    lq, dv = shape[-2], shape[-1]
    rows = math.prod(shape[:-1])
    s = _whole(flop / (4 * rows * dv))  # flop = 2·rows·S·(d + dv)
    if s is None:
        return None
    kv_bytes = read - elem * rows * dv
    kv_heads = _whole(kv_bytes / (2 * elem * s * dv)) if kv_bytes > 0 else None
    heads = rows // lq
    if kv_heads is None or heads % kv_heads:
        return None
    full = attention_traffic(lq, s, dv, capacity, elem, heads=heads, kv_heads=kv_heads)
    return full - elem * (2 * rows * dv + kv_heads * s * 2 * dv)
