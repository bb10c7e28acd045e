"""Is it true: run torch for real, calibrate device profiles, compare predictions with measurements.

``hetsim.validate`` is both this package and, as DESIGN.md §4 promises, a function::

    report = hetsim.validate(module, (x,), "profiles/cpu-this-machine.yaml")
    report.e2e_error, report.per_op_mape, report.write("out/validate")

A module cannot be called, and the import system sets ``hetsim.validate`` to this package as
soon as any of its submodules is imported, so a function of that name in ``hetsim`` would be
shadowed by the package on some runs and not others. Instead the package *is* callable: its
module object's class is a :class:`types.ModuleType` subclass whose ``__call__`` runs
:func:`hetsim.validate.compare.validate` (Python supports assigning ``__class__`` of a module
for exactly this). Submodules (``hetsim.validate.measure``, ``.compare``, ``.manifest``) work as
usual, and ``from hetsim.validate import validate`` gives the same callable object.

The same function under an unambiguous name: ``hetsim.validate.validate_module`` (also
``validate_model`` for catalogue models, ``ValidationReport``, ``Measurement``), loaded lazily:
importing this package imports no torch.
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import Any

_LAZY = {
    "validate_module": ("hetsim.validate.compare", "validate"),
    "validate_model": ("hetsim.validate.compare", "validate_model"),
    "ValidationReport": ("hetsim.validate.compare", "ValidationReport"),
    "OpComparison": ("hetsim.validate.compare", "OpComparison"),
    "Measurement": ("hetsim.validate.measure", "Measurement"),
}

__all__ = sorted([*_LAZY, "validate"])


class _CallableModule(types.ModuleType):
    """This package's module class: calling it runs :func:`hetsim.validate.compare.validate`."""

    def __call__(self, module: Any, args: tuple[Any, ...], platform: Any, **options: Any) -> Any:
        """``hetsim.validate(module, args, platform, *, kwargs=None, device="cpu", threads=None, ...)``.

        Simulate ``module(*args, **kwargs)`` on ``platform``, run it for real and return a
        :class:`~hetsim.validate.compare.ValidationReport`; every option is that of
        :func:`hetsim.validate.compare.validate`.
        """
        from hetsim.validate.compare import validate

        return validate(module, args, platform, **options)


def __getattr__(name: str) -> Any:
    if name == "validate":  # hetsim's lazy table resolves "validate" through here: the package itself
        return sys.modules[__name__]
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(import_module(module), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


sys.modules[__name__].__class__ = _CallableModule
