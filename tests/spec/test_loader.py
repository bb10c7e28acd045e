"""The platform loader and quantity parser: what they accept, and the one-line errors they give."""

from __future__ import annotations

import copy

import pytest

from hetsim.errors import SpecError, UnitError
from hetsim.spec.loader import list_presets, load_platform, platform_from_dict
from hetsim.spec.types import Platform
from hetsim.units import parse, parse_positive


def base() -> dict:
    """A valid two-memory platform: u0 on m0, u1 on m1, joined by link l."""
    states = [{"name": "p0", "freq": "1 GHz", "voltage": "1 V", "static_power": "10 W", "dynamic_power": "90 W"}]
    return {
        "name": "toy",
        "memories": [{"name": "m0", "capacity": "1 GB", "bandwidth": "10 GB/s"},
                     {"name": "m1", "capacity": "2 GiB", "bandwidth": "20 GB/s", "efficiency": 0.5}],
        "units": [{"name": "u0", "kind": "cpu", "memory": "m0", "peak": {"fp32": "1 TFLOP/s"},
                   "power_states": copy.deepcopy(states)},
                  {"name": "u1", "kind": "gpu", "memory": "m1", "peak": {"bf16": "2 TFLOP/s"},
                   "efficiency": {"default": 0.5, "matmul": 0.8}, "overhead": "4 us",
                   "power_states": copy.deepcopy(states)}],
        "links": [{"name": "l", "a": "m0", "b": "m1", "bandwidth": "5 GB/s", "latency": "2 us"}],
    }


def error_of(data) -> str:
    with pytest.raises(SpecError) as info:
        platform_from_dict(data)
    message = str(info.value)
    assert "\n" not in message, "errors must be one line"
    return message


# ---------------------------------------------------------------------------------------- units


@pytest.mark.parametrize(("text", "dimension", "expected"), [
    ("3.35 TB/s", "bandwidth", 3.35e12),
    ("400 Gb/s", "bandwidth", 50e9),
    ("80 GB", "bytes", 80e9),
    ("32 GiB", "bytes", 32 * 2**30),
    ("989 TFLOP/s", "flop_rate", 989e12),
    ("45 TOPS", "flop_rate", 45e12),
    ("147.2 GOP/s", "flop_rate", 147.2e9),
    ("1830 MHz", "frequency", 1.83e9),
    ("0.9 V", "voltage", 0.9),
    ("700 W", "power", 700.0),
    ("10.2 kW", "power", 10.2e3),
    ("4 us", "time", 4e-6),
    ("0.94 us", "time", 0.94e-6),
    ("31.2 pJ/B", "energy_per_byte", 31.2e-12),
    (12.5, "power", 12.5),
])
def test_units_parse_to_si(text, dimension, expected):
    assert parse(text, dimension) == pytest.approx(expected, rel=1e-12)


def test_units_reject_a_wrong_dimension_naming_the_field():
    with pytest.raises(UnitError) as info:
        parse("3 parsecs", "bandwidth", "links.c2c.bandwidth")
    assert str(info.value) == "links.c2c.bandwidth: got '3 parsecs', expected a bandwidth such as '3.35 TB/s'"
    with pytest.raises(UnitError, match=r"^memories.hbm.capacity: got '80 GB/s', expected a bytes"):
        parse("80 GB/s", "bytes", "memories.hbm.capacity")


def test_units_reject_negative_and_zero_where_positive_is_needed():
    with pytest.raises(UnitError, match=r"^x.bandwidth: got '-5 GB/s', expected a positive bandwidth$"):
        parse_positive("-5 GB/s", "bandwidth", "x.bandwidth")
    with pytest.raises(UnitError, match="positive"):
        parse_positive("0 W", "power", "x.power")
    assert parse_positive("0 s", "time", "x.latency", allow_zero=True) == 0.0


