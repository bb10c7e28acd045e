"""Who runs what, in which order, at which power state: schedulers, the Schedule, its checker."""

from hetsim.sched.registry import REGISTRY, Scheduler, get_scheduler, list_schedulers, register
from hetsim.sched.schedule import Schedule, check_schedule, from_assignment

__all__ = ["REGISTRY", "Schedule", "Scheduler", "check_schedule", "from_assignment", "get_scheduler",
           "list_schedulers", "register"]
