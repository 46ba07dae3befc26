"""Image data held as uint8 tensors, and a loader that batches and augments on the device.

Training data lives on the run device as one ``uint8`` tensor; each batch is gathered,
augmented (random crop with zero padding, horizontal flip) and normalized there, for the
whole batch at once. On a GPU this avoids the per-image Python transforms that dominate the
cost of a classic ``DataLoader``; on a CPU it is the same code.

Datasets too large for memory (ImageNet) hold a :class:`~unlearnbench.data.streaming.DiskImages`
instead of the tensor: the loader then decodes each batch from disk, the next one while the
current one trains, and augments it on the device in the same way.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .streaming import DiskImages, prefetched


@dataclass(frozen=True)
class ImageData:
    """Images ``(N, C, H, W)`` as uint8 and their int64 labels ``(N,)``.

    ``images`` is a tensor, or a :class:`~unlearnbench.data.streaming.DiskImages` that decodes
    rows from disk when indexed (subsets, device moves and concatenations decode nothing).
    """

    images: torch.Tensor | DiskImages
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
        if isinstance(self.images, DiskImages):
            return ImageData(self.images.select(index), self.labels[index.to(self.labels.device)])
        index = index.to(self.images.device)
        return ImageData(self.images[index], self.labels[index])

    def with_labels(self, labels: torch.Tensor) -> ImageData:
        return ImageData(self.images, labels.to(self.labels.device, torch.int64))

    def to(self, device: torch.device | str) -> ImageData:
        return ImageData(self.images.to(device), self.labels.to(device))

    @staticmethod
    def concat(parts: Sequence[ImageData]) -> ImageData:
        labels = torch.cat([p.labels for p in parts])
        if not any(isinstance(p.images, DiskImages) for p in parts):
            return ImageData(torch.cat([p.images for p in parts]), labels)
        if not all(isinstance(p.images, DiskImages) for p in parts):
            raise ConfigError("cannot concatenate images held in memory with images streamed from disk")
        return ImageData(DiskImages.concat([p.images for p in parts]), labels)


@dataclass(frozen=True)
class Augment:
    """Batch-wise training augmentation, in this order: random crop after zero padding
    (CIFAR), random resized crop (ImageNet), horizontal flip.

    ``resized_crop_scale`` turns on the random resized crop of torchvision's
    ``RandomResizedCrop`` (area fraction drawn from ``scale``, log-uniform aspect ratio from
    ``resized_crop_ratio``, 10 attempts, then a center-crop fallback), resized back to the
    input size with bilinear sampling. It crops the images as stored: for ImageNet that is
    the 224 px center crop of the image resized to 256 px (:class:`~unlearnbench.data.streaming.CenterCrop`),
    not the full-resolution original as in torchvision's reference recipe, so crops never
    reach the borders the center crop removed.
    """

    crop_padding: int = 0
    hflip: bool = False
    resized_crop_scale: tuple[float, float] | None = None
    resized_crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self) -> None:
        if self.resized_crop_scale is not None:
            low, high = self.resized_crop_scale
            if not 0 < low <= high <= 1:
                raise ConfigError(f"resized_crop_scale={self.resized_crop_scale} is invalid: "
                                  f"expected 0 < low <= high <= 1")
        low, high = self.resized_crop_ratio
        if not 0 < low <= high:
            raise ConfigError(f"resized_crop_ratio={self.resized_crop_ratio} is invalid: "
                              f"expected 0 < low <= high")

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
        if self.resized_crop_scale is not None and n:
            boxes = random_crop_boxes(n, h, w, self.resized_crop_scale, self.resized_crop_ratio,
                                      generator, device)
            images = resized_crops(images, boxes)
        if self.hflip:
            flip = torch.rand(n, generator=generator, device=device) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(3), images)
        return images


def random_crop_boxes(n: int, h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float],
                      generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``(n, 4)`` float boxes ``(left, top, right, bottom)`` in pixel-edge coordinates, drawn
    as torchvision's ``RandomResizedCrop.get_params`` draws one, for the whole batch at once:
    10 attempts per image, the first one that fits wins; none fits -> the largest center
    crop with the aspect ratio clamped to ``ratio``."""
    attempts = 10
    area = h * w
    u = torch.rand((4, n, attempts), generator=generator, device=device, dtype=torch.float64)
    target = area * (scale[0] + (scale[1] - scale[0]) * u[0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[1])
    cw, ch = torch.sqrt(target * aspect).round(), torch.sqrt(target / aspect).round()
    fits = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # the first fitting attempt
    cw, ch = cw.gather(1, first)[:, 0], ch.gather(1, first)[:, 0]
    top = torch.floor(u[2].gather(1, first)[:, 0] * (h - ch + 1))
    left = torch.floor(u[3].gather(1, first)[:, 0] * (w - cw + 1))
    fw, fh = _fallback_size(h, w, ratio)
    found = fits.any(dim=1)
    cw, ch = torch.where(found, cw, fw), torch.where(found, ch, fh)
    top = torch.where(found, top, float((h - fh) // 2))
    left = torch.where(found, left, float((w - fw) // 2))
    return torch.stack([left, top, left + cw, top + ch], dim=1).float()


def _fallback_size(h: int, w: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """torchvision's fallback: the whole image, cut to the nearest allowed aspect ratio."""
    if w / h < ratio[0]:
        return w, int(round(w / ratio[0]))
    if w / h > ratio[1]:
        return int(round(h * ratio[1])), h
    return w, h


def resized_crops(images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Crop each image to its box and resize it back to the input size, in one batched
    ``roi_align`` (bilinear, one sample per output pixel, half-pixel centers); uint8 in and out.

    Inside the box this equals cropping then ``interpolate(mode="bilinear",
    align_corners=False)``; output pixels within half a source pixel of the box's edge blend
    in the neighbouring pixel outside the box instead of repeating the edge pixel.
    """
    from torchvision.ops import roi_align  # torchvision loads only for a random resized crop

    n, _, h, w = images.shape
    rois = torch.cat([torch.arange(n, device=images.device, dtype=boxes.dtype)[:, None], boxes], dim=1)
    out = roi_align(images.float(), rois, output_size=(h, w), spatial_scale=1.0, sampling_ratio=1,
                    aligned=True)
    return out.round_().clamp_(0, 255).to(torch.uint8)


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

    def batch_sizes(self) -> set[int]:
        """The sizes of the batches one pass yields: the full one and a smaller last one."""
        n, b = len(self.data), self.batch_size
        sizes = {b} if n >= b else set()
        if n % b and not self.drop_last:
            sizes.add(n % b)
        return sizes

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, device = len(self.data), self.data.device
        # One draw from the (CPU) stream seeds this epoch's generator on the data's device.
        epoch_seed = int(torch.randint(2**62, (1,), generator=self.generator))
        g = torch.Generator(device=device).manual_seed(epoch_seed)
        order = torch.randperm(n, generator=g, device=device) if self.shuffle \
            else torch.arange(n, device=device)
        for index, images in self._gathered(order):
            if self.augment is not None:
                images = self.augment(images, g)
            x = self.normalize(images)
            if self.channels_last and x.dim() == 4:  # the format exists for 4-D image batches only
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.data.labels[index]

    def _gathered(self, order: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(index, images)`` per batch; images on disk are decoded one batch ahead."""
        if isinstance(self.data.images, DiskImages):
            yield from prefetched(self.data.images, order, self.batch_size, len(self))
            return
        for i in range(len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield index, self.data.images[index]


def tensor_hash(*tensors: torch.Tensor) -> str:
    """A short sha256 of tensors' contents (used to name splits and data in records)."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
