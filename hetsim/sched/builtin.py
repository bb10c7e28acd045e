"""Importing this module registers every built-in scheduler."""

from hetsim.sched import baselines, cpop, eft, heft  # noqa: F401
