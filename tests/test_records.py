"""Run records: JSON and PNG round trips, sidecars, restoring settings and clear errors."""

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from stransfer.io.images import ImageError, encode_png, image_sha256, load_image, read_png_metadata
from stransfer.io.records import (
    RECORD_KEY,
    RecordError,
    RunRecord,
    load_record,
    png_metadata,
    save_result,
    settings_from_record,
)

SETTINGS = {
    "model": "VGG19",
    "steps": 40,
    "size": 256,
    "content_weight": 1.0,
    "style_weight": 3.5e-2,
    "tv_weight": 0.1,
    "content_layers": None,
    "style_layers": {"block1_conv1": 1.0, "block3_conv1": 0.5},
    "optimizer": "adam",
    "learning_rate": 2.0,
    "precision": "auto",
    "scales": 1,
    "init": "noise",
    "style_scale": 0.75,
    "seed": 7,
    "max_seconds": None,
}


def _record(content: np.ndarray, style: np.ndarray, **changes) -> RunRecord:
    fields = {
        "settings": dict(SETTINGS),
        "precision": "float32",
        "content_sha256": image_sha256(content),
        "style_sha256": [image_sha256(style), image_sha256(style[::-1])],
        "style_weights": [0.7, 0.3],
        "steps_done": 40,
        "final_losses": {"total": 1.25, "content": 0.5, "style": 0.7, "tv": 0.05},
        "seconds": 12.5,
        "extra": {"color_mode": "luminance", "strength": 62.5, "note": "été"},
    }
    fields.update(changes)
    return RunRecord(**fields)


def test_defaults_fill_versions_and_time(content_img, style_img) -> None:
    record = _record(content_img, style_img)
    assert {"numpy", "keras", "stransfer"} <= set(record.versions)
    assert all(isinstance(v, str) and v for v in record.versions.values())
    created = datetime.fromisoformat(record.created)
    assert created.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60


def test_json_round_trip(content_img, style_img) -> None:
    record = _record(content_img, style_img)
    text = record.to_json()
    assert json.loads(text)["settings"] == SETTINGS
    assert RunRecord.from_json(text) == record
    assert RunRecord.from_json(text.encode("utf-8")) == record


def test_json_is_strict_and_plain(content_img, style_img) -> None:
    record = _record(
        content_img,
        style_img,
        final_losses={"total": math.nan, "style": math.inf},
        extra={"gain": np.float32(0.5), "shape": np.array([2, 3]), "path": Path("a/b.png")},
    )
    text = record.to_json()
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-JSON {name}"))
    assert data["final_losses"] == {"total": None, "style": None}
    assert data["extra"] == {"gain": 0.5, "shape": [2, 3], "path": str(Path("a/b.png"))}
    back = RunRecord.from_json(text)
    assert math.isnan(back.final_losses["total"]) and math.isnan(back.final_losses["style"])


def test_from_json_tolerates_missing_and_unknown_keys() -> None:
    record = RunRecord.from_json(
        json.dumps({"settings": {"steps": 5, "future_option": 1}, "from_the_future": [1]})
    )
    assert record.settings == {"steps": 5, "future_option": 1}
    assert record.style_sha256 == [] and record.final_losses == {} and record.steps_done == 0
    assert record.versions == {} and record.created == ""  # not invented on load
    assert RunRecord.from_json('{"settings": {}, "style_sha256": "abc"}').style_sha256 == ["abc"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"steps": 5}', "no settings"),
        ('{"settings": {}, "steps_done": "many"}', "steps_done"),
        ('{"settings": {}, "steps_done": 2.5}', "whole number"),
        ('{"settings": {}, "final_losses": [1]}', "final_losses"),
        ('{"settings": {}, "style_sha256": [1]}', "style_sha256"),
        (b"\xff\xfe{", "UTF-8"),
        ('{"settings": ' * 5000 + "{}" + "}" * 5000, "nests too deeply"),
        ('{"settings": {}, "steps_done": ' + "9" * 5000 + "}", "number too long"),
    ],
)
def test_from_json_errors(text, message) -> None:
    with pytest.raises(RecordError, match=message):
        RunRecord.from_json(text)


