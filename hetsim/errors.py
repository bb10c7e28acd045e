"""Errors raised by hetsim.

Every error hetsim raises on bad input is a :class:`HetsimError`. Its message is one line that
names the field, the value and what was expected, so the CLI can print it as is and exit with
status 2.
"""

from __future__ import annotations


class HetsimError(Exception):
    """Base class of every error hetsim raises on purpose."""


class SpecError(HetsimError, ValueError):
    """A platform, unit, memory or link description is invalid."""


class UnitError(SpecError):
    """A quantity string could not be parsed into the expected physical dimension."""


class GraphError(HetsimError, ValueError):
    """An op graph breaks the schema of :mod:`hetsim.graph.schema` (cycle, missing field, ...)."""


class ScheduleError(HetsimError, ValueError):
    """A schedule is invalid, or a scheduler cannot place an op."""


class SimulationError(HetsimError, RuntimeError):
    """The simulation cannot proceed (e.g. a deadlocked per-unit order)."""


class OutOfMemoryError(SimulationError):
    """A memory's capacity would be exceeded."""


class ScenarioError(HetsimError, ValueError):
    """A scenario file or a ``--set`` override is invalid."""


def field_error(cls: type[HetsimError], field: str, value: object, expected: str) -> HetsimError:
    """Build the one-line message every bad-input error uses.

    Examples
    --------
    >>> str(field_error(SpecError, "memories.hbm.bandwidth", -1, "a positive bandwidth"))
    'memories.hbm.bandwidth: got -1, expected a positive bandwidth'
    """
    return cls(f"{field}: got {value!r}, expected {expected}")
