"""The data path: augmentation, the device loader, and the dataset loaders' exact pixels."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from unlearnbench import CorruptFileError, DataNotFoundError
from unlearnbench.data.tensors import Augment, DeviceLoader, ImageData, Normalize
from unlearnbench.datasets.cifar import CIFAR_NORMALIZE, Cifar10
from unlearnbench.datasets.digits import Digits


def _images(n: int = 64, c: int = 3, size: int = 6, seed: int = 0) -> torch.Tensor:
    """Random images with no zero pixel, so a window never looks like padding by chance."""
    return torch.randint(1, 256, (n, c, size, size), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)


# -- Augment ---------------------------------------------------------------------------------------
def test_no_padding_and_no_flip_is_the_identity() -> None:
    images = _images()
    assert torch.equal(Augment()(images, torch.Generator().manual_seed(0)), images)
    assert torch.equal(Augment(crop_padding=0, hflip=False)(images, torch.Generator()), images)


def _windows(image: torch.Tensor, p: int) -> list[tuple[int, int, bool, torch.Tensor]]:
    """Every (dy, dx, flipped) window of the zero-padded image: the slow reference."""
    h, w = image.shape[-2:]
    padded = torch.nn.functional.pad(image, (p, p, p, p))
    return [(dy, dx, flip, padded[:, dy:dy + h, dx:dx + w].flip(-1) if flip else padded[:, dy:dy + h, dx:dx + w])
            for dy in range(2 * p + 1) for dx in range(2 * p + 1) for flip in (False, True)]


def _matching_windows(out: torch.Tensor, image: torch.Tensor, p: int, flips: bool) -> list[tuple]:
    return [(dy, dx, flip) for dy, dx, flip, window in _windows(image, p)
            if (flips or not flip) and torch.equal(window, out)]


def test_crop_outputs_are_shifted_windows_of_the_padded_input() -> None:
    p, images = 2, _images(200)
    out = Augment(crop_padding=p)(images, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    offsets = []
    for image, result in zip(images, out):
        [match] = _matching_windows(result, image, p, flips=False)  # exactly one window
        offsets.append(match[:2])
    assert set(offsets) == {(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)}
    assert (2, 2) in offsets  # the unshifted crop is one of the 25 equally likely ones


def test_crop_matches_a_per_image_reference_with_the_same_offsets() -> None:
    """The batched gather equals slicing each padded image at the offsets drawn from the
    same generator stream (dy for the batch, then dx, then the flip coins)."""
    p, images = 3, _images(50, size=8)
    out = Augment(crop_padding=p, hflip=True)(images, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    dy = torch.randint(0, 2 * p + 1, (50,), generator=g)
    dx = torch.randint(0, 2 * p + 1, (50,), generator=g)
    flip = torch.rand(50, generator=g) < 0.5
    padded = torch.nn.functional.pad(images, (p, p, p, p))
    for i in range(50):
        window = padded[i, :, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8]
        assert torch.equal(out[i], window.flip(-1) if flip[i] else window)


def test_flip_mirrors_about_half_of_the_images() -> None:
    images = _images(400)
    out = Augment(hflip=True)(images, torch.Generator().manual_seed(0))
    same = [torch.equal(o, i) for o, i in zip(out, images)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images)]
    assert all(s != m for s, m in zip(same, mirrored))  # each output is one or the other
    assert 160 < sum(mirrored) < 240


def test_augment_is_deterministic_per_generator_seed() -> None:
    images, augment = _images(), Augment(crop_padding=4, hflip=True)
    a = augment(images, torch.Generator().manual_seed(3))
    assert torch.equal(a, augment(images, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, augment(images, torch.Generator().manual_seed(4)))


# -- Normalize and DeviceLoader ----------------------------------------------------------------------
def test_normalize_is_per_channel_standardization() -> None:
    normalize = Normalize((0.1, 0.5, 0.9), (0.2, 0.25, 0.5))
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    by_hand = torch.tensor([[[(v / 255 - m) / s for v in (0, 51, 255)]]
                            for m, s in zip((0.1, 0.5, 0.9), (0.2, 0.25, 0.5))]).unsqueeze(0)
    torch.testing.assert_close(normalize(images), by_hand.float(), rtol=1e-6, atol=1e-6)
    assert normalize(images).dtype == torch.float32
    assert normalize(images, torch.float64).dtype == torch.float64


def _indexed(n: int) -> ImageData:
    """Each example's label is its index, so batches reveal which examples they hold."""
    return ImageData(_images(n, c=1, size=2), torch.arange(n))