def test_png_metadata(content_img, style_img) -> None:
    record = _record(content_img, style_img)
    meta = png_metadata(record)
    assert list(meta) == [RECORD_KEY] == ["stransfer"]
    png = encode_png(content_img, meta)
    assert read_png_metadata(png)[RECORD_KEY] == record.to_json()
    assert load_record(png) == record


def test_save_result_and_load_back(tmp_path, content_img, style_img) -> None:
    record = _record(content_img, style_img)
    png_path, json_path = save_result(content_img, tmp_path / "out" / "result.png", record)
    assert png_path == tmp_path / "out" / "result.png"
    assert json_path == tmp_path / "out" / "result.json"
    assert sorted(p.name for p in png_path.parent.iterdir()) == ["result.json", "result.png"]
    assert np.array_equal(load_image(png_path), content_img)
    assert load_record(png_path) == record
    assert load_record(str(json_path)) == record
    assert load_record(png_path.read_bytes()) == record
    assert load_record(json_path.read_bytes()) == record
    # Overwriting replaces both files.
    newer = _record(content_img, style_img, steps_done=12)
    save_result(content_img[::-1], png_path, newer)
    assert load_record(png_path).steps_done == 12 == load_record(json_path).steps_done


def test_settings_restored_equal(tmp_path, content_img, style_img) -> None:
    from stransfer.core.settings import TransferSettings

    original = TransferSettings.from_dict(SETTINGS)
    record = _record(content_img, style_img, settings=original.to_dict())
    png_path, json_path = save_result(content_img, tmp_path / "r.png", record)
    for source in (png_path, json_path):
        restored = settings_from_record(load_record(source))
        assert restored == original
        assert restored.to_dict() == original.to_dict()
    # Records written by other versions: unknown settings are ignored, missing ones default.
    older = RunRecord.from_json('{"settings": {"steps": 9, "removed_option": true}}')
    assert settings_from_record(older) == TransferSettings(steps=9)


def test_save_result_needs_png(tmp_path, content_img, style_img) -> None:
    with pytest.raises(ImageError, match=r"\.png"):
        save_result(content_img, tmp_path / "result.jpg", _record(content_img, style_img))
    assert list(tmp_path.iterdir()) == []


def test_load_record_errors(tmp_path, content_img) -> None:
    plain = tmp_path / "plain.png"
    plain.write_bytes(encode_png(content_img, {"Software": "other"}))
    fix = re.escape("choose a PNG saved by Stransfer or its .json sidecar.")
    with pytest.raises(RecordError, match=f"this PNG has no Stransfer settings; {fix}"):
        load_record(plain)
    with pytest.raises(RecordError, match=f"^This PNG has no Stransfer settings; {fix}$"):
        load_record(encode_png(content_img))
    broken = tmp_path / "broken.png"
    broken.write_bytes(encode_png(content_img, {RECORD_KEY: "{oops"})[:60])
    with pytest.raises(RecordError, match=r"broken\.png"):
        load_record(broken)
    bad_meta = encode_png(content_img, {RECORD_KEY: "{oops"})
    with pytest.raises(RecordError, match="not valid JSON"):
        load_record(bad_meta)
    jpeg = tmp_path / "photo.jpg"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    with pytest.raises(RecordError, match=rf"photo\.jpg: this is not a PNG.*{fix}"):
        load_record(jpeg)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(RecordError, match="not a Stransfer run record"):
        load_record(notes)
    with pytest.raises(RecordError, match="not found"):
        load_record(tmp_path / "missing.json")
    with pytest.raises(RecordError, match="folder"):
        load_record(tmp_path)
    other_json = tmp_path / "package.json"
    other_json.write_text('{"name": "x"}')
    with pytest.raises(RecordError, match=r"package\.json: .*no settings"):
        load_record(other_json)
