"""Tests for stransfer.images: every input is generated inside the test."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pngs import handmade_png

from stransfer.io import images
from stransfer.io.images import (
    IMAGE_SUFFIXES,
    ImageError,
    encode_png,
    fit_long_side,
    image_sha256,
    list_images,
    load_image,
    read_png_metadata,
    resize_to,
    save_image,
)

# --------------------------------------------------------------------------- helpers


def write(path: Path, image: Image.Image, fmt: str | None = None, **kwargs) -> Path:
    image.save(path, fmt, **kwargs)
    return path


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def expect_error(source, *fragments: str, **kwargs) -> str:
    """Load must fail with ImageError (never another type) and a one-line message."""
    with pytest.raises(ImageError) as info:
        load_image(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.endswith("."), message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    return message


# --------------------------------------------------------------------------- odd modes


def test_rgb_png_round_trip_and_sources(tmp_path):
    pixels = noise(7, 5)
    path = write(tmp_path / "rgb.png", Image.fromarray(pixels))
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (7, 5, 3) and out.flags.writeable
    np.testing.assert_array_equal(out, pixels)
    np.testing.assert_array_equal(load_image(str(path)), pixels)
    np.testing.assert_array_equal(load_image(path.read_bytes()), pixels)
    upload = io.BytesIO(path.read_bytes())
    upload.read()  # already consumed once, as a Streamlit preview would
    np.testing.assert_array_equal(load_image(upload), pixels)


def test_grayscale_l(tmp_path):
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = load_image(write(tmp_path / "gray.png", Image.fromarray(gray, "L")))
    assert out.shape == (16, 16, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], gray)


def test_la_alpha_composited_over_white(tmp_path):
    gray = np.full((1, 3), 100, np.uint8)
    alpha = np.array([[255, 0, 128]], np.uint8)
    image = Image.fromarray(np.dstack([gray, alpha]), "LA")
    out = load_image(write(tmp_path / "la.png", image))
    assert out[0, 0].tolist() == [100, 100, 100]
    assert out[0, 1].tolist() == [255, 255, 255]
    expected = round((100 * 128 + 255 * 127) / 255)
    assert np.all(np.abs(out[0, 2].astype(int) - expected) <= 1)


def test_one_bit(tmp_path):
    checker = (np.indices((8, 8)).sum(axis=0) % 2).astype(bool)
    out = load_image(write(tmp_path / "bits.png", Image.fromarray(checker).convert("1")))
    np.testing.assert_array_equal(out[..., 0], np.where(checker, 255, 0))
    assert set(np.unique(out).tolist()) == {0, 255}


def test_sixteen_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 100, 30000, 65535]], np.uint16)
    path = write(tmp_path / "deep.png", Image.fromarray(values))
    assert Image.open(path).mode.startswith("I")  # really a 16-bit file
    out = load_image(path)
    assert out[0, :, 0].tolist() == [0, 100, 117, 255]


def test_sixteen_bit_rgb_png(tmp_path):
    row = struct.pack(">HHH", 65535, 0, 128 * 257)
    path = tmp_path / "deep_rgb.png"
    path.write_bytes(handmade_png(1, 1, 16, 2, b"\x00" + row))
    assert load_image(path)[0, 0].tolist() == [255, 0, 128]


def test_rgba_over_white(tmp_path):
    rgba = np.array([[[255, 0, 0, 255], [0, 0, 255, 0], [0, 0, 0, 128]]], np.uint8)
    out = load_image(write(tmp_path / "rgba.png", Image.fromarray(rgba, "RGBA")))
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]
    assert np.all(np.abs(out[0, 2].astype(int) - 127) <= 1)


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    image.putdata([0, 1])
    path = write(tmp_path / "pal.png", image, transparency=0)
    assert Image.open(path).mode == "P" and "transparency" in Image.open(path).info
    out = load_image(path)
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [0, 0, 255]


def test_cmyk_jpeg(tmp_path):
    image = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red ink
    path = write(tmp_path / "cmyk.jpg", image, quality=95)
    assert Image.open(path).mode == "CMYK"
    out = load_image(path)
    assert np.all(np.abs(out.astype(int) - [255, 0, 0]) <= 6)


def test_lab_and_float_tiff(tmp_path):
    lab = load_image(write(tmp_path / "lab.tif", Image.new("LAB", (4, 4), (128, 128, 128))))
    assert np.ptp(lab[0, 0].astype(int)) <= 2 and 100 < lab[0, 0, 0] < 140  # neutral mid grey
    floats = Image.fromarray(np.full((3, 3), 0.5, np.float32), "F")
    assert load_image(write(tmp_path / "float.tif", floats))[0, 0].tolist() == [128, 128, 128]


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "lime", "blue")]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(path).n_frames == 3
    out = load_image(path)
    assert out.shape == (8, 8, 3) and np.all(out == [255, 0, 0])


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = write(tmp_path / "phone.jpg", Image.fromarray(stored), exif=exif.tobytes(), quality=95)
    out = load_image(path)
    assert out.shape == (40, 20, 3)  # dimensions swapped
    raw = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(out, np.rot90(raw, k=-1))  # pixels rotated clockwise
    assert out[5, 10, 0] > 200 and out[35, 10, 2] > 200  # left half ended up on top


def test_non_ascii_file_name(tmp_path):
    path = write(tmp_path / "café_日本語.png", Image.new("RGB", (3, 2), (1, 2, 3)))
    assert load_image(path)[1, 2].tolist() == [1, 2, 3]
    bad = tmp_path / "Ünïcødé.png"
    bad.write_text("hello")
    expect_error(bad, "Ünïcødé.png", "not an image")


def test_one_by_one(tmp_path):
    out = load_image(write(tmp_path / "dot.png", Image.new("RGB", (1, 1), (9, 8, 7))))
    assert out.shape == (1, 1, 3) and out[0, 0].tolist() == [9, 8, 7]


# --------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nowhere.png", "nowhere.png", "not found", "path")


def test_folder_instead_of_file(tmp_path):
    expect_error(tmp_path, "folder")


def test_zero_bytes(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    expect_error(empty, "empty.jpg", "empty")
    expect_error(b"", "empty")
    expect_error(io.BytesIO(), "empty")


def test_text_renamed_png(tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_text("Dear diary,\ntoday I renamed a text file.\n")
    expect_error(fake, "photo.png", "not an image", "text", "PNG, JPEG")


def test_random_binary_and_named_upload():
    upload = io.BytesIO(bytes(range(256)) * 4)
    upload.name = "uploads/mystery.bin"
    expect_error(upload, "mystery.bin", "not an image", "not recognised")
    expect_error(b"\x00\x01\x02garbage", "custom name", "not an image", name="custom name")


def test_truncated_jpeg(tmp_path):
    data = io.BytesIO()
    Image.fromarray(noise(256, 256)).save(data, "JPEG", quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    expect_error(cut, "cut.jpg", "damaged or incomplete", "re-")


def test_truncated_png(tmp_path):
    data = io.BytesIO()
    Image.fromarray(noise(128, 128)).save(data, "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    expect_error(cut, "cut.png", "damaged or incomplete")


@pytest.mark.parametrize(
    "side",
    [
        30000,  # over twice Pillow's limit: Pillow raises DecompressionBombError
        10000,  # over Pillow's limit: Pillow only warns
        8000,  # under Pillow's limit, over ours
    ],
)
def test_decompression_bomb_header_is_refused_without_decoding(tmp_path, side):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(handmade_png(side, side, 8, 2, b"\x00" * 64))
    assert bomb.stat().st_size < 200  # tiny file, enormous claimed size
    message = expect_error(bomb, "bomb.png", "too large", "megapixels", "scale it down")
    assert f"{side * side / 1e6:.1f} megapixels" in message


def test_pixel_limit_is_configurable(tmp_path):
    path = write(tmp_path / "big.png", Image.new("RGB", (100, 100)))
    expect_error(path, "big.png", "too large", max_pixels=5_000)
    assert load_image(path, max_pixels=10_000).shape == (100, 100, 3)


def test_zero_size_header(tmp_path):
    path = tmp_path / "flat.png"
    path.write_bytes(handmade_png(0, 5, 8, 2, b""))
    expect_error(path, "flat.png", "damaged")


def test_over_max_bytes(tmp_path):
    path = write(tmp_path / "heavy.png", Image.fromarray(noise(64, 64)))
    size = path.stat().st_size
    expect_error(
        path, "heavy.png", "too big", f"limit is {(size - 1) / 1024:.1f} KB", max_bytes=size - 1
    )
    expect_error(path.read_bytes(), "too big", max_bytes=size - 1)
    expect_error(io.BytesIO(path.read_bytes()), "too big", max_bytes=size - 1)
    assert load_image(path, max_bytes=size).shape == (64, 64, 3)


# --------------------------------------------------------------------------- resizing


def test_fit_long_side_keeps_aspect_ratio():
    assert fit_long_side(noise(300, 200), 150).shape == (150, 100, 3)
    assert fit_long_side(noise(200, 300), 600).shape == (400, 600, 3)  # enlarging works too
    sliver = fit_long_side(noise(3, 4000), 100)
    assert sliver.shape == (1, 100, 3) and sliver.dtype == np.uint8
    assert fit_long_side(noise(4000, 3), 100).shape == (100, 1, 3)
    with pytest.raises(ValueError):
        fit_long_side(noise(4, 4), 0)


def test_resize_to_exact_size_and_dtypes():
    flat = np.full((40, 60, 3), 77, np.uint8)
    small = resize_to(flat, 13, 17)
    assert small.shape == (13, 17, 3) and np.all(small == 77)  # Lanczos keeps flat areas flat
    assert resize_to(flat, 80, 90).shape == (80, 90, 3)
    floats = resize_to(flat.astype(np.float32) / 255, 10, 10)
    assert floats.dtype == np.float32 and np.allclose(floats, 77 / 255, atol=1e-5)
    assert resize_to(flat, 40, 60) is not flat


# --------------------------------------------------------------------------- saving


def test_save_image_is_atomic_and_metadata_round_trips(tmp_path):
    target = tmp_path / "out" / "nested" / "result.png"
    metadata = {"stransfer": '{"seed": 3, "steps": 100}', "note": "Ünïcødé ✓ 日本"}
    first = noise(10, 12, seed=1)
    assert save_image(first, target, metadata) == target
    np.testing.assert_array_equal(load_image(target), first)
    second = noise(10, 12, seed=2)
    save_image(second, target, metadata)  # overwrite in place
    np.testing.assert_array_equal(load_image(target), second)
    assert os.listdir(target.parent) == ["result.png"]  # no temp files left behind
    assert read_png_metadata(target) == metadata
    assert read_png_metadata(encode_png(second, metadata)) == metadata
    assert read_png_metadata(io.BytesIO(encode_png(second))) == {}


def test_failed_save_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    original = noise(4, 4, seed=5)
    save_image(original, target)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(images.os, "replace", broken_replace)
    with pytest.raises(OSError):
        save_image(noise(4, 4, seed=6), target)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["keep.png"]
    np.testing.assert_array_equal(load_image(target), original)


def test_save_jpeg_and_unknown_suffix(tmp_path):
    flat = np.full((16, 16, 3), (200, 100, 50), np.uint8)
    path = save_image(flat, tmp_path / "photo.JPG")
    assert Image.open(path).format == "JPEG"
    assert np.all(np.abs(load_image(path).astype(int) - [200, 100, 50]) <= 3)
    with pytest.raises(ImageError, match=r"\.png"):
        save_image(flat, tmp_path / "photo.gif")
    assert read_png_metadata(path) == {}


# --------------------------------------------------------------------------- listing, hashing


def test_list_images(tmp_path):
    assert list_images(tmp_path / "missing") == []
    for name in ("b.jpg", "A.PNG", "c.webp", ".hidden.png", "notes.txt", "d.TIFF"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["A.PNG", "b.jpg", "c.webp", "d.TIFF"]
    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)


def test_image_sha256(tmp_path):
    pixels = noise(6, 4)
    digest = image_sha256(pixels)
    assert len(digest) == 64 and digest == image_sha256(pixels.copy())
    assert digest == image_sha256(load_image(save_image(pixels, tmp_path / "h.png")))
    assert digest != image_sha256(pixels.reshape(4, 6, 3))  # same bytes, different shape
    changed = pixels.copy()
    changed[0, 0, 0] ^= 1
    assert digest != image_sha256(changed)
