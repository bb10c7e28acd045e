"""Build a :class:`~hetsim.spec.types.Platform` from a preset name, a YAML file or a mapping.

The YAML schema (every quantity may be a unit string such as ``"3.35 TB/s"``)::

    name: gh200
    description: one line
    source: where the figures come from (keys into ``sources``)
    sources: {NV-DS: "NVIDIA GH200 datasheet ..."}
    assumptions: ["what is assumed and why"]
    power_budget: 1000 W            # optional package/module budget, at least the idle power (sum of
                                    # each unit's lowest static power)
    switches: [nvswitch]            # optional interconnect nodes that are not memories; each needs a link
    memories:
      - {name: hbm3, kind: hbm, capacity: 96 GB, bandwidth: 4 TB/s, latency: 0 s,
         efficiency: 0.9, energy_per_byte: 7 pJ/B, source: ...}
    units:
      - name: gpu
        kind: gpu
        memory: hbm3
        peak: {bf16: 989 TFLOP/s, fp32: 67 TFLOP/s}
        vector_peak: 67 TFLOP/s     # optional, for non-matrix ops
        ref_freq: 1830 MHz          # optional, defaults to the first power state's frequency
        efficiency: {default: 0.8}  # or one number
        overhead: 4 us
        ops: [matmul, ...]          # optional, all op kinds when absent
        overheads: {view: 1 us}     # optional per-op-kind overheads (calibrated profiles)
        curves:                     # optional measured throughput per kind or kind:dtype
          matmul:fp32: {x: flop, points: [[1.0e6, 20 GFLOP/s], [1.0e9, 110 GFLOP/s]]}
          elementwise: {x: bytes, points: [[4 kB, 2 GB/s], [400 MB, 9 GB/s]]}
        onchip: {capacity: 50 MB, bandwidth: 5.5 TB/s}   # optional: the last on-chip level before
                                    # DRAM (GPU L2, TPU CMEM/VMEM, NPU SRAM); matmul and attention
                                    # then pay DRAM re-reads (hetsim.cost.traffic); bandwidth optional
        kernels: h100-sxm5          # optional kernel-level GPU model (hetsim.spec.kernels): a mapping,
                                    # or a packaged fitted one (a100-80gb, h100-sxm5)
        power_states:               # fastest first; distinct frequencies; voltage, static and dynamic
                                    # power must not fall as the frequency rises
          - {name: p0, freq: 1830 MHz, voltage: 1.0 V, static_power: 75 W, dynamic_power: 625 W}
        source: ...
    links:
      - {name: c2c, a: lpddr5x, b: hbm3, bandwidth: 450 GB/s, latency: 1 us, duplex: true,
         efficiency: 0.9, energy_per_byte: 10 pJ/B, source: ...}
    manifest: {device: ..., torch: ..., threads: 1, date: ...}   # calibrated profiles only
    collectives: {bus_efficiency: {nvlink: 0.9}, nvls: true}      # optional NCCL model constants
                                    # (hetsim.spec.nccl); absent: NCCL 2.20's own defaults
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from hetsim.errors import SpecError
from hetsim.spec.kernels import GpuKernels, fitted_kernels, parse_kernels
from hetsim.spec.nccl import parse_nccl
from hetsim.spec.types import ComputeUnit, Curve, Link, Memory, Platform, PowerState, _frozen
from hetsim.units import parse_positive

_PRESET_PACKAGE = "hetsim.spec.presets"


def list_presets() -> list[str]:
    """Names of the built-in platform presets, sorted.

    Examples
    --------
    >>> "gh200" in list_presets()
    True
    """
    files = resources.files(_PRESET_PACKAGE).iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".yaml"))


def preset_path(name: str):
    """The packaged YAML file of preset ``name``."""
    path = resources.files(_PRESET_PACKAGE) / f"{name}.yaml"
    if not path.is_file():
        raise SpecError(f"platform: got {name!r}, expected a preset name ({', '.join(list_presets())}) "
                        "or a path to a platform YAML file")
    return path


def read_yaml(path: Path | Any, field: str) -> Any:
    """Read a YAML file, turning I/O and syntax problems into one-line errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{field}: cannot read {str(path)!r} ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SpecError(f"{field}: {str(path)!r}{where} is not valid YAML") from None


