"""The deployment files, checked without Docker, a cluster or the network.

What is checked: docker-compose.yml against the Compose Specification schema, every manifest in
deploy/k8s against the Kubernetes API schemas, the hardening and probes every service must have, and
that every service under services/ is deployed by both (so a new service cannot be forgotten).

Where the schemas come from:
- tests/schemas/compose-spec.json is the official Compose Specification JSON schema
  (github.com/compose-spec/compose-spec, schema/compose-spec.json, Apache-2.0), vendored byte for byte
  from the PyPI wheel check-jsonschema 0.39.0 (check_jsonschema/builtin_schemas/vendor/compose-spec.json,
  sha256 d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64). To update it:
  `pip download --no-deps -d /tmp/cj check-jsonschema`, unzip, copy that file over ours.
- The Kubernetes schemas ship inside the kubernetes-validate package (a dev dependency); "strict"
  means unknown fields are errors. K8S_VERSION is the oldest Kubernetes we support.

Not checked here: that the image builds and the containers start (needs a Docker engine), and what a
real API server's admission would add (defaulting, Pod Security admission, quotas).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = ROOT / "tests" / "schemas" / "compose-spec.json"
K8S_DIR = ROOT / "deploy" / "k8s"
ENV_EXAMPLE = ROOT / "deploy" / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

K8S_VERSION = "1.31"
IMAGE = "ghcr.io/helpdesk/helpdesk"
UID = 10001
SECRET_NAME = "helpdesk-secrets"  # noqa: S105 - the name of the Secret, not a secret
CONFIG_NAME = "helpdesk-config"
NOT_DEPLOYED = {"kustomization.yaml", "secret.example.yaml"}
"""Files in deploy/k8s that kustomize does not apply."""

SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").is_file())
"""Every service in the repository: each one must be deployed by compose and by Kubernetes."""


# --- loading ---------------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@cache
def compose_schema() -> dict[str, Any]:
    return json.loads(COMPOSE_SCHEMA.read_text())


@cache
def k8s_documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    """(file name, document) for every YAML document in deploy/k8s except the kustomization."""
    found = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found.extend((path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return tuple(found)


@cache
def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    matches = [d for _, d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert matches, f"no {kind} named {name!r} in {K8S_DIR.relative_to(ROOT)}"
    assert len(matches) == 1, f"{kind} {name!r} is defined {len(matches)} times"
    return matches[0]


def service_container(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod spec of the service's Deployment and the container named after the service."""
    pod = k8s_object("Deployment", name)["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert name in containers, f"Deployment {name} has no container named {name}"
    return pod, containers[name]


def a_deployment() -> dict[str, Any]:
    """Some Deployment of ours, to break on purpose."""
    return next(d for _, d in k8s_documents() if d["kind"] == "Deployment")


def pod_templates() -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload in deploy/k8s."""
    found = []
    for _, doc in k8s_documents():
        if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
            found.append((f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]))
        elif doc["kind"] == "CronJob":
            spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            found.append((f"CronJob/{doc['metadata']['name']}", spec))
        elif doc["kind"] == "Pod":
            found.append((f"Pod/{doc['metadata']['name']}", doc["spec"]))
    return found


def effective(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    """A securityContext field as the kubelet applies it: the container's, else the pod's."""
    own = container.get("securityContext") or {}
    return own[key] if key in own else (pod.get("securityContext") or {}).get(key)


def container_port(container: dict[str, Any], port: int | str) -> int:
    """Resolve a probe's or Service's port (number or name) against the container's ports."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert port in named, f"port {port!r} is not a named port of container {container['name']}"
    return named[port]


def plain_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def env_file_keys(path: Path) -> dict[str, str]:
    """KEY=value lines of an env file (comments and blank lines skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity as a number (cpu in cores, memory in bytes)."""
    match = re.fullmatch(r"([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?", str(value))
    assert match, f"not a resource quantity: {value!r}"
    factor = {
        None: 1,
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
    }[match.group(2)]
    return float(match.group(1)) * factor


def ours_in_compose() -> dict[str, dict[str, Any]]:
    """The compose services that run our image (the setup job and the services)."""
    return {
        name: svc
        for name, svc in compose()["services"].items()
        if str(svc.get("image", "")).startswith(IMAGE) or "build" in svc
    }


def setup_commands() -> dict[str, str]:
    """The shell line of the setup job, in compose and in Kubernetes."""
    job = k8s_object("Job", "helpdesk-setup")["spec"]["template"]["spec"]["containers"][0]
    return {
        "docker-compose.yml": " ".join(compose()["services"]["setup"]["command"]),
        "deploy/k8s/setup-job.yaml": " ".join(job.get("command", []) + job.get("args", [])),
    }


def compose_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(compose_schema())
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]


