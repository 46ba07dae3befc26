"""A VGG-style CNN small enough to train the CIFAR recipes on a CPU (``--scale small``).

Four 3x3 conv-BN-ReLU stages of width w, 2w, 4w, 8w (w = 16); the first three end in a 2x2
max-pool, so the costly layers run at 16, 8 and 4 px. About 0.1 M parameters and 3.9 M
multiply-adds per 32x32 image (ResNet-18 with the CIFAR stem: 11 M and 0.56 G), so one core
trains on about 1,900 images per second. On 5,000 JPEG CIFAR-10 images with the paper's
recipe shortened to 20 epochs it reaches about 59% test accuracy.
"""

from __future__ import annotations

from torch import nn


def _stage(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                               nn.BatchNorm2d(c_out), nn.ReLU()]
    return layers + [nn.MaxPool2d(2)] if pool else layers


class MiniVGG(nn.Module):
    def __init__(self, *, num_classes: int, in_chans: int, width: int = 16):
        super().__init__()
        widths = [in_chans, width, 2 * width, 4 * width, 8 * width]
        stages = [layer for i in range(4) for layer in _stage(widths[i], widths[i + 1], pool=i < 3)]
        self.features = nn.Sequential(*stages, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8 * width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc


def mini_vgg(*, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    return MiniVGG(num_classes=num_classes, in_chans=in_chans, width=16)


def mini_vgg_wide(*, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    """Width 32: 0.39 M parameters, 4x the multiply-adds. Without augmentation it fits 99.8% of
    2,500 JPEG CIFAR-10 training images in 30 epochs at batch 32 (test accuracy 60.1%), the
    memorizing regime of the paper's ResNet-18 at a CPU's cost (the main table's small scale)."""
    return MiniVGG(num_classes=num_classes, in_chans=in_chans, width=32)
