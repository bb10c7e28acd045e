"""Build catalogue models as torch modules and capture them (torch lives here, not in catalog).

Split from :mod:`hetsim.graph.catalog` so that only ``graph/capture*`` modules import torch, as
DESIGN.md requires; the catalogue itself reads YAML and checks workloads without torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import networkx as nx

from hetsim.errors import GraphError, field_error
from hetsim.graph.catalog import _FAMILIES, _PACKAGE, MODEL_DTYPES, ModelSpec

_TORCH_DTYPES = MODEL_DTYPES


def _torch_dtype(dtype: Any) -> Any:
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _TORCH_DTYPES:
        raise field_error(GraphError, "workload.dtype", dtype, f"one of {', '.join(sorted(_TORCH_DTYPES))}")
    return getattr(torch, _TORCH_DTYPES[dtype])


def _family(spec: ModelSpec) -> tuple[Any, Any, Any]:
    """The family's model class, config class and KV-cache builder (``None`` for encoders)."""
    module_name, model_cls, config_cls, cache_fn = _FAMILIES[spec.family]
    module = import_module(f"{_PACKAGE}.{module_name}")
    return getattr(module, model_cls), getattr(module, config_cls), getattr(module, cache_fn) if cache_fn else None


def build(spec: ModelSpec, *, device: Any = "meta", dtype: Any = "bf16") -> Any:
    """Build catalogue model ``name`` in eval mode on ``device`` (``"meta"``: no weight memory).

    ``dtype`` is a schema name (``"bf16"``, ``"fp16"``, ``"fp32"``, ``"fp64"``) or a torch dtype.
    """
    import torch

    torch_dtype = _torch_dtype(dtype)
    model_cls, config_cls, _ = _family(spec)
    with torch.device(device):
        model = model_cls(config_cls(**spec.config))
    return model.to(torch_dtype).eval()


def capture_catalog_model(spec: ModelSpec, *, phase: str, batch: int, seq_len: int, dtype: Any) -> nx.DiGraph:
    """Capture ``spec`` on meta tensors for one (phase, batch, seq_len); inputs already checked."""
    import torch

    from hetsim.graph.capture import capture

    torch_dtype = _torch_dtype(dtype)
    model = build(spec, device="meta", dtype=torch_dtype)
    _, _, empty_cache = _family(spec)
    kwargs: dict[str, Any] = {}
    if phase == "prefill":
        ids = torch.zeros(batch, seq_len, dtype=torch.long, device="meta")
    else:
        ids = torch.zeros(batch, 1, dtype=torch.long, device="meta")
        # seq_len past tokens and room for the new one, which each layer writes in place
        kwargs["past_key_values"] = empty_cache(model.config, batch, seq_len, new_tokens=1, device="meta",
                                                dtype=torch_dtype)
    return capture(model, (ids,), kwargs, name=spec.name, phase=phase,
                   dtype=dtype if isinstance(dtype, str) else None, batch=batch, seq_len=seq_len)


def capture_catalog_training(spec: ModelSpec, *, batch: int, seq_len: int, dtype: Any,
                             optimizer: str | None) -> nx.DiGraph:
    """Capture one training step of ``spec`` (forward, loss, backward, optimizer) on meta tensors."""
    import torch

    from hetsim.graph.capture_train import capture_training

    model = build(spec, device="meta", dtype=_torch_dtype(dtype))
    ids = torch.zeros(batch, seq_len, dtype=torch.long, device="meta")
    g = capture_training(model, (ids,), name=spec.name, dtype=dtype if isinstance(dtype, str) else None,
                         optimizer=optimizer)
    g.graph.update(batch=batch, seq_len=seq_len)
    return g
