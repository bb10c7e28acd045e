"""Capture one training step (forward, loss and backward) of a torch module as an OpGraph.

:func:`capture_training` traces the joint forward + backward graph with
:func:`torch._functorch.aot_autograd.aot_export_module` (``trace_joint=True``) on fake tensors, so
nothing is computed and no weight memory is allocated, and converts every ATen op as
:func:`hetsim.graph.capture.capture` does (same kinds, FLOPs, bytes, weights, dtypes). The backward
ops are the real ATen ops autograd runs (``mm`` for the input and weight gradients,
``_scaled_dot_product_flash_attention_for_cpu_backward``, ``native_layer_norm_backward``...), with
their own FLOPs, not a fixed multiple of the forward.

The loss is cross-entropy of the module's ``(batch, length, vocab)`` logits against labels of
the first input's shape (all zeros: only shapes matter), or the sum of the output otherwise.
Ops after the loss in the joint graph are backward ops: their names start with ``grad.``.
Parameters are graph inputs, listed in ``weights`` by fully qualified name (a tied tensor by its
first name); their gradients are outputs of ordinary ops. With ``optimizer`` set, one update op
per parameter (``update.<name>``, :func:`hetsim.graph.training.add_update`: AdamW or SGD) follows
the backward op that produces its gradient, which stays alive until the update has read it.
The joint graph has no ``nn_module_stack``: an op's ``module`` is the owner of the first parameter
it reads, else the module of its first input that has one.
"""

from __future__ import annotations

import inspect
from typing import Any

import networkx as nx

from hetsim.errors import GraphError
from hetsim.graph.capture import _fake_everything, add_fx_ops, canonical_names, graph_for
from hetsim.graph.schema import DTYPE_BYTES, add_op, validate_graph
from hetsim.graph.training import OPTIMIZERS, add_update

BACKWARD_PREFIX = "grad."


def _loss_module(module: Any, first: Any) -> Any:
    import torch

    class _Loss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = module

        def forward(self, *args: Any) -> tuple[Any]:
            out = self.model(*args)
            logits = out[0] if isinstance(out, tuple | list) else out
            x = args[0] if args else None
            if (isinstance(x, torch.Tensor) and not x.is_floating_point() and logits.dim() == x.dim() + 1
                    and tuple(logits.shape[:-1]) == tuple(x.shape)):
                labels = torch.zeros_like(x)
                return (torch.nn.functional.cross_entropy(logits.flatten(0, -2).float(), labels.flatten()),)
            return (logits.float().sum(),)

    return _Loss()


def _input_names(module: Any, n: int) -> list[str]:
    try:
        params = [p.name for p in inspect.signature(module.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"input_{i}" for i in range(n)]


def joint_program(module: Any, args: tuple[Any, ...]) -> tuple[Any, Any, dict[str, str], dict[str, str]]:
    """The joint forward + backward fx graph of one loss step of ``module(*args)`` on fake tensors,
    its graph signature, placeholder name → weight name (parameter FQN or input name) and the
    fx node computing each parameter's gradient → that parameter's (first) name."""
    from torch._functorch.aot_autograd import aot_export_module
    from torch.nn.utils.stateless import _reparametrize_module

    wrapper = _loss_module(module, args[0] if args else None)
    swaps, fake_args, _ = _fake_everything(wrapper, tuple(args), {})
    try:
        with _reparametrize_module(wrapper, swaps, tie_weights=True, strict=False):
            gm, sig = aot_export_module(wrapper, tuple(fake_args), trace_joint=True, output_loss_index=0)
    except Exception as exc:  # torch raises many exception types; surface one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GraphError(f"capture_training: joint trace failed for {type(module).__name__}: {first}") from exc
    canonical = canonical_names(module)
    persistent = [canonical.get(n.removeprefix("model."), n.removeprefix("model."))
                  for n in (*sig.parameters, *sig.buffers)]
    persistent += _input_names(module, len(sig.user_inputs))
    placeholders = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    grads = sig.backward_signature.gradients_to_parameters if sig.backward_signature else {}
    gradients = {node: canonical.get(p.removeprefix("model."), p.removeprefix("model.")) for node, p in grads.items()}
    return gm, sig, dict(zip(placeholders, persistent, strict=False)), gradients


def capture_training(module: Any, args: tuple[Any, ...], *, name: str | None = None,
                     dtype: str | None = None, optimizer: str | None = None) -> nx.DiGraph:
    """Capture forward, loss and backward of one training step of ``module(*args)``, and its optimizer.

    Parameters
    ----------
    module : torch.nn.Module
        Traced as is (its train/eval mode decides dropout). Build large models on ``"meta"``.
    args : tuple
        Example inputs (meta, fake or real tensors); the first one's shape gives ``batch`` and
        ``seq_len``, and the labels' shape for cross-entropy.
    name, dtype
        Graph attributes; defaults as :func:`hetsim.graph.capture.capture`. ``phase`` is ``"train"``.
    optimizer : {None, "adamw", "sgd"}
        Add one optimizer update per parameter (None: forward, loss and backward only).
    """
    if optimizer is not None and optimizer not in OPTIMIZERS:
        raise GraphError(f"capture_training.optimizer: got {optimizer!r}, expected one of {', '.join(OPTIMIZERS)}")
    gm, sig, persistent, gradients = joint_program(module, tuple(args))
    g = graph_for(module, gm.graph, list(sig.user_inputs), "capture_training", name=name, phase="train", dtype=dtype)
    loss = sig.backward_signature.loss_output if sig.backward_signature else None
    add_fx_ops(g, gm.graph, persistent, loss=loss, backward_prefix=BACKWARD_PREFIX, infer_modules=True)
    if optimizer is not None:
        _add_updates(g, gradients, optimizer)
    return validate_graph(g)


def _add_updates(g: nx.DiGraph, gradients: dict[str, str], optimizer: str) -> None:
    """One update per parameter after the op that produces its gradient (fx node name → parameter).

    A tied parameter (GPT-2's embedding and output head) gets one gradient per use; they are
    summed first by an ``accumulate.<name>`` op, as autograd accumulates them into one ``.grad``.
    """
    sizes: dict[str, float] = {}
    for _, data in g.nodes(data=True):
        sizes.update(data["weights"])
    dtype = g.graph.get("dtype")
    producers: dict[str, list[str]] = {}
    for node, param in gradients.items():
        op = BACKWARD_PREFIX + node if BACKWARD_PREFIX + node in g else node
        if op not in g or param not in sizes:
            raise GraphError(f"capture_training: the gradient of {param!r} (fx node {node!r}) is not an op of the "
                             "captured graph, expected every parameter's gradient to be computed by one")
        producers.setdefault(param, []).append(op)
    for param, ops in producers.items():
        nbytes = sizes[param]
        module = param.rsplit(".", 1)[0] if "." in param else ""
        last = ops[0]
        if len(ops) > 1:
            last = f"{BACKWARD_PREFIX}accumulate.{param}"
            add_op(g, last, op="elementwise", target="aten.add.Tensor",
                   flop=nbytes / DTYPE_BYTES.get(dtype or "fp32", 4) * (len(ops) - 1),
                   bytes_read=nbytes * len(ops), bytes_written=nbytes, dtype=dtype, module=module)
            for op in ops:
                g.add_edge(op, last, bytes=nbytes)
        add_update(g, f"update.{param}", {param: nbytes}, after=last, optimizer=optimizer, dtype=dtype,
                   module=module, gradient_bytes=nbytes)

