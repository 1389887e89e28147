"""The package's folders are stages of the data flow: each imports only from stages before it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "stransfer"
#: Stage order; a module may import its own stage and earlier ones.
#: ``cli`` comes last: every command, ``stransfer page`` (the page's launcher) included.
STAGES = ("core", "io", "weights", "instant", "engine", "service", "page", "cli")
#: Stages that must stay free of TensorFlow, so the page and API processes never load it.
NO_ENGINE = ("core", "io", "weights", "instant", "page")


def _stage_of(dotted: str) -> str | None:
    parts = dotted.split(".")
    if parts[0] != "stransfer" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in STAGES else None


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every stransfer module ``path`` imports (at any depth), as absolute dotted names."""
    package = path.relative_to(PACKAGE.parent).parent.parts  # ('stransfer', 'io')
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            targets = [name] if node.module else [f"{name}.{a.name}" for a in node.names]
            found += [(node.lineno, t) for t in targets]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, name) for line, name in found if name.startswith("stransfer")]


def _modules() -> list[Path]:
    # A folder's __main__.py is an entry point (``python -m stransfer.weights``), not a stage.
    return sorted(
        p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE and p.name != "__main__.py"
    )


def test_every_folder_is_a_known_stage():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= set(STAGES), f"unknown stage folders: {folders - set(STAGES)}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_go_downward(path: Path):
    stage = path.relative_to(PACKAGE).parts[0]
    rank = STAGES.index(stage)
    for line, name in _imports(path):
        target = _stage_of(name)
        if target is None:
            continue
        assert STAGES.index(target) <= rank, (
            f"{path.relative_to(PACKAGE)}:{line} imports {name} from a later stage"
        )
        if stage in NO_ENGINE:
            assert target != "engine", f"{path.relative_to(PACKAGE)}:{line} imports the engine"


def test_settings_and_help_do_not_load_tensorflow():
    code = (
        "import sys, contextlib, io\n"
        "from stransfer.core.settings import TransferSettings\n"
        "TransferSettings().validated()\n"
        "import stransfer.io.records, stransfer.weights\n"
        "from stransfer.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
        timeout=120,
    )
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr
