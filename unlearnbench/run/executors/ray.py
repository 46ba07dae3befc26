"""The ``ray`` executor: the trials of a grid as Ray Core tasks, on a local instance or a cluster.

Shared work is done once, as a task whose result is an object reference that every consumer
takes as an argument (a dependency, not a race on a file):

* one task per distinct decoded dataset (configuration's dataset, parameters, root and subset);
* one task per distinct original model (dataset, architecture, recipe, seed, ...), returning
  its cache entry (weights, rewind snapshots, seconds);
* one task per distinct pruned model, taking the original's entry;
* one task per trial, taking the dataset and the entries of its models, returning its record.

Models travel through Ray's object store, so a cluster needs no shared filesystem; each node
still keeps its own on-disk cache (``--cache-dir``), under the cache's file locks. Records come
back to the driver, which writes them. A task whose worker process died is retried by Ray
(``max_retries``); an exception raised by a trial is not retried and is reported as a failure.
Ray is an optional extra: ``pip install "unlearnbench[ray]"``.

The driver's console shows the grid, not Ray: the workers' and raylets' own log lines stay in
the Ray session's log folder (``log_to_driver=False``; a trial's error still comes back with its
result), and a node that dies while the grid runs is one line, ``ray: lost node ADDRESS ...``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from ...cpus import set_cpu_budget
from ...errors import ConfigError
from ...params import param
from ...storage import CheckpointCache, stable_hash
from ..config import RunConfig, prepare
from ..sharing import grid_id, join_grid, on_device, set_exclusive_timing
from ..trial import load_data, setup_trials, trial_models, trial_record
from . import Executor, data_key

Entries = dict[tuple[str, str], dict[str, Any]]


def import_ray():
    try:
        import ray  # an optional extra (unlearnbench[ray]): imported when the executor is used
    except ImportError as exc:
        raise ConfigError(f'--executor ray needs Ray, which is not installed ({exc}): '
                          f'pip install "unlearnbench[ray]"') from None
    return ray


class RayExecutor(Executor):
    """Each trial (and each shared model) a Ray task; see the module docstring."""

    address: str | None = param(None, help="a running Ray cluster (ray start --head ...); "
                                           "default: start a local instance")
    cpus_per_trial: float = param(1.0, gt=0, help="CPUs a task reserves (and its torch threads)")
    gpus_per_trial: float = param(0.0, ge=0, help="GPUs a task reserves (0.25: four per GPU)")
    max_retries: int = param(3, ge=0, help="retries of a task whose worker process died")
    exclusive_timing: bool = param(True, help="at most one timed unlearning call per device")
    num_cpus: int | None = param(None, ge=1, help="CPUs of a local instance (default: all)")

    def validate(self) -> None:
        if self.address is not None and self.num_cpus is not None:
            raise ConfigError(f"num_cpus={self.num_cpus} is invalid with address={self.address!r}: "
                              f"a running cluster has its own CPUs")
        import_ray()  # a missing extra is named before any trial starts

    claims_trials = True

    def run(self, trials, *, on_done, on_failed, log, claims=None) -> None:
        ray = import_ray()
        started = not ray.is_initialized()
        if started:
            # log_to_driver=False: the raylets' and workers' raw log lines (node_manager.cc,
            # retryable_grpc_client.cc, a dead raylet's last 20 lines, ...) stay in the session's
            # log folder instead of streaming into the console around the progress bar
            # address "local": a new instance of its own even where a cluster already runs on this
            # machine (Ray would join that one); --ray-address names a cluster to join
            ray.init(address=self.address or "local", num_cpus=self.num_cpus if not self.address else None,
                     include_dashboard=False, logging_level="warning", log_to_driver=False,
                     runtime_env={"env_vars": {"TQDM_DISABLE": "1"}})  # no per-epoch bars from workers
        nodes = NodeWatch(ray, log)  # asks the cluster, and never raises
        # until the connection this executor made is shut down: Ray may push a node's loss after
        # the grid's last record
        with pushed_errors_as_lines(log, nodes):
            try:
                cpus, start = ray.cluster_resources().get("CPU", 0), time.perf_counter()
                submitted = self._run(ray, trials, on_done, on_failed, log, nodes, claims,
                                      cancel=not started)
                log(utilization(ray, time.perf_counter() - start, cpus,
                                len(nodes.alive) + len(nodes.lost), self.cpus_per_trial, submitted))
            finally:
                if started:
                    ray.shutdown()

    def _run(self, ray, trials, on_done, on_failed, log, nodes: NodeWatch, claims=None, *,
             cancel: bool = True) -> int:
        """Run the grid; returns how many trial tasks it submitted. ``cancel``: on Ctrl-C,
        cancel the tasks still running (when this process keeps its connection to Ray)."""
        options = dict(num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial,
                       max_retries=self.max_retries, retry_exceptions=False)
        # the workers count their trials with this grid's (sharing.py), not with other drivers'
        setup = (max(1, int(self.cpus_per_trial)), self.exclusive_timing, grid_id())
        load = ray.remote(_load_data_task).options(**{**options, "num_gpus": 0})
        models = ray.remote(_models_task).options(**options)
        trial_task = ray.remote(_trial_task).options(**options)
        keys = [_shared_keys(trial) for trial in trials]
        datasets: dict[str, Any] = {}
        originals: dict[str, Any] = {}
        pruned: dict[str, Any] = {}
        pending: dict[Any, int] = {}
        submitted = 0

        def submit(index: int) -> None:
            """The trial's task, after those of the shared work it needs (each made once)."""
            nonlocal submitted
            config, seed = trials[index].single, trials[index].seed
            dataset, original_key, pruned_key = keys[index]
            if dataset not in datasets:
                datasets[dataset] = load.remote(config, setup)
            data = datasets[dataset]
            if original_key not in originals:
                dense = dataclasses.replace(config, pruner=None, sparsity=None, pruner_params={})
                originals[original_key] = models.remote(dense, seed, setup, data)
            entries = [originals[original_key]]
            if pruned_key is not None:
                if pruned_key not in pruned:
                    pruned[pruned_key] = models.remote(config, seed, setup, data, *entries)
                entries.append(pruned[pruned_key])
            pending[trial_task.remote(config, seed, setup, data, *entries)] = index
            submitted += 1

        resources = ray.cluster_resources()
        log(f"ray: {len(trials)} trials, {len({k[0] for k in keys})} datasets, "
            f"{len({k[1] for k in keys})} original and {len({k[2] for k in keys} - {None})} pruned "
            f"models on {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs")
        if claims is None:
            for index in range(len(trials)):
                submit(index)
        # with claims, trials are taken as the cluster can start them (twice what runs at once,
        # so the next ones' shared models build meanwhile): what is not taken yet is left to
        # any concurrent process on the same output folder
        window = 2 * self._slots(resources)
        try:
            while True:
                while claims is not None and len(pending) < window and \
                        (index := claims.next(wait=False)) is not None:
                    submit(index)
                if not pending:
                    # nothing of this grid runs: wait for a trial another process holds
                    if claims is None or (index := claims.next(wait=True)) is None:
                        break
                    submit(index)
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=NodeWatch.INTERVAL_S)
                nodes.check()
                for ref in ready:
                    index = pending.pop(ref)
                    try:
                        record = ray.get(ref)
                    except Exception as exc:  # the trial's (or a model's) error, or a lost worker
                        on_failed(index, _cause(exc))
                    else:
                        on_done(index, record)
        except BaseException:  # Ctrl-C: finished records are written; stop the rest
            # A connection this executor made is shut down next, and Ray ends the tasks of a job
            # whose driver left: cancelling them first only races their replies (Ray 2.60's
            # driver can abort on "Tried to complete task that was not pending").
            if cancel:
                for ref in pending:
                    ray.cancel(ref, force=True)
            raise
        return submitted

    def _slots(self, resources: Mapping[str, float]) -> int:
        """How many trials the cluster runs at once."""
        slots = resources.get("CPU", 0) / self.cpus_per_trial
        if self.gpus_per_trial:
            slots = min(slots, resources.get("GPU", 0) / self.gpus_per_trial)
        return max(1, int(slots))


