"""The Helm chart: lint, render with a matrix of values, validate every manifest against the
Kubernetes API schemas, and check what the chart promises (shards, probes, secrets as files,
the settings file the service reads, a schema that refuses bad values, a README for every value)."""

from __future__ import annotations

import re
import tomllib

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from conftest import BASE, CHART, NAMESPACE, ROOT, SMART, VARIANTS, by_kind, manifests, merged, named, one, render

KUBERNETES = ["1.28.0", "1.33.0"]
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}
EXPECTED_KINDS = {
    "ConfigMap", "Deployment", "Service", "ServiceAccount", "HorizontalPodAutoscaler",
    "PodDisruptionBudget", "NetworkPolicy", "CronJob",
}
# The metric families the service exports (issue 5 item 1); alert expressions may use only these.
EXPORTED = {
    "rpc_server_duration_seconds", "trdscreen_screenings_total", "trdscreen_fhir_retries_total",
    "trdscreen_auth_token_fetches_total", "trdscreen_batch_runs_total", "trdscreen_batch_last_run_end",
    "http_client_request_duration_seconds",
    "trdscreen_audit_spilling", "trdscreen_audit_records_total",
    # kube-state-metrics, for a CronJob that never ran (documented in alerts.yaml)
    "kube_cronjob_status_last_successful_time",
}


def test_lint_strict_is_clean():
    report = helm.lint(str(CHART), strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_lint_strict_is_clean_with_values(variant):
    report = helm.lint(str(CHART), VARIANTS[variant], strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("version", KUBERNETES)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_manifest_is_valid_kubernetes(rendered, variant, version):
    docs = manifests(rendered[variant])
    assert EXPECTED_KINDS - {"HorizontalPodAutoscaler", "CronJob"} <= {d["kind"] for d in docs}
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue  # not built-in kinds: test_service_monitor / test_prometheus_rule
        assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']} on {version}: {e.message} at {list(e.path)}")


def test_defaults_render_the_service_and_a_fhir_server_adds_the_job(rendered):
    kinds = {d["kind"] for d in manifests(rendered["default"])}
    assert kinds == EXPECTED_KINDS - {"CronJob"}
    assert {d["kind"] for d in manifests(rendered["batch"])} == EXPECTED_KINDS


def _pod(doc: dict) -> dict:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_pods_are_locked_down(rendered, variant):
    docs = manifests(rendered[variant])
    for workload in by_kind(docs, "Deployment") + by_kind(docs, "CronJob"):
        pod = _pod(workload)
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["runAsUser"] != 0
            assert {"cpu", "memory"} <= c["resources"]["requests"].keys()
            assert {"cpu", "memory"} <= c["resources"]["limits"].keys()
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])
            # Secrets are files, never environment variables.
            for env in c.get("env", []):
                assert "secretKeyRef" not in env.get("valueFrom", {})


def test_deployment_probes_use_the_native_grpc_health_check(rendered):
    c = _pod(one(manifests(rendered["default"]), "Deployment"))["containers"][0]
    assert c["args"] == ["serve", "-c", "/etc/trdscreen/config/settings.toml"]
    assert c["livenessProbe"]["grpc"] == {"port": 50051}
    assert c["readinessProbe"]["grpc"] == {"port": 50051, "service": "trdscreen.v1.TrdScreening"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"grpc": 50051, "metrics": 9464}


def test_with_tls_the_probes_fall_back_to_tcp_and_the_certificate_is_mounted(rendered):
    docs = manifests(rendered["tls"])
    pod = _pod(one(docs, "Deployment"))
    c = pod["containers"][0]
    # The kubelet's gRPC probe cannot speak TLS.
    assert c["livenessProbe"]["tcpSocket"] == {"port": "grpc"}
    assert c["readinessProbe"]["tcpSocket"] == {"port": "grpc"}
    assert {"name": "tls", "secret": {"secretName": "trdscreen-tls", "defaultMode": 0o440}} in pod["volumes"]
    settings = _settings(docs)
    assert settings["grpc"]["tls_cert_file"] == "/etc/trdscreen/tls/tls.crt"
    assert settings["grpc"]["tls_key_file"] == "/etc/trdscreen/tls/tls.key"


