"""The ``meshsim`` command line: parse, call the public API, print.

::

    meshsim run SCENARIO [--seed N] [-o DIR] [--replications N] [--record full|summary]
                         [--format auto|csv|parquet] [--quiet] [--report]
    meshsim report RUN_DIR [-o report.html] [--markdown report.md]
    meshsim validate FILES...
    meshsim export envoy|istio SCENARIO -o DIR
    meshsim import istio|appmesh|isotope FILES... -o SCENARIO
    meshsim lint FILES... [--strict] [--no-measure] [--json] [--seed N]   (SCENARIO, ENVOY_CONFIG or ISTIO_FILES)
    meshsim chaos EXPERIMENT [--compare VARIANT...] [--replications N] [--seed N] [--json] [-o DIR]
    meshsim rollout PLAN [--seeds N] [--json] [-o DIR]

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
canary_app = typer.Typer(
    help="Judge a canary against its baseline: PROMOTE (0), ROLLBACK (1) or INCONCLUSIVE (3).", no_args_is_help=True
)
app.add_typer(export_app, name="export")
app.add_typer(import_app, name="import")
app.add_typer(canary_app, name="canary")


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
    report: Annotated[
        bool, typer.Option("--report", help="With -o, also write DIR/report.md and DIR/report.html.")
    ] = False,
) -> None:
    """Run a scenario, print its summary and, with -o, write its tables and summary.json."""
    with _user_errors():
        _scenario_file(scenario)
        if report and out is None:
            raise meshsim.ConfigError("--report needs -o DIR (the report is written into the run directory)")
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
        from meshsim.lint import runtime_warning_covered

        traps = _lint_warnings(scn)
        with _progress(quiet) as progress, warnings.catch_warnings():
            warnings.simplefilter("ignore", MeshsimWarning)  # printed once below, one line each
            result = run_scenario(scn, progress=progress)
        for message in result.summary.get("warnings", []):
            if not runtime_warning_covered(message, traps):
                typer.echo(f"warning: {message}", err=True)

        if not quiet:
            render_summary(result.summary, _stdout_console())
        if out is not None:
            from meshsim.sim import write_run

            paths = write_run(out, tables=result.tables(), summary=result.summary, fmt=fmt.value)
            if not quiet:
                typer.echo(f"wrote {len(paths)} files to {out}")
            if report:
                _write_report(result, out / "report.html", out / "report.md", quiet)


def _lint_warnings(scn: Any) -> list[Any]:
    """The scenario's lint warnings (no measurement), printed as ``warning:`` lines on stderr; returned."""
    from meshsim.lint import Severity, lint_scenario

    traps = [f for f in lint_scenario(scn) if f.severity is Severity.WARNING]
    for finding in traps:
        typer.echo(f"warning: {finding}", err=True)
    return traps


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


def _stdout_console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.width = 200  # a file or a pipe (a CI log): keep each row on one line
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


#: exit code of ``export envoy --validate`` when Envoy rejects a file
EXIT_REJECTED = 1


@export_app.command("envoy")
def export_envoy_command(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)],
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory for the bootstraps (one file per proxy).")],
    fmt: Annotated[str, typer.Option("--format", help="File format: yaml or json.")] = "yaml",
    endpoints: Annotated[
        str,
        typer.Option(
            "--endpoints",
            help="dns: STRICT_DNS Kubernetes pod names; static: 127.0.0.1 with one port per replica (local runs).",
        ),
    ] = "dns",
    namespace: Annotated[
        str, typer.Option("--namespace", help="Kubernetes namespace for host names and domains.")
    ] = "default",
    check: Annotated[
        bool, typer.Option("--validate", help="Check every file with `envoy --mode validate`; exit 1 if one is rejected.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but warnings and errors.")] = False,
) -> None:
    """Write one Envoy v3 bootstrap per sidecar (and one for the ingress), from the scenario's policies."""
    with _user_errors():
        _scenario_file(scenario)
        from meshsim.config import load_scenario
        from meshsim.envoy import (
            ENDPOINT_MODES,
            FORMATS,
            export_envoy,
            find_envoy,
            validate_many,
            write_bootstraps,
        )

        for option, value, allowed in (("--format", fmt, FORMATS), ("--endpoints", endpoints, ENDPOINT_MODES)):
            if value not in allowed:
                raise meshsim.ConfigError(f"{option} {value!r} is not one of {', '.join(allowed)}")
        scn = load_scenario(scenario)
        binary = find_envoy() if check else None  # before writing anything
        _lint_warnings(scn)  # the traps Envoy's validator lets through
        notes: list[Any] = []
        bootstraps = export_envoy(scn, endpoints=endpoints, namespace=namespace, on_unsupported=notes.append)
        for note in notes:
            typer.echo(f"warning: {note}", err=True)
        titles = {
            name: f"Envoy v3 bootstrap of the {name} proxy, scenario {scn.name!r}, {endpoints} endpoints "
            f"(meshsim {meshsim.__version__})"
            for name in bootstraps
        }
        paths = write_bootstraps(out, bootstraps, fmt=fmt, titles=titles)
        if not quiet:
            typer.echo(f"wrote {_plural(len(paths), 'file')} to {out}")
        if binary is not None:
            rejected = 0
            for result in validate_many(paths, envoy=binary):
                if result.ok:
                    if not quiet:
                        typer.echo(f"ok  {result.path}")
                else:
                    rejected += 1
                    _error(f"{result.path}: envoy rejected it: {result.message}")
            if rejected:
                raise typer.Exit(EXIT_REJECTED)


