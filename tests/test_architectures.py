"""Any timm architecture by name: exact names only, and the families users pick run on
CIFAR-sized (32 px) inputs, or are refused before training with a clear error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearnbench import ConfigError, UnknownNameError, build_model
from unlearnbench.components import check_arch

FAMILIES = ["resnet18", "vgg11_bn", "vit_tiny_patch16_224", "convnext_atto", "mobilenetv3_small_050"]


@pytest.mark.parametrize("arch", FAMILIES)
def test_one_model_of_each_family_builds_and_runs_at_32_px(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(arch, num_classes=10, in_chans=3, image_size=32)
    assert model.training  # arrives ready to train
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def test_a_vit_is_built_for_the_input_size_and_a_resnet_gets_the_cifar_stem() -> None:
    vit = build_model("vit_tiny_patch16_224", num_classes=10, in_chans=3, image_size=32)
    assert vit.patch_embed.img_size == (32, 32) and vit.patch_embed.num_patches == 4
    resnet = build_model("resnet18", num_classes=10, in_chans=1, image_size=32)
    assert resnet.conv1.kernel_size == (3, 3) and resnet.conv1.stride == (1, 1)
    assert resnet.conv1.in_channels == 1 and isinstance(resnet.maxpool, nn.Identity)


def test_the_input_size_check_leaves_the_model_untouched() -> None:
    torch.manual_seed(3)
    first = build_model("convnext_atto", num_classes=4, in_chans=3, image_size=32)
    torch.manual_seed(3)
    second = build_model("convnext_atto", num_classes=4, in_chans=3, image_size=32)  # check cached
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["resnet1?", "resnet*", "RESNET18", "resnet_18"])
def test_architecture_names_match_exactly_not_as_wildcards(name: str) -> None:
    with pytest.raises(UnknownNameError, match=r"Unknown model .* Did you mean"):
        check_arch(name)


def test_a_tagged_timm_name_is_an_exact_name() -> None:
    check_arch("resnet18.a1_in1k")


def test_an_architecture_that_cannot_take_the_input_size_is_refused_before_training() -> None:
    with pytest.raises(ConfigError, match=r"--arch 'vit_tiny_patch16_224' does not run on 3-channel "
                                          r"8px images \(a forward pass fails: RuntimeError: "):
        build_model("vit_tiny_patch16_224", num_classes=10, in_chans=3, image_size=8)
