"""The chart, rendered offline through Helm's own SDK (helm-python-sdk), once per set of values."""

from __future__ import annotations

import copy
from pathlib import Path

import helm_python as helm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "trdscreen"
RELEASE = "trd"
NAMESPACE = "screening"

# A FHIR server, and with it the nightly job (one export for all shards, in a shared volume): every
# variant but "default" starts from this.
BASE = {
    "config": {"fhir": {"base_url": "https://ehr.example.org/fhir"}},
    "batch": {"enabled": True, "export": {"persistentVolumeClaim": "trdscreen-exports"}},
}
SMART = {
    "config": {"fhir": {"auth": {"mode": "smart", "client_id": "trdscreen", "key_id": "trdscreen-2026"}}},
    "fhirCredentials": {"smartPrivateKey": {"secretName": "trdscreen-smart", "key": "key.pem"}},
}
TLS = {"tls": {"enabled": True, "secretName": "trdscreen-tls"}}
OTLP = {
    "config": {"telemetry": {"otlp_endpoint": "http://otel-collector.monitoring:4317"}},
    "networkPolicy": {
        "extraEgress": [
            {
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                "ports": [{"port": 4317, "protocol": "TCP"}],
            }
        ]
    },
}
MONITORING = {
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {"enabled": True},
}
SHARDS4 = {
    "batch": {
        "shards": 4,
        "source": "group",
        "groupId": "nightly-cohort",
        "writeBack": "flag",
        "checkpoint": {"persistentVolumeClaim": "trdscreen-checkpoints"},
    }
}
# Four shards reading one export of a Group, with SMART: the bulk source at its fullest.
EXPORTS4 = {
    "batch": {
        "shards": 4,
        "writeBack": "flag-and-careplan",
        "timeZone": "Europe/Berlin",
        "export": {"level": "group/nightly-cohort"},
    }
}
# What a cluster on Kubernetes 1.28 (no backoff limit per index) with pinned images would set.
K8S_128 = {
    "batch": {"backoffLimitPerIndex": None, "timeZone": "Europe/Berlin"},
    "autoscaling": {"enabled": False},
    "podDisruptionBudget": {"maxUnavailable": "25%"},
    "image": {"digest": "sha256:" + "ab" * 32},
}
BEARER = {
    "config": {"fhir": {"auth": {"mode": "bearer"}}},
    "fhirCredentials": {"bearerToken": {"secretName": "trdscreen-bearer"}},
}
# Callers with access tokens from the hospital's identity provider, and a rate limit.
CALLERS = {
    "config": {
        "callers": {
            "authentication": "jwt",
            "jwt": {"issuer": "https://idp.hospital.example/realms/ehr", "audiences": "urn:trdscreen"},
            "rateLimits": {"screening.read": {"per_second": 20, "burst": 40}},
        }
    },
    "networkPolicy": {"identityProvider": {"cidrs": ["10.20.0.0/16"], "ports": [8443]}},
}
# Callers by client certificate: TLS with the CA bundle of the callers' certificates.
MTLS = {
    "tls": {"enabled": True, "secretName": "trdscreen-tls", "clientCA": {"secretName": "hospital-client-ca"}},
    "config": {
        "callers": {
            "authentication": "mtls",
            "mtls": {
                "clients": {
                    "spiffe://hospital.example/ns/ehr/sa/orders": ["screening.read", "screening.write"],
                    "nightly.ehr.hospital.example": ["population.screen"],
                }
            },
        }
    },
}
# A SMART key rotation under way (the next key published), the JWKS exposed to the EHR.
ROTATION = {
    "fhirCredentials": {"smartNextPrivateKey": {"secretName": "trdscreen-smart-2027"}},
    "config": {"fhir": {"auth": {"next_key_id": "trdscreen-2027"}}},
    "jwksIngress": {
        "enabled": True,
        "className": "nginx",
        "host": "trdscreen.hospital.example",
        "tlsSecretName": "trdscreen-jwks-tls",
    },
    "networkPolicy": {
        "jwksFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    },
}
AUDIT = {
    "config": {"audit": {"base_url": "https://audit.hospital.example/fhir", "when_unrecorded": "continue"}},
    "audit": {"spillClaim": "trdscreen-audit"},
}
CDS = {
    "config": {"cds": {
        "enabled": True,
        "service_url": "https://trdscreen.hospital.example/cds-services",
        "fhir_servers": "https://ehr.hospital.example/fhir",
        "clients": {"https://ehr.hospital.example": "https://ehr.hospital.example/.well-known/jwks.json"},
    }},
    "viewLink": {"secretName": "trdscreen-view-link"},
    "networkPolicy": {"cdsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]},
}
KNOWLEDGE = {"knowledgeOverrides": {"policy.toml": "# a site's policy\nversion = \"site-1\"\n"}}


def merged(*parts: dict) -> dict:
    out: dict = {}
    for part in parts:
        _merge(out, copy.deepcopy(part))
    return out


def _merge(into: dict, part: dict) -> None:
    for key, value in part.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


VARIANTS = {
    "default": {},
    "batch": BASE,
    "tls": merged(BASE, TLS),
    "smart": merged(BASE, SMART),
    "bearer": merged(BASE, BEARER),
    "otlp": merged(BASE, OTLP),
    "monitoring": merged(BASE, MONITORING),
    "shards4": merged(BASE, SHARDS4),
    "exports4": merged(BASE, EXPORTS4, SMART),
    "k8s128": merged(BASE, K8S_128),
    "knowledge": merged(BASE, KNOWLEDGE),
    "callers": merged(BASE, CALLERS),
    "mtls": merged(BASE, MTLS),
    "rotation": merged(BASE, SMART, ROTATION),
    "audit": merged(BASE, SMART, EXPORTS4, AUDIT),
    "cds": merged(BASE, SMART, CDS),
    "everything": merged(BASE, TLS, SMART, OTLP, MONITORING, SHARDS4, KNOWLEDGE, CALLERS),
    "everything-mtls": merged(BASE, SMART, ROTATION, OTLP, MONITORING, SHARDS4, KNOWLEDGE, MTLS),
}


def render(values: dict | None) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included), as `helm install` would render it."""
    chart = helm.Chart.load(str(CHART))
    return chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)


def manifests(rendered: dict[str, str]) -> list[dict]:
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str) -> dict:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def named(docs: list[dict], kind: str, suffix: str) -> dict:
    """The one `kind` whose name ends with `suffix` (the nightly job's two CronJobs: -export, -nightly)."""
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"expected one {kind} named *{suffix}, got {len(found)}"
    return found[0]


@pytest.fixture(scope="session")
def rendered() -> dict[str, dict[str, str]]:
    """Every variant rendered once: variant name -> template path -> text."""
    return {name: render(values) for name, values in VARIANTS.items()}
