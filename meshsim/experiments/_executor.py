"""Run many independent simulations: serially, on a local process pool, or on a Dask cluster.

Public API (sweeps, capacity searches and chaos experiments share it)
--------------------------------------------------------------------
run_many(tasks, *, workers=None, scheduler=None, progress=None, label="simulating") -> list
    Call every task and return the results **in task order**, whichever
    executor ran them. A task is a picklable callable without arguments:
    an instance of a module-level class such as :class:`SimTask`, or
    ``functools.partial(module_level_function, ...)``.
Executor(*, workers=None, scheduler=None, progress=None)
    The same, kept open across several batches (``with Executor() as ex:
    ex.map(tasks)``); the capacity search runs one batch per probe.
SimTask(scenario, seed, replication)
    One replication's summary (``RunResult.summary``, no tables): cheap to
    send back from a worker.

Which executor
--------------
* ``scheduler="tcp://HOST:PORT"``: a ``dask.distributed`` cluster (the
  optional extra ``meshsim[dask]``).
* ``workers=1``: serial, in this process (no pickling at all).
* otherwise a ``concurrent.futures.ProcessPoolExecutor`` with ``workers``
  processes (default: the number of cores).

Reproducibility: a task carries its own seed and replication index, chosen
by the caller from *what* is run (the grid point, the replication), never
from the order in which tasks are submitted or finish; the results are
returned in task order. So serial, pool and Dask give identical results.

Progress: ``progress=None`` shows a rich bar on stderr when stderr is a
terminal (nothing otherwise); ``False`` shows nothing; a callable is called
as ``progress(done, total)`` after each task.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from meshsim._exceptions import ConfigError

__all__ = ["run_many", "Executor", "SimTask", "default_workers", "progress_reporter"]

Progress = Callable[[int, int], Any] | bool | None


def default_workers() -> int:
    """Worker processes used when none are asked for: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class SimTask:
    """One replication of a validated scenario; calling it returns the run's summary dict.

    Parameters
    ----------
    scenario
        A ``meshsim.config.Scenario``.
    seed
        The seed (``None``: the scenario's own).
    replication
        The replication index (independent streams per index).
    """

    scenario: Any
    seed: int | None
    replication: int

    def __call__(self) -> dict:
        from meshsim._exceptions import MeshsimWarning
        from meshsim.sim import simulate

        with warnings.catch_warnings():
            # the summary carries the engine's warnings; a worker must not print them once per run
            warnings.simplefilter("ignore", MeshsimWarning)
            return simulate(self.scenario, seed=self.seed, replication=self.replication).summary


def _call(task: Callable[[], Any]) -> Any:
    return task()


def _noop(_: int) -> None:
    return None


@contextmanager
def progress_reporter(progress: Progress, total: int, label: str) -> Iterator[Callable[[int], None]]:
    """``advance(n)`` for a run of ``total`` tasks: a rich bar, the caller's callable, or nothing."""
    if progress is False or total <= 0:
        yield lambda n: None
        return
    if callable(progress):
        done = [0]

        def advance(n: int) -> None:
            done[0] += n
            progress(done[0], total)

        yield advance
        return
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


