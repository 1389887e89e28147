"""The instant engine at print sizes: tiles that share one set of normalisation statistics.

Both instant networks normalise every layer by its mean and variance over the whole image
(instance normalisation). Run tile by tile, each tile would normalise by its own statistics and
drift in colour and contrast from its neighbours: visible seams. So the statistics are taken
once, from a thumbnail of the whole image (URST's Thumbnail Instance Normalization, Chen et al.
2022), and every tile is normalised by them: the graph is rewritten (:func:`rewrite`) so that a
``stats`` variant returns each normalisation's mean and variance, and a ``tiled`` variant takes
them as inputs instead of computing them. Each tile's window carries a halo wider than the
network's receptive field (``core.tiles``), so with the same statistics a tile's interior equals
the whole image's output exactly (``tests/test_instant.py`` holds it); the only approximation is
the thumbnail's statistics in place of the full image's.

Only numpy, onnx and onnxruntime: never TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..core.tiles import MemoryModel, choose_tile, memory_budget, tile_grid
from ..io.images import resize_to

#: Nodes that compute a normalisation's mean or variance over the image (their outputs become
#: the statistics); both networks compute nothing else with them.
STAT_OPS = ("GlobalAveragePool", "ReduceMean")
#: Receptive radius of the transformers, rounded up to the stride (measured: 54 px for
#: Magenta's, 9x9 + two stride-2 3x3 + ten 3x3 at stride 4 + two upsampled 3x3 + 9x9).
HALO = 64
#: Tiles start on multiples of the networks' total stride (two stride-2 convolutions).
ALIGN = 4
#: Long side of the thumbnail the statistics come from (the size the network handles well).
THUMBNAIL_SIDE = 1024
#: Memory of the instant engine (measured here with ``python -m bench.prints --calibrate``):
#: onnxruntime and the models, the image-sized arrays (the photo, the network's input and
#: output in float32, the uint8 result), and onnxruntime's activations per window pixel.
MEMORY = MemoryModel(fixed=0.15 * 2**30, per_image_pixel=48.0, per_window_pixel=600.0)

#: ``window (H, W, 3 float32 0..1) -> onnxruntime feed`` and ``outputs[0] -> (H, W, 3)``.
Feed = Callable[[np.ndarray], dict[str, np.ndarray]]
Read = Callable[[np.ndarray], np.ndarray]


def rewrite(data: bytes, variant: str) -> bytes:
    """The model ``data`` with its normalisation statistics as outputs (``stats``) or as inputs
    in place of computing them (``tiled``)."""
    import onnx

    model = onnx.load_from_string(data)
    graph = model.graph
    stats = [node.output[0] for node in graph.node if node.op_type in STAT_OPS]
    if variant == "stats":
        for name in stats:
            graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
        return model.SerializeToString()
    if variant != "tiled":
        raise ValueError(f"unknown variant {variant!r}")
    kept = [node for node in graph.node if node.op_type not in STAT_OPS]
    for name in stats:
        graph.input.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    # Drop what only fed the statistics (the squared differences): dead work in every tile.
    needed = {output.name for output in graph.output}
    live = []
    for node in reversed(kept):
        if any(name in needed for name in node.output):
            live.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(live))
    return model.SerializeToString()


def stat_names(session: object) -> list[str]:
    """The statistics a ``stats`` session returns after its image (outputs 1..)."""
    return [output.name for output in session.get_outputs()[1:]]  # type: ignore[attr-defined]


def needs_tiles(shape: tuple[int, int], max_memory: str | int | None = None) -> int | None:
    """The tile side for an instant result of ``shape`` under the memory budget, or None when
    the whole image fits (raises ``core.tiles.MemoryBudgetError`` when nothing fits)."""
    return choose_tile(
        shape, MEMORY, memory_budget(max_memory), halo=HALO, align=ALIGN, what="the instant engine"
    )


def run_tiled(
    name: str,
    image: np.ndarray,
    feed: Feed,
    read: Read,
    tile: int,
    *,
    statistics: dict[str, np.ndarray] | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Model ``name`` on ``image`` (``H, W, 3`` float32 0..1, sides multiples of :data:`ALIGN`)
    tile by tile, every tile normalised by ``statistics`` (None: from a thumbnail). Returns the
    ``H, W, 3`` float32 output."""
    from .models import session

    if statistics is None:
        statistics = thumbnail_statistics(name, image, feed)
    tiled = session(name, "tiled")
    height, width = image.shape[:2]
    out = np.empty((height, width, 3), np.float32)
    tiles = tile_grid((height, width), tile, HALO, align=ALIGN)
    for index, part in enumerate(tiles):
        rows, cols = part.window_slices
        a, b, c, d = part.inner
        result = tiled.run(None, {**feed(image[rows, cols]), **statistics})[0]
        y0, y1, x0, x1 = part.interior
        out[y0:y1, x0:x1] = read(result)[a:b, c:d]
        if on_tile is not None:
            on_tile(index + 1, len(tiles))
    return out


def thumbnail_statistics(
    name: str, image: np.ndarray, feed: Feed, side: int = THUMBNAIL_SIDE
) -> dict[str, np.ndarray]:
    """Every normalisation's mean and variance on ``image`` shrunk to ``side`` on its long side
    (a multiple of :data:`ALIGN`; the image itself when it is no larger)."""
    from .models import session

    height, width = image.shape[:2]
    scale = min(1.0, side / max(height, width))
    small_shape = (
        max(ALIGN, round(height * scale / ALIGN) * ALIGN),
        max(ALIGN, round(width * scale / ALIGN) * ALIGN),
    )
    small = image if small_shape == (height, width) else _resize01(image, small_shape)
    stats = session(name, "stats")
    outputs = stats.run(None, feed(small))
    return dict(zip(stat_names(stats), outputs[1:], strict=True))


def _resize01(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A 0..1 float image resized (through uint8, as every other resize here)."""
    small = resize_to(np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8), *shape)
    return small.astype(np.float32) / 255.0
