"""A real Airflow for tests: `airflow standalone` (api-server, scheduler with the
LocalExecutor, dag-processor, triggerer) on SQLite in a temporary home, and a
small REST client that logs in like a user."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
TERMINAL = {"success", "failed"}


def wait_until(condition, timeout: float, what: str, interval: float = 0.5):
    """Poll ``condition`` until it returns something true, and return that;
    TimeoutError("<what> after <timeout> s") if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} after {timeout} s")


def readable(content) -> str:
    """A task log as the REST API returns it (structured entries) as lines."""
    if not isinstance(content, list):
        return str(content)
    lines = []
    for entry in content:
        if isinstance(entry, dict):
            extra = {k: v for k, v in entry.items() if k in ("error_detail", "exception")}
            lines.append(
                f"{entry.get('timestamp', '')} {entry.get('level', '')} {entry.get('event', '')} {extra or ''}"
            )
        else:
            lines.append(str(entry))
    return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AirflowClient:
    """The Airflow REST API as a logged-in user (a JWT from /auth/token)."""

    def __init__(self, url: str, logs: tuple[Path, ...] = ()):
        self.url = url
        self.token = ""
        self.logs = logs  # the server's log files, where known: the scheduler's among them

    def login(self, username: str, password: str) -> None:
        status, body = self.request("POST", "/auth/token", {"username": username, "password": password}, auth=False)
        assert status in (200, 201), body
        self.token = body["access_token"]

    def tail(self, n: int = 4000) -> str:
        """The end of the server's log files, for error messages ("" where none is known)."""
        return "\n".join(self.server_log())[-n:]

    def request(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> tuple[int, dict]:
        status, text = self.fetch(method, path, body, auth)
        return status, json.loads(text or "{}")

    def fetch(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> tuple[int, str]:
        """The status and the body as text (pages, not only JSON)."""
        headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {self.token}"} if auth else {})
        req = urllib.request.Request(
            self.url + path, method=method, headers=headers, data=None if body is None else json.dumps(body).encode()
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        wait_until(lambda: self.request("GET", f"/api/v2/dags/{dag_id}")[0] == 200, timeout, f"{dag_id} not parsed", 2)

    def unpause(self, dag_id: str) -> None:
        self.wait_for_dag(dag_id)
        status, body = self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        assert status == 200, body

    def runs(self, dag_id: str) -> list[dict]:
        status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=logical_date")
        assert status == 200, body
        return body["dag_runs"]

    def wait_for_runs(
        self, dag_id: str, count: int, run_type: str | None = None, timeout: float = 600, since: set[str] = frozenset()
    ) -> list[dict]:
        """Wait until ``count`` runs (of ``run_type``, not among ``since``) are finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = [
                r
                for r in self.runs(dag_id)
                if (run_type is None or r["run_type"] == run_type) and r["dag_run_id"] not in since
            ]
            if len(runs) >= count and all(r["state"] in TERMINAL for r in runs):
                return runs
            time.sleep(3)
        raise TimeoutError(
            f"{dag_id}: runs not finished after {timeout} s: {[(r['dag_run_id'], r['state']) for r in runs]}\n{self.tail()}"
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        status, body = self.request(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances?limit=100"
        )
        assert status == 200, body
        return body["task_instances"]

    def failed_task_logs(self, dag_id: str, run_id: str) -> str:
        """The end of each failed or retried task's log, and what the server logged
        about it, for a failure message: a task failed by the scheduler or the
        executor (never resumed, killed on start) has nothing in its own log."""
        out = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] in ("failed", "up_for_retry", "upstream_failed") or ti["try_number"] > 1:
                path = (
                    f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/{ti['task_id']}"
                )
                status, body = self.request(
                    "GET", f"{path}/logs/{max(ti['try_number'], 1)}?map_index={ti['map_index']}"
                )
                content = body.get("content", body) if status == 200 else body
                out.append(
                    f"--- {ti['task_id']}[{ti['map_index']}] ({ti['state']}, try {ti['try_number']}):\n"
                    f"{readable(content)[-4000:]}"
                )
                if ti["state"] == "failed":
                    out.append(f"--- the server on {ti['task_id']}:\n{self.server_lines(ti['task_id'])}")
        return "\n".join(out) or "(no task failed or retried)"

    def server_log(self) -> list[str]:
        return [line for path in self.logs if path.exists() for line in path.read_text(errors="replace").splitlines()]

    def server_lines(self, task_id: str, n: int = 40) -> str:
        """The server's last log lines that name ``task_id``."""
        return "\n".join([line[:600] for line in self.server_log() if task_id in line][-n:])

    def parked(self, run_id: str, task_id: str, map_index: int) -> bool:
        """Whether the scheduler has taken in the end of the process that parked
        a human-in-the-loop task in ``awaiting_input``. Until it has, an answer
        is a race in Airflow 3.3: the parked process and the resumed one share
        one executor key, so the scheduler, seeing the first one's exit only
        after the answer requeued the task, takes it for the resumed task's end
        and fails the task as "killed externally" before it runs (seen in CI:
        the task failed with nothing in its log after the park). A person reads
        the question first; a test that answers within a second must wait."""
        needle = f"task_id={task_id}, run_id={run_id}, map_index={map_index},"
        return any(
            "TaskInstance Finished" in line and needle in line and "state=awaiting_input" in line
            for line in self.server_log()
        )

    def backfill(self, dag_id: str, first: str, last: str, reprocess: str = "none", timeout: float = 900) -> None:
        """A backfill over the days [first, last] (``reprocess``: none, failed or
        completed runs run again), then wait until the scheduler marks it
        complete (it checks every 30 s); a DAG has one open backfill at a time."""
        body = {"dag_id": dag_id, "from_date": f"{first}T00:00:00Z", "to_date": f"{last}T00:00:00Z"}
        status, created = self.request("POST", "/api/v2/backfills", body | {"reprocess_behavior": reprocess})
        assert status == 200, created

        def complete() -> bool:
            status, body = self.request("GET", f"/api/v2/backfills?dag_id={dag_id}&limit=100")
            assert status == 200, body
            return all(b["completed_at"] for b in body["backfills"])

        wait_until(complete, timeout, f"backfill of {dag_id} {first}..{last} not complete", 3)

    def trigger(self, dag_id: str, conf: dict) -> str:
        """A manual run with ``conf`` as its Params; its run id."""
        status, body = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        assert status == 200, body
        return body["dag_run_id"]


class AirflowService(AirflowClient):
    """`airflow standalone` in a temporary home, with its REST client."""

    def __init__(self, home: Path, data_root: Path, extra_env: dict[str, str] | None = None):
        self.home, self.data_root = home, data_root
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}", logs=(home / "standalone.log",))
        self.env = (
            os.environ
            | {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                # SQLite's default 5 s wait for a lock is too short on a loaded machine when
                # the CLI writes while the scheduler does (see also backfill())
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                # The DAG files do not change during a test: parsed at start, not every 30 s
                # (a tenth of a core on a 2-core machine, taken from the runs under test).
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
                "TOPO_DATA_ROOT": str(data_root),
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            }
            | (extra_env or {})
        )
        self.process: subprocess.Popen | None = None

    # --- lifecycle -------------------------------------------------------------
    def start(self, timeout: float = 300) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.cli("db", "migrate")
        self.log = open(self.home / "standalone.log", "w")
        self.process = subprocess.Popen(
            [AIRFLOW, "standalone"], env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"airflow standalone exited: {self.tail()}")
            try:
                health = json.loads(urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5).read())
                if all(
                    health.get(c, {}).get("status") == "healthy" for c in ("metadatabase", "scheduler", "dag_processor")
                ):
                    self._login()
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(2)
        raise TimeoutError(f"airflow standalone not healthy after {timeout} s: {self.tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()

    # --- CLI and REST ----------------------------------------------------------
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=300)
        if check and done.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def _login(self) -> None:
        """A token as the admin user whose password standalone generated."""
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        self.login("admin", passwords["admin"])


def dags_test(dag_id: str, conf: dict, home: Path, data_root: Path, timeout: float = 900) -> str:
    """`airflow dags test` (one process, SQLite) with Params; returns the whole log."""
    env = os.environ | {"AIRFLOW_HOME": str(home), "TOPO_DATA_ROOT": str(data_root), "TOPO_DASK_WORKERS": "2"}
    if not (home / "airflow.db").exists():
        subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
    run = subprocess.run(
        [AIRFLOW, "dags", "test", dag_id, "--conf", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return run.stdout + run.stderr + f"\n[exit status {run.returncode}]"
