"""Power management in the engine: governors, a package power cap, power gating, thermal throttling.

Each unit runs at one of its power states (its (f, V) table, sorted by frequency). What sets it:

* the **governor** (``sim.power.governor``): ``schedule`` (each op at the state its schedule
  names, else the nominal one — userspace/fixed), ``performance`` (the fastest state),
  ``powersave`` (the slowest), ``ondemand`` (every ``interval``: utilization above
  ``up_threshold`` jumps to the fastest state, below 0.3 steps one down — Linux's ondemand, and
  DS3's thresholds 0.8/0.3), ``schedutil`` (the slowest state with f ≥ 1.25·f_max·utilization,
  Linux's schedutil rule);
* a **package power cap** (``cap``, watts, or ``budget`` for the platform's ``power_budget``):
  every ``cap_interval`` the controller sums the units' power; above the cap it steps units down
  (the hungriest first) until the sum is under it, below ``(1 − hysteresis)·cap`` it lets one unit
  step back up if that keeps the sum under — GPU Boost's power-limit loop (hardware.md §3.2–3.3).
  Power can exceed the cap only until the next control tick;
* **thermal throttling** (``thermal``): a lumped RC model per unit, ``C·dT/dt = P − (T − T_amb)/R``,
  integrated exactly over the piecewise-constant power; at ``limit_c`` the unit steps down one
  state per tick until it cools below ``resume_c``.

A state change takes effect at once, also for the running op: the op's remaining work is re-timed
at the new state (its compute part scales with 1/f, its memory part does not — the cost model),
after ``transition`` seconds without progress. **Power gating**: a unit idle for ``gate_after``
sleeps at ``sleep_fraction`` of its lowest static power; waking takes ``wake`` seconds at
``wake_energy / wake`` watts. Power, frequency and temperature are recorded at every change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import simpy

from hetsim.cost.model import CostModel
from hetsim.errors import ScenarioError, UnitError
from hetsim.spec.types import Platform, PowerState
from hetsim.units import parse_positive

GOVERNORS = ("schedule", "performance", "powersave", "ondemand", "schedutil")
LOW_THRESHOLD = 0.3  # ondemand steps down below this utilization (DS3's util_low_threshold)
SCHEDUTIL_MARGIN = 1.25  # Linux schedutil: next_freq = 1.25 * max_freq * util


@dataclass(frozen=True)
class ThermalOptions:
    """Lumped RC thermal model of every unit (or of ``units``)."""

    resistance_k_per_w: float
    capacitance_j_per_k: float
    limit_c: float
    ambient_c: float = 25.0
    resume_c: float | None = None  # default: 3 °C under the limit (DS3's hysteresis)
    units: tuple[str, ...] | None = None

    @property
    def resume(self) -> float:
        return self.limit_c - 3.0 if self.resume_c is None else self.resume_c


@dataclass(frozen=True)
class PowerOptions:
    """``sim.power``: governor, cap, gating and thermal settings (all off by default)."""

    governor: str = "schedule"
    interval_s: float = 1e-3
    up_threshold: float = 0.8
    transition_s: float = 0.0
    cap_w: float | None = None
    cap_interval_s: float = 1e-3
    hysteresis: float = 0.05
    gate_after_s: float | None = None
    wake_s: float = 0.0
    wake_j: float = 0.0
    sleep_fraction: float = 0.1
    thermal: ThermalOptions | None = None
    cap_budget: bool = field(default=False, repr=False)  # cap: budget — resolved against the platform

    @property
    def active(self) -> bool:
        return (self.governor != "schedule" or self.cap_w is not None or self.cap_budget
                or self.gate_after_s is not None or self.thermal is not None)

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> PowerOptions:
        """From a scenario's ``sim.power`` mapping (quantities may be strings like ``"1 ms"``)."""
        if data is None:
            return cls()
        if isinstance(data, PowerOptions):
            return data
        if not isinstance(data, Mapping):
            raise ScenarioError(f"sim.power: got {data!r}, expected a mapping (governor, cap, ...)")
        keys = {"governor": None, "interval": "time", "up_threshold": None, "transition": "time", "cap": "power",
                "cap_interval": "time", "hysteresis": None, "gate_after": "time", "wake": "time",
                "wake_energy": "energy", "sleep_fraction": None, "thermal": None}
        for key in data:
            if key not in keys:
                raise ScenarioError(f"sim.power.{key}: unknown option, expected one of {', '.join(keys)}")
        governor = data.get("governor", "schedule")
        if governor not in GOVERNORS:
            raise ScenarioError(f"sim.power.governor: got {governor!r}, expected one of {', '.join(GOVERNORS)}")
        out: dict[str, Any] = {"governor": governor}
        names = {"interval": "interval_s", "transition": "transition_s", "cap_interval": "cap_interval_s",
                 "gate_after": "gate_after_s", "wake": "wake_s", "wake_energy": "wake_j"}
        for key, dimension in keys.items():
            if key in ("governor", "thermal", "cap") or key not in data:
                continue
            value = _quantity(data[key], dimension, f"sim.power.{key}")
            out[names.get(key, key)] = value
        for key in ("interval_s", "cap_interval_s"):
            if key in out and out[key] <= 0:
                raise ScenarioError(f"sim.power.{key[:-2]}: got {out[key]!r}, expected a positive time")
        if "cap" in data:
            if data["cap"] == "budget":
                out["cap_budget"] = True
            else:
                out["cap_w"] = _quantity(data["cap"], "power", "sim.power.cap")
        if data.get("thermal") is not None:
            out["thermal"] = _thermal(data["thermal"])
        for key, bound in (("up_threshold", 1.0), ("hysteresis", 1.0), ("sleep_fraction", 1.0)):
            if key in out and not 0 <= out[key] <= bound:
                raise ScenarioError(f"sim.power.{key}: got {out[key]!r}, expected a fraction in [0, 1]")
        if out.get("wake_j", 0) > 0 and out.get("wake_s", 0) <= 0:
            raise ScenarioError("sim.power.wake_energy: got energy without a wake time, expected sim.power.wake > 0")
        return cls(**out)


