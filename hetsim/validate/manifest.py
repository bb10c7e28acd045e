"""Where and how a calibration profile was measured, and the check that it fits this machine.

A profile measured on one device (or with another torch version) predicts another badly, so
using it elsewhere is refused unless forced, and then a warning says why.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform as _platform
import warnings
from collections.abc import Mapping

from hetsim.errors import HetsimError

#: manifest keys that must match the machine a profile is used on
MUST_MATCH = ("device", "torch")


class ProfileMismatchError(HetsimError, ValueError):
    """A calibration profile was measured on another device or torch version."""


def device_name(device: str = "cpu") -> str:
    """A readable, stable name of the device: the CPU model, or the CUDA device's name."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _platform.processor() or _platform.machine()


def current_manifest(device: str = "cpu", threads: int | None = None) -> dict:
    """The manifest of a measurement made now, here."""
    import torch

    from hetsim import __version__

    return {
        "device": device_name(device),
        "device_kind": "cuda" if device.startswith("cuda") else "cpu",
        "cores": os.cpu_count(),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "torch": torch.__version__,
        "python": _platform.python_version(),
        "hetsim": __version__,
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def check_manifest(profile: Mapping, here: Mapping, *, force: bool = False, what: str = "profile") -> None:
    """Refuse (or, with ``force``, warn about) a profile measured elsewhere.

    Examples
    --------
    >>> mine = {"device": "EPYC", "torch": "2.13.0+cpu"}
    >>> check_manifest(mine, dict(mine))
    >>> check_manifest(mine, {"device": "Xeon", "torch": "2.13.0+cpu"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hetsim.validate.manifest.ProfileMismatchError: profile.manifest.device: got 'EPYC', expected 'Xeon' ...
    """
    if not profile:
        raise ProfileMismatchError(f"{what}.manifest: missing, expected the manifest of a calibrated profile "
                                   "(device, torch, threads, date)")
    for key in MUST_MATCH:
        if profile.get(key) != here.get(key):
            message = (f"{what}.manifest.{key}: got {profile.get(key)!r}, expected {here.get(key)!r} "
                       "(this machine); measure a profile here, or pass --force")
            if not force:
                raise ProfileMismatchError(message)
            warnings.warn(message, stacklevel=2)
