"""Capture a torch module as an OpGraph, without running it.

:func:`capture` exports the module with :func:`torch.export.export` (non-strict) on fake or meta
tensors, so nothing is computed and no weight memory is allocated: build big models under
``torch.device("meta")``. Meta parameters, buffers and inputs are swapped for fake *CPU* tensors
for the export (meta kernels lay some outputs out differently from real devices); real weights and
inputs work too and are faked by export itself. The module is left as it was.

Every ``call_function`` node of the exported graph becomes one op, named after the fx node
(``linear_3``, ``scaled_dot_product_attention``); export's metadata asserts are dropped. Per op:

``op``, ``target``
    the kind from :mod:`hetsim.graph.aten_kinds` and the ATen op (``aten.linear.default``; a
    kernel chosen by an argument gets a suffix: ``aten.gelu.default[approximate=tanh]``).
``flop``
    see :mod:`hetsim.graph.capture_flops`; matrix kinds match ``FlopCounterMode``.
``bytes_read``
    the distinct bytes of the input tensors, weights and graph inputs included (a broadcast,
    stride-0 dimension counts once); 0 for views and creation ops; an embedding reads its
    indices and the rows it gathers, not its whole table.
``bytes_written``
    the bytes of the outputs; 0 for views.
``weights``
    ``{name: bytes}`` of every tensor the op reads that no op produces: parameters and buffers
    by fully qualified name (``layers.0.mlp.up_proj.weight``), graph inputs by their export name
    (``input_ids``, ``past_key_values_0_0``). A view of one (``weight.t()``) is looked through,
    so the op that reads the view lists the tensor; views themselves list none.
``dtype``
    the first floating input's dtype (else the output's); ``None`` for views, copies,
    embeddings and creation ops, which do no arithmetic.
``shape``, ``module``
    the (first) output's shape and the innermost module of ``nn_module_stack``.

Edges follow data: ``bytes`` is the tensor that flows (one item of a tuple output for
``getitem``; 0 into creation ops such as ``zeros_like``, which read only metadata; 0 out of a
write into a persistent tensor and its views: their readers list the tensor in ``weights``).

**Writes into a persistent tensor** (a KV cache updated in place): an ``index_copy_``,
``index_put_`` or ``copy_`` whose destination is (a view of) a graph input, parameter or buffer —
or, in a functionalized graph, an ``index_copy``/``index_put``/``slice_scatter``/``select_scatter``/
``copy`` whose output the signature writes back into one — reads only the update (and its
indices) and writes only the update's bytes, all of them ``inplace_bytes`` (no allocation). Its
output is the tensor itself: the ops that read it afterwards list it in ``weights`` and read it
once, as they would the input.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import networkx as nx

from hetsim.errors import GraphError
from hetsim.graph.aten_kinds import (
    ELEMENTWISE_FLOP_PER_ELEM,
    NORM_FLOP_PER_ELEM,
    REDUCTION_FLOP_PER_ELEM,
    SOFTMAX_FLOP_PER_ELEM,
    classify,
    op_key,
)
from hetsim.graph.capture_flops import counted_flops, matrix_flop
from hetsim.graph.schema import DTYPES, add_op, new_graph, validate_graph

_DTYPE_NAMES = {
    "float64": "fp64", "float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "int64": "int64",
    "int32": "int32", "int16": "int16", "int8": "int8", "uint8": "uint8", "bool": "bool",
    "float8_e4m3fn": "fp8", "float8_e5m2": "fp8", "float8_e4m3fnuz": "fp8", "float8_e5m2fnuz": "fp8",
}
_NO_ARITHMETIC = frozenset({"view", "copy", "embedding"})
#: ops that overwrite part of their first argument: ATen name -> position of the data written
_WRITES = {"index_copy": 3, "index_put": 2, "_index_put_impl": 2, "slice_scatter": 1, "select_scatter": 1, "copy": 1}


def dtype_name(dtype: Any) -> str | None:
    """Schema name of a torch dtype (``torch.bfloat16`` → ``"bf16"``), ``None`` if it has none.

    Examples
    --------
    >>> dtype_name("torch.float16"), dtype_name("torch.complex64")
    ('fp16', None)
    """
    return _DTYPE_NAMES.get(str(dtype).removeprefix("torch."))


def _tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    return []


def _extent_bytes(t: Any) -> int:
    """Bytes of the distinct elements of ``t``: a stride-0 (broadcast) dimension counts once."""
    distinct = math.prod(size for size, stride in zip(t.shape, t.stride(), strict=True) if stride != 0)
    return int(distinct) * t.element_size()


def _dense_bytes(value: Any) -> int:
    return sum(int(t.numel()) * t.element_size() for t in _tensors(value))


def _aliases(out: Any, inputs: list[Any]) -> bool:
    outs = _tensors(out)
    storages = {t.untyped_storage()._cdata for t in inputs}
    return bool(outs) and all(t.untyped_storage()._cdata in storages for t in outs)


def _is_view(node: Any, name: str, role: str, in_tensors: list[Any]) -> bool:
    if role == "view":
        return True
    if role == "dropout":
        train = node.args[2] if len(node.args) > 2 else node.kwargs.get("train", True)
        return train is False
    if role == "maybe_view" or (role == "unknown" and not name.endswith("_")):
        return _aliases(node.meta.get("val"), in_tensors)
    return False


def _kind(node: Any, name: str, kind: str, role: str, in_tensors: list[Any]) -> str:
    if _is_view(node, name, role, in_tensors):
        return "view"
    if role == "dropout":
        return "elementwise"
    if role == "maybe_view":
        return "copy"
    return kind


def _flop(node: Any, name: str, kind: str, role: str, in_tensors: list[Any]) -> int:
    out = _tensors(node.meta.get("val"))
    if kind in ("matmul", "attention", "conv"):
        flop = matrix_flop(name, [tuple(t.shape) for t in _arg_tensors(node)])
        if flop is None:
            flop = counted_flops(node.target, *_fake_args(node))
        return int(flop)
    first_in = int(in_tensors[0].numel()) if in_tensors else 0
    if kind == "norm":
        return NORM_FLOP_PER_ELEM.get(name, 8) * first_in
    if kind == "reduction":
        return REDUCTION_FLOP_PER_ELEM.get(name.rstrip("_"), 1) * first_in
    if kind == "softmax":
        return SOFTMAX_FLOP_PER_ELEM * int(out[0].numel())
    if kind == "elementwise" and role != "creation":
        return ELEMENTWISE_FLOP_PER_ELEM * sum(int(t.numel()) for t in out)
    return 0


def _arg_tensors(node: Any) -> list[Any]:
    """The tensor values of ``node``'s arguments, in argument order (lists flattened)."""
    import torch
    from torch.utils._pytree import tree_leaves

    leaves = tree_leaves((node.args, node.kwargs))
    vals = [a.meta.get("val") for a in leaves if isinstance(a, torch.fx.Node)]
    return [v for v in vals if isinstance(v, torch.Tensor)]


