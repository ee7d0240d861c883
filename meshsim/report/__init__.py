"""Reports of a run: the summary table on the terminal (plots and Markdown/HTML reports to come)."""

from meshsim.report._table import render_summary

__all__ = ["render_summary"]
