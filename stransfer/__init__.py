"""Stransfer: Gatys-style neural style transfer on TensorFlow/Keras.

A minimal run::

    from stransfer import TransferSettings, load_extractor, load_image, transfer

    settings = TransferSettings(steps=50, size=384)
    extractor = load_extractor(settings.model)
    for event in transfer(load_image("photo.jpg"), load_image("art.jpg"), settings, extractor):
        print(event.step, event.losses["total"])
    final = event.image  # uint8 RGB

The package follows the data flow, each folder importing only from the ones before it:
``core`` (settings, the model table, plans, events; no TensorFlow) -> ``io`` (images, colour,
animations, run records) -> ``weights`` -> ``engine`` (backbones, features, losses,
optimisers, the run) -> front ends (``cli``, the page in ``app.py``).
"""

import importlib
import os
from typing import Any

# TensorFlow's C++ info and warning logs are noise for a CLI, an app and a worker log (errors
# still show); users can still override it. Every entry point, workers included, imports this
# package before any engine module, so this runs before TensorFlow is imported (the engine is
# loaded only on first use, below); ``stransfer.engine`` filters the notices TensorFlow prints
# before this setting applies.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Public names and the module that defines each. Imported on first use, so that light entry
# points (``python -m stransfer.weights``, ``--help``) do not pay for TensorFlow.
_EXPORTS = {
    "MODELS": "core.models",
    "MODEL_NAMES": "core.models",
    "ModelError": "core.models",
    "ModelSpec": "core.models",
    "get_model": "core.models",
    "StepEvent": "core.events",
    "RunPlan": "core.plan",
    "plan_run": "core.plan",
    "SettingsError": "core.settings",
    "TransferSettings": "core.settings",
    "Recipe": "core.recipe",
    "make_recipe": "core.recipe",
    "RunInputs": "io.records",
    "recipe_record": "io.records",
    "ImageError": "io.images",
    "load_image": "io.images",
    "save_image": "io.images",
    "WeightsError": "weights",
    "BACKBONES": "engine.backbones",
    "BACKBONE_NAMES": "engine.backbones",
    "Backbone": "engine.backbones",
    "BackboneError": "engine.backbones",
    "get_backbone": "engine.backbones",
    "FeatureExtractor": "engine.features",
    "load_extractor": "engine.features",
    "resolve_precision": "engine.features",
    "transfer": "engine.run",
    "run_recipe": "engine.run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
