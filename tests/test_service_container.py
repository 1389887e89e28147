"""The container files, checked without a Docker engine (none runs on these machines): the
compose file parses and wires what exists, the Dockerfile copies files that exist, pins its
requirements, runs as a non-root user, bakes the weights in and has a HEALTHCHECK."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import yaml

from stransfer.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[1]


def _dockerfile() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def test_dockerfile_copies_existing_files_and_is_hardened():
    steps = _dockerfile()
    ignored = (ROOT / ".dockerignore").read_text().split()
    for op, arg in steps:
        if op == "COPY":
            *sources, _ = shlex.split(arg)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert source.strip("./") not in ignored, f"COPY {source} is in .dockerignore"
    ops = [op for op, _ in steps]
    # Only ARGs before FROM; the default base (a registry's) is a slim Python.
    assert set(ops[: ops.index("FROM")]) <= {"ARG"}
    args = dict(arg.split("=", 1) for op, arg in steps[: ops.index("FROM")])
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], steps[ops.index("FROM")][1])
    assert base.startswith("python:3.11-slim")
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in ops and any(
        "/health" in arg for op, arg in steps if op == "HEALTHCHECK"
    )
    runs = " ".join(arg for op, arg in steps if op == "RUN")
    assert "python -m stransfer.weights install vgg19" in runs
    # The weights are installed as the user that runs the service, after USER.
    assert ops.index("USER") < max(i for i, (op, a) in enumerate(steps) if "weights install" in a)


def test_requirements_are_pinned():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].split(";")[0].strip()  # ; starts an environment marker
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line), f"unpinned: {line}"


def test_compose_has_page_api_workers_and_broker():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"broker", "api", "page", "worker"} <= set(services)
    broker_url = services["worker"]["environment"]["STRANSFER_BROKER"]
    assert broker_url == "redis://broker:6379/0"
    for name in ("api", "page", "worker"):
        command = services[name]["command"]
        assert command[:3] == ["python", "-m", "stransfer"] and command[3] in SUBCOMMANDS
    assert services["worker"]["command"][-1] == broker_url
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert services["page"]["command"][3] == "page"  # app.py, warmed up (COPY'd: see above)
    for name in ("api", "page", "worker"):
        assert services[name]["build"] == "."
        assert "stransfer-data:/data" in services[name]["volumes"]
    # Published ports stay on the host's loopback unless the operator changes them.
    for name in ("api", "page"):
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"])


SCRIPT = ROOT / "scripts" / "container_check.sh"


def _print_mirror(apt_etc: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {"PATH": os.environ["PATH"], "APT_ETC": str(apt_etc), **env}
    return subprocess.run(
        ["bash", str(SCRIPT), "--print-mirror"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_container_check_takes_the_mirror_from_apts_deb822_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    # A security stanza first, a disabled one, comments and mixed-case keys: the first
    # enabled non-security deb stanza's first URI wins.
    (tmp_path / "sources.list.d" / "a.sources").write_text(
        "# the machine's own mirrors\n"
        "Types: deb\nURIs: http://mirror.test/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://off.test/debian\nSuites: bookworm\nEnabled: no\n\n"
        "types: deb deb-src\n# a comment inside a stanza\n"
        "uris: http://mirror.test/debian http://second.test/debian\nsuites: bookworm\n"
    )
    result = _print_mirror(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "http://mirror.test/debian"
    # DEBIAN_MIRROR still overrides it.
    result = _print_mirror(tmp_path, DEBIAN_MIRROR="http://override.test/debian")
    assert result.stdout.strip() == "http://override.test/debian"


def test_container_check_reads_a_one_line_sources_list(tmp_path):
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.test/debian bookworm main\n"
        "deb [signed-by=/usr/share/keyrings/k.gpg arch=amd64] http://sec.test/d bookworm-security"
        " main\n"
        "deb [arch=amd64] http://proxy.test:3142/debian bookworm main\n"
    )
    result = _print_mirror(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "http://proxy.test:3142/debian"


def test_container_check_without_a_mirror_says_so_in_one_sentence(tmp_path):
    result = _print_mirror(tmp_path)
    assert result.returncode == 1 and not result.stdout
    message = result.stderr.strip()
    assert "\n" not in message and "no Debian mirror found" in message
    assert "set DEBIAN_MIRROR" in message
