"""Writing bootstraps to files: YAML or JSON, byte-identical for the same input, all or nothing."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from meshsim._exceptions import ConfigError
from meshsim._files import move_into, staging_directory

__all__ = ["FORMATS", "dumps", "write_bootstraps"]

#: accepted values of ``fmt``
FORMATS = ("yaml", "json")


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, with list items indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True  # a fragment used twice is written out twice, never as an anchor and alias


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    return fmt


def dumps(bootstrap: Mapping[str, Any], fmt: str = "yaml", *, title: str | None = None) -> str:
    """The text of one bootstrap file.

    Parameters
    ----------
    bootstrap
        A JSON-ready mapping.
    fmt
        ``"yaml"`` (block style, keys in the mapping's order) or ``"json"``
        (indent 2).
    title
        A first comment line (YAML only).

    Returns
    -------
    str
        Newline-terminated; the same mapping always gives the same text.
    """
    _check_format(fmt)
    if fmt == "json":
        return json.dumps(bootstrap, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    text = yaml.dump(
        bootstrap, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000
    )
    return (f"# {title}\n" if title else "") + text


def write_bootstraps(
    outdir: str | os.PathLike[str],
    bootstraps: Mapping[str, Mapping[str, Any]],
    *,
    fmt: str = "yaml",
    titles: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write one file per bootstrap into ``outdir``, all or nothing.

    Parameters
    ----------
    outdir
        Created (with its parents) when missing.
    bootstraps
        Proxy name -> bootstrap (:func:`meshsim.envoy.export_envoy`); each is
        written as ``<name>.yaml`` or ``<name>.json``.
    fmt
        ``"yaml"`` (default) or ``"json"``.
    titles
        Proxy name -> a first comment line (YAML only).

    Returns
    -------
    list of pathlib.Path
        The files, in the order of ``bootstraps``.

    Raises
    ------
    ConfigError
        ``fmt`` is not allowed, or a name is not a plain file name.

    Notes
    -----
    The files are written into a temporary directory beside ``outdir`` and
    moved into it (``os.replace``) only when all are complete; a failure
    part-way leaves ``outdir`` as it was. A file of the same proxy in the
    other format is removed, so the directory never mixes two exports. Other
    files are left alone. The same input gives byte-identical files.
    """
    _check_format(fmt)
    for name in bootstraps:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ConfigError(f"bootstrap name {name!r} must be a plain file name")
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ConfigError(f"{outdir}: not a directory")
    with staging_directory(outdir) as tmp:
        staged = []
        for name, bootstrap in bootstraps.items():
            fname = f"{name}.{fmt}"
            title = (titles or {}).get(name)
            (tmp / fname).write_text(dumps(bootstrap, fmt, title=title), encoding="utf-8")
            staged.append(fname)
        outdir.mkdir(exist_ok=True)
        for name in bootstraps:
            for other in FORMATS:
                stale = outdir / f"{name}.{other}"
                if other != fmt and stale.is_file():
                    stale.unlink()
        return move_into(tmp, outdir, staged)
