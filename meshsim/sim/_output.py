"""Writing a run directory: the result tables and ``summary.json``, all or nothing.

A run directory holds one file per recorded table (``requests``, ``attempts``,
``timeseries``, ...) as CSV or Parquet, and ``summary.json``. The same run
gives byte-identical files, so two run directories can be compared with
``diff`` or a checksum.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from meshsim._exceptions import ConfigError
from meshsim._files import move_into, staging_directory

__all__ = ["write_run", "summary_json", "FORMATS"]

#: accepted values of ``fmt``
FORMATS = ("auto", "csv", "parquet")
_SUFFIXES = (".csv", ".parquet")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def write_run(
    outdir: str | os.PathLike[str],
    *,
    tables: Mapping[str, pd.DataFrame | None],
    summary: Mapping[str, Any],
    fmt: str = "auto",
) -> list[Path]:
    """Write the tables and the summary of a run into ``outdir``, all or nothing.

    Parameters
    ----------
    outdir
        The run directory; created (with its parents) when missing.
    tables
        Table name -> DataFrame, or ``None`` for a table that was not recorded.
        Each DataFrame is written as ``<name>.csv`` or ``<name>.parquet``,
        without its index.
    summary
        The run summary, written as ``summary.json``: indent 2, keys in
        insertion order, floats as Python writes them (shortest round-trip
        form), NaN and infinities as ``null``. numpy scalars and arrays are
        accepted; any other object that JSON cannot hold raises ``TypeError``.
    fmt
        One of ``{"auto", "csv", "parquet"}``; ``"auto"`` (the default) is
        Parquet when ``pyarrow`` is installed, else CSV.

    Returns
    -------
    list of pathlib.Path
        The files written, tables in the order given, then ``summary.json``.

    Raises
    ------
    ConfigError
        ``fmt`` is not one of the allowed values, or is ``"parquet"`` without
        ``pyarrow``.

    Notes
    -----
    Everything is first written into a temporary directory beside ``outdir``;
    only when every file is complete are they moved into ``outdir`` (each
    with an atomic ``os.replace``, ``summary.json`` last, so its presence
    means the tables beside it are complete). A failure part-way leaves
    ``outdir`` as it was. Files of the same names are replaced; a file of an
    earlier run under a name in ``tables`` but in the other format, or for a
    table that is ``None`` now, is removed, so the directory never mixes two
    runs. Other files are left alone.

    CSV floats are written in their shortest round-trip form, so CSV and
    Parquet carry the same numbers and the bytes are the same on every
    machine.
    """
    fmt = _resolve_format(fmt)
    for name in tables:
        if not _NAME_RE.match(name) or name == "summary":
            raise ValueError(f"table name {name!r} must be a plain file name (letters, digits, _ . -) other than 'summary'")
    outdir = Path(outdir)
    with staging_directory(outdir) as tmp:
        staged: list[str] = []
        for name, df in tables.items():
            if df is None:
                continue
            fname = f"{name}.{fmt}"
            _write_table(df, tmp / fname, fmt)
            staged.append(fname)
        (tmp / "summary.json").write_text(summary_json(summary), encoding="utf-8")
        staged.append("summary.json")

        outdir.mkdir(exist_ok=True)
        written = set(staged)
        for name in tables:
            for suffix in _SUFFIXES:
                stale = outdir / f"{name}{suffix}"
                if stale.name not in written and stale.is_file():
                    stale.unlink()
        return move_into(tmp, outdir, staged)


def summary_json(summary: Mapping[str, Any]) -> str:
    """``summary`` as the text of ``summary.json`` (see :func:`write_run`), newline-terminated."""
    return json.dumps(_jsonable(summary), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _resolve_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"`fmt` must be one of {{{', '.join(map(repr, FORMATS))}}}, got {fmt!r}")
    has_arrow = find_spec("pyarrow") is not None
    if fmt == "auto":
        return "parquet" if has_arrow else "csv"
    if fmt == "parquet" and not has_arrow:
        raise ConfigError("format 'parquet' needs pyarrow (pip install 'meshsim[parquet]'); use csv instead")
    return fmt


def _write_table(df: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "csv":
        df.to_csv(path, index=False, lineterminator="\n")
    else:
        df.to_parquet(path, index=False, engine="pyarrow")


def _jsonable(obj: Any) -> Any:
    """A copy of ``obj`` made of dict, list, str, int, float (finite), bool and None."""
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if isinstance(k, (np.integer, int)) and not isinstance(k, bool):
                k = str(int(k))
            elif not isinstance(k, str):
                raise TypeError(f"summary key {k!r} is not a string")
            out[k] = _jsonable(v)
        return out
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    raise TypeError(f"summary value {obj!r} of type {type(obj).__name__} cannot be written as JSON")
