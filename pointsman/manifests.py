"""Kubernetes manifests of the runners, built from the project's own runner settings.

One Deployment and one headless Service per version a route holds (arms, shadows, fallback),
named `pointsman-runner-<model>-<version>` as the front's
`remote_runners = {"*": "pointsman-runner-{model}-{version}:7070"}` expects, each pod one
`pointsman runner serve`. Replicas, CPU, memory, disk and the drain time come from
`pointsman runners` (and pointsman.toml), so the manifests and the project's placement
never disagree: render again after changing either, then `kubectl apply -k`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml

from pointsman.project import Project
from pointsman.runners.remote import DEFAULT_PORT, dns_name
from pointsman.runners.spec import MIB, RunnerSpec

NAME = "pointsman"
PREFIX = "pointsman-runner"
# `pointsman runner serve` itself (its supervisor, and the forkserver that imported numpy,
# pandas and scikit-learn once) beside the runner the spec limits.
OVERHEAD_BYTES = 384 * MIB
DEFAULT_CPU_REQUEST = "250m"  # a version without a cpu limit still asks for some
DEFAULT_MEMORY_REQUEST = 512 * MIB
SECRET = "pointsman"  # database URL, runner secret, S3 credentials (base/secret.yaml)
CONFIG = "pointsman-config"  # settings that are not secret (base/config.yaml)


@dataclass(frozen=True)
class RunnerTarget:
    """One version to run on Kubernetes, and its spec."""

    model: str
    version: int
    spec: RunnerSpec

    @property
    def name(self) -> str:
        return f"{PREFIX}-{dns_name(self.model)}-{self.version}"


def runner_targets(
    project: Project, models: list[str], extra: list[tuple[str, int]]
) -> list[RunnerTarget]:
    """Every routed version (of `models`, or of every model), plus `extra` (a version about
    to be routed), with the runner spec in force for each."""
    routes = project.routes.all_current()
    keys = {
        (model, number)
        for model, route in routes.items()
        if not models or model in models
        for number in route.versions
    }
    for model, number in extra:
        project.registry.get_version(model, number)  # VersionNotFound naming the known ones
        keys.add((model, number))
    specs = project.runners.specs(sorted(keys))
    return [RunnerTarget(m, n, specs[m, n]) for m, n in sorted(keys)]


def labels(target: RunnerTarget) -> dict[str, str]:
    # name and part-of as the base's commonLabels put on the fronts: its NetworkPolicy
    # selects runner pods by them.
    return {
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/part-of": NAME,
        "app.kubernetes.io/component": "runner",
        "app.kubernetes.io/instance": target.name,
    }


def quantity(n: int) -> str:
    """Bytes as a Kubernetes quantity (whole MiB, rounded up)."""
    return f"{math.ceil(n / MIB)}Mi"


def cpu_quantity(cpu: float) -> str:
    return f"{round(cpu * 1000)}m"


def resources(spec: RunnerSpec) -> dict[str, Any]:
    """Requests and limits of one runner pod: the spec's own limits plus the overhead of the
    command around the runner; without a cpu or memory limit, a request only."""
    memory = spec.memory_bytes
    requests = {
        "cpu": cpu_quantity(spec.cpu) if spec.cpu else DEFAULT_CPU_REQUEST,
        "memory": quantity((memory or DEFAULT_MEMORY_REQUEST) + OVERHEAD_BYTES),
        "ephemeral-storage": quantity(spec.disk_bytes),
    }
    limits: dict[str, str] = {"ephemeral-storage": quantity(2 * spec.disk_bytes + 256 * MIB)}
    if spec.cpu:
        limits["cpu"] = cpu_quantity(spec.cpu)
    if memory:
        limits["memory"] = quantity(memory + OVERHEAD_BYTES)
    return {"requests": requests, "limits": limits}


def deployment(target: RunnerTarget, image: str, port: int = DEFAULT_PORT) -> dict[str, Any]:
    """The runner Deployment of one version."""
    spec = target.spec
    # SIGTERM: the runner answers what it holds (each call at most timeout_s), then stops.
    grace = math.ceil(spec.timeout_s) + 10

    def tcp(**timing: int) -> dict[str, Any]:
        return {"tcpSocket": {"port": "runner"}, **timing}

    container = {
        "name": "runner",
        "image": image,
        "args": ["runner", "serve", target.model, str(target.version),
                 "--listen", f"0.0.0.0:{port}"],
        "ports": [{"name": "runner", "containerPort": port, "protocol": "TCP"}],
        "env": [{"name": "POINTSMAN_HEALTHCHECK", "value": f"tcp:{port}"}],
        "envFrom": [{"configMapRef": {"name": CONFIG}}, {"secretRef": {"name": SECRET}}],
        "resources": resources(spec),
        # It listens only once the version is loaded and has answered its input example.
        "startupProbe": tcp(periodSeconds=5,
                            failureThreshold=math.ceil(spec.load_timeout_s / 5) + 2),
        "readinessProbe": tcp(periodSeconds=2, failureThreshold=2),
        "livenessProbe": tcp(periodSeconds=10, failureThreshold=6),
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                         {"name": "artifacts", "mountPath": "/srv/pointsman/artifacts"}],
    }  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": target.name, "labels": {**labels(target), **version_labels(target)}},
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": labels(target)},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": {**labels(target), **version_labels(target)}},
                "spec": {
                    "terminationGracePeriodSeconds": grace,
                    "securityContext": pod_security(),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}},
                                {"name": "artifacts", "emptyDir": {}}],
                },
            },
        },
    }  # fmt: skip


def version_labels(target: RunnerTarget) -> dict[str, str]:
    return {
        "pointsman.dev/model": dns_name(target.model),
        "pointsman.dev/version": str(target.version),
    }


def service(target: RunnerTarget, port: int = DEFAULT_PORT) -> dict[str, Any]:
    """Headless: the front resolves it to every ready pod and calls each (runners/remote.py)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": target.name, "labels": labels(target)},
        "spec": {
            "clusterIP": "None",
            "selector": labels(target),
            "ports": [{"name": "runner", "port": port, "targetPort": "runner", "protocol": "TCP"}],
        },
    }


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def render(targets: list[RunnerTarget], image: str) -> dict[str, str]:
    """File name → YAML: one file per version (Deployment and Service), and a
    kustomization.yaml listing them."""
    files: dict[str, str] = {}
    for target in targets:
        docs = [deployment(target, image), service(target)]
        head = (
            f"# Rendered by `pointsman kubernetes render` from the runner settings of "
            f"{target.model} version {target.version}: {target.spec.describe()}.\n"
        )
        files[f"{target.name}.yaml"] = head + yaml.safe_dump_all(docs, sort_keys=False)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(files),
    }
    files["kustomization.yaml"] = (
        "# Rendered by `pointsman kubernetes render`: the runners of every routed version.\n"
        + yaml.safe_dump(kustomization, sort_keys=False)
    )
    return files
