"""Bad power specs give one clear line: watts, the V/f table, and a package budget below idle power."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import pytest
import yaml
from hetsim_testing import two_unit_dict

from hetsim.cli import main
from hetsim.errors import SpecError
from hetsim.spec.loader import list_presets, load_platform, platform_from_dict


def _state(d: dict, unit: int, state: int) -> dict:
    return d["units"][unit]["power_states"][state]


def _slowest_first(d: dict) -> bool:
    d["units"][0]["power_states"].reverse()
    return True


#: case -> (how to break two_unit_dict, the exact one-line message). In the fixture each unit has
#: p0 (1 GHz, 1 V, 10 W + 90 W) and p1 (500 MHz, 0.8 V, 6 W + 29 W); idle power is 2 x 6 W.
BAD: dict[str, tuple[Callable[[dict], None], str]] = {
    "negative static power": (
        lambda d: _state(d, 0, 0).update(static_power="-5 W"),
        "units.u0.power_states[0].static_power: got '-5 W', expected a non-negative power"),
    "negative dynamic power": (
        lambda d: _state(d, 1, 1).update(dynamic_power=-29.0),
        "units.u1.power_states[1].dynamic_power: got -29.0, expected a non-negative power"),
    "infinite dynamic power": (
        lambda d: _state(d, 1, 1).update(dynamic_power=float("inf")),
        "units.u1.power_states[1].dynamic_power: got inf, expected a finite power"),
    "nan static power": (
        lambda d: _state(d, 0, 1).update(static_power=float("nan")),
        "units.u0.power_states[1].static_power: got nan, expected a finite power"),
    "higher clock at a lower voltage": (
        lambda d: _state(d, 0, 0).update(voltage="0.7 V"),
        "units.u0.power_states[0].voltage: got 0.7 V for state 'p0' at 1000 MHz, expected at least 0.8 V, "
        "what the slower state 'p1' (500 MHz) has: voltage must not fall as the clock rises"),
    "higher clock at a lower static power": (
        lambda d: _state(d, 0, 0).update(static_power="5 W"),
        "units.u0.power_states[0].static_power: got 5 W for state 'p0' at 1000 MHz, expected at least 6 W, "
        "what the slower state 'p1' (500 MHz) has: static power must not fall as the clock rises"),
    "higher clock at a lower dynamic power": (
        lambda d: _state(d, 1, 0).update(dynamic_power="20 W"),
        "units.u1.power_states[0].dynamic_power: got 20 W for state 'p0' at 1000 MHz, expected at least 29 W, "
        "what the slower state 'p1' (500 MHz) has: dynamic power must not fall as the clock rises"),
    "lower state listed first, still non-monotonic": (
        lambda d: _slowest_first(d) and _state(d, 0, 1).update(voltage="0.7 V"),
        "units.u0.power_states[1].voltage: got 0.7 V for state 'p0' at 1000 MHz, expected at least 0.8 V, "
        "what the slower state 'p1' (500 MHz) has: voltage must not fall as the clock rises"),
    "duplicate state frequency": (
        lambda d: _state(d, 0, 1).update(freq="1000 MHz"),
        "units.u0.power_states[1].freq: got 1000 MHz for state 'p1', expected a frequency no other state "
        "of the unit has (state 'p0' runs at 1000 MHz)"),
    "cap below idle power": (
        lambda d: d.update(power_budget="11.5 W"),
        "platform.power_budget: got '11.5 W' (11.5 W), expected at least the platform's idle power 12 W "
        "(the sum of each unit's lowest static power): a cap below idle power cannot be met"),
    "negative cap": (
        lambda d: d.update(power_budget="-100 W"),
        "platform.power_budget: got '-100 W', expected a positive power"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_power_spec_gives_the_exact_line(case: str) -> None:
    breaks, message = BAD[case]
    data = two_unit_dict()
    breaks(data)
    with pytest.raises(SpecError) as info:
        platform_from_dict(data)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_good_tables_load_in_any_order() -> None:
    data = two_unit_dict()
    data["units"][0]["power_states"].reverse()  # slowest first is fine: the rules sort by frequency
    data["power_budget"] = "12 W"  # exactly the idle power
    p = platform_from_dict(data)
    assert p.idle_power_w == 12.0 and p.power_budget_w == 12.0
    assert p.unit("u0").min_static_power_w == 6.0


def test_equal_voltage_and_power_at_a_higher_clock_is_allowed() -> None:
    data = two_unit_dict()
    _state(data, 0, 1).update(voltage="1 V", static_power="10 W", dynamic_power="90 W")  # flat, not falling
    assert platform_from_dict(data).unit("u0").power_states[1].voltage_v == 1.0


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_obeys_the_power_rules(name: str) -> None:
    p = load_platform(name)
    for unit in p.units:
        states = sorted(unit.power_states, key=lambda s: s.freq_hz)
        assert len({s.freq_hz for s in states}) == len(states)
        for low, high in pairwise(states):
            assert high.voltage_v >= low.voltage_v
            assert high.static_power_w >= low.static_power_w
            assert high.dynamic_power_w >= low.dynamic_power_w
    assert p.power_budget_w is None or p.power_budget_w >= p.idle_power_w


def test_cli_run_with_a_bad_inline_platform_exits_2(tmp_path, capsys) -> None:
    platform = two_unit_dict()
    _state(platform, 0, 0).update(voltage="0.7 V")
    scenario = {"platform": platform, "workload": {"model": "llama-tiny", "phase": "decode", "batch": 1,
                                                    "seq_len": 16, "dtype": "fp32"},
                "outputs": {"dir": str(tmp_path / "out")}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(scenario))
    assert main(["run", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("hetsim: error: units.u0.power_states[0].voltage: got 0.7 V for state 'p0' at "
                            "1000 MHz, expected at least 0.8 V, what the slower state 'p1' (500 MHz) has: "
                            "voltage must not fall as the clock rises\n")
    assert not (tmp_path / "out").exists()
