"""The nightly job as the chart runs it, against the real FHIR server (sekmet-fhir, started by
scripts/test): the rendered export command and two rendered shard commands, with the rendered
settings file. The shards start first and wait for the export's manifest; the FHIR server sees one
export kick-off in all; the two shards together screen every patient of the export once.

Needs TRDSCREEN_TEST_FHIR_URL and target/debug/trdscreen (both there after scripts/test's cargo
step); skipped, with the reason, otherwise."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import BASE, ROOT, by_kind, manifests, merged, named, render

BINARY = ROOT / "target" / "debug" / "trdscreen"
SCENARIOS = ROOT / "tests" / "fixtures" / "scenarios"


class CountingProxy:
    """A reverse proxy in front of the FHIR server that counts the `$export` kick-offs it passes on.
    The server's own base URL in answers (status and file URLs) is rewritten to the proxy's, so the
    client keeps talking through it."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.kick_offs = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = self.path
                if re.search(r"/(\$|%24)export(\?|$)", path):
                    with proxy.lock:
                        proxy.kick_offs += 1
                upstream_url = proxy.upstream.rsplit("/fhir", 1)[0] + path
                headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "content-length"}}
                request = urllib.request.Request(upstream_url, data=body, headers=headers, method=self.command)
                try:
                    with urllib.request.urlopen(request, timeout=60) as answer:
                        status, answer_headers, data = answer.status, answer.headers.items(), answer.read()
                except urllib.error.HTTPError as e:
                    status, answer_headers, data = e.code, e.headers.items(), e.read()
                data = data.replace(proxy.upstream.encode(), proxy.base.encode())
                self.send_response(status)
                for name, value in answer_headers:
                    if name.lower() in {"content-length", "transfer-encoding", "connection", "date", "server"}:
                        continue
                    self.send_header(name, value.replace(proxy.upstream, proxy.base))
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def _put(base: str, resource: dict) -> None:
    url = f"{base}/{resource['resourceType']}/{resource['id']}"
    request = urllib.request.Request(url, data=json.dumps(resource).encode(), method="PUT",
                                     headers={"Content-Type": "application/fhir+json"})
    with urllib.request.urlopen(request, timeout=30):
        pass


def _prefixed(value, prefix: str):
    """Every id and relative reference `Type/id` under the prefix (as tests/common/service.rs does)."""
    if isinstance(value, dict):
        out = {}
        for key, v in value.items():
            if key == "reference" and isinstance(v, str) and re.fullmatch(r"[A-Z][A-Za-z]+/[A-Za-z0-9.-]+", v):
                kind, rid = v.split("/")
                out[key] = f"{kind}/{prefix}-{rid}"
            else:
                out[key] = _prefixed(v, prefix)
        return out
    if isinstance(value, list):
        return [_prefixed(v, prefix) for v in value]
    return value


def _load(base: str, run: str) -> tuple[str, set[str]]:
    """A handful of clinical scenarios under unique ids, and a Group of their patients."""
    patients = set()
    for n, path in enumerate(sorted(SCENARIOS.glob("*.json"))[:12]):
        prefix = f"{run}{n:02d}"
        for entry in json.loads(path.read_text())["entry"]:
            resource = _prefixed(entry["resource"], prefix)
            resource["id"] = f"{prefix}-{resource['id']}"
            _put(base, resource)
            if resource["resourceType"] == "Patient":
                patients.add(resource["id"])
    group = f"{run}-g"
    _put(base, {"resourceType": "Group", "id": group, "type": "person", "actual": True,
                "member": [{"entity": {"reference": f"Patient/{p}"}} for p in sorted(patients)]})
    return group, patients


def _command(container: dict, paths: dict[str, str], index: int) -> list[str]:
    args = []
    for arg in container["args"]:
        for rendered, local in paths.items():
            arg = arg.replace(rendered, local)
        args.append(arg.replace("$(JOB_COMPLETION_INDEX)", str(index)))
    return [str(BINARY), *args]


def test_the_rendered_export_and_two_shards_run_against_the_fhir_server():
    fhir = os.environ.get("TRDSCREEN_TEST_FHIR_URL")
    if not fhir:
        pytest.skip("TRDSCREEN_TEST_FHIR_URL is not set (scripts/test starts the FHIR server)")
    if not BINARY.exists():
        pytest.skip(f"{BINARY} is not built (scripts/test builds it before these tests)")
    run = "helm" + format(int(time.time() * 1000) % 36**6, "x")
    group, patients = _load(fhir, run)
    docs = manifests(render(merged(BASE, {"batch": {
        "shards": 2, "export": {"level": f"group/{group}", "waitSeconds": 300}}})))
    export = named(docs, "CronJob", "-export")
    nightly = named(docs, "CronJob", "-nightly")
    settings = next(d for d in by_kind(docs, "ConfigMap") if "settings.toml" in d["data"])["data"]["settings.toml"]

    proxy = CountingProxy(fhir)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            (tmp / "settings.toml").write_text(settings)
            paths = {
                "/etc/trdscreen/config/settings.toml": str(tmp / "settings.toml"),
                "/var/lib/trdscreen/exports": str(tmp / "exports"),
            }
            env = {**os.environ, "TRDSCREEN_FHIR_BASE_URL": proxy.base,
                   "TRDSCREEN_FHIR_BULK_POLL_INTERVAL_SECS": "1"}
            shard = nightly["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
            shards = []
            for i in range(2):
                local = {**paths, "/var/lib/trdscreen/work": str(tmp / f"work-{i}")}
                os.makedirs(tmp / f"work-{i}")
                shards.append(subprocess.Popen(_command(shard, local, i), env=env, stdout=subprocess.PIPE,
                                               stderr=subprocess.STDOUT, text=True))
            # The shards are up before the export: they must wait for its manifest.
            time.sleep(2)
            assert all(p.poll() is None for p in shards), "a shard did not wait for the export"
            exporter = export["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
            done = subprocess.run(_command(exporter, paths, 0), env=env, capture_output=True, text=True,
                                  timeout=600)
            assert done.returncode == 0, done.stdout + done.stderr
            outputs = [p.communicate(timeout=600)[0] for p in shards]
            assert [p.returncode for p in shards] == [0, 0], outputs

            assert proxy.kick_offs == 1, f"the FHIR server saw {proxy.kick_offs} exports"
            export_dir = tmp / "exports" / "nightly"
            manifest = json.loads((export_dir / "manifest.json").read_text())
            screened = []
            for i in range(2):
                report = export_dir / "shards-2" / f"report-{i}.json"
                assert json.loads(report.read_text())["export"]["transaction_time"] == manifest["transactionTime"]
                with open(report.with_suffix(".csv")) as rows:
                    screened.extend(row["patient_id"] for row in csv.DictReader(rows))
            assert sorted(screened) == sorted(patients), "every patient of the export once, in one shard"
    finally:
        proxy.close()
