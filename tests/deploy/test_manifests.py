"""The deployment files: parsed and checked for the properties docs/deployment.md promises.

No cluster and no Docker engine here: the Kubernetes objects are checked structurally (kinds,
API versions, selectors that match, probes on the gateway's real endpoints, a grace period that
covers preStop plus the drain), the ConfigMap's file is validated by bff itself, and the
Dockerfile is read for its stages, user and health check.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bff.config import RESERVED_PATHS, parse_config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"

EXPECTED = {
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
}


def objects() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict), path
            for key in ("apiVersion", "kind", "metadata"):
                assert key in doc, f"{path.name}: no {key}"
            assert doc["metadata"]["name"], path
            out[doc["kind"]] = doc
    return out


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    return objects()


def env_for_config() -> dict[str, str]:
    # What the Deployment's env and the Secret give the container.
    return {
        "BFF_STORE_URL": "postgresql://bff:secret@postgres:5432/bff",
        "REDIS_URL": "redis://redis:6379/0",
        "BFF_ADMIN_TOKEN": "t0ken",
        "BFF_JWT_SECRET": "a-long-secret-for-the-test",
    }


def container(k8s: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = k8s["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


def test_every_object_is_there_once(k8s: dict[str, dict[str, Any]]) -> None:
    assert {(o["apiVersion"], o["kind"]) for o in k8s.values()} == EXPECTED


def test_the_configmap_holds_the_image_config_and_it_validates(
    k8s: dict[str, dict[str, Any]],
) -> None:
    text = k8s["ConfigMap"]["data"]["gateway.yaml"]
    assert text == (ROOT / "deploy" / "gateway.yaml").read_text()
    config = parse_config(text, env=env_for_config())
    assert config.listen.host == "0.0.0.0" and config.listen.port == 8080
    assert config.state.backend == "redis" and config.store.kind == "postgresql"
    assert config.admin.enabled and config.admin.token == "t0ken"


def test_the_secret_gives_what_the_config_needs(k8s: dict[str, dict[str, Any]]) -> None:
    text = k8s["ConfigMap"]["data"]["gateway.yaml"]
    # Variables without a default must come from the Deployment's env or the Secret.
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", text))
    secret = set(k8s["Secret"]["stringData"])
    env = {e["name"] for e in container(k8s)["env"]}
    assert required <= secret | env, required - secret - env
    assert {"BFF_ADMIN_TOKEN", "BFF_JWT_SECRET", "BFF_STORE_URL", "REDIS_URL"} <= secret
    refs = container(k8s)["envFrom"]
    assert refs == [{"secretRef": {"name": k8s["Secret"]["metadata"]["name"]}}]


def test_deployment_probes_drain_and_security(k8s: dict[str, dict[str, Any]]) -> None:
    deployment = k8s["Deployment"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    c = container(k8s)
    config = parse_config(k8s["ConfigMap"]["data"]["gateway.yaml"], env=env_for_config())
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": config.listen.port}

    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/healthz", "/readyz"} == set(RESERVED_PATHS)

    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(pre_stop[1]) + config.listen.drain_timeout

    mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
    assert mount["mountPath"] + "/gateway.yaml" == c["args"][c["args"].index("--config") + 1]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == k8s["ConfigMap"]["metadata"]["name"]

    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["resources"]["requests"]["cpu"]  # the autoscaler needs it


def test_service_hpa_and_pdb_point_at_the_gateways(k8s: dict[str, dict[str, Any]]) -> None:
    labels = k8s["Deployment"]["spec"]["template"]["metadata"]["labels"]
    service = k8s["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert service["ports"][0]["targetPort"] == "http"

    hpa = k8s["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": k8s["Deployment"]["metadata"]["name"],
    }
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"

    pdb = k8s["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb.get("maxUnavailable") == 1 or pdb.get("minAvailable", 0) < hpa["minReplicas"]


def test_dockerfile_is_multi_stage_slim_non_root_with_a_healthcheck() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) >= 2 and all("-slim" in s for s in stages)
    final = lines[lines.index(stages[-1]) :]
    assert any(line.startswith("COPY --from=") for line in final)
    user = next(line for line in final if line.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("root", "0")
    health = " ".join(final[final.index(next(x for x in final if x.startswith("HEALTHCHECK"))) :])
    assert "/healthz" in health
    assert any(line.startswith("ENTRYPOINT") and '"serve"' in line for line in final)
    assert "pip install -e" not in " ".join(lines)
    copied = [
        line.split()[1] for line in lines if line.startswith("COPY ") and "--from" not in line
    ]
    ignored = (ROOT / ".dockerignore").read_text().split()
    for source in copied:
        assert source not in ignored, f"{source} is copied but .dockerignore drops it"
        assert (ROOT / source).exists(), source
