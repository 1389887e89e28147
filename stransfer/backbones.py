"""The registry of backbone networks: constructors, preprocessing, pickable layers and defaults.

Every backbone is a ``keras.applications`` network built without its classifier head, so it
accepts any H x W. A *layer name* here is the name a user sees and picks; for most networks it is
the Keras layer name itself. InceptionV3's stem activations are auto-named by Keras
(``activation``, ``activation_94``, ... depending on what was built before), so they get stable
aliases (``stem_conv1`` ... ``stem_conv5``) that are resolved against each built model.

Default layers follow Gatys et al.: style from the first activation of each resolution stage
(fine brush texture to large-scale structure), content from one mid-depth layer at 1/8
resolution, which keeps object layout while leaving texture free to change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
from keras import applications as apps


class BackboneError(ValueError):
    """A backbone or layer name that the registry does not know (message names the choices)."""


@dataclass(frozen=True)
class Backbone:
    """Everything the engine needs to know about one network.

    Attributes:
        name: the name users pick (``"VGG19"``).
        keras_name: the ``keras.applications`` class it wraps (``"DenseNet121"``).
        constructor: builds the headless network for ``input_shape=(None, None, 3)``.
        preprocess: the network's own ``preprocess_input`` (RGB 0..255 in, network input out).
        layers: ordered layer names a user may pick, shallow to deep.
        content_layers: default content layers and their weights.
        style_layers: default style layers and their weights.
        min_side: smallest image side the network accepts (valid-padded stems shrink input).
        aliases: stable name -> callable that finds the Keras layer name in a built model.
    """

    name: str
    keras_name: str
    constructor: Callable[..., keras.Model]
    preprocess: Callable[[Any], Any]
    layers: tuple[str, ...]
    content_layers: dict[str, float]
    style_layers: dict[str, float]
    min_side: int = 32
    aliases: dict[str, Callable[[keras.Model], str]] = field(default_factory=dict)

    def build(self) -> keras.Model:
        """Build the headless network with random weights (load weights separately)."""
        return self.constructor(include_top=False, weights=None, input_shape=(None, None, 3))

    def keras_layer_name(self, model: keras.Model, layer: str) -> str:
        """Map a user-facing layer name to the layer's name in ``model``."""
        if layer in self.aliases:
            return self.aliases[layer](model)
        return layer

    def check_layers(self, layers: Sequence[str]) -> None:
        """Raise BackboneError naming the valid choices if any layer is unknown."""
        unknown = [name for name in layers if name not in self.layers]
        if unknown:
            raise BackboneError(
                f"{self.name} has no layer {', '.join(map(repr, unknown))}; "
                f"choose from: {', '.join(self.layers)}"
            )

    def depth(self, layer: str) -> int:
        """Position of ``layer`` in the ordered list (deeper layers have larger numbers)."""
        return self.layers.index(layer)


def _vgg_layers(blocks: Sequence[int]) -> tuple[str, ...]:
    return tuple(
        f"block{b}_conv{c}" for b, convs in enumerate(blocks, start=1) for c in range(1, convs + 1)
    )


def _nth_activation(index: int) -> Callable[[keras.Model], str]:
    """Resolve the index-th Activation layer of a built model (InceptionV3's stem)."""

    def find(model: keras.Model) -> str:
        acts = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Activation)]
        return acts[index]

    return find


def _even(names: Sequence[str]) -> dict[str, float]:
    return {name: 1.0 for name in names}


_VGG_STYLE = _even([f"block{b}_conv1" for b in range(1, 6)])

_DENSE_BLOCKS = (6, 12, 24, 16)
_RESNET50_BLOCKS = (3, 4, 6, 3)

BACKBONES: dict[str, Backbone] = {
    "VGG19": Backbone(
        name="VGG19",
        keras_name="VGG19",
        constructor=apps.VGG19,
        preprocess=apps.vgg19.preprocess_input,
        layers=_vgg_layers((2, 2, 4, 4, 4)),
        content_layers={"block4_conv2": 1.0},
        style_layers=_VGG_STYLE,
    ),
    "VGG16": Backbone(
        name="VGG16",
        keras_name="VGG16",
        constructor=apps.VGG16,
        preprocess=apps.vgg16.preprocess_input,
        layers=_vgg_layers((2, 2, 3, 3, 3)),
        content_layers={"block4_conv2": 1.0},
        style_layers=_VGG_STYLE,
    ),
    # InceptionV3: stem convs at 1/2 and 1/4, mixed0-2 at 1/8, mixed3-7 at 1/16, mixed8-10 at 1/32.
    # Style takes one layer per stage up to 1/16; content mixed2 is the last 1/8 block, the
    # analogue of VGG's block4_conv2.
    "InceptionV3": Backbone(
        name="InceptionV3",
        keras_name="InceptionV3",
        constructor=apps.InceptionV3,
        preprocess=apps.inception_v3.preprocess_input,
        layers=(*(f"stem_conv{i}" for i in range(1, 6)), *(f"mixed{i}" for i in range(11))),
        content_layers={"mixed2": 1.0},
        style_layers=_even(["stem_conv1", "stem_conv3", "stem_conv5", "mixed0", "mixed3"]),
        min_side=75,
        aliases={f"stem_conv{i + 1}": _nth_activation(i) for i in range(5)},
    ),
    # Xception: entry flow at 1/2, 1/4, 1/8, middle flow (block5-12) at 1/16, exit at 1/32.
    # Style: the last activation before each downsampling; content: block4 at 1/8.
    "Xception": Backbone(
        name="Xception",
        keras_name="Xception",
        constructor=apps.Xception,
        preprocess=apps.xception.preprocess_input,
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
        min_side=71,
    ),
    # DenseNet121: conv1 at 1/2, dense blocks at 1/4, 1/8, 1/16, 1/32; poolN_relu is the end
    # of each dense block (before its transition), so style takes those; content pool3_relu.
    "DenseNet": Backbone(
        name="DenseNet",
        keras_name="DenseNet121",
        constructor=apps.DenseNet121,
        preprocess=apps.densenet.preprocess_input,
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
    ),
    # ResNet50: conv1 at 1/2, then stages at 1/4, 1/8, 1/16, 1/32; style takes each stage's
    # output up to 1/16, content the 1/8 stage output.
    "ResNet": Backbone(
        name="ResNet",
        keras_name="ResNet50",
        constructor=apps.ResNet50,
        preprocess=apps.resnet50.preprocess_input,
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
    ),
    # ResNet50V2 (pre-activation): each block's preact_relu is the activated input of that
    # block; stacks downsample in their last block, so conv2_block1 is 1/4, conv3_block1 1/8,
    # conv4_block1 1/16, conv5_block1 1/32.
    "ResNetV2": Backbone(
        name="ResNetV2",
        keras_name="ResNet50V2",
        constructor=apps.ResNet50V2,
        preprocess=apps.resnet_v2.preprocess_input,
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
    ),
}

#: Backbone names in the order the UI lists them; VGG19 is the default (offline weights exist).
BACKBONE_NAMES: tuple[str, ...] = (
    "VGG19",
    "VGG16",
    "InceptionV3",
    "Xception",
    "DenseNet",
    "ResNet",
    "ResNetV2",
)
DEFAULT_BACKBONE = "VGG19"


def get_backbone(name: str) -> Backbone:
    """Return the registry entry for ``name`` (case-insensitive) or raise BackboneError."""
    for key, backbone in BACKBONES.items():
        if key.lower() == name.lower():
            return backbone
    raise BackboneError(f"unknown model {name!r}; choose one of: {', '.join(BACKBONE_NAMES)}")
