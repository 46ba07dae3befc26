"""Images streamed from disk in batches, for datasets too large to decode into memory.

ImageNet's 1.28 million training images take about 190 GB as uint8 224x224 crops, so they
stay encoded on disk. :class:`DiskImages` stands in for the uint8 ``(N, 3, S, S)`` images
tensor of an :class:`~unlearnbench.data.tensors.ImageData`: indexing it with a batch of row indices
decodes exactly those images, in parallel threads (PIL releases the GIL while it decodes and
resizes), and returns a uint8 tensor on its device. Subsets, device moves and
concatenations are views that decode nothing, so the harness, the splits and the
:class:`~unlearnbench.data.tensors.DeviceLoader` work on it unchanged; the loader also decodes the
next batch while the current one trains (:func:`prefetched`).

Each image is decoded with the usual ImageNet evaluation transform (:class:`CenterCrop`):
RGB, shorter side resized to 256 with antialiased bilinear filtering, center crop 224. The
training augmentation (random resized crop and flip) then runs batch-wise on the device, on
that stored center crop (:class:`~unlearnbench.data.tensors.Augment`).

Two stores hold the encoded images:

* :class:`FolderStore`: one file per image (torchvision's ImageFolder layout). Random access
  costs one file read per image, so shuffled training reads each image once per epoch. This
  is the layout to use for full-scale training.
* :class:`ParquetStore`: Hugging Face ``datasets`` parquet files. Parquet is read a row group
  at a time, so a batch's rows are grouped by (file, row group) and each needed row group's
  image column is read once per batch, and a few recently read row groups are kept. In-order
  passes (evaluation) read each row group about once. Shuffled passes are expensive: with
  row groups of R images and batches of B images drawn from far more than B row groups,
  nearly every image costs a whole row-group read, i.e. about R times the bytes of plain
  files. Convert the parquet files to an ImageFolder tree for full-scale training.
"""

from __future__ import annotations

import abc
import collections
import hashlib
import io
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cpus import cpu_budget
from ..errors import ConfigError, CorruptFileError, DataNotFoundError, UnlearnbenchError

# torchvision's IMG_EXTENSIONS, so an ImageFolder tree lists the same files as torchvision.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IMAGES_PER_JOB = 4  # small jobs keep every decode thread busy on the last images of a batch
ROW_GROUPS_KEPT = 4  # parquet row groups kept per store (consecutive batches often share one)


@dataclass(frozen=True)
class CenterCrop:
    """ImageNet's evaluation transform: RGB, shorter side to ``resize`` (PIL's antialiased
    bilinear, as ``torchvision.transforms.Resize`` on a PIL image), center ``crop``.

    Sizes and crop offsets are computed exactly as torchvision.transforms.v2.functional's
    ``resize(image, [resize])`` and ``center_crop(image, [crop])`` compute them.
    """

    resize: int = 256
    crop: int = 224

    def __post_init__(self) -> None:
        if not 1 <= self.crop <= self.resize:
            raise ConfigError(f"crop={self.crop} and resize={self.resize} are invalid: expected "
                              f"1 <= crop <= resize")

    def __call__(self, image) -> np.ndarray:
        """A PIL image -> uint8 ``(crop, crop, 3)``."""
        from PIL import Image  # only images streamed from disk need the decoder

        image = image.convert("RGB")
        w, h = image.size
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(self.resize * long / short)
        size = (self.resize, new_long) if w <= h else (new_long, self.resize)
        image = image.resize(size, Image.Resampling.BILINEAR)
        left = int(round((size[0] - self.crop) / 2.0))
        top = int(round((size[1] - self.crop) / 2.0))
        return np.asarray(image.crop((left, top, left + self.crop, top + self.crop)))


def _decode(source: Path | bytes, transform: CenterCrop, name: str) -> np.ndarray:
    """One encoded image -> uint8 ``(3, S, S)``; errors name the file."""
    from PIL import Image  # only images streamed from disk need the decoder

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return transform(image).transpose(2, 0, 1)
    except FileNotFoundError as exc:
        raise DataNotFoundError(f"{name} is missing (it was listed when the dataset was "
                                f"loaded): {exc}") from exc
    except UnlearnbenchError:
        raise
    except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError...
        raise CorruptFileError(f"cannot decode image {name}: {exc}") from exc