def _fake_args(node: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    import torch
    from torch.utils._pytree import tree_map

    def value(a: Any) -> Any:
        return a.meta.get("val") if isinstance(a, torch.fx.Node) else a

    return tree_map(value, (node.args, node.kwargs))


def _module_path(node: Any) -> str:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ""
    return str(list(stack.values())[-1][0])


def _fake_everything(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                     ) -> tuple[dict[str, Any], tuple[Any, ...], dict[str, Any]]:
    """Fake CPU stand-ins for the module's meta parameters and buffers (tied ones stay tied), and
    fake versions of every tensor input, all in one FakeTensorMode: nothing is allocated.

    Meta tensors are re-homed on CPU because some meta kernels lay out outputs differently from
    real devices (the math SDPA on meta returns (B, H, L, E)-contiguous outputs where the fused
    kernels return a transposed (B, L, H, E) buffer), which would turn free views into copies.
    """
    import torch
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
    from torch.utils._pytree import tree_leaves, tree_map

    existing = [t for t in (*tree_leaves((args, kwargs)), *module.parameters(), *module.buffers())
                if isinstance(t, FakeTensor)]
    mode = existing[0].fake_mode if existing else FakeTensorMode(allow_non_fake_inputs=True)

    def fake(t: Any) -> Any:
        if not isinstance(t, torch.Tensor) or isinstance(t, FakeTensor):
            return t
        if t.device.type == "meta":
            with mode:
                out = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="cpu")
            return torch.nn.Parameter(out, requires_grad=t.requires_grad) if isinstance(t, torch.nn.Parameter) else out
        return mode.from_tensor(t, static_shapes=True)

    memo: dict[int, Any] = {}
    swaps = {}
    for key, t in (*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)):
        if t.device.type == "meta":
            swaps[key] = memo.setdefault(id(t), fake(t))
    args, kwargs = tree_map(fake, (args, kwargs))
    return swaps, args, kwargs