def test_service_speaks_grpc(rendered):
    svc = one(manifests(rendered["default"]), "Service")
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["grpc"]["appProtocol"] == "grpc" and ports["grpc"]["port"] == 50051
    assert ports["metrics"]["port"] == 9464


def _settings(docs: list[dict]) -> dict:
    cm = next(d for d in by_kind(docs, "ConfigMap") if "settings.toml" in d["data"])
    return tomllib.loads(cm["data"]["settings.toml"])


def test_settings_file_is_toml_with_integers_and_listens_on_every_interface(rendered):
    settings = _settings(manifests(rendered["default"]))
    assert settings["grpc"]["listen"] == "0.0.0.0:50051"
    assert settings["telemetry"]["metrics_listen"] == "0.0.0.0:9464"
    # Helm reads numbers as floats; the service's settings are integers (4194304, not 4.194304e+06).
    assert settings["grpc"]["max_request_bytes"] == 4194304
    numbers = [v for section in settings.values() if isinstance(section, dict) for v in section.values()
               if isinstance(v, (int, float))]
    assert numbers and all(isinstance(v, int) for v in numbers)
    assert settings["fhir"]["auth"] == {"mode": "none"}
    assert "knowledge_dir" not in settings


def test_smart_key_comes_from_the_secret_as_a_file(rendered):
    docs = manifests(rendered["smart"])
    settings = _settings(docs)
    auth = settings["fhir"]["auth"]
    assert auth["mode"] == "smart" and auth["client_id"] == "trdscreen" and auth["key_id"] == "trdscreen-2026"
    assert auth["private_key_file"] == "/etc/trdscreen/smart/private-key.pem"
    assert "token_url" not in auth  # empty: discovered from the server
    for workload in [one(docs, "Deployment"), *by_kind(docs, "CronJob")]:
        pod = _pod(workload)
        volume = next(v for v in pod["volumes"] if v["name"] == "smart")
        assert volume["secret"]["secretName"] == "trdscreen-smart"
        assert volume["secret"]["items"] == [{"key": "key.pem", "path": "private-key.pem"}]
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "smart")
        assert mount == {"name": "smart", "mountPath": "/etc/trdscreen/smart", "readOnly": True}


def test_bearer_token_comes_from_the_secret_as_a_file(rendered):
    docs = manifests(rendered["bearer"])
    assert _settings(docs)["fhir"]["auth"] == {"mode": "bearer", "token_file": "/etc/trdscreen/bearer/token"}
    volume = next(v for v in _pod(one(docs, "Deployment"))["volumes"] if v["name"] == "bearer")
    assert volume["secret"]["secretName"] == "trdscreen-bearer"


def test_callers_are_open_by_default_but_the_network_admits_only_labelled_clients(rendered):
    docs = manifests(rendered["default"])
    assert _settings(docs)["callers"] == {"authentication": "none"}
    grpc_from = one(docs, "NetworkPolicy")["spec"]["ingress"][0]["from"]
    assert grpc_from == [{"podSelector": {"matchLabels": {"trdscreen.io/client": "true"}}}]


