"""A regular (non-editable) install finds the built-in models and installs no top-level `models`."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import importlib.util, hetsim
assert importlib.util.find_spec("models") is None, "a top-level 'models' package was installed"
assert hetsim.__file__.startswith(TARGET), hetsim.__file__
g = hetsim.model_graph("gpt2-tiny", phase="prefill", batch=1, seq_len=8)
print(len(g), "llama-3-70b" in hetsim.list_models(), "gh200" in hetsim.list_presets())
"""


@pytest.mark.slow
def test_installed_package_finds_models_and_presets(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=600)
    assert not (target / "models").exists()
    assert (target / "hetsim" / "models" / "catalog.yaml").is_file()
    # dependencies (torch, yaml, ...) from this environment's site-packages, hetsim from the install
    env = {"PYTHONPATH": f"{target}:{sysconfig.get_paths()['purelib']}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-S", "-c", f"TARGET = {str(target)!r}\n" + CHECK], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    n_ops, has_70b, has_gh200 = proc.stdout.split()
    assert int(n_ops) > 10 and has_70b == "True" and has_gh200 == "True"
