"""deploy/: the Dockerfile linted, the Kubernetes manifests validated, and both agreeing with the code.

Images cannot be built here (no Docker daemon, no registry to pull a base
image from), so the Dockerfile is checked by hadolint and against the
Makefile: the same Debian package file, extras that pyproject.toml has.
The manifests are validated against the Kubernetes API's schemas
(kubernetes-validate, offline, strict: an unknown field fails) for the
oldest and newest versions it knows, and their flags are parsed by the
server's own settings parser, so a renamed flag fails here and not in a
cluster.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import promql_parser
import pytest
import yaml

from tests.support.certs import TestCA
from tests.support.nginx import DEPLOY as NGINX_DIR
from tests.support.nginx import nginx_binary
from tongyeok_server.app import LIVENESS
from tongyeok_server.observability.metrics import Metrics
from tongyeok_server.settings import Settings, from_args

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
OLDEST, NEWEST = "1.25", kubernetes_validate.latest_version()


def packages(path: Path) -> list[str]:
    return [line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()]


def manifests(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def deployment() -> dict[str, Any]:
    (doc,) = manifests("deployment.yaml")
    return doc


def container() -> dict[str, Any]:
    (server,) = deployment()["spec"]["template"]["spec"]["containers"]
    return dict(server)


# -- the image ---------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run(
        [hadolint, "--config", str(DEPLOY / "hadolint.yaml"), str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The linter is live: a Dockerfile that runs as root with an unpinned base image fails it.
    bad = subprocess.run(
        [hadolint, "-"], input="FROM python\nRUN cd /tmp && echo hi\n", capture_output=True, text=True, timeout=60
    )
    assert bad.returncode != 0 and "DL3006" in bad.stdout


def test_dockerfile_installs_what_the_makefile_installs() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    runtime = packages(DEPLOY / "packages" / "runtime.txt")
    dev = packages(DEPLOY / "packages" / "dev.txt")
    make = subprocess.run(["make", "-s", "print-deb-packages"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert make.returncode == 0, make.stderr
    assert make.stdout.split() == runtime + dev, "the Makefile installs both lists, nothing else"
    assert "COPY deploy/packages/runtime.txt" in dockerfile and "xargs apt-get install" in dockerfile
    assert not set(runtime) & set(dev)
    # The Python side: the image's extras exist in pyproject.toml, and it copies what the build needs.
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    (chosen,) = re.findall(r"^ARG EXTRAS=(\S+)$", dockerfile, re.MULTILINE)
    assert set(chosen.split(",")) <= extras and "piper" not in chosen, "piper is GPL: never by default"
    assert Settings().recognition.recognizer in chosen.split(","), (
        "a flagless tongyeok-server in the image runs its default"
    )
    for needed in ("pyproject.toml README.md", "server server", "client client"):
        assert f"COPY {needed}" in dockerfile
    # Non-root, the health check through the gRPC health service with the installed probe.
    assert re.search(r"^USER 10001", dockerfile, re.MULTILINE)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "tongyeok-health" in scripts and f'"--service", "{LIVENESS}"' in dockerfile
    assert 'ENTRYPOINT ["tongyeok-server"]' in dockerfile
    env = dict(re.findall(r"(TONGYEOK_[A-Z_]+)=(\S+)", dockerfile))
    settings = from_args([], env)
    assert (settings.server.port, settings.server.health_port, settings.observability.metrics_port) == (
        50051,
        8081,
        9090,
    )


# -- Kubernetes ----------------------------------------------------------------------


def test_every_manifest_is_valid_kubernetes() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    files = {p.name for p in K8S.glob("*.yaml")} - {
        "kustomization.yaml",
        "prometheus-adapter-values.yaml",
        "secrets.example.yaml",
    }
    assert listed == files, "every resource file is in kustomization.yaml, and only those"
    kinds = set()
    for name in [*sorted(files), "secrets.example.yaml"]:
        for doc in manifests(name):
            kinds.add(doc["kind"])
            for version in (OLDEST, NEWEST):
                kubernetes_validate.validate(doc, version, strict=True)
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Secret"} <= kinds
    # The validator is live: a misspelt probe field fails it.
    broken = copy.deepcopy(deployment())
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["grpc"]["prot"] = 8081
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, NEWEST, strict=True)


def test_the_deployment_runs_the_server_as_it_is_documented() -> None:
    server = container()
    env = {e["name"]: e.get("value", "") for e in server["env"]}
    settings = from_args(server["args"], {**env, "TONGYEOK_HEALTH_PORT": "8081"})
    assert settings.server.processes == 2 and settings.recognition.recognizer == "google"
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"grpc": 50051, "health": 8081, "metrics": 9090}
    # gRPC probes on the plaintext health port: readiness "", liveness and startup "liveness".
    assert server["readinessProbe"]["grpc"] == {"port": 8081}
    assert server["livenessProbe"]["grpc"] == {"port": 8081, "service": LIVENESS}
    assert server["startupProbe"]["grpc"]["service"] == LIVENESS
    # The kubelet waits longer than the preStop pause plus the server's drain.
    spec = deployment()["spec"]["template"]["spec"]
    pause = int(server["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert spec["terminationGracePeriodSeconds"] >= pause + settings.server.grace_period_s + 10
    # Liveness must not kill a pod before it has drained.
    live = server["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 30
    # Non-root, read-only, nothing to escalate.
    assert spec["securityContext"]["runAsNonRoot"] and server["securityContext"]["readOnlyRootFilesystem"]
    assert server["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # Credentials are files from Secrets (never literal values in the spec), mounted whole so that
    # a rotated certificate reaches the server.
    mounts = {m["name"]: m for m in server["volumeMounts"]}
    secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    assert set(secrets) == {"tls", "api-keys", "google", "openai", "postgres", "resume"}
    assert not any("subPath" in mounts[name] for name in secrets)
    for flag, volume in (
        (settings.security.tls_cert, "tls"),
        (settings.security.tls_key, "tls"),
        (settings.resume.peer_ca, "tls"),
        (settings.security.api_keys, "api-keys"),
        (settings.resume.resume_secret, "resume"),
    ):
        assert flag.startswith(mounts[volume]["mountPath"] + "/")
    # Replicas relay resumes to each other at the pod's own address.
    assert settings.resume.advertise_address == "$(POD_IP):50051"
    (pod_ip,) = [e for e in server["env"] if e["name"] == "POD_IP"]
    assert pod_ip["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    for var, volume in (
        ("GOOGLE_APPLICATION_CREDENTIALS", "google"),
        ("OPENAI_API_KEY_FILE", "openai"),
        ("PGPASSWORD_FILE", "postgres"),
    ):
        assert env[var].startswith(mounts[volume]["mountPath"] + "/")
    assert not any(e["name"] in ("OPENAI_API_KEY", "PGPASSWORD") for e in server["env"])
    assert server["resources"]["requests"]["cpu"] == str(settings.server.processes), "a core per process"


def test_service_pdb_and_autoscaler_fit_together() -> None:
    (service,) = manifests("service.yaml")
    assert service["spec"]["clusterIP"] == "None", "headless: the balancer sees every pod"
    selector = deployment()["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    (pdb,) = manifests("poddisruptionbudget.yaml")
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    (hpa,) = manifests("horizontalpodautoscaler.yaml")
    (metric,) = hpa["spec"]["metrics"]
    gauge = Metrics().streams_open._name
    assert metric["pods"]["metric"]["name"] == gauge
    adapter = yaml.safe_load((K8S / "prometheus-adapter-values.yaml").read_text())
    (rule,) = adapter["rules"]["custom"]
    assert rule["name"]["as"] == gauge and gauge in rule["seriesQuery"]
    settings = from_args(container()["args"])
    target = float(metric["pods"]["target"]["averageValue"])
    assert target < settings.server.processes * settings.server.max_streams, "pods are added before one is full"


# -- alerts --------------------------------------------------------------------------

# Labels Prometheus adds when it scrapes a pod (kubernetes_sd relabelling), beside the server's own.
TARGET_LABELS = {"job", "instance", "namespace", "pod"}


def exported_series() -> dict[str, set[str]]:
    """Every series name the server's metrics expose, with the labels each carries."""
    out: dict[str, set[str]] = {}
    for metric in vars(Metrics()).values():
        kind, name, labels = (
            getattr(metric, "_type", None),
            getattr(metric, "_name", ""),
            set(getattr(metric, "_labelnames", ())),
        )
        if kind == "counter":
            out[name + "_total"] = labels
        elif kind == "histogram":
            out.update({name + "_bucket": labels | {"le"}, name + "_count": labels, name + "_sum": labels})
        elif kind == "gauge":
            out[name] = labels
    return out


