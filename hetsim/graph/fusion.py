"""Kernel fusion: an OpGraph rewritten into the kernels an execution mode runs.

:func:`fuse` takes any OpGraph (captured, tensor-parallel, hand-built) and returns a new one whose
nodes are kernels. Patterns are recognised from the graph's structure: op kinds, ATen targets,
shapes and edges; a graph that matches no pattern comes back with the same ops.

``eager``
    PyTorch eager: one kernel per ATen op, the graph unchanged.
``compiled``
    torch.compile (Inductor) style: ops of kinds ``elementwise``, ``norm``, ``reduction``,
    ``softmax``, ``copy`` and ``view`` joined by edges are fused between the matrix ops
    (``matmul``, ``attention``, ``conv``, ``embedding``), which stay kernels of their own (library
    GEMMs and attention, as Inductor calls them). A producer joins its consumer's kernel when both
    run over the same number of elements, a reduction or norm over its input's (the GPU backend's
    vertical fusion, ``SIMDScheduling.can_fuse``: ``numel1 == numel2 * rnumel2``), or when it is an
    elementwise or copy op read by that consumer alone (Inductor inlines such a producer into its
    consumer's loop). A merge that would let a path leave a kernel and re-enter it is refused, so
    the kernel graph stays a DAG. Views between members are absorbed. Unlike Inductor, no op is
    recomputed in several kernels.
``serving``
    The kernels of a vLLM-style engine (vLLM's Llama: ``QKVParallelLinear``,
    ``MergedColumnParallelLinear``, ``rotary_embedding``, ``silu_and_mul``,
    ``fused_add_rms_norm``, ``reshape_and_cache``, FlashAttention / paged attention):
    matmuls with weights that read the same input and all feed one attention op become one
    ``qkv_proj`` matmul; two such matmuls where one feeds an activation that is multiplied by the
    other become one ``gate_up_proj`` matmul; copies that write a persistent tensor (the KV
    cache) read by an attention op become one ``kv_cache_write`` copy per attention op; the
    remaining pointwise ops fuse as in ``compiled``, and the rotary kernels of q and k that feed
    one attention op become one ``rope`` kernel; attention is ``flash_attention``, or in a decode
    step (graph phase ``decode`` or one query row) ``paged_attention``, whose KV read is rounded up
    to whole blocks of :data:`PAGED_BLOCK_TOKENS` tokens per sequence plus its block table.

A kernel of several ops (op kind ``fused``, or ``matmul``/``attention``/``copy`` for the serving
kernels above) has id ``fused.<its first op that is not a view>`` and carries ``fused =
{"pattern", "members", "targets"}`` (:mod:`hetsim.graph.schema`); a serving kernel of one op
(attention) keeps the op's id. Its attributes (:mod:`hetsim.graph.fusion_kernels`):

* ``flop``: the members' sum;
* ``bytes_read``: every tensor from outside the kernel once (through absorbed views only the part
  they pass on, e.g. a slice's rows), every weight once, plus what members read that no edge or
  weight accounts for;
* ``bytes_written``: the outputs of members read outside the kernel, or by no op (graph
  outputs), and every in-place write into a persistent tensor (``inplace_bytes`` summed);
* ``weights``: the union; ``dtype``: the members' most common compute dtype; ``shape``: the
  largest output (a fused projection: the concatenated output, last dimensions summed);
  ``module``: the members' common dotted prefix; ``pin``: the members' (ops pinned to different
  units never fuse; collectives and ops with explicit ``cost`` never fuse).

Edges run from each external producer into the kernel and from the kernel to each external
consumer, ``bytes`` the tensors that flow (one tensor counted once).

Patterns (:data:`PATTERNS`) name what a kernel does, for the cost model's bandwidth families; a
``pointwise`` kernel holding a LayerNorm, softmax or reduction says so through its ``targets``.
``benchmarks/fusion_vs_inductor.py`` compares ``compiled`` kernels with those TorchInductor
generates for the same modules.

Tensor parallelism: fuse *after* :func:`hetsim.graph.parallel.tensor_parallel`. Every op of a
split graph is pinned to its rank, so kernels never cross ranks, and all-reduces (collectives)
bound them, as in a real TP step. (Fusing first also works, since kernels keep a module path the
TP rules match, but a ``compiled`` kernel mixing split and replicated ops would be replicated.)

Examples
--------
Three pointwise ops on a ``[4, 8]`` fp32 tensor become one kernel reading its input once and
writing its output once (128 bytes each):

>>> from hetsim.graph.schema import add_op, new_graph
>>> g = new_graph("chain", dtype="fp32")
>>> for name in ("a", "b", "c"):
...     add_op(g, name, op="elementwise", target=f"aten.{name}.default", flop=32, bytes_read=128,
...            bytes_written=128, dtype="fp32", shape=(4, 8))
>>> g.add_edge("a", "b", bytes=128); g.add_edge("b", "c", bytes=128)
>>> k = fuse(g, "compiled")
>>> list(k), k.nodes["fused.a"]["bytes_read"], k.nodes["fused.a"]["bytes_written"]
(['fused.a'], 128, 128)
>>> k.nodes["fused.a"]["fused"]["members"], k.nodes["fused.a"]["flop"]
(['a', 'b', 'c'], 96)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import networkx as nx

from hetsim.errors import GraphError, field_error
from hetsim.graph.fusion_kernels import PAGED_BLOCK_TOKENS, Kernel, kernel_graph
from hetsim.graph.schema import validate_graph

__all__ = ["MODES", "PAGED_BLOCK_TOKENS", "PATTERNS", "fuse"]

MODES = ("eager", "compiled", "serving")

#: what each kernel pattern is (the cost model maps a pattern to a bandwidth family)
PATTERNS: Mapping[str, str] = {
    "pointwise": "any other fused group of elementwise/copy/view/norm/softmax/reduction ops",
    "rope": "rotary embedding: x*cos + rotate_half(x)*sin (neg and cat) of q, k or both",
    "silu_mul": "SiLU of one tensor times another (SwiGLU's silu(gate) * up)",
    "gelu": "a group holding a GELU",
    "rmsnorm": "an RMSNorm with the pointwise ops around it",
    "add_rmsnorm": "a residual add feeding an RMSNorm (both outputs kept)",
    "qkv_proj": "serving: the q/k/v projections of one attention as one GEMM",
    "gate_up_proj": "serving: the gate and up projections of a gated MLP as one GEMM",
    "kv_cache_write": "serving: the in-place KV-cache writes of one attention op (reshape_and_cache)",
    "flash_attention": "serving: attention of a prefill, FlashAttention-style",
    "paged_attention": "serving: decode attention over a paged KV cache",
}

MATRIX_KINDS = frozenset({"matmul", "attention", "conv", "embedding"})
FUSABLE_KINDS = frozenset({"elementwise", "norm", "reduction", "softmax", "copy", "view"})
_INLINED = frozenset({"elementwise", "copy"})  # kinds Inductor inlines into a lone consumer
_ACTIVATIONS = frozenset({"silu", "gelu", "relu", "sigmoid", "tanh", "mish", "hardswish"})
_ROTATE = frozenset({"cat", "concat", "concatenate", "stack"})
#: copies that write into an existing tensor (a cache write when attention reads the result)
_SCATTERS = frozenset({"index_copy", "index_put", "_index_put_impl", "slice_scatter", "select_scatter", "scatter",
                       "copy"})


def fuse(graph: nx.DiGraph, mode: str) -> nx.DiGraph:
    """The kernels execution mode ``mode`` runs for ``graph``, as a new validated OpGraph.

    Parameters
    ----------
    graph : networkx.DiGraph
        Any OpGraph; it is not modified.
    mode : {"eager", "compiled", "serving"}
        See the module docstring.

    Returns
    -------
    networkx.DiGraph
        ``eager``: a copy of ``graph``; else the fused graph, node ids deterministic.

    Examples
    --------
    >>> from hetsim.graph.schema import add_op, new_graph
    >>> g = new_graph("mm-act")
    >>> add_op(g, "mm", op="matmul", flop=64, bytes_read=96, bytes_written=32, shape=(2, 4))
    >>> add_op(g, "relu", op="elementwise", target="aten.relu.default", flop=8, bytes_read=32,
    ...        bytes_written=32, shape=(2, 4))
    >>> g.add_edge("mm", "relu", bytes=32)
    >>> sorted(fuse(g, "compiled"))  # a GEMM never joins a pointwise kernel
    ['mm', 'relu']
    >>> fuse(g, "jit")
    Traceback (most recent call last):
    ...
    hetsim.errors.GraphError: fuse.mode: got 'jit', expected one of eager, compiled, serving
    """
    if mode not in MODES:
        raise field_error(GraphError, "fuse.mode", mode, f"one of {', '.join(MODES)}")
    validate_graph(graph)
    if mode == "eager":
        return graph.copy()
    out = _Fuser(graph, serving=mode == "serving").run()
    for _, data in out.nodes(data=True):  # an Inductor kernel and a serving engine's are costed apart
        if "fused" in data:
            data["fused"]["mode"] = mode
    return out


def _name(target: object) -> str:
    """``aten.mul.Tensor`` → ``mul`` (a ``[kwarg=value]`` suffix dropped); ``""`` for other targets."""
    parts = str(target).split("[")[0].split(".")
    return parts[1] if len(parts) >= 2 and parts[0] == "aten" else ""


def _numel(shape: Iterable[int]) -> int:
    return math.prod(int(d) for d in shape)


class _Groups:
    """Union of ops into kernels over a quotient DAG kept in topological positions.

    A merge of groups A (earlier) and B is refused when a path A → X → … → B through another
    group exists; otherwise the positions between them are reordered as in Pearce and Kelly's
    dynamic topological sort (JEA 11, 2006): B's ancestors in the window first, then the merged
    group, then A's descendants, so every check stays local to the window.
    """

    def __init__(self, graph: nx.DiGraph, order: list[str]) -> None:
        self.pos = {n: i for i, n in enumerate(order)}
        self.parent = {n: n for n in order}
        self.members: dict[str, list[str]] = {n: [n] for n in order}
        self.succ = {n: set(graph.successors(n)) for n in order}
        self.pred = {n: set(graph.predecessors(n)) for n in order}

    def find(self, n: str) -> str:
        root = n
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[n] != root:
            self.parent[n], n = root, self.parent[n]
        return root

    def merge(self, a: str, b: str) -> bool:
        """Put ``a``'s and ``b``'s groups in one; ``False`` (nothing changed) if that made a cycle."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if self.pos[ra] > self.pos[rb]:
            ra, rb = rb, ra
        lo, hi = self.pos[ra], self.pos[rb]
        forward: set[str] = set()
        stack = [s for s in self.succ[ra] if s != rb]
        while stack:
            x = stack.pop()
            if x == rb:
                return False
            if x not in forward and self.pos[x] < hi:
                forward.add(x)
                stack.extend(self.succ[x])
        backward: set[str] = set()
        stack = [p for p in self.pred[rb] if p != ra]
        while stack:
            x = stack.pop()
            if x not in backward and self.pos[x] > lo:
                backward.add(x)
                stack.extend(self.pred[x])
        slots = sorted(self.pos[x] for x in (*backward, *forward, ra, rb))
        ahead, behind = sorted(backward, key=self.pos.__getitem__), sorted(forward, key=self.pos.__getitem__)
        for x, slot in zip((*ahead, ra), slots, strict=False):
            self.pos[x] = slot
        for x, slot in zip(behind, slots[len(slots) - len(behind):], strict=True):
            self.pos[x] = slot
        self.parent[rb] = ra
        self.members[ra].extend(self.members.pop(rb))
        for x in self.succ.pop(rb):
            self.pred[x].discard(rb)
            if x != ra:
                self.pred[x].add(ra)
                self.succ[ra].add(x)
        for x in self.pred.pop(rb):
            self.succ[x].discard(rb)
            if x != ra:
                self.succ[x].add(ra)
                self.pred[ra].add(x)
        self.succ[ra].discard(ra)
        self.pred[ra].discard(ra)
        del self.pos[rb]
        return True


