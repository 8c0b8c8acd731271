"""Cells on a Dask cluster (`--cluster`): one task per cell for `train`, per cell and
estimator for `analyze`.

`--cluster` takes `local:N` (a `distributed.LocalCluster` of N single-threaded worker
processes on this machine), `tcp://HOST:PORT` (a running scheduler) or `slurm` / `pbs` (a
dask-jobqueue cluster built from the YAML file given with `--cluster-config`: the keyword
arguments of `SLURMCluster` / `PBSCluster`, plus `jobs`, how many to start).

Workers write into the shared output directory. A cell's file lock keeps two workers (or two
`ibrepro train` processes) from writing one cell at once; a task whose worker dies is re-run
by Dask and resumes the cell from its checkpoint, so the result is the same. Workers report
progress as Dask events (topic per call) that the client shows. Dask and dask-jobqueue are
the optional extra `ibrepro[cluster]`.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibrepro.errors import UserError

EXTRA_HINT = "install the cluster extra: pip install 'ibrepro[cluster]'"
JOBQUEUE_KINDS = ("slurm", "pbs")
CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class Task:
    """One unit of work: `fn(*args, report)` on a worker, where `report(dict)` sends progress."""

    label: str
    fn: Callable[..., Any]
    args: tuple


def check_spec(spec: str, config_file: Path | None) -> None:
    """Raise UserError for a malformed --cluster value, a missing extra, an unreachable
    scheduler or a missing submit command, before any work."""
    _import_distributed()
    if config_file is not None and spec not in JOBQUEUE_KINDS:
        raise UserError(f"--cluster-config is for --cluster slurm or pbs, not {spec!r}; leave it out")
    if spec.startswith("local:"):
        count = spec.partition(":")[2]
        if not count.isdigit() or int(count) < 1:
            raise UserError(f"--cluster local:N wants a worker count N >= 1, got {spec!r}")
    elif spec in JOBQUEUE_KINDS:
        if config_file is None or not Path(config_file).is_file():
            raise UserError(f"--cluster {spec} needs --cluster-config FILE.yaml (dask-jobqueue settings)")
        _jobqueue_settings(Path(config_file))
        command = _jobqueue_class(spec).job_cls.submit_command
        if shutil.which(command) is None:
            raise UserError(f"--cluster {spec} submits jobs with {command}, which is not on PATH here; "
                            "run on the cluster's login node")
    elif spec.startswith("tcp://"):
        _check_reachable(spec)
    else:
        raise UserError(f"--cluster wants local:N, tcp://HOST:PORT, slurm or pbs; got {spec!r}")


def _check_reachable(spec: str) -> None:
    """UserError unless `tcp://HOST:PORT` names a port that accepts connections."""
    host, _, port = spec[len("tcp://"):].rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--cluster wants tcp://HOST:PORT with a port number in 1..65535, got {spec!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise UserError(f"cannot reach a Dask scheduler at {spec} ({reason}); start it "
                        f"(dask scheduler) or check the address") from None


@contextmanager
def connect(spec: str, config_file: Path | None = None) -> Iterator[Any]:
    """A `distributed.Client` for a checked --cluster value (the cluster closes on exit)."""
    distributed = _import_distributed()
    if spec.startswith("tcp://"):
        try:
            client = distributed.Client(spec, timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:  # a timeout, or something else listening there (its answer can be anything)
            raise UserError(f"cannot connect to a Dask scheduler at {spec} ({exc.__class__.__name__}: "
                            f"{_first_line(exc)}); check that the address is a running dask scheduler") from None
        with client:
            yield client
        return
    if spec.startswith("local:"):
        cluster = distributed.LocalCluster(n_workers=int(spec.partition(":")[2]), threads_per_worker=1,
                                           processes=True, dashboard_address=":0")
    else:
        settings = _jobqueue_settings(Path(config_file))
        jobs = settings.pop("jobs", 1)
        try:
            cluster = _jobqueue_class(spec)(**settings)
        except (TypeError, ValueError) as exc:
            raise UserError(f"cluster config {config_file}: {_first_line(exc)}") from None
        cluster.scale(jobs=jobs)
    with cluster, distributed.Client(cluster) as client:
        yield client


def run_tasks(client: Any, tasks: Sequence[Task], on_report: Callable[[str, dict], None] | None = None) -> list:
    """Run tasks on the cluster, feeding each task's reports to `on_report(label, message)`.

    Returns the results in task order. A task that failed (after Dask's retries on dead
    workers) raises UserError naming it, or the task's own UserError.
    """
    distributed = _import_distributed()
    topic = f"ibrepro-{uuid.uuid4().hex}"
    if on_report is not None:
        client.subscribe_topic(topic, lambda event: on_report(*event[1]))
    futures = [client.submit(_run, task.fn, task.args, task.label, topic, key=f"{task.label}-{topic}",
                             pure=False) for task in tasks]
    try:
        distributed.wait(futures)
        results = []
        for task, future in zip(tasks, futures):
            if future.status == "error":
                exc = future.exception()
                if isinstance(exc, UserError):
                    raise exc
                raise UserError(f"{task.label} failed on the cluster ({exc.__class__.__name__}: {exc})")
            results.append(future.result())
        return results
    finally:
        if on_report is not None:
            client.unsubscribe_topic(topic)


def train_tasks(cells: Sequence[tuple[str, dict, Path]], force: bool) -> list[Task]:
    """One task per cell (name, resolved config, run-file path) of an experiment."""
    return [Task(name, _train_cell, (name, config, path, force)) for name, config, path in cells]


def analyze_tasks(paths: Sequence[Path], estimator_names: Sequence[str], settings: dict[str, str],
                  kernels: str | None = None) -> list[Task]:
    """One task per cell and estimator; `kernels` (host, device, auto), when given, is set as
    $IBREPRO_KERNELS on the worker (else each worker chooses by its own backend)."""
    return [Task(f"{path.stem}:{name}", _analyze_cell, (path, name, settings, kernels))
            for path in paths for name in estimator_names]


def train_experiment(config: dict, out: Path, force: bool, spec: str, spec_file: Path | None,
                     on_report: Callable[[str, dict], None]) -> list[tuple[Path, str]]:
    """Every cell of an experiment as one task each: (run-file path, outcome) per cell, with
    each worker's snapshot reports fed to `on_report(cell name, message)`."""
    from ibrepro.train.loop import experiment_cells

    check_spec(spec, spec_file)
    cells = experiment_cells(config, out)
    with connect(spec, spec_file) as client:
        outcomes = run_tasks(client, train_tasks(cells, force), on_report)
    return [(path, outcome) for (_, _, path), outcome in zip(cells, outcomes)]


