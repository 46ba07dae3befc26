"""A small conv net for tiny images: fast enough to train in seconds on a CPU.

Two 3x3 conv-BN-ReLU blocks (the second downsamples), global average pooling and a linear
classifier. Used by the ``digits`` and ``synthetic`` datasets and by the tests.
"""

from __future__ import annotations

from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, *, num_classes: int, in_chans: int, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc


def small_cnn(*, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    return SmallCNN(num_classes=num_classes, in_chans=in_chans, width=32)


def tiny_cnn(*, num_classes: int, in_chans: int, image_size: int) -> nn.Module:
    """An even smaller variant for unit tests."""
    return SmallCNN(num_classes=num_classes, in_chans=in_chans, width=8)
