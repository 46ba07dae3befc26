"""Every registered model builds for the datasets' shapes and exposes its classifier head."""

from __future__ import annotations

import pytest
import torch

from unlearnbench import MODELS, build_model
from unlearnbench.train.masks import classifier, prunable_weights


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("num_classes, in_chans, size", [(10, 3, 32), (4, 1, 8)])
def test_registered_models_build_and_predict(name: str, num_classes: int, in_chans: int, size: int) -> None:
    model = build_model(name, num_classes=num_classes, in_chans=in_chans, image_size=size).eval()
    assert model(torch.zeros(2, in_chans, size, size)).shape == (2, num_classes)
    head = classifier(model)
    assert head is not None and head.out_features == num_classes
    assert not {id(p) for p in head.parameters()} & {id(w) for w in prunable_weights(model).values()}


def test_mini_vgg_is_the_documented_size() -> None:
    model = build_model("mini_vgg", num_classes=10, in_chans=3, image_size=32)
    assert sum(p.numel() for p in model.parameters()) == 98_970  # "about 0.1 M parameters"
    macs = 0
    x = torch.zeros(1, 3, 32, 32)
    for layer in model.features:
        y = layer(x)
        if isinstance(layer, torch.nn.Conv2d):
            macs += y.numel() * layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
        x = y
    assert round(macs / 1e6, 1) == 4.0  # "4.0 M multiply-adds per 32x32 image"


def test_timm_resnet_has_the_reference_initialization() -> None:
    # The reference ResNet-18 starts every BN weight at 1 (timm zero-initializes the last BN of
    # each residual branch) and draws its convs, the CIFAR stem's too, from Kaiming normal
    # (fan-out, ReLU gain): std sqrt(2 / (64 * 9)) for the 3x3 stem with 64 filters.
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=10, in_chans=3, image_size=32)
    bn_weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bn_weights) == 20 and all(bool((w == 1).all()) for w in bn_weights)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert model.conv1.weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.1)


def test_mini_vgg_wide_is_the_documented_size() -> None:
    model = build_model("mini_vgg_wide", num_classes=10, in_chans=3, image_size=32)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 0.39