def selectors(node: Any) -> Iterator[tuple[str, set[str]]]:
    """Each metric a PromQL expression reads, with the labels it matches or groups by."""
    kind = type(node).__name__
    if kind == "VectorSelector":
        yield node.name, {m.name for m in node.matchers.matchers}
    elif kind == "MatrixSelector":
        yield from selectors(node.vector_selector)
    elif kind == "Call":
        for arg in node.args:
            yield from selectors(arg)
    elif kind == "AggregateExpr":
        grouped = set(node.modifier.labels) if node.modifier is not None else set()
        for name, labels in selectors(node.expr):
            yield name, labels | grouped
    elif kind == "BinaryExpr":
        yield from selectors(node.lhs)
        yield from selectors(node.rhs)
    elif kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
        yield from selectors(node.expr)


def test_alert_rules_read_only_what_the_server_exports() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "tongyeok-alerts.yaml").read_text())
    exported = exported_series()
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert len({a["alert"] for a in alerts}) == len(alerts) >= 8
    for alert in alerts:
        assert set(alert) <= {"alert", "expr", "for", "labels", "annotations"}, alert["alert"]
        assert alert["labels"]["severity"] in ("info", "warning", "critical")
        assert alert["annotations"]["summary"]
        read = list(selectors(promql_parser.parse(alert["expr"])))  # a syntax error fails here
        assert read, alert["alert"]
        for name, labels in read:
            assert name in exported, f"{alert['alert']} reads {name}, which the server does not export"
            unknown = labels - exported[name] - TARGET_LABELS
            assert not unknown, f"{alert['alert']}: {name} has no label {unknown}"


