"""Power management in the engine: governors, the package cap, re-timing, gating and throttling."""

from __future__ import annotations

import pytest
from hetsim_testing import two_unit_dict

import hetsim
from hetsim.cost.model import CostModel
from hetsim.errors import ScenarioError
from hetsim.graph.schema import add_op, new_graph
from hetsim.spec.loader import platform_from_dict


def compute_op(g, name: str, flop: float = 2e9):
    add_op(g, name, op="matmul", flop=flop, bytes_read=1e3, dtype="fp32")


def package_power(trace, units) -> list[tuple[float, float]]:
    """(time, total W) steps of the units' summed power."""
    level = dict.fromkeys(units, 0.0)
    steps = []
    for s in trace.power:
        level[s.unit] = s.power_w
        if steps and steps[-1][0] == s.time_s:
            steps.pop()
        steps.append((s.time_s, sum(level.values())))
    return steps


def test_a_cap_steps_a_running_op_down_and_retimes_it_by_hand():
    # u0 runs a compute-bound op at p0 (1 GHz, 100 W busy); u1 idles (10 W). At the first control
    # tick (0.5 s) 110 W > 50 W: u0 steps to p1 (500 MHz): its remaining 3/4 takes twice as long
    platform = platform_from_dict(two_unit_dict())
    g = new_graph("one")
    compute_op(g, "x")
    cost = CostModel(g, platform)
    hi, lo = cost.op_cost_at("x", "u0", "p0").total_s, cost.op_cost_at("x", "u0", "p1").total_s
    assert lo == pytest.approx(2 * hi)
    r = hetsim.simulate(g, platform, "single", scheduler_options={"unit": "u0"},
                        sim={"power": {"cap": "50 W", "cap_interval": "0.5 s"}})
    assert r.makespan_s == pytest.approx(0.5 + (1 - 0.5 / hi) * lo)
    assert [(f.time_s, f.unit, f.freq_hz) for f in r.trace.frequency if f.unit == "u0"][:2] == [
        (0.0, "u0", 1e9), (0.5, "u0", 5e8)]


@pytest.mark.parametrize("cap", [300.0, 450.0, 650.0])
def test_package_power_exceeds_the_cap_for_at_most_one_control_interval(cap):
    g = hetsim.model_graph("llama-3-8b", phase="prefill", batch=1, seq_len=1024)
    interval = 1e-3
    r = hetsim.simulate(g, "gh200", "eft", sim={"power": {"cap": f"{cap} W", "cap_interval": "1 ms"}})
    steps = package_power(r.trace, [u.name for u in r.platform.units])
    above_since = None
    for (t, watts), (t_next, _) in zip(steps, [*steps[1:], (r.makespan_s, 0.0)], strict=True):
        if watts > cap + 1e-9:
            above_since = t if above_since is None else above_since
            assert t_next - above_since <= interval + 1e-9, f"{watts} W from {above_since} to {t_next}"
        else:
            above_since = None
    plain = hetsim.simulate(g, "gh200", "eft")
    assert r.makespan_s >= plain.makespan_s * (1 - 1e-9)
    assert r.energy_j <= plain.energy_j * 1.001 or cap >= 650


def test_governors_pick_the_fastest_and_the_slowest_state():
    platform = platform_from_dict(two_unit_dict())
    g = new_graph("one")
    compute_op(g, "x")
    runs = {gov: hetsim.simulate(g, platform, "single", scheduler_options={"unit": "u0"},
                                 sim={"power": {"governor": gov}}) for gov in ("performance", "powersave")}
    assert runs["powersave"].makespan_s == pytest.approx(2 * runs["performance"].makespan_s)
    assert runs["powersave"].trace.ops[0].power_state == "p1"
    assert runs["performance"].trace.ops[0].power_state == "p0"


def test_ondemand_slows_an_idle_unit_and_keeps_a_busy_one_fast():
    platform = platform_from_dict(two_unit_dict())
    g = new_graph("chain")
    for i in range(6):
        compute_op(g, f"x{i}", flop=2e8)
        if i:
            g.add_edge(f"x{i - 1}", f"x{i}", bytes=0)
    r = hetsim.simulate(g, platform, "single", scheduler_options={"unit": "u0"},
                        sim={"power": {"governor": "ondemand", "interval": "10 ms"}})
    final = {}
    for f in r.trace.frequency:
        final[f.unit] = f.freq_hz
    assert final["u1"] == 5e8 and final["u0"] == 1e9  # u1 never works: stepped down; u0 stays fast


