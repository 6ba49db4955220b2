"""The Kubernetes manifests in deploy/k8s: valid, safe MACHINE_IDs, probes, routing, config."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mmr.devcluster.cluster import POOL_RANGES
from mmr.services import service_module
from shared.config import load_config
from shared.ids.snowflake import MAX_MACHINE_ID
from shared.services import SERVICES
from tests.deploy.routing import ROUTES, Route, service_for

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
# The first release where StatefulSet start ordinals and everything used here are GA.
KUBERNETES_VERSION = "1.31.0"
NOT_APPLIED = {"kustomization.yaml", "secret.example.yaml"}
CONFIG_PATH = "/etc/mmr/media-repo.yaml"

Doc = dict[str, Any]


def _load_all() -> dict[str, list[Doc]]:
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        for path in sorted(K8S.glob("*.yaml"))
    }


MANIFESTS = _load_all()


def _objects(kind: str) -> dict[str, Doc]:
    found = {}
    for docs in MANIFESTS.values():
        for doc in docs:
            if doc.get("kind") == kind:
                found[doc["metadata"]["name"]] = doc
    return found


STATEFULSETS = _objects("StatefulSet")
SERVICES_K8S = _objects("Service")
HPAS = _objects("HorizontalPodAutoscaler")
PDBS = _objects("PodDisruptionBudget")
JOBS = _objects("Job")
NETWORK_POLICIES = _objects("NetworkPolicy")
POOLS = tuple(s for s in SERVICES if s != "admin")
METRICS_PORT = 9000


def _pool(service: str) -> Doc:
    return STATEFULSETS[f"mmr-{service}"]


def _container(statefulset: Doc) -> Doc:
    containers = statefulset["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: Doc = containers[0]
    return container


def _env(statefulset: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(statefulset)["env"]}


def _id_range(service: str) -> range:
    env = _env(_pool(service))
    return range(int(env["MACHINE_ID_BASE"]), int(env["MACHINE_ID_LAST"]) + 1)


def _max_replicas(service: str) -> int:
    hpa = HPAS.get(f"mmr-{service}")
    if hpa is not None:
        return int(hpa["spec"]["maxReplicas"])
    return int(_pool(service)["spec"]["replicas"])


def _quantity(text: str | int) -> float:
    """A Kubernetes quantity (`250m`, `2`, `512Mi`, `4Gi`) as a number of cores or bytes."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    assert match is not None, f"not a quantity: {text!r}"
    return float(match.group(1)) * units[match.group(2)]


# --- every file is a valid manifest -------------------------------------------------------------


def test_every_yaml_parses_into_objects() -> None:
    assert MANIFESTS, "no manifests under deploy/k8s"
    for name, docs in MANIFESTS.items():
        assert docs, f"{name} holds no object"
        for doc in docs:
            assert isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc, name


@pytest.mark.parametrize("name", sorted(set(MANIFESTS) - {"kustomization.yaml"}))
def test_manifest_is_valid_against_the_kubernetes_schema(name: str) -> None:
    for doc in MANIFESTS[name]:
        # strict: an unknown or misspelt field is an error, not silently dropped.
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kustomization_applies_every_manifest_except_the_secret_example() -> None:
    (kustomization,) = MANIFESTS["kustomization.yaml"]
    assert sorted(kustomization["resources"]) == sorted(set(MANIFESTS) - NOT_APPLIED)


# --- MACHINE_IDs ----------------------------------------------------------------------------------


def test_there_is_one_statefulset_per_service() -> None:
    assert set(STATEFULSETS) == {f"mmr-{s}" for s in SERVICES}


def test_admin_is_machine_zero_alone_and_never_scaled() -> None:
    assert _id_range("admin") == range(0, 1)
    assert _pool("admin")["spec"]["replicas"] == 1
    assert "mmr-admin" not in HPAS