# -- where the encoded images live ------------------------------------------------------------
class ImageStore(abc.ABC):
    """The encoded images of one dataset split; row ``r`` is one image."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def identity(self) -> str:
        """A digest of the files' identities (names, sizes, mtimes), never of decoded pixels."""

    @abc.abstractmethod
    def decode(self, rows: np.ndarray, transform: CenterCrop) -> np.ndarray:
        """Decode ``rows`` -> uint8 ``(len(rows), 3, S, S)`` (runs on a worker thread)."""

    def jobs(self, rows: np.ndarray) -> list[np.ndarray]:
        """Positions into ``rows``, one array per job that may run in parallel with the others."""
        return np.array_split(np.arange(len(rows)), -(-len(rows) // IMAGES_PER_JOB))


class FolderStore(ImageStore):
    """One image file per row, at ``folder / files[row]`` (relative paths as bytes)."""

    def __init__(self, folder: Path, files: np.ndarray):
        self.folder, self.files = Path(folder), files
        self._identity: str | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"FolderStore({str(self.folder)!r}, {len(self)} files)"

    def path(self, row: int) -> Path:
        return self.folder / os.fsdecode(self.files[row])

    def identity(self) -> str:
        """Relative path, size and mtime of every file: one ``stat`` per file, once per store."""
        if self._identity is None:
            digest = hashlib.sha256()
            for row in range(len(self)):
                path = self.path(row)
                try:
                    stat = path.stat()
                except FileNotFoundError as exc:
                    raise DataNotFoundError(f"{path} is missing (it was listed when the dataset "
                                            f"was loaded)") from exc
                digest.update(b"%s\0%d\0%d\n" % (self.files[row], stat.st_size, stat.st_mtime_ns))
            self._identity = digest.hexdigest()
        return self._identity

    def decode(self, rows: np.ndarray, transform: CenterCrop) -> np.ndarray:
        return np.stack([_decode(self.path(r), transform, str(self.path(r))) for r in rows])


class ParquetStore(ImageStore):
    """Rows of parquet files, in file order; images are the ``image_column`` cells (a struct
    ``{bytes, path}`` as Hugging Face ``datasets`` writes an Image feature, or raw bytes)."""

    def __init__(self, files: Sequence[Path], image_column: str):
        import pyarrow.parquet as pq  # a heavy import, paid only by datasets stored as parquet

        self.files, self.image_column = [Path(f) for f in files], image_column
        self._metadata = []
        group_rows = []
        for path in self.files:
            try:
                metadata = pq.ParquetFile(path).metadata
            except Exception as exc:
                raise CorruptFileError(f"cannot read parquet file {path}: {exc}") from exc
            self._metadata.append(metadata)
            group_rows += [(len(self._metadata) - 1, g, metadata.row_group(g).num_rows)
                           for g in range(metadata.num_row_groups)]
        # Row group k holds the store rows starts[k] <= row < starts[k + 1].
        self._groups = [(f, g) for f, g, _ in group_rows]
        self._starts = np.cumsum([0] + [n for _, _, n in group_rows])
        self._cache = _SingleFlightCache(ROW_GROUPS_KEPT)
        self.row_group_reads = 0  # how often a row group was read (a diagnostic, and for tests)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __repr__(self) -> str:
        return f"ParquetStore({len(self.files)} files, {len(self)} rows)"

    def identity(self) -> str:
        digest = hashlib.sha256(self.image_column.encode())
        for path in self.files:
            stat = path.stat()
            name = os.fsencode(f"{path.parent.name}/{path.name}")
            digest.update(b"%s\0%d\0%d\n" % (name, stat.st_size, stat.st_mtime_ns))
        return digest.hexdigest()

    def jobs(self, rows: np.ndarray) -> list[np.ndarray]:
        """Rows grouped by row group, so each job reads one row group (once, shared via the cache)."""
        group = np.searchsorted(self._starts, rows, side="right") - 1
        order = np.argsort(group, kind="stable")
        bounds = np.flatnonzero(np.diff(group[order])) + 1
        return [chunk for same in np.split(order, bounds)
                for chunk in np.array_split(same, -(-len(same) // IMAGES_PER_JOB))]

    def decode(self, rows: np.ndarray, transform: CenterCrop) -> np.ndarray:
        group = int(np.searchsorted(self._starts, rows[0], side="right") - 1)
        cells = self._cache.get(group, lambda: self._read(group))
        file = self.files[self._groups[group][0]]
        images = []
        for row in rows:
            offset = int(row - self._starts[group])
            name = f"row {offset} of row group {self._groups[group][1]} of {file}"
            data = cells[offset].as_py()
            if not data:
                raise CorruptFileError(f"{name} holds no image bytes")
            images.append(_decode(data, transform, name))
        return np.stack(images)

    def _read(self, group: int):
        """The encoded images of one row group (a pyarrow binary array)."""
        # pyarrow: a heavy import, paid only by datasets stored as parquet
        import pyarrow as pa
        import pyarrow.parquet as pq

        f, g = self._groups[group]
        path = self.files[f]
        try:
            table = pq.ParquetFile(path, metadata=self._metadata[f]).read_row_group(
                g, columns=[self.image_column])
        except Exception as exc:
            raise CorruptFileError(f"cannot read row group {g} of {path}: {exc}") from exc
        self.row_group_reads += 1
        column = table.column(self.image_column).combine_chunks()
        return column.field("bytes") if pa.types.is_struct(column.type) else column


class _SingleFlightCache:
    """A small LRU cache whose concurrent misses on one key load it once."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._entries: collections.OrderedDict[Any, Future] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], Any]) -> Any:
        with self._lock:
            future = self._entries.get(key)
            owner = future is None
            if owner:
                future = self._entries[key] = Future()
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
        if owner:
            try:
                future.set_result(load())
            except BaseException as exc:
                future.set_exception(exc)
                with self._lock:  # a failed read is not kept: the next batch retries it
                    if self._entries.get(key) is future:
                        del self._entries[key]
        return future.result()


# -- the images tensor stand-in ---------------------------------------------------------------
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def decode_pool() -> ThreadPoolExecutor:
    """The threads that decode images, shared by every :class:`DiskImages` of the process."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            cores = cpu_budget()
            _POOL = ThreadPoolExecutor(max_workers=min(32, cores),
                                       thread_name_prefix="unlearnbench-decode")
        return _POOL


class PendingBatch:
    """A batch being decoded; :meth:`result` waits for it and moves it to its device."""

    def __init__(self, out: torch.Tensor, futures: list[Future], device: torch.device):
        self._out, self._futures, self._device = out, futures, device

    def result(self) -> torch.Tensor:
        for future in self._futures:
            future.result()  # re-raises a worker's error (CorruptFileError names the file)
        return self._out.to(self._device, non_blocking=True)

    def cancel(self) -> None:
        for future in self._futures:
            future.cancel()


class DiskImages:
    """A uint8 ``(N, 3, S, S)`` images "tensor" whose rows are decoded from disk on demand.

    ``stores`` hold the encoded images; row ``i`` is row ``rows[i]`` of
    ``stores[store_ids[i]]``. Only indexing decodes; everything else is a view.
    """

    dtype = torch.uint8

    def __init__(self, stores: Sequence[ImageStore], store_ids: np.ndarray, rows: np.ndarray,
                 transform: CenterCrop, device: torch.device | str = "cpu"):
        self.stores, self.transform = tuple(stores), transform
        self.store_ids = np.asarray(store_ids, dtype=np.int32)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.device = torch.device(device)
        if self.store_ids.shape != self.rows.shape or self.rows.ndim != 1:
            raise ConfigError("store_ids and rows must be 1-D arrays of one length")

    @classmethod
    def of(cls, store: ImageStore, transform: CenterCrop) -> DiskImages:
        """Every row of ``store``, in order."""
        return cls([store], np.zeros(len(store), np.int32), np.arange(len(store)), transform)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), 3, self.transform.crop, self.transform.crop))

    def dim(self) -> int:
        return 4

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return (f"DiskImages({len(self)} images of 3x{self.transform.crop}x{self.transform.crop}, "
                f"{self.transform}, device={self.device}, stores={list(self.stores)})")

    def __getitem__(self, index: Any) -> torch.Tensor:
        """Decode the rows ``index`` (int64 tensor or array, slice, or int) on this device."""
        if isinstance(index, (int, np.integer)):
            return self.fetch(torch.tensor([int(index)])).result()[0]
        return self.fetch(index).result()

    def fetch(self, index: Any) -> PendingBatch:
        """Start decoding the rows ``index`` on the decode threads; returns at once."""
        positions = self._positions(index)
        pin = self.device.type == "cuda" and len(positions) > 0
        out = torch.empty((len(positions), 3, self.transform.crop, self.transform.crop),
                          dtype=torch.uint8, pin_memory=pin)
        target = out.numpy()
        if not len(positions):
            return PendingBatch(out, [], self.device)
        pool = decode_pool()
        futures = []
        ids, rows = self.store_ids[positions], self.rows[positions]
        for store_id in (np.unique(ids) if len(self.stores) > 1 else range(len(self.stores))):
            where = np.flatnonzero(ids == store_id) if len(self.stores) > 1 else np.arange(len(ids))
            store, store_rows = self.stores[store_id], rows[where]
            for job in store.jobs(store_rows):
                futures.append(pool.submit(_fill, target, where[job], store, store_rows[job],
                                           self.transform))
        return PendingBatch(out, futures, self.device)

    def select(self, index: Any) -> DiskImages:
        """The rows ``index`` as a new view; nothing is decoded."""
        positions = self._positions(index)
        return DiskImages(self.stores, self.store_ids[positions], self.rows[positions],
                          self.transform, self.device)

    def to(self, device: torch.device | str) -> DiskImages:
        """The same rows, decoded batches to be put on ``device``."""
        return DiskImages(self.stores, self.store_ids, self.rows, self.transform, device)

    def cpu(self) -> DiskImages:
        return self.to("cpu")

    @staticmethod
    def concat(parts: Sequence[DiskImages]) -> DiskImages:
        """The rows of ``parts`` one after another, as one view over all their stores."""
        if not parts:
            raise ConfigError("cannot concatenate an empty list of images")
        first = parts[0]
        for p in parts[1:]:
            if p.transform != first.transform or p.device != first.device:
                raise ConfigError(f"cannot concatenate images decoded differently: "
                                  f"{first.transform} on {first.device} vs {p.transform} on {p.device}")
        stores: list[ImageStore] = []
        ids = []
        for p in parts:
            mapping = np.empty(len(p.stores), np.int32)
            for k, store in enumerate(p.stores):
                found = next((i for i, s in enumerate(stores) if s is store), None)
                if found is None:
                    stores.append(store)
                    found = len(stores) - 1
                mapping[k] = found
            ids.append(mapping[p.store_ids])
        return DiskImages(stores, np.concatenate(ids), np.concatenate([p.rows for p in parts]),
                          first.transform, first.device)

    def content_hash(self) -> str:
        """A short sha256 of the files' identities, the rows and the transform (no decoding)."""
        digest = hashlib.sha256(repr(self.transform).encode())
        for store in self.stores:
            digest.update(store.identity().encode())
        digest.update(self.store_ids.tobytes())
        digest.update(self.rows.tobytes())
        return digest.hexdigest()[:16]

    def _positions(self, index: Any) -> np.ndarray:
        """``index`` as an int64 numpy array of valid positions (negative ones count from the end)."""
        if isinstance(index, slice):
            return np.arange(len(self))[index]
        if isinstance(index, torch.Tensor):
            index = index.detach().cpu().numpy()
        positions = np.asarray(index)
        if positions.dtype == np.bool_ or not np.issubdtype(positions.dtype, np.integer) \
                or positions.ndim != 1:
            raise ConfigError(f"DiskImages is indexed by a 1-D integer index, got "
                              f"{positions.dtype} of shape {positions.shape}")
        n = len(self)
        if len(positions) and (positions.min() < -n or positions.max() >= n):
            raise IndexError(f"index out of range for {n} images")
        return np.where(positions < 0, positions + n, positions).astype(np.int64)


def _fill(target: np.ndarray, positions: np.ndarray, store: ImageStore, rows: np.ndarray,
          transform: CenterCrop) -> None:
    target[positions] = store.decode(rows, transform)


def prefetched(images: DiskImages, order: torch.Tensor,
               batch_size: int, batches: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(index, images[index])`` for consecutive ``batch_size`` slices of ``order``, decoding
    the next batch while the caller works on the current one."""
    order_cpu = order.cpu()  # one host copy per epoch, not one device sync per batch

    def start(i: int) -> PendingBatch:
        return images.fetch(order_cpu[i * batch_size:(i + 1) * batch_size])

    pending = collections.deque([start(0)] if batches else [])
    try:
        for i in range(batches):
            if i + 1 < batches:
                pending.append(start(i + 1))
            yield order[i * batch_size:(i + 1) * batch_size], pending.popleft().result()
    finally:  # an abandoned iteration (e.g. one warm-up batch) leaves no queued work behind
        for batch in pending:
            batch.cancel()
