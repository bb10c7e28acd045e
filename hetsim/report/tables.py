"""Human-readable tables of a summary (the dict of :func:`hetsim.report.metrics.summary`).

Tables go to stderr through rich, so ``--json`` output on stdout stays machine-readable.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["format_bytes", "format_energy", "format_quantity", "format_seconds", "print_summary"]

_PREFIXES = {-12: "p", -9: "n", -6: "µ", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P"}


def format_quantity(value: float, unit: str) -> str:
    """``value`` with an SI prefix and three significant digits.

    Examples
    --------
    >>> format_quantity(0.0123, "s")
    '12.3 ms'
    >>> format_quantity(400.0, "J")
    '400 J'
    >>> format_quantity(1.5e9, "B")
    '1.5 GB'
    >>> format_quantity(0.0009996, "s")
    '1 ms'
    >>> format_quantity(0, "W")
    '0 W'
    """
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}"
    exponent = min(max(3 * math.floor(math.log10(abs(value)) / 3), -12), 15)
    text = f"{value / 10**exponent:.3g}"
    if abs(float(text)) >= 1000 and exponent < 15:  # 999.6 rounds up into the next prefix
        exponent += 3
        text = f"{value / 10**exponent:.3g}"
    return f"{text} {_PREFIXES[exponent]}{unit}"


def format_seconds(seconds: float) -> str:
    """Seconds in the closest SI prefix: ``format_seconds(2e-5) == '20 µs'``."""
    return format_quantity(seconds, "s")


def format_energy(joules: float) -> str:
    """Joules in the closest SI prefix: ``format_energy(1500) == '1.5 kJ'``."""
    return format_quantity(joules, "J")


def format_bytes(nbytes: float) -> str:
    """Bytes in decimal prefixes (GB = 1e9 B): ``format_bytes(8e9) == '8 GB'``."""
    return format_quantity(nbytes, "B")


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.1f} %"


def _per_token(summary: dict[str, Any]) -> str:
    """``energy_per_token_j`` with the token count, or ``"n/a"`` when the graph does not say."""
    per_token = summary.get("energy_per_token_j")
    if per_token is None:
        return "n/a"
    return f"{format_energy(per_token)} ({summary.get('tokens')} tokens)"


def print_summary(summary: dict[str, Any], console: Any = None) -> None:
    """Print ``summary`` as rich tables (on stderr unless a ``console`` is given)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=True)
    head = Table(title=f"{summary.get('graph', '')} on {summary.get('platform', '')}", show_header=False)
    head.add_column("metric", style="bold")
    head.add_column("value", justify="right")
    makespan = summary.get("makespan_s", 0.0)
    for label, value in (
        ("makespan", format_seconds(makespan)),
        ("energy", format_energy(summary.get("energy_j", 0.0))),
        ("  of it moving data", format_energy(math.fsum(summary.get("data_energy_j", {}).values()))),
        ("energy per token", _per_token(summary)),
        ("average power", format_quantity(summary.get("energy_j", 0.0) / makespan if makespan else 0.0, "W")),
        ("ops / transfers", f"{summary.get('ops', 0)} / {summary.get('transfers', 0)}"),
        ("bytes transferred", format_bytes(summary.get("transfer_bytes", 0.0))),
        ("achieved", format_quantity(summary.get("achieved_flop_per_s", 0.0), "FLOP/s")),
        ("FLOP utilization (MFU)", _percent(summary.get("mfu") or 0.0)),
        ("critical path", f"{summary.get('critical_path_len', 0)} ops"),
    ):
        head.add_row(label, value)
    console.print(head)

    units = Table(title="units")
    for name in ("unit", "busy", "utilization", "energy"):
        units.add_column(name, justify="left" if name == "unit" else "right")
    for unit, busy in summary.get("busy_s", {}).items():
        units.add_row(unit, format_seconds(busy), _percent(summary.get("utilization", {}).get(unit, 0.0)),
                      format_energy(summary.get("energy_by_unit_j", {}).get(unit, 0.0)))
    console.print(units)

    memories = Table(title="memories")
    for name in ("memory", "peak", "capacity", "used", "data energy"):
        memories.add_column(name, justify="left" if name == "memory" else "right")
    capacity = summary.get("memory_capacity_bytes", {})
    for memory, peak in summary.get("peak_memory_bytes", {}).items():
        cap = capacity.get(memory, 0.0)
        memories.add_row(memory, format_bytes(peak), format_bytes(cap), _percent(peak / cap if cap else 0.0),
                         format_energy(summary.get("data_energy_j", {}).get(memory, 0.0)))
    console.print(memories)

    peaks = summary.get("peak_memory_bytes", {})
    links = {k: v for k, v in summary.get("data_energy_j", {}).items() if k not in peaks}
    if links:
        table = Table(title="links")
        table.add_column("link")
        table.add_column("data energy", justify="right")
        for link, joules in links.items():
            table.add_row(link, format_energy(joules))
        console.print(table)

    kinds = summary.get("time_by_op_kind_s", {})
    if kinds:
        total = math.fsum(kinds.values())
        table = Table(title="time per op kind")
        for name in ("op kind", "busy", "share"):
            table.add_column(name, justify="left" if name == "op kind" else "right")
        for kind, seconds in sorted(kinds.items(), key=lambda item: (-item[1], item[0])):
            table.add_row(kind, format_seconds(seconds), _percent(seconds / total if total else 0.0))
        console.print(table)