def test_machine_id_ranges_are_disjoint_and_within_bounds() -> None:
    taken: dict[int, str] = {}
    for service in SERVICES:
        ids = _id_range(service)
        assert ids.start >= 0 and ids.stop - 1 <= MAX_MACHINE_ID, service
        if service != "admin":
            assert ids.start > 0, f"{service} must not include machine 0"
        for machine_id in ids:
            assert machine_id not in taken, f"{service} and {taken[machine_id]} share {machine_id}"
            taken[machine_id] = service


@pytest.mark.parametrize("service", SERVICES)
def test_pool_cannot_scale_past_its_range(service: str) -> None:
    ids = _id_range(service)
    assert _max_replicas(service) <= len(ids)
    annotation = _pool(service)["metadata"]["annotations"]["mmr.t2bot.io/machine-id-range"]
    assert annotation == f"{ids.start}-{ids.stop - 1}"


def test_every_pool_autoscales() -> None:
    for service in POOLS:
        hpa = HPAS[f"mmr-{service}"]
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1", "kind": "StatefulSet", "name": f"mmr-{service}"}
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        # The HPA owns the replica count; a fixed one would fight it on every apply.
        assert "replicas" not in _pool(service)["spec"]


def _run_start_script(service: str, pod_name: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The container's shell command, run by a real `sh` with a stand-in `mmr` that reports
    the MACHINE_ID and arguments it was started with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "mmr"
    stub.write_text('#!/bin/sh\necho "MACHINE_ID=$MACHINE_ID"\necho "ARGS=$*"\n')
    stub.chmod(0o755)
    container = _container(_pool(service))
    env = {k: v for k, v in _env(_pool(service)).items() if isinstance(v, str)}
    run_env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "POD_NAME": pod_name, **env}
    return subprocess.run([*container["command"], *container["args"]], env=run_env,
                          capture_output=True, text=True, timeout=10, check=False)


@pytest.mark.parametrize("service", SERVICES)
def test_container_command_serves_its_service_as_base_plus_ordinal(
    service: str, tmp_path: Path
) -> None:
    ids = _id_range(service)
    for ordinal in range(min(2, len(ids))):
        done = _run_start_script(service, f"mmr-{service}-{ordinal}", tmp_path)
        assert done.returncode == 0, done.stderr
        assert f"MACHINE_ID={ids.start + ordinal}" in done.stdout.splitlines()
        (args,) = [line for line in done.stdout.splitlines() if line.startswith("ARGS=")]
        assert args.startswith(
            f"ARGS=serve {service} --config {CONFIG_PATH} --host 0.0.0.0 --port 8000")


@pytest.mark.parametrize("service", SERVICES)
def test_a_pod_past_its_range_refuses_to_start(service: str, tmp_path: Path) -> None:
    ids = _id_range(service)
    done = _run_start_script(service, f"mmr-{service}-{len(ids)}", tmp_path)
    assert done.returncode != 0
    assert "MACHINE_ID" in done.stderr and "MACHINE_ID=" not in done.stdout


@pytest.mark.parametrize("service", SERVICES)
def test_kubernetes_leaves_the_shell_command_alone(service: str) -> None:
    """Kubernetes expands `$(NAME)` of defined env vars and `$$` in args before the shell sees
    them; the command must use neither."""
    script = " ".join(_container(_pool(service))["args"])
    assert "$$" not in script
    for name in _env(_pool(service)):
        assert f"$({name})" not in script