def test_the_capacity_alert_fires_before_a_pod_is_full_and_after_the_autoscaler_acts() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "tongyeok-alerts.yaml").read_text())
    (alert,) = [r for g in rules["groups"] for r in g["rules"] if r["alert"] == "TongyeokPodNearCapacity"]
    threshold = float(alert["expr"].rsplit(">", 1)[1])
    settings = from_args(container()["args"])
    (hpa,) = manifests("horizontalpodautoscaler.yaml")
    (metric,) = hpa["spec"]["metrics"]
    assert (
        float(metric["pods"]["target"]["averageValue"])
        < threshold
        < settings.server.processes * settings.server.max_streams
    )


# -- balancers -----------------------------------------------------------------------


def _directives(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip().rstrip(";")
        if line and not line.endswith(("{", "}")):
            name, _, value = line.partition(" ")
            out[name] = value.strip()
    return out


def _seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)([smh]?)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"": 1, "s": 1, "m": 60, "h": 3600}[unit]


def test_nginx_timeouts_outlast_the_servers_own_limits() -> None:
    grpc = _directives(NGINX_DIR / "tongyeok-grpc.conf")
    defaults = Settings()
    longest = max(defaults.session.idle_timeout_s, defaults.session.max_stream_duration_s)
    for name in ("client_body_timeout", "grpc_read_timeout", "grpc_send_timeout"):
        assert _seconds(grpc[name]) > longest, f"{name} must outlast the server's own limits"
    assert grpc["client_max_body_size"] == "0", "an hour of audio is one request body"
    nexts = grpc["grpc_next_upstream"].split()
    assert nexts[:2] == ["error", "timeout"] and "non_idempotent" not in nexts, "a stream under way never moves"
    assert _seconds(grpc["grpc_connect_timeout"]) <= 10
    upstream = _directives(NGINX_DIR / "tongyeok-upstream.conf")
    assert int(upstream["keepalive"]) > 0 and _seconds(upstream["keepalive_time"]) > longest


def test_the_example_nginx_config_is_accepted_by_nginx(tmp_path: Path) -> None:
    binary = nginx_binary()
    if binary is None:
        pytest.fail("nginx is missing: `make setup` installs the Debian package")
    cert = TestCA(tmp_path, "ca").issue("balancer")
    for include in NGINX_DIR.glob("tongyeok-*.conf"):
        shutil.copy(include, tmp_path / include.name)
    site = (NGINX_DIR / "tongyeok.conf").read_text()
    assert site.count("include /etc/nginx/tongyeok/") == 3, "the example includes the files the tests use"
    site = site.replace("/etc/nginx/tongyeok/", f"{tmp_path}/")
    site = site.replace("/etc/nginx/tls/tls.crt", str(cert.cert)).replace("/etc/nginx/tls/tls.key", str(cert.key))
    (tmp_path / "nginx.conf").write_text(f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{\n{site}\n}}\n")
    result = subprocess.run(
        [binary, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_the_envoy_config_has_the_same_policy() -> None:
    config = yaml.safe_load((DEPLOY / "envoy" / "envoy.yaml").read_text())
    (listener,) = config["static_resources"]["listeners"]
    (manager,) = listener["filter_chains"][0]["filters"]
    hcm = manager["typed_config"]
    (vhost,) = hcm["route_config"]["virtual_hosts"]
    (route,) = vhost["routes"]
    idle = Settings().session.idle_timeout_s
    assert _seconds(hcm["stream_idle_timeout"]) > idle and _seconds(route["route"]["idle_timeout"]) > idle
    assert route["route"]["timeout"] == "0s", "no limit on a stream's length"
    assert set(route["route"]["retry_policy"]["retry_on"].split(",")) == {"connect-failure", "refused-stream"}
    (cluster,) = config["static_resources"]["clusters"]
    assert cluster["type"] == "STRICT_DNS" and cluster["lb_policy"] == "ROUND_ROBIN"
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"]["address"].startswith("tongyeok.tongyeok.svc")
