"""meshsim.experiments._executor: task order, progress, and the same table from every executor."""

from __future__ import annotations

import io
import time
from functools import partial

import pytest

from meshsim import ConfigError
from meshsim.experiments._executor import Executor, SimTask, run_many
from meshsim.experiments.capacity import find_capacity
from meshsim.experiments.sweep import sweep


def _slow_square(x: int) -> int:
    time.sleep(0.02 * ((7 - x) % 3))  # finish out of order
    return x * x


@pytest.mark.parametrize("workers", [1, 2])
def test_results_come_back_in_task_order(workers):
    calls = []
    out = run_many([partial(_slow_square, x) for x in range(7)], workers=workers,
                   progress=lambda done, total: calls.append((done, total)))
    assert out == [x * x for x in range(7)]
    assert calls == [(k, 7) for k in range(1, 8)]


def test_kinds_and_bad_arguments():
    assert Executor(workers=1).kind == "serial"
    assert Executor(workers=2).kind == "processes"
    assert Executor(workers=2, scheduler="tcp://127.0.0.1:1").kind == "dask"
    with pytest.raises(ConfigError, match="--workers 0"):
        Executor(workers=0)
    with pytest.raises(ConfigError, match="expected an address such as tcp://"):
        run_many([partial(_slow_square, 1)], scheduler="127.0.0.1:8786")
    assert run_many([]) == []


def test_unreachable_scheduler_is_a_one_line_error():
    pytest.importorskip("distributed")
    with pytest.raises(ConfigError, match=r"--scheduler tcp://127.0.0.1:9: cannot connect"):
        with Executor(scheduler="tcp://127.0.0.1:9", connect_timeout=1.0) as ex:
            ex.map([partial(_slow_square, 1)])


def test_sim_task_is_the_summary_of_simulate(mmc):
    from meshsim.sim import simulate

    assert SimTask(mmc, 5, 1)() == simulate(mmc, seed=5, replication=1).summary


def test_no_bar_when_stderr_is_not_a_terminal(mmc, capsys):
    run_many([SimTask(mmc, 1, 0)], workers=1)  # progress=None: a bar only on a terminal
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------- determinism
GRID = {"services.station.workers": [4, 5], "traffic.poisson.rate": ["3000/s", "3600/s"]}


def _csv(result) -> str:
    buf = io.StringIO()
    result.table.to_csv(buf, index=False)
    return buf.getvalue()


@pytest.fixture(scope="module")
def serial_csv(mmc):
    from meshsim.config import apply_overrides

    short = apply_overrides(mmc, {"duration": "1.5s"})
    return short, _csv(sweep(short, GRID, replications=2, workers=1, progress=False))


def test_process_pool_gives_the_serial_table_byte_for_byte(serial_csv):
    short, serial = serial_csv
    pooled = sweep(short, GRID, replications=2, workers=2, progress=False)
    assert pooled.executor == "processes"
    assert _csv(pooled) == serial


@pytest.fixture(scope="module")
def local_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster


def test_dask_local_cluster_gives_the_serial_table_byte_for_byte(serial_csv, local_cluster):
    short, serial = serial_csv
    address = local_cluster.scheduler_address
    assert address.startswith("tcp://127.0.0.1:")
    t0 = time.monotonic()
    on_dask = sweep(short, GRID, replications=2, scheduler=address, progress=False)
    assert time.monotonic() - t0 < 60
    assert on_dask.executor == "dask"
    assert _csv(on_dask) == serial


def test_capacity_search_is_the_same_on_every_executor(mmc, local_cluster):
    kwargs = dict(knee_points=0, progress=False, max_replications=6)
    runs = [find_capacity(mmc, "services.station.workers", "1..8", ["p99<=8ms"], **kwargs, **where)
            for where in ({"workers": 1}, {"workers": 2}, {"scheduler": local_cluster.scheduler_address})]
    assert [r.answer for r in runs] == [5, 5, 5]
    assert runs[0].evaluations.equals(runs[1].evaluations) and runs[0].evaluations.equals(runs[2].evaluations)
