"""Which OpGraph op kind an ATen op is, and how it behaves for costing.

Torch-free: ops are looked up by name (``aten.linear.default`` → ``"linear"``, overload
``"default"``). :func:`classify` answers ``(kind, role)``:

``kind``
    one of :data:`hetsim.graph.schema.OP_KINDS`.
``role``
    ``"compute"``  reads its inputs, writes its outputs, costs FLOPs by kind;
    ``"view"``     aliases an input: no FLOPs, no bytes;
    ``"maybe_view"`` a view when its output aliases its input (``reshape`` of a contiguous tensor,
    ``to`` to the same dtype, ``contiguous`` of a contiguous tensor), else a ``copy``;
    ``"dropout"``  a view in eval mode (``train=False``), an elementwise op in training;
    ``"creation"`` writes a fresh tensor (``arange``, ``zeros_like``, ``full``) and reads no
    tensor data (``*_like`` read only metadata);
    ``"skip"``     not an op of the graph (export's metadata asserts);
    ``"unknown"``  not in these tables: a view when it aliases an input, else kind ``other``.

In-place variants (``add_``) classify like their out-of-place op.

Examples
--------
>>> classify("linear", "default")
('matmul', 'compute')
>>> classify("mul_", "Tensor")
('elementwise', 'compute')
>>> classify("max", "other"), classify("max", "dim")
(('elementwise', 'compute'), ('reduction', 'compute'))
>>> classify("reshape", "default")
('view', 'maybe_view')
>>> classify("my_custom_op", "default")
('other', 'unknown')
"""

from __future__ import annotations

MATMUL = frozenset({
    "linear", "mm", "addmm", "bmm", "baddbmm", "addbmm", "matmul", "mv", "addmv", "dot", "vdot", "einsum",
    "tensordot", "bilinear", "_scaled_mm", "_int_mm",
})

#: SDPA variants whose first three arguments are q, k, v laid out (..., heads, length, dim)
ATTENTION_BHLD = frozenset({
    "scaled_dot_product_attention", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_attention_math",
    "_scaled_dot_product_fused_attention_overrideable",
})
#: attention kernels with other layouts (batch, length, heads, dim): counted by FlopCounterMode
ATTENTION_OTHER = frozenset({"_flash_attention_forward", "_efficient_attention_forward"})

CONV = frozenset({
    "convolution", "_convolution", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "cudnn_convolution", "mkldnn_convolution", "convolution_overrideable",
    "_slow_conv2d_forward",
})

#: FLOPs per input element of each normalisation
NORM_FLOP_PER_ELEM = {
    "layer_norm": 8, "native_layer_norm": 8, "group_norm": 8, "native_group_norm": 8, "instance_norm": 8,
    "rms_norm": 4, "_fused_rms_norm": 4,
    "batch_norm": 4, "_native_batch_norm_legit_no_training": 4, "_native_batch_norm_legit": 8,
    "native_batch_norm": 8,
}

SOFTMAX = frozenset({"softmax", "_softmax", "_safe_softmax", "log_softmax", "_log_softmax"})

EMBEDDING = frozenset({"embedding", "embedding_bag", "_embedding_bag", "_embedding_bag_forward_only"})

#: FLOPs per input element of each reduction (1 unless listed)
REDUCTION_FLOP_PER_ELEM = {
    "sum": 1, "mean": 1, "amax": 1, "amin": 1, "max": 1, "min": 1, "argmax": 1, "argmin": 1, "prod": 1,
    "var": 3, "std": 3, "var_mean": 3, "std_mean": 3, "logsumexp": 3, "norm": 2, "linalg_vector_norm": 2,
    "cumsum": 1, "cumprod": 1, "all": 1, "any": 1, "count_nonzero": 1, "nansum": 1, "nanmean": 1,
    "aminmax": 1, "topk": 1, "sort": 1, "median": 1, "mode": 1,
}

ELEMENTWISE = frozenset({
    "add", "sub", "rsub", "mul", "div", "true_divide", "floor_divide", "neg", "pow", "rsqrt", "sqrt", "exp",
    "exp2", "expm1", "log", "log2", "log10", "log1p", "tanh", "sigmoid", "silu", "gelu", "relu", "relu6",
    "leaky_relu", "elu", "selu", "celu", "hardtanh", "hardswish", "hardsigmoid", "mish", "softplus", "where",
    "masked_fill", "clamp", "clamp_min", "clamp_max", "clip", "abs", "cos", "sin", "tan", "sinh", "cosh",
    "asin", "acos", "atan", "atan2", "reciprocal", "erf", "erfc", "erfinv", "maximum", "minimum", "fmax",
    "fmin", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_not", "logical_xor",
    "bitwise_and", "bitwise_or", "bitwise_not", "bitwise_xor", "sign", "floor", "ceil", "round", "trunc",
    "frac", "remainder", "fmod", "square", "addcmul", "addcdiv", "lerp", "triu", "tril", "outer", "isnan",
    "isinf", "isfinite", "nan_to_num", "hypot", "xlogy", "glu", "logit", "bernoulli", "threshold",
    "heaviside", "copysign", "sgn", "positive", "prelu", "_prelu_kernel",
})

CREATION = frozenset({
    "arange", "zeros", "ones", "full", "empty", "empty_strided", "zeros_like", "ones_like", "full_like",
    "empty_like", "new_zeros", "new_ones", "new_full", "new_empty", "new_empty_strided", "rand", "randn",
    "randint", "rand_like", "randn_like", "randint_like", "scalar_tensor", "linspace", "logspace", "eye",
    "fill", "zero", "randperm",
})