class Executor:
    """Runs batches of tasks serially, on a process pool or on Dask (see the module docstring).

    Parameters
    ----------
    workers
        Processes of the local pool (default: the cores); ``1`` runs serially
        in this process. Ignored with ``scheduler``.
    scheduler
        Address of a ``dask.distributed`` scheduler, ``tcp://HOST:PORT``.
    progress
        ``None`` (a bar on a terminal), ``False``, or ``callable(done, total)``.
    label
        The bar's text.
    connect_timeout
        Seconds to wait for the Dask scheduler.

    Attributes
    ----------
    kind
        ``"serial"``, ``"processes"`` or ``"dask"``.
    tasks_run
        Tasks run so far (over every batch).
    """

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None,
                 progress: Progress = None, label: str = "simulating", connect_timeout: float = 10.0) -> None:
        if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
            raise ConfigError(f"--workers {workers!r}: expected a whole number >= 1")
        self.scheduler = scheduler
        self.workers = default_workers() if workers is None else int(workers)
        self.kind = "dask" if scheduler else ("serial" if self.workers == 1 else "processes")
        self.progress = progress
        self.label = label
        self.connect_timeout = connect_timeout
        self.tasks_run = 0
        self._pool: Any = None
        self._client: Any = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Executor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Connect to Dask or start the pool's processes (before any progress bar thread exists)."""
        if self.kind == "dask" and self._client is None:
            self._client = _dask_client(str(self.scheduler), self.connect_timeout)
        elif self.kind == "processes" and self._pool is None:
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max_workers=self.workers)
            list(self._pool.map(_noop, range(self.workers)))  # every worker exists from here on

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------------ running
    def map(self, tasks: Sequence[Callable[[], Any]], *, label: str | None = None) -> list[Any]:
        """Run ``tasks`` and return their results in the same order."""
        tasks = list(tasks)
        if not tasks:
            return []
        self.start()
        with progress_reporter(self.progress, len(tasks), label or self.label) as advance:
            if self.kind == "serial":
                out = []
                for task in tasks:
                    out.append(task())
                    advance(1)
            elif self.kind == "processes":
                out = self._map_pool(tasks, advance)
            else:
                out = self._map_dask(tasks, advance)
        self.tasks_run += len(tasks)
        return out

    def _map_pool(self, tasks: list, advance: Callable[[int], None]) -> list:
        from concurrent.futures import as_completed

        futures = {self._pool.submit(_call, task): i for i, task in enumerate(tasks)}
        out: list[Any] = [None] * len(tasks)
        try:
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                advance(1)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
        return out

    def _map_dask(self, tasks: list, advance: Callable[[int], None]) -> list:
        from distributed import as_completed

        futures = [self._client.submit(_call, task, pure=False) for task in tasks]
        index = {fut.key: i for i, fut in enumerate(futures)}
        out: list[Any] = [None] * len(tasks)
        try:
            for fut in as_completed(futures, loop=self._client.loop):
                out[index[fut.key]] = fut.result()
                advance(1)
        except BaseException:
            self._client.cancel(futures)
            raise
        return out

    def __repr__(self) -> str:
        where = f"scheduler={self.scheduler!r}" if self.kind == "dask" else f"workers={self.workers}"
        return f"Executor(kind={self.kind!r}, {where})"


def _dask_client(address: str, timeout: float):
    if not address.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
        raise ConfigError(f"--scheduler {address!r}: expected an address such as tcp://127.0.0.1:8786")
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError(
            f"--scheduler {address}: dask.distributed is not installed (pip install 'meshsim[dask]')"
        ) from None
    try:
        return Client(address, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"--scheduler {address}: cannot connect ({exc})") from exc


def run_many(tasks: Sequence[Callable[[], Any]], *, workers: int | None = None, scheduler: str | None = None,
             progress: Progress = None, label: str = "simulating") -> list[Any]:
    """Run every task and return the results in task order.

    Parameters
    ----------
    tasks
        Picklable callables without arguments (:class:`SimTask`,
        ``functools.partial`` of a module-level function).
    workers
        Local processes (default: the cores); ``1`` runs serially here.
    scheduler
        ``tcp://HOST:PORT`` of a Dask scheduler; overrides ``workers``.
    progress
        ``None`` (a rich bar on stderr when it is a terminal), ``False``, or
        ``callable(done, total)``.
    label
        The bar's text.

    Examples
    --------
    >>> from functools import partial
    >>> run_many([partial(pow, 2, k) for k in range(5)], workers=1)
    [1, 2, 4, 8, 16]
    """
    tasks = list(tasks)
    if workers is None and scheduler is None and len(tasks) <= 1:
        workers = 1  # a pool for one task costs more than it saves
    with Executor(workers=workers, scheduler=scheduler, progress=progress, label=label) as ex:
        return ex.map(tasks)