def test_bad_unit_inside_a_platform_is_a_one_line_unit_error_naming_the_field():
    data = base()
    data["links"][0]["bandwidth"] = "3 parsecs"
    with pytest.raises(UnitError) as info:
        platform_from_dict(data)
    assert str(info.value) == "links.l.bandwidth: got '3 parsecs', expected a bandwidth such as '3.35 TB/s'"
    assert isinstance(info.value, SpecError)


# ------------------------------------------------------------------------------- valid inputs


def test_dict_loading_builds_si_values():
    p = load_platform(base())
    assert isinstance(p, Platform) and p.name == "toy"
    assert p.memory("m1").capacity_bytes == 2 * 2**30
    assert p.memory("m1").effective_bandwidth_bytes_per_s == 10e9
    u1 = p.unit("u1")
    assert u1.overhead_s == 4e-6 and u1.efficiency("matmul") == 0.8 and u1.efficiency("softmax") == 0.5
    assert u1.ref_freq_hz == 1e9  # defaults to the first power state's frequency
    assert p.unit("u0").compute_efficiency == {"default": 1.0}
    route = p.route("m0", "m1")
    assert route.links == ("l",) and route.latency_s == 2e-6 and route.bandwidth_bytes_per_s == 5e9


def test_a_platform_is_returned_as_is():
    p = load_platform(base())
    assert load_platform(p) is p


def test_yaml_file_loading_by_path_and_string(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(
        "name: toy\n"
        "memories:\n"
        "  - &mem {name: m0, capacity: 1 GB, bandwidth: 10 GB/s}\n"
        "  - {<<: *mem, name: m1}\n"
        "units:\n"
        "  - name: u0\n"
        "    kind: cpu\n"
        "    memory: m0\n"
        "    peak: {fp32: 1 TFLOP/s}\n"
        "    power_states: [{name: p0, freq: 2 GHz, voltage: 1 V, static_power: 5 W, dynamic_power: 20 W}]\n"
        "links:\n"
        "  - {name: l, a: m0, b: m1, bandwidth: 1 GB/s}\n",
        encoding="utf-8",
    )
    for spec in (path, str(path)):
        p = load_platform(spec)
        assert p.memory("m1").bandwidth_bytes_per_s == 10e9  # merged from the anchor
        assert p.unit("u0").nominal.freq_hz == 2e9


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: toy\nmemories: [\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"^platform: '.*broken\.yaml' line \d+ is not valid YAML$"):
        load_platform(path)


def test_missing_yaml_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match=r"^platform: got '.*nothere\.yaml', expected an existing platform YAML file$"):
        load_platform(str(tmp_path / "nothere.yaml"))


def test_unknown_preset_lists_the_presets():
    with pytest.raises(SpecError) as info:
        load_platform("no-such-chip")
    message = str(info.value)
    assert message.startswith("platform: got 'no-such-chip', expected a preset name (")
    for name in list_presets():
        assert name in message
    assert "gh200" in message and "\n" not in message


# ----------------------------------------------------------------------------- invalid inputs


def test_negative_bandwidth_names_the_field():
    data = base()
    data["memories"][1]["bandwidth"] = "-20 GB/s"
    assert error_of(data) == "memories.m1.bandwidth: got '-20 GB/s', expected a positive bandwidth"


def test_missing_required_field_names_it():
    data = base()
    del data["memories"][0]["capacity"]
    assert error_of(data) == "memories.m0.capacity: missing, this field is required"


@pytest.mark.parametrize(("where", "field", "prefix", "known"), [
    (None, "colour", "platform.colour", "memories"),
    ("memories", "bandwith", "memories[0].bandwith", "bandwidth"),
    ("units", "peek", "units[0].peek", "peak"),
    ("links", "latncy", "links[0].latncy", "latency"),
])
def test_unknown_field_is_named_with_the_known_ones(where, field, prefix, known):
    data = base()
    (data if where is None else data[where][0])[field] = 1
    message = error_of(data)
    assert message.startswith(f"{prefix}: unknown field, expected one of ")
    assert known in message.split("expected one of ")[1].split(", ")


def test_unit_on_an_unknown_memory():
    data = base()
    data["units"][1]["memory"] = "m9"
    assert error_of(data) == "units.u1.memory: got 'm9', expected one of m0, m1"


