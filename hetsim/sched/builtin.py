"""Importing this module registers every built-in scheduler."""

from hetsim.sched import baselines, eft  # noqa: F401