def analyze_experiment(path: Path, names: Sequence[str], settings: Sequence[str], spec: str,
                       spec_file: Path | None, kernels: str | None, say: Callable[[str], None]) -> list[Path]:
    """One task per cell and estimator, after checking every cell and setting here first;
    returns the estimates files. Workers' notes go to `say` as "<cell>:<estimator>: note"."""
    from ibrepro.analysis.analyze import plan_path
    from ibrepro.analysis.request import pairs_to_settings

    check_spec(spec, spec_file)
    plans = plan_path(path, names, settings)
    names = [estimator.name for estimator, _ in plans[0].settings] if plans else []  # the default filled in
    tasks = analyze_tasks([plan.cell.path for plan in plans], names, pairs_to_settings(settings), kernels)
    with connect(spec, spec_file) as client:
        run_tasks(client, tasks, lambda label, message: say(f"{label}: {message['note']}"))
    return [plan.cell.estimates_path for plan in plans]


def _train_cell(name: str, config: dict, path: Path, force: bool, report: Callable[[dict], None]) -> str:
    from dataclasses import asdict

    from ibrepro.train.loop import train_cell

    return train_cell(name, config, path, force, on_snapshot=lambda snap: report(asdict(snap)))


def _analyze_cell(path: Path, name: str, settings: dict[str, str], kernels: str | None,
                  report: Callable[[dict], None]) -> Path:
    from ibrepro.analysis.analyze import analyze_path
    from ibrepro.analysis.estimators.placement import KERNELS_ENV

    if kernels is not None:
        os.environ[KERNELS_ENV] = kernels

    return analyze_path(path, [name], settings, progress=False, say=lambda note: report({"note": note}))[0]


def _run(fn: Callable, args: tuple, label: str, topic: str):
    """On a worker: configure JAX, then run `fn(*args, report)`."""
    from distributed import get_worker

    from ibrepro.jaxsetup import configure

    configure()
    worker = get_worker()
    return fn(*args, lambda message: worker.log_event(topic, (label, message)))


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise UserError(f"--cluster needs dask.distributed: {EXTRA_HINT}") from None
    return distributed


def _jobqueue_settings(path: Path) -> dict:
    try:
        import dask_jobqueue  # noqa: F401
        import yaml
    except ImportError:
        raise UserError(f"--cluster slurm/pbs needs dask-jobqueue: {EXTRA_HINT}") from None
    try:
        settings = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read cluster config {path} ({exc.__class__.__name__})") from None
    if not isinstance(settings, dict):
        raise UserError(f"cluster config {path} must be a mapping of dask-jobqueue settings")
    jobs = settings.get("jobs", 1)
    if type(jobs) is not int or jobs < 1:
        raise UserError(f"cluster config {path}: jobs must be a whole number >= 1, got {jobs!r}")
    return settings


def _jobqueue_class(spec: str):
    """dask-jobqueue's cluster class for `slurm` or `pbs`."""
    import dask_jobqueue

    return {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[spec]


def _first_line(exc: BaseException) -> str:
    """An exception's first sentence, on one line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return text.split(". ")[0].rstrip(".")
