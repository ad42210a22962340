"""deploy/docker/Dockerfile, checked without a container engine: stages, non-root runtime user,
sources that exist and are not excluded from the build context, the health probe the binary has."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib

import json
import pytest

from conftest import ROOT

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for word, rest in instructions():
        if word == "FROM":
            result.append([])
        if result:
            result[-1].append((word, rest))
    return result


def runtime() -> list[tuple[str, str]]:
    return stages()[-1]


def test_multi_stage_with_a_rust_builder_and_a_small_runtime():
    args = dict(rest.split("=", 1) for word, rest in instructions() if word == "ARG" and "=" in rest)
    assert re.fullmatch(r"rust:1\.\d+-slim-bookworm", args["RUST_IMAGE"])
    assert args["RUNTIME_IMAGE"] in {"gcr.io/distroless/cc-debian12:nonroot", "debian:bookworm-slim"}
    assert len(stages()) == 2
    assert stages()[0][0] == ("FROM", "${RUST_IMAGE} AS builder")


def test_runtime_runs_as_a_non_root_user():
    users = [rest for word, rest in runtime() if word == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert not user.isdigit() or int(user) >= 10000


def test_dependencies_are_built_in_their_own_layer_before_the_sources():
    builder = stages()[0]
    copies = [rest for word, rest in builder if word == "COPY"]
    runs = [i for i, (word, rest) in enumerate(builder) if word == "RUN" and "cargo build" in rest]
    first_src = next(i for i, (word, rest) in enumerate(builder) if word == "COPY" and rest.startswith("src"))
    assert copies[0].startswith("Cargo.toml Cargo.lock")
    assert runs[0] < first_src < runs[1]
    # Every workspace member's manifest is copied before the first build, and every [[bench]] of
    # every manifest has a placeholder, or cargo refuses the workspace.
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    placeholders = " ".join(rest for word, rest in builder[: runs[0] + 1] if word == "RUN")
    early_copies = " ".join(rest for word, rest in builder[: runs[0]] if word == "COPY")
    members = [m for m in cargo.get("workspace", {}).get("members", []) if m != "."]
    assert members, "the workspace names its members"
    for prefix in [""] + [f"{m}/" for m in members]:
        manifest = tomllib.loads((ROOT / f"{prefix}Cargo.toml").read_text())
        if prefix:
            assert f"{prefix}Cargo.toml" in early_copies, f"{prefix}Cargo.toml is not copied"
        for bench in manifest.get("bench", []):
            assert f"{prefix}benches/{bench['name']}.rs" in placeholders


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/") or fnmatch.fnmatch(path, pattern + "/*"):
            ignored = not negate
    return ignored


def test_copied_sources_exist_and_are_in_the_build_context():
    patterns = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    copied = []
    for stage in stages():
        for word, rest in stage:
            if word == "COPY" and not rest.startswith("--from"):
                copied.extend(shlex.split(rest)[:-1])
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such path"
        assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    # And what the crate compiles in (knowledge files, the proto) is copied.
    assert {"Cargo.toml", "Cargo.lock", "build.rs", "proto", "src", "knowledge"} <= set(copied)


def test_entrypoint_command_ports_and_health_check():
    rt = dict((word, rest) for word, rest in runtime())
    assert json.loads(rt["ENTRYPOINT"]) == ["/usr/local/bin/trdscreen"]
    cmd = json.loads(rt["CMD"])
    assert cmd[0] == "serve"
    settings = cmd[cmd.index("-c") + 1]
    assert any(word == "COPY" and rest.split()[-1] == settings for word, rest in runtime())
    assert set(rt["EXPOSE"].split()) == {"50051", "9464"}
    health = rt["HEALTHCHECK"]
    exec_form = json.loads(health[health.index("CMD") + 3:].strip())
    assert exec_form[:2] == ["/usr/local/bin/trdscreen", "health"]
    # The flags it passes are the subcommand's own.
    cli = (ROOT / "src" / "cli.rs").read_text()
    for flag in (f for f in exec_form if f.startswith("--")):
        assert re.search(rf"\b{flag[2:].replace('-', '_')}: ", cli), flag


def test_image_settings_listen_on_every_interface():
    settings = tomllib.loads((ROOT / "deploy" / "docker" / "settings.toml").read_text())
    assert settings["grpc"]["listen"] == "0.0.0.0:50051"
    assert settings["telemetry"]["metrics_listen"] == "0.0.0.0:9464"