def utilization(ray, wall_s: float, cpus: float, nodes: int, cpus_per_task: float, trials: int, *,
                settle_s: float = 5.0) -> str:
    """A ``ray: ...`` line with the grid's wall clock and how busy it kept the cluster: the
    CPU-seconds its tasks held (each task's duration on a worker, from Ray's timeline of this
    job, times the CPUs it reserves) over the cluster's CPUs (when the grid started) times the
    wall clock. ``trials``: the trial tasks this grid submitted (their events are awaited)."""
    text = f"ray: grid done in {wall_s:.1f} s on {cpus:g} CPUs ({nodes} node{'s' if nodes != 1 else ''})"
    try:
        job = ray.get_runtime_context().get_job_id()
        deadline = time.monotonic() + settle_s
        while True:  # tasks report their events to the cluster about once a second
            with _quiet("ray._private.state"):  # "ray.timeline() will read ... from the dashboard"
                timeline = ray.timeline()
            events = [e for e in timeline if str(e.get("cat", "")).startswith("task::")
                      and str(e.get("args", {}).get("task_id", "")).endswith(job)]
            done = sum(1 for e in events if str(e.get("cat")).endswith("_trial_task"))
            if done >= trials or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    except Exception:  # no timeline from this cluster: the wall clock alone
        return text
    busy = sum(float(e.get("dur", 0)) for e in events) / 1e6 * cpus_per_task
    share = busy / (cpus * wall_s) if cpus and wall_s else 0.0
    return f"{text}: tasks busy {busy:.1f} CPU-s, utilization {100 * share:.0f}%"


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Ray's ``logger`` says only errors while the block runs."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


