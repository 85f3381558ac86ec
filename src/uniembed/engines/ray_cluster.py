"""A throwaway local Ray cluster of real nodes (a head and workers, each its own `ray start`
process with its own raylet), for tests and benches of `uniembed embed --engine ray`.

    with LocalRayCluster(nodes=2) as cluster:
        cluster.run(["uniembed", "embed", "big.parquet", "-o", "vectors", "--engine", "ray",
                     "--address", cluster.address])

Ray rewrites 127.0.0.1 to the machine's routable address and connects there, so as root the whole
cluster and every driver run inside a private network namespace (uniembed.engines.netns) where
only loopback exists. Token authentication is on (RAY_AUTH_MODE=token, a fresh token), usage
statistics are off, HOME and Ray's temp folder are temporary. Each node gets a custom resource
`node_<i>` so a job can prove that every node did work.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from uniembed._extras import require
from uniembed.engines import netns

HEAD_PORT = 6379
START_TIMEOUT_S = 120


class LocalRayCluster:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 1):
        if nodes < 1 or cpus_per_node < 1:
            raise ValueError("a cluster needs at least one node with one CPU")
        self.nodes, self.cpus_per_node = nodes, cpus_per_node
        self.address = f"127.0.0.1:{HEAD_PORT}"
        self.folder: Path | None = None
        self.env: dict[str, str] = {}
        self._network: netns.PrivateNetwork | None = None
        self._processes: list[subprocess.Popen] = []

    def __enter__(self) -> LocalRayCluster:
        require("ray")
        reason = netns.available()
        if reason:
            raise RuntimeError(
                f"a local Ray cluster runs in a private network namespace here, and {reason}"
            )
        self.folder = Path(tempfile.mkdtemp(prefix="uniembed-ray-"))
        (self.folder / "home").mkdir()
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_USAGE_STATS_ENABLED": "0",
            "HOME": str(self.folder / "home"),
            "RAY_DEDUP_LOGS": "0",
            "PYTHONUNBUFFERED": "1",
        }
        self._network = netns.PrivateNetwork().__enter__()
        try:
            for node in range(self.nodes):
                self._start_node(node)
            self._wait_for_nodes()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
        if self._network is not None:
            self._network.__exit__()  # kills whatever Ray left running in there with the namespace's holder
            self._network = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def _start_node(self, node: int) -> None:
        ray = str(Path(sys.executable).with_name("ray"))
        common = [
            "--num-cpus",
            str(self.cpus_per_node),
            "--resources",
            f'{{"node_{node}": 1}}',
            "--block",
            "--disable-usage-stats",
            "--node-ip-address",
            "127.0.0.1",
            "--object-store-memory",
            str(500 * 2**20),
        ]
        if node == 0:
            args = [
                ray,
                "start",
                "--head",
                "--port",
                str(HEAD_PORT),
                "--include-dashboard",
                "false",
                "--temp-dir",
                str(self.folder / "ray"),
                *common,
            ]
        else:
            args = [ray, "start", "--address", self.address, *common]
        log = open(self.folder / f"node-{node}.log", "w")
        self._processes.append(
            self._network.popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        )

    def _wait_for_nodes(self) -> None:
        probe = (
            "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))"
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            dead = [p for p in self._processes if p.poll() is not None]
            if dead:
                raise RuntimeError(f"a Ray node exited while starting:\n{self.logs()[-3000:]}")
            result = self.run([sys.executable, "-c", probe, self.address], timeout=60)
            if result.returncode == 0 and result.stdout.strip().splitlines()[-1:] == [
                str(self.nodes)
            ]:
                return
            time.sleep(1)
        raise RuntimeError(
            f"the Ray cluster did not come up in {START_TIMEOUT_S} s:\n{self.logs()[-3000:]}"
        )

    def run(self, args: list[str], *, timeout: float, **kwargs) -> subprocess.CompletedProcess:
        """Run a driver (or any command) inside the cluster's network, with its environment."""
        env = {**self.env, **kwargs.pop("env", {})}
        return self._network.run(
            [str(a) for a in args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )

    def popen(self, args: list[str], **kwargs) -> subprocess.Popen:
        env = {**self.env, **kwargs.pop("env", {})}
        return self._network.popen([str(a) for a in args], env=env, **kwargs)

    def logs(self) -> str:
        if self.folder is None:
            return ""
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.folder.glob("node-*.log"))
        )
