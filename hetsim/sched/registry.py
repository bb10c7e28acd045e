"""The scheduler registry: one name per scheduler, duplicates refused.

A scheduler is a class with a ``name`` class attribute, keyword-only options in its constructor,
and ``__call__(graph, cost) -> Schedule``. Register it with :func:`register`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

import networkx as nx

from hetsim.cost.model import CostModel
from hetsim.errors import ScheduleError
from hetsim.sched.schedule import Schedule


class Scheduler(Protocol):
    """What every static scheduler provides."""

    name: ClassVar[str]

    def __call__(self, graph: nx.DiGraph, cost: CostModel) -> Schedule: ...


class Registry:
    """Name → scheduler class. Registering a name twice raises.

    Examples
    --------
    >>> r = Registry()
    >>> @r.register
    ... class Noop:
    ...     name = "noop"
    >>> r.names()
    ['noop']
    >>> r.register(Noop)
    Traceback (most recent call last):
    ...
    ValueError: scheduler name 'noop' is already registered
    """

    def __init__(self) -> None:
        self._classes: dict[str, type] = {}

    def register(self, cls: type) -> type:
        name = cls.name
        if name in self._classes:
            raise ValueError(f"scheduler name {name!r} is already registered")
        self._classes[name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._classes)

    def describe(self) -> dict[str, str]:
        """Name → first line of the scheduler's docstring."""
        return {n: (inspect.getdoc(c) or "").splitlines()[0] for n, c in sorted(self._classes.items())}

    def create(self, name: str, options: Mapping[str, Any] | None = None) -> Scheduler:
        """An instance of scheduler ``name`` with ``options``; one-line errors for bad input."""
        cls = self._classes.get(name)
        if cls is None:
            raise ScheduleError(f"scheduler: got {name!r}, expected one of {', '.join(self.names())}")
        options = dict(options or {})
        params = inspect.signature(cls).parameters
        for key in options:
            if key not in params:
                known = ", ".join(params) or "none"
                raise ScheduleError(f"scheduler.options.{key}: unknown option of {name!r}, expected one of {known}")
        return cls(**options)


REGISTRY = Registry()
register: Callable[[type], type] = REGISTRY.register


def get_scheduler(name: str, options: Mapping[str, Any] | None = None) -> Scheduler:
    """A scheduler from the global registry (importing the built-in ones first)."""
    import hetsim.sched.builtin  # noqa: F401  (registers the built-in schedulers)

    return REGISTRY.create(name, options)


def list_schedulers() -> dict[str, str]:
    """Name → one-line description of every registered scheduler."""
    import hetsim.sched.builtin  # noqa: F401

    return REGISTRY.describe()
