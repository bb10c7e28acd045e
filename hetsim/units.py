"""Parse quantities such as ``"3.35 TB/s"``, ``"700 W"`` or ``"1.8 us"`` into SI floats.

Used at load time only: everything inside hetsim is a plain float in SI units, and field names
carry the unit (``bandwidth_bytes_per_s``, ``latency_s``, ...). Decimal prefixes are powers of
1000 (``GB`` = 1e9 bytes), binary prefixes powers of 1024 (``GiB`` = 2**30 bytes), following the
datasheet convention. A bare number is taken as already being in SI units.

Examples
--------
>>> parse("3.35 TB/s", "bandwidth")
3350000000000.0
>>> parse("80 GiB", "bytes")
85899345920.0
>>> parse("1.8 us", "time")
1.8e-06
>>> parse(700, "power")
700.0
"""

from __future__ import annotations

import math
import re

from hetsim.errors import UnitError

_DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_SMALL = {"m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}

#: dimension -> (base unit symbols accepted, example shown in errors, prefixes allowed)
DIMENSIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "bytes": (("B",), "80 GB"),
    "bandwidth": (("B/s", "Bps"), "3.35 TB/s"),
    "time": (("s",), "1.8 us"),
    "frequency": (("Hz",), "1830 MHz"),
    "power": (("W",), "700 W"),
    "voltage": (("V",), "0.9 V"),
    "energy": (("J",), "5 J"),
    "flop_rate": (("FLOP/s", "FLOPS", "flop/s", "OP/s", "OPS"), "989 TFLOP/s"),
    "energy_per_byte": (("J/B",), "7 pJ/B"),
    "temperature": (("C",), "85 C"),
    "thermal_resistance": (("C/W", "K/W"), "0.1 K/W"),
    "heat_capacity": (("J/C", "J/K"), "50 J/K"),
}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PATTERN = re.compile(rf"^\s*({_NUMBER})\s*([A-Za-zµ/]*)\s*$")


def _prefix_scale(prefix: str, allow_binary: bool) -> float | None:
    if prefix in _DECIMAL:
        return _DECIMAL[prefix]
    if prefix in _SMALL:
        return _SMALL[prefix]
    if allow_binary and prefix in _BINARY:
        return _BINARY[prefix]
    return None


def _unit_scale(symbol: str, dimension: str) -> float | None:
    bases, _ = DIMENSIONS[dimension]
    if dimension == "bandwidth" and symbol.endswith("b/s"):  # bits per second, e.g. "400 Gb/s"
        scale = _prefix_scale(symbol[:-3], allow_binary=False)
        return None if scale is None else scale / 8.0
    for base in sorted(bases, key=len, reverse=True):
        if symbol.endswith(base):
            return _prefix_scale(symbol[: -len(base)], allow_binary="B" in base)
    return None


def parse(value: object, dimension: str, field: str = "value") -> float:
    """Return ``value`` as a float in SI units of ``dimension``.

    Parameters
    ----------
    value : str, int or float
        A bare number (already SI) or a string "<number> <prefix><unit>".
    dimension : str
        One of :data:`DIMENSIONS` (``"bytes"``, ``"bandwidth"``, ``"time"``, ...).
    field : str
        The field name used in the error message.

    Raises
    ------
    UnitError
        One line naming ``field``, the value and an example of what was expected.

    Examples
    --------
    >>> parse("400 Gb/s", "bandwidth")
    50000000000.0
    >>> parse("3 parsecs", "bandwidth", "links.c2c.bandwidth")
    Traceback (most recent call last):
    ...
    hetsim.errors.UnitError: links.c2c.bandwidth: got '3 parsecs', expected a bandwidth such as '3.35 TB/s'
    """
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}")
    example = DIMENSIONS[dimension][1]
    expected = f"a {dimension.replace('_', ' ')} such as {example!r}"
    if isinstance(value, bool):
        raise UnitError(f"{field}: got {value!r}, expected {expected}")
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        scale = _unit_scale(match.group(2), dimension) if match else None
        if match is None or (scale is None and match.group(2) != ""):
            raise UnitError(f"{field}: got {value!r}, expected {expected}")
        result = float(match.group(1)) * (1.0 if scale is None else scale)
    else:
        raise UnitError(f"{field}: got {value!r}, expected {expected}")
    if not math.isfinite(result):
        raise UnitError(f"{field}: got {value!r}, expected a finite {dimension.replace('_', ' ')}")
    return result


def parse_positive(value: object, dimension: str, field: str, *, allow_zero: bool = False) -> float:
    """Like :func:`parse`, but reject negative values (and zero unless ``allow_zero``).

    Examples
    --------
    >>> parse_positive("0 s", "time", "latency", allow_zero=True)
    0.0
    >>> parse_positive("-5 GB/s", "bandwidth", "links.pcie.bandwidth")
    Traceback (most recent call last):
    ...
    hetsim.errors.UnitError: links.pcie.bandwidth: got '-5 GB/s', expected a positive bandwidth
    """
    result = parse(value, dimension, field)
    if result < 0 or (result == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise UnitError(f"{field}: got {value!r}, expected a {kind} {dimension.replace('_', ' ')}")
    return result
