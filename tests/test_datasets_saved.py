"""CIFAR and SVHN from folders written by Hugging Face ``datasets``' own ``save_to_disk``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unlearnbench import CorruptFileError, DataNotFoundError
from unlearnbench.datasets.cifar import CIFAR_NORMALIZE, Cifar10, Cifar100
from unlearnbench.datasets.svhn import SVHN

datasets = pytest.importorskip("datasets")

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _split(rng: np.random.Generator, n: int, image_column: str = "img", label_column: str = "label",
           class_names: list[str] | None = NAMES):
    from PIL import Image

    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n).tolist()
    label_feature = (datasets.ClassLabel(names=class_names) if class_names
                     else datasets.Value("int64"))
    features = datasets.Features({image_column: datasets.Image(), label_column: label_feature})
    saved = datasets.Dataset.from_dict(
        {image_column: [Image.fromarray(im) for im in images], label_column: labels}, features=features)
    return saved, images, labels


def test_a_saved_dataset_dict_gives_the_exact_pixels_labels_and_class_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (train, train_images, train_labels), (test, test_images, test_labels) = _split(rng, 7), _split(rng, 4)
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "cifar10"))

    data = Cifar10().load(tmp_path / "cifar10")
    assert np.array_equal(data.train.images.numpy(), train_images.transpose(0, 3, 1, 2))
    assert np.array_equal(data.test.images.numpy(), test_images.transpose(0, 3, 1, 2))
    assert data.train.labels.tolist() == train_labels and data.test.labels.tolist() == test_labels
    assert data.class_names == tuple(NAMES) and data.normalize == CIFAR_NORMALIZE
    files = Cifar10().data_files(tmp_path / "cifar10")
    assert any(f.suffix == ".arrow" for f in files) and all(f.is_file() for f in files)


def test_two_saved_datasets_train_and_test_are_read_too(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    (train, train_images, train_labels), (test, _, test_labels) = (
        _split(rng, 5, "image", class_names=None), _split(rng, 3, "image", class_names=None))
    train.save_to_disk(str(tmp_path / "train"))
    test.save_to_disk(str(tmp_path / "test"))

    data = SVHN().load(tmp_path)
    assert np.array_equal(data.train.images.numpy(), train_images.transpose(0, 3, 1, 2))
    assert data.train.labels.tolist() == train_labels and data.test.labels.tolist() == test_labels
    assert data.class_names == tuple(str(k) for k in range(max(train_labels + test_labels) + 1))


def test_a_saved_folder_without_the_label_column_names_the_columns_it_has(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    splits = {s: _split(rng, 3, label_column="label")[0] for s in ("train", "test")}
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path))
    Cifar100().load(tmp_path)  # falls back to "label" when "fine_label" is absent
    renamed = {s: d.rename_column("label", "category") for s, d in splits.items()}
    datasets.DatasetDict(renamed).save_to_disk(str(tmp_path / "renamed"))
    with pytest.raises(CorruptFileError, match=r"columns \['img', 'category'\]; expected a label column"):
        Cifar10().load(tmp_path / "renamed")


def test_a_saved_dataset_dict_without_a_test_split_is_not_taken_for_one(tmp_path: Path) -> None:
    train = _split(np.random.default_rng(3), 3)[0]
    datasets.DatasetDict({"train": train}).save_to_disk(str(tmp_path))
    with pytest.raises(DataNotFoundError, match="save_to_disk"):
        Cifar10().load(tmp_path)
