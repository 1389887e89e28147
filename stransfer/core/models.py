"""The model table: every backbone as plain data (no TensorFlow, no Keras).

One row per network holds what the settings, the CLI's ``--help``, the page's widgets, the
weights resolver and the engine need: the pickable layers, the default layers and why, the
preprocessing, the smallest side the network accepts and Keras' official weights file. The
engine (``stransfer.engine.backbones``) turns a row into a built network.

Default layers follow Gatys et al.: style from the first activation of each resolution stage
(fine brush texture to large-scale structure), content from one mid-depth layer at 1/8
resolution, which keeps object layout while leaving texture free to change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

#: Where Keras publishes its ImageNet files (``folder/file`` below it).
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


class ModelError(ValueError):
    """A model or layer name the table does not know (the message names the choices)."""


@dataclass(frozen=True)
class ModelSpec:
    """One backbone as data.

    Attributes:
        name: the name users pick (``"VGG19"``).
        keras_name: the ``keras.applications`` class it wraps (``"DenseNet121"``).
        preprocess: the ``keras.applications`` module whose ``preprocess_input`` it uses.
        layers: ordered layer names a user may pick, shallow to deep.
        content_layers: default content layers and their weights.
        style_layers: default style layers and their weights.
        why: one sentence on why those defaults.
        min_side: smallest image side the network accepts (valid-padded stems shrink input).
        stem_aliases: user names resolved to the n-th Activation layer of a built model
            (InceptionV3's stem activations are auto-numbered by Keras).
        weights_file: Keras' official ImageNet no-top file.
        weights_folder: its folder under ``KERAS_WEIGHTS_URL``.
        weights_md5: the hash ``keras.utils.get_file`` checks for that file.
        offline: True where ``python -m stransfer.weights install`` can get weights offline.
    """

    name: str
    keras_name: str
    preprocess: str
    layers: tuple[str, ...]
    content_layers: dict[str, float]
    style_layers: dict[str, float]
    why: str
    weights_file: str
    weights_folder: str
    weights_md5: str
    min_side: int = 32
    stem_aliases: dict[str, int] = field(default_factory=dict)
    offline: bool = False

    @property
    def weights_url(self) -> str:
        return f"{KERAS_WEIGHTS_URL}{self.weights_folder}/{self.weights_file}"

    def check_layers(self, layers: Sequence[str]) -> None:
        """Raise ModelError naming the valid choices if any layer is unknown."""
        unknown = [name for name in layers if name not in self.layers]
        if unknown:
            raise ModelError(
                f"{self.name} has no layer {', '.join(f'{u!r:.60}' for u in unknown)}; "
                f"choose from: {', '.join(self.layers)}"
            )

    def depth(self, layer: str) -> int:
        """Position of ``layer`` in the ordered list (deeper layers have larger numbers)."""
        return self.layers.index(layer)


def _vgg_layers(blocks: Sequence[int]) -> tuple[str, ...]:
    return tuple(
        f"block{b}_conv{c}" for b, convs in enumerate(blocks, start=1) for c in range(1, convs + 1)
    )


def _even(names: Sequence[str]) -> dict[str, float]:
    return {name: 1.0 for name in names}


_VGG_STYLE = _even([f"block{b}_conv1" for b in range(1, 6)])
_VGG_WHY = "style from the first conv of each of the 5 blocks, content block4_conv2 (Gatys et al.)"
_DENSE_BLOCKS = (6, 12, 24, 16)
_RESNET50_BLOCKS = (3, 4, 6, 3)


def _vgg(name: str, blocks: Sequence[int], weights_md5: str, offline: bool = False) -> ModelSpec:
    """VGG16 and VGG19 differ only in their convolutions per block and weights file."""
    return ModelSpec(
        name=name,
        keras_name=name,
        preprocess=name.lower(),
        layers=_vgg_layers(blocks),
        content_layers={"block4_conv2": 1.0},
        style_layers=_VGG_STYLE,
        why=_VGG_WHY,
        weights_file=f"{name.lower()}_weights_tf_dim_ordering_tf_kernels_notop.h5",
        weights_folder=name.lower(),
        weights_md5=weights_md5,
        offline=offline,
    )


_TABLE = (
    _vgg("VGG19", (2, 2, 4, 4, 4), "253f8cb515780f3b799900260a226db6", offline=True),
    _vgg("VGG16", (2, 2, 3, 3, 3), "6d6bbae143d832006294945121d1f1fc"),
    ModelSpec(
        name="InceptionV3",
        keras_name="InceptionV3",
        preprocess="inception_v3",
        layers=(*(f"stem_conv{i}" for i in range(1, 6)), *(f"mixed{i}" for i in range(11))),
        content_layers={"mixed2": 1.0},
        style_layers=_even(["stem_conv1", "stem_conv3", "stem_conv5", "mixed0", "mixed3"]),
        why="stem convs at 1/2 and 1/4, mixed0-2 at 1/8, mixed3-7 at 1/16: style takes one "
        "layer per stage up to 1/16; content mixed2 is the last 1/8 block (VGG's block4_conv2)",
        weights_file="inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        weights_folder="inception_v3",
        weights_md5="bcbd6486424b2319ff4ef7d526e38f63",
        min_side=75,
        stem_aliases={f"stem_conv{i + 1}": i for i in range(5)},
    ),
    ModelSpec(
        name="Xception",
        keras_name="Xception",
        preprocess="xception",
        layers=(
            "block1_conv1_act",
            "block1_conv2_act",
            "block2_sepconv2_act",
            "block3_sepconv1_act",
            "block3_sepconv2_act",
            "block4_sepconv1_act",
            "block4_sepconv2_act",
            *(f"block{b}_sepconv{c}_act" for b in range(5, 13) for c in (1, 2, 3)),
            "block13_sepconv1_act",
            "block13_sepconv2_act",
            "block14_sepconv1_act",
            "block14_sepconv2_act",
        ),
        content_layers={"block4_sepconv2_act": 1.0},
        style_layers=_even(
            [
                "block1_conv1_act",
                "block2_sepconv2_act",
                "block3_sepconv2_act",
                "block4_sepconv2_act",
                "block5_sepconv3_act",
            ]
        ),
        why="entry flow at 1/2, 1/4, 1/8, middle flow at 1/16: style the last activation "
        "before each downsampling; content block4 at 1/8",
        weights_file="xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
        weights_folder="xception",
        weights_md5="b0042744bf5b25fce3cb969f33bebb97",
        min_side=71,
    ),
    ModelSpec(
        name="DenseNet",
        keras_name="DenseNet121",
        preprocess="densenet",
        layers=(
            "conv1_relu",
            *(
                name
                for stage, blocks in enumerate(_DENSE_BLOCKS, start=2)
                for name in (
                    *(f"conv{stage}_block{i}_concat" for i in range(1, blocks + 1)),
                    *((f"pool{stage}_relu",) if stage < 5 else ("relu",)),
                )
            ),
        ),
        content_layers={"pool3_relu": 1.0},
        style_layers=_even(["conv1_relu", "pool2_relu", "pool3_relu", "pool4_relu"]),
        why="poolN_relu ends each dense block (before its transition): style takes those, "
        "content pool3_relu at 1/8",
        weights_file="densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        weights_folder="densenet",
        weights_md5="30ee3e1110167f948a6b9946edeeb738",
    ),
    ModelSpec(
        name="ResNet",
        keras_name="ResNet50",
        preprocess="resnet50",
        layers=(
            "conv1_relu",
            *(
                f"conv{stage}_block{i}_out"
                for stage, blocks in enumerate(_RESNET50_BLOCKS, start=2)
                for i in range(1, blocks + 1)
            ),
        ),
        content_layers={"conv3_block4_out": 1.0},
        style_layers=_even(
            ["conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out"]
        ),
        why="style takes each stage's output up to 1/16, content the 1/8 stage output",
        weights_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        weights_folder="resnet",
        weights_md5="4d473c1dd8becc155b73f8504c6f6626",
    ),
    ModelSpec(
        name="ResNetV2",
        keras_name="ResNet50V2",
        preprocess="resnet_v2",
        layers=(
            *(
                name
                for stage, blocks in enumerate(_RESNET50_BLOCKS, start=2)
                for i in range(1, blocks + 1)
                for name in (f"conv{stage}_block{i}_preact_relu", f"conv{stage}_block{i}_out")
            ),
            "post_relu",
        ),
        content_layers={"conv3_block2_preact_relu": 1.0},
        style_layers=_even(
            [
                "conv2_block1_preact_relu",
                "conv3_block1_preact_relu",
                "conv4_block1_preact_relu",
                "conv5_block1_preact_relu",
            ]
        ),
        why="pre-activation: each block's preact_relu is its activated input; style the first "
        "block of each stage (1/4 to 1/32), content conv3_block2 at 1/8",
        weights_file="resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        weights_folder="resnet",
        weights_md5="fac2f116257151a9d068a22e544a4917",
    ),
)

#: Every backbone by name, in the order the UI lists them.
MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in _TABLE}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)
#: VGG19 is the default: its ImageNet weights can be installed offline.
DEFAULT_MODEL = "VGG19"


def get_model(name: str) -> ModelSpec:
    """The table row for ``name`` (case-insensitive), or ModelError naming the choices."""
    for key, spec in MODELS.items():
        if key.casefold() == str(name).casefold():
            return spec
    raise ModelError(f"unknown model {name!r:.60}; choose one of: {', '.join(MODEL_NAMES)}")
