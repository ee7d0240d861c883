"""The ``meshsim`` command line: parse, call the public API, print.

::

    meshsim run SCENARIO [--seed N] [-o DIR] [--replications N] [--record full|summary]
                         [--format auto|csv|parquet] [--quiet]
    meshsim validate FILES...
    meshsim export envoy|istio SCENARIO -o DIR
    meshsim import istio|appmesh|isotope FILES... -o SCENARIO
    meshsim lint FILES...

Any ``MeshsimError`` (an invalid scenario above all) is printed as one line,
``error: <message>``, on stderr with exit code 2 and no traceback; typer's own
usage errors exit with 2 as well. Anything else is a bug and is not caught.
The engine and the config layer are imported inside the commands, so
``meshsim --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

import meshsim
from meshsim import MeshsimError

__all__ = ["app", "main"]

#: exit code of every error the user can fix (bad scenario, bad option)
EXIT_USAGE = 2

app = typer.Typer(
    name="meshsim",
    help="A service-mesh workbench: simulate Envoy policies, judge canaries, export Envoy config.",
    no_args_is_help=True,
    add_completion=False,
)
# Command groups join here, one Typer() each (STYLE.md §14).
export_app = typer.Typer(
    help="Write a scenario's policies as Envoy v3 bootstraps or Istio resources.", no_args_is_help=True
)
import_app = typer.Typer(
    help="Turn Istio, App Mesh or isotope files into a meshsim scenario.", no_args_is_help=True
)
app.add_typer(export_app, name="export")
app.add_typer(import_app, name="import")


class Record(str, Enum):
    """What a run keeps: every request and attempt, or summary statistics only."""

    full = "full"
    summary = "summary"


class Format(str, Enum):
    """File format of the tables of a run directory."""

    auto = "auto"
    csv = "csv"
    parquet = "parquet"


def _one_line(exc: BaseException) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


def _error(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn a ``MeshsimError`` into one line on stderr and exit code 2."""
    try:
        yield
    except MeshsimError as exc:
        _error(_one_line(exc))
        raise typer.Exit(EXIT_USAGE) from None


def _scenario_file(path: Path) -> Path:
    if not path.is_file():
        raise meshsim.ConfigError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    return path


def _version(value: bool) -> None:
    if value:
        typer.echo(f"meshsim {meshsim.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """A service-mesh workbench: simulate Envoy policies, judge canaries, export Envoy config."""


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)],
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Override the scenario's seed.")] = None,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Write the run directory (tables + summary.json) here.")
    ] = None,
    replications: Annotated[
        int | None, typer.Option("--replications", min=1, help="Override the number of replications.")
    ] = None,
    record: Annotated[
        Record | None, typer.Option("--record", help="Keep every request and attempt, or the summary only.")
    ] = None,
    fmt: Annotated[
        Format, typer.Option("--format", help="Table format; auto = parquet when pyarrow is installed.")
    ] = Format.auto,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field: PATH=VALUE, e.g. services.reviews.replicas=3 "
                                   "or mesh.reviews.retries.num_retries=2 (repeatable; VALUE is YAML)."),
    ] = None,
) -> None:
    """Run a scenario, print its summary and, with -o, write its tables and summary.json."""
    with _user_errors():
        _scenario_file(scenario)
        from meshsim.config import apply_overrides, load_scenario
        from meshsim.report import render_summary
        from meshsim.sim import run as run_scenario

        scn = load_scenario(scenario)
        overrides = _parse_sets(set_ or [])
        given = {"seed": seed, "replications": replications, "record": record.value if record else None}
        overrides.update({k: v for k, v in given.items() if v is not None})
        if overrides:
            scn = apply_overrides(scn, overrides)

        import warnings

        from meshsim import MeshsimWarning

        with _progress(quiet) as progress, warnings.catch_warnings():
            warnings.simplefilter("ignore", MeshsimWarning)  # printed once below, one line each
            result = run_scenario(scn, progress=progress)
        for message in result.summary.get("warnings", []):
            typer.echo(f"warning: {message}", err=True)

        if not quiet:
            render_summary(result.summary, _stdout_console())
        if out is not None:
            from meshsim.sim import write_run

            paths = write_run(out, tables=result.tables(), summary=result.summary, fmt=fmt.value)
            if not quiet:
                typer.echo(f"wrote {len(paths)} files to {out}")


def _parse_sets(items: list[str]) -> dict[str, object]:
    """``["a.b=3", "c=[1, 2]"]`` -> ``{"a.b": 3, "c": [1, 2]}`` (values read as YAML)."""
    import yaml

    from meshsim import ConfigError

    out: dict[str, object] = {}
    for item in items:
        path, sep, text = item.partition("=")
        if not sep or not path.strip():
            raise ConfigError(f"--set {item!r}: expected PATH=VALUE, e.g. services.reviews.replicas=3")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        out[path.strip()] = value
    return out


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Scenario YAML files.", show_default=False)],
) -> None:
    """Check scenario files without running them; exit code 2 if any is invalid."""
    from meshsim.config import load_scenario

    failed = 0
    for path in files:
        try:
            scn = load_scenario(_scenario_file(path))
        except MeshsimError as exc:
            failed += 1
            message = _one_line(exc)
            if not getattr(exc, "source", "") and str(path) not in message:
                message = f"{path}: {message}"
            _error(message)
            continue
        typer.echo(f"ok  {path}  ({_plural(len(scn.services), 'service')}, {_plural(len(scn.traffic), 'source')})")
    if failed:
        raise typer.Exit(EXIT_USAGE)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _stdout_console() -> Console:
    console = Console()
    if not console.is_terminal:
        console.width = 200  # a file or a pipe: keep each row on one line
    return console


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[float], Any] | None]:
    """A transient progress bar on stderr fed by ``progress(done_fraction)``; ``None`` when not shown."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield None
        return
    columns = (TextColumn("simulating"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("run", total=1.0)
        yield lambda done: bar.update(task, completed=min(max(float(done), 0.0), 1.0))


# ---- export envoy (meshsim/envoy) ------------------------------------------------------------


# ---- export istio, import istio (meshsim/interop/istio.py) -----------------------------------


# ---- import appmesh|isotope (meshsim/interop/appmesh.py, isotope.py) -------------------------


# ---- lint (meshsim/lint) ---------------------------------------------------------------------


def main() -> None:
    """Entry point of the ``meshsim`` console script."""
    app(prog_name="meshsim")


if __name__ == "__main__":  # pragma: no cover
    main()