def test_callers_with_access_tokens_reach_the_settings_and_the_identity_provider(rendered):
    docs = manifests(rendered["callers"])
    callers = _settings(docs)["callers"]
    assert callers["authentication"] == "jwt"
    assert callers["jwt"] == {"issuer": "https://idp.hospital.example/realms/ehr", "audiences": "urn:trdscreen"}
    assert callers["rate"]["limits"] == {"screening.read": {"per_second": 20, "burst": 40}}
    egress = one(docs, "NetworkPolicy")["spec"]["egress"]
    idp = [rule for rule in egress if any(p["port"] == 8443 for p in rule["ports"])]
    assert idp == [{"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 8443, "protocol": "TCP"}]}]


def test_mutual_tls_mounts_the_client_ca_and_grants_the_listed_identities(rendered):
    docs = manifests(rendered["mtls"])
    settings = _settings(docs)
    assert settings["grpc"]["client_ca_file"] == "/etc/trdscreen/client-ca/ca.crt"
    assert settings["grpc"]["tls_cert_file"] == "/etc/trdscreen/tls/tls.crt"
    assert settings["callers"]["authentication"] == "mtls"
    assert settings["callers"]["mtls"]["clients"] == {
        "spiffe://hospital.example/ns/ehr/sa/orders": ["screening.read", "screening.write"],
        "nightly.ehr.hospital.example": ["population.screen"],
    }
    for workload in [one(docs, "Deployment"), *by_kind(docs, "CronJob")]:
        pod = _pod(workload)
        volume = next(v for v in pod["volumes"] if v["name"] == "client-ca")
        assert volume["secret"] == {
            "secretName": "hospital-client-ca", "defaultMode": 0o440, "items": [{"key": "ca.crt", "path": "ca.crt"}],
        }
        mounts = pod["containers"][0]["volumeMounts"]
        assert {"name": "client-ca", "mountPath": "/etc/trdscreen/client-ca", "readOnly": True} in mounts
    # Without mTLS nothing of it is rendered.
    assert "client_ca_file" not in _settings(manifests(rendered["tls"]))["grpc"]
    assert "mtls" not in _settings(manifests(rendered["callers"]))["callers"]


def test_a_key_rotation_mounts_the_next_key_and_publishes_the_jwks_path_only(rendered):
    docs = manifests(rendered["rotation"])
    auth = _settings(docs)["fhir"]["auth"]
    assert auth["private_key_file"] == "/etc/trdscreen/smart/private-key.pem"
    assert auth["next_private_key_file"] == "/etc/trdscreen/smart-next/private-key.pem"
    assert (auth["key_id"], auth["next_key_id"]) == ("trdscreen-2026", "trdscreen-2027")
    for workload in [one(docs, "Deployment"), *by_kind(docs, "CronJob")]:
        pod = _pod(workload)
        volume = next(v for v in pod["volumes"] if v["name"] == "smart-next")
        assert volume["secret"]["secretName"] == "trdscreen-smart-2027"
        assert volume["secret"]["items"] == [{"key": "private-key.pem", "path": "private-key.pem"}]
        mounts = pod["containers"][0]["volumeMounts"]
        assert {"name": "smart-next", "mountPath": "/etc/trdscreen/smart-next", "readOnly": True} in mounts
    ingress = one(docs, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["trdscreen.hospital.example"], "secretName": "trdscreen-jwks-tls"}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "trdscreen.hospital.example"
    assert rule["http"]["paths"] == [{
        "path": "/.well-known/jwks.json",
        "pathType": "Exact",
        "backend": {"service": {"name": one(docs, "Service")["metadata"]["name"], "port": {"name": "metrics"}}},
    }]
    ingress_rules = one(docs, "NetworkPolicy")["spec"]["ingress"]
    jwks = [r for r in ingress_rules if r["from"][0].get("namespaceSelector", {}).get("matchLabels", {}).get(
        "kubernetes.io/metadata.name") == "ingress-nginx"]
    assert jwks == [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
                     "ports": [{"port": "metrics", "protocol": "TCP"}]}]
    # The current key alone: no next key, no Ingress.
    smart = manifests(rendered["smart"])
    assert "next_private_key_file" not in _settings(smart)["fhir"]["auth"]
    assert by_kind(smart, "Ingress") == []


def test_the_audit_trail_reaches_the_settings_and_each_pod_spills_into_a_directory_of_its_own(rendered):
    docs = manifests(rendered["audit"])
    audit = _settings(docs)["audit"]
    assert audit == {
        "base_url": "https://audit.hospital.example/fhir", "service_name": "trdscreen",
        "when_unrecorded": "continue", "memory_capacity": 1000, "max_spill_bytes": 1073741824,
    }
    dirs = []
    for workload in [one(docs, "Deployment"), *by_kind(docs, "CronJob")]:
        pod = _pod(workload)
        volume = next(v for v in pod["volumes"] if v["name"] == "audit-spill")
        assert volume["persistentVolumeClaim"] == {"claimName": "trdscreen-audit"}
        mounts = pod["containers"][0]["volumeMounts"]
        assert {"name": "audit-spill", "mountPath": "/var/lib/trdscreen/audit"} in mounts
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        dirs.append(env["TRDSCREEN_AUDIT_SPILL_DIR"])
    assert sorted(dirs) == sorted([
        "/var/lib/trdscreen/audit/$(POD_NAME)",
        "/var/lib/trdscreen/audit/batch-shard-$(JOB_COMPLETION_INDEX)",
        "/var/lib/trdscreen/audit/export",
    ]), dirs
    # Without an audit endpoint nothing of it is rendered; without a claim the spill is an emptyDir.
    smart = manifests(rendered["smart"])
    assert "audit" not in _settings(smart)
    assert all(v["name"] != "audit-spill" for v in _pod(one(smart, "Deployment"))["volumes"])
    no_claim = manifests(render(merged(BASE, {"config": {"audit": {"base_url": "https://a.example/fhir"}}})))
    volume = next(v for v in _pod(one(no_claim, "Deployment"))["volumes"] if v["name"] == "audit-spill")
    assert volume == {"name": "audit-spill", "emptyDir": {"sizeLimit": "1Gi"}}


def test_cds_hooks_reach_the_settings_the_service_port_and_the_network_policy(rendered):
    docs = manifests(rendered["cds"])
    cds = _settings(docs)["cds"]
    assert cds == {
        "listen": "0.0.0.0:8080",
        "service_url": "https://trdscreen.hospital.example/cds-services",
        "fhir_servers": "https://ehr.hospital.example/fhir",
        "view_link_secret_file": "/etc/trdscreen/view-link/secret",
        "clients": {"https://ehr.hospital.example": {"jwks_url": "https://ehr.hospital.example/.well-known/jwks.json"}},
    }
    ports = {p["name"]: p["port"] for p in one(docs, "Service")["spec"]["ports"]}
    assert ports["cds"] == 8080
    container = _pod(one(docs, "Deployment"))["containers"][0]
    assert {"name": "cds", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert {"name": "view-link", "mountPath": "/etc/trdscreen/view-link", "readOnly": True} in container["volumeMounts"]
    rules = one(docs, "NetworkPolicy")["spec"]["ingress"]
    assert {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
            "ports": [{"port": "cds", "protocol": "TCP"}]} in rules
    # Off by default: no section, no port, no rule.
    smart = manifests(rendered["smart"])
    assert "cds" not in _settings(smart)
    assert all(p["name"] != "cds" for p in one(smart, "Service")["spec"]["ports"])


def test_otlp_endpoint_reaches_the_settings(rendered):
    docs = manifests(rendered["otlp"])
    assert _settings(docs)["telemetry"]["otlp_endpoint"] == "http://otel-collector.monitoring:4317"
    egress = one(docs, "NetworkPolicy")["spec"]["egress"]
    assert any(p.get("port") == 4317 for rule in egress for p in rule.get("ports", []))


def test_knowledge_overrides_are_mounted_and_named_in_the_settings(rendered):
    docs = manifests(rendered["knowledge"])
    assert _settings(docs)["knowledge_dir"] == "/etc/trdscreen/knowledge"
    knowledge = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-knowledge"))
    assert knowledge["data"] == {"policy.toml": "# a site's policy\nversion = \"site-1\"\n"}
    mounts = _pod(one(docs, "Deployment"))["containers"][0]["volumeMounts"]
    assert {"name": "knowledge", "mountPath": "/etc/trdscreen/knowledge", "readOnly": True} in mounts


def test_nightly_job_is_an_indexed_job_with_one_shard_per_pod(rendered):
    cron = one(manifests(rendered["shards4"]), "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == 4 and job["parallelism"] == 4
    assert job["backoffLimitPerIndex"] == 1
    actions = {r["action"] for r in job["podFailurePolicy"]["rules"]}
    assert actions == {"FailJob", "FailIndex", "Ignore"}
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    c = pod["containers"][0]
    args = c["args"]
    assert args[:3] == ["batch", "-c", "/etc/trdscreen/config/settings.toml"]
    assert args[args.index("--shard") + 1] == "$(JOB_COMPLETION_INDEX)/4"
    assert args[args.index("--group") + 1] == "nightly-cohort"
    assert args[args.index("--write-back") + 1] == "flag"
    assert args[args.index("--checkpoint") + 1] == "/var/lib/trdscreen/checkpoint/shard-$(JOB_COMPLETION_INDEX).json"
    # $(VAR) in args expands only for variables the container declares.
    assert any(e["name"] == "JOB_COMPLETION_INDEX" for e in c["env"])
    checkpoint = next(v for v in pod["volumes"] if v["name"] == "checkpoint")
    assert checkpoint == {"name": "checkpoint", "persistentVolumeClaim": {"claimName": "trdscreen-checkpoints"}}


def test_default_job_is_one_shard_reading_the_shared_export_with_its_checkpoint_beside_it(rendered):
    docs = manifests(rendered["batch"])
    job = named(docs, "CronJob", "-nightly")["spec"]["jobTemplate"]["spec"]
    assert job["completions"] == 1 and job["parallelism"] == 1
    args = job["template"]["spec"]["containers"][0]["args"]
    assert "--bulk" not in args and "--group" not in args and "--write-back" not in args
    assert args[args.index("--ndjson") + 1] == "/var/lib/trdscreen/exports/nightly"
    assert args[args.index("--shard") + 1] == "$(JOB_COMPLETION_INDEX)/1"
    # The checkpoint belongs to this export: the next export clears it.
    assert args[args.index("--checkpoint") + 1] == (
        "/var/lib/trdscreen/exports/nightly/shards-1/shard-$(JOB_COMPLETION_INDEX).json"
    )
    volumes = {v["name"]: v for v in job["template"]["spec"]["volumes"]}
    assert volumes["export"]["persistentVolumeClaim"] == {"claimName": "trdscreen-exports"}
    assert volumes["work"]["emptyDir"] == {"sizeLimit": "8Gi"}
    assert "checkpoint" not in volumes


def test_without_backoff_limit_per_index_no_rule_needs_it(rendered):
    docs = manifests(rendered["k8s128"])
    job = named(docs, "CronJob", "-nightly")["spec"]["jobTemplate"]["spec"]
    assert "backoffLimitPerIndex" not in job
    assert "FailIndex" not in {r["action"] for r in job["podFailurePolicy"]["rules"]}
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    assert one(docs, "Deployment")["spec"]["replicas"] == 2
    assert one(docs, "PodDisruptionBudget")["spec"] == {
        "maxUnavailable": "25%",
        "selector": one(docs, "PodDisruptionBudget")["spec"]["selector"],
    }
    image = _pod(one(docs, "Deployment"))["containers"][0]["image"]
    assert image == "ghcr.io/trdscreen/trdscreen:0.1.0@sha256:" + "ab" * 32


def test_strict_validation_catches_a_misspelt_field(rendered):
    """The validation above can fail: a field Kubernetes does not know is refused in strict mode."""
    deployment = one(manifests(rendered["default"]), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"grpc": {"port": 50051}}
    for version in KUBERNETES:
        with pytest.raises(Exception, match="readinesProbe"):
            kubernetes_validate.validate(deployment, version, strict=True)


def test_hpa_scales_the_deployment(rendered):
    docs = manifests(rendered["default"])
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == one(docs, "Deployment")["metadata"]["name"]
    assert "replicas" not in one(docs, "Deployment")["spec"]


def test_network_policy_admits_only_the_configured_peers(rendered):
    docs = manifests(rendered["batch"])
    spec = one(docs, "NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    for cron in by_kind(docs, "CronJob"):
        assert spec["podSelector"]["matchLabels"].items() <= _pod_labels(cron).items()
    assert spec["podSelector"]["matchLabels"].items() <= _pod_labels(one(docs, "Deployment")).items()
    ingress_ports = [[p["port"] for p in rule["ports"]] for rule in spec["ingress"]]
    assert ingress_ports == [["grpc"], ["metrics"]]
    egress_ports = sorted((p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"])
    assert egress_ports == [("TCP", 53), ("TCP", 443), ("UDP", 53)]


def _pod_labels(workload: dict) -> dict:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    return workload["spec"]["template"]["metadata"]["labels"]


def test_service_monitor_scrapes_the_service_metrics_port(rendered):
    docs = manifests(rendered["monitoring"])
    sm = one(docs, "ServiceMonitor")
    svc = one(docs, "Service")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["namespace"] == NAMESPACE
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert set(sm["spec"]) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    svc_ports = {p["name"] for p in svc["spec"]["ports"]}
    for endpoint in sm["spec"]["endpoints"]:
        assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout"}
        assert endpoint["port"] in svc_ports and endpoint["path"] == "/metrics"
        assert re.fullmatch(r"[0-9]+(ms|s|m|h)", endpoint["interval"])


def test_prometheus_rule_carries_the_alerts_file(rendered):
    rule = one(manifests(rendered["monitoring"]), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    text = (CHART / "files" / "alerts.yaml").read_text()
    # One set of alerts: the chart ships deploy/prometheus/alerts.yaml (which promtool and the
    # telemetry test check against the running service) byte for byte.
    assert text == (CHART.parent.parent / "prometheus" / "alerts.yaml").read_text()
    alerts = yaml.safe_load(text)
    assert rule["spec"] == alerts
    names = set()
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"]
        for r in group["rules"]:
            assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}
            assert r["alert"] not in names
            names.add(r["alert"])
            if "for" in r:
                assert re.fullmatch(r"[0-9]+(ms|s|m|h|d)", r["for"])
            assert r["labels"]["severity"] in {"page", "ticket"}
            assert r["annotations"]["summary"]
            metrics = set(re.findall(r"\b([a-z_]+)(?:_count|_bucket|_sum)?\{", r["expr"])) | set(
                re.findall(r"\b((?:trdscreen|kube)_[a-z_]+)\b", r["expr"]))
            base = {re.sub(r"_(count|bucket|sum)$", "", m) for m in metrics}
            assert base and base <= EXPORTED, (r["alert"], base - EXPORTED)
    assert {"TrdscreenHighErrorRatio", "TrdscreenFhirServerUnavailable", "TrdscreenTokenFetchFailing",
            "TrdscreenNightlyJobFailed", "TrdscreenNightlyJobNotRun",
            "TrdscreenCronJobNotSucceeded", "TrdscreenAuditSpilling",
            "TrdscreenAuditRecordsLost"} == names


@pytest.mark.parametrize(
    "values, complaint",
    [
        ({"replicaCount": "two"}, "replicaCount"),
        ({"config": {"cds": {"enabled": True}}}, "service_url"),
        ({"config": {"cds": {"enabled": True, "service_url": "https://t.example/cds-services"}}}, "clients"),
        ({"config": {"cds": {"service_url": "https://t.example/hooks"}}}, "service_url"),
        ({"viewLink": {"secretName": "s"}}, "viewLink"),
        ({"replicas": 2}, "replicas"),
        ({"service": {"grpcPort": 70000}}, "grpcPort"),
        ({"config": {"fhir": {"auth": {"mode": "kerberos"}}}}, "mode"),
        ({"config": {"fhir": {"page_size": "1000"}}}, "page_size"),
        ({"batch": {"shards": 0}}, "shards"),
        ({"batch": {"writeBack": "flag-and-care-plan"}}, "writeBack"),
        ({"batch": {"export": {"level": "group/"}}}, "level"),
        ({"batch": {"workDirSizeLimit": "8GB"}}, "workDirSizeLimit"),
        ({"image": {"digest": "latest"}}, "digest"),
        ({"knowledgeOverrides": {"other.toml": "x = 1"}}, "other.toml"),
        ({"config": {"callers": {"authentication": "certificate"}}}, "authentication"),
        ({"config": {"callers": {"mtls": {"clients": {"spiffe://h.example/a": ["screening.reed"]}}}}}, "/config/callers/mtls/clients"),
        ({"config": {"callers": {"mtls": {"clients": {"spiffe://h.example/a": "screening.read"}}}}}, "/config/callers/mtls/clients"),
    ],
)
def test_schema_refuses_bad_values(values, complaint):
    with pytest.raises(helm.HelmError) as refused:
        render(values)
    assert complaint in str(refused.value)


@pytest.mark.parametrize(
    "values, complaint",
    [
        ({"config": {"fhir": {"auth": {"mode": "smart", "client_id": "x"}}}}, "fhirCredentials.smartPrivateKey.secretName"),
        ({"config": {"fhir": {"auth": {"mode": "bearer"}}}}, "fhirCredentials.bearerToken.secretName"),
        ({"tls": {"enabled": True}}, "tls.secretName"),
        ({"batch": {"enabled": True}}, "config.fhir.base_url"),
        ({"batch": {"enabled": True, "source": "group"}, "config": {"fhir": {"base_url": "https://a.example/fhir"}}},
         "batch.groupId"),
        ({"batch": {"enabled": True}, "config": {"fhir": {"base_url": "https://a.example/fhir"}}},
         "batch.export.persistentVolumeClaim"),
        ({"config": {"callers": {"authentication": "jwt"}}}, "config.callers.jwt.issuer"),
        ({"config": {"callers": {"authentication": "jwt", "jwt": {"issuer": "https://idp.example"}}}},
         "config.callers.jwt.audiences"),
        ({"tls": {"enabled": True, "secretName": "t"}, "config": {"callers": {"authentication": "mtls",
          "mtls": {"clients": {"spiffe://h.example/a": ["screening.read"]}}}}}, "tls.clientCA.secretName"),
        ({"tls": {"enabled": True, "secretName": "t", "clientCA": {"secretName": "ca"}},
          "config": {"callers": {"authentication": "mtls"}}}, "config.callers.mtls.clients"),
        ({"tls": {"clientCA": {"secretName": "ca"}}}, "tls.enabled"),
        ({"fhirCredentials": {"smartNextPrivateKey": {"secretName": "next"}}}, "config.fhir.auth.mode smart"),
        ({"config": {"fhir": {"auth": {"next_key_id": "k2"}}}}, "fhirCredentials.smartNextPrivateKey.secretName"),
        (merged({"fhirCredentials": {"smartNextPrivateKey": {"secretName": "trdscreen-smart", "key": "key.pem"}}},
                SMART), "same Secret key"),
        ({"jwksIngress": {"enabled": True, "host": "a.example"}}, "config.fhir.auth.mode smart"),
        (merged(SMART, {"jwksIngress": {"enabled": True}}), "jwksIngress.host"),
    ],
)
def test_settings_that_cannot_work_are_refused_with_the_value_named(values, complaint):
    with pytest.raises(helm.HelmError) as refused:
        render(values)
    assert complaint in str(refused.value)


def _leaves(tree: dict, schema: dict, prefix: str = "") -> list[str]:
    """Dotted paths of the values; an object the schema leaves free-form (a selector, labels) is one value."""
    out = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        child = schema["properties"][key]
        if isinstance(value, dict) and "properties" in child:
            out.extend(_leaves(value, child, path + "."))
        else:
            out.append(path)
    return out


def test_readme_lists_every_value():
    import json

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.MULTILINE))
    leaves = set(_leaves(values, schema))
    assert leaves - documented == set(), "values missing from the README"
    assert documented - leaves == set(), "README rows for values that do not exist"


def test_schema_types_every_value():
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: dict, tree: dict, path: str):
        assert node.get("additionalProperties") is False or path in {
            "podAnnotations", "podLabels", "nodeSelector", "affinity", "knowledgeOverrides",
        } or path.endswith(("annotations", "labels", "Selector")), path
        for key, value in tree.items():
            assert key in node.get("properties", {}), f"{path}.{key} has no schema"
            child = node["properties"][key]
            if isinstance(value, dict) and value and "properties" in child:
                walk(child, value, f"{path}.{key}".lstrip("."))

    walk(schema, values, "")


def test_notes_name_the_service_and_the_job(rendered):
    notes = next(t for p, t in rendered["shards4"].items() if p.endswith("NOTES.txt"))
    assert "trd-trdscreen.screening.svc:50051" in notes
    assert "cronjob/trd-trdscreen-nightly" in notes and "4 shard(s)" in notes


def test_notes_give_the_jwks_url_to_register(rendered):
    notes = next(t for p, t in rendered["rotation"].items() if p.endswith("NOTES.txt"))
    assert "https://trdscreen.hospital.example/.well-known/jwks.json" in notes
    assert "trdscreen-smart-2027" in notes and "rotation" in notes
    smart = next(t for p, t in rendered["smart"].items() if p.endswith("NOTES.txt"))
    assert "/.well-known/jwks.json" in smart and "rotation" not in smart
    default = next(t for p, t in rendered["default"].items() if p.endswith("NOTES.txt"))
    assert "jwks" not in default.lower()


def test_cargo_version_is_the_chart_app_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    assert chart["appVersion"] == cargo["package"]["version"]


def _containers(docs: list[dict]) -> list[tuple[dict, dict]]:
    return [(w, c) for w in by_kind(docs, "CronJob") + by_kind(docs, "Deployment") for c in _pod(w)["containers"]]


def _minute_of_day(schedule: str) -> int:
    minute, hour, *rest = schedule.split()
    assert rest == ["*", "*", "*"], f"a daily schedule is expected: {schedule}"
    return int(hour) * 60 + int(minute)


@pytest.mark.parametrize("variant", ["batch", "exports4"])
def test_one_export_is_requested_per_run_and_the_shards_read_it_after_it(rendered, variant):
    docs = manifests(rendered[variant])
    exporting = [(w, c) for w, c in _containers(docs) if c["args"][0] == "export"]
    bulk = [(w, c) for w, c in _containers(docs) if "--bulk" in c["args"]]
    assert len(exporting) == 1 and bulk == [], "one export a night, and no shard asks for its own"
    export_job, export = exporting[0]
    assert export_job["kind"] == "CronJob" and export_job["spec"]["concurrencyPolicy"] == "Forbid"
    assert "completionMode" not in export_job["spec"]["jobTemplate"]["spec"], "not one per shard"
    nightly = named(docs, "CronJob", "-nightly")
    shard = _pod(nightly)["containers"][0]
    args = shard["args"]
    # The shards read where the export writes, on the same volume.
    assert args[args.index("--ndjson") + 1] == export["args"][export["args"].index("--out") + 1]
    claim = lambda w: next(v for v in _pod(w)["volumes"] if v["name"] == "export")["persistentVolumeClaim"]
    assert claim(nightly) == claim(export_job)
    # Ordering: the export starts first; a shard reads only a finished export (its manifest) no older
    # than max age, waiting for it; yesterday's export is older than that, so it is never screened again.
    max_age = int(args[args.index("--export-max-age-secs") + 1])
    wait = int(args[args.index("--export-wait-secs") + 1])
    start_export = _minute_of_day(export_job["spec"]["schedule"])
    start_shards = _minute_of_day(nightly["spec"]["schedule"])
    assert start_export < start_shards
    assert (start_shards - start_export) * 60 + wait <= max_age < 24 * 3600
    assert export_job["spec"].get("timeZone") == nightly["spec"].get("timeZone")


def test_the_export_job_is_locked_down_and_retried_but_not_on_bad_arguments(rendered):
    job = named(manifests(rendered["batch"]), "CronJob", "-export")["spec"]["jobTemplate"]["spec"]
    rules = job["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob" and rules[0]["onExitCodes"]["values"] == [2]
    c = job["template"]["spec"]["containers"][0]
    assert c["args"] == ["export", "-c", "/etc/trdscreen/config/settings.toml",
                         "--out", "/var/lib/trdscreen/exports/nightly", "--level", "system"]
