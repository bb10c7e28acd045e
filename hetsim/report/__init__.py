"""What it means: metrics, tables, Chrome/Perfetto traces, Gantt and power plots of a Trace.

Everything here is a function of a :class:`~hetsim.sim.trace.Trace` plus the Platform and
OpGraph it ran on; nothing reaches back into the engine.
"""

from hetsim.report.chrome import check_chrome_trace, chrome_trace, write_chrome_trace
from hetsim.report.gantt import plot_gantt
from hetsim.report.metrics import (
    busy_energy_j,
    busy_s,
    critical_path,
    data_energy_j,
    energy_j,
    inputs_ready_s,
    op_energy_j,
    package_power_steps,
    peak_memory_bytes,
    power_steps,
    summary,
    time_by_op_kind_s,
    tokens,
    unit_energy_j,
    utilization,
)
from hetsim.report.outputs import ops_csv, write_outputs
from hetsim.report.power_plot import plot_power
from hetsim.report.tables import format_quantity, print_summary

__all__ = [
    "busy_energy_j", "busy_s", "check_chrome_trace", "chrome_trace", "critical_path", "data_energy_j", "energy_j",
    "format_quantity", "inputs_ready_s", "op_energy_j", "ops_csv", "package_power_steps", "peak_memory_bytes",
    "plot_gantt", "plot_power", "power_steps", "print_summary", "summary", "time_by_op_kind_s", "tokens",
    "unit_energy_j", "utilization", "write_chrome_trace", "write_outputs",
]