def _quantity(value: Any, dimension: str | None, where: str) -> float:
    if dimension is None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ScenarioError(f"{where}: got {value!r}, expected a number")
        return float(value)
    try:
        return parse_positive(value, dimension, where, allow_zero=True)
    except UnitError as exc:  # re-raised as the scenario's one-line error
        raise ScenarioError(str(exc)) from None


def _thermal(raw: Any) -> ThermalOptions:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"sim.power.thermal: got {raw!r}, expected a mapping (resistance, capacitance, limit)")
    known = ("resistance", "capacitance", "limit", "ambient", "resume", "units")
    for key in raw:
        if key not in known:
            raise ScenarioError(f"sim.power.thermal.{key}: unknown option, expected one of {', '.join(known)}")
    for key in ("resistance", "capacitance", "limit"):
        if key not in raw:
            raise ScenarioError(f"sim.power.thermal.{key}: missing, this field is required")
    numbers = {}
    for key in ("resistance", "capacitance", "limit", "ambient", "resume"):
        if key in raw:
            numbers[key] = _quantity(raw[key], None, f"sim.power.thermal.{key}")
    if numbers["resistance"] <= 0 or numbers["capacitance"] <= 0:
        raise ScenarioError("sim.power.thermal: resistance and capacitance must be positive numbers (K/W, J/K)")
    units = raw.get("units")
    return ThermalOptions(numbers["resistance"], numbers["capacitance"], numbers["limit"],
                          numbers.get("ambient", 25.0), numbers.get("resume"),
                          tuple(units) if units is not None else None)


class _Running:
    __slots__ = ("cost", "done", "duration", "fraction", "op", "since", "started", "timer")

    def __init__(self, op: str, done: simpy.Event, started: float):
        self.op, self.done, self.started = op, done, started
        self.fraction, self.since, self.duration, self.cost, self.timer = 0.0, started, 0.0, None, 0


