"""A real multi-node Ray cluster on one machine, in network namespaces, for grids under faults.

    sudo python benchmarks/cluster.py --nodes 2 -- unlearnbench run --method ft --seeds 0,1,2,3 \\
        --train-size 300 --test-size 100 --executor ray --cpus-per-trial 1 --output /tmp/out

builds a private network that exists only inside namespaces (a bridge in a namespace of its
own, ``PREFIX-sw``, and one namespace per node, ``PREFIX-n1`` (the head, 10.77.0.1),
``PREFIX-n2`` (10.77.0.2), ..., each joined to the bridge by a veth pair), starts a Ray head in the
first (``ray start --head --node-ip-address 10.77.0.1``) and a worker node in each other
(``ray start --address 10.77.0.1:6379``), runs the command in the head's namespace with
``--ray-address 10.77.0.1:6379`` added, and takes everything down again. Nothing listens in the
machine's own network namespace: the driver runs inside the head's.

Each node is a separate machine as far as Ray can tell: its own home folder (so its own
``~/.ray/auth_token``), its own namespace and address. Ray 2.60's token authentication is on:
the head generates a token (``ray get-auth-token --generate``), and the worker nodes and the
driver get it as ``RAY_AUTH_TOKEN`` with ``RAY_AUTH_MODE=token``, the steps docs/executors.md
gives for a real cluster. Ray's files go to a folder of the cluster's own (``RAY_TMPDIR``), so a
Ray instance already running on the machine is neither seen nor touched, and the cluster is
stopped by killing exactly the processes inside its namespaces (never ``ray stop``, which stops
every Ray process of the machine).

``NamespaceCluster`` is the same as a context manager for tests (tests/test_cluster.py): it
finds a node's raylet and its worker processes to kill them mid-grid. Needs root, ``ip`` (iproute2)
with network-namespace and veth support, and Ray (``pip install "unlearnbench[ray]"``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PORT = 6379


class ClusterError(RuntimeError):
    """The cluster could not be built or started; the message says which step failed."""


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None: they can), for a test's skip reason."""
    if sys.platform != "linux":
        return f"network namespaces are Linux's; this is {sys.platform}"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing"
    probe = f"ubprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    try:
        veth = subprocess.run(["ip", "-n", probe, "link", "add", "name", "ubva", "type", "veth", "peer", "name", "ubvb"],
                              capture_output=True, text=True)
        if veth.returncode != 0:
            return f"cannot make a veth pair: {veth.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    try:
        import ray  # noqa: F401
    except ImportError:
        return 'Ray is not installed (pip install "unlearnbench[ray]")'
    return None


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise ClusterError(f"{' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
    return result


class NamespaceCluster:
    """``nodes`` Ray nodes of ``cpus`` CPUs each, one per network namespace (see the module
    docstring); ``env``: variables every node and the driver get (e.g. ``PYTHONPATH``)."""

    def __init__(self, nodes: int = 2, cpus: int = 1, *, subnet: str = "10.77.0",
                 env: dict[str, str] | None = None, workdir: Path | None = None,
                 object_store_bytes: int = 200 * 1024 ** 2):
        if not 1 <= nodes <= 200:
            raise ClusterError(f"nodes={nodes} is invalid: expected 1 to 200")
        self.nodes, self.cpus, self.subnet = nodes, cpus, subnet
        self.prefix = f"ub{uuid.uuid4().hex[:6]}"  # interface and namespace names stay short
        # short: Ray's socket paths under it must fit in 107 bytes
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="ubc", dir="/tmp"))
        self.extra_env = dict(env or {})
        self.object_store_bytes = object_store_bytes
        self.token: str | None = None
        self.namespaces: list[str] = []
        self.ray = str(Path(sys.executable).with_name("ray"))
        if not Path(self.ray).exists():
            self.ray = shutil.which("ray") or "ray"

    # -- names ---------------------------------------------------------------------------
    def namespace(self, node: int) -> str:
        return f"{self.prefix}-n{node}"

    def address(self, node: int = 1) -> str:
        return f"{self.subnet}.{node}"

    @property
    def head(self) -> str:
        return f"{self.address(1)}:{PORT}"

    def env(self, node: int) -> dict[str, str]:
        """The environment of node ``node``'s processes (and, for node 1, of the driver)."""
        home = self.workdir / f"home-n{node}"
        home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.extra_env, "HOME": str(home), "RAY_TMPDIR": str(self.workdir / "ray"),
               "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0",
               # a dead node is marked dead after 3 missed health checks a second apart (Ray's
               # default waits about 30 s), so that a fault test need not wait that long
               "RAY_health_check_initial_delay_ms": "1000", "RAY_health_check_period_ms": "1000",
               "RAY_health_check_timeout_ms": "1000", "RAY_health_check_failure_threshold": "3",
               # trials of every node share this machine's cores: count them together (sharing.py)
               "UNLEARNBENCH_DEVICE_DIR": str(self.workdir / "devices")}
        if self.token is not None and node != 1:
            env["RAY_AUTH_TOKEN"] = self.token  # the head's token, as copied to another machine
        return env

    # -- building and starting -------------------------------------------------------------
    def __enter__(self) -> NamespaceCluster:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def up(self, timeout: float = 180) -> None:
        """The network, then the head, then each worker node; returns once all have joined."""
        self._network()
        self._token()
        self.start_node(1)
        for node in range(2, self.nodes + 1):
            self.start_node(node)
        self.wait_for_nodes(self.nodes, timeout)

    def _network(self) -> None:
        switch = f"{self.prefix}-sw"
        _run("ip", "netns", "add", switch)
        self.namespaces.append(switch)
        _run("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", switch, "link", "set", "br0", "up")
        for node in range(1, self.nodes + 1):
            ns = self.namespace(node)
            _run("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            # the pair is made inside the namespaces: no interface ever exists in the machine's own
            _run("ip", "link", "add", f"{self.prefix}v{node}", "netns", ns, "type", "veth", "peer",
                 "name", f"p{node}", "netns", switch)
            _run("ip", "-n", ns, "link", "set", f"{self.prefix}v{node}", "name", "eth0")
            _run("ip", "-n", ns, "addr", "add", f"{self.address(node)}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "-n", switch, "link", "set", f"p{node}", "master", "br0")
            _run("ip", "-n", switch, "link", "set", f"p{node}", "up")

    def _token(self) -> None:
        """The head's token: generated in its home, as ``ray get-auth-token --generate`` does."""
        _run(self.ray, "get-auth-token", "--generate", env=self.env(1))
        self.token = (self.workdir / "home-n1" / ".ray" / "auth_token").read_text().strip()

    def exec(self, node: int, args: list[str]) -> list[str]:
        """``args`` as run inside node ``node``'s namespace with its environment."""
        return ["ip", "netns", "exec", self.namespace(node), *args]

    def start_node(self, node: int) -> None:
        """Start (or restart) Ray on node ``node``; 1 is the head."""
        self.kill_node(node)
        common = ["--node-ip-address", self.address(node), "--num-cpus", str(self.cpus),
                  "--object-store-memory", str(self.object_store_bytes), "--disable-usage-stats"]
        if node == 1:
            args = [self.ray, "start", "--head", "--port", str(PORT), "--include-dashboard=false", *common]
        else:
            args = [self.ray, "start", "--address", self.head, *common]
        log = self.workdir / f"start-n{node}.log"
        with open(log, "a") as out:
            result = subprocess.run(self.exec(node, args), env=self.env(node), stdout=out,
                                    stderr=subprocess.STDOUT, timeout=300)
        if result.returncode != 0:
            raise ClusterError(f"`ray start` on node {node} ({self.address(node)}) failed; see {log}:\n"
                               + log.read_text()[-2000:])

    def nodes_alive(self) -> list[str]:
        """The addresses of the cluster's live nodes, as the head reports them."""
        code = ("import json, ray; ray.init(address=%r, logging_level='error', log_to_driver=False); "
                "print(json.dumps([n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']]))" % self.head)
        result = subprocess.run(self.exec(1, [sys.executable, "-c", code]), env=self.env(1),
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise ClusterError(f"cannot ask the head for its nodes: {result.stderr.strip()[-2000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def wait_for_nodes(self, count: int, timeout: float = 180) -> None:
        """Wait until exactly ``count`` nodes are alive (a killed node must be marked dead too)."""
        deadline = time.monotonic() + timeout
        while True:
            alive = self.nodes_alive()
            if len(alive) == count:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"{len(alive)} of {count} nodes joined within {timeout:g} s: {alive}")
            time.sleep(1)

    # -- processes ---------------------------------------------------------------------------
    def pids(self, node: int) -> list[int]:
        """Every process in node ``node``'s namespace."""
        result = subprocess.run(["ip", "netns", "pids", self.namespace(node)], capture_output=True, text=True)
        return [int(p) for p in result.stdout.split()]

    def processes(self, node: int, match: str) -> list[int]:
        """The processes of node ``node`` whose command line contains ``match`` (e.g.
        ``raylet/raylet``, or ``ray::_trial_task`` for a worker running a trial)."""
        found = []
        for pid in self.pids(node):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if match in command:
                found.append(pid)
        return found

    def raylet(self, node: int) -> int | None:
        pids = self.processes(node, "raylet/raylet ")
        return pids[0] if pids else None

    def kill_node(self, node: int) -> None:
        """SIGKILL every process of node ``node`` (its raylet, workers, agents): its namespace
        holds only this cluster's processes."""
        for pid in self.pids(node):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def driver(self, args: list[str], **popen) -> subprocess.Popen:
        """Start ``args`` (a command line; the driver) in the head's namespace."""
        return subprocess.Popen(self.exec(1, args), env=self.env(1), **popen)

    def down(self) -> None:
        """Kill every process in the cluster's namespaces, then delete them and the work folder."""
        for ns in list(self.namespaces):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.5)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=2, help="Ray nodes, the head included (default 2)")
    parser.add_argument("--cpus", type=int, default=1, help="CPUs each node offers (default 1)")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="after --: the command to run in the head's namespace (the driver); "
                             "--ray-address is added to an unlearnbench command")
    args = parser.parse_args(argv)
    command = [c for c in args.command if c != "--"] or ["ray", "status"]
    if reason := unavailable():
        print(f"cluster.py: cannot build the cluster: {reason}", file=sys.stderr)
        return 2
    if Path(command[0]).name == "unlearnbench":
        command = [sys.executable, "-m", "unlearnbench.cli", *command[1:]]
    if "unlearnbench.cli" in command and "--ray-address" not in command:
        command += ["--ray-address", f"10.77.0.1:{PORT}"]
    env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    with NamespaceCluster(args.nodes, args.cpus, env=env) as cluster:
        print(f"cluster.py: {args.nodes} nodes of {args.cpus} CPUs at {cluster.head} "
              f"(namespaces {cluster.prefix}-*): {' '.join(command)}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        code = cluster.driver(command).wait()
        print(f"cluster.py: the command took {time.perf_counter() - start:.1f} s (exit {code})",
              file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