class NodeWatch:
    """One log line per node of the cluster that dies while the grid runs (Ray retries the
    tasks it held on the others, up to ``max_retries``). A loss is seen either in the
    cluster's list of nodes (which marks a node dead once its health checks fail, some
    seconds later) or, sooner, in the error Ray pushes for a task that was running there."""

    INTERVAL_S = 2.0  # how often the driver asks the cluster for its nodes

    def __init__(self, ray, log):
        self.ray, self.log = ray, log
        self.alive: dict[str, str] = {}  # node id -> address, of every node seen alive
        self.lost: set[str] = set()
        self._lock = threading.Lock()  # report() also runs on Ray's error-listening thread
        self.check()

    def check(self) -> None:
        try:
            nodes = self.ray.nodes()
        except Exception:  # the cluster cannot answer now; the grid's own calls say why
            return
        for node in nodes:
            node_id = node.get("NodeID")
            with self._lock:
                if node.get("Alive") and node_id not in self.lost:
                    self.alive[node_id] = node.get("NodeManagerAddress", "?")
                address = self.alive.get(node_id) if not node.get("Alive") else None
            if address is not None:
                self.report(node_id, address)

    def report(self, node_id: str, address: str) -> None:
        """Node ``node_id`` (at ``address``) is lost: say so, the first time."""
        with self._lock:
            if node_id in self.lost:
                return
            self.lost.add(node_id)
            self.alive.pop(node_id, None)
            left = len(self.alive)
        self.log(f"ray: lost node {address} ({left} node{'s' if left != 1 else ''} left); "
                 f"its tasks are retried on the others")


# what Ray pushes to the driver about a lost node (NodeWatch says it in one line instead)
_NODE_LOSS = re.compile(r"Raylet is terminated|node it was running on is dead|"
                        r"node \S+ (is|was marked) dead|has been marked dead", re.IGNORECASE)
# where a message names the node: "Node IP: A, node ID: X" or "node id: X and address: A"
_NODE = (re.compile(r"Node IP: (?P<address>[^\s,]+), node ID: (?P<id>[0-9a-f]+)"),
         re.compile(r"node id: (?P<id>[0-9a-f]+) and address: (?P<address>[^\s,]+)"))
# a worker process lost: Ray pushes two messages, the second says what happens next
_WORKER_DIED = re.compile(r"^A worker died or was killed")
_RETRIED = re.compile(r"^Task (\S+) failed\. There are (\d+) retries remaining")


@contextlib.contextmanager
def pushed_errors_as_lines(log, nodes: NodeWatch | None = None) -> Iterator[None]:
    """While the grid runs, the errors the cluster pushes to the driver are one line each.

    Ray's driver prints them to stdout whatever ``log_to_driver`` says: for a lost node, the dead
    raylet's last 20 log lines (``node_manager.cc``, ``retryable_grpc_client.cc``, state dumps)
    and a paragraph per task it held; for a lost worker process, two paragraphs. Those about a
    lost node are left out (:class:`NodeWatch` logs one line per node); a lost worker process is
    ``ray: task NAME lost its worker process; retrying it (N retries left)``; any other error
    becomes ``ray: FIRST 200 CHARACTERS``. The hook is Ray's
    own printer (``ray._private.worker.print_to_stdstream``); where a Ray release lacks it,
    nothing changes.
    """
    try:
        from ray._private import worker as ray_worker  # Ray's printer, where this release has it
    except ImportError:  # pragma: no cover - another Ray layout
        ray_worker = None
    printer = getattr(ray_worker, "print_to_stdstream", None)
    if printer is None:
        yield
        return

    def one_line(data, *args, **kwargs):
        if not isinstance(data, dict) or data.get("pid") != "raylet":
            return printer(data, *args, **kwargs)
        text = " ".join(" ".join(str(line) for line in data.get("lines") or []).split())
        if not text:
            return
        if _NODE_LOSS.search(text):
            for pattern in _NODE if nodes is not None else ():
                if node := pattern.search(text):
                    nodes.report(node.group("id"), node.group("address"))
                    break
            return
        if _WORKER_DIED.search(text):
            return
        if retried := _RETRIED.search(text):
            log(f"ray: task {retried.group(1)} lost its worker process; retrying it "
                f"({retried.group(2)} retries left)")
            return
        log("ray: " + (text if len(text) <= 200 else text[:200] + " ..."))

    ray_worker.print_to_stdstream = one_line
    try:
        yield
    finally:
        ray_worker.print_to_stdstream = printer