# ---- export istio, import istio (meshsim/interop/istio.py) -----------------------------------


@export_app.command("istio")
def export_istio(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)],
    out: Annotated[
        Path, typer.Option("-o", "--out", help="Directory for the resources, one <service>.yaml each.",
                           show_default=False)
    ],
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", help="Set metadata.namespace and write <svc>.<ns>.svc.cluster.local hosts."),
    ] = None,
    all_services: Annotated[
        bool, typer.Option("--all-services", help="Also write the services without a mesh: entry (Envoy's "
                                                  "defaults spelled out, as simulated).")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit with code 1, writing nothing, if anything cannot be "
                                            "written in Istio.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but warnings and errors.")] = False,
) -> None:
    """Write a VirtualService and a DestinationRule per destination service, as istiod must read them."""
    with _user_errors():
        _scenario_file(scenario)
        from meshsim.config import load_scenario
        from meshsim.interop import istio as interop

        scn = load_scenario(scenario)
        _lint_warnings(scn)  # the traps Envoy's validator lets through
        exported = interop.export_istio(scn, namespace=namespace, all_services=all_services, source=str(scenario))
        for message in exported.warnings:
            typer.echo(f"warning: {message}", err=True)
        if strict and exported.warnings:
            _error(f"{_plural(len(exported.warnings), 'warning')} with --strict: nothing written")
            raise typer.Exit(1)
        if not exported.files:
            typer.echo("nothing to export: no service has a mesh: entry (--all-services writes every service)",
                       err=True)
            return
        paths = interop.write_istio(out, exported)
        if not quiet:
            typer.echo(f"wrote {_plural(len(paths), 'file')} to {out}: {', '.join(p.name for p in paths)}")


@import_app.command("istio")
def import_istio(
    files: Annotated[list[Path], typer.Argument(help="Istio YAML files (VirtualService, DestinationRule).",
                                                show_default=False)],
    out: Annotated[Path, typer.Option("-o", "--out", help="The scenario file to write.", show_default=False)],
    topology: Annotated[
        Path | None, typer.Option("--topology", help="Take services and traffic from this scenario; its mesh: "
                                                     "block is replaced.")
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="With --topology: keep its mesh: entries for the services the "
                                           "files do not configure (instead of istiod's defaults).")
    ] = False,
    allow_unsupported: Annotated[
        bool, typer.Option("--allow-unsupported", help="Keep fields meshsim does not simulate (queryParams, "
                                                       "portLevelSettings, ...) for export, with a warning, "
                                                       "instead of refusing them.")
    ] = False,
    name: Annotated[str | None, typer.Option("--name", help="The scenario's name.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but warnings and errors.")] = False,
) -> None:
    """Turn Istio VirtualServices and DestinationRules into a scenario, translated as istiod does."""
    with _user_errors():
        if merge and topology is None:
            raise meshsim.ConfigError("--merge needs --topology SCENARIO")
        if topology is not None:
            _scenario_file(topology)
        from meshsim.interop import istio as interop

        imported = interop.import_istio(files, topology=topology, merge=merge, allow_unsupported=allow_unsupported,
                                        name=name)
        for message in imported.warnings:
            typer.echo(f"warning: {message}", err=True)
        interop.write_scenario(out, imported)
        if not quiet:
            typer.echo(f"wrote {out}: {_plural(len(imported.scenario.services), 'service')}, mesh policies for "
                       f"{', '.join(imported.services)}")


# ---- import appmesh|isotope (meshsim/interop/appmesh.py, isotope.py) -------------------------