def test_an_idle_unit_sleeps_and_waking_costs_time_and_energy_by_hand():
    # a (u1, 1 s) -> b (u0): u0 idles from 0; after 0.2 s it sleeps at 10% of its lowest static
    # power (6 W -> 0.6 W); b waits for a's tensor (1 ms link, 0 bytes: arrives at 1.0), then u0
    # wakes for 0.1 s at 0.05 J / 0.1 s = 0.5 W before b starts at 1.1
    platform = platform_from_dict(two_unit_dict())
    g = new_graph("pair")
    add_op(g, "a", cost={"u0": 9.0, "u1": 1.0})
    add_op(g, "b", cost={"u0": 1.0, "u1": 9.0})
    g.add_edge("a", "b", bytes=0)
    r = hetsim.simulate(g, platform, "eft", sim={"power": {"gate_after": "0.2 s", "wake": "0.1 s",
                                                          "wake_energy": "0.05 J"}})
    runs = {o.op: (o.unit, o.start_s, o.end_s) for o in r.trace.ops}
    assert runs["b"] == ("u0", pytest.approx(1.1), pytest.approx(2.1))
    u0 = [(s.time_s, s.power_w) for s in r.trace.power if s.unit == "u0"]
    assert u0[:4] == [(0.0, 10.0), (0.2, pytest.approx(0.6)), (1.0, pytest.approx(0.5)), (pytest.approx(1.1), 100.0)]


def test_a_hot_unit_throttles_and_recovers():
    # one 100 W unit with R = 1 K/W, C = 0.01 J/K (tau 10 ms) heads for 125 C; limit 80 C
    platform = platform_from_dict(two_unit_dict())
    g = new_graph("long")
    compute_op(g, "x", flop=2e8)
    r = hetsim.simulate(g, platform, "single", scheduler_options={"unit": "u0"},
                        sim={"power": {"thermal": {"resistance": 1.0, "capacitance": 0.01, "limit": 80,
                                                   "units": ["u0"]}, "interval": "1 ms"}})
    temps = [t.celsius for t in r.trace.temperature if t.unit == "u0"]
    freqs = [f.freq_hz for f in r.trace.frequency if f.unit == "u0"]
    assert max(temps) >= 80 and max(temps) < 125
    assert 5e8 in freqs and freqs[0] == 1e9  # it stepped down at the limit
    plain = hetsim.simulate(g, platform, "single", scheduler_options={"unit": "u0"})
    assert r.makespan_s > plain.makespan_s


@pytest.mark.parametrize(("power", "message"), [
    ({"governor": "turbo"}, r"^sim.power.governor: got 'turbo', expected one of schedule, performance"),
    ({"cap": "5 W"}, r"^sim.power.cap: got 5 W, expected at least the platform's idle power 12 W$"),
    ({"interval": "0 s"}, r"^sim.power.interval: got 0.0, expected a positive time$"),
    ({"thermal": {"resistance": 1}}, r"^sim.power.thermal.capacitance: missing"),
    ({"wake_energy": "1 J"}, r"^sim.power.wake_energy: got energy without a wake time"),
    ({"boost": True}, r"^sim.power.boost: unknown option"),
])
def test_bad_power_options_give_one_line(power, message):
    g = new_graph("one")
    compute_op(g, "x")
    with pytest.raises(ScenarioError, match=message):
        hetsim.simulate(g, platform_from_dict(two_unit_dict()), "eft", sim={"power": power})


ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_power_cap_scenario_compares_three_caps(tmp_path, capsys):
    import json

    from hetsim.cli import main

    assert main(["run", str(ROOT / "scenarios/power_cap.yaml"), "--json", "--out", str(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)["variants"]
    caps = [float(row["variant"].split("=")[1].split()[0]) for row in rows]
    assert caps == [1000.0, 600.0, 400.0]
    makespans, energies = [row["makespan_s"] for row in rows], [row["energy_j"] for row in rows]
    assert makespans[0] < makespans[1] < makespans[2] and energies[0] > energies[1] > energies[2]
    assert all(e / m <= cap for e, m, cap in zip(energies, makespans, caps, strict=True))  # average power
    assert len({row["outputs"]["summary"] for row in rows}) == 3  # one output folder per variant


@pytest.mark.slow
def test_soc_thermal_scenario_throttles_at_the_limit(tmp_path):
    import json

    from hetsim.cli import main

    assert main(["run", str(ROOT / "scenarios/soc_thermal.yaml"), "--out", str(tmp_path)]) == 0
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    temps = [e["args"]["C"] for e in events if e.get("name") == "temperature npu"]
    freqs = [e["args"]["GHz"] for e in events if e.get("name") == "frequency npu"]
    assert 85.0 <= max(temps) < 86.0  # it reaches the limit and is held there
    assert freqs[0] == 1.0 and min(freqs) == pytest.approx(0.6) and freqs[-1] == 1.0  # down, and back up
    assert (tmp_path / "power.png").stat().st_size > 10_000