def export_program(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Any:
    """``torch.export.export`` of ``module`` on fake tensors, as :func:`capture` does it.

    Meta parameters, buffers and inputs are swapped for fake CPU tensors for the duration of the
    export (the module is left as it was); real ones are faked by export itself.
    """
    import torch
    from torch.nn.utils.stateless import _reparametrize_module

    swaps, args, kwargs = _fake_everything(module, tuple(args), dict(kwargs or {}))
    try:
        with _reparametrize_module(module, swaps, tie_weights=True, strict=False):
            return torch.export.export(module, tuple(args), kwargs)
    except Exception as exc:  # torch raises many exception types; surface one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GraphError(f"capture: torch.export failed for {type(module).__name__}: {first}") from exc


def _persistent_names(ep: Any, module: Any) -> dict[str, str]:
    """Placeholder name → weight name: FQN for parameters, buffers and constants, else the input name.

    A tied tensor goes by its first name in ``module.named_parameters()`` (``wte.weight``, not
    ``lm_head.weight``), whichever alias export picked.
    """
    from torch.export.graph_signature import InputKind

    canonical = canonical_names(module)
    names = {}
    for spec in ep.graph_signature.input_specs:
        arg_name = getattr(spec.arg, "name", None)
        if arg_name is None:
            continue
        if spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            names[arg_name] = canonical.get(str(spec.target), str(spec.target))
        elif spec.kind == InputKind.USER_INPUT:
            names[arg_name] = arg_name
    return names


def _infer_dtype(module: Any, inputs: list[Any]) -> str:
    counts = Counter(p.dtype for p in module.parameters() if p.is_floating_point())
    if counts:
        return dtype_name(counts.most_common(1)[0][0]) or "fp32"
    floats = [t for t in inputs if t.is_floating_point()]
    return (dtype_name(floats[0].dtype) if floats else None) or "fp32"


def graph_for(module: Any, fx_graph: Any, user_inputs: list[str], field: str, *, name: str | None, phase: str,
              dtype: str | None, batch: int | None = None, seq_len: int | None = None) -> nx.DiGraph:
    """The empty OpGraph of a capture: attributes from the arguments, else from the user inputs
    (``batch`` and ``seq_len`` from the first one's shape) and the module (its dtype)."""
    import torch

    values = {n.name: n.meta.get("val") for n in fx_graph.nodes if n.op == "placeholder"}
    inputs = [values[n] for n in user_inputs if isinstance(values.get(n), torch.Tensor)]
    if dtype is None:
        dtype = _infer_dtype(module, inputs)
    if dtype not in DTYPES:
        raise GraphError(f"{field}.dtype: got {dtype!r}, expected one of {', '.join(sorted(DTYPES))}")
    first = inputs[0].shape if inputs else ()
    return new_graph(name if name is not None else type(module).__name__, phase=phase,
                     batch=batch if batch is not None else (int(first[0]) if len(first) >= 1 else 1),
                     seq_len=seq_len if seq_len is not None else (int(first[1]) if len(first) >= 2 else 0),
                     dtype=dtype)


def capture(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None, *, name: str | None = None,
            phase: str = "", dtype: str | None = None, batch: int | None = None,
            seq_len: int | None = None) -> nx.DiGraph:
    """Capture ``module(*args, **kwargs)`` as a validated OpGraph, computing nothing.

    Parameters
    ----------
    module : torch.nn.Module
        Captured as is (call ``.eval()`` first for inference: dropout in training mode costs).
        Build large models under ``torch.device("meta")``.
    args, kwargs
        Example inputs: meta, fake or real tensors (nested lists/tuples allowed, e.g. a KV cache).
    name, phase, dtype, batch, seq_len
        Graph attributes. Defaults: the module's class name; ``""``; the most common floating
        parameter dtype (schema name, e.g. ``"bf16"``); the first input's first and second
        dimensions (``seq_len`` 0 for inputs of fewer than two dimensions).

    Returns
    -------
    networkx.DiGraph
        An OpGraph (see :mod:`hetsim.graph.schema` and this module's docstring).
    """

    ep = export_program(module, args, kwargs)
    persistent = _persistent_names(ep, module)
    g = graph_for(module, ep.graph, ep.graph_signature.user_inputs, "capture", name=name, phase=phase, dtype=dtype,
                  batch=batch, seq_len=seq_len)

    add_fx_ops(g, ep.graph, persistent, mutations=_mutations(ep, module, persistent))
    return validate_graph(g)


def _mutations(ep: Any, module: Any, persistent: dict[str, str]) -> dict[str, str]:
    """Output node name → the persistent tensor a functionalized graph writes it back into."""
    from torch.export.graph_signature import OutputKind

    canonical = canonical_names(module)
    out = {}
    for spec in ep.graph_signature.output_specs:
        arg_name = getattr(spec.arg, "name", None)
        if arg_name is not None and spec.kind == OutputKind.USER_INPUT_MUTATION:
            out[arg_name] = persistent.get(str(spec.target), str(spec.target))
        elif arg_name is not None and spec.kind == OutputKind.BUFFER_MUTATION:
            out[arg_name] = canonical.get(str(spec.target), str(spec.target))
    return out


def canonical_names(module: Any) -> dict[str, str]:
    """Every parameter and buffer name of ``module`` → the first name of its tensor (tied weights share one)."""
    first: dict[int, str] = {}
    tensors = (*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False))
    return {key: first.setdefault(id(t), key) for key, t in tensors}


