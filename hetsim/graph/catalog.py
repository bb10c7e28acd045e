"""The model catalogue: published Transformer sizes, built as plain-torch modules and captured.

The catalogue is ``catalog.yaml`` in :mod:`hetsim.models` (the repository's ``models/`` folder),
read through :mod:`importlib.resources` so an installed hetsim finds it. Each entry names a
family (``gpt2``, ``llama``, ``bert``), the keyword arguments of that family's config
dataclass, the published parameter count and its source.

Examples
--------
>>> "llama-3-8b" in list_models()
True
>>> spec = model_config("llama-3-8b")
>>> spec.family, spec.config["n_kv_heads"], spec.params
('llama', 8, 8030261248)
>>> model_config("llama-9")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
hetsim.errors.GraphError: workload.model: got 'llama-9', expected one of bert-base, ...
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

import networkx as nx
import yaml

from hetsim.errors import GraphError, field_error

_PACKAGE = "hetsim.models"
#: family -> (module in hetsim.models, model class, config class, cache builder or None)
_FAMILIES = {
    "gpt2": ("gpt2", "GPT2", "GPT2Config", "empty_cache"),
    "llama": ("llama", "Llama", "LlamaConfig", "empty_cache"),
    "bert": ("bert", "Bert", "BertConfig", None),
    "mixtral": ("mixtral", "Mixtral", "MixtralConfig", "empty_cache"),
}
PHASES = ("prefill", "decode")
#: the dtypes catalogue models are built in, by their torch names
MODEL_DTYPES = {"fp64": "float64", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class ModelSpec:
    """One catalogue entry. ``config`` holds the family config dataclass's keyword arguments."""

    name: str
    family: str
    config: MappingProxyType = field(repr=False)
    params: int | None
    source: str
    notes: str = ""
    test_only: bool = False

    @property
    def max_positions(self) -> int:
        return int(self.config["max_positions"])


@functools.lru_cache(maxsize=1)
def _catalog() -> tuple[tuple[str, ModelSpec], ...]:
    text = (resources.files(_PACKAGE) / "catalog.yaml").read_text(encoding="utf-8")
    entries = yaml.safe_load(text)["models"]
    specs = []
    for name, entry in entries.items():
        if entry.get("family") not in _FAMILIES:
            raise GraphError(f"catalog {name}.family: got {entry.get('family')!r}, expected one of "
                             f"{', '.join(sorted(_FAMILIES))}")
        specs.append((name, ModelSpec(name=name, family=entry["family"], config=MappingProxyType(dict(entry["config"])),
                                      params=entry.get("params"), source=str(entry.get("source", "")),
                                      notes=str(entry.get("notes", "")).strip(),
                                      test_only=bool(entry.get("test_only", False)))))
    return tuple(specs)


def list_models() -> list[str]:
    """Names of the catalogued models, sorted (test sizes end in ``-tiny``)."""
    return sorted(name for name, _ in _catalog())


def model_config(name: str) -> ModelSpec:
    """The catalogue entry of model ``name``; unknown names raise a one-line GraphError."""
    for known, spec in _catalog():
        if known == name:
            return spec
    raise field_error(GraphError, "workload.model", name, f"one of {', '.join(list_models())}")


def build_model(name: str, *, device: Any = "meta", dtype: Any = "bf16") -> Any:
    """Build catalogue model ``name`` in eval mode on ``device`` (``"meta"``: no weight memory).

    ``dtype`` is a schema name (``"bf16"``, ``"fp16"``, ``"fp32"``, ``"fp64"``) or a torch dtype.
    """
    from hetsim.graph.capture_models import build

    return build(model_config(name), device=device, dtype=dtype)


def _check_workload(spec: ModelSpec, phase: str, batch: Any, seq_len: Any) -> None:
    if phase not in PHASES:
        raise field_error(GraphError, "workload.phase", phase, "'prefill' or 'decode'")
    if phase == "decode" and spec.family == "bert":
        raise field_error(GraphError, "workload.phase", phase,
                          f"'prefill' for {spec.name} (an encoder has no decode phase)")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise field_error(GraphError, "workload.batch", batch, "an integer >= 1")
    # decode appends one token after the cache, at position seq_len
    limit = spec.max_positions - (1 if phase == "decode" else 0)
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or not 1 <= seq_len <= limit:
        raise field_error(GraphError, "workload.seq_len", seq_len,
                          f"an integer in 1..{limit} for {spec.name} {phase} (max positions {spec.max_positions})")


def model_graph(name: str, *, phase: str = "prefill", batch: int = 1, seq_len: int | None = None,
                dtype: str = "bf16") -> nx.DiGraph:
    """Capture catalogue model ``name`` as an OpGraph, on meta tensors.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    phase : {"prefill", "decode"}
        ``prefill`` runs ``seq_len`` prompt tokens per sequence; ``decode`` runs one new token per
        sequence against a preallocated KV cache of ``seq_len`` past tokens plus the new one (a
        graph input, listed in the ``weights`` of the attention ops that read it): each layer
        writes only the new token's keys and values into it, in place (``inplace_bytes``), as
        serving engines do. Encoders (BERT) have no decode.
    batch : int
        Sequences per batch.
    seq_len : int, optional
        Prompt length (prefill) or cache length (decode); defaults to
        ``min(2048, max positions)`` (one less for decode).
    dtype : str
        Weights and activations dtype: ``bf16``, ``fp16``, ``fp32`` or ``fp64``.

    Returns
    -------
    networkx.DiGraph
        Graph attributes ``name``, ``phase``, ``batch``, ``seq_len``, ``dtype`` as given.
    """
    from hetsim.graph.capture_models import capture_catalog_model

    spec = model_config(name)
    if seq_len is None:
        seq_len = min(2048, spec.max_positions - (1 if phase == "decode" else 0))
    _check_workload(spec, phase, batch, seq_len)
    return capture_catalog_model(spec, phase=phase, batch=batch, seq_len=seq_len, dtype=dtype)


def model_training_graph(name: str, *, batch: int = 1, seq_len: int | None = None, dtype: str = "bf16",
                         optimizer: str | None = "adamw") -> nx.DiGraph:
    """Capture one training step of catalogue model ``name`` from autograd's joint graph, on meta tensors.

    Forward, cross-entropy loss and the backward ATen ops with their own FLOPs
    (:func:`hetsim.graph.capture_train.capture_training`), then one optimizer update per
    parameter (AdamW with fp32 master weights and moments, SGD, or None).

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    batch, seq_len : int
        Sequences per step and tokens per sequence (default ``min(2048, max positions)``).
    dtype : str
    optimizer : {"adamw", "sgd", None}
    """
    from hetsim.graph.capture_models import capture_catalog_training

    spec = model_config(name)
    if seq_len is None:
        seq_len = min(2048, spec.max_positions)
    _check_workload(spec, "prefill", batch, seq_len)
    return capture_catalog_training(spec, batch=batch, seq_len=seq_len, dtype=dtype, optimizer=optimizer)