def _cause(exc: BaseException) -> BaseException:
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


# -- what identifies shared work (coarser keys only cost duplicate work, never wrong results:
#    a model is handed over under its exact cache key and looked up by it) --------------------
def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _original_key(config: RunConfig, seed: int) -> str:
    plan = prepare(config)
    poison = str(plan.forget) if plan.forget.poisons else None  # a poisoned original is another model
    # a population's original depends on its hold-out and excluded examples, not on the rest
    membership = {k: config.population.get(k) for k in ("split_seed", "exclude")} if config.population else None
    return _json([data_key(config), plan.arch, plan.recipe.get_params(), seed, config.val_fraction,
                  config.device, config.precision, config.compile, poison, membership])


def _pruned_key(config: RunConfig, seed: int) -> str:
    return _json([_original_key(config, seed), config.pruner, config.sparsity,
                  dict(config.pruner_params)])


def _shared_keys(trial) -> tuple[str, str, str | None]:
    """What trial shares with others: its dataset's, original's and pruned model's keys."""
    config = trial.single
    return (data_key(config), _original_key(config, trial.seed),
            _pruned_key(config, trial.seed) if config.pruner is not None else None)


# -- the tasks (module-level functions: workers import them from the installed package) --------
def _setup(setup: tuple[int, bool, str]) -> None:
    cpus, exclusive, grid = setup
    set_cpu_budget(cpus)
    set_exclusive_timing(exclusive)
    join_grid(grid)


def _load_data_task(config: RunConfig, setup: tuple[int, bool, str]):
    _setup(setup)
    # decoding needs no accelerator, and this task reserves none: resolve the device as the CPU
    return load_data(prepare(dataclasses.replace(config, device="cpu", compile="none")))


def _models_task(config: RunConfig, seed: int, setup: tuple[int, bool, str], data, *given: Entries) -> Entries:
    """The original (and, with a pruner, the pruned) model of a trial, as cache entries."""
    _setup(setup)
    plan = prepare(config)
    cache = HandedOver(plan.cache, given)
    with on_device(plan.runtime.device):
        trial_models(dataclasses.replace(plan, cache=cache), data, seed)
    return cache.used


def _trial_task(config: RunConfig, seed: int, setup: tuple[int, bool, str], data, *given: Entries):
    _setup(setup)
    plan = prepare(config)
    plan = dataclasses.replace(plan, cache=HandedOver(plan.cache, given))
    return trial_record(plan, data, seed, probes=setup_trials(plan, data))


class HandedOver:
    """The checkpoint cache of a task: entries handed over by other tasks first, then the
    node's own disk cache. ``used`` holds every entry the task loaded or built."""

    def __init__(self, disk: CheckpointCache, given: tuple[Entries, ...] = ()):
        self.disk = disk
        self.given: Entries = {key: payload for entries in given for key, payload in entries.items()}
        self.used: Entries = {}

    @staticmethod
    def key(kind: str, description: Mapping[str, Any]) -> tuple[str, str]:
        return kind, stable_hash(description)

    @contextlib.contextmanager
    def lock(self, kind: str, description: Mapping[str, Any]) -> Iterator[None]:
        if self.key(kind, description) in self.given:
            yield
        else:
            with self.disk.lock(kind, description):
                yield

    def load(self, kind: str, description: Mapping[str, Any]) -> dict[str, Any] | None:
        key = self.key(kind, description)
        payload = self.given.get(key)
        if payload is None:
            payload = self.disk.load(kind, description)
        if payload is not None:
            self.used[key] = payload
        return payload

    def save(self, kind: str, description: Mapping[str, Any], payload: dict[str, Any]):
        self.used[self.key(kind, description)] = payload
        return self.disk.save(kind, description, payload)