def add_fx_ops(g: nx.DiGraph, graph: Any, persistent: dict[str, str], *, loss: str | None = None,
               backward_prefix: str = "grad.", infer_modules: bool = False,
               mutations: dict[str, str] | None = None) -> None:
    """Add one op per ``call_function`` node of the fx ``graph`` to ``g``, and the edges between them.

    ``persistent`` maps placeholder names to the weight/input names ops list in ``weights``;
    ``mutations`` maps the nodes a functionalized graph writes back into a persistent tensor to
    that tensor's name (see the module docstring on writes into persistent tensors). For a
    training step's joint graph (:mod:`hetsim.graph.capture_train`), the nodes after the ``loss``
    node get ``backward_prefix`` in their names, and with ``infer_modules`` an op without an
    ``nn_module_stack`` (aot_autograd keeps none) takes the module of the first parameter it reads,
    else of its first input (for a backward op, its first forward input — a saved activation —
    before any gradient, so a weight gradient belongs to the layer whose input it reads).
    """
    kept: dict[str, str] = {}  # fx node name -> op name
    modules: dict[str, str] = {}
    view_roots: dict[str, dict[str, int]] = {}
    # fx node name -> the persistent tensor its value is (a placeholder, a view of one, a write into one)
    aliases = {n.name: persistent[n.name] for n in graph.nodes
               if n.op == "placeholder" and n.name in persistent and _tensors(n.meta.get("val"))}
    sizes = {aliases[n.name]: _dense_bytes(n.meta.get("val")) for n in graph.nodes if n.name in aliases}
    updated: set[str] = set()  # writes into a persistent tensor and views of them: read through ``weights``
    last_write: dict[str, str] = {}  # persistent tensor -> the op that last wrote into it
    in_backward: set[str] = set()
    backward = False
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        op_name, overload = op_key(node.target)
        kind, role = classify(op_name, overload)
        out_val = node.meta.get("val")
        if role == "skip" or not _tensors(out_val):
            backward = backward or node.name == loss
            continue
        inputs = [a for a in node.all_input_nodes if a.op == "placeholder" or a.name in kept]
        written = _written_tensor(node, op_name, aliases, mutations or {})
        dest = node.args[0] if written is not None else None
        if dest is not None:  # the destination is neither read nor a new tensor
            inputs = [a for a in inputs if a is not dest]
        in_tensors = [t for a in inputs for t in _tensors(a.meta.get("val"))]
        kind = _kind(node, op_name, kind, role, in_tensors) if written is None else kind
        weights: dict[str, int] = {}
        for a in inputs:
            if a.op == "placeholder" and a.name in persistent and _tensors(a.meta.get("val")):
                weights[persistent[a.name]] = _dense_bytes(a.meta.get("val"))
            weights.update(view_roots.get(a.name, {}))
        module = _module_path(node)
        if not module and infer_modules:  # a backward op prefers a saved activation's module to a gradient's
            ranked = sorted((a for a in inputs if modules.get(a.name)),
                            key=lambda a: backward and a.name in in_backward)
            module = _owner(weights) or next((modules[a.name] for a in ranked), "")
        free = kind == "view"
        if free:
            view_roots[node.name] = weights
            if len(inputs) == 1 and inputs[0].name in aliases:
                aliases[node.name] = aliases[inputs[0].name]
                if inputs[0].name in updated:
                    updated.add(node.name)
        if written is not None:
            aliases[node.name] = written
            updated.add(node.name)
            view_roots[node.name] = {written: sizes.get(written, _dense_bytes(node.args[0].meta.get("val")))}
        reads_data = not free and role != "creation"
        if not reads_data:
            weights = {}
        if kind == "attention" and op_name.endswith("_backward"):
            flop = counted_flops(node.target, *_fake_args(node))  # torch's sdpa_backward_flop_count
        else:
            flop = 0 if free else _flop(node, op_name, kind, role, in_tensors)
        op = f"{backward_prefix}{node.name}" if backward else node.name
        update = _update_bytes(node, op_name) if written is not None else None
        add_op(g, op, op=kind, target=_target(node),
               flop=flop,
               bytes_read=_bytes_read(kind, in_tensors, out_val) if reads_data else 0,
               bytes_written=0 if free else update if update is not None else _dense_bytes(out_val),
               weights=weights, **({"inplace_bytes": update} if update is not None else {}),
               **({"causal": True} if kind == "attention" and _causal(node) else {}),
               dtype=None if kind in _NO_ARITHMETIC or role == "creation" else _compute_dtype(in_tensors, out_val),
               shape=tuple(int(d) for d in _tensors(out_val)[0].shape), module=module)
        kept[node.name] = op
        modules[node.name] = module
        if backward:
            in_backward.add(node.name)
        for a in inputs:
            if a.op != "placeholder":
                flowing = out_val if op_name == "getitem" else a.meta.get("val")
                g.add_edge(kept[a.name], op, bytes=0 if role == "creation" or a.name in updated
                           else sum(_extent_bytes(t) for t in _tensors(flowing)))
        if dest is not None and dest.name in kept:
            g.add_edge(kept[dest.name], op, bytes=0)  # written after its destination's producer
        for name in (*weights, *([written] if written is not None else [])):  # read or written after a write
            if last_write.get(name, op) != op and not g.has_edge(last_write[name], op):
                g.add_edge(last_write[name], op, bytes=0)
        if written is not None:
            last_write[written] = op
        backward = backward or node.name == loss


