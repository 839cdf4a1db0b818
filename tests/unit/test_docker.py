"""Static checks of the docker stack (no Docker engine runs on these machines)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES: dict = COMPOSE["services"]
DOCKERFILE = (DOCKER / "Dockerfile").read_text()


def test_compose_has_the_services():
    assert set(SERVICES) == {
        "postgres", "mlflow", "prefect-server", "worker", "dask-scheduler", "dask-worker"
    }  # fmt: skip


def test_dask_workers_share_the_run_directories_with_the_deployment_worker():
    assert "runs:/data/runs" in SERVICES["dask-worker"]["volumes"]
    assert "runs:/data/runs" in SERVICES["worker"]["volumes"]
    assert "tcp://dask-scheduler:8786" in SERVICES["dask-worker"]["command"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_pinned_image_or_build(name: str):
    service = SERVICES[name]
    image = service.get("image", "")
    assert image or service.get("build"), name
    tag = image.rsplit(":", 1)[-1] if ":" in image else ""
    assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: pin {image!r}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_healthchecks_and_depends_on_agree(name: str):
    service = SERVICES[name]
    assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for dependency, rule in (service.get("depends_on") or {}).items():
        assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
        assert rule["condition"] == "service_healthy"
        assert SERVICES[dependency].get("healthcheck"), f"{dependency} cannot become healthy"


def test_depends_on_has_no_cycle():
    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"cycle: {' -> '.join((*path, name))}"
        for dependency in SERVICES[name].get("depends_on") or {}:
            visit(dependency, (*path, name))

    for name in SERVICES:
        visit(name, ())


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_ports_bind_to_localhost_only(name: str):
    for port in SERVICES[name].get("ports") or []:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_containers_run_as_non_root(name: str):
    service = SERVICES[name]
    if service.get("build"):
        users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, flags=re.M)
        assert users and users[-1].split(":")[0] not in {"root", "0"}, "image ends as root"
    else:
        assert service.get("user") not in (None, "root", "0"), f"{name} runs as root"


def test_mlflow_allows_its_service_host_header():
    command = " ".join(SERVICES["mlflow"]["command"])
    hosts = re.search(r"--allowed-hosts=(\S+)", command)
    assert hosts and {"mlflow", "mlflow:5000"} <= set(hosts.group(1).split(","))


def test_secrets_only_from_the_environment_and_documented():
    text = (DOCKER / "compose.yaml").read_text()
    variables = set(re.findall(r"\$\{([A-Z_]+)", text))
    example = dict(
        line.split("=", 1) for line in (DOCKER / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )  # fmt: skip
    assert variables <= set(example), f"undocumented: {variables - set(example)}"
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            secret = re.search(r"://[^:/@]+:([^@]+)@", str(value))
            if "PASSWORD" in key or secret:
                literal = secret.group(1) if secret else str(value)
                assert literal.startswith("${"), f"{name}.{key} holds a literal secret"
    tracked = subprocess.run(["git", "ls-files", "docker"], capture_output=True, text=True,
                             cwd=DOCKER.parent).stdout.split()  # fmt: skip
    assert "docker/.env" not in tracked


def test_dockerfile_pins_base_and_torch_and_has_a_healthcheck():
    base = re.search(r"^FROM\s+(\S+)", DOCKERFILE, flags=re.M)
    assert base and re.search(r":\d+\.\d+\.\d+", base.group(1)), "pin the base image version"
    assert "slim" in base.group(1) and "3.11" in base.group(1)
    assert "TORCH_VERSION=2.13.0" in DOCKERFILE and "whl/cpu" in DOCKERFILE
    assert re.search(r"^HEALTHCHECK ", DOCKERFILE, flags=re.M)


def test_hadolint_passes():
    hadolint = Path(sys.executable).parent / "hadolint"  # installed by the dev extra
    done = subprocess.run([str(hadolint), str(DOCKER / "Dockerfile")], capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_service_runs_under_an_init_process():
    for name, service in SERVICES.items():
        assert service.get("init") is True, f"{name}: signals and zombies need an init (tini)"


def test_application_files_are_not_writable_by_the_runtime_user():
    chowned = re.findall(r"chown\s+\S+\s+(.+)", DOCKERFILE)
    assert chowned, "the /data folders are handed to the runtime user"
    assert all(path.startswith("/data") for line in chowned for path in line.split()), chowned


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    ignored = (DOCKER.parent / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "docker/.env", ".env", "mlflow.db*", "mlruns", "runs"):
        assert entry in ignored, entry


def test_no_secret_on_a_command_line():
    for name, service in SERVICES.items():
        command = " ".join(map(str, service.get("command") or []))
        assert not re.search(r"://[^:/@\s]*:[^@\s]+@", command), f"{name}: password in argv"
        assert "PASSWORD" not in command, f"{name}: password variable in argv"