def test_pod_ordinal_comes_from_the_pod_name() -> None:
    for service in SERVICES:
        assert _env(_pool(service))["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}


# --- probes, ports, resources, safety -------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_probes_use_healthz_for_liveness_and_readyz_for_readiness(service: str) -> None:
    container = _container(_pool(service))
    assert container["ports"] == [{"name": "http", "containerPort": 8000},
                                  {"name": "metrics", "containerPort": METRICS_PORT}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("service", SERVICES)
def test_every_container_has_requests_limits_and_a_locked_down_context(service: str) -> None:
    pod = _pool(service)["spec"]["template"]["spec"]
    container = _container(_pool(service))
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            assert _quantity(container["resources"][kind][resource]) > 0
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_thumbnail_pool_gets_the_most_cpu_and_memory() -> None:
    def size(service: str, kind: str, resource: str) -> float:
        return _quantity(_container(_pool(service))["resources"][kind][resource])

    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            others = [size(s, kind, resource) for s in SERVICES if s != "thumbnail"]
            assert size("thumbnail", kind, resource) >= max(others), (kind, resource)


@pytest.mark.parametrize("service", SERVICES)
def test_each_pool_has_a_service_selecting_exactly_its_pods(service: str) -> None:
    statefulset, svc = _pool(service), SERVICES_K8S[f"mmr-{service}"]
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert statefulset["spec"]["serviceName"] == f"mmr-{service}"
    assert svc["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["selector"]["app.kubernetes.io/component"] == service
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http"},
        {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"},
    ]


# --- config and secrets ---------------------------------------------------------------------------


def test_configmap_with_the_secret_env_is_a_valid_cluster_config(tmp_path: Path) -> None:
    (configmap,) = MANIFESTS["configmap.yaml"]
    (secret,) = MANIFESTS["secret.example.yaml"]
    path = tmp_path / "media-repo.yaml"
    path.write_text(configmap["data"]["media-repo.yaml"])
    config = load_config(path, env=secret["stringData"])
    assert config.database.postgres == secret["stringData"]["MMR_DATABASE_POSTGRES"]
    assert config.redis.effective_url == secret["stringData"]["MMR_REDIS_URL"]
    assert config.shared_secret_auth.token == secret["stringData"]["MMR_SHARED_SECRET"]
    (store,) = config.datastores
    assert store.type == "s3" and store.for_kinds == ["all"]
    assert store.s3_opts().access_secret == secret["stringData"]["MMR_DATASTORE_S3_ACCESSSECRET"]
    assert config.repo.temp_path == "/var/tmp/mmr"


@pytest.mark.parametrize("service", SERVICES)
def test_pods_mount_the_config_and_a_writable_temp_dir(service: str) -> None:
    pod = _pool(service)["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in _container(_pool(service))["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/etc/mmr"]]["configMap"]["name"] == "mmr-config"
    assert "emptyDir" in volumes[mounts["/var/tmp/mmr"]]
    assert _container(_pool(service))["envFrom"] == [{"secretRef": {"name": "mmr-secrets"}}]


# --- routing --------------------------------------------------------------------------------------


def _ingress_paths() -> list[Doc]:
    """Every path rule of every Ingress (the regex ones live in an Ingress of their own)."""
    paths: list[Doc] = []
    for ingress in _objects("Ingress").values():
        (rule,) = ingress["spec"]["rules"]
        paths += rule["http"]["paths"]
    return paths


def _as_ingress_rule(route: Route) -> tuple[str, str]:
    if route.path_type == "Regex":
        return "ImplementationSpecific", route.path + "$"
    return route.path_type, route.path


def test_only_the_regex_ingress_uses_regular_expressions() -> None:
    for name, ingress in _objects("Ingress").items():
        types = {p["pathType"] for p in ingress["spec"]["rules"][0]["http"]["paths"]}
        regex = ingress["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/use-regex")
        assert (types == {"ImplementationSpecific"}) == (regex == "true"), name


def test_ingress_routes_exactly_the_routing_table() -> None:
    in_ingress = [
        (p["pathType"], p["path"], p["backend"]["service"]["name"]) for p in _ingress_paths()
    ]
    expected = [(*_as_ingress_rule(r), f"mmr-{r.service}") for r in ROUTES]
    assert sorted(in_ingress) == sorted(expected)
    assert len(set(in_ingress)) == len(in_ingress), "a path is listed twice"


def test_regex_rules_live_in_their_own_ingress() -> None:
    by_name = {ingress["metadata"]["name"]: ingress for ingress in MANIFESTS["ingress.yaml"]}
    assert set(by_name) == {"mmr", "mmr-regex"}
    assert "nginx.ingress.kubernetes.io/use-regex" not in by_name["mmr"]["metadata"]["annotations"]
    (rule,) = by_name["mmr-regex"]["spec"]["rules"]
    assert {p["pathType"] for p in rule["http"]["paths"]} == {"ImplementationSpecific"}


def test_ingress_backends_name_existing_service_ports() -> None:
    for path in _ingress_paths():
        backend = path["backend"]["service"]
        ports = {p["name"] for p in SERVICES_K8S[backend["name"]]["spec"]["ports"]}
        assert backend["port"]["name"] in ports


def test_ingress_does_not_limit_or_buffer_bodies() -> None:
    ingress = next(i for i in MANIFESTS["ingress.yaml"] if i["metadata"]["name"] == "mmr")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "0"
    assert annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"


def _mounted_paths(service: str) -> list[str]:
    paths = []
    for router in service_module(service).ROUTERS:
        for route in router.routes:
            paths.append(re.sub(r"\{[^}]+\}", "x", route.path))
    return paths


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_a_service_mounts_reaches_that_service(service: str) -> None:
    """A route added to a service without a matching ingress rule would be unreachable."""
    for path in _mounted_paths(service):
        assert service_for(path) == service, f"{path} is mounted by {service}"


# --- image ----------------------------------------------------------------------------------------


def test_dockerfile_builds_a_non_root_image_running_mmr() -> None:
    text = (REPO / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert re.search(r"pip install .*\s\.(\s+\\)?\s*$", text, re.MULTILINE)
    (user,) = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user.split(":")[0] not in ("root", "0")
    pod_user = _pool("admin")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert user.split(":")[0] == str(pod_user)
    assert 'ENTRYPOINT ["mmr"]' in text


# --- ranges shared with `mmr cluster up` ---------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_pool_ranges_are_the_dev_clusters(service: str) -> None:
    assert _id_range(service) == POOL_RANGES[service]


# --- rollout: migrate, machine 0, then the pools ----------------------------------------------------


def _kustomize_tag() -> str:
    (kustomization,) = MANIFESTS["kustomization.yaml"]
    (image,) = kustomization["images"]
    return str(image["newTag"])


def test_a_migration_job_per_release_runs_mmr_migrate() -> None:
    (job,) = JOBS.values()
    assert job["metadata"]["name"] == "mmr-migrate-" + _kustomize_tag().replace(".", "-")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["mmr", "migrate", "--config", CONFIG_PATH]
    assert container["envFrom"] == [{"secretRef": {"name": "mmr-secrets"}}]
    assert pod["restartPolicy"] == "OnFailure" and pod["securityContext"]["runAsNonRoot"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("service", POOLS)
def test_pool_pods_wait_for_machine_zero_to_run_their_release(service: str) -> None:
    pod = _pool(service)["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["image"] == _container(_pool(service))["image"]
    command = init["command"]
    assert command[:3] == ["mmr", "cluster", "await-admin"]
    url = command[command.index("--url") + 1]
    assert url == f"http://mmr-admin:{SERVICES_K8S['mmr-admin']['spec']['ports'][0]['port']}"
    assert init["securityContext"]["readOnlyRootFilesystem"] is True


def test_admin_has_no_wait_and_rolls_one_pod_at_a_time() -> None:
    spec = _pool("admin")["spec"]
    assert "initContainers" not in spec["template"]["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate"}


# --- scaling and disruptions ------------------------------------------------------------------------


@pytest.mark.parametrize("service", POOLS)
def test_each_pool_has_a_disruption_budget_for_its_pods(service: str) -> None:
    pdb = PDBS[f"mmr-{service}"]
    assert pdb["spec"]["selector"]["matchLabels"] == _pool(service)["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["maxUnavailable"] == 1


def test_machine_zero_has_no_disruption_budget_that_would_block_drains() -> None:
    assert "mmr-admin" not in PDBS


@pytest.mark.parametrize("service", SERVICES)
def test_a_stopping_pod_drains_within_its_grace_period(service: str) -> None:
    """preStop sleeps while the ingress forgets the pod, then SIGTERM gives requests in flight
    --drain-seconds; Kubernetes must not SIGKILL before both are over."""
    pod = _pool(service)["spec"]["template"]["spec"]
    container = _container(_pool(service))
    sleep_command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep_command[0] == "sleep"
    script = container["args"][0]
    drain = int(re.search(r"--drain-seconds (\d+)", script).group(1))  # type: ignore[union-attr]
    assert pod["terminationGracePeriodSeconds"] > int(sleep_command[1]) + drain
    if service == "upload":
        assert drain >= 120, "uploads of 100 MiB on slow links need minutes"


# --- probes, metrics, config ------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_readiness_tolerates_a_blip_and_liveness_ignores_dependencies(service: str) -> None:
    container = _container(_pool(service))
    readiness = container["readinessProbe"]
    assert readiness["failureThreshold"] * readiness["periodSeconds"] >= 30
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("service", SERVICES)
def test_metrics_are_scraped_from_the_port_the_config_opens(service: str) -> None:
    (configmap,) = MANIFESTS["configmap.yaml"]
    metrics = yaml.safe_load(configmap["data"]["media-repo.yaml"])["metrics"]
    assert metrics == {"enabled": True, "bindAddress": "0.0.0.0", "port": METRICS_PORT}
    annotations = _pool(service)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_rate_limits_see_clients_through_the_ingress() -> None:
    (configmap,) = MANIFESTS["configmap.yaml"]
    repo = yaml.safe_load(configmap["data"]["media-repo.yaml"])["repo"]
    raw = yaml.safe_load(configmap["data"]["media-repo.yaml"])
    assert raw["rateLimit"]["enabled"] is True
    assert repo["trustedProxies"], "without it every client is limited as the ingress's address"


# --- the preview pool's egress ----------------------------------------------------------------------

PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
           "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128")


def test_preview_egress_is_dns_dependencies_and_public_addresses_only() -> None:
    (policy,) = NETWORK_POLICIES.values()
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == _pool("preview")["spec"]["selector"]["matchLabels"]
    assert spec["policyTypes"] == ["Egress"]
    excepted: set[str] = set()
    for rule in spec["egress"]:
        for peer in rule["to"]:
            if "ipBlock" in peer:
                assert peer["ipBlock"]["cidr"] in ("0.0.0.0/0", "::/0")
                excepted |= set(peer["ipBlock"]["except"])
            else:
                # In-cluster peers only by label, and only on named ports.
                assert peer["podSelector"]["matchLabels"] and rule["ports"]
    assert set(PRIVATE) <= excepted
    dns = spec["egress"][0]
    assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert {p["port"] for p in dns["ports"]} == {53}


def test_only_the_preview_pool_is_fenced() -> None:
    selected = [p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                for p in NETWORK_POLICIES.values()]
    assert selected == ["preview"]


# --- routes: every rule of the table reaches its pool -----------------------------------------------


def test_every_route_of_the_table_reaches_a_pod_of_its_pool() -> None:
    for path in _ingress_paths():
        backend = path["backend"]["service"]
        service = SERVICES_K8S[backend["name"]]
        pool = STATEFULSETS[backend["name"]]
        port = next(p for p in service["spec"]["ports"] if p["name"] == backend["port"]["name"])
        container_ports = {p["name"] for p in _container(pool)["ports"]}
        assert port["targetPort"] in container_ports
        assert service["spec"]["selector"].items() <= (
            pool["spec"]["template"]["metadata"]["labels"].items())
        assert backend["port"]["name"] == "http", "the Ingress must never route to metrics"


def test_dockerfile_has_a_healthcheck_on_healthz_and_passes_hadolint() -> None:
    text = (REPO / "deploy" / "Dockerfile").read_text()
    (healthcheck,) = re.findall(r"^HEALTHCHECK .*(?:\n\s+.*)*", text, re.MULTILINE)
    assert "/healthz" in healthcheck
    assert "--read-only" in text, "the documented run lines use a read-only root filesystem"
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run([str(hadolint), str(REPO / "deploy" / "Dockerfile")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
