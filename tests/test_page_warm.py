"""``stransfer page`` (what ``make run`` starts): the page warmed up before its first visitor.

The warm-up must do exactly the work the first visit would: after it, the page's first run
decodes no picture and paints no preview (the tests make both fail if they are tried). The
browser test (``test_e2e_browser``) starts the page this way and times the first visit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from stransfer.cli.page import page_script
from stransfer.page import inputs, warm

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    yy, xx = np.mgrid[0:60, 0:80]
    (tmp_path / "content").mkdir()
    (tmp_path / "style").mkdir()
    photo = np.stack([xx * 3, yy * 3, xx + yy], -1).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "content" / "warm_photo.png")
    Image.fromarray(255 - photo).save(tmp_path / "style" / "warm_style.png")
    monkeypatch.setenv("STRANSFER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STRANSFER_WEIGHTS", "random")
    monkeypatch.setenv("STRANSFER_DATA", str(tmp_path / "jobs"))
    return tmp_path


def _instant_models() -> bool:
    try:
        from stransfer.instant import verify

        for name in ("arbitrary_predict", "arbitrary_transform"):
            verify(name)
    except Exception:
        return False
    return True


def test_first_run_after_warm_up_decodes_and_paints_nothing(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stransfer.instant
    import stransfer.service
    from stransfer.service.local import LocalService

    started: list[LocalService] = []

    def service() -> LocalService:  # a real service on this test's folder, no worker process
        if not started:
            started.append(LocalService(data_dir / "jobs", workers=0).start())
        return started[0]

    monkeypatch.setattr(stransfer.service, "local_service", service)
    monkeypatch.setattr(warm, "_runtime_started", lambda timeout_s: True)
    done = warm.warm_up()
    try:
        assert done[:2] == ["page imported", "2 pictures decoded"], done
        assert "job service started" in done and started, done
        models = _instant_models()
        assert ("default preview painted" in done) == models, done

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("the warm-up should have done this already")

        monkeypatch.setattr(inputs, "decode_choice", refuse)
        monkeypatch.setattr(stransfer.instant, "instant", refuse)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        assert not at.exception, [e.value for e in at.exception]
        captions = [c for image in at.image for c in image.captions]
        assert {"warm_photo.png", "warm_style.png"} <= set(captions), captions
        if models:
            assert any(c.startswith("Instant preview") for c in captions), captions
    finally:
        for service_ in started:
            service_.close()
        inputs._path_choice.cache_clear()


def test_warm_up_outside_a_streamlit_server_does_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No Streamlit runtime (e.g. imported by a script): it waits briefly, then gives up."""
    monkeypatch.setattr(warm, "RUNTIME_WAIT_S", 0.2)
    assert warm.warm_up() == []


def test_page_command_finds_the_page_and_explains_itself(tmp_path: Path) -> None:
    assert page_script() == ROOT / "app.py"
    out = subprocess.run(
        [sys.executable, "-m", "stransfer", "page", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "STREAMLIT OPTIONS" in out.stdout, out.stderr


def test_pictures_come_from_the_checkout_else_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a checkout ``data/`` sits beside the package; installed (the container: the package
    in site-packages, the page's files in /app) the page runs in the folder that holds it."""
    monkeypatch.delenv("STRANSFER_DATA_DIR", raising=False)
    assert inputs.data_dir() == ROOT / "data"
    import stransfer.page

    installed = tmp_path / "site-packages" / "stransfer" / "page" / "__init__.py"
    monkeypatch.setattr(stransfer.page, "__file__", str(installed))
    (tmp_path / "app" / "data" / "content").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "app")
    assert inputs.data_dir() == tmp_path / "app" / "data"
    monkeypatch.setenv("STRANSFER_DATA_DIR", str(tmp_path / "mine"))
    assert inputs.data_dir() == tmp_path / "mine"


def test_page_command_without_the_page_says_where_to_run_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Installed without ``app.py`` beside it or in the working folder: one line, status 2."""
    import stransfer.cli.page as page_command

    monkeypatch.setattr(page_command, "page_script", lambda: None)
    assert page_command.main([]) == 2
    error = capsys.readouterr().err
    assert error.startswith("stransfer page: error: no Stransfer app.py here"), error
    assert error.count("\n") == 1, error
