"""The production-like local cluster (scripts/cluster.sh) for tests: started in
a temporary home on free ports, with a logged-in REST client and helpers to
find its processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psutil

from tests.support.airflow_service import REPO, AirflowClient, free_port

ROLES = (
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "dask-scheduler",
    "dask-worker-1",
    "dask-worker-2",
    "mlflow",
)


class LocalCluster:
    def __init__(self):
        # Not under pytest's tmp_path: that is private to root (0700), and
        # PostgreSQL runs as the `postgres` user, which must reach its data.
        self.home = Path(tempfile.mkdtemp(prefix="topo-cluster-"))
        self.home.chmod(0o755)
        self.ports = {"API": free_port(), "PG": free_port(), "DASK": free_port(), "MLFLOW": free_port()}
        self.env = (
            os.environ
            | {f"TOPO_CLUSTER_{k}_PORT": str(v) for k, v in self.ports.items()}
            | {
                "TOPO_CLUSTER_HOME": str(self.home),
                "TOPO_CLUSTER_WORKER_MEMORY": "3GiB",
                # The DAG files do not change during the tests: parsed at start, not every 30 s.
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            }
        )
        self.env.pop("TOPO_DATA_ROOT", None)
        self.data_root = self.home / "data"
        self.api = AirflowClient(
            f"http://127.0.0.1:{self.ports['API']}",
            logs=tuple(self.home / "logs" / f"airflow-{role}.log" for role in ("scheduler", "api-server")),
        )
        self.ui_url = f"http://localhost:{self.ports['API']}"  # the api-server's base_url: where the UI redirects
        self.mlflow_url = f"http://127.0.0.1:{self.ports['MLFLOW']}"
        self.dask_scheduler = f"tcp://127.0.0.1:{self.ports['DASK']}"

    def command(self, action: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(REPO / "scripts" / "cluster.sh"), action],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self) -> None:
        done = self.command("start")
        if done.returncode:
            raise RuntimeError(f"cluster.sh start failed:\n{done.stderr[-4000:]}\n{self.logs_tail()}")
        self.api.login("admin", self.secrets()["AIRFLOW_ADMIN_PASSWORD"])

    def stop(self) -> subprocess.CompletedProcess:
        return self.command("stop", timeout=300)

    def remove(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)

    def secrets(self) -> dict[str, str]:
        lines = (self.home / "secrets.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))

    def pid(self, role: str) -> int | None:
        path = self.home / "run" / f"{role}.pid"
        return int(path.read_text()) if path.exists() else None

    def processes(self) -> list[psutil.Process]:
        """Every process of the cluster's roles (each role's session), PostgreSQL included."""
        procs = []
        for path in (self.home / "run").glob("*.pid"):  # every role cluster.sh started
            pid = int(path.read_text())
            if psutil.pid_exists(pid):
                parent = psutil.Process(pid)
                procs += [parent, *parent.children(recursive=True)]
        postmaster = self.home / "postgres" / "postmaster.pid"
        if postmaster.exists():
            parent = psutil.Process(int(postmaster.read_text().split()[0]))
            procs += [parent, *parent.children(recursive=True)]
        return procs

    def logs_tail(self, n: int = 3000) -> str:
        logs = self.home / "logs"
        if not logs.exists():
            return ""
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-n:]}" for p in sorted(logs.glob("*.log")))