def _written_tensor(node: Any, op_name: str, aliases: dict[str, str], mutations: dict[str, str]) -> str | None:
    """The persistent tensor ``node`` overwrites part of, in place (a KV-cache update), else ``None``.

    An in-place ``index_copy_``/``index_put_``/``copy_`` into what its first argument aliases, or a
    functional scatter whose output ``mutations`` writes back into a persistent tensor.
    """
    if op_name.removesuffix("_") not in _WRITES or not node.args or not hasattr(node.args[0], "name"):
        return None
    schema = getattr(node.target, "_schema", None)
    first = schema.arguments[0].alias_info if schema is not None and schema.arguments else None
    if first is not None and first.is_write:
        return aliases.get(node.args[0].name)
    return mutations.get(node.name)


def _update_bytes(node: Any, op_name: str) -> int:
    """Bytes a write into a persistent tensor stores: the data argument (for ``copy``, its destination)."""
    base = op_name.removesuffix("_")
    if base == "copy":
        return _extent_bytes(node.args[0].meta["val"])
    position = _WRITES[base]
    data = node.args[position] if len(node.args) > position else None
    return _dense_bytes(data.meta.get("val")) if hasattr(data, "meta") else 0


def _owner(weights: dict[str, int]) -> str:
    for name in weights:
        if "." in name:
            return name.rsplit(".", 1)[0]
    return ""


def _causal(node: Any) -> bool:
    """Whether an attention node masks causally (SDPA's ``is_causal``, keyword or 6th argument)."""
    if "is_causal" in node.kwargs:
        return node.kwargs["is_causal"] is True
    return len(node.args) > 5 and node.args[5] is True


#: keyword arguments that select a different kernel of one ATen op (and run at another speed)
_VARIANT_KWARGS = {"gelu": ("approximate", "none")}


def _target(node: Any) -> str:
    """The ATen target, with a ``[kwarg=value]`` suffix for kernels chosen by an argument.

    ``aten.gelu.default[approximate=tanh]`` runs tanh-GELU, about 3x slower than erf-GELU on a
    CPU; calibrated profiles measure the variants apart.
    """
    target = str(node.target)
    op_name, _ = op_key(node.target)
    variant = _VARIANT_KWARGS.get(op_name)
    if variant is not None:
        value = node.kwargs.get(variant[0], variant[1])
        if value != variant[1]:
            target = f"{target}[{variant[0]}={value}]"
    return target


def _bytes_read(kind: str, in_tensors: list[Any], out_val: Any) -> int:
    """Distinct bytes an op reads; an embedding reads its indices and only the rows it gathers."""
    if kind == "embedding" and len(in_tensors) >= 2:
        return _dense_bytes(out_val) + sum(_extent_bytes(t) for t in in_tensors[1:])
    return sum(_extent_bytes(t) for t in in_tensors)


def _compute_dtype(in_tensors: list[Any], out_val: Any) -> str | None:
    floats = [t for t in in_tensors if t.is_floating_point()]
    return dtype_name(floats[0].dtype if floats else _tensors(out_val)[0].dtype)