def load_platform(spec: str | Path | Mapping[str, Any] | Platform) -> Platform:
    """Load a platform from a preset name, a YAML path, a mapping, or return a Platform as is.

    Examples
    --------
    >>> load_platform("gh200").unit("gpu").kind
    'gpu'
    """
    if isinstance(spec, Platform):
        return spec
    if isinstance(spec, Mapping):
        return platform_from_dict(spec)
    if isinstance(spec, Path) or (isinstance(spec, str) and spec.endswith((".yaml", ".yml"))):
        path = Path(spec)
        if not path.is_file():
            raise SpecError(f"platform: got {str(spec)!r}, expected an existing platform YAML file")
        data = read_yaml(path, "platform")
    elif isinstance(spec, str):
        data = read_yaml(preset_path(spec), "platform")
    else:
        raise SpecError(f"platform: got {spec!r}, expected a preset name, a YAML path or a mapping")
    return platform_from_dict(data)


class _Fields:
    """Reads one YAML mapping, tracking the dotted field name for error messages."""

    def __init__(self, data: Any, where: str, allowed: set[str]):
        if not isinstance(data, Mapping):
            raise SpecError(f"{where}: got {data!r}, expected a mapping")
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise SpecError(f"{where}.{unknown[0]}: unknown field, expected one of {', '.join(sorted(allowed))}")
        self.data, self.where = data, where

    def name(self, key: str) -> str:
        return f"{self.where}.{key}"

    def required(self, key: str) -> Any:
        if key not in self.data or self.data[key] is None:
            raise SpecError(f"{self.name(key)}: missing, this field is required")
        return self.data[key]

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default) if default is not None else self.required(key)
        if not isinstance(value, str) or not value:
            raise SpecError(f"{self.name(key)}: got {value!r}, expected a non-empty string")
        return value

    def quantity(self, key: str, dimension: str, default: Any = None, *, allow_zero: bool = False) -> Any:
        value = self.data.get(key, default)
        if value is None:
            if default is None and key not in self.data:
                return None
            raise SpecError(f"{self.name(key)}: missing, this field is required")
        return parse_positive(value, dimension, self.name(key), allow_zero=allow_zero)

    def fraction(self, key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            raise SpecError(f"{self.name(key)}: got {value!r}, expected a fraction in (0, 1]")
        return float(value)


def _memory(data: Any, i: int) -> Memory:
    f = _Fields(data, f"memories[{i}]", {"name", "kind", "capacity", "bandwidth", "latency", "efficiency",
                                          "energy_per_byte", "source"})
    name = f.text("name")
    f.where = f"memories.{name}"
    return Memory(
        name=name,
        kind=f.text("kind", "dram"),
        capacity_bytes=f.quantity("capacity", "bytes", f.required("capacity")),
        bandwidth_bytes_per_s=f.quantity("bandwidth", "bandwidth", f.required("bandwidth")),
        latency_s=f.quantity("latency", "time", 0.0, allow_zero=True),
        efficiency=f.fraction("efficiency", data.get("efficiency", 1.0)),
        energy_per_byte_j=f.quantity("energy_per_byte", "energy_per_byte", 0.0, allow_zero=True),
        source=str(data.get("source", "")),
    )


def _power_state(data: Any, where: str) -> PowerState:
    f = _Fields(data, where, {"name", "freq", "voltage", "static_power", "dynamic_power"})
    return PowerState(
        name=f.text("name"),
        freq_hz=f.quantity("freq", "frequency", f.required("freq")),
        voltage_v=f.quantity("voltage", "voltage", f.required("voltage")),
        static_power_w=f.quantity("static_power", "power", f.required("static_power"), allow_zero=True),
        dynamic_power_w=f.quantity("dynamic_power", "power", f.required("dynamic_power"), allow_zero=True),
    )


def _mhz(freq_hz: float) -> str:
    return f"{freq_hz / 1e6:g} MHz"


#: what must not fall as the clock rises, with its unit symbol
_MONOTONIC = (("voltage", "voltage_v", "V"), ("static_power", "static_power_w", "W"),
              ("dynamic_power", "dynamic_power_w", "W"))


def _check_power_states(states: tuple[PowerState, ...], where: str) -> None:
    """A unit's V/f table, taken in order of frequency, must be a real DVFS curve.

    Frequencies are distinct, and voltage, static and dynamic power never fall as the clock
    rises (a higher clock at a lower voltage is refused). ``where`` is ``units.<name>.power_states``.
    """
    index = {id(s): j for j, s in enumerate(states)}
    by_freq = sorted(states, key=lambda s: (s.freq_hz, index[id(s)]))
    for low, high in pairwise(by_freq):
        at = f"{where}[{index[id(high)]}]"
        if high.freq_hz == low.freq_hz:
            raise SpecError(f"{at}.freq: got {_mhz(high.freq_hz)} for state {high.name!r}, expected a frequency "
                            f"no other state of the unit has (state {low.name!r} runs at {_mhz(low.freq_hz)})")
        for key, attr, symbol in _MONOTONIC:
            lo, hi = getattr(low, attr), getattr(high, attr)
            if hi < lo:
                raise SpecError(f"{at}.{key}: got {hi:g} {symbol} for state {high.name!r} at {_mhz(high.freq_hz)}, "
                                f"expected at least {lo:g} {symbol}, what the slower state {low.name!r} "
                                f"({_mhz(low.freq_hz)}) has: {key.replace('_', ' ')} must not fall as the clock rises")


def _check_budget(budget: float | None, raw: Any, units: tuple[ComputeUnit, ...]) -> None:
    """A package power budget (cap) below the platform's idle power could never be met."""
    if budget is None:
        return
    idle = math.fsum(u.min_static_power_w for u in units)
    if budget < idle:
        raise SpecError(f"platform.power_budget: got {raw!r} ({budget:g} W), expected at least the platform's "
                        f"idle power {idle:g} W (the sum of each unit's lowest static power): "
                        "a cap below idle power cannot be met")


def _unit(data: Any, i: int, memories: Mapping[str, Memory]) -> ComputeUnit:
    f = _Fields(data, f"units[{i}]", {"name", "kind", "memory", "peak", "vector_peak", "ref_freq", "efficiency",
                                       "overhead", "overheads", "curves", "ops", "power_states", "onchip", "source",
                                       "kernels"})
    name = f.text("name")
    f.where = f"units.{name}"
    memory = f.text("memory")
    if memory not in memories:
        raise SpecError(f"{f.name('memory')}: got {memory!r}, expected one of {', '.join(sorted(memories))}")
    peak_raw = f.required("peak")
    if not isinstance(peak_raw, Mapping) or not peak_raw:
        raise SpecError(f"{f.name('peak')}: got {peak_raw!r}, expected a mapping dtype -> FLOP/s")
    peak = {str(k): parse_positive(v, "flop_rate", f"{f.name('peak')}.{k}") for k, v in peak_raw.items()}
    eff_raw = data.get("efficiency", 1.0)
    eff_map = eff_raw if isinstance(eff_raw, Mapping) else {"default": eff_raw}
    efficiency = {str(k): f.fraction(f"efficiency.{k}", v) for k, v in eff_map.items()}
    efficiency.setdefault("default", 1.0)
    states_raw = f.required("power_states")
    if not isinstance(states_raw, list) or not states_raw:
        raise SpecError(f"{f.name('power_states')}: got {states_raw!r}, expected a non-empty list")
    states = tuple(_power_state(s, f"{f.name('power_states')}[{j}]") for j, s in enumerate(states_raw))
    if len({s.name for s in states}) != len(states):
        raise SpecError(f"{f.name('power_states')}: state names repeat, expected unique names")
    _check_power_states(states, f.name("power_states"))
    ops = data.get("ops")
    if ops is not None and (not isinstance(ops, list) or not all(isinstance(o, str) for o in ops)):
        raise SpecError(f"{f.name('ops')}: got {ops!r}, expected a list of op kinds")
    onchip_bytes, onchip_bandwidth = _onchip(data.get("onchip"), f.name("onchip"))
    return ComputeUnit(
        name=name,
        kind=f.text("kind"),
        memory=memory,
        peak_flop_per_s=_frozen(peak),
        ref_freq_hz=f.quantity("ref_freq", "frequency", states[0].freq_hz),
        power_states=states,
        vector_flop_per_s=f.quantity("vector_peak", "flop_rate"),
        compute_efficiency=_frozen(efficiency),
        overhead_s=f.quantity("overhead", "time", 0.0, allow_zero=True),
        op_kinds=None if ops is None else frozenset(ops),
        overheads=_frozen(_overheads(data.get("overheads"), f.name("overheads"))),
        curves=_frozen(_curves(data.get("curves"), f.name("curves"))),
        source=str(data.get("source", "")),
        onchip_bytes=onchip_bytes,
        onchip_bandwidth_bytes_per_s=onchip_bandwidth,
        kernels=_kernels(data.get("kernels"), f.name("kernels"), memories[memory]),
    )


def _kernels(raw: Any, where: str, memory: Memory) -> GpuKernels | None:
    """A unit's kernel model: a mapping, or the name of a packaged fitted one (for its memory)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        return fitted_kernels(raw, memory.bandwidth_bytes_per_s, where)
    return parse_kernels(raw, where)


def _onchip(raw: Any, where: str) -> tuple[float | None, float | None]:
    """``onchip: {capacity: 50 MB, bandwidth: 5.5 TB/s}`` -> (bytes, bytes/s); both ``None`` when absent."""
    if raw is None:
        return None, None
    f = _Fields(raw, where, {"capacity", "bandwidth"})
    return f.quantity("capacity", "bytes", f.required("capacity")), f.quantity("bandwidth", "bandwidth")


def _overheads(raw: Any, where: str) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: got {raw!r}, expected a mapping op kind -> time")
    return {str(k): parse_positive(v, "time", f"{where}.{k}", allow_zero=True) for k, v in raw.items()}


#: what a curve's size counts, and the dimension of its rate
_CURVE_X = {"flop": "flop_rate", "bytes": "bandwidth"}


def _curves(raw: Any, where: str) -> dict[str, Curve]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: got {raw!r}, expected a mapping op kind -> {{x, points}}")
    curves = {}
    for key, spec in raw.items():
        name = f"{where}.{key}"
        if not isinstance(spec, Mapping) or spec.get("x") not in _CURVE_X:
            raise SpecError(f"{name}: got {spec!r}, expected {{x: flop or bytes, points: [[size, rate], ...]}}")
        points = spec.get("points")
        if not isinstance(points, list) or not points or not all(isinstance(p, list) and len(p) == 2 for p in points):
            raise SpecError(f"{name}.points: got {points!r}, expected a non-empty list of [size, rate] pairs")
        size_dim = "bytes" if spec["x"] == "bytes" else None  # a FLOP count is a bare number
        sizes = [parse_positive(size, size_dim, f"{name}.points[{j}][0]") if size_dim
                 else _positive_number(size, f"{name}.points[{j}][0]") for j, (size, _) in enumerate(points)]
        rates = [parse_positive(rate, _CURVE_X[spec["x"]], f"{name}.points[{j}][1]")
                 for j, (_, rate) in enumerate(points)]
        if any(b <= a for a, b in pairwise(sizes)):
            raise SpecError(f"{name}.points: got sizes {sizes!r}, expected strictly increasing sizes")
        curves[str(key)] = Curve(spec["x"], tuple(sizes), tuple(rates))
    return curves


def _positive_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise SpecError(f"{where}: got {value!r}, expected a positive number")
    return float(value)


def _link(data: Any, i: int, nodes: set[str], unit_memory: Mapping[str, str]) -> Link:
    f = _Fields(data, f"links[{i}]", {"name", "a", "b", "bandwidth", "latency", "duplex", "efficiency",
                                       "energy_per_byte", "source"})
    name = f.text("name")
    f.where = f"links.{name}"
    ends = []
    for key in ("a", "b"):
        end = f.text(key)
        if end not in nodes:
            raise SpecError(f"{f.name(key)}: got {end!r}, expected {_expected_endpoint(end, nodes, unit_memory)}")
        ends.append(end)
    if ends[0] == ends[1]:
        raise SpecError(f"{f.name('b')}: got {ends[1]!r}, expected an endpoint other than a")
    duplex = data.get("duplex", True)
    if not isinstance(duplex, bool):
        raise SpecError(f"{f.name('duplex')}: got {duplex!r}, expected true or false")
    return Link(
        name=name,
        a=ends[0],
        b=ends[1],
        bandwidth_bytes_per_s=f.quantity("bandwidth", "bandwidth", f.required("bandwidth")),
        latency_s=f.quantity("latency", "time", 0.0, allow_zero=True),
        duplex=duplex,
        efficiency=f.fraction("efficiency", data.get("efficiency", 1.0)),
        energy_per_byte_j=f.quantity("energy_per_byte", "energy_per_byte", 0.0, allow_zero=True),
        source=str(data.get("source", "")),
    )


def _expected_endpoint(end: str, nodes: set[str], unit_memory: Mapping[str, str]) -> str:
    if end in unit_memory:
        return f"a memory or switch, not a unit (unit {end!r} works in memory {unit_memory[end]!r})"
    return f"a memory or switch ({_some(sorted(nodes))})"


def _some(names: list[str], limit: int = 12) -> str:
    """At most ``limit`` names, so that a 64-chip platform still gives a readable line."""
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])}, ... ({len(names)} in all)"


def _unique(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SpecError(f"{where}: name {name!r} repeats, expected unique names")
        seen.add(name)


def _list(data: Mapping, key: str, required: bool) -> list:
    value = data.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise SpecError(f"platform.{key}: got {value!r}, expected a non-empty list")
    return value


def platform_from_dict(data: Any) -> Platform:
    """Check a platform mapping (the YAML schema above) and build the Platform.

    Raises
    ------
    SpecError
        One line naming the first bad field.
    """
    f = _Fields(data, "platform", {"name", "description", "source", "sources", "assumptions", "power_budget",
                                    "switches", "memories", "units", "links", "manifest", "collectives"})
    memories = tuple(_memory(m, i) for i, m in enumerate(_list(data, "memories", True)))
    _unique([m.name for m in memories], "platform.memories")
    switches = tuple(_switch(s, i) for i, s in enumerate(_list(data, "switches", False)))
    _unique([m.name for m in memories] + list(switches), "platform.switches")
    units = tuple(_unit(u, i, {m.name: m for m in memories}) for i, u in enumerate(_list(data, "units", True)))
    _unique([u.name for u in units], "platform.units")
    nodes = {m.name for m in memories} | set(switches)
    unit_memory = {u.name: u.memory for u in units}
    links = tuple(_link(link, i, nodes, unit_memory) for i, link in enumerate(_list(data, "links", False)))
    _unique([link.name for link in links], "platform.links")
    budget = f.quantity("power_budget", "power")
    _check_budget(budget, data.get("power_budget"), units)
    sources = data.get("sources") or {}
    if not isinstance(sources, Mapping):
        raise SpecError(f"platform.sources: got {sources!r}, expected a mapping key -> citation")
    assumptions = data.get("assumptions") or []
    if not isinstance(assumptions, list):
        raise SpecError(f"platform.assumptions: got {assumptions!r}, expected a list of strings")
    platform = Platform(
        name=f.text("name"),
        units=units,
        memories=memories,
        links=links,
        switches=switches,
        power_budget_w=budget,
        description=str(data.get("description", "")),
        source=str(data.get("source", "")),
        sources=_frozen({str(k): str(v) for k, v in sources.items()}),
        assumptions=tuple(str(a) for a in assumptions),
        manifest=_frozen(_manifest(data.get("manifest"))),
        collectives=(None if data.get("collectives") is None
                     else parse_nccl(data["collectives"], "platform.collectives")),
    )
    _check_switches_used(platform)
    _check_connected(platform)
    return platform


def _manifest(raw: Any) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(f"platform.manifest: got {raw!r}, expected a mapping (device, torch, threads, date, ...)")
    return dict(raw)


def _switch(name: Any, i: int) -> str:
    if not isinstance(name, str) or not name:
        raise SpecError(f"platform.switches[{i}]: got {name!r}, expected a non-empty switch name")
    return name


def _check_switches_used(platform: Platform) -> None:
    touched = {end for link in platform.links for end in (link.a, link.b)}
    for switch in platform.switches:
        if switch not in touched:
            raise SpecError(f"platform.switches: got {switch!r}, expected a switch that at least one link joins "
                            "(no link names it as a or b)")


def _check_connected(platform: Platform) -> None:
    """Every unit's memory must be reachable by links from the first unit's memory."""
    first = platform.units[0]
    g = platform.topology
    reachable = nx.node_connected_component(g, first.memory)
    for unit in platform.units[1:]:
        if unit.memory in reachable:
            continue
        why = (f"no link touches {unit.memory!r}" if g.degree(unit.memory) == 0
               else f"its links never lead to {first.memory!r}")
        raise SpecError(f"units.{unit.name}.memory: got {unit.memory!r}, expected a memory that links connect to "
                        f"{first.memory!r} (the memory of unit {first.name}); {why}")

