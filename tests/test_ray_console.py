"""The ray executor's console: the grid's lines, one line per lost node or worker process, and
none of Ray's raw log lines (tests/test_cluster.py sees it on a real cluster under faults)."""

from __future__ import annotations

import sys
import types

import pytest

from unlearnbench.run.executors.ray import NodeWatch, RayExecutor, pushed_errors_as_lines

# What Ray 2.60 pushed to the driver while a worker node's raylet was SIGKILLed mid-grid (cut)
RAYLET_TERMINATED = (
    "Raylet is terminated. Termination is unexpected. Possible reasons include: (1) SIGKILL by the "
    "user or system OOM killer, (2) Invalid memory access from Raylet causing SIGSEGV or SIGBUS, "
    "(3) Other termination signals. Last 20 lines of the Raylet logs:\n"
    "    [state-dump] \tNodeManager.GCCancelledLeaseTombstones - 1 total (1 active)\n"
    "    [2026-12-07 11:36:50,912 I 10428 10428] (raylet) worker_pool.cc:821: [Eagerly] Start install\n"
    "    [2026-12-07 11:36:52,596 W 10428 10448] (raylet) node_manager.cc:437: Got negative used memory\n")
TASK_ON_LOST_NODE = (
    "Task _models_task failed. There are 3 retries remaining, so the task will be retried. Error: "
    "Task failed because the node it was running on is dead or unavailable. Node IP: 10.77.0.2, "
    "node ID: a8014b164e752dc959af3349e09971de15bb22705eee020487517004. This can happen if the node "
    "was preempted, had a hardware failure, or its raylet crashed unexpectedly.")
MARKED_DEAD = ("The node with node id: a8014b164e752dc959af3349e09971de15bb22705eee020487517004 and "
               "address: 10.77.0.2 and node name: 10.77.0.2 has been marked dead because the detector "
               "has missed too many heartbeats from it. This can happen when a (1) raylet crashes "
               "unexpectedly (OOM, etc.) (2) raylet has lagging heartbeats due to slow network or busy "
               "workload.")
WORKER_DIED = ("A worker died or was killed while executing a task by an unexpected system error. To "
               "troubleshoot the problem, check the logs for the dead worker. Lease ID: 0700000008")
TASK_RETRIED = "Task _trial_task failed. There are 2 retries remaining, so the task will be retried. Error:"


class FakeRay:
    """``ray.nodes()`` of a cluster whose nodes a test kills."""

    def __init__(self, nodes: dict[str, str]):
        self.state = {node_id: [address, True] for node_id, address in nodes.items()}

    def kill(self, node_id: str) -> None:
        self.state[node_id][1] = False

    def nodes(self):
        return [{"NodeID": k, "NodeManagerAddress": a, "Alive": alive} for k, (a, alive) in self.state.items()]


def test_a_lost_node_is_one_line_however_often_it_is_seen() -> None:
    lines: list[str] = []
    ray = FakeRay({"aa": "10.77.0.1", "bb": "10.77.0.2", "cc": "10.77.0.3"})
    watch = NodeWatch(ray, lines.append)
    watch.check()
    assert lines == []
    ray.kill("bb")
    watch.report("bb", "10.77.0.2")  # Ray's pushed error comes first
    watch.check()  # then the cluster's list marks it dead
    watch.check()
    assert lines == ["ray: lost node 10.77.0.2 (2 nodes left); its tasks are retried on the others"]
    ray.kill("cc")
    watch.check()
    assert lines[1:] == ["ray: lost node 10.77.0.3 (1 node left); its tasks are retried on the others"]


def test_ray_s_pushed_errors_become_one_line_each(capsys) -> None:
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from ray._private import worker as ray_worker

    lines: list[str] = []
    watch = NodeWatch(FakeRay({"a8014b164e752dc959af3349e09971de15bb22705eee020487517004": "10.77.0.2",
                               "ff": "10.77.0.1"}), lines.append)
    printer = ray_worker.print_to_stdstream
    with pushed_errors_as_lines(lines.append, watch):
        for message in (RAYLET_TERMINATED, MARKED_DEAD, TASK_ON_LOST_NODE,
                        TASK_ON_LOST_NODE.replace("_models", "_trial"), WORKER_DIED, TASK_RETRIED,
                        "Some other error\nwith a second line"):
            ray_worker.print_to_stdstream({"lines": [message], "pid": "raylet", "is_err": False},
                                          ignore_prefix=False)
    assert ray_worker.print_to_stdstream is printer  # put back after the grid
    out = capsys.readouterr()
    assert "node_manager.cc" not in out.out + out.err and "(raylet)" not in out.out + out.err
    assert lines == [
        "ray: lost node 10.77.0.2 (1 node left); its tasks are retried on the others",
        "ray: task _trial_task lost its worker process; retrying it (2 retries left)",
        "ray: Some other error with a second line"]


def test_workers_output_stays_in_the_session_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """``log_to_driver=False``: the raylets' and workers' log lines are not streamed to the
    driver (before, a lost node put dozens of raw lines around the progress bar)."""
    calls: list[dict] = []
    fake = types.SimpleNamespace(is_initialized=lambda: False, init=lambda **kw: calls.append(kw),
                                 shutdown=lambda: None, nodes=lambda: [], cluster_resources=lambda: {"CPU": 2})
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(RayExecutor, "_run", lambda self, *args, **kwargs: 0)
    lines: list[str] = []
    RayExecutor.from_params({}).run([], on_done=None, on_failed=None, log=lines.append)
    assert calls and calls[0]["log_to_driver"] is False
    assert lines[-1].startswith("ray: grid done in ") and "on 2 CPUs (0 nodes)" in lines[-1]


def test_utilization_is_the_tasks_cpu_seconds_over_the_clusters(monkeypatch: pytest.MonkeyPatch) -> None:
    from unlearnbench.run.executors.ray import utilization

    job = "02000000"
    events = [{"cat": f"task::{name}", "dur": seconds * 1e6, "args": {"task_id": "ab" * 16 + owner}}
              for name, seconds, owner in [("_load_data_task", 1, job), ("_models_task", 10, job),
                                           ("_trial_task", 9, job), ("_trial_task", 99, "01000000")]]
    fake = types.SimpleNamespace(timeline=lambda: events + [{"cat": "task:execute", "dur": 5e6}],
                                 get_runtime_context=lambda: types.SimpleNamespace(get_job_id=lambda: job))
    line = utilization(fake, wall_s=20.0, cpus=2, nodes=2, cpus_per_task=1, trials=1)
    # 20 CPU-s of this job's tasks (not the other job's) over 2 CPUs x 20 s
    assert line == "ray: grid done in 20.0 s on 2 CPUs (2 nodes): tasks busy 20.0 CPU-s, utilization 50%"