class PowerManager:
    """The power state, power and temperature of every unit during one run."""

    def __init__(self, env: simpy.Environment, platform: Platform, cost: CostModel, options: PowerOptions):
        self.env, self.platform, self.cost, self.options = env, platform, cost, options
        self.states: dict[str, list[PowerState]] = {
            u.name: sorted(u.power_states, key=lambda s: s.freq_hz) for u in platform.units}
        top = {u: len(s) - 1 for u, s in self.states.items()}
        start = {"performance": top, "powersave": dict.fromkeys(top, 0)}.get(options.governor)
        nominal = {u.name: self.states[u.name].index(u.nominal) for u in platform.units}
        self.nominal_level = nominal
        self.level_of = {u: {state.name: i for i, state in enumerate(s)} for u, s in self.states.items()}
        self.governed = dict(start or nominal)
        self.cap_limit, self.thermal_limit = dict(top), dict(top)
        self.cap_w = platform.power_budget_w if options.cap_budget else options.cap_w
        if options.cap_budget and self.cap_w is None:
            raise ScenarioError(f"sim.power.cap: got 'budget', expected platform {platform.name!r} to have a "
                                "power_budget")
        if self.cap_w is not None:
            idle = sum(s[0].static_power_w for s in self.states.values())
            if self.cap_w < idle:
                raise ScenarioError(f"sim.power.cap: got {self.cap_w:g} W, expected at least the platform's idle "
                                    f"power {idle:g} W")
        self.level = {u: min(self.governed[u], top[u]) for u in self.states}
        self.running: dict[str, _Running | None] = dict.fromkeys(self.states)
        self.asleep = dict.fromkeys(self.states, False)
        self.idle_since = dict.fromkeys(self.states, 0.0)
        self.busy_acc = dict.fromkeys(self.states, 0.0)  # busy time in the governor's current window
        self.window_start = 0.0
        self.progress, self._stalled = 0, 0
        self.power = {u: self.states[u][self.level[u]].static_power_w for u in self.states}
        self.power_log: list[tuple[float, str, float]] = [(0.0, u, w) for u, w in self.power.items()]
        self.freq_log: list[tuple[float, str, float]] = [
            (0.0, u, self.states[u][self.level[u]].freq_hz) for u in self.states]
        thermal = options.thermal
        self.thermal_units = (set(thermal.units) if thermal and thermal.units else set(self.states)) if thermal \
            else set()
        self.temp = {u: thermal.ambient_c for u in self.thermal_units} if thermal else {}
        self.temp_log: list[tuple[float, str, float]] = [(0.0, u, t) for u, t in self.temp.items()]
        self._temp_at = dict.fromkeys(self.thermal_units, 0.0)
        self.finished = False

    # -- what the engine calls ---------------------------------------------------------------
    def start(self) -> None:
        """Start the governor, cap and thermal loops."""
        if self.options.governor in ("ondemand", "schedutil"):
            self.env.process(self._every(self.options.interval_s, self._govern))
        if self.cap_w is not None:
            self.env.process(self._every(self.options.cap_interval_s, self._cap))
        if self.options.thermal is not None:
            self.env.process(self._every(self.options.interval_s, self._throttle))
        if self.options.gate_after_s is not None:  # units idle from the start may sleep too
            for unit in self.states:
                self.env.timeout(self.options.gate_after_s).callbacks.append(lambda _e, u=unit: self._gate(u, 0.0))

    def run_op(self, unit: str, op: str, scheduled: str | None):
        """Run ``op`` on ``unit`` under power management (generator); returns (start, end, state)."""
        env = self.env
        if self.asleep[unit]:
            yield from self._wake(unit)
        if self.options.governor == "schedule":
            self.governed[unit] = self.level_of[unit].get(scheduled, self.nominal_level[unit])
            self._settle(unit)
        start = env.now
        running = self.running[unit] = _Running(op, env.event(), start)
        self._retime(unit)
        yield running.done
        self.running[unit] = None
        self.progress += 1
        self.busy_acc[unit] += env.now - max(start, self.window_start)
        self.idle_since[unit] = env.now
        self._set_power(unit, self.states[unit][self.level[unit]].static_power_w)
        if self.options.gate_after_s is not None:
            env.timeout(self.options.gate_after_s).callbacks.append(lambda _e, t=env.now: self._gate(unit, t))
        return start, env.now, self.states[unit][self.level[unit]].name

    # -- state changes -----------------------------------------------------------------------
    def _settle(self, unit: str) -> None:
        """Apply the lowest of the governor's choice, the cap's limit and the thermal limit."""
        level = min(self.governed[unit], self.cap_limit[unit], self.thermal_limit[unit])
        if level == self.level[unit]:
            return
        self.level[unit] = level
        self.freq_log.append((self.env.now, unit, self.states[unit][level].freq_hz))
        if self.running[unit] is not None:
            self._retime(unit, self.options.transition_s)
        elif not self.asleep[unit]:
            self._set_power(unit, self.states[unit][level].static_power_w)

    def _retime(self, unit: str, stall: float = 0.0) -> None:
        """The running op's remaining work at the unit's current state; a new finish timer."""
        running, now = self.running[unit], self.env.now
        if running.cost is not None and running.duration > 0:
            running.fraction = min(1.0, running.fraction + max(0.0, now - running.since) / running.duration)
        state = self.states[unit][self.level[unit]]
        running.cost = self.cost.op_cost_at(running.op, unit, state.name)
        running.duration = running.cost.total_s
        running.since = now + stall
        running.timer += 1
        remaining = stall + (1.0 - running.fraction) * running.duration
        self._set_power(unit, state.power_w(running.cost.activity))
        timer = running.timer
        self.env.timeout(remaining).callbacks.append(lambda _e: self._finish(unit, running, timer))

    def _finish(self, unit: str, running: _Running, timer: int) -> None:
        if self.running[unit] is running and running.timer == timer and not running.done.triggered:
            running.done.succeed()

    def _set_power(self, unit: str, watts: float) -> None:
        if unit in self.temp:
            self._heat(unit)
        self.power[unit] = watts
        self.power_log.append((self.env.now, unit, watts))

    def _gate(self, unit: str, idle_from: float) -> None:
        if self.running[unit] is None and self.idle_since[unit] == idle_from and not self.asleep[unit]:
            self.asleep[unit] = True
            self._set_power(unit, self.options.sleep_fraction * self.states[unit][0].static_power_w)

    def _wake(self, unit: str):
        self.asleep[unit] = False
        wake = self.options.wake_s
        if wake > 0:
            self._set_power(unit, self.options.wake_j / wake)
            yield self.env.timeout(wake)
        self._set_power(unit, self.states[unit][self.level[unit]].static_power_w)

    # -- control loops -------------------------------------------------------------------------
    def _every(self, interval: float, action):
        seen = -1
        while not self.finished:
            yield self.env.timeout(interval)
            if self.finished:
                return
            # a deadlocked schedule leaves nothing running and nothing finishing: stop ticking
            idle = all(r is None for r in self.running.values())
            self._stalled = self._stalled + 1 if idle and self.progress == seen else 0
            if self._stalled > 10_000:
                self.finished = True
                return
            seen = self.progress
            action()

    def _utilization(self, unit: str, now: float) -> float:
        """Busy share of the window since the last governor tick."""
        busy = self.busy_acc[unit]
        running = self.running[unit]
        if running is not None:
            busy += now - max(running.started, self.window_start)
        self.busy_acc[unit] = 0.0
        return min(1.0, max(0.0, busy / (now - self.window_start))) if now > self.window_start else 0.0

    def _govern(self) -> None:
        now = self.env.now
        utils = {unit: self._utilization(unit, now) for unit in self.states}
        self.window_start = now
        for unit, states in self.states.items():
            util = utils[unit]
            if self.options.governor == "ondemand":
                if util > self.options.up_threshold:
                    self.governed[unit] = len(states) - 1
                elif util < LOW_THRESHOLD:
                    self.governed[unit] = max(0, self.governed[unit] - 1)
            else:
                target = SCHEDUTIL_MARGIN * states[-1].freq_hz * util
                self.governed[unit] = next((i for i, s in enumerate(states) if s.freq_hz >= target), len(states) - 1)
            self._settle(unit)

    def _cap(self) -> None:
        cap = self.cap_w
        if sum(self.power.values()) > cap:
            while sum(self.power.values()) > cap:
                movable = [u for u in self.states if self.level[u] > 0]
                if not movable:
                    return
                unit = max(movable, key=lambda u: (self.power[u], u))
                self.cap_limit[unit] = self.level[unit] - 1
                self._settle(unit)
        elif sum(self.power.values()) < (1 - self.options.hysteresis) * cap:
            for unit in sorted(self.states, key=lambda u: (self.cap_limit[u], u)):
                if self.cap_limit[unit] < len(self.states[unit]) - 1 and self._fits_one_up(unit, cap):
                    self.cap_limit[unit] += 1
                    self._settle(unit)
                    return

    def _fits_one_up(self, unit: str, cap: float) -> bool:
        states, level = self.states[unit], self.cap_limit[unit] + 1
        running = self.running[unit]
        activity = running.cost.activity if running is not None and running.cost is not None else 0.0
        after = states[level].power_w(activity)
        return sum(self.power.values()) - self.power[unit] + after <= (1 - self.options.hysteresis) * cap

    def _heat(self, unit: str) -> None:
        """Bring ``unit``'s temperature to now under the power it has drawn since the last update."""
        th, now = self.options.thermal, self.env.now
        dt = now - self._temp_at[unit]
        if dt > 0:
            steady = th.ambient_c + self.power[unit] * th.resistance_k_per_w
            tau = th.resistance_k_per_w * th.capacitance_j_per_k
            self.temp[unit] = steady + (self.temp[unit] - steady) * math.exp(-dt / tau)
            self._temp_at[unit] = now

    def _throttle(self) -> None:
        th = self.options.thermal
        for unit in sorted(self.thermal_units):
            self._heat(unit)
            self.temp_log.append((self.env.now, unit, self.temp[unit]))
            if self.temp[unit] >= th.limit_c and self.level[unit] > 0:
                self.thermal_limit[unit] = self.level[unit] - 1
                self._settle(unit)
            elif self.temp[unit] <= th.resume and self.thermal_limit[unit] < len(self.states[unit]) - 1:
                self.thermal_limit[unit] += 1
                self._settle(unit)
