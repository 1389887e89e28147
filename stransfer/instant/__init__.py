"""Stage 3: the instant engine, feed-forward style transfer in about a second (no TensorFlow).

Magenta's arbitrary-style network (Ghiasi et al. 2017) and a 26-style network (Dumoulin et al.
2017) run on onnxruntime, from ONNX files installed offline by
``python -m stransfer.weights install instant`` (see :mod:`stransfer.instant.models`)::

    from stransfer.instant import style_vector, stylise
    vector = style_vector([(load_image("monet.jpg"), 2.0), (load_image("hokusai.jpg"), 1.0)])
    picture = stylise(load_image("photo.jpg"), vector, size=1024, strength=80)

    stylise(photo, BuiltinStyle.of("builtin:7"))          # a built-in style
    instant(photo, [(art, 1.0)], preserve_color="luminance")  # vector + stylise in one call
    instant_init(photo, [(art, 1.0)], settings)           # the optimiser's start, init="instant"

Everything is thread-safe; each model has one onnxruntime session per process. Problems raise
``SettingsError`` (a value out of range), ``ImageError`` (an unusable image) or
``InstantModelError`` (a model missing or damaged; a ``WeightsError``), each with a one-line
message that says the fix. Videos: :mod:`stransfer.instant.video`.
"""

from .engine import (
    BUILTIN_STYLES,
    MAX_SIDE,
    MIN_SIDE,
    BuiltinStyle,
    Style,
    builtin_index,
    content_vector,
    instant,
    instant_init,
    instant_record,
    instant_regions,
    is_builtin,
    style_vector,
    stylise,
    working_shape,
)
from .models import INSTALL_CMD, InstantModelError, install, status_lines, verify

__all__ = [
    "BUILTIN_STYLES",
    "INSTALL_CMD",
    "MAX_SIDE",
    "MIN_SIDE",
    "BuiltinStyle",
    "InstantModelError",
    "Style",
    "builtin_index",
    "content_vector",
    "install",
    "instant",
    "instant_init",
    "instant_record",
    "instant_regions",
    "is_builtin",
    "status_lines",
    "style_vector",
    "stylise",
    "verify",
    "working_shape",
]