def test_link_to_an_unknown_endpoint():
    data = base()
    data["links"][0]["b"] = "m9"
    assert error_of(data) == "links.l.b: got 'm9', expected a memory or switch (m0, m1)"


def test_link_to_itself():
    data = base()
    data["links"][0]["b"] = "m0"
    assert error_of(data) == "links.l.b: got 'm0', expected an endpoint other than a"


def test_disconnected_memories():
    data = base()
    data["links"] = []
    assert error_of(data) == ("units.u1.memory: got 'm1', expected a memory that links connect to 'm0' "
                              "(the memory of unit u0); no link touches 'm1'")


def test_memories_nobody_uses_may_stay_disconnected():
    data = base()
    data["memories"].append({"name": "spare", "capacity": "1 GB", "bandwidth": "1 GB/s"})
    assert platform_from_dict(data).memory("spare").capacity_bytes == 1e9


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d["memories"].append(dict(d["memories"][0])), "platform.memories: name 'm0' repeats"),
    (lambda d: d["units"].append({**d["units"][0]}), "platform.units: name 'u0' repeats"),
    (lambda d: d["links"].append(dict(d["links"][0])), "platform.links: name 'l' repeats"),
    (lambda d: d.update(switches=["m1"]), "platform.switches: name 'm1' repeats"),
])
def test_duplicate_names(mutate, expected):
    data = base()
    mutate(data)
    assert error_of(data) == f"{expected}, expected unique names"


def test_duplicate_power_state_names():
    data = base()
    data["units"][0]["power_states"].append(dict(data["units"][0]["power_states"][0]))
    assert error_of(data) == "units.u0.power_states: state names repeat, expected unique names"


def test_efficiency_must_be_a_fraction():
    data = base()
    data["units"][1]["efficiency"] = {"matmul": 1.5}
    assert error_of(data) == "units.u1.efficiency.matmul: got 1.5, expected a fraction in (0, 1]"
    data = base()
    data["memories"][0]["efficiency"] = 0
    assert error_of(data) == "memories.m0.efficiency: got 0, expected a fraction in (0, 1]"


def test_peak_must_be_a_mapping_of_rates():
    data = base()
    data["units"][0]["peak"] = "1 TFLOP/s"
    assert error_of(data).startswith("units.u0.peak: got '1 TFLOP/s', expected a mapping dtype -> FLOP/s")
    data = base()
    data["units"][0]["peak"] = {"fp32": "1 GB/s"}
    assert error_of(data) == "units.u0.peak.fp32: got '1 GB/s', expected a flop rate such as '989 TFLOP/s'"


def test_duplex_must_be_a_boolean():
    data = base()
    data["links"][0]["duplex"] = "yes"
    assert error_of(data) == "links.l.duplex: got 'yes', expected true or false"


def test_assumptions_must_be_a_list():
    data = base()
    data["assumptions"] = "one sentence"
    assert error_of(data) == "platform.assumptions: got 'one sentence', expected a list of strings"
    data["assumptions"] = ["one sentence"]
    assert platform_from_dict(data).assumptions == ("one sentence",)


def test_not_a_mapping():
    assert error_of(None) == "platform: got None, expected a mapping"
    with pytest.raises(SpecError, match=r"^platform: got 42, expected a preset name, a YAML path or a mapping$"):
        load_platform(42)


def test_unknown_names_on_a_loaded_platform_are_spec_errors():
    p = platform_from_dict(base())
    with pytest.raises(SpecError, match=r"^unit: got 'u9', expected one of u0, u1$"):
        p.unit("u9")
    with pytest.raises(SpecError, match=r"^memory: got 'm9', expected one of m0, m1$"):
        p.memory("m9")
    with pytest.raises(SpecError, match=r"^link: got 'l9', expected one of l$"):
        p.link("l9")
    with pytest.raises(SpecError, match=r"^units.u0.power_state: got 'p9', expected one of p0$"):
        p.unit("u0").state("p9")