# --- the schemas themselves ------------------------------------------------------------------------


def test_the_vendored_compose_schema_is_the_official_compose_specification() -> None:
    schema = compose_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["title"] == "Compose Specification"
    assert schema["$id"] == "compose_spec.json"
    # Strict where it matters: an unknown key in a service is an error, not silently ignored.
    assert schema["$defs"]["service"]["unevaluatedProperties"] is False


def test_the_compose_schema_rejects_a_misspelled_service_key() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["tickets"]["healtcheck"] = broken["services"]["tickets"].pop("healthcheck")
    assert any("healtcheck" in e for e in compose_errors(broken))


def test_the_compose_schema_rejects_a_wrong_depends_on_condition() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["tickets"]["depends_on"]["setup"]["condition"] = "service_finished"
    assert compose_errors(broken)


def test_the_kubernetes_schema_rejects_an_unknown_field_in_a_deployment() -> None:
    broken = copy.deepcopy(a_deployment())
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenessProbes"):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_kubernetes_schema_rejects_a_port_given_as_a_string() -> None:
    broken = copy.deepcopy(a_deployment())
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8000"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


# --- schema validation of our files ----------------------------------------------------------------


def test_docker_compose_yml_is_valid_against_the_compose_specification() -> None:
    errors = compose_errors(compose())
    assert not errors, "docker-compose.yml does not match the Compose Specification:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    "filename,document",
    k8s_documents(),
    ids=[f"{f}:{d.get('kind')}/{d.get('metadata', {}).get('name')}" for f, d in k8s_documents()],
)
def test_every_kubernetes_manifest_is_valid_against_the_kubernetes_api_schema(
    filename: str, document: dict[str, Any]
) -> None:
    # A kind without a schema (a typo, or a CRD) raises SchemaNotFoundError and fails the test too.
    try:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(map(str, exc.absolute_path)) or "<root>"
        pytest.fail(f"{filename}: {document['kind']}/{document['metadata']['name']} at {where}: {exc.message}")


def test_the_kustomization_lists_every_manifest_except_the_example_secret() -> None:
    on_disk = {p.name for p in K8S_DIR.glob("*.yaml")} - NOT_DEPLOYED
    listed = kustomization()["resources"]
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    assert set(listed) == on_disk
    assert "secret.example.yaml" not in listed


def test_the_kustomization_puts_everything_in_the_helpdesk_namespace_with_our_image() -> None:
    kust = kustomization()
    assert kust["namespace"] == "helpdesk"
    assert k8s_object("Namespace", "helpdesk")
    images = {i["name"]: i for i in kust["images"]}
    assert images[IMAGE].get("newName", IMAGE) == IMAGE
    assert images[IMAGE]["newTag"] == "latest"


def _kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build", str(K8S_DIR)]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize", str(K8S_DIR)]
    return None


