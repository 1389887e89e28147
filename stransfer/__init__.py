"""Stransfer: Gatys-style neural style transfer on TensorFlow/Keras.

A minimal run::

    from stransfer import TransferSettings, load_extractor, load_image, transfer

    settings = TransferSettings(steps=50, size=384)
    extractor = load_extractor(settings.model)
    for event in transfer(load_image("photo.jpg"), load_image("art.jpg"), settings, extractor):
        print(event.step, event.losses["total"])
    final = event.image  # uint8 RGB
"""

from .backbones import BACKBONE_NAMES, BACKBONES, Backbone, BackboneError, get_backbone
from .features import FeatureExtractor, load_extractor, resolve_precision
from .images import ImageError, load_image, save_image
from .optimize import RunPlan, StepEvent, plan_run, transfer
from .settings import SettingsError, TransferSettings
from .weights import WeightsError

__all__ = [
    "BACKBONES",
    "BACKBONE_NAMES",
    "Backbone",
    "BackboneError",
    "FeatureExtractor",
    "ImageError",
    "RunPlan",
    "SettingsError",
    "StepEvent",
    "TransferSettings",
    "WeightsError",
    "get_backbone",
    "load_extractor",
    "load_image",
    "plan_run",
    "resolve_precision",
    "save_image",
    "transfer",
]