COPY = frozenset({
    "_to_copy", "clone", "copy", "cat", "concat", "concatenate", "stack", "hstack", "vstack", "repeat",
    "repeat_interleave", "index_select", "gather", "scatter", "scatter_add", "scatter_reduce", "index",
    "_unsafe_index", "index_put", "_index_put_impl", "index_copy", "index_add", "index_fill", "masked_scatter",
    "masked_select", "take", "constant_pad_nd", "pad", "reflection_pad1d", "reflection_pad2d",
    "replication_pad1d", "replication_pad2d", "roll", "flip", "tile", "lift_fresh_copy", "slice_scatter",
    "select_scatter", "diagonal_scatter", "as_strided_scatter", "narrow_copy", "expand_copy", "view_copy",
    "permute_copy", "transpose_copy", "t_copy", "unsqueeze_copy", "squeeze_copy", "_reshape_copy",
    "split_copy", "alias_copy", "detach_copy", "unbind_copy", "resolve_conj", "resolve_neg",
})

MAYBE_VIEW = frozenset({
    "reshape", "flatten", "unflatten", "contiguous", "to", "type_as", "reshape_as", "ravel",
})

VIEW = frozenset({
    "view", "_unsafe_view", "view_as", "transpose", "permute", "expand", "expand_as", "slice", "select",
    "unsqueeze", "squeeze", "split", "split_with_sizes", "chunk", "unbind", "tensor_split", "hsplit", "vsplit",
    "t", "alias", "getitem", "detach", "narrow", "as_strided", "movedim", "moveaxis", "swapaxes", "swapdims",
    "diagonal", "unfold", "lift_fresh", "view_as_real", "view_as_complex", "real", "imag", "numpy_T", "mT",
    "mH", "adjoint", "conj", "_conj", "_neg_view", "_reshape_alias", "broadcast_to", "align_as",
})

DROPOUT = frozenset({"dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout", "native_dropout"})

SKIP = frozenset({
    "_assert_tensor_metadata", "_assert_async", "_assert_scalar", "_functional_assert_async",
    "_functional_assert_scalar", "sym_constrain_range", "sym_constrain_range_for_size",
    "_functional_sym_constrain_range", "_functional_sym_constrain_range_for_size", "sym_size", "sym_stride",
    "sym_numel", "sym_storage_offset", "_set_grad_enabled", "_enter_autocast", "_exit_autocast",
})

#: FLOPs per element of each softmax output (max, subtract, exp, sum, divide)
SOFTMAX_FLOP_PER_ELEM = 5
#: FLOPs per element of each elementwise output, whatever the function (transcendentals included)
ELEMENTWISE_FLOP_PER_ELEM = 1


def op_key(target: object) -> tuple[str, str]:
    """``(name, overload)`` of an fx node target: an ATen OpOverload, a Python builtin or a HOP.

    Examples
    --------
    >>> import operator
    >>> op_key(operator.getitem)
    ('getitem', '')
    """
    schema = getattr(target, "_schema", None)
    if schema is not None:
        return schema.name.split("::")[-1], getattr(target, "_overloadname", "")
    name = getattr(target, "__name__", None) or str(target)
    return name, ""


#: backward ATen ops of a captured training step (aot_autograd's joint graph) and their kinds
BACKWARD_KINDS = {
    **{f"{name}_backward": "attention" for name in ATTENTION_BHLD | ATTENTION_OTHER},
    "native_layer_norm_backward": "norm", "native_group_norm_backward": "norm", "_fused_rms_norm_backward": "norm",
    "native_batch_norm_backward": "norm",
    "gelu_backward": "elementwise", "silu_backward": "elementwise", "threshold_backward": "elementwise",
    "tanh_backward": "elementwise", "sigmoid_backward": "elementwise", "native_dropout_backward": "elementwise",
    "_softmax_backward_data": "softmax", "_log_softmax_backward_data": "softmax",
    "embedding_dense_backward": "embedding", "nll_loss_forward": "reduction", "nll_loss_backward": "elementwise",
}


def classify(name: str, overload: str = "") -> tuple[str, str]:
    """``(kind, role)`` of the ATen op ``name`` (overload ``overload``); see the module docstring."""
    if name in SKIP:
        return "other", "skip"
    if name in ("max", "min") and overload == "other":
        return "elementwise", "compute"
    if name.endswith("_") and not name.startswith("_") and name[:-1] not in VIEW:
        name = name[:-1]
    for names, kind in ((MATMUL, "matmul"), (ATTENTION_BHLD, "attention"), (ATTENTION_OTHER, "attention"),
                        (CONV, "conv"), (NORM_FLOP_PER_ELEM, "norm"), (SOFTMAX, "softmax"),
                        (EMBEDDING, "embedding"), (REDUCTION_FLOP_PER_ELEM, "reduction"),
                        (ELEMENTWISE, "elementwise"), (COPY, "copy")):
        if name in names:
            return kind, "compute"
    if name in CREATION:
        return "elementwise", "creation"
    if name in MAYBE_VIEW:
        return "view", "maybe_view"
    if name in VIEW or name.rstrip("_") in VIEW:
        return "view", "view"
    if name in DROPOUT:
        return "view", "dropout"
    if name in BACKWARD_KINDS:
        return BACKWARD_KINDS[name], "compute"
    return "other", "unknown"
