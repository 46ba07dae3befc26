"""Image data held as uint8 tensors, and a loader that batches and augments on the device.

Training data lives on the run device as one ``uint8`` tensor; each batch is gathered,
augmented (random crop with zero padding, horizontal flip) and normalized there, for the
whole batch at once. On a GPU this avoids the per-image Python transforms that dominate the
cost of a classic ``DataLoader``; on a CPU it is the same code.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from .errors import ConfigError


@dataclass(frozen=True)
class ImageData:
    """Images ``(N, C, H, W)`` as uint8 and their int64 labels ``(N,)``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ConfigError(f"images must be a uint8 (N, C, H, W) tensor, got "
                              f"{self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ConfigError(f"labels of shape {tuple(self.labels.shape)} do not match "
                              f"{self.images.shape[0]} images")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def subset(self, index: torch.Tensor) -> ImageData:
        index = index.to(self.images.device)
        return ImageData(self.images[index], self.labels[index])

    def with_labels(self, labels: torch.Tensor) -> ImageData:
        return ImageData(self.images, labels.to(self.labels.device, torch.int64))

    def to(self, device: torch.device | str) -> ImageData:
        return ImageData(self.images.to(device), self.labels.to(device))

    @staticmethod
    def concat(parts: Sequence[ImageData]) -> ImageData:
        return ImageData(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))


@dataclass(frozen=True)
class Augment:
    """Batch-wise training augmentation: random crop after zero padding, horizontal flip."""

    crop_padding: int = 0
    hflip: bool = False

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch; ``generator`` lives on the images' device, so no host round trip."""
        n, _, h, w = images.shape
        device = images.device
        if self.crop_padding:
            p = self.crop_padding
            padded = torch.nn.functional.pad(images, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=device)
            dx = torch.randint(0, 2 * p + 1, (n,), generator=generator, device=device)
            # One gather over the flattened padded images: window origin + fixed pixel grid.
            width = w + 2 * p
            grid = (torch.arange(h, device=device)[:, None] * width
                    + torch.arange(w, device=device)).flatten()
            index = (dy * width + dx)[:, None] + grid
            flat = padded.flatten(2)
            index = index[:, None, :].expand(n, flat.shape[1], h * w)
            images = flat.gather(2, index).view(n, -1, h, w)
        if self.hflip:
            flip = torch.rand(n, generator=generator, device=device) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(3), images)
        return images


@dataclass(frozen=True)
class Normalize:
    """uint8 -> float, scaled to [0, 1], then standardized per channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        scale, shift = _affine(self.mean, self.std, images.device, dtype)
        return images.to(dtype) * scale + shift  # == (x / 255 - mean) / std, one fused pass


@functools.lru_cache(maxsize=32)
def _affine(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device,
            dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel scale and shift, built once per device (no host copy per batch)."""
    m = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)
    return (1 / (255 * s)).to(device, dtype), (-m / s).to(device, dtype)


class DeviceLoader:
    """Iterates ``(x, y)`` batches of ``data`` on its device; re-iterable, one epoch per pass."""

    def __init__(self, data: ImageData, *, normalize: Normalize, batch_size: int,
                 shuffle: bool = False, augment: Augment | None = None,
                 generator: torch.Generator | None = None, drop_last: bool = False,
                 channels_last: bool = False):
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size} is invalid: expected a value >= 1")
        self.data, self.normalize, self.batch_size = data, normalize, batch_size
        self.shuffle, self.augment, self.drop_last = shuffle, augment, drop_last
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.channels_last = channels_last

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, device = len(self.data), self.data.device
        # One draw from the (CPU) stream seeds this epoch's generator on the data's device.
        epoch_seed = int(torch.randint(2**62, (1,), generator=self.generator))
        g = torch.Generator(device=device).manual_seed(epoch_seed)
        order = torch.randperm(n, generator=g, device=device) if self.shuffle \
            else torch.arange(n, device=device)
        for i in range(len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            images = self.data.images[index]
            if self.augment is not None:
                images = self.augment(images, g)
            x = self.normalize(images)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.data.labels[index]


def tensor_hash(*tensors: torch.Tensor) -> str:
    """A short sha256 of tensors' contents (used to name splits and data in records)."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
