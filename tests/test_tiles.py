"""Tile geometry and the memory budget (core.tiles, no TensorFlow)."""

import numpy as np
import pytest

from stransfer.core.settings import SettingsError
from stransfer.core.tiles import (
    MemoryBudgetError,
    MemoryModel,
    available_memory,
    choose_tile,
    memory_budget,
    parse_memory,
    random_offset,
    tile_grid,
)


@pytest.mark.parametrize(
    ("shape", "tile", "halo", "align", "offset"),
    [
        ((200, 264), 48, 96, 16, (0, 0)),
        ((3072, 4096), 1000, 96, 16, (320, 48)),
        ((37, 50), 8, 3, 1, (5, 2)),
    ],
)
def test_interiors_partition_the_image_and_windows_hold_their_halo(
    shape, tile, halo, align, offset
):
    owner = np.zeros(shape, np.int32)
    for t in tile_grid(shape, tile, halo, align=align, offset=offset):
        a, b, c, d = t.interior
        owner[a:b, c:d] += 1
        y0, y1, x0, x1 = t.window
        # Starts on the alignment (pooling falls on the same pixels as in the whole image).
        assert a % align == 0 and c % align == 0 and y0 % align == 0 and x0 % align == 0
        # The halo is there on every side except at the image's edges.
        assert y0 == 0 or a - y0 >= halo
        assert x0 == 0 or c - x0 >= halo
        assert y1 == shape[0] or y1 - b >= halo
        assert x1 == shape[1] or x1 - d >= halo
    assert (owner == 1).all()


def test_feature_slices_match_between_window_and_image():
    tiles = tile_grid((200, 264), 48, 96, align=16)
    for t in tiles:
        for stride in (1, 2, 4, 8, 16):
            (wr, wc), (gr, gc) = t.feature_slices(stride), t.global_feature_slices(stride)
            assert wr.stop - wr.start == gr.stop - gr.start
            assert wc.stop - wc.start == gc.stop - gc.start


def test_a_random_offset_moves_the_borders():
    rng = np.random.default_rng(0)
    grids = {
        tuple(
            t.interior
            for t in tile_grid((512, 512), 128, 32, align=16, offset=random_offset(rng, 128, 16))
        )
        for _ in range(5)
    }
    assert len(grids) > 1


def test_memory_amounts_parse_or_name_the_fix():
    assert parse_memory("3GB") == 3 * 2**30
    assert parse_memory("3 GiB") == 3 * 2**30
    assert parse_memory("800MB") == 800 * 2**20
    assert parse_memory("1.5g") == int(1.5 * 2**30)
    for bad in ("lots", "3XB", "-1GB", "10MB"):
        with pytest.raises(SettingsError, match="max_memory"):
            parse_memory(bad)


def test_the_budget_comes_from_the_memory_available(monkeypatch):
    monkeypatch.delenv("STRANSFER_MAX_MEMORY", raising=False)
    available = available_memory()
    assert available is not None and available > 0  # Linux: /proc/meminfo
    assert 0 < memory_budget() <= available
    assert memory_budget("3GB") == 3 * 2**30
    monkeypatch.setenv("STRANSFER_MAX_MEMORY", "2GB")
    assert memory_budget() == 2 * 2**30


def test_choose_tile_runs_untiled_when_it_fits_and_refuses_in_one_sentence():
    model = MemoryModel(fixed=2**30, per_image_pixel=100, per_window_pixel=1000)
    assert choose_tile((512, 512), model, 4 * 2**30, halo=96, align=16) is None
    tile = choose_tile((3072, 4096), model, 4 * 2**30, halo=96, align=16)
    assert tile is not None and tile % 16 == 0 and tile >= 128
    window = (tile + 192) ** 2
    assert model.estimate((3072, 4096), window) <= 4 * 2**30
    with pytest.raises(MemoryBudgetError) as err:
        choose_tile((6144, 8192), model, int(1.5 * 2**30), halo=96, align=16, what="the optimiser")
    message = str(err.value)
    assert "8192x6144" in message and "--max-memory" in message and "\n" not in message
