"""checkov's Kubernetes checks over every rendered variant of the chart: all pass, apart from the
skips listed with their reasons in deploy/helm/checkov-skips.yaml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, VARIANTS

SKIPS = yaml.safe_load((ROOT / "deploy" / "helm" / "checkov-skips.yaml").read_text())["skips"]
CHECKOV = Path(sys.executable).with_name("checkov")


def test_every_skip_has_a_reason():
    assert SKIPS, "an empty skip list belongs deleted"
    for skip in SKIPS:
        assert skip["id"].startswith("CKV"), skip
        assert len(skip["reason"].split()) >= 12, f"{skip['id']}: say why"


@pytest.fixture(scope="session")
def checkov_results(rendered, tmp_path_factory) -> dict[str, list[dict]]:
    """One checkov run over every variant (it takes tens of seconds to start): file name -> results."""
    out = tmp_path_factory.mktemp("checkov")
    for name, templates in rendered.items():
        docs = [t for p, t in sorted(templates.items()) if not p.endswith("NOTES.txt") and t.strip()]
        (out / f"{name}.yaml").write_text("\n---\n".join(docs))
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false")
    run = subprocess.run(
        [str(CHECKOV), "-d", str(out), "--framework", "kubernetes", "--skip-download",
         "--compact", "-o", "json", "--skip-check", ",".join(s["id"] for s in SKIPS)],
        capture_output=True, text=True, env=env, check=False,
    )
    # Exit 1 means failed checks (reported below); anything else that is not 0 is checkov itself failing.
    assert run.returncode in (0, 1), run.stderr[-2000:]
    report = json.loads(run.stdout)
    reports = report if isinstance(report, list) else [report]
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports)
    results: dict[str, list[dict]] = {name: [] for name in rendered}
    for r in reports:
        for outcome in ("passed_checks", "failed_checks", "skipped_checks"):
            for check in r["results"].get(outcome, []):
                results[Path(check["file_path"]).stem].append({**check, "outcome": outcome})
    return results


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_checkov_kubernetes_checks_pass(checkov_results, variant):
    results = checkov_results[variant]
    assert any(r["outcome"] == "passed_checks" for r in results), "checkov checked nothing"
    failed = [f"{r['check_id']} {r['check_name']} ({r['resource']})" for r in results if r["outcome"] == "failed_checks"]
    assert failed == []


def test_a_pinned_digest_passes_the_digest_check(rendered, tmp_path):
    """The skipped digest check passes once image.digest is set (the k8s128 variant pins one)."""
    docs = [t for p, t in rendered["k8s128"].items() if not p.endswith("NOTES.txt") and t.strip()]
    path = tmp_path / "pinned.yaml"
    path.write_text("\n---\n".join(docs))
    run = subprocess.run(
        [str(CHECKOV), "-f", str(path), "--framework", "kubernetes", "--skip-download",
         "--compact", "-o", "json", "--check", "CKV_K8S_43"],
        capture_output=True, text=True, env=dict(os.environ, BC_SKIP_MAPPING="TRUE"), check=False,
    )
    report = json.loads(run.stdout)
    assert report["summary"]["failed"] == 0 and report["summary"]["passed"] >= 2, report["summary"]