@pytest.mark.skipif(_kustomize_command() is None, reason="neither kustomize nor kubectl is installed")
def test_kustomize_builds_the_directory_into_valid_objects_in_the_helpdesk_namespace() -> None:
    command = _kustomize_command()
    assert command
    built = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    assert built.returncode == 0, built.stderr
    documents = [d for d in yaml.safe_load_all(built.stdout) if d]
    assert len(documents) == sum(1 for f, _ in k8s_documents() if f not in NOT_DEPLOYED)
    for doc in documents:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "helpdesk", doc["metadata"]["name"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "helpdesk"
    images = {
        c["image"]
        for d in documents
        if d["kind"] in {"Deployment", "Job"}
        for c in d["spec"]["template"]["spec"]["containers"]
        if c["image"].startswith(IMAGE)
    }
    assert images == {f"{IMAGE}:latest"}


# --- every service is deployed ---------------------------------------------------------------------


def test_the_repository_has_services_to_deploy() -> None:
    assert SERVICES, "found no services/*/pyproject.toml"


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_in_the_repo_has_a_kubernetes_manifest(name: str) -> None:
    manifest = K8S_DIR / f"{name}.yaml"
    assert manifest.is_file(), f"services/{name} has no deploy/k8s/{name}.yaml"
    kinds = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(manifest.read_text()) if d}
    assert {("Deployment", name), ("Service", name)} <= kinds
    assert manifest.name in kustomization()["resources"]


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_in_the_repo_has_a_compose_entry(name: str) -> None:
    services = compose()["services"]
    assert name in services, f"services/{name} is missing from docker-compose.yml"
    assert services[name]["command"] == [name, "run"]


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_is_started_by_its_own_console_script(name: str) -> None:
    project = tomllib.loads((ROOT / "services" / name / "pyproject.toml").read_text())
    assert name in project["project"].get("scripts", {}), f"services/{name} defines no `{name}` command"
    _, container = service_container(name)
    assert container["command"] == [name, "run"]
    assert container["image"].startswith(IMAGE + ":")


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_is_migrated_by_the_setup_job_in_compose_and_kubernetes(name: str) -> None:
    for where, line in setup_commands().items():
        assert re.search(rf"(^|&&)\s*{re.escape(name)} migrate\s*(&&|$)", line), f"{where}: no `{name} migrate`"


def test_the_setup_job_creates_the_topics_with_six_partitions() -> None:
    for where, line in setup_commands().items():
        assert "python -m hdkit.topics --partitions 6" in line, where
        assert "&&" in line and "||" not in line and ";" not in line, f"{where}: a failed step must fail the job"


def test_only_our_services_and_the_setup_job_run_our_image() -> None:
    assert set(ours_in_compose()) == {*SERVICES, "setup"}
    in_k8s = {
        doc["metadata"]["name"]
        for _, doc in k8s_documents()
        if doc["kind"] == "Deployment"
        and any(c["image"].startswith(IMAGE) for c in doc["spec"]["template"]["spec"]["containers"])
    }
    assert in_k8s == set(SERVICES)


