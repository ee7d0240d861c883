"""Reports: the run summary on a terminal, plot building blocks (matplotlib) and Markdown pieces.

Plotting helpers (:func:`time_figure`, :func:`shade_faults`, :func:`plot_over_time`,
:func:`save_figure`) take plain data and import matplotlib lazily (``Agg``), so
any report writer can reuse them.

Run reports (:func:`build_run_report`, :func:`write_run_report`) turn a run
directory or a ``RunResult`` into Markdown and one self-contained HTML file.
Sweep and capacity reports (:func:`write_sweep_report`,
:func:`write_capacity_report`: capacity curves, SLO heatmaps) and rollout
reports (:func:`write_rollout_report`: the rollout timeline, decision times
and plan power) are written the same way.
"""

from meshsim.report._capacity import (
    build_capacity_report,
    build_sweep_report,
    capacity_figure,
    slo_heatmap_figure,
    sweep_curves_figure,
    write_capacity_report,
    write_sweep_report,
)
from meshsim.report._markdown import fmt_number, markdown_table
from meshsim.report._plots import Series, fault_spans, plot_over_time, save_figure, shade_faults, time_figure
from meshsim.report._rollout import (
    build_rollout_report,
    decision_times_figure,
    rollout_power_figure,
    rollout_timeline_figure,
    write_rollout_report,
)
from meshsim.report._run import (
    RunData,
    RunReport,
    build_run_report,
    latency_cdf_figure,
    percentiles_figure,
    read_run_dir,
    resilience_figure,
    run_data,
    service_graph_figure,
    success_figure,
    throughput_figure,
    write_run_report,
)
from meshsim.report._table import render_summary, summary_rows

__all__ = [
    "render_summary",
    "Series",
    "fault_spans",
    "shade_faults",
    "plot_over_time",
    "time_figure",
    "save_figure",
    "markdown_table",
    "fmt_number",
    "summary_rows",
    "RunData",
    "RunReport",
    "read_run_dir",
    "run_data",
    "build_run_report",
    "write_run_report",
    "service_graph_figure",
    "latency_cdf_figure",
    "percentiles_figure",
    "success_figure",
    "throughput_figure",
    "resilience_figure",
    "sweep_curves_figure",
    "slo_heatmap_figure",
    "capacity_figure",
    "build_sweep_report",
    "build_capacity_report",
    "write_sweep_report",
    "write_capacity_report",
    "rollout_timeline_figure",
    "decision_times_figure",
    "rollout_power_figure",
    "build_rollout_report",
    "write_rollout_report",
]
