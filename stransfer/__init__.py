"""Stransfer: Gatys-style neural style transfer on TensorFlow/Keras.

A minimal run::

    from stransfer import TransferSettings, load_extractor, load_image, transfer

    settings = TransferSettings(steps=50, size=384)
    extractor = load_extractor(settings.model)
    for event in transfer(load_image("photo.jpg"), load_image("art.jpg"), settings, extractor):
        print(event.step, event.losses["total"])
    final = event.image  # uint8 RGB
"""

import importlib
import os
from typing import Any

# TensorFlow's C++ start-up chatter is noise for a CLI and an app; users can still override it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Public names and the module that defines each. Imported on first use, so that light entry
# points (``python -m stransfer.weights``, ``--help``) do not pay for TensorFlow.
_EXPORTS = {
    "BACKBONES": "backbones",
    "BACKBONE_NAMES": "backbones",
    "Backbone": "backbones",
    "BackboneError": "backbones",
    "get_backbone": "backbones",
    "FeatureExtractor": "features",
    "load_extractor": "features",
    "resolve_precision": "features",
    "ImageError": "images",
    "load_image": "images",
    "save_image": "images",
    "RunPlan": "optimize",
    "StepEvent": "optimize",
    "plan_run": "optimize",
    "transfer": "optimize",
    "SettingsError": "settings",
    "TransferSettings": "settings",
    "WeightsError": "weights",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