def _report_import(result: Any, out: Path, quiet: bool) -> None:
    """Write an importer's scenario atomically, then print its warnings and one summary line."""
    path = result.write(out)
    for message in result.warnings:
        typer.echo(f"warning: {message}", err=True)
    if not quiet:
        scn = result.scenario
        parts = [_plural(len(scn["services"]), "service")]
        if scn.get("mesh"):
            parts.append(f"mesh policies for {', '.join(scn['mesh'])}")
        parts.append(_plural(len(result.warnings), "warning"))
        typer.echo(f"wrote {path}  ({'; '.join(parts)})")


def _renames(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise meshsim.ConfigError(f"--rename {item!r}: expected APPMESH_NAME=MESHSIM_NAME, e.g. reviews-vr=reviews")
        out[name.strip()] = target.strip()
    return out


@import_app.command("appmesh")
def import_appmesh_cmd(
    files: Annotated[
        list[Path],
        typer.Argument(help="App Mesh JSON (aws appmesh create-route/create-virtual-node ... --cli-input-json, "
                            "or describe-* output) or appmesh.k8s.aws/v1beta2 YAML files.", show_default=False),
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="The scenario file to write.", show_default=False)],
    topology: Annotated[
        Path | None,
        typer.Option("--topology", help="Scenario whose services, capacity, scripts and traffic to use; "
                                        "without it a minimal topology with placeholder numbers is made."),
    ] = None,
    rate: Annotated[
        str | None, typer.Option("--rate", help="Traffic of the minimal topology, e.g. 200/s (default 100/s).")
    ] = None,
    legacy_account: Annotated[
        bool,
        typer.Option("--legacy-account", help="The AWS account had meshes before 29 Jul 2020: no default retry "
                                              "policy, client circuit breakers at Envoy's 1024/1024/1024/3."),
    ] = False,
    rename: Annotated[
        list[str] | None,
        typer.Option("--rename", help="APPMESH_NAME=MESHSIM_NAME: map a virtual router, service or node to a "
                                      "service or version name (repeatable)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but warnings and errors.")] = False,
) -> None:
    """Import App Mesh routes and virtual nodes as a scenario, translated as App Mesh's Envoys run them."""
    with _user_errors():
        for path in files:
            _scenario_file(path)
        if topology is not None:
            _scenario_file(topology)
        from meshsim.interop.appmesh import import_appmesh

        result = import_appmesh(files, topology=topology, rate=rate, legacy_account=legacy_account,
                                rename=_renames(rename or []))
        _report_import(result, out, quiet)


