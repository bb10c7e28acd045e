"""FLOP counts of captured ops.

Matrix ops (kinds ``matmul`` and ``attention``) are counted from their argument shapes with the
formulas of :mod:`torch.utils.flop_counter` (2 FLOPs per multiply-add), so a captured graph's
matrix FLOPs equal :class:`~torch.utils.flop_counter.FlopCounterMode`'s count of the same module:

=====================  ====================================================================
``mm``, ``addmm``      ``2·M·K·N`` (the bias add of ``addmm`` is not counted, as in torch)
``bmm``, ``baddbmm``   ``2·B·M·K·N``
``linear``             ``2·prod(x.shape[:-1])·K·N``
``matmul``             ``2·prod(broadcast batch)·M·K·N``; vector cases ``2·M·K``, ``2·K``
``mv``, ``addmv``,     ``2·M·K`` / ``2·K``: torch does not count these, hetsim does
``dot``, ``addbmm``
SDPA (every variant    ``2·prod(q.shape[:-1])·S·(E + Ev)`` for q ``(..., L, E)``, k ``(..., S, E)``,
with q, k, v first)    v ``(..., S, Ev)``; grouped-query heads count once per query head; causal
                       masking is not discounted (as in torch)
=====================  ====================================================================

Other matrix ops (``einsum``, convolutions, ``_scaled_mm``, attention kernels in other layouts) are
counted by running them under ``FlopCounterMode`` on fake tensors (:func:`counted_flops`).

Non-matrix ops, which torch counts as 0, get hetsim's own estimates (see
:mod:`hetsim.graph.aten_kinds` for the constants): elementwise 1 FLOP per output element; softmax 5
per element; layer/group norm 8 and RMS norm 4 per input element; reductions 1 per input element
(variance, std and logsumexp 3, vector norms 2); embedding, copy, view and creation ops 0.

Examples
--------
>>> matrix_flop("linear", [(2, 64, 768), (3072, 768), (3072,)])
603979776
>>> matrix_flop("scaled_dot_product_attention", [(1, 32, 128, 64), (1, 8, 128, 64), (1, 8, 128, 64)])
134217728
>>> matrix_flop("einsum", [(2, 3)]) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from hetsim.graph.aten_kinds import ATTENTION_BHLD

Shape = Sequence[int]


def _broadcast(a: Shape, b: Shape) -> tuple[int, ...]:
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    return tuple(max(x, y) for x, y in zip(a, b, strict=True))


def matmul_shapes_flop(a: Shape, b: Shape) -> int:
    """FLOPs of ``torch.matmul`` of tensors shaped ``a`` and ``b`` (every broadcasting case).

    Examples
    --------
    >>> matmul_shapes_flop((4, 5), (5, 6)), matmul_shapes_flop((3, 1, 4, 5), (2, 5, 6))
    (240, 1440)
    >>> matmul_shapes_flop((5,), (5,)), matmul_shapes_flop((4, 5), (5,))
    (10, 40)
    """
    if len(a) == 1 and len(b) == 1:
        return 2 * a[0]
    if len(b) == 1:
        return 2 * math.prod(a)
    if len(a) == 1:
        return 2 * math.prod(b)
    batch = _broadcast(a[:-2], b[:-2])
    return 2 * math.prod(batch) * a[-2] * a[-1] * b[-1]


def sdpa_shapes_flop(q: Shape, k: Shape, v: Shape) -> int:
    """FLOPs of scaled dot-product attention (``Q·Kᵀ`` and ``P·V``), as torch's ``sdpa_flop_count``."""
    return 2 * math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])


def matrix_flop(name: str, shapes: Sequence[Shape]) -> int | None:
    """FLOPs of matrix op ``name`` from its tensor-argument shapes (in argument order), or ``None``
    when it has no formula here (count it with :func:`counted_flops`)."""
    s = list(shapes)
    if name == "mm":
        return 2 * s[0][0] * s[0][1] * s[1][1]
    if name == "addmm":
        return 2 * s[1][0] * s[1][1] * s[2][1]
    if name == "bmm":
        return 2 * s[0][0] * s[0][1] * s[0][2] * s[1][2]
    if name in ("baddbmm", "addbmm"):
        return 2 * s[1][0] * s[1][1] * s[1][2] * s[2][2]
    if name == "linear":
        out_features = s[1][0] if len(s[1]) == 2 else 1
        return 2 * math.prod(s[0]) * out_features
    if name == "matmul":
        return matmul_shapes_flop(s[0], s[1])
    if name in ("mv", "dot", "vdot"):
        return 2 * math.prod(s[0])
    if name == "addmv":
        return 2 * math.prod(s[1])
    if name in ATTENTION_BHLD:
        return sdpa_shapes_flop(s[0], s[1], s[2])
    return None


def cpu_sdpa_mapping() -> dict[Any, Callable[..., int]]:
    """``custom_mapping`` for ``FlopCounterMode`` that counts the CPU SDPA kernels torch misses.

    On CPU, SDPA dispatches to ``aten._scaled_dot_product_flash_attention_for_cpu``, which torch's
    registry lacks (it would count 0). The functions receive shapes (the mapping is shape-wrapped).
    """
    import torch
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    aten = torch.ops.aten

    def forward(q: Shape, k: Shape, v: Shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return sdpa_flop_count(q, k, v)

    def backward(grad: Shape, q: Shape, k: Shape, v: Shape, *args: Any, out_shape: Any = None,
                 **kwargs: Any) -> int:
        return sdpa_backward_flop_count(grad, q, k, v)

    return {aten._scaled_dot_product_flash_attention_for_cpu: forward,
            aten._scaled_dot_product_flash_attention_for_cpu_backward: backward}


def flop_counter_mode() -> Any:
    """A silent ``FlopCounterMode`` that also counts CPU SDPA (see :func:`cpu_sdpa_mapping`)."""
    from torch.utils.flop_counter import FlopCounterMode

    return FlopCounterMode(display=False, custom_mapping=cpu_sdpa_mapping())


def counted_flops(target: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> int:
    """FLOPs ``FlopCounterMode`` counts for ``target(*args, **kwargs)`` (pass fake or meta tensors:
    only shapes are propagated, nothing is computed)."""
    with flop_counter_mode() as counter:
        target(*args, **kwargs)
    return int(counter.get_total_flops())
