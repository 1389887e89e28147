"""Facts about the repository as a whole, beyond the code's layout."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Package registry hosts (written as patterns, so this file names none of them). Scripts read
#: the machine's own mirror configuration instead (scripts/container_check.sh reads apt's).
REGISTRY_HOSTS = re.compile(
    r"\b(?:(?:deb|ftp|security|snapshot|httpredir|archive)\.debian\.org"
    r"|ftp\.[a-z]{2}\.debian\.org"
    r"|(?:archive|security|ports)\.ubuntu\.com"
    r"|(?:test\.)?pypi\.org|pypi\.python\.org|files\.pythonhosted\.org"
    r"|registry\.npmjs\.org|registry\.yarnpkg\.com|registry\.npmmirror\.com"
    r"|conda\.anaconda\.org|repo\.anaconda\.com)\b",
    re.IGNORECASE,
)


def _tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.CalledProcessError):  # an exported tree: every file
        return [p for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_the_repository_names_no_package_registry_host():
    found = []
    for path in _tracked_files():
        if not path.is_file():  # deleted in the working tree
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary
            continue
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if REGISTRY_HOSTS.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not found, "package registry hosts named (read the machine's configuration):\n" + (
        "\n".join(found)
    )


def test_the_host_pattern_finds_what_it_should():
    # Built from parts so that this file itself names no host.
    for host in ("deb", "security"):
        assert REGISTRY_HOSTS.search(f"http://{host}.{'debian'}.org/debian")
    assert REGISTRY_HOSTS.search("https://" + ".".join(["files", "pythonhosted", "org"]) + "/x")
    assert REGISTRY_HOSTS.search("https://" + ".".join(["registry", "npmjs", "org"]))
    assert not REGISTRY_HOSTS.search("http://mirror.test/debian and pip download --no-deps")