@import_app.command("isotope")
def import_isotope_cmd(
    file: Annotated[Path, typer.Argument(help="isotope service-graph YAML.", show_default=False)],
    out: Annotated[Path, typer.Option("-o", "--out", help="The scenario file to write.", show_default=False)],
    rate: Annotated[
        str | None,
        typer.Option("--rate", help="Requests per second to the entry point(s), in total (default 100/s)."),
    ] = None,
    max_depth: Annotated[
        int | None,
        typer.Option("--max-depth", min=1, help="Bound on call depth; needed when the graph has a cycle."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but warnings and errors.")] = False,
) -> None:
    """Import an isotope service graph as a scenario with isotope's runtime semantics."""
    with _user_errors():
        _scenario_file(file)
        from meshsim.interop.isotope import import_isotope

        result = import_isotope(file, rate=rate, max_depth=max_depth)
        _report_import(result, out, quiet)


# ---- lint (meshsim/lint) ---------------------------------------------------------------------

#: exit code of ``lint --strict`` when a warning was found
EXIT_FINDINGS = 1


@app.command("lint")
def lint_command(
    files: Annotated[
        list[Path],
        typer.Argument(help="Scenario, Envoy bootstrap (YAML/JSON) or Istio YAML files.", show_default=False),
    ],
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when a warning is found (for CI).")] = False,
    measure: Annotated[
        bool,
        typer.Option("--measure/--no-measure", help="Show each finding's effect in a short simulation."),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Seed of the measurement runs.")] = None,
) -> None:
    """Report configurations Envoy accepts that do not do what they say (codes: docs/lint.md)."""
    import json

    with _user_errors():
        from meshsim.lint import Severity, lint_files

        findings = lint_files(files, measure=measure, seed=seed)
    warnings_found = sum(f.severity is Severity.WARNING for f in findings)
    if as_json:
        typer.echo(json.dumps({"findings": [f.to_dict() for f in findings],
                               "warnings": warnings_found, "infos": len(findings) - warnings_found}, indent=2))
    else:
        for f in findings:
            typer.echo(f"{f.where}: {f.path} = {f.value}")
            typer.echo(f"  {f.code} {f.severity}: {f.message}")
            if f.effect:
                typer.echo(f"  measured: {f.effect}" if f.effect.startswith("probe") else f"  {f.effect}")
        infos = len(findings) - warnings_found
        typer.echo(f"{_plural(warnings_found, 'warning')}, {_plural(infos, 'note')} in {_plural(len(files), 'file')}")
    if strict and warnings_found:
        raise typer.Exit(EXIT_FINDINGS)



# ---- canary judge|watch (meshsim/canary) -----------------------------------------------------


class CanaryMode(str, Enum):
    """Which judge decides: meshsim's sequential judge, the Kayenta-compatible one, or Flagger's thresholds."""

    meshsim = "meshsim"
    kayenta = "kayenta"
    flagger = "flagger"


class CanaryFormat(str, Enum):
    """Input format of the two arms."""

    auto = "auto"
    requests = "requests"
    minutes = "minutes"
    prometheus = "prometheus"
    run = "run"


class LatencyUnit(str, Enum):
    """Unit of a latency column or metric whose name has none."""

    s = "s"
    ms = "ms"
    us = "us"
    ns = "ns"


def _canary_functions(mode: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(judge, watch) of a mode; imported here so that `meshsim --help` stays fast."""
    if mode == "kayenta":
        from meshsim.canary.kayenta import judge_kayenta, watch_kayenta

        return judge_kayenta, watch_kayenta
    if mode == "flagger":
        from meshsim.canary.flagger import judge_flagger, replay_flagger

        return judge_flagger, replay_flagger
    from meshsim.canary._judge import judge, watch

    return judge, watch


def _judge_config(path: Path) -> Any:
    """A meshsim judge configuration, or a Spinnaker/Kayenta canary configuration (JSON) translated into one."""
    import json

    from meshsim.canary.config import load_judge_config, parse_judge_config

    if path.suffix.lower() == ".json" and path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise meshsim.ConfigError(f"not a JSON judge configuration: {exc}", source=str(path)) from None
        from meshsim.canary.kayenta import from_spinnaker, is_spinnaker_config

        if is_spinnaker_config(doc):
            return parse_judge_config(from_spinnaker(doc), source=str(path))
    return load_judge_config(path)


def _canary_inputs(baseline: Path, canary: Path, config: Path | None, fmt: CanaryFormat,
                   latency_unit: LatencyUnit | None, service: str | None, baseline_version: str | None,
                   canary_version: str | None, mode: CanaryMode | None) -> tuple[Any, Any, Any, Callable[..., Any],
                                                                                 Callable[..., Any]]:
    """(baseline arm, canary arm, judge config, judge function, watch function) of the shared options."""
    from meshsim.canary.config import parse_judge_config
    from meshsim.canary.io import read_arms

    cfg = _judge_config(config) if config is not None else parse_judge_config(
        {"metrics": ["latency", "errors"]}, source="default config")
    b, c = read_arms(baseline, canary, fmt=fmt.value, latency_unit=latency_unit.value if latency_unit else None,
                     service=service, baseline_version=baseline_version, canary_version=canary_version)
    return b, c, cfg, *_canary_functions(mode.value if mode is not None else cfg.mode)


def _canary_console(json_out: str | None) -> Console:
    """Where the terminal report goes: stderr when ``--json -`` takes stdout."""
    return _stdout_console(stderr=json_out == "-")


def _canary_outputs(judgement: Any, watch_result: Any, b: Any, c: Any, json_out: str | None,
                    junit: Path | None, markdown_out: Path | None, plots: Path | None) -> None:
    from meshsim.canary import report

    if json_out == "-":
        typer.echo(report.judgement_json(judgement, watch_result), nl=False)
    elif json_out:
        report.write_json(json_out, judgement, watch_result)
    if junit is not None:
        report.write_junit(junit, judgement, watch_result)
    if markdown_out is not None:
        report.write_markdown(markdown_out, judgement, baseline=b, canary=c, watch=watch_result)
    if plots is not None:
        report.write_plots(plots, b, c, judgement, watch_result)


_BASELINE_HELP = ("Baseline arm: raw requests (CSV/Parquet), per-minute aggregates, Prometheus query_range JSON "
                  "(a file, a directory, or a YAML mapping metric -> file) or a meshsim run directory.")
CanaryBaseline = Annotated[Path, typer.Option("--baseline", "-b", help=_BASELINE_HELP, show_default=False)]
CanaryCanary = Annotated[Path, typer.Option("--canary", "-c", help="Canary arm, same forms as --baseline.",
                                            show_default=False)]
CanaryConfig = Annotated[Path | None, typer.Option(
    "--config", help="Judge configuration YAML (docs/canary.md); default: latency and errors metrics.")]
CanaryFmt = Annotated[CanaryFormat, typer.Option("--format", help="Input format; auto detects it.")]
CanaryUnit = Annotated[LatencyUnit | None, typer.Option(
    "--latency-unit", help="Unit of a latency column/metric named without one (latency, latency_p99).")]
CanaryService = Annotated[str | None, typer.Option("--service", help="Run directory: the service to judge.")]
CanaryBVersion = Annotated[str | None, typer.Option("--baseline-version", help="Run directory: baseline version.")]
CanaryCVersion = Annotated[str | None, typer.Option("--canary-version", help="Run directory: canary version.")]
CanaryModeOpt = Annotated[CanaryMode | None, typer.Option(
    "--mode", help="Judge: meshsim (sequential), kayenta (Mann-Whitney score) or flagger (fixed thresholds); "
                   "default: the config's mode.")]
CanaryJson = Annotated[str | None, typer.Option("--json", help="Write the verdict as JSON to FILE, or - for stdout.",
                                                metavar="FILE|-")]
CanaryJunit = Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML (one test case per metric).")]
CanaryMarkdown = Annotated[Path | None, typer.Option("--markdown", help="Write a PR-comment Markdown summary.")]
CanaryPlots = Annotated[Path | None, typer.Option("--plots", help="Write ecdf.png, series.png, qq.png into DIR.",
                                                  metavar="DIR")]
CanaryQuiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing; the exit code tells.")]


@canary_app.command("judge")
def canary_judge(
    baseline: CanaryBaseline,
    canary: CanaryCanary,
    config: CanaryConfig = None,
    fmt: CanaryFmt = CanaryFormat.auto,
    latency_unit: CanaryUnit = None,
    service: CanaryService = None,
    baseline_version: CanaryBVersion = None,
    canary_version: CanaryCVersion = None,
    mode: CanaryModeOpt = None,
    json_out: CanaryJson = None,
    junit: CanaryJunit = None,
    markdown_out: CanaryMarkdown = None,
    plots: CanaryPlots = None,
    quiet: CanaryQuiet = False,
) -> None:
    """Judge a canary against its baseline: exit 0 PROMOTE, 1 ROLLBACK, 3 INCONCLUSIVE, 2 bad input."""
    with _user_errors():
        b, c, cfg, judge_fn, _ = _canary_inputs(baseline, canary, config, fmt, latency_unit, service,
                                                baseline_version, canary_version, mode)
        judgement = judge_fn(b, c, cfg)
        _canary_outputs(judgement, None, b, c, json_out, junit, markdown_out, plots)
    if not quiet:
        from meshsim.canary.report import render_judgement

        render_judgement(judgement, _canary_console(json_out))
    raise typer.Exit(judgement.exit_code)


@canary_app.command("watch")
def canary_watch(
    baseline: CanaryBaseline,
    canary: CanaryCanary,
    config: CanaryConfig = None,
    fmt: CanaryFmt = CanaryFormat.auto,
    latency_unit: CanaryUnit = None,
    service: CanaryService = None,
    baseline_version: CanaryBVersion = None,
    canary_version: CanaryCVersion = None,
    mode: CanaryModeOpt = None,
    every: Annotated[int, typer.Option("--every", min=1, help="Show one look in N (the decisive one always).")] = 1,
    json_out: CanaryJson = None,
    junit: CanaryJunit = None,
    markdown_out: CanaryMarkdown = None,
    plots: CanaryPlots = None,
    quiet: CanaryQuiet = False,
) -> None:
    """Replay time-ordered input look by look and report when the decision would have been reached."""
    with _user_errors():
        b, c, cfg, _, watch_fn = _canary_inputs(baseline, canary, config, fmt, latency_unit, service,
                                                baseline_version, canary_version, mode)
        result = watch_fn(b, c, cfg)
        _canary_outputs(result.final, result, b, c, json_out, junit, markdown_out, plots)
    if not quiet:
        from meshsim.canary.report import render_watch

        render_watch(result, _canary_console(json_out), every=every)
    from meshsim.canary import EXIT_CODES

    raise typer.Exit(EXIT_CODES[result.decision])


# ---- conformance (analysis/conformance) -------------------------------------------------------


@app.command()
def conformance(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file (one hop, or services calling others: then "
                                                  "one Envoy per calling service and script-running stand-ins).",
                                             show_default=False)],
    real: Annotated[int, typer.Option("--real", min=1, help="Runs on the real Envoy.")] = 2,
    sim: Annotated[int, typer.Option("--sim", min=1, help="Simulated runs.")] = 3,
    seed: Annotated[int, typer.Option("--seed", min=0, help="First seed (real and simulated runs).")] = 0,
    duration: Annotated[float | None, typer.Option("--duration", min=0.5,
                                                    help="Seconds of traffic per run (default: the scenario's).")] = None,
    max_requests: Annotated[int, typer.Option("--max-requests", min=1, help="Cap per traffic source and run.")] = 20000,
    rate: Annotated[str | None, typer.Option("--rate", help="Every open-loop traffic source's rate, e.g. 40/s "
                                                            "(default: the scenario's).")] = None,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Write the verdict table as CSV here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Run a scenario through a real Envoy on loopback and in the simulator; compare (exit 1 on disagreement)."""
    with _user_errors():
        _scenario_file(scenario)
        from meshsim.config import load_scenario
        from meshsim.conformance import run_conformance

        scn = load_scenario(scenario)
        if rate is not None:
            from meshsim.config import apply_overrides

            scn = apply_overrides(scn, {f"traffic[{k}].rate": rate for k, src in enumerate(scn.traffic)
                                        if src.rate is not None})
        say = None if quiet else (lambda m: typer.echo(m, err=True))
        res = run_conformance(scn, real_repeats=real, sim_repeats=sim, seed=seed, duration=duration,
                              max_requests=max_requests, progress=say)
    table = res.table()
    if out is not None:
        table.to_csv(out, index=False)
    if not quiet:
        for note in res.notes:
            typer.echo(f"note: {note}", err=True)
        typer.echo(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        typer.echo("agree" if res.agree else "DISAGREE: " + ", ".join(
            v.metric for v in res.verdicts if not v.agree and not v.known))
    raise typer.Exit(0 if res.agree else 1)


# ---- chaos experiments (meshsim/experiments/chaos.py) -----------------------------------------


@app.command("chaos")
def chaos_command(
    files: Annotated[
        list[Path],
        typer.Argument(help="Experiment YAML file; with --compare, then two or more variant files (a scenario, "
                            "or an overrides file with name/mesh/set; the first is the baseline).",
                       show_default=False),
    ],
    compare: Annotated[
        bool, typer.Option("--compare", help="Run each variant under the experiment's faults with the same seeds "
                                             "and report paired differences.")
    ] = False,
    replications: Annotated[
        int | None, typer.Option("--replications", min=1, help="Override the experiment's replications.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Override the experiment's seed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Write report.md, result.json, windows.csv and PNG plots here.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing; the exit code tells.")] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a scenario field for every variant: PATH=VALUE (repeatable)."),
    ] = None,
) -> None:
    """Run a chaos experiment: exit 0 if the steady-state hypothesis held, 1 if violated or not recovered, 2 bad input."""
    import json

    with _user_errors():
        if not files:
            raise meshsim.ConfigError("give an experiment file")
        for path in files:
            _scenario_file(path)
        if compare and len(files) < 3:
            raise meshsim.ConfigError("--compare needs the experiment and at least two variant files, e.g. "
                                      "meshsim chaos exp.yaml --compare retries-off.yaml retries-on.yaml")
        if not compare and len(files) > 1:
            raise meshsim.ConfigError(f"one experiment file expected, got {len(files)}; to compare variants, "
                                      "add --compare")
        from meshsim.experiments import chaos as chaos_api

        experiment = chaos_api.load_experiment(files[0])
        if set_:
            experiment = experiment.with_overrides(_parse_sets(set_))
        variants = [chaos_api.load_variant(p, experiment) for p in files[1:]]
        with _progress(quiet or as_json) as progress:
            if compare:
                result: Any = chaos_api.compare_variants(experiment, variants, replications=replications, seed=seed,
                                                         progress=progress)
            else:
                result = chaos_api.run_experiment(experiment, replications=replications, seed=seed,
                                                  progress=progress)
        if out is not None:
            paths = chaos_api.write_report(result, out)
            if not quiet and not as_json:
                typer.echo(f"wrote {_plural(len(paths), 'file')} to {out}")
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    elif not quiet:
        console = _stdout_console()
        if compare:
            chaos_api.render_comparison(result, console)
        else:
            chaos_api.render_result(result, console)
    raise typer.Exit(result.exit_code)


# ---- sweep, capacity (meshsim/experiments/sweep.py, capacity.py) ------------------------------
#   meshsim sweep SCENARIO --set PATH=VALUES... [--replications N] [-o OUT.csv|.parquet]
#                 [--workers N] [--scheduler tcp://HOST:PORT] [--seed N] [--seeds common|independent]
#                 [--report DIR [--slo OBJ...]]
#   meshsim capacity SCENARIO --slo OBJ... --vary PATH=VALUES [--maximize] [--scope S[/V]]
#                 [--confidence 0.95] [--min-replications 3] [--max-replications 12] [-o OUT.csv]
#                 [--report DIR]

_Workers = Annotated[int | None, typer.Option("--workers", min=1,
                                              help="Local processes (default: the cores; 1 = serial).")]
_Scheduler = Annotated[str | None, typer.Option("--scheduler", metavar="tcp://HOST:PORT",
                                                help="Run on this Dask scheduler instead of local processes.")]


def _parse_slos(items: list[str] | None) -> list[Any]:
    from meshsim.experiments.capacity import parse_slo

    return [parse_slo(s) for s in items or []]


def _echo_written(paths: list[Path], quiet: bool) -> None:
    if not quiet:
        for p in paths:
            if p.suffix in (".html", ".md"):
                typer.echo(f"wrote {p}", err=True)


def _experiment_base(scenario: Path, fixed: list[str] | None, record: Record) -> tuple[Any, dict[str, object]]:
    """The scenario and the fields set at every point (``record`` included)."""
    _scenario_file(scenario)
    from meshsim.config import load_scenario

    scn = load_scenario(scenario)
    overrides: dict[str, object] = {"record": record.value}
    overrides.update(_parse_sets(fixed or []))
    return scn, overrides


@app.command()
def sweep(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)],
    set_: Annotated[list[str], typer.Option(
        "--set", help="PATH=VALUES to sweep: a list (500/s,1k/s,2k/s) or a range (2..12, 2..12:2); "
                      "repeatable, the grid is their product.", show_default=False)],
    replications: Annotated[int | None, typer.Option("--replications", min=1,
                                                     help="Per grid point (default: the scenario's).")] = None,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Write the table: .csv or .parquet.")] = None,
    workers: _Workers = None,
    scheduler: _Scheduler = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Base seed (default: the scenario's).")] = None,
    seeds: Annotated[str, typer.Option("--seeds", help="common (same draws at every point) or independent.")
                     ] = "common",
    confidence: Annotated[float, typer.Option("--confidence", min=0.5, max=0.999,
                                              help="Level of the t intervals.")] = 0.95,
    record: Annotated[Record, typer.Option("--record", help="What each run keeps (summary is enough).")
                      ] = Record.summary,
    report: Annotated[Path | None, typer.Option(
        "--report", metavar="DIR", help="Write sweep.md and sweep.html (capacity curves, SLO heatmap) here.")
    ] = None,
    slo: Annotated[list[str] | None, typer.Option(
        "--slo", help="Objective drawn and judged in the report, e.g. 'p99<=200ms' (repeatable).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Run a scenario over a grid of field values, with replications and confidence intervals."""
    with _user_errors():
        from meshsim.experiments.sweep import sweep as run_sweep

        scn, overrides = _experiment_base(scenario, None, record)
        slos = _parse_slos(slo)
        res = run_sweep(scn, set_, replications=replications, seed=seed, seeds=seeds, confidence=confidence,
                        workers=workers, scheduler=scheduler, progress=False if quiet else None,
                        overrides=overrides)
        if out is not None:
            res.write(out)
        if report is not None:
            from meshsim.report import write_sweep_report

            _echo_written(write_sweep_report(res, report, slos=slos), quiet)
    if quiet:
        return
    table = res.table
    cols = ["point", *(p for p, v in res.grid.items() if len(v) > 1), "scope", "service", "version", "rps", "success_rate", "p50_s", "p99_s",
            "p99_s_high", "utilization"]
    view = table[table.scope != "version"][cols].copy()
    for c in ("p50_s", "p99_s", "p99_s_high"):
        view[c] = view[c] * 1e3
    view = view.rename(columns={"p50_s": "p50_ms", "p99_s": "p99_ms", "p99_s_high": "p99_ms_high"})
    typer.echo(view.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    where = f" -> {out}" if out is not None else ""
    typer.echo(f"{len(res.points)} points x {res.summaries and len(res.summaries[0])} replications = "
               f"{res.runs} runs ({res.executor}); {len(table)} rows{where}", err=True)


@app.command()
def capacity(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)],
    slo: Annotated[list[str], typer.Option("--slo", help="Objective, e.g. 'p99<=200ms', 'success>=99.9%' "
                                                         "(repeatable; all must hold).", show_default=False)],
    vary: Annotated[str, typer.Option("--vary", help="PATH=VALUES in increasing order, e.g. "
                                                     "services.reviews.replicas=1..32.", show_default=False)],
    maximize: Annotated[bool, typer.Option("--maximize", help="Find the largest passing value (a rate), "
                                                              "not the smallest (replicas).")] = False,
    scope: Annotated[str, typer.Option("--scope", help="end_to_end, SERVICE or SERVICE/VERSION.")
                     ] = "end_to_end",
    confidence: Annotated[float, typer.Option("--confidence", min=0.5, max=0.999,
                                              help="One-sided confidence that the SLO holds.")] = 0.95,
    min_replications: Annotated[int, typer.Option("--min-replications", min=2,
                                                  help="Replications a probed value starts with.")] = 3,
    max_replications: Annotated[int, typer.Option("--max-replications", min=2,
                                                  help="Most replications near the boundary.")] = 12,
    knee_points: Annotated[int, typer.Option("--knee-points", min=0,
                                             help="Extra values run for the knee curve (0: no knee).")] = 4,
    set_: Annotated[list[str] | None, typer.Option("--set", help="PATH=VALUE fixed at every point.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Seed (default: the scenario's).")] = None,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Write the evaluated values (.csv/.parquet).")
                   ] = None,
    workers: _Workers = None,
    scheduler: _Scheduler = None,
    record: Annotated[Record, typer.Option("--record", help="What each run keeps (summary is enough).")
                      ] = Record.summary,
    report: Annotated[Path | None, typer.Option(
        "--report", metavar="DIR", help="Write capacity.md and capacity.html (curve, answer, knee) here.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Find the fewest replicas (or, with --maximize, the highest rate) that meets the SLOs; exit 1 if none."""
    with _user_errors():
        from meshsim.experiments.capacity import find_capacity
        from meshsim.experiments.sweep import parse_set

        scn, overrides = _experiment_base(scenario, set_, record)
        path, values = parse_set(vary)
        res = find_capacity(scn, path, values, slo, maximize=maximize, scope=scope, confidence=confidence,
                            min_replications=min_replications, max_replications=max_replications, seed=seed,
                            knee_points=knee_points, workers=workers, scheduler=scheduler,
                            progress=False if quiet else None, overrides=overrides)
        if out is not None:
            from meshsim.experiments.sweep import write_table

            write_table(res.evaluations, out)
        if report is not None:
            from meshsim.report import write_capacity_report

            _echo_written(write_capacity_report(res, report), quiet)
    if not quiet:
        typer.echo(res.render())
    raise typer.Exit(0 if res.answer is not None else 1)


# ---- report (meshsim/report) ------------------------------------------------------------------


def _write_report(source: Any, html: Path | None, markdown: Path | None, quiet: bool) -> None:
    from meshsim.report import write_run_report

    paths = write_run_report(source, html=html, markdown=markdown)
    if not quiet:
        for p in paths:
            if p.suffix in (".html", ".md"):
                typer.echo(f"wrote {p}")


@app.command("report")
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by meshsim run -o DIR.", show_default=False)],
    html: Annotated[
        Path | None, typer.Option("-o", "--out", help="HTML file to write (default RUN_DIR/report.html).")
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option("--markdown", help="Also write this Markdown file, its PNGs in plots/ beside it."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Write a run's report: one self-contained HTML file (plots embedded) and, optionally, Markdown."""
    with _user_errors():
        _write_report(run_dir, html if html is not None else run_dir / "report.html", markdown, quiet)


# ---- rollout (meshsim/experiments/rollout.py) ----------------------------------------------
#   meshsim rollout PLAN [--seeds N] [--json] [-o DIR] [--workers N] [--quiet]


@app.command("rollout")
def rollout_command(
    plan_file: Annotated[Path, typer.Argument(help="Rollout plan YAML file.", show_default=False)],
    seeds: Annotated[
        int, typer.Option("--seeds", min=1, help="Simulate the plan for N seeds and report its power (exit 0).")
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Write rollout.json, outcomes.csv and the report "
                                                       "(rollout.md, rollout.html) here.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Local processes for --seeds (default: the cores).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing; the exit code tells.")] = False,
) -> None:
    """Simulate a progressive rollout: exit 0 promoted, 1 rolled back, 3 inconclusive (0 with --seeds), 2 bad input."""
    import json

    with _user_errors():
        _scenario_file(plan_file)
        from meshsim.experiments import rollout as rollout_api

        plan = rollout_api.load_plan(plan_file)
        study = rollout_api.run_rollout(plan, seeds=seeds, workers=workers,
                                        progress=False if (quiet or as_json) else None)
        if out is not None:
            from meshsim.report import write_rollout_report

            paths = rollout_api.write_outputs(study, out)
            paths += [p for p in write_rollout_report(study, out, plan) if p.suffix in (".md", ".html")]
            if not quiet and not as_json:
                typer.echo(f"wrote {_plural(len(paths), 'file')} to {out}")
    if as_json:
        typer.echo(json.dumps(rollout_api.jsonable(study.to_dict()), indent=2))
    elif not quiet:
        rollout_api.render(study, plan, _stdout_console())
    raise typer.Exit(study.outcomes[0].exit_code if seeds == 1 else 0)


def main() -> None:
    """Entry point of the ``meshsim`` console script."""
    app(prog_name="meshsim")


if __name__ == "__main__":  # pragma: no cover
    main()
