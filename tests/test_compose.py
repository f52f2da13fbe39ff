"""docker-compose.yml and its secrets, checked without a Docker engine
(tests/test_compose_up.py brings the stack up on one): the services and their roles, health-gated start order, the GPU
reservation, secrets only from the generated .env, only the UIs published and
only on localhost, one image from the Dockerfile, consistent volumes, image
names as variables with the official images as defaults."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.support.airflow_service import REPO

SERVICES = {
    "postgres",
    "redis",
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "training-worker",
    "dask-scheduler",
    "dask-worker",
    "mlflow",
}
ONE_SHOT = {"airflow-init"}
OURS = SERVICES - {"postgres", "redis"}
SECRET_NAME = re.compile(r"PASSWORD$|SECRET$|SECRET_KEY$|FERNET_KEY$")  # names of values, not of files
REQUIRED_VAR = re.compile(r"\$\{(\w+):\?[^}]*\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("env") / ".env"
    subprocess.run(["bash", str(REPO / "scripts" / "generate-env.sh"), str(out)], check=True, capture_output=True)
    lines = out.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_every_role_is_a_service(compose):
    assert set(compose["services"]) == SERVICES


def test_every_service_is_health_checked_and_starts_after_what_it_needs_is_healthy(compose):
    services = compose["services"]
    for name, svc in services.items():
        if name in ONE_SHOT:
            assert svc["restart"] == "no" and svc["healthcheck"] == {"disable": True}, name
            continue
        assert svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    for name, svc in services.items():
        for dependency, how in (svc.get("depends_on") or {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert how == {"condition": expected}, (name, dependency, how)
    for name in OURS - ONE_SHOT - {"dask-scheduler", "dask-worker", "mlflow"}:  # every Airflow component
        assert services[name]["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}, name
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}, name


def test_training_has_its_own_worker_with_the_gpus(compose):
    worker = compose["services"]["training-worker"]
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    queue = worker["command"][worker["command"].index("--queues") + 1]
    assert queue == "gpu"
    # The DAGs put training on the queue named by TOPO_TRAINING_QUEUE (tests/test_dags.py).
    assert all(
        compose["services"][s]["environment"]["TOPO_TRAINING_QUEUE"] == queue
        for s in SERVICES
        if s.startswith("airflow-")
    )
    other = compose["services"]["airflow-worker"]["command"]
    assert other[other.index("--queues") + 1] == "default"
    assert compose["services"]["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_no_secret_is_written_in_the_file_and_every_one_comes_from_the_generated_env(compose, generated):
    text = (REPO / "docker-compose.yml").read_text()
    referenced = set(REQUIRED_VAR.findall(text))
    assert referenced == set(generated)  # what the file needs is what generate-env.sh writes
    checked = set()
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            value = str(value)
            if SECRET_NAME.search(key):
                checked.add(key)
                assert REQUIRED_VAR.fullmatch(value), (
                    name,
                    key,
                )  # no default, no empty value: compose refuses to start
            for credentials in re.findall(r"://[^:/@]+:([^@]+)@", value):  # user:password@host URIs
                assert REQUIRED_VAR.fullmatch(credentials), (name, key)
    assert {
        "POSTGRES_PASSWORD",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_ADMIN_PASSWORD",
        "AIRFLOW_ADMIN_PASSWORD",
    } <= checked
    assert (
        "simple_auth_manager_all_admins" not in text.lower()
        or compose["services"]["airflow-api-server"]["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"]
        == "False"
    )
    # The generated file stays out of git and out of the image's build context.
    assert subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO).returncode == 0
    assert ".env" in (REPO / ".dockerignore").read_text().split()


def test_only_the_uis_are_published_and_only_on_localhost(compose):
    published = {name: svc["ports"] for name, svc in compose["services"].items() if svc.get("ports")}
    assert set(published) == {"airflow-api-server", "mlflow"}
    for ports in published.values():
        assert all(str(p).startswith("127.0.0.1:") for p in ports), ports


def test_one_image_from_the_dockerfile_that_installs_the_lock(compose):
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\w+)", dockerfile, re.M))
    assert "uv sync --frozen" in dockerfile
    # The dependencies are a layer of their own, rebuilt only when the lock or pyproject.toml change.
    before_dependencies = dockerfile.split("--no-install-project")[0]
    assert re.findall(r"^COPY (.+) \./$", before_dependencies, re.M) == ["pyproject.toml uv.lock"]
    images = {}
    for name in OURS:
        svc = compose["services"][name]
        assert svc["build"]["context"] == "." and svc["build"]["target"] in stages, name
        images.setdefault(svc["build"]["target"], set()).add(svc["image"])
    assert images == {
        "cpu": {"topo-classifier:${TOPO_IMAGE_TAG:-latest}"},
        "gpu": {"topo-classifier-gpu:${TOPO_IMAGE_TAG:-latest}"},
    }
    for script in (
        "scripts/airflow-users.sh",
        "scripts/airflow-init.sh",
        "scripts/mlflow-server.sh",
        "scripts/postgres-init.sql",
    ):
        assert script in (REPO / "docker-compose.yml").read_text() and (REPO / script).exists(), script


def test_volumes_are_declared_shared_and_used(compose):
    declared = set(compose["volumes"])
    used = set()
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source, target = volume.split(":")[:2]
            if not source.startswith((".", "/")):
                used.add(source)
            if source == "topo-data":
                assert target == "/data", name
    assert used == declared
    for name in OURS - {"mlflow"}:  # every task and every Dask worker sees the same data root
        svc = compose["services"][name]
        assert "topo-data:/data" in svc["volumes"], name
        if "environment" in svc and name.startswith(("airflow-", "training")):
            assert svc["environment"]["TOPO_DATA_ROOT"] == "/data", name
    workers = compose["services"]["dask-worker"]
    assert workers["deploy"]["replicas"] >= 2 and "container_name" not in workers  # scalable with --scale


def test_generated_env_is_private_random_and_never_overwritten(tmp_path):
    env = tmp_path / ".env"
    script = str(REPO / "scripts" / "generate-env.sh")
    first = subprocess.run(["bash", script, str(env)], check=True, capture_output=True, text=True)
    assert env.stat().st_mode & 0o777 == 0o600
    values = dict(line.split("=", 1) for line in env.read_text().splitlines() if not line.startswith("#"))
    assert all(len(v) >= 24 for v in values.values()) and len(set(values.values())) == len(values)
    assert not any(v in first.stdout + first.stderr for v in values.values())  # nothing printed
    before = env.read_text()
    subprocess.run(["bash", script, str(env)], check=True, capture_output=True)
    assert env.read_text() == before  # a second run keeps the secrets (and the Fernet key) as they are
    other = tmp_path / "other.env"
    subprocess.run(["bash", script, str(other)], check=True, capture_output=True)
    assert not set(values.values()) & set(
        line.split("=", 1)[1] for line in other.read_text().splitlines() if "=" in line
    )


def test_images_are_variables_defaulting_to_the_official_ones(compose):
    services = compose["services"]
    assert services["postgres"]["image"] == "${TOPO_POSTGRES_IMAGE:-postgres:16}"
    assert services["redis"]["image"] == "${TOPO_REDIS_IMAGE:-redis:7}"
    for name in OURS:
        assert services[name]["build"]["args"]["BASE_IMAGE"] == "${TOPO_BASE_IMAGE:-python:3.11-slim}", name
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim" in dockerfile and "FROM ${BASE_IMAGE} AS base" in dockerfile
    # The legacy builder builds every stage up to --target: cpu must not need gpu's.
    stages = re.findall(r"^FROM \S+ AS (\w+)", dockerfile, re.M)
    assert stages.index("cpu") < stages.index("gpu")
    # Everything the tasks read at run time is in the image.
    copied = set(re.findall(r"^COPY (\S+) \./", dockerfile, re.M))
    assert {"tasks", "dags", "plugins", "data_contracts", "data_configs", "scripts"} <= copied


def test_the_cpu_override_keeps_the_training_worker_without_devices():
    base = (REPO / "docker-compose.yml").read_text()
    override = (REPO / "docker-compose.cpu.yml").read_text()
    assert "driver: nvidia" in base and "nvidia" not in override
    assert "deploy: !reset {}" in override and "target: cpu" in override
