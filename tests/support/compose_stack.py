"""docker-compose.yml brought up for real, as CI does it: a Docker engine
(scripts/docker-engine.sh installs and starts one where none runs), the images
built locally without a registry (scripts/compose-images.sh), the CPU-host
override, its own project name, env file and free ports, so that a
developer's own stack and .env are never touched."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psutil

from tests.support.airflow_service import REPO, AirflowClient, free_port

PROJECT = "topo-compose-test"
FILES = ("docker-compose.yml", "docker-compose.cpu.yml")
HEARTBEAT_TIMEOUT_S = 60  # a task whose worker was killed is retried after this long


def run(*cmd: str, timeout: float = 1200, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


class ComposeStack:
    def __init__(self, home: Path):
        self.home = home
        self.env_file = home / "compose.env"
        # Where .ci/run's trap looks for a dockerd to stop, should pytest itself be killed.
        self.state = Path(os.environ.get("TOPO_DOCKER_STATE", "/tmp/topo-dockerd"))
        self.ui_port, self.mlflow_port = free_port(), free_port()
        self.api = AirflowClient(f"http://127.0.0.1:{self.ui_port}")
        self.mlflow_url = f"http://127.0.0.1:{self.mlflow_port}"
        self.build_report = home / "images.json"

    def engine(self, action: str) -> subprocess.CompletedProcess:
        return run("bash", "scripts/docker-engine.sh", action, env=os.environ | {"TOPO_DOCKER_STATE": str(self.state)})

    def compose(self, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
        files = [a for f in FILES for a in ("-f", str(REPO / f))]
        return run("docker", "compose", "-p", PROJECT, "--env-file", str(self.env_file), *files, *args,
                   timeout=timeout, check=check)  # fmt: skip

    def start(self) -> None:
        self.engine("install")
        self.engine("start")
        pid_file = self.state / "dockerd.pid"
        self.dockerd_pid = int(pid_file.read_text()) if pid_file.exists() else None  # None: an engine not ours
        run("bash", "scripts/generate-env.sh", str(self.env_file))
        with self.env_file.open("a") as f:
            f.write(f"AIRFLOW_UI_PORT={self.ui_port}\nMLFLOW_UI_PORT={self.mlflow_port}\n")
            f.write(f"TOPO_TASK_HEARTBEAT_TIMEOUT={HEARTBEAT_TIMEOUT_S}\n")
            # The DAG files do not change during the tests: parsed at start, not every 30 s (CPU
            # the runs under test need on a 2-core machine).
            f.write("TOPO_DAG_PARSE_INTERVAL=600\n")
        run("bash", "scripts/compose-images.sh", "--host-ca", "--env-file", str(self.env_file),
            "--report", str(self.build_report), timeout=2400)  # fmt: skip
        self.compose("up", "-d", "--wait", "--wait-timeout", "600", timeout=900)
        self.api.login("admin", self.secrets()["AIRFLOW_ADMIN_PASSWORD"])

    def engine_processes_left(self) -> list[str]:
        """The dockerd this stack started and any container runtime process, if
        still running after stop() (none when the engine was not ours)."""
        if getattr(self, "dockerd_pid", None) is None:
            return []
        names = {"dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "docker-proxy"}
        return [f"{p.pid} {p.name()}" for p in psutil.process_iter(["name"]) if p.info["name"] in names]

    def stop(self) -> tuple[subprocess.CompletedProcess, list[str]]:
        """compose down (volumes too), then the engine if this test started it;
        what down answered and the project's containers left after it."""
        try:
            down = self.compose("down", "-v", "--remove-orphans", "--timeout", "30", check=False)
            return down, self.leftover_containers()
        finally:
            self.engine("stop")

    def secrets(self) -> dict[str, str]:
        lines = self.env_file.read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))

    def services(self) -> list[dict]:
        """One entry per container of the project (docker compose ps, every state)."""
        out = self.compose("ps", "--all", "--format", "json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def container(self, service: str) -> str:
        [cid] = self.compose("ps", "-q", service).stdout.split()
        return cid

    def inspect(self, cid: str, template: str) -> str:
        return run("docker", "inspect", "-f", template, cid).stdout.strip()

    def exec(self, service: str, *cmd: str, timeout: float = 120) -> str:
        return self.compose("exec", "-T", service, *cmd, timeout=timeout).stdout

    def leftover_containers(self) -> list[str]:
        out = run("docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}", check=False)
        return out.stdout.split()