class _Fuser:
    """One fusion run over one graph (the graph is read, never written)."""

    def __init__(self, graph: nx.DiGraph, *, serving: bool) -> None:
        self.g, self.serving = graph, serving
        self.nodes = graph.nodes
        index = {n: i for i, n in enumerate(graph)}  # ties broken by the graph's own node order
        self.order = list(nx.lexicographical_topological_sort(graph, key=index.__getitem__))
        self.topo = {n: i for i, n in enumerate(self.order)}
        self.groups = _Groups(graph, self.order)
        self.labels: dict[str, tuple[str, str]] = {}  # a member -> (pattern, op kind) of its kernel
        self.excluded: set[str] = set()  # ops kept out of pointwise kernels
        self.loop = {n: self._loop(n) for n in self.order}
        self._succ_cache: dict[str, list[str]] = {}

    # ---- structure helpers ----
    def kind(self, n: str) -> str:
        return self.nodes[n]["op"]

    def fusable(self, n: str) -> bool:
        d = self.nodes[n]
        return d["op"] in FUSABLE_KINDS and "cost" not in d and n not in self.excluded

    def same_pin(self, a: str, b: str) -> bool:
        return self.nodes[a].get("pin") == self.nodes[b].get("pin")

    def _loop(self, n: str) -> int:
        """Elements an op iterates over: its largest input or output (a reduction: its input)."""
        sizes = [_numel(self.nodes[n]["shape"])] + [_numel(self.nodes[p]["shape"]) for p in self.g.predecessors(n)]
        return max(sizes)

    def eff_succ(self, n: str) -> list[str]:
        """Non-view ops reading ``n``'s output directly or through views, in topological order."""
        if n not in self._succ_cache:
            self._succ_cache[n] = self._through_views(n, self.g.successors)
        return self._succ_cache[n]

    def eff_pred(self, n: str) -> list[str]:
        """Non-view ops whose outputs ``n`` reads, directly or through views."""
        return self._through_views(n, self.g.predecessors)

    def _through_views(self, n: str, step) -> list[str]:
        seen, out, stack = set(), set(), list(step(n))
        while stack:
            x = stack.pop()
            if x not in seen:
                seen.add(x)
                if self.kind(x) == "view":
                    stack.extend(step(x))
                else:
                    out.add(x)
        return sorted(out, key=self.topo.__getitem__)

    def reaches(self, start: Iterable[str], stop: frozenset[str]) -> list[str]:
        """Attention ops reachable from ``start`` through ops whose kinds are not in ``stop``."""
        found, seen, stack = set(), set(), list(start)
        while stack:
            x = stack.pop()
            if x in seen:
                continue
            seen.add(x)
            if self.kind(x) == "attention":
                found.add(x)
            elif self.kind(x) not in stop:
                stack.extend(self.g.successors(x))
        return sorted(found, key=self.topo.__getitem__)

    # ---- passes ----
    def run(self) -> nx.DiGraph:
        if self.serving:
            self.fuse_projections()
            self.fuse_cache_writes()
        self.fuse_pointwise()
        if self.serving:
            self.fuse_rope()
        return kernel_graph(self.g, [Kernel(tuple(ms), *(self.label(ms) or (None, None))) for ms in self.kernels()])

    def fuse_pointwise(self) -> None:
        pairs = []
        for v in self.order:
            if self.kind(v) == "view" or not self.fusable(v):
                continue
            for r in self.eff_pred(v):
                if not (self.fusable(r) and self.same_pin(r, v)):
                    continue
                if self.loop[r] == self.loop[v] or (self.kind(r) in _INLINED and len(self.eff_succ(r)) == 1):
                    pairs.append((self.topo[r], self.topo[v], r, v))
        for _, _, r, v in sorted(pairs):
            self.groups.merge(r, v)

    def fuse_projections(self) -> None:
        """Serving: sibling GEMMs reading one input become a ``gate_up_proj`` or ``qkv_proj`` GEMM."""
        siblings: dict[tuple, list[str]] = {}
        for n in self.order:
            d = self.nodes[n]
            inputs = [p for p in self.g.predecessors(n) if self.g.edges[p, n]["bytes"] > 0]
            if d["op"] != "matmul" or not d["weights"] or "cost" in d or len(inputs) != 1:
                continue
            key = (inputs[0], d.get("pin"), d["dtype"], d["target"], tuple(d["shape"][:-1]))
            siblings.setdefault(key, []).append(n)
        for members in siblings.values():
            if len(members) < 2:
                continue
            left = list(members)
            for a in members:
                b = self._gate_partner(a, members)
                if b is not None and a in left and b in left and self.groups.merge(a, b):
                    self.labels[a] = ("gate_up_proj", "matmul")
                    left.remove(a)
                    left.remove(b)
            stop = MATRIX_KINDS | {"collective"}
            by_attention: dict[str, list[str]] = {}
            for m in left:
                for att in self.reaches(self.g.successors(m), stop)[:1]:
                    by_attention.setdefault(att, []).append(m)
            for qkv in by_attention.values():
                merged = [m for m in qkv[1:] if self.groups.merge(qkv[0], m)]  # siblings: no path between them
                if merged:
                    self.labels[qkv[0]] = ("qkv_proj", "matmul")

    def _gate_partner(self, a: str, members: list[str]) -> str | None:
        """The sibling ``b`` when ``act(a) * b`` follows ``a`` (a gated MLP), else ``None``."""
        for act in self.eff_succ(a):
            if _name(self.nodes[act]["target"]) not in _ACTIVATIONS:
                continue
            for mul in self.eff_succ(act):
                if _name(self.nodes[mul]["target"]) != "mul":
                    continue
                for b in self.eff_pred(mul):
                    if b != a and b in members:
                        return b
        return None

    def fuse_cache_writes(self) -> None:
        """Serving: copies writing a persistent tensor that attention reads, one kernel per attention op."""
        by_attention: dict[str, list[str]] = {}
        for n in self.order:
            d = self.nodes[n]
            name = _name(d["target"])
            writes = bool(d["weights"]) or d.get("inplace_bytes", 0) > 0 or name in _SCATTERS or name.endswith("_")
            if d["op"] != "copy" or not writes or "cost" in d:
                continue
            targets = [s for s in self.eff_succ(n) if self.kind(s) == "attention"]
            if targets:
                self.excluded.add(n)
                by_attention.setdefault(targets[0], []).append(n)
        for writes in by_attention.values():
            for w in writes[1:]:
                if self.same_pin(writes[0], w):
                    self.groups.merge(writes[0], w)
            self.labels[writes[0]] = ("kv_cache_write", "copy")

    def fuse_rope(self) -> None:
        """Serving: the rotary kernels of q and k that feed one attention op become one."""
        by_attention: dict[str, list[str]] = {}
        for root, members in list(self.groups.members.items()):
            if len(members) < 2 or self.pattern(members) != "rope":
                continue
            after = [s for m in members for s in self.g.successors(m) if self.groups.find(s) != root]
            for att in self.reaches(after, MATRIX_KINDS | {"collective"})[:1]:
                by_attention.setdefault(att, []).append(root)
        for ropes in by_attention.values():
            for other in ropes[1:]:
                if self.same_pin(ropes[0], other):
                    self.groups.merge(ropes[0], other)

    # ---- classification ----
    def pattern(self, members: list[str]) -> str:
        names = {_name(self.nodes[m]["target"]) for m in members}
        inside = set(members)
        if "neg" in names and names & _ROTATE and "mul" in names:
            return "rope"
        for m in members:
            if self.kind(m) == "norm" and "rms" in _name(self.nodes[m]["target"]):
                feeds = any(_name(self.nodes[p]["target"]) == "add" and p in inside for p in self.eff_pred(m))
                return "add_rmsnorm" if feeds else "rmsnorm"
        if {"mean", "rsqrt"} <= names and not names & {"sub", "var", "var_mean"}:  # an RMSNorm written out
            # a residual add sums two tensors from outside; the epsilon add takes one tensor
            residual = any(_name(self.nodes[m]["target"]) == "add" and len(self.eff_pred(m)) >= 2
                           and not inside & set(self.eff_pred(m)) for m in members)
            return "add_rmsnorm" if residual else "rmsnorm"
        for m in members:
            if _name(self.nodes[m]["target"]) == "silu" and any(
                    _name(self.nodes[s]["target"]) == "mul" and s in inside for s in self.eff_succ(m)):
                return "silu_mul"
        if "gelu" in names:
            return "gelu"
        return "pointwise"

    def kernels(self) -> list[list[str]]:
        """Final member lists (topological order), views absorbed into the kernel reading them."""
        groups = {root: sorted(ms, key=self.topo.__getitem__) for root, ms in self.groups.members.items()}
        owner = {m: root for root, ms in groups.items() for m in ms}
        hosts = {root for root, ms in groups.items() if len(ms) >= 2} | {self.groups.find(m) for m in self.labels}
        for n in reversed(self.order):
            if self.kind(n) != "view" or len(groups[owner[n]]) > 1:
                continue
            succ = list(self.g.successors(n))
            homes = {owner[s] for s in succ} if succ else {owner[p] for p in self.g.predecessors(n)}
            if len(homes) == 1:
                home = homes.pop()
                if home in hosts and self.same_pin(n, home):
                    del groups[owner[n]]
                    groups[home].append(n)
                    owner[n] = home
        return sorted((sorted(ms, key=self.topo.__getitem__) for ms in groups.values()),
                      key=lambda ms: self.topo[ms[0]])

    def label(self, members: list[str]) -> tuple[str, str] | None:
        """``(pattern, op kind)`` of a kernel, ``None`` for one op run as captured."""
        for m in members:
            if m in self.labels:
                return self.labels[m]
        real = [m for m in members if self.kind(m) != "view"]
        if len(real) == 1 and self.kind(real[0]) == "attention" and self.serving:
            return ("paged_attention" if self._decode(real[0]) else "flash_attention"), "attention"
        if len(real) < 2:
            return None
        return self.pattern(real), "fused"

    def _decode(self, n: str) -> bool:
        shape = self.nodes[n]["shape"]
        return self.g.graph.get("phase") == "decode" or (len(shape) >= 2 and shape[-2] == 1)
