"""Reading Hugging Face ``datasets`` files: shared by the CIFAR, SVHN and ImageNet loaders.

The hub stores a split as ``<config>/<split>-00000-of-0000N.parquet`` with an image column
(a struct ``{bytes, path}`` of encoded PNG/JPEG bytes) and integer label columns; the
``huggingface`` entry of the schema metadata describes the features, including a
``ClassLabel``'s class names.

A folder written by ``DatasetDict.save_to_disk`` (``dataset_dict.json`` and one folder of
arrow files per split), or two folders ``train/`` and ``test/`` written by
``Dataset.save_to_disk``, with the same columns, is read with ``datasets.load_from_disk``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.tensors import ImageData
from ..errors import CorruptFileError

IMAGE_COLUMNS = ("img", "image")


def parquet_files(root: Path, split: str, config: str | None = None) -> list[Path]:
    """The parquet files of ``split`` anywhere under ``root``, sorted: ``<split>*.parquet`` (the
    hub's ``<config>/<split>-00000-of-0000N.parquet``) or ``<split>/*.parquet`` (its
    auto-converted ``refs/convert/parquet`` branch). When some lie under a folder named
    ``config`` (a repository holding several configs), only those."""
    files = sorted(p for p in root.rglob("*.parquet")
                   if p.is_file() and (p.name.startswith(split) or p.parent.name == split))
    if config is not None:
        in_config = [p for p in files if config in p.relative_to(root).parts[:-1]]
        files = in_config or files
    return files


def read_schema(path: Path, dataset: str):
    """The arrow schema of one parquet file (its footer only)."""
    import pyarrow.parquet as pq  # a heavy import, paid only by datasets stored as parquet

    try:
        return pq.read_schema(path)
    except Exception as exc:
        raise CorruptFileError(f"{dataset}: cannot read {path}: {exc}") from exc


def pick_column(schema, candidates: Sequence[str], files: Sequence[Path], dataset: str,
                what: str) -> str:
    """The first of ``candidates`` that the files have, or an error listing their columns."""
    found = next((c for c in candidates if c in schema.names), None)
    if found is None:
        raise CorruptFileError(f"{dataset}: parquet files {[str(f) for f in files[:3]]} have "
                               f"columns {schema.names}; expected {what} "
                               f"({' or '.join(repr(c) for c in candidates)})")
    return found


def class_names(schema, label_column: str) -> list[str] | None:
    """Class names from the Hugging Face features stored in the schema metadata, if any."""
    meta = (schema.metadata or {}).get(b"huggingface")
    if not meta:
        return None
    try:
        feature = json.loads(meta)["info"]["features"][label_column]
        return [str(n) for n in feature["names"]]
    except (KeyError, TypeError, ValueError):
        return None


def read_labels(files: Sequence[Path], label_column: str, dataset: str,
                num_classes: int | None = None) -> torch.Tensor:
    """The label column of ``files``, in file order, without reading any image; every label a
    class index (``0..num_classes-1`` when the class count is known), else an error naming the
    file and row."""
    import pyarrow.parquet as pq  # a heavy import, paid only by datasets stored as parquet

    parts = []
    for path in files:
        try:
            column = pq.read_table(path, columns=[label_column]).column(label_column)
        except Exception as exc:
            raise CorruptFileError(f"{dataset}: cannot read {path}: {exc}") from exc
        if column.null_count:
            row = column.to_pylist().index(None)
            raise CorruptFileError(f"{dataset}: {path} row {row} has no {label_column!r}; expected a "
                                   f"class index")
        parts.append(column.to_numpy().astype(np.int64))
        check_labels(parts[-1], num_classes, f"{dataset}: {path}", label_column)
    return torch.from_numpy(np.concatenate(parts)) if parts else torch.empty(0, dtype=torch.long)


def check_labels(labels: np.ndarray, num_classes: int | None, where: str, column: str = "label") -> None:
    """Every label a class index, ``0..num_classes-1`` (only ``>= 0`` when the count is unknown)."""
    upper = num_classes if num_classes is not None else np.iinfo(np.int64).max
    bad = np.flatnonzero((labels < 0) | (labels >= upper))
    if len(bad):
        row, value = int(bad[0]), int(labels[bad[0]])
        expected = f"0..{num_classes - 1}" if num_classes is not None else "a class index >= 0"
        hint = " (an unlabelled split?)" if value < 0 else ""
        raise CorruptFileError(f"{where} row {row} has {column} {value}{hint}; expected {expected} "
                               f"({len(bad)} rows out of range)")


def read_images(files: Sequence[Path], label_columns: Sequence[str],
                dataset: str) -> tuple[ImageData, list[str] | None]:
    """Decode every image of ``files`` into memory (small datasets: CIFAR, SVHN), with the
    first of ``label_columns`` the files have, and the class names their metadata holds."""
    schema = read_schema(files[0], dataset)
    image_column = pick_column(schema, IMAGE_COLUMNS, files, dataset, "an image column")
    label_column = pick_column(schema, label_columns, files, dataset, "a label column")
    images: list[np.ndarray] = []
    for path in files:
        table = _read_table(path, [image_column], dataset)
        images += _decode(table.column(image_column).to_pylist(), path, dataset)
    names = class_names(schema, label_column)
    labels = read_labels(files, label_column, dataset, len(names) if names else None)
    return _image_data(images, labels, files[0].parent, dataset), names


def _decode(cells: Sequence, path: Path, dataset: str) -> list[np.ndarray]:
    """Encoded images (``{bytes, path}`` structs or raw bytes) -> HWC uint8 RGB arrays."""
    from PIL import Image  # only encoded images need the decoder

    images = []
    for row, cell in enumerate(cells):
        data = cell["bytes"] if isinstance(cell, dict) else cell
        try:
            with Image.open(io.BytesIO(data)) as im:
                images.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
        except Exception as exc:
            raise CorruptFileError(f"{dataset}: cannot decode the image of row {row} of "
                                   f"{path}: {exc}") from exc
    return images


def _image_data(images: list[np.ndarray], labels: torch.Tensor, where: Path, dataset: str) -> ImageData:
    if not images:
        raise CorruptFileError(f"{dataset}: {where} holds no images")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise CorruptFileError(f"{dataset}: images of different sizes {sorted(shapes)} in {where}")
    if len(labels) != len(images):
        raise CorruptFileError(f"{dataset}: {where} holds {len(images)} images and {len(labels)} labels")
    array = np.stack(images).transpose(0, 3, 1, 2).copy()
    return ImageData(torch.from_numpy(array), labels)


def read_train_test(root: Path, label_columns: Sequence[str], dataset: str,
                    config: str | None = None) -> tuple[ImageData, ImageData, tuple[str, ...]]:
    """The ``train*`` and ``test*`` parquet splits under ``root``, decoded into memory; class
    names from the metadata, else ``"0"``, ``"1"``, ... up to the largest label."""
    train, names = read_images(parquet_files(root, "train", config), label_columns, dataset)
    test, test_names = read_images(parquet_files(root, "test", config), label_columns, dataset)
    names = names or test_names
    if names:
        for part, split in ((train, "train"), (test, "test")):  # one split may lack the class names
            check_labels(part.labels.numpy(), len(names), f"{dataset}: the {split} split under {root}")
        return train, test, tuple(names)
    n_classes = int(max(train.labels.max(), test.labels.max())) + 1
    return train, test, tuple(str(k) for k in range(n_classes))


def _read_table(path: Path, columns: list[str], dataset: str):
    import pyarrow.parquet as pq  # a heavy import, paid only by datasets stored as parquet

    try:
        return pq.read_table(path, columns=columns)
    except Exception as exc:
        raise CorruptFileError(f"{dataset}: cannot read {path}: {exc}") from exc


# -- folders written by datasets' save_to_disk -------------------------------------------------

def saved_split_folders(root: Path) -> dict[str, Path] | None:
    """The ``train`` and ``test`` folders of a ``save_to_disk`` layout at ``root`` (a
    ``DatasetDict``'s ``dataset_dict.json``, or ``train/`` and ``test/`` each holding a saved
    ``Dataset``'s ``state.json``), or None when ``root`` holds no such layout."""
    listed = root / "dataset_dict.json"
    if listed.is_file():
        try:
            splits = json.loads(listed.read_text())["splits"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptFileError(f"cannot read the split list of {listed}: {exc}") from exc
        folders = {s: root / s for s in ("train", "test") if s in splits}
        return folders if len(folders) == 2 else None
    folders = {s: root / s for s in ("train", "test")}
    return folders if all((f / "state.json").is_file() for f in folders.values()) else None


def saved_files(folders: dict[str, Path]) -> list[Path]:
    """The files of a ``save_to_disk`` layout that decide its contents (for the decode cache)."""
    return sorted(p for f in folders.values() for p in f.iterdir()
                  if p.is_file() and p.suffix in (".arrow", ".json"))


def read_saved_train_test(folders: dict[str, Path], label_columns: Sequence[str],
                          dataset: str) -> tuple[ImageData, ImageData, tuple[str, ...]]:
    """The splits of a ``save_to_disk`` layout, decoded into memory, with the class names of
    the label column's ``ClassLabel`` (else ``"0"``, ``"1"``, ... up to the largest label)."""
    import datasets  # slow to import: only when a saved folder is read

    parts, names = [], None
    for split, folder in folders.items():
        try:
            saved = datasets.load_from_disk(str(folder))
        except Exception as exc:
            raise CorruptFileError(f"{dataset}: cannot read the saved {split} split {folder}: {exc}") from exc
        if not isinstance(saved, datasets.Dataset):
            raise CorruptFileError(f"{dataset}: {folder} holds a {type(saved).__name__}; expected "
                                   f"the {split} split's Dataset")
        columns = list(saved.column_names)
        image_column = _pick(columns, IMAGE_COLUMNS, folder, dataset, "an image column")
        label_column = _pick(columns, label_columns, folder, dataset, "a label column")
        if isinstance(saved.features[image_column], datasets.Image):
            saved = saved.cast_column(image_column, datasets.Image(decode=False))
        labels = np.asarray(saved[label_column], dtype=np.int64)
        feature = saved.features[label_column]
        known = len(feature.names) if isinstance(feature, datasets.ClassLabel) else None
        check_labels(labels, known, f"{dataset}: {folder}", label_column)
        parts.append(_image_data(_decode(saved[image_column], folder, dataset),
                                 torch.from_numpy(labels), folder, dataset))
        if names is None and isinstance(feature, datasets.ClassLabel):
            names = tuple(str(n) for n in feature.names)
    train, test = parts
    if names is None:
        names = tuple(str(k) for k in range(int(max(train.labels.max(), test.labels.max())) + 1))
    return train, test, names


def _pick(columns: list[str], candidates: Sequence[str], folder: Path, dataset: str, what: str) -> str:
    found = next((c for c in candidates if c in columns), None)
    if found is None:
        raise CorruptFileError(f"{dataset}: {folder} has columns {columns}; expected {what} "
                               f"({' or '.join(repr(c) for c in candidates)})")
    return found