# --- Kubernetes: what every service Deployment must have -------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_deployment_has_liveness_and_readiness_probes(name: str) -> None:
    _, container = service_container(name)
    http_port = int(plain_env(container)["HELPDESK_HTTP_PORT"])
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        assert probe in container, f"{name} has no {probe}"
        get = container[probe].get("httpGet")
        assert get, f"{name}: {probe} is not an HTTP GET"
        assert get["path"] == path
        assert container_port(container, get["port"]) == http_port
        assert container[probe].get("timeoutSeconds", 1) <= container[probe].get("periodSeconds", 10)


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_deployment_sets_resource_requests_and_limits(name: str) -> None:
    _, container = service_container(name)
    resources = container.get("resources", {})
    for resource in ("cpu", "memory"):
        request = resources.get("requests", {}).get(resource)
        limit = resources.get("limits", {}).get(resource)
        assert request is not None and limit is not None, f"{name}: {resource} needs a request and a limit"
        assert quantity(request) <= quantity(limit), f"{name}: {resource} request above its limit"


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_deployment_runs_as_non_root_with_a_read_only_root_filesystem(name: str) -> None:
    pod, container = service_container(name)
    assert effective(pod, container, "runAsNonRoot") is True
    assert effective(pod, container, "runAsUser") == UID
    security = container.get("securityContext") or {}
    assert security.get("readOnlyRootFilesystem") is True
    assert security.get("allowPrivilegeEscalation") is False
    assert security.get("capabilities", {}).get("drop") == ["ALL"]
    assert not security.get("capabilities", {}).get("add")
    assert (effective(pod, container, "seccompProfile") or {}).get("type") == "RuntimeDefault"


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_deployment_mounts_an_empty_dir_at_tmp(name: str) -> None:
    pod, container = service_container(name)
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    assert "/tmp" in mounts, f"{name}: a read-only root filesystem needs a writable /tmp"  # noqa: S108
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_deployment_takes_its_settings_from_the_config_map_and_the_secret(name: str) -> None:
    _, container = service_container(name)
    config_maps = [e["configMapRef"]["name"] for e in container.get("envFrom", []) if "configMapRef" in e]
    assert config_maps == [CONFIG_NAME]
    secret_refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert "HELPDESK_SERVICE_TOKEN" in secret_refs, f"{name} lacks the shared service token"
    for variable, ref in secret_refs.items():
        assert ref["name"] == SECRET_NAME
        assert ref["key"] == variable
    assert not any(
        e["name"].endswith(("_SECRET", "_TOKEN", "_PASSWORD")) and "value" in e for e in container.get("env", [])
    ), f"{name}: a secret is written into the manifest"


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_pod_is_annotated_for_prometheus_scraping(name: str) -> None:
    deployment = k8s_object("Deployment", name)
    _, container = service_container(name)
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/scrape") == "true"
    assert annotations.get("prometheus.io/path") == "/metrics"
    assert annotations.get("prometheus.io/port") == plain_env(container)["HELPDESK_HTTP_PORT"]


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_kubernetes_service_selects_its_pods_and_exposes_their_http_port(name: str) -> None:
    deployment = k8s_object("Deployment", name)
    service = k8s_object("Service", name)
    _, container = service_container(name)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    targets = {container_port(container, p.get("targetPort", p["port"])) for p in service["spec"]["ports"]}
    assert int(plain_env(container)["HELPDESK_HTTP_PORT"]) in targets


def test_the_ingest_service_also_exposes_smtp_on_2525() -> None:
    if "ingest" not in SERVICES:
        pytest.skip("no ingest service")
    _, container = service_container("ingest")
    ports = {p["port"]: p for p in k8s_object("Service", "ingest")["spec"]["ports"]}
    assert 2525 in ports
    assert container_port(container, ports[2525].get("targetPort", 2525)) == 2525
    assert plain_env(container)["HELPDESK_SMTP_PORT"] == "2525"
    assert plain_env(container)["HELPDESK_SMTP_HOST"] == "0.0.0.0"  # noqa: S104


