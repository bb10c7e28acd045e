"""validate(): predicted vs measured for any module, catalogue models, manifests, and the callable package."""

from __future__ import annotations

import json
import math
import sys

import pytest

torch = pytest.importorskip("torch")

import hetsim  # noqa: E402
from hetsim.errors import GraphError, SpecError  # noqa: E402
from hetsim.spec.loader import load_platform, platform_from_dict, preset_path, read_yaml  # noqa: E402
from hetsim.validate.compare import MAPE_MIN_MEASURED_S, ValidationReport, validate, validate_model  # noqa: E402
from hetsim.validate.manifest import ProfileMismatchError, current_manifest  # noqa: E402

FAST = {"min_run_time": 0.05, "repeats": 3}



@pytest.fixture(scope="module")
def report(mlp):
    module, args = mlp
    return validate(module, args, "cpu-generic", threads=1, name="mlp", **FAST)


def with_manifest(**manifest) -> object:
    data = read_yaml(preset_path("cpu-generic"), "platform")
    return platform_from_dict(dict(data, name="profile-here", manifest=manifest))


def test_report_numbers_are_consistent(mlp, report):
    module, args = mlp
    assert isinstance(report, ValidationReport)
    assert (report.name, report.platform, report.unit, report.threads, report.calibrated) == \
        ("mlp", "cpu-generic", "cpu", 1, False)
    # predicted_s is the simulated makespan: all ops back to back on the one cpu unit
    sim = hetsim.simulate(hetsim.capture(module, args), "cpu-generic", "single", scheduler_options={"unit": "cpu"})
    assert report.predicted_s == pytest.approx(sim.makespan_s, rel=1e-12)
    assert report.predicted_s == pytest.approx(math.fsum(o.predicted_s for o in report.ops), rel=1e-9)
    assert report.result.makespan_s == report.predicted_s
    assert report.measured_s == report.measurement.e2e_median_s > 0
    assert report.e2e_error == pytest.approx((report.predicted_s - report.measured_s) / report.measured_s)
    assert math.copysign(1, report.e2e_error) == math.copysign(1, report.predicted_s - report.measured_s)
    assert {o.op for o in report.ops} == set(sim.graph.nodes)
    assert all(o.measured_s > 0 and o.error == pytest.approx((o.predicted_s - o.measured_s) / o.measured_s)
               for o in report.ops)
    assert report.sum_per_op_measured_s == pytest.approx(sum(o.measured_s for o in report.ops))
    assert report.unmatched_measured_s == 0


def test_per_op_mape_and_kinds(report):
    big = [o for o in report.ops if o.measured_s > MAPE_MIN_MEASURED_S]
    assert report.per_op_mape_count == len(big) >= 2  # the two linears at least
    assert report.per_op_mape == pytest.approx(sum(abs(o.error) for o in big) / len(big))
    kinds = report.by_kind
    assert set(kinds) == {o.kind for o in report.ops} == {"matmul", "norm", "elementwise"}
    assert kinds["matmul"]["count"] == 2
    for kind, row in kinds.items():
        ops = [o for o in report.ops if o.kind == kind]
        assert row["measured_s"] == pytest.approx(sum(o.measured_s for o in ops))
        assert row["predicted_s"] == pytest.approx(sum(o.predicted_s for o in ops))
        assert row["error"] == pytest.approx((row["predicted_s"] - row["measured_s"]) / row["measured_s"])


def test_to_dict_and_write(report, tmp_path):
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert {"e2e_error", "measured_s", "predicted_s", "per_op_mape", "per_op_mape_count", "measurement_iqr",
            "sum_per_op_measured_s", "by_kind", "ops", "manifest"} <= set(d)
    assert d["e2e_error"] == report.e2e_error and len(d["ops"]) == len(report.ops)
    assert "ops" not in report.to_dict(ops=False)
    written = report.write(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ops.csv", "scatter.png", "validation.json"]
    assert json.loads(written["validation.json"].read_text())["predicted_s"] == report.predicted_s
    rows = written["ops.csv"].read_text().splitlines()
    assert rows[0].startswith("op,kind,target") and len(rows) == 1 + len(report.ops)
    assert written["scatter.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_profile_measured_elsewhere_is_refused_or_forced(mlp):
    module, args = mlp
    here = current_manifest("cpu", 1)
    elsewhere = with_manifest(device="Some Other CPU", torch=here["torch"], threads=1)
    with pytest.raises(ProfileMismatchError, match=r"^profile-here\.manifest\.device: got 'Some Other CPU'"):
        validate(module, args, elsewhere, **FAST)
    with pytest.warns(UserWarning, match="manifest.device"):
        forced = validate(module, args, elsewhere, force=True, **FAST)
    assert forced.calibrated and forced.threads == 1


def test_a_matching_profile_gives_its_thread_count(mlp, recwarn):
    module, args = mlp
    here = current_manifest("cpu", 1)
    profile = with_manifest(device=here["device"], torch=here["torch"], threads=1)
    r = validate(module, args, profile, **FAST)
    assert r.calibrated and r.threads == 1 and r.manifest["device"] == here["device"]
    assert not [w for w in recwarn if "manifest" in str(w.message)]


def test_platform_without_a_unit_of_the_device_kind(mlp):
    module, args = mlp
    with pytest.raises(SpecError, match="has no cpu unit"):
        validate(module, args, "h100-sxm", threads=1, **FAST)


def test_catalogue_model_matches_model_graph():
    r = validate_model("gpt2-tiny", platform="cpu-generic", phase="decode", batch=1, seq_len=8, threads=1, **FAST)
    graph = hetsim.model_graph("gpt2-tiny", phase="decode", batch=1, seq_len=8, dtype="fp32")
    assert {o.op for o in r.ops} == set(graph.nodes)
    assert (r.name, r.phase, r.batch, r.seq_len) == ("gpt2-tiny", "decode", 1, 8)
    assert all(o.measured_s is not None and o.measured_s > 0 for o in r.ops)


def test_catalogue_model_leaves_the_random_state_alone():
    state = torch.random.get_rng_state()
    validate_model("bert-tiny", platform="cpu-generic", seq_len=8, threads=1, min_run_time=0.01, repeats=1)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize(("name", "phase", "field"), [("nope", "prefill", "workload.model"),
                                                      ("bert-tiny", "decode", "workload.phase")])
def test_bad_catalogue_workloads_raise_one_line(name, phase, field):
    with pytest.raises(GraphError, match=f"^{field}: got") as info:
        validate_model(name, platform="cpu-generic", phase=phase)
    assert "\n" not in str(info.value)


def test_the_package_is_callable(mlp):
    import hetsim.validate as package
    from hetsim.validate import validate as same
    from hetsim.validate import validate_module

    assert callable(package) and same is package and validate_module is validate
    module, args = mlp
    r = package(module, args, load_platform("cpu-generic"), threads=1, **FAST)
    assert isinstance(r, package.ValidationReport) and r.predicted_s > 0
    assert package.manifest.check_manifest  # submodules stay reachable


def test_hetsim_lazy_table_entry_resolves_to_the_callable_package(monkeypatch):
    """The line proposed for hetsim/__init__.py's _LAZY: ``"validate": "hetsim.validate"``."""
    monkeypatch.setitem(hetsim._LAZY, "validate", "hetsim.validate")
    assert hetsim.__getattr__("validate") is sys.modules["hetsim.validate"]
