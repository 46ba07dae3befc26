"""Executors: the registry and its plugins, the cache under two processes, Ctrl-C and resume,
device sharing, and the ``ray`` executor (equivalence with ``local``, shared work done once, a
worker killed mid-trial).

Tests that start Ray run in a private network namespace with only loopback (``unshare --net``,
then ``ip link set lo up``), so a local Ray instance binds 127.0.0.1 and nothing else; they are
skipped, with the reason, where such a namespace cannot be made.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from unlearnbench import ConfigError
from unlearnbench.cli import main
from unlearnbench.components import EXECUTORS
from unlearnbench.report.records import RunRecord, load_records
from unlearnbench.run import sharing
from unlearnbench.run.config import RunConfig
from unlearnbench.run.executors import Executor, LocalExecutor, Trial, run_grid
from unlearnbench.run.api import run_trials

TINY = dict(dataset="synthetic", arch="tiny_cnn", train_params={"epochs": 2})
CLI_TINY = ["--dataset", "synthetic", "--arch", "tiny_cnn", "--train", "epochs=2"]

# A plugin distribution: an executor that runs the grid backwards, and an unlearner that kills
# its own process the first time it runs (a worker lost mid-trial).
PLUGIN = '''
    import os, signal
    from unlearnbench import TrainRecipe, Unlearner, param
    from unlearnbench.run.executors import Executor, LocalExecutor


    class Backwards(Executor):
        """The trials in reverse order, in this process."""

        def run(self, trials, *, on_done, on_failed, log):
            order = list(range(len(trials)))[::-1]
            inner = LocalExecutor()
            inner.run([trials[i] for i in order], on_done=lambda j, r: on_done(order[j], r),
                      on_failed=lambda j, e: on_failed(order[j], e), log=log)


    class DiesOnce(Unlearner):
        """One epoch of fine-tuning; the first call (machine-wide) kills its own process."""
        epochs: int = param(1, ge=1)

        def unlearn(self, model, task):
            marker = os.environ["UB_TEST_KILL_MARKER"]
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
            recipe = TrainRecipe(epochs=self.epochs, lr=0.01, batch_size=32, schedule="constant")
            return task.fit(model, task.loader(task.retain, batch_size=32), recipe)
'''


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("site-executors")
    (site / "ub_exec_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "ub_exec_plugin-0.2.dist-info"
    info.mkdir()
    info.joinpath("METADATA").write_text("Metadata-Version: 2.1\nName: ub-exec-plugin\nVersion: 0.2\n")
    info.joinpath("entry_points.txt").write_text(
        "[unlearnbench.executors]\nbackwards = ub_exec_plugin:Backwards\n"
        "[unlearnbench.unlearners]\ndies_once = ub_exec_plugin:DiesOnce\n")
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNBENCH_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    env["UB_TEST_KILL_MARKER"] = str(site / "killed-once")
    return env


def _cli(env: dict[str, str], cwd: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unlearnbench.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def _results(records) -> list:
    """What must not depend on the executor: everything but timings, dates and the host."""
    out = []
    for r in records:
        d = r.to_dict()
        for key in ("timings", "created", "environment"):
            d.pop(key)
        d["metrics"].pop("RTE")
        out.append(d)
    return out


# -- the registry, the flags, the contract -------------------------------------------------------
def test_built_in_executors_come_from_the_entry_point_group() -> None:
    assert {"local", "ray"} <= set(EXECUTORS.names())
    assert EXECUTORS.get("local") is LocalExecutor
    assert EXECUTORS.origin("ray").package == "unlearnbench"


def test_importing_unlearnbench_does_not_import_ray() -> None:
    code = "import sys, unlearnbench, unlearnbench.run.trial, unlearnbench.cli; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_ray_is_an_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = main(["run", "--method", "ft", *CLI_TINY, "--executor", "ray",
                 "--cache-dir", str(tmp_path / "c"), "--output", str(tmp_path / "out")])
    assert code == 2
    assert 'pip install "unlearnbench[ray]"' in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, message", [
    (["--executor", "slurmm"], "Unknown executor 'slurmm'"),
    (["--gpus-per-trial", "0.5"], "--gpus-per-trial needs --executor ray"),
    (["--cpus-per-trial", "1.5"], "--cpus-per-trial 1.5 is invalid"),
    (["--executor", "ray", "--gpus-per-trial", "-1"], "gpus_per_trial=-1.0 is invalid"),
    (["--executor", "ray", "--executor-param", "retries=2"], "max_retries"),
])
def test_bad_executor_flags_fail_before_any_training(flags, message, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    code = main(["run", "--method", "ft", *CLI_TINY, *flags, "--cache-dir", str(tmp_path / "c"),
                 "--output", str(tmp_path / "out")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "out").exists()


def test_an_executor_that_skips_a_trial_is_an_error(tmp_path: Path) -> None:
    class Lazy(Executor):
        def run(self, trials, *, on_done, on_failed, log):
            pass

    trials = [Trial(RunConfig(method="ft", **TINY, output_dir=tmp_path), 0)]
    with pytest.raises(Exception, match="without running 1 trial"):
        run_grid(trials, Lazy())


def test_a_plugin_executor_runs_a_grid_through_its_entry_point(
        plugin_env: dict[str, str], shared_cache: Path, tmp_path: Path) -> None:
    listed = _cli(plugin_env, tmp_path, "ls", "executors")
    assert "backwards" in listed.stdout and "ub-exec-plugin 0.2" in listed.stdout
    common = ["run", "--method", "ft", *CLI_TINY, "--seeds", "0,1", "--cache-dir", str(shared_cache)]
    plugin = _cli(plugin_env, tmp_path, *common, "--executor", "backwards", "--output", str(tmp_path / "p"))
    assert plugin.returncode == 0, plugin.stderr
    # the backwards executor ran seed 1 first: its per-trial line comes first
    lines = [line for line in plugin.stderr.splitlines() if line.startswith("[1/2]")]
    assert lines and "seed1" in lines[0]
    local = _cli(plugin_env, tmp_path, *common, "--output", str(tmp_path / "l"))
    assert local.returncode == 0, local.stderr
    assert _results(load_records(tmp_path / "p")) == _results(load_records(tmp_path / "l"))


# -- the cache under two processes; Ctrl-C and resume ---------------------------------------------
def test_two_processes_share_the_cache_one_trains_the_other_loads(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    args = ["run", "--method", "ft", "--dataset", "synthetic", "--arch", "tiny_cnn",
            "--train", "epochs=6", "--pruner", "omp", "--sparsity", "0.5", "--cache-dir", str(cache)]
    env = {**os.environ, "UNLEARNBENCH_DEVICE_DIR": str(tmp_path / "devices")}
    procs = [subprocess.Popen([sys.executable, "-m", "unlearnbench.cli", *args, "--output",
                               str(tmp_path / f"out{i}")], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert "damaged" not in err and "rebuilding" not in err
    [a], [b] = load_records(tmp_path / "out0"), load_records(tmp_path / "out1")
    # exactly one process trained the original and pruned it; the other loaded both
    assert sorted([a.timings.original_cached, b.timings.original_cached]) == [False, True]
    assert sorted([a.timings.prune_cached, b.timings.prune_cached]) == [False, True]
    assert len(list((cache / "originals").glob("*.pt"))) == 1
    assert len(list((cache / "pruned").glob("*.pt"))) == 1
    assert _results([a]) == _results([b])


def _interruptible() -> None:
    """In the child before exec: SIGINT as a terminal delivers it. A test run started in the
    background (nohup, `cmd &` in a script) inherits SIGINT ignored, and Python then never
    raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_leaves_whole_records_and_the_rerun_resumes(tmp_path: Path) -> None:
    recipe = tmp_path / "grid.toml"
    recipe.write_text(textwrap.dedent("""
        description = "three cells"
        paper = "none"
        [run]
        dataset = "synthetic"
        arch = "tiny_cnn"
        train = { epochs = 300 }  # a second or so per original and per retrain: Ctrl-C lands mid-grid
        [grid]
        method = ["ft", "ga", "retrain"]
        pruning = ["dense"]
        forget = ["class:1"]
    """))
    output = tmp_path / "out"
    command = [sys.executable, "-m", "unlearnbench.cli", "reproduce", str(recipe), "--num-seeds", "2",
               "--output", str(output), "--cache-dir", str(tmp_path / "cache"), "--no-plots"]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_interruptible)
    deadline = time.monotonic() + 240
    while not list((output / "records").glob("*.json")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    done = load_records(output / "records")  # every file there is a whole, valid record
    assert 1 <= len(done) < 6
    assert not [p for p in (output / "records").iterdir() if p.suffix != ".json"]  # no temp files

    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"6 runs, {6 - len(done)} to do" in rerun.stderr
    records = load_records(output / "records")
    assert len(records) == 6
    assert {r.run_id: r.created for r in records if r.run_id in {d.run_id for d in done}} == \
        {d.run_id: d.created for d in done}  # finished trials were not run again


def test_a_tuning_study_interrupted_keeps_finished_trials_and_resumes(tmp_path: Path) -> None:
    """Ctrl-C during ``unlearnbench tune``: exit 130, only whole records left, no values written;
    the same command then runs only the trials left and writes the study."""
    output = tmp_path / "study"
    command = [sys.executable, "-m", "unlearnbench.cli", "tune", "ft", "ga", "--trials", "2",
               "--forget", "class:1", "--dataset", "synthetic", "--arch", "tiny_cnn", "--train", "epochs=300",
               "--output", str(output), "--values", str(tmp_path / "values.json"),
               "--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_interruptible)
    deadline = time.monotonic() + 240
    while not list((output / "records").glob("*.json")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err, err
    done = load_records(output / "records")  # every file there is a whole, valid record
    assert 1 <= len(done) < 6 and not (tmp_path / "values.json").exists()
    assert not [p for p in (output / "records").iterdir() if p.suffix != ".json"]  # no temp files

    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"6 in all, {len(done)} recorded already" in rerun.stderr
    records = load_records(output / "records")
    assert len(records) == 6 and (tmp_path / "values.json").is_file()
    assert {r.run_id: r.created for r in records if r.run_id in {d.run_id for d in done}} == \
        {d.run_id: d.created for d in done}  # finished trials were not run again


# -- device sharing and CPU threads ---------------------------------------------------------------
def test_timed_calls_take_turns_and_count_the_trials_on_the_device(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNLEARNBENCH_DEVICE_DIR", str(tmp_path))
    cpu = torch.device("cpu")
    with sharing.on_device(cpu):
        assert sharing.trials_on(cpu) == 1
        with sharing.TimedSlot(cpu) as slot:
            pass
        assert slot.shared_by == 0
        # another process of this grid (a worker) on the device, holding the timing lock for a moment
        code = textwrap.dedent(f"""
            import os, time, torch
            os.environ["UNLEARNBENCH_DEVICE_DIR"] = {str(tmp_path)!r}
            from unlearnbench.run import sharing
            sharing.join_grid({sharing.grid_id()!r})
            with sharing.on_device(torch.device("cpu")):
                with sharing.TimedSlot(torch.device("cpu")):
                    print("in", flush=True)
                    time.sleep(1.5)
                time.sleep(1.5)  # still on the device (evaluating) after its timed call
        """)
        other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert other.stdout.readline().strip() == "in"
        start = time.perf_counter()
        with sharing.TimedSlot(cpu) as slot:  # waits for the other's timed call to end
            waited = time.perf_counter() - start
        other.wait(timeout=60)
    assert waited > 0.5
    assert slot.shared_by == 1  # the other trial was still on the device when the clock started
    assert sharing.trials_on(cpu) == 0  # the other process is gone; its file does not count


def test_a_killed_process_does_not_count_as_a_trial_on_the_device(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import os, signal, torch
        os.environ["UNLEARNBENCH_DEVICE_DIR"] = {str(tmp_path)!r}
        from unlearnbench.run import sharing
        sharing.join_grid({sharing.grid_id()!r})
        with sharing.on_device(torch.device("cpu")):
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    subprocess.run([sys.executable, "-c", code])
    os.environ["UNLEARNBENCH_DEVICE_DIR"] = str(tmp_path)
    try:
        assert len(list((tmp_path / "cpu").glob("grid-*/trial-*"))) == 1  # left behind ...
        assert sharing.trials_on(torch.device("cpu")) == 0  # ... but not counted, and cleaned up
        assert not list((tmp_path / "cpu").glob("grid-*/trial-*"))
    finally:
        del os.environ["UNLEARNBENCH_DEVICE_DIR"]


def test_an_unrelated_process_on_the_device_is_not_sharing(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Another unlearnbench process (not this grid's) on the device: a lone run is not shared."""
    monkeypatch.setenv("UNLEARNBENCH_DEVICE_DIR", str(tmp_path))
    monkeypatch.delenv(sharing.GRID_ENV, raising=False)
    code = textwrap.dedent(f"""
        import os, time, torch
        os.environ["UNLEARNBENCH_DEVICE_DIR"] = {str(tmp_path)!r}
        os.environ.pop("UNLEARNBENCH_GRID", None)
        from unlearnbench.run import sharing
        with sharing.on_device(torch.device("cpu")):
            print("in", flush=True)
            time.sleep(30)
    """)
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "in"
        cpu = torch.device("cpu")
        with sharing.on_device(cpu), sharing.TimedSlot(cpu) as slot:
            assert sharing.trials_on(cpu) == 1
        assert slot.shared_by == 0
    finally:
        other.kill()
        other.wait(timeout=60)


def test_the_leaderboard_warns_when_rte_was_measured_under_sharing(make_record) -> None:
    from unlearnbench.report.leaderboard import render
    from unlearnbench.report.records import Timings

    alone = make_record()
    assert "not comparable" not in render([alone])
    shared = make_record(seed=1, timings=Timings(3.0, True, 0.0, True, 1.5, 0.5, 0.1, shared_by=2))
    text = render([alone, shared])
    assert "RTE of 1 of 2 runs was measured while other trials shared the device (up to 2" in text


def test_a_trial_uses_the_cpus_it_was_given(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import torch
        from unlearnbench.cpus import cpu_budget, set_cpu_budget
        from unlearnbench.data.streaming import decode_pool
        set_cpu_budget(1)
        print(torch.get_num_threads(), cpu_budget(), decode_pool()._max_workers)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1", "1"]


def test_local_records_equal_the_ones_of_run(shared_cache: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from unlearnbench.cpus import cpu_budget

    monkeypatch.setenv("UNLEARNBENCH_DEVICE_DIR", str(tmp_path / "devices"))  # alone on the CPU
    threads, budget = torch.get_num_threads(), cpu_budget()
    config = RunConfig(method="ft", **TINY, seeds=(0, 1), cache_dir=shared_cache,
                       output_dir=tmp_path / "a")
    first = run_trials(config)
    again = run_grid([Trial(config, 1), Trial(config, 0)], LocalExecutor(cpus_per_trial=1))
    assert _results(first) == _results(again[::-1])
    assert all(isinstance(r, RunRecord) and r.timings.shared_by == 0 for r in first)
    assert (torch.get_num_threads(), cpu_budget()) == (threads, budget)  # restored afterwards


# -- ray, on loopback only ----------------------------------------------------------------------
def _loopback(command: list[str], env: dict[str, str], cwd: Path, timeout: int = 400):
    """Run ``command`` in a private network namespace whose only interface is loopback."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("Ray tests need `unshare` and `ip` to start Ray on loopback only")
    probe = subprocess.run(["unshare", "--net", "sh", "-c", "ip link set lo up"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a loopback-only network namespace (unshare --net needs root): "
                    f"{probe.stderr.strip()}")
    pytest.importorskip("ray", reason="the ray extra is not installed")
    script = "ip link set lo up && exec \"$@\""
    return subprocess.run(["unshare", "--net", "sh", "-c", script, "sh", *command], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_ray_gives_the_records_of_local_and_shares_models(
        plugin_env: dict[str, str], shared_cache: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "grid.toml"
    recipe.write_text(textwrap.dedent("""
        description = "two methods, dense and pruned"
        paper = "none"
        [run]
        dataset = "synthetic"
        arch = "tiny_cnn"
        train = { epochs = 2 }
        [grid]
        method = ["ft", "ga"]
        pruning = ["dense", "omp:0.5"]
        forget = ["class:1"]
    """))
    common = [sys.executable, "-m", "unlearnbench.cli", "reproduce", str(recipe), "--num-seeds", "2",
              "--no-plots"]
    ray_cache = tmp_path / "ray-cache"
    result = _loopback([*common, "--executor", "ray", "--cpus-per-trial", "1", "--executor-param",
                        "num_cpus=2", "--cache-dir", str(ray_cache), "--output", str(tmp_path / "ray")],
                       plugin_env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # 8 trials from 2 originals (one per seed) and 2 pruned models: each built by one task
    assert "ray: 8 trials, 1 datasets, 2 original and 2 pruned models" in result.stderr
    assert "Epoch" not in result.stderr and "train original:" not in result.stderr  # no worker bars
    assert len(list((ray_cache / "originals").glob("*.pt"))) == 2
    assert len(list((ray_cache / "pruned").glob("*.pt"))) == 2
    local = subprocess.run([*common, "--cache-dir", str(shared_cache), "--output", str(tmp_path / "local")],
                           env=plugin_env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert local.returncode == 0, local.stderr
    ray_records = load_records(tmp_path / "ray" / "records")
    assert len(ray_records) == 8
    assert _results(ray_records) == _results(load_records(tmp_path / "local" / "records"))


def test_ray_retries_a_trial_whose_worker_was_killed(plugin_env: dict[str, str], shared_cache: Path,
                                                     tmp_path: Path) -> None:
    output = tmp_path / "out"
    result = _loopback([sys.executable, "-m", "unlearnbench.cli", "run", "--method", "dies_once",
                        *CLI_TINY, "--executor", "ray", "--executor-param", "num_cpus=1",
                        "--cache-dir", str(shared_cache), "--output", str(output)],
                       plugin_env, tmp_path)
    assert Path(plugin_env["UB_TEST_KILL_MARKER"]).exists()  # the first attempt's worker died
    assert result.returncode == 0, result.stderr[-3000:]
    [path] = output.iterdir()  # exactly one record, and nothing else
    record = json.loads(path.read_text())
    assert record["method"] == "dies_once" and record["seed"] == 0


def test_a_tuning_study_on_ray_equals_the_local_one(plugin_env: dict[str, str], shared_cache: Path,
                                                     tmp_path: Path) -> None:
    """``unlearnbench tune`` hands its candidates to any executor: on Ray they are the same
    trials, with the same records, scores and choices as in this process."""
    command = [sys.executable, "-m", "unlearnbench.cli", "tune", "ft", "ga", "--trials", "2",
               "--forget", "class:1", *CLI_TINY, "--cache-dir", str(shared_cache)]
    ray = _loopback([*command, "--output", str(tmp_path / "ray"), "--executor", "ray",
                     "--cpus-per-trial", "1", "--executor-param", "num_cpus=2"], plugin_env, tmp_path)
    assert ray.returncode == 0, ray.stderr[-3000:]
    local = subprocess.run([*command, "--output", str(tmp_path / "local")], env=plugin_env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert local.returncode == 0, local.stderr[-3000:]

    def study(name: str) -> dict:
        cells = json.loads((tmp_path / name / "study.json").read_text())["cells"]
        return {key: {method: ([(c["params"], c["oracle"], c["oracle-free"]) for c in entry["candidates"]],
                               entry["chosen"]) for method, entry in cell["methods"].items()}
                for key, cell in cells.items()}
    assert study("ray") == study("local")
    assert len(load_records(tmp_path / "ray" / "records")) == 2 * 2 + 2  # candidates, Retrain, none
    assert _results(load_records(tmp_path / "ray" / "records")) == \
        _results(load_records(tmp_path / "local" / "records"))


def test_ray_driver_interrupted_keeps_finished_records_and_resumes(tmp_path: Path) -> None:
    recipe = tmp_path / "grid.toml"
    recipe.write_text(textwrap.dedent("""
        description = "four cells"
        paper = "none"
        [run]
        dataset = "synthetic"
        arch = "tiny_cnn"
        train = { epochs = 300 }  # a second or so per original and per retrain: Ctrl-C lands mid-grid
        [grid]
        method = ["ft", "ga", "retrain", "rl"]
        pruning = ["dense"]
        forget = ["class:1"]
    """))
    output = tmp_path / "out"
    command = [sys.executable, "-m", "unlearnbench.cli", "reproduce", str(recipe), "--no-plots",
               "--output", str(output), "--cache-dir", str(tmp_path / "cache"), "--executor", "ray",
               "--executor-param", "num_cpus=1", "--num-seeds", "3"]  # 12 trials, one at a time
    _loopback(["true"], dict(os.environ), tmp_path)  # skips here when no namespace can be made
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                             *command], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_interruptible)  # exec: the driver keeps this pid
    deadline = time.monotonic() + 300
    while not list((output / "records").glob("*.json")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    done = load_records(output / "records")
    assert 1 <= len(done) < 12
    assert not [p for p in (output / "records").iterdir() if p.suffix != ".json"]
    rerun = _loopback(command, dict(os.environ), tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"12 runs, {12 - len(done)} to do" in rerun.stderr
    assert len(load_records(output / "records")) == 12


@pytest.mark.parametrize("address, expected", [(None, "local"), ("10.0.0.1:6379", "10.0.0.1:6379")])
def test_ray_without_an_address_starts_its_own_instance(monkeypatch, address, expected) -> None:
    """Without --ray-address the executor starts a local instance of its own, even where a cluster
    already runs on the machine (plain ``ray.init()`` would join that one, and refuse num_cpus)."""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from unlearnbench.run.executors import ray as ray_module

    class Stop(Exception):
        pass

    class FakeRay:
        def is_initialized(self) -> bool:
            return False

        def init(self, **kwargs):
            self.kwargs = kwargs
            raise Stop

    fake = FakeRay()
    monkeypatch.setattr(ray_module, "import_ray", lambda: fake)
    executor = EXECUTORS.get("ray")(address=address, num_cpus=None if address else 1)
    with pytest.raises(Stop):
        executor.run([], on_done=lambda r: None, on_failed=lambda t, e: None, log=lambda m: None)
    assert fake.kwargs["address"] == expected
    assert fake.kwargs["num_cpus"] == (1 if address is None else None)