def test_every_pod_meets_the_restricted_pod_security_standard_the_namespace_enforces() -> None:
    namespace = k8s_object("Namespace", "helpdesk")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    allowed_volumes = {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
    problems = []
    for workload, pod in pod_templates():
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(flag):
                problems.append(f"{workload}: {flag}")
        for volume in pod.get("volumes", []):
            kinds = set(volume) - {"name"}
            if not kinds <= allowed_volumes:
                problems.append(f"{workload}: volume {volume['name']} of type {kinds - allowed_volumes}")
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = f"{workload}/{container['name']}"
            security = container.get("securityContext") or {}
            if effective(pod, container, "runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if effective(pod, container, "runAsUser") == 0:
                problems.append(f"{where}: runs as uid 0")
            if security.get("privileged"):
                problems.append(f"{where}: privileged")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if "ALL" not in security.get("capabilities", {}).get("drop", []):
                problems.append(f"{where}: does not drop ALL capabilities")
            if set(security.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
                problems.append(f"{where}: adds capabilities")
            if (effective(pod, container, "seccompProfile") or {}).get("type") not in {
                "RuntimeDefault",
                "Localhost",
            }:
                problems.append(f"{where}: no RuntimeDefault seccomp profile")
    assert not problems, "\n".join(problems)


def test_every_container_has_a_memory_limit_and_every_long_running_one_has_probes() -> None:
    problems = []
    for workload, pod in pod_templates():
        long_running = pod.get("restartPolicy", "Always") == "Always"
        for container in pod["containers"]:
            where = f"{workload}/{container['name']}"
            if not container.get("resources", {}).get("limits", {}).get("memory"):
                problems.append(f"{where}: no memory limit")
            if long_running:
                problems += [f"{where}: no {p}" for p in ("livenessProbe", "readinessProbe") if p not in container]
    assert not problems, "\n".join(problems)


# --- secrets and configuration ---------------------------------------------------------------------


def _secret_keys_used() -> dict[str, bool]:
    """Every key of helpdesk-secrets a pod reads, and whether some pod needs it (not optional)."""
    used: dict[str, bool] = {}
    for _, pod in pod_templates():
        for container in pod.get("initContainers", []) + pod["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] == SECRET_NAME:
                    used[ref["key"]] = used.get(ref["key"], False) or not ref.get("optional", False)
            for source in container.get("envFrom", []):
                assert "secretRef" not in source, "take secrets key by key (secretKeyRef), not all at once"
    return used


def test_the_example_secret_and_env_file_hold_every_required_key_as_a_placeholder() -> None:
    secret = yaml.safe_load((K8S_DIR / "secret.example.yaml").read_text())
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == SECRET_NAME
    in_secret = {**secret.get("stringData", {}), **secret.get("data", {})}
    in_env = env_file_keys(ENV_EXAMPLE)
    required = {key for key, needed in _secret_keys_used().items() if needed}
    assert required, "no pod reads helpdesk-secrets"
    assert required <= set(in_secret), f"secret.example.yaml lacks {required - set(in_secret)}"
    assert required <= set(in_env), f"deploy/.env.example lacks {required - set(in_env)}"
    for source, values in (("secret.example.yaml", in_secret), ("deploy/.env.example", in_env)):
        for key in required:
            assert values[key].startswith("change-me"), f"{source}: {key} is not a change-me placeholder"


def test_the_config_map_sets_where_kafka_and_mongodb_are_and_no_secrets() -> None:
    data = k8s_object("ConfigMap", CONFIG_NAME)["data"]
    assert data["HELPDESK_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert data["HELPDESK_MONGO_URL"] == "mongodb://mongo:27017/"
    assert data["HELPDESK_HTTP_HOST"] == "0.0.0.0"  # noqa: S104
    assert not [k for k in data if k.endswith(("_SECRET", "_TOKEN", "_PASSWORD"))]
    assert all(value != "" for value in data.values()), "an empty value is not unset: leave the key out"


def test_every_compose_service_of_ours_reads_secrets_from_dot_env_only() -> None:
    secret_like = re.compile(r"_(SECRET|TOKEN|PASSWORD)$")
    for name, svc in ours_in_compose().items():
        files = [f if isinstance(f, str) else f["path"] for f in svc.get("env_file", [])]
        assert files == [".env"], f"{name}: env_file should be .env (a copy of deploy/.env.example)"
        assert not [k for k in svc.get("environment", {}) if secret_like.search(k)], f"{name}: secret inline"


# --- compose: what every service of ours must have -------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_every_compose_service_of_ours_has_a_healthcheck_on_its_health_endpoint(name: str) -> None:
    svc = compose()["services"][name]
    check = svc.get("healthcheck")
    assert check and not check.get("disable"), f"{name} has no healthcheck"
    test = check["test"] if isinstance(check["test"], str) else " ".join(check["test"])
    assert "/health" in test
    assert "curl" not in test and "wget" not in test, "python:3.11-slim has neither curl nor wget"
    assert "HELPDESK_HTTP_PORT" in svc["environment"]


def test_every_compose_service_of_ours_runs_as_non_root_on_a_read_only_filesystem() -> None:
    for name, svc in ours_in_compose().items():
        user = str(svc.get("user", ""))
        assert user.split(":")[0] == str(UID), f"{name}: user is {user!r}, not {UID}"
        assert svc.get("read_only") is True, f"{name}: root filesystem is writable"
        tmpfs = svc.get("tmpfs", [])
        assert "/tmp" in ([tmpfs] if isinstance(tmpfs, str) else tmpfs), f"{name}: no tmpfs at /tmp"  # noqa: S108
        assert "ALL" in svc.get("cap_drop", []), f"{name}: keeps Linux capabilities"


@pytest.mark.parametrize("name", SERVICES)
def test_every_compose_service_waits_for_setup_and_restarts_on_failure(name: str) -> None:
    svc = compose()["services"][name]
    depends = svc.get("depends_on", {})
    assert depends.get("setup", {}).get("condition") == "service_completed_successfully"
    assert depends.get("kafka", {}).get("condition") == "service_healthy"
    assert depends.get("mongo", {}).get("condition") == "service_healthy"
    assert svc.get("restart") in {"unless-stopped", "always", "on-failure"}


def test_the_compose_setup_job_runs_once_after_kafka_and_mongodb_are_healthy() -> None:
    services = compose()["services"]
    setup = services["setup"]
    assert str(setup.get("restart", "no")) == "no"
    assert setup["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert setup["depends_on"]["mongo"]["condition"] == "service_healthy"
    for infra in ("kafka", "mongo", "mailcatcher"):
        assert services[infra].get("healthcheck", {}).get("test"), f"{infra} has no healthcheck"
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "mongosh" in services["mongo"]["healthcheck"]["test"]
    assert services["mongo"]["image"] == "mongo:8"


def test_the_portal_and_the_ingest_smtp_listener_are_published_on_the_host() -> None:
    services = compose()["services"]

    def published(name: str) -> set[str]:
        return {str(p).rsplit(":", 1)[-1] for p in services[name].get("ports", [])}

    assert "8000" in published("portal")
    assert "2525" in published("ingest")
    assert "8025" in published("mailcatcher")


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_listens_on_the_same_http_port_in_compose_kubernetes_and_its_settings(name: str) -> None:
    in_compose = int(compose()["services"][name]["environment"]["HELPDESK_HTTP_PORT"])
    _, container = service_container(name)
    in_k8s = int(plain_env(container)["HELPDESK_HTTP_PORT"])
    assert in_compose == in_k8s
    try:
        settings = __import__(f"{name}.settings", fromlist=["Settings"]).Settings
    except ImportError:
        pytest.skip(f"{name}.settings is not importable here")
    default = settings.model_fields["http_port"].default
    assert in_k8s == default, f"{name}: deployed on {in_k8s}, its Settings default to {default}"


# --- the image -------------------------------------------------------------------------------------


def test_the_dockerfile_builds_a_uv_venv_on_python_slim_and_runs_as_uid_10001() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, flags=re.MULTILINE | re.IGNORECASE)
    assert len(stages) >= 2, "expected a multi-stage build"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, flags=re.MULTILINE) or all(
        image.startswith("python:3.11-slim") for image, _ in stages
    )
    assert re.search(r"pip install \"?uv==", text), "uv comes from PyPI, pinned"
    assert "uv sync --frozen --no-dev --all-packages" in text
    assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in text
    final_stage = text[text.rfind("\nFROM ") :]
    assert re.search(r"^USER\s+10001(:10001)?\s*$", final_stage, flags=re.MULTILINE)
    assert re.search(r'PATH="?/app/\.venv/bin:', final_stage)
    assert "COPY --from=build /app/.venv /app/.venv" in final_stage


def test_the_dockerignore_keeps_local_state_and_secrets_out_of_the_build_context() -> None:
    patterns = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip()[:1] not in {"", "#"}}
    for needed in (
        ".git",
        ".venv",
        ".cache",
        ".data",
        ".env",
        ".pytest_cache",
        ".ruff_cache",
        "**/__pycache__",
    ):
        assert needed in patterns, f".dockerignore should exclude {needed}"
    for kept in ("uv.lock", "pyproject.toml", "services", "libs", "contracts"):
        assert kept not in patterns, f".dockerignore must not exclude {kept}"
