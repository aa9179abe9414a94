"""Every Kubernetes manifest, the rendered runners included, against the Kubernetes schemas
(kubernetes-validate, strict: no unknown field) and through Debian's `kubectl kustomize`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from pointsman.project import Project, init_project, open_project
from pointsman.routing import Arm, Policy
from pointsman.routing.policy import Shadow
from pointsman.settings import load_settings
from tests.api.conftest import register_churn

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
K8S_VERSION = "1.30.0"  # the oldest Kubernetes the manifests are meant for
# The Prometheus Operator's CRD is not among Kubernetes' schemas: the fields we use, strict.
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {"type": "object"},
                "endpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string"},
                            "scrapeTimeout": {"type": "string"},
                            "bearerTokenSecret": {
                                "type": "object",
                                "required": ["name", "key"],
                                "additionalProperties": False,
                                "properties": {
                                    "name": {"type": "string"},
                                    "key": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def validate(doc: dict[str, Any]) -> None:
    if doc["kind"] == "ServiceMonitor":
        jsonschema.validate(doc, SERVICE_MONITOR)
        return
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomize(kubectl: Path, folder: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(kubectl), "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return documents(done.stdout)


@pytest.fixture(scope="session")
def kubectl(debian_tools: Path) -> Path:
    return debian_tools / "usr" / "bin" / "kubectl"


def patches() -> set[Path]:
    """Strategic-merge patches of every kustomization: checked once merged, not alone."""
    out = set()
    for file in KUBERNETES.rglob("kustomization.yaml"):
        listed = yaml.safe_load(file.read_text()).get("patchesStrategicMerge") or []
        out |= {(file.parent / name).resolve() for name in listed}
    return out


MANIFESTS = sorted(
    p
    for p in KUBERNETES.rglob("*.yaml")
    if p.name != "kustomization.yaml" and p.resolve() not in patches()
)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(KUBERNETES)))
def test_each_manifest_holds_to_the_schemas_in_strict_mode(path: Path) -> None:
    docs = documents(path.read_text())
    assert docs
    for doc in docs:
        if (
            doc["kind"] in ("ConfigMap", "Secret", "Deployment")
            and "spec" not in doc
            and ("overlays" in path.parts)
        ):
            continue  # a strategic-merge patch: checked merged, below
        validate(doc)


def test_the_example_overlay_renders_and_every_object_validates(kubectl: Path) -> None:
    docs = kustomize(kubectl, KUBERNETES / "overlays" / "example")
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted([
        "Namespace", "ConfigMap", "Secret", "Service", "Service", "Deployment", "Deployment",
        "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job", "NetworkPolicy",
        "ServiceMonitor",
    ])  # fmt: skip
    for doc in docs:
        validate(doc)
        assert doc["metadata"].get("namespace", "pointsman") == "pointsman"
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    front = by_name["Deployment", "pointsman-front"]["spec"]["template"]
    container = front["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/pointsman:0.1.0"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # Grace: the preStop pause, the longest request, and the shutdown after it.
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    timeout = float(by_name["ConfigMap", "pointsman-config"]["data"]["POINTSMAN_REQUEST_TIMEOUT_S"])
    assert front["spec"]["terminationGracePeriodSeconds"] >= pause + timeout + 5
    secret = by_name["Secret", "pointsman"]["stringData"]
    assert secret["POINTSMAN_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert {"AWS_ACCESS_KEY_ID", "POINTSMAN_RUNNER_SECRET", "metrics-key"} <= set(secret)
    # The NetworkPolicy selects the rendered runners' pods, and admits the fronts'.
    policy = by_name["NetworkPolicy", "pointsman-runners"]["spec"]
    runner = by_name["Deployment", "pointsman-runner-churn-1"]["spec"]["template"]
    assert policy["podSelector"]["matchLabels"].items() <= runner["metadata"]["labels"].items()
    admitted = policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert admitted.items() <= front["metadata"]["labels"].items()


def test_the_base_renders_on_its_own(kubectl: Path) -> None:
    for doc in kustomize(kubectl, KUBERNETES / "base"):
        validate(doc)


@pytest.fixture(scope="module")
def routed(
    tmp_path_factory: pytest.TempPathFactory, churn_files: list[tuple[Path, Path]]
) -> Iterator[Project]:
    """churn v1 primary with v2 as its shadow, on SQLite; runner settings set for both."""
    tmp_path = tmp_path_factory.mktemp("render")
    folder, _ = init_project(tmp_path / "project", f"sqlite:///{tmp_path / 'pointsman.db'}")
    project = open_project(load_settings(folder))
    project.registry.compile_at_register = False
    project.routes.preflight = None  # servers load versions themselves: not this process
    register_churn(project, churn_files)
    project.routes.deploy("churn", 1, "t")
    project.routes.apply("churn", Policy(arms=(Arm(1, 100),), shadows=(Shadow(2),)), "t", "")
    project.runners.change("churn", None, {"replicas": 3, "cpu": 0.5}, "t", "")
    project.runners.change("churn", 2, {"memory_bytes": 1 << 30, "timeout_s": 4.0}, "t", "")
    yield project
    project.close()


def pointsman(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    folder = str(project.settings.project_path())
    return subprocess.run(
        [sys.executable, "-m", "pointsman", "--project", folder, *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_render_writes_each_routed_version_from_its_runner_settings(
    routed: Project, tmp_path: Path, kubectl: Path
) -> None:
    out = tmp_path / "runners"
    out.mkdir()
    (out / "pointsman-runner-churn-9.yaml").write_text(
        "# Rendered by `pointsman kubernetes render` from ...\n"
    )  # a version no longer routed: removed
    done = pointsman(routed, "kubernetes", "render", "-o", str(out), "--image", "pm:test")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "kustomization.yaml", "pointsman-runner-churn-1.yaml", "pointsman-runner-churn-2.yaml",
    ]  # fmt: skip
    docs = {(d["kind"], d["metadata"]["name"]): d for d in kustomize(kubectl, out)}
    for doc in docs.values():
        validate(doc)
    one = docs["Deployment", "pointsman-runner-churn-1"]["spec"]
    two = docs["Deployment", "pointsman-runner-churn-2"]["spec"]
    assert one["replicas"] == two["replicas"] == 3
    pod_one, pod_two = one["template"]["spec"], two["template"]["spec"]
    limits = pod_two["containers"][0]["resources"]["limits"]
    assert limits["cpu"] == "500m"
    assert limits["memory"] == "1408Mi"  # 1 GiB for the runner, 384 MiB for the command
    assert "memory" not in pod_one["containers"][0]["resources"]["limits"]
    assert pod_two["containers"][0]["args"] == [
        "runner", "serve", "churn", "2", "--listen", "0.0.0.0:7070",
    ]  # fmt: skip
    assert pod_two["terminationGracePeriodSeconds"] == 14  # its 4 s per call, then 10
    assert pod_two["containers"][0]["image"] == "pm:test"
    service = docs["Service", "pointsman-runner-churn-2"]["spec"]
    assert service["clusterIP"] == "None"  # one address per ready pod, for the front


def test_render_refuses_an_unknown_version_or_model(routed: Project) -> None:
    done = pointsman(routed, "kubernetes", "render", "--also", "churn:7")
    assert done.returncode == 1
    assert "no version '7'" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    done = pointsman(routed, "kubernetes", "render", "--also", "churn")
    assert done.returncode == 2
    assert "MODEL:VERSION" in done.stderr
    done = pointsman(routed, "kubernetes", "render", "--model", "nope")
    assert done.returncode == 1
    assert "nope" in done.stderr + done.stdout


def test_the_dockerfile_runs_the_cli_as_a_user_without_build_tools() -> None:
    """The image's promises, read off the Dockerfile (building it needs a registry of base
    images, which these machines do not reach: docs/deploy.md)."""
    text = (ROOT / "Dockerfile").read_text()
    stages = text.split("\nFROM ")
    assert len(stages) == 3  # the arguments, the build stage, the runtime stage
    final = stages[-1]
    assert "build-essential" in stages[1]
    assert "apt-get install" not in final and "build-essential" not in final
    assert "\nUSER 10001:10001" in final
    assert 'ENTRYPOINT ["pointsman"]' in final
    assert "HEALTHCHECK" in final
    assert "COPY --from=build /opt/pointsman /opt/pointsman" in final
    assert (ROOT / "deploy" / "healthcheck.py").exists()
