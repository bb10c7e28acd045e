"""Importing this module registers every built-in scheduler."""

from hetsim.sched import (  # noqa: F401
    baselines,
    cpop,
    dls,
    eft,
    etf,
    exact,
    fastest,
    heft,
    lookahead,
    maxmin,
    mct,
    met,
    minmin,
    peft,
    random_unit,
    sufferage,
)
