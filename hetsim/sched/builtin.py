"""Importing this module registers every built-in scheduler."""

from hetsim.sched import (  # noqa: F401
    baselines,
    cpop,
    dls,
    dmda,
    eft,
    etf,
    exact,
    fastest,
    heft,
    heft_dvfs,
    lookahead,
    maxmin,
    mct,
    met,
    minmin,
    online_eft,
    peft,
    random_unit,
    sufferage,
    work_stealing,
)
