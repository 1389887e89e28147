"""Every backbone builds with random weights, exposes valid layers, and optimises."""

import numpy as np
import pytest

from stransfer import BACKBONE_NAMES, TransferSettings, get_backbone, transfer
from stransfer.engine.backbones import BackboneError
from stransfer.engine.features import load_extractor


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_backbone_builds_and_three_steps_lower_the_loss(name, content_img, style_img):
    backbone = get_backbone(name)
    # float32: the session's VGG19 is reused, and bf16 builds are slower on CPUs without it
    extractor = load_extractor(name, "float32", "random")
    layer_names = {layer.name for layer in extractor.network.layers}
    # every pickable layer resolves to a real layer of the built network
    for layer in backbone.layers:
        assert backbone.keras_layer_name(extractor.network, layer) in layer_names
    assert set(backbone.content_layers) <= set(backbone.layers)
    assert set(backbone.style_layers) <= set(backbone.layers)
    assert backbone.content_layers and backbone.style_layers

    # From the photo: a random network's loss from an instant start may already be near its floor.
    settings = TransferSettings(
        model=name, steps=3, size=80, scales=1, optimizer="lbfgs", init="content"
    )
    events = list(transfer(content_img, style_img, settings, extractor))
    assert [e.step for e in events] == [1, 2, 3]
    assert events[-1].losses["total"] < events[0].losses["total"]
    assert events[-1].image.dtype == np.uint8
    assert min(events[-1].image.shape[:2]) >= backbone.min_side


def test_extractor_stops_at_the_deepest_layer_in_use(vgg_random):
    extractor = vgg_random
    model = extractor.outputs_for(["block1_conv1", "block2_conv1"])
    names = {layer.name for layer in model.layers}
    assert "block2_conv1" in names
    assert "block3_conv1" not in names and "block5_conv4" not in names


def test_unknown_names_give_the_choices():
    with pytest.raises(BackboneError, match="choose one of: VGG19"):
        get_backbone("AlexNet")
    with pytest.raises(BackboneError, match="choose from: block1_conv1"):
        get_backbone("VGG19").check_layers(["conv9"])


def test_inception_stem_aliases_survive_rebuilds():
    backbone = get_backbone("InceptionV3")
    first, second = backbone.build(), backbone.build()  # second build gets renumbered names
    for net in (first, second):
        name = backbone.keras_layer_name(net, "stem_conv1")
        assert net.get_layer(name).output.shape[-1] == 32  # the first 3x3 conv has 32 filters
