"""Deploy files parse, pass their schemas, and match the code (no Docker or cluster here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared import topology
from shared.placement.rules import load_rules
from shared.settings import RouterSettings, StatusSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
START = {
    "router": ["python", "-m", "services.router"],
    "public_worker": ["python", "-m", "services.public_worker"],
    "private_worker": ["python", "-m", "services.private_worker"],
    "status": ["python", "-m", "services.status"],
    "migrate": ["python", "-m", "services.status", "migrate"],
}
SETTINGS = {
    "router": RouterSettings,
    "public_worker": WorkerSettings,
    "private_worker": WorkerSettings,
    "status": StatusSettings,
    "migrate": StatusSettings,
}
COMMON = {"HYBRIDQ_SECRETS_DIR"}


def aliases(kind: type[Any]) -> set[str]:
    return {f.alias for f in kind.model_fields.values() if f.alias} | COMMON


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def test_compose_passes_the_compose_spec_schema() -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(DEPLOY / "compose.yaml"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services_match_the_code() -> None:
    services = compose()["services"]
    assert {"rabbitmq", "postgres", *START} <= set(services)
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3.13-management")
    for name, command in START.items():
        service = services[name]
        assert service["command"] == command, name
        known = aliases(SETTINGS[name])
        assert set(service.get("environment", {})) <= known, name
        targets = {s["target"] for s in service.get("secrets", []) if isinstance(s, dict)}
        assert targets <= known, name
    assert {"AMQP_URL", "DATABASE_URL", "API_TOKEN", "ADMIN_TOKEN"} <= {
        s["target"] for s in services["status"]["secrets"]
    }
    for name in ("router", "public_worker", "private_worker", "status"):
        assert "healthcheck" in services[name], name
        assert services[name]["stop_grace_period"] == "35s"


def k8s_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@pytest.mark.parametrize(
    "doc",
    [
        d
        for d in k8s_documents()
        if not d["apiVersion"].startswith(("keda.sh", "rabbitmq.com", "kustomize"))
    ],
    ids=lambda d: f"{d['kind']}/{d['metadata']['name']}",
)
def test_kubernetes_manifests_pass_the_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, "1.37.0", strict=True)


def _config() -> dict[str, str]:
    [config] = [
        d
        for d in k8s_documents()
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "hybridq-config"
    ]
    data: dict[str, str] = config["data"]
    return data


def test_deployments_match_the_code_and_drain_in_time() -> None:
    config = _config()
    drain = float(config["DRAIN_SECONDS"])
    assert drain <= 30
    deployments = {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == "Deployment"}
    assert set(deployments) == {f"hybridq-{n.replace('_', '-')}" for n in START if n != "migrate"}
    for name, command in START.items():
        if name == "migrate":
            continue
        spec = deployments[f"hybridq-{name.replace('_', '-')}"]["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] > drain
        [container] = spec["containers"]
        assert container["command"] == command
        known = aliases(SETTINGS[name])
        assert set(config) <= known | aliases(StatusSettings) | aliases(WorkerSettings)
        assert {e["name"] for e in container.get("env", [])} <= known
        assert container["readinessProbe"]["httpGet"]["path"] in ("/readyz", "/metrics")
        assert container["livenessProbe"]["httpGet"]["path"] in ("/healthz", "/metrics")
    status = deployments["hybridq-status"]["spec"]["template"]["spec"]["containers"][0]
    assert status["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert status["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert config["WORK_QUEUE_TYPE"] in {t.value for t in topology.WorkQueueType}


def test_keda_scales_each_worker_on_its_own_queue() -> None:
    docs = k8s_documents()
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    auths = {d["metadata"]["name"] for d in docs if d["kind"] == "TriggerAuthentication"}
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "ScaledObject"}
    assert set(scaled) == {"hybridq-public-worker", "hybridq-private-worker"}
    for target, obj in scaled.items():
        assert target in deployments
        [trigger] = obj["spec"]["triggers"]
        assert trigger["type"] == "rabbitmq"
        site = "public" if "public" in target else "private"
        assert trigger["metadata"]["queueName"] == f"jobs.{site}"
        assert trigger["metadata"]["mode"] == "QueueLength"
        assert trigger["authenticationRef"]["name"] in auths


def test_rules_config_map_is_a_valid_rules_file(tmp_path: Path) -> None:
    [rules] = [
        d
        for d in k8s_documents()
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "hybridq-rules"
    ]
    path = tmp_path / "rules.toml"
    path.write_text(rules["data"]["rules.toml"])
    assert load_rules(path) == load_rules(ROOT / "services" / "router" / "rules.toml")


def test_router_runs_as_replicas_with_no_state_of_its_own() -> None:
    docs = k8s_documents()
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    router = deployments["hybridq-router"]["spec"]
    assert router["replicas"] >= 2
    assert router["strategy"]["type"] == "RollingUpdate"
    volumes = router["template"]["spec"]["volumes"]
    assert all("persistentVolumeClaim" not in v and "emptyDir" not in v for v in volumes)
    for name in ("hybridq-router", "hybridq-public-worker", "hybridq-private-worker"):
        [container] = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
    assert "HEALTH_PORT" in _config()
