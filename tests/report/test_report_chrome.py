"""Chrome Trace Event export and its strict checker."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest

from hetsim.report import check_chrome_trace, chrome_trace, write_chrome_trace
from hetsim.report.chrome import assign_lanes
from hetsim.sim.trace import OpRun, PowerSample, TransferRun


def _slices(obj, pid=None):
    return [e for e in obj["traceEvents"] if e["ph"] == "X" and (pid is None or e["pid"] == pid)]


def _thread_names(obj, pid):
    return {e["tid"]: e["args"]["name"] for e in obj["traceEvents"] if e["ph"] == "M"
            and e["name"] == "thread_name" and e["pid"] == pid}


def test_trace_passes_checker_and_is_json(trace, platform, graph):
    obj = chrome_trace(trace, platform, graph)
    check_chrome_trace(obj)
    check_chrome_trace(json.loads(json.dumps(obj)))
    assert obj["displayTimeUnit"] == "ns"
    assert obj["otherData"]["makespan_s"] == 4.0


def test_processes_and_threads_are_named(trace, platform, graph):
    obj = chrome_trace(trace, platform, graph)
    processes = {e["pid"]: e["args"]["name"] for e in obj["traceEvents"]
                 if e["ph"] == "M" and e["name"] == "process_name"}
    assert processes == {1: "units", 2: "links", 3: "power", 4: "memory"}
    assert _thread_names(obj, 1) == {1: "cpu", 2: "gpu"}
    assert _thread_names(obj, 2) == {1: "c2c"}


def test_op_slices_in_microseconds_with_args(trace, platform, graph):
    obj = chrome_trace(trace, platform, graph)
    ops = {e["name"]: e for e in _slices(obj, pid=1)}
    assert set(ops) == {"a", "b", "c", "d"}
    c = ops["c"]
    assert (c["ts"], c["dur"], c["tid"], c["cat"]) == (1e6, 2e6, 1, "matmul")
    assert c["args"] == {"flop": 3e9, "bytes": 2e9, "power_state": "p0", "module": "layers.0.mlp"}
    assert ops["d"]["tid"] == 2 and ops["d"]["ts"] == pytest.approx(3.25e6)


def test_without_graph_category_is_generic(trace, platform):
    obj = chrome_trace(trace, platform)
    check_chrome_trace(obj)
    assert {e["cat"] for e in _slices(obj, pid=1)} == {"op"}


def test_transfers_are_slices_on_every_link_of_route(trace, platform, graph):
    obj = chrome_trace(trace, platform, graph)
    links = _slices(obj, pid=2)
    assert [(e["name"], e["ts"], e["dur"]) for e in links] == [("a -> b", 1e6, 0.5e6), ("c -> d", 3e6, 0.25e6)]
    assert links[0]["args"]["bytes"] == 1e9


def test_overlapping_transfers_get_separate_lanes(trace, platform, graph):
    crowded = replace(trace, transfers=(
        TransferRun("a", "b", "ddr", "hbm", ("c2c",), 1.0, 1.5, 1e9),
        TransferRun("a", "x", "ddr", "hbm", ("c2c",), 1.2, 1.8, 1e9),
        TransferRun("a", "y", "ddr", "hbm", ("c2c",), 1.3, 1.4, 1e9),  # inside both: needs a third lane
        TransferRun("c", "d", "ddr", "hbm", ("c2c",), 1.5, 2.0, 1e9),  # starts as the first ends: lane 1
    ))
    obj = chrome_trace(crowded, platform, graph)
    check_chrome_trace(obj)
    lanes = {e["name"]: e["tid"] for e in _slices(obj, pid=2)}
    assert lanes == {"a -> b": 1, "a -> x": 2, "a -> y": 3, "c -> d": 1}
    assert _thread_names(obj, 2) == {1: "c2c", 2: "c2c #2", 3: "c2c #3"}
    # putting them all on one thread is exactly what the checker must refuse
    for e in obj["traceEvents"]:
        if e["ph"] == "X" and e["pid"] == 2:
            e["tid"] = 1
    with pytest.raises(ValueError, match="partially overlap"):
        check_chrome_trace(obj)


def test_overlapping_ops_on_one_unit_also_get_lanes(trace, platform):
    clash = replace(trace, ops=(*trace.ops, OpRun("e", "cpu", 0.5, 1.5, "p0", 0.0, 0.0)))
    obj = chrome_trace(clash, platform)
    check_chrome_trace(obj)
    assert _thread_names(obj, 1) == {1: "cpu", 2: "cpu #2", 3: "gpu"}


def test_power_counters_end_with_a_sample_at_makespan(trace, platform):
    obj = chrome_trace(trace, platform)
    cpu = [(e["ts"], e["args"]["W"]) for e in obj["traceEvents"] if e["ph"] == "C" and e["name"] == "power cpu"]
    assert cpu == [(0.0, 300.0), (3e6, 100.0), (4e6, 100.0)]
    gpu = [(e["ts"], e["args"]["W"]) for e in obj["traceEvents"] if e["ph"] == "C" and e["name"] == "power gpu"]
    assert gpu == [(0.0, 50.0), (4e6, 50.0)]  # no samples: nominal static power
    assert {e["pid"] for e in obj["traceEvents"] if e["ph"] == "C" and e["name"].startswith("power")} == {3}


def test_same_time_power_samples_collapse_to_the_last(trace, platform):
    doubled = replace(trace, power=(PowerSample(0.0, "cpu", 1.0), PowerSample(0.0, "cpu", 300.0)))
    obj = chrome_trace(doubled, platform)
    check_chrome_trace(obj)
    cpu = [(e["ts"], e["args"]["W"]) for e in obj["traceEvents"] if e["ph"] == "C" and e["name"] == "power cpu"]
    assert cpu == [(0.0, 300.0), (4e6, 300.0)]


def test_memory_counters_in_gigabytes(trace, platform):
    obj = chrome_trace(trace, platform)
    ddr = [(e["ts"], e["args"]["GB"]) for e in obj["traceEvents"] if e["ph"] == "C" and e["name"] == "memory ddr"]
    assert ddr == [(0.0, 1.0), (1e6, 3.0), (3e6, 2.0), (4e6, 2.0)]
    assert not [e for e in obj["traceEvents"] if e["ph"] == "C" and e["name"] == "memory sram"]


def test_export_is_deterministic(trace, platform, graph):
    reordered = replace(trace, ops=tuple(reversed(trace.ops)), transfers=tuple(reversed(trace.transfers)))
    assert json.dumps(chrome_trace(trace, platform, graph)) == json.dumps(chrome_trace(reordered, platform, graph))


def test_write_chrome_trace(tmp_path, trace, platform, graph):
    path = write_chrome_trace(trace, platform, tmp_path / "t.json", graph)
    check_chrome_trace(json.loads(path.read_text()))
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_assign_lanes_is_greedy_and_touching_is_fine():
    assert assign_lanes([]) == []
    assert assign_lanes([(0, 1), (1, 2), (2, 3)]) == [0, 0, 0]
    # taken by start: (2, 5) reuses lane 1 freed at 2, so (3, 4) needs lane 2
    assert assign_lanes([(0, 10), (1, 2), (3, 4), (2, 5)]) == [0, 1, 2, 1]


# --- the checker on bad input ---------------------------------------------------------------------

GOOD = {"traceEvents": [
    {"name": "process_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": "units"}},
    {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "cpu"}},
    {"name": "outer", "ph": "X", "ts": 0.0, "dur": 10.0, "pid": 1, "tid": 1},
    {"name": "inner", "ph": "X", "ts": 2.0, "dur": 3.0, "pid": 1, "tid": 1},
    {"name": "next", "ph": "X", "ts": 10.0, "dur": 1.0, "pid": 1, "tid": 1},
    {"name": "power cpu", "ph": "C", "ts": 0.0, "pid": 3, "args": {"W": 100.0}},
    {"name": "power cpu", "ph": "C", "ts": 5.0, "pid": 3, "args": {"W": 50}},
]}


def _bad(index, **changes):
    obj = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is None:
            del obj["traceEvents"][index][key]
        else:
            obj["traceEvents"][index][key] = value
    return obj


def test_checker_accepts_nested_disjoint_and_touching():
    check_chrome_trace(copy.deepcopy(GOOD))
    check_chrome_trace(copy.deepcopy(GOOD["traceEvents"]))


def test_checker_tolerates_float_noise_at_edges():
    obj = copy.deepcopy(GOOD)
    obj["traceEvents"][4]["ts"] = 10.0 - 1e-9  # starts a hair before "outer" ends
    check_chrome_trace(obj)


@pytest.mark.parametrize(("obj", "reason"), [
    (_bad(3, ts=8.0), "partially overlap"),  # inner now sticks out of outer
    (_bad(4, ts=9.5), "partially overlap"),
    (_bad(2, dur=None), "'dur'"),
    (_bad(2, tid=None), "'tid'"),
    (_bad(2, name=None), "'name'"),
    (_bad(2, pid=None), "'pid'"),
    (_bad(2, dur=-1.0), "dur"),
    (_bad(2, ts=-0.5), "ts"),
    (_bad(2, ts="0"), "ts"),
    (_bad(2, ts=True), "ts"),
    (_bad(2, tid="1"), "tid"),
    (_bad(2, name=""), "name"),
    (_bad(2, args=[1]), "args"),
    (_bad(2, ph="B"), "ph"),
    (_bad(5, args={"W": "high"}), "finite numbers"),
    (_bad(5, args={}), "finite numbers"),
    (_bad(5, args=None), "'args'"),
    (_bad(5, ts=None), "'ts'"),
    (_bad(6, args={"watts": 1.0}), "series changed"),
    (_bad(6, ts=0.0), "two samples"),
    (_bad(0, args={}), "args.name"),
    (_bad(1, tid=None), "'tid'"),
    (_bad(0, name="process_colour"), "unknown metadata"),
    (_bad(1, args={"sort_index": 1}), "args.name"),
    ({"traceEvents": {}}, "traceEvents"),
    ({"events": []}, "traceEvents"),
    ({"traceEvents": [], "displayTimeUnit": "s"}, "displayTimeUnit"),
    ({"traceEvents": ["x"]}, "event object"),
    ("trace", "expected an object"),
])
def test_checker_rejects(obj, reason):
    with pytest.raises(ValueError, match=reason):
        check_chrome_trace(obj)


def test_checker_rejects_nan_as_invalid_json():
    obj = _bad(5, args={"W": float("nan")})
    with pytest.raises(ValueError, match="not valid JSON"):
        check_chrome_trace(obj)


def test_checker_reason_is_one_line():
    with pytest.raises(ValueError) as info:
        check_chrome_trace(_bad(3, ts=8.0))
    assert "\n" not in str(info.value)
    assert "pid 1 tid 1" in str(info.value)


def test_assign_lanes_random_intervals_never_overlap_and_use_fewest_lanes():
    import random
    from itertools import pairwise

    rng = random.Random(7)
    intervals = [(s, s + rng.uniform(0, 5)) for s in (rng.uniform(0, 50) for _ in range(400))]
    lanes = assign_lanes(intervals)
    for lane in set(lanes):
        spans = sorted(iv for iv, k in zip(intervals, lanes, strict=True) if k == lane)
        assert all(a[1] <= b[0] for a, b in pairwise(spans))
    # greedy by start time is optimal on intervals: lanes used == most intervals alive at once
    depth = max(sum(s <= t < e for s, e in intervals) for t, _ in intervals)
    assert max(lanes) + 1 == depth
