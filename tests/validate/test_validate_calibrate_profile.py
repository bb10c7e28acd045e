"""write_profile: atomic, checked by the loader, one-line errors."""

from __future__ import annotations

import re

import pytest
from test_validate_calibrate_fit import MANIFEST, copies, elementwise

from hetsim.errors import HetsimError
from hetsim.spec.loader import load_platform
from hetsim.validate.calibrate import CalibrationError, fit_profile, write_profile


@pytest.fixture
def profile():
    return fit_profile(elementwise() + copies(), manifest=MANIFEST, name="synthetic")


def test_written_profile_loads_as_a_platform_with_its_manifest(profile, tmp_path):
    path = write_profile(profile, tmp_path / "sub" / "me.yaml")
    platform = load_platform(str(path))
    assert platform.name == "synthetic" and platform.manifest["device"] == "test-cpu"
    assert sorted(p.name for p in path.parent.iterdir()) == ["me.yaml"]  # no temporary left behind
    assert re.search(r"^ *- \[999\.0, [0-9.e+]+\]$", path.read_text(), re.M)  # one [size, rate] per line


def test_an_invalid_profile_writes_nothing_and_keeps_the_old_file(profile, tmp_path):
    path = tmp_path / "me.yaml"
    path.write_text("old")
    broken = dict(profile, units=[dict(profile["units"][0], memory="nowhere")])
    with pytest.raises(HetsimError):
        write_profile(broken, path)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["me.yaml"]


@pytest.mark.parametrize("name", ["me.json", "me"])
def test_output_must_be_a_yaml_path(profile, tmp_path, name):
    with pytest.raises(CalibrationError) as err:
        write_profile(profile, tmp_path / name)
    assert "\n" not in str(err.value) and ".yaml" in str(err.value)
