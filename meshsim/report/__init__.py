"""Reports: the run summary on a terminal, plot building blocks (matplotlib) and Markdown pieces.

Plotting helpers (:func:`time_figure`, :func:`shade_faults`, :func:`plot_over_time`,
:func:`save_figure`) take plain data and import matplotlib lazily (``Agg``), so
any report writer can reuse them.
"""

from meshsim.report._markdown import fmt_number, markdown_table
from meshsim.report._plots import Series, fault_spans, plot_over_time, save_figure, shade_faults, time_figure
from meshsim.report._table import render_summary

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
]