def test_shuffled_loader_covers_each_example_once_per_epoch() -> None:
    loader = DeviceLoader(_indexed(103), normalize=Normalize((0.0,), (1.0,)), batch_size=10,
                          shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(loader) == 11
    orders = []
    for _ in range(3):
        batches = [y for _, y in loader]
        assert [len(b) for b in batches] == [10] * 10 + [3]
        order = torch.cat(batches)
        assert sorted(order.tolist()) == list(range(103))
        orders.append(order)
    assert not torch.equal(orders[0], orders[1])  # a new order each epoch
    assert not torch.equal(orders[0], torch.arange(103))


def test_unshuffled_loader_keeps_order_and_drop_last_drops_the_remainder() -> None:
    data = _indexed(25)
    plain = DeviceLoader(data, normalize=Normalize((0.0,), (1.0,)), batch_size=10)
    assert torch.equal(torch.cat([y for _, y in plain]), torch.arange(25))
    dropping = DeviceLoader(data, normalize=Normalize((0.0,), (1.0,)), batch_size=10, drop_last=True)
    assert len(dropping) == 2 and [len(y) for _, y in dropping] == [10, 10]


def test_loader_is_deterministic_per_generator_seed() -> None:
    def epochs(seed: int) -> list[torch.Tensor]:
        loader = DeviceLoader(_indexed(50), normalize=Normalize((0.0,), (1.0,)), batch_size=8,
                              shuffle=True, augment=Augment(crop_padding=1, hflip=True),
                              generator=torch.Generator().manual_seed(seed))
        return [torch.cat([torch.cat([x.flatten(), y.float()]) for x, y in loader]) for _ in range(2)]

    a, b, c = epochs(0), epochs(0), epochs(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_loader_yields_normalized_images_with_their_labels() -> None:
    data = ImageData(_images(9, c=3, size=4), torch.arange(9) % 3)
    normalize = Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    loader = DeviceLoader(data, normalize=normalize, batch_size=4, shuffle=True,
                          generator=torch.Generator().manual_seed(2))
    for x, y in loader:
        index = [int(torch.nonzero((data.images.float() == denormalized).all(dim=(1, 2, 3)))[0])
                 for denormalized in _denormalize(x, normalize)]
        assert torch.equal(y, data.labels[index])
        mean = torch.tensor(normalize.mean).view(1, 3, 1, 1)
        std = torch.tensor(normalize.std).view(1, 3, 1, 1)
        torch.testing.assert_close(x, (data.images[index].float() / 255 - mean) / std)


def _denormalize(x: torch.Tensor, normalize: Normalize) -> torch.Tensor:
    mean = torch.tensor(normalize.mean).view(1, -1, 1, 1)
    std = torch.tensor(normalize.std).view(1, -1, 1, 1)
    return ((x * std + mean) * 255).round()


def test_loader_rejects_a_batch_size_below_one() -> None:
    from unlearnbench import ConfigError
    with pytest.raises(ConfigError, match="batch_size=0"):
        DeviceLoader(_indexed(4), normalize=Normalize((0.0,), (1.0,)), batch_size=0)


# -- CIFAR-10 from a local root, in both layouts ---------------------------------------------------------
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _tiny_cifar(seed: int, n: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n).tolist()


def _write_pickles(root: Path) -> tuple[np.ndarray, list[int], np.ndarray, list[int]]:
    """torchvision's layout: Python-2 pickles, so keys come back as bytes."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_images, train_labels = [], []
    for i in range(1, 6):
        images, labels = _tiny_cifar(i, 3)
        train_images.append(images)
        train_labels += labels
        _pickle(folder / f"data_batch_{i}", {b"batch_label": b"training batch", b"labels": labels,
                                              b"data": images.reshape(3, 3072), b"filenames": [b"x.png"] * 3})
    test_images, test_labels = _tiny_cifar(0, 4)
    _pickle(folder / "test_batch", {b"labels": test_labels, b"data": test_images.reshape(4, 3072)})
    _pickle(folder / "batches.meta", {b"label_names": [n.encode() for n in NAMES],
                                      b"num_cases_per_batch": 10000, b"num_vis": 3072})
    return np.concatenate(train_images), train_labels, test_images, test_labels


def _pickle(path: Path, obj: dict) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def test_cifar10_pickles_give_the_exact_pixels_and_labels(tmp_path: Path) -> None:
    train_images, train_labels, test_images, test_labels = _write_pickles(tmp_path)
    data = Cifar10().load(tmp_path)
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape == (15, 3, 32, 32)
    assert np.array_equal(data.train.images.numpy(), train_images)
    assert data.train.labels.tolist() == train_labels and data.train.labels.dtype == torch.int64
    assert np.array_equal(data.test.images.numpy(), test_images)
    assert data.test.labels.tolist() == test_labels
    assert data.class_names == tuple(NAMES)
    assert data.normalize == CIFAR_NORMALIZE
    assert (data.augment.crop_padding, data.augment.hflip) == (4, True)


def test_cifar10_names_a_damaged_or_missing_batch(tmp_path: Path) -> None:
    _write_pickles(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match="data_batch_3"):
        Cifar10().load(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataNotFoundError, match="data_batch_3 is missing"):
        Cifar10().load(tmp_path)


def _png(image_chw: np.ndarray) -> bytes:
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(image_chw.transpose(1, 2, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_parquet(path: Path, images: np.ndarray, labels: list[int], names: list[str] | None) -> None:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"img": [{"bytes": _png(im), "path": f"{i}.png"} for i, im in enumerate(images)],
                      "label": pa.array(labels, pa.int64())})
    if names is not None:  # how Hugging Face datasets stores a ClassLabel
        features = {"img": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}
        table = table.replace_schema_metadata(
            {"huggingface": json.dumps({"info": {"features": features}})})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


@pytest.mark.parametrize("with_names", [True, False])
def test_cifar10_parquet_gives_the_exact_pixels_and_labels(tmp_path: Path, with_names: bool) -> None:
    train_images, train_labels = _tiny_cifar(1, 6)
    test_images, test_labels = _tiny_cifar(2, 4)
    train_labels[0] = 9  # so the class count is known without metadata
    names = NAMES if with_names else None
    _write_parquet(tmp_path / "plain_text" / "train-00000-of-00001.parquet", train_images, train_labels, names)
    _write_parquet(tmp_path / "plain_text" / "test-00000-of-00001.parquet", test_images, test_labels, names)
    data = Cifar10().load(tmp_path)
    assert np.array_equal(data.train.images.numpy(), train_images)
    assert np.array_equal(data.test.images.numpy(), test_images)
    assert data.train.labels.tolist() == train_labels and data.test.labels.tolist() == test_labels
    assert data.class_names == (tuple(NAMES) if with_names else tuple(str(k) for k in range(10)))


def test_cifar10_without_data_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        Cifar10().load(tmp_path)
    assert str(tmp_path / "cifar-10-batches-py") in str(info.value) and "--download" in str(info.value)
    with pytest.raises(DataNotFoundError, match="needs --data-root"):
        Cifar10().load(None)


# -- digits ---------------------------------------------------------------------------------------------
def test_digits_is_a_stratified_80_20_split_of_all_1797_images() -> None:
    from sklearn.datasets import load_digits

    data = Digits().load()
    assert len(data.train) + len(data.test) == 1797
    assert len(data.test) == 360 and len(data.train) == 1437
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape[1:] == (1, 8, 8)
    assert int(data.train.images.max()) == 255 and int(data.train.images.min()) == 0
    reference = load_digits()
    for k in range(10):
        total = int((torch.from_numpy(reference.target) == k).sum())
        assert abs(int((data.test.labels == k).sum()) - 0.2 * total) <= 1  # stratified
    all_images = torch.cat([data.train.images, data.test.images]).flatten(1)
    expected = torch.from_numpy(np.round(reference.images * 255 / 16).astype(np.uint8)).flatten(1)
    assert sorted(map(tuple, all_images.tolist())) == sorted(map(tuple, expected.tolist()))
    again = Digits().load()
    assert torch.equal(again.test.images, data.test.images)  # the same test set every time
    assert not torch.equal(Digits(test_seed=1).load().test.labels, data.test.labels)
    assert data.num_classes == 10 and data.in_chans == 1 and data.image_size == 8
