"""The deployment files a user would run (deploy/): the compose file's services and their wiring, the config every
replica reads (through the project's own loader, so an unknown key fails here), and the Helm chart rendered
from its values and validated against the Kubernetes schemas (`kubernetes-validate`, offline)."""

import re
from pathlib import Path

import yaml

from core.config import load_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
CHART = DEPLOY / "helm" / "chatbot"


def test_the_compose_file_runs_replicas_a_worker_and_the_shared_services():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"app", "worker", "postgres", "redis", "llm", "proxy"} <= set(services)
    app = services["app"]
    assert app["deploy"]["replicas"] >= 2 and "/healthz" in " ".join(app["healthcheck"]["test"])
    assert app["depends_on"]["worker"]["condition"] == "service_completed_successfully"  # ingested once, first
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on a service that is not defined: {needed}"
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source.startswith((".", "$")) or source in compose["volumes"], f"{name}: undeclared {source}"
    for name in ("app", "worker"):
        command = " ".join(services[name]["command"])
        assert "--db postgresql://" in command and services[name]["environment"]["CHATBOT_CONFIG"]
    assert "ip_hash" in compose["configs"]["nginx"]["content"]  # a client stays on one replica


def test_every_replica_reads_a_valid_config_that_shares_state_and_loads_no_llm_weights():
    config = load_config(str(DEPLOY / "chatbot.toml"))
    assert config.models.llm_backend == "openai" and config.models.llm_base_url.startswith("http://llm:")
    assert config.server.redis_url.startswith("redis://redis:")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert config.server.trusted_proxies == [subnet]  # X-Forwarded-For only from the compose network


def _render(template: str, values: dict, release: str = "support") -> str:
    """Helm's substitution for the plain `{{ .Values.x }}` / `{{ .Release.Name }}` the chart uses (no helm here)."""

    def value(match: re.Match) -> str:
        path = match.group(1)
        if path == "Release.Name":
            return release
        assert path.startswith("Values."), f"the chart uses more than plain values: {path}"
        found = values
        for key in path.removeprefix("Values.").split("."):
            found = found[key]
        return str(found)

    rendered = re.sub(r"\{\{\s*\.([\w.]+)\s*\}\}", value, template)
    assert "{{" not in rendered, "a template expression this test cannot render"
    return rendered


def test_the_helm_chart_renders_valid_kubernetes_objects_with_probes_autoscaling_and_secrets():
    import kubernetes_validate

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert yaml.safe_load((CHART / "Chart.yaml").read_text())["apiVersion"] == "v2"
    objects = {}
    for template in sorted((CHART / "templates").glob("*.yaml")):
        manifest = yaml.safe_load(_render(template.read_text(), values))
        kubernetes_validate.validate(manifest, "1.30", strict=True)
        objects[manifest["kind"]] = manifest
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "Job"} <= set(objects)
    pod = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert pod["readinessProbe"]["httpGet"]["path"] == pod["livenessProbe"]["httpGet"]["path"] == "/healthz"
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in pod["env"] if "valueFrom" in e}
    assert set(secrets) == {"CHATBOT_DB_URL", "CHATBOT_OPERATOR_PASSWORD", "CHATBOT_SECRET_KEY"}
    assert set(secrets.values()) == {values["secretName"]}  # from a Kubernetes secret, never in the values
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == objects["Deployment"]["metadata"]["name"]
    assert hpa["minReplicas"] == values["replicas"] < hpa["maxReplicas"]
    assert objects["Service"]["spec"]["sessionAffinity"] == "ClientIP"
