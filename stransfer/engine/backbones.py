"""Backbones as Keras networks, built from the rows of the model table (``core.models``).

Every backbone is a ``keras.applications`` network built without its classifier head, so it
accepts any H x W. A *layer name* here is the name a user sees and picks; for most networks it is
the Keras layer name itself. InceptionV3's stem activations are auto-named by Keras
(``activation``, ``activation_94``, ... depending on what was built before), so they get stable
aliases (``stem_conv1`` ... ``stem_conv5``) resolved against each built model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import keras
from keras import applications as apps

from ..core.models import DEFAULT_MODEL, MODEL_NAMES, MODELS, ModelError, ModelSpec, get_model

BackboneError = ModelError
BACKBONE_NAMES = MODEL_NAMES
DEFAULT_BACKBONE = DEFAULT_MODEL


@dataclass(frozen=True)
class Backbone(ModelSpec):
    """A model-table row plus the Keras pieces that build and feed it."""

    @classmethod
    def of(cls, spec: ModelSpec) -> Backbone:
        return cls(**{f.name: getattr(spec, f.name) for f in fields(spec)})

    @property
    def constructor(self) -> Callable[..., keras.Model]:
        return getattr(apps, self.keras_name)

    @property
    def preprocess_input(self) -> Callable[[Any], Any]:
        """The network's own ``preprocess_input`` (RGB 0..255 in, network input out)."""
        return getattr(apps, self.preprocess).preprocess_input

    def build(self) -> keras.Model:
        """Build the headless network with random weights (load weights separately)."""
        return self.constructor(include_top=False, weights=None, input_shape=(None, None, 3))

    def keras_layer_name(self, model: keras.Model, layer: str) -> str:
        """Map a user-facing layer name to the layer's name in ``model``."""
        index = self.stem_aliases.get(layer)
        if index is None:
            return layer
        acts = [lay.name for lay in model.layers if isinstance(lay, keras.layers.Activation)]
        return acts[index]


BACKBONES: dict[str, Backbone] = {name: Backbone.of(spec) for name, spec in MODELS.items()}


def get_backbone(name: str) -> Backbone:
    """The backbone for ``name`` (case-insensitive), or BackboneError naming the choices."""
    return BACKBONES[get_model(name).name]
