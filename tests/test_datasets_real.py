"""The real datasets (SVHN, CIFAR-100, ImageNet) on small files written here in their real
on-disk formats, the images streamed from disk, and the on-device random resized crop."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from unlearnbench import ConfigError, CorruptFileError, DataNotFoundError
from unlearnbench.data import streaming
from unlearnbench.data.tensors import Augment, DeviceLoader, ImageData, random_crop_boxes, resized_crops
from unlearnbench.datasets.cifar import CIFAR100_NORMALIZE, CIFAR_NORMALIZE, Cifar100
from unlearnbench.datasets.imagenet import IMAGENET_NORMALIZE, ImageNet
from unlearnbench.datasets.svhn import SVHN, SVHN_NORMALIZE
from unlearnbench.data.streaming import DiskImages

CPU = torch.device("cpu")


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _encode(image_hwc: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    from PIL import Image

    image = Image.fromarray(image_hwc)
    if mode is not None:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _hub_parquet(path: Path, columns: dict, class_labels: dict[str, list[str]] | None = None,
                 row_group_size: int | None = None) -> None:
    """A parquet file as Hugging Face datasets writes one: image cells are {bytes, path}
    structs, and ClassLabel names live in the 'huggingface' schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(columns)
    if class_labels:
        features = {name: {"names": names, "_type": "ClassLabel"} for name, names in class_labels.items()}
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)


def _cells(images_hwc: list[np.ndarray], fmt: str = "PNG") -> list[dict]:
    return [{"bytes": _encode(im, fmt), "path": f"{i}.{fmt.lower()}"} for i, im in enumerate(images_hwc)]


# -- SVHN ------------------------------------------------------------------------------------------
def _write_svhn_mat(path: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's file: X is (32, 32, 3, N) uint8, y is (N, 1) with 10 for the digit 0."""
    import scipy.io

    rng = _rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
    y[0, 0], y[1, 0] = 10, 3
    scipy.io.savemat(str(path), {"X": x, "y": y})
    return x, y


def test_svhn_mat_files_give_the_exact_pixels_and_digit_labels(tmp_path: Path) -> None:
    train_x, train_y = _write_svhn_mat(tmp_path / "train_32x32.mat", 7, seed=0)
    test_x, test_y = _write_svhn_mat(tmp_path / "test_32x32.mat", 5, seed=1)
    data = SVHN().load(tmp_path)
    assert data.train.images.shape == (7, 3, 32, 32) and data.train.images.dtype == torch.uint8
    for i in range(7):  # image i is X[..., i], channels first
        for c in range(3):
            assert np.array_equal(data.train.images[i, c].numpy(), train_x[:, :, c, i])
    assert np.array_equal(data.test.images.numpy(), test_x.transpose(3, 2, 0, 1))
    expected = [0 if v == 10 else int(v) for v in train_y[:, 0]]
    assert data.train.labels.tolist() == expected and data.train.labels[0] == 0
    assert data.test.labels.tolist() == [0 if v == 10 else int(v) for v in test_y[:, 0]]
    assert data.class_names == tuple(str(k) for k in range(10))
    assert data.normalize == SVHN_NORMALIZE
    assert (data.augment.crop_padding, data.augment.hflip) == (4, False)  # no flip: digits
    assert [f[0] for f in SVHN().fingerprint(tmp_path)] == ["train_32x32.mat", "test_32x32.mat"]


def test_svhn_hub_parquet_uses_the_cropped_digits_config(tmp_path: Path) -> None:
    rng = _rng(2)
    train = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    test = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    names = [str(k) for k in range(10)]
    config = tmp_path / "cropped_digits"
    _hub_parquet(config / "train-00000-of-00001.parquet",
                 {"image": _cells(list(train)), "label": [9, 0, 1, 2, 3, 4]}, {"label": names})
    _hub_parquet(config / "test-00000-of-00001.parquet",
                 {"image": _cells(list(test)), "label": [5, 6, 7]}, {"label": names})
    # The hub repository's other config (whole house numbers, no label column) is ignored.
    _hub_parquet(tmp_path / "full_numbers" / "train-00000-of-00001.parquet",
                 {"image": _cells(list(train[:2])), "digits": [[1], [2]]})
    _hub_parquet(tmp_path / "cropped_digits" / "extra-00000-of-00001.parquet",
                 {"image": _cells(list(test[:1])), "label": [8]})
    data = SVHN().load(tmp_path)
    assert np.array_equal(data.train.images.numpy(), train.transpose(0, 3, 1, 2))
    assert np.array_equal(data.test.images.numpy(), test.transpose(0, 3, 1, 2))
    assert data.train.labels.tolist() == [9, 0, 1, 2, 3, 4] and data.test.labels.tolist() == [5, 6, 7]
    assert data.class_names == tuple(names)


def test_svhn_says_where_it_looked_and_names_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        SVHN().load(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "train_32x32.mat") in message and "parquet" in message and "--download" in message
    with pytest.raises(DataNotFoundError, match="needs --data-root"):
        SVHN().load(None)
    _write_svhn_mat(tmp_path / "train_32x32.mat", 3, seed=0)
    with pytest.raises(DataNotFoundError, match="test_32x32.mat is missing"):
        SVHN().load(tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"not a MATLAB file")
    with pytest.raises(CorruptFileError, match="test_32x32.mat"):
        SVHN().load(tmp_path)


# -- CIFAR-100 -------------------------------------------------------------------------------------
FINE = [f"fine{k}" for k in range(100)]
COARSE = [f"coarse{k}" for k in range(20)]


def test_cifar100_pickles_use_fine_labels_and_cifar100_statistics(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = _rng(3)
    parts = {}
    for name, n in (("train", 6), ("test", 4)):
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        fine, coarse = rng.integers(0, 100, n).tolist(), rng.integers(0, 20, n).tolist()
        parts[name] = images, fine
        (folder / name).write_bytes(pickle.dumps({b"data": images.reshape(n, 3072), b"fine_labels": fine,
                                                  b"coarse_labels": coarse}, protocol=2))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [n.encode() for n in FINE],
                                                b"coarse_label_names": [n.encode() for n in COARSE]}))
    data = Cifar100().load(tmp_path)
    assert np.array_equal(data.train.images.numpy(), parts["train"][0])
    assert data.train.labels.tolist() == parts["train"][1] and data.test.labels.tolist() == parts["test"][1]
    assert data.class_names == tuple(FINE) and data.num_classes == 100
    assert data.normalize == CIFAR100_NORMALIZE != CIFAR_NORMALIZE
    assert data.normalize.mean == (0.5071, 0.4865, 0.4409) and data.normalize.std == (0.2673, 0.2564, 0.2762)


def test_cifar100_hub_parquet_reads_img_and_fine_label(tmp_path: Path) -> None:
    rng = _rng(4)
    written = {}
    for split, n in (("train", 5), ("test", 3)):
        images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        fine, coarse = rng.integers(0, 100, n).tolist(), rng.integers(0, 20, n).tolist()
        written[split] = images, fine
        _hub_parquet(tmp_path / "cifar100" / f"{split}-00000-of-00001.parquet",
                     {"img": _cells(list(images)), "fine_label": fine, "coarse_label": coarse},
                     {"fine_label": FINE, "coarse_label": COARSE})
    data = Cifar100().load(tmp_path)
    for split, part in (("train", data.train), ("test", data.test)):
        assert np.array_equal(part.images.numpy(), written[split][0].transpose(0, 3, 1, 2))
        assert part.labels.tolist() == written[split][1]
    assert data.class_names == tuple(FINE)  # the fine names, not the coarse ones
    assert data.normalize == CIFAR100_NORMALIZE
    bad = tmp_path / "cifar100" / "test-00000-of-00001.parquet"
    bad.write_bytes(b"PAR1 garbage")
    with pytest.raises(CorruptFileError, match="test-00000-of-00001.parquet"):
        Cifar100().load(tmp_path)


# -- ImageNet: an ImageFolder tree ------------------------------------------------------------------
SIZES = [(37, 23), (23, 41), (64, 48), (20, 20), (30, 90), (55, 31)]  # (width, height)


def _image(seed: int, size: tuple[int, int]) -> np.ndarray:
    """A smooth image plus noise, so JPEG and resizing have structure to work on."""
    w, h = size
    rng = _rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=-1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def _write_tree(root: Path, classes: dict[str, int], split: str, seed: int = 0) -> list[Path]:
    """``root/split/<class>/`` with images of mixed sizes and formats (PNG, JPEG, grayscale,
    RGBA, one in a nested folder) and a file that is not an image."""
    files = []
    for c, (name, count) in enumerate(classes.items()):
        folder = root / split / name
        folder.mkdir(parents=True)
        (folder / "notes.txt").write_text("not an image")
        for i in range(count):
            image = _image(seed + 10 * c + i, SIZES[(c + i) % len(SIZES)])
            kind = (c + i) % 4
            if kind == 0:
                path, data = folder / f"img{i}.JPEG", _encode(image, "JPEG")
            elif kind == 1:
                path, data = folder / f"img{i}.png", _encode(image, "PNG", mode="L")
            elif kind == 2:
                path, data = folder / f"img{i}.PNG", _encode(image, "PNG", mode="RGBA")
            else:
                path, data = folder / "nested" / f"img{i}.png", _encode(image)
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            files.append(path)
    return files


def _reference(path_or_bytes, resize: int, crop: int) -> np.ndarray:
    """torchvision's classic evaluation transform on the PIL image, as (3, crop, crop)."""
    from PIL import Image
    from torchvision.transforms.v2 import functional as F

    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(source) as image:
        image = F.center_crop(F.resize(image.convert("RGB"), [resize]), [crop])
        return F.pil_to_tensor(image).numpy()


@pytest.fixture
def folder_tree(tmp_path: Path) -> Path:
    # Created out of order: labels must follow the sorted folder names.
    _write_tree(tmp_path, {"n03": 3, "n01": 2, "n02": 3}, "train")
    _write_tree(tmp_path, {"n02": 2, "n01": 1}, "val", seed=100)  # val may lack a class
    return tmp_path


def _sorted_files(folder: Path) -> list[Path]:
    """What torchvision's ImageFolder lists: per class, os.walk order, sorted names."""
    import os
    out = []
    for name in sorted(p.name for p in folder.iterdir()):
        for dirpath, _, names in sorted(os.walk(folder / name)):
            out += [Path(dirpath) / f for f in sorted(names) if not f.endswith(".txt")]
    return out


def test_imagenet_folder_matches_torchvision_imagefolder_and_eval_transform(folder_tree: Path) -> None:
    data = ImageNet(resize=20, crop=16).load(folder_tree)
    assert data.class_names == ("n01", "n02", "n03")
    assert isinstance(data.train.images, DiskImages) and data.train.images.shape == (8, 3, 16, 16)
    assert data.train.labels.tolist() == [0, 0, 1, 1, 1, 2, 2, 2]
    assert data.test.labels.tolist() == [0, 1, 1]  # val's n01 and n02 keep train's indices
    assert (data.in_chans, data.image_size, data.num_classes) == (3, 16, 3)
    assert data.normalize == IMAGENET_NORMALIZE
    assert data.augment == Augment(hflip=True, resized_crop_scale=(0.08, 1.0))
    decoded = data.train.images[torch.arange(8)]
    assert decoded.dtype == torch.uint8 and decoded.shape == (8, 3, 16, 16)
    for image, path in zip(decoded, _sorted_files(folder_tree / "train")):
        assert np.array_equal(image.numpy(), _reference(path, 20, 16)), path
    for image, path in zip(data.test.images[torch.arange(3)], _sorted_files(folder_tree / "val")):
        assert np.array_equal(image.numpy(), _reference(path, 20, 16)), path


def test_the_default_transform_is_resize_256_center_crop_224(folder_tree: Path) -> None:
    from PIL import Image

    path = folder_tree / "big.jpg"
    Image.fromarray(_image(7, (300, 260))).save(path)
    crop = streaming.CenterCrop()
    with Image.open(path) as image:
        assert np.array_equal(crop(image).transpose(2, 0, 1), _reference(path, 256, 224))
    assert ImageNet().get_params() == {"resize": 256, "crop": 224}
    with pytest.raises(ConfigError, match="crop=40"):
        ImageNet(resize=32, crop=40)


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    decoded: list[str] = []
    original = streaming._decode

    def counting(source, transform, name):
        decoded.append(name)
        return original(source, transform, name)

    monkeypatch.setattr(streaming, "_decode", counting)
    return decoded


def test_disk_images_decode_exactly_the_requested_rows(folder_tree: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data = ImageNet(resize=20, crop=16).load(folder_tree)
    decoded = _count_decodes(monkeypatch)
    everything = data.train.images[torch.arange(8)]
    assert len(decoded) == 8
    decoded.clear()
    picked = data.train.images[torch.tensor([5, 0, 5, -1])]
    assert len(decoded) == 4 and torch.equal(picked, everything[[5, 0, 5, 7]])
    assert torch.equal(data.train.images[2:4], everything[2:4])  # a slice, as iu.py indexes
    assert torch.equal(data.train.images[3], everything[3])
    decoded.clear()
    # Views decode nothing: subsets, device moves, concatenation, hashing.
    part = data.train.subset(torch.tensor([6, 1]))
    moved, both = part.to("cpu"), ImageData.concat([part, data.test])
    digest = data.content_hash
    assert decoded == [] and len(digest) == 16
    assert isinstance(part.images, DiskImages) and part.labels.tolist() == [2, 0]
    assert torch.equal(moved.images[torch.arange(2)], everything[[6, 1]])
    assert torch.equal(both.images[torch.arange(5)],
                       torch.cat([everything[[6, 1]], data.test.images[torch.arange(3)]]))
    assert both.labels.tolist() == [2, 0, 0, 1, 1] and len(decoded) == 2 + 5 + 3
    with pytest.raises(IndexError):
        data.train.images[torch.tensor([8])]
    with pytest.raises(ConfigError, match="in memory"):
        ImageData.concat([part, ImageData(everything[:1], torch.tensor([0]))])


def test_content_hash_follows_the_files_and_rows_not_the_pixels(folder_tree: Path) -> None:
    load = lambda: ImageNet(resize=20, crop=16).load(folder_tree)  # noqa: E731
    first = load()
    assert first.content_hash == load().content_hash
    assert first.train.images.select(torch.tensor([0, 1])).content_hash() != \
        first.train.images.select(torch.tensor([1, 0])).content_hash()
    assert ImageNet(resize=24, crop=16).load(folder_tree).content_hash != first.content_hash
    target = _sorted_files(folder_tree / "train")[0]
    target.write_bytes(target.read_bytes() + b"\0")  # a changed file (size and mtime)
    assert load().content_hash != first.content_hash


def test_device_loader_on_disk_equals_the_in_memory_loader(folder_tree: Path) -> None:
    """Prefetching changes when images are decoded, never which batches come out."""
    data = ImageNet(resize=20, crop=16).load(folder_tree)
    in_memory = ImageData(data.train.images[torch.arange(8)], data.train.labels)
    augment = Augment(hflip=True, resized_crop_scale=(0.08, 1.0))

    def epochs(d: ImageData, drop_last: bool) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        loader = DeviceLoader(d, normalize=IMAGENET_NORMALIZE, batch_size=3, shuffle=True,
                              augment=augment, generator=torch.Generator().manual_seed(1),
                              drop_last=drop_last)
        return [list(loader) for _ in range(2)]

    for drop_last in (False, True):
        disk, memory = epochs(data.train, drop_last), epochs(in_memory, drop_last)
        assert [len(e) for e in disk] == ([2, 2] if drop_last else [3, 3])
        for a, b in zip(disk, memory):
            for (xa, ya), (xb, yb) in zip(a, b, strict=True):
                assert torch.equal(xa, xb) and torch.equal(ya, yb)
    loader = DeviceLoader(data.train, normalize=IMAGENET_NORMALIZE, batch_size=3)
    x, y = next(iter(loader))  # an abandoned epoch cancels its prefetch
    assert x.shape == (3, 3, 16, 16) and y.tolist() == [0, 0, 1]


def test_imagenet_folder_errors_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        ImageNet().load(tmp_path, download=True)
    message = str(info.value)
    assert all(s in message for s in (str(tmp_path / "train"), str(tmp_path / "val"),
                                      "validation*.parquet", "cannot be downloaded"))
    with pytest.raises(DataNotFoundError, match="needs --data-root"):
        ImageNet().load(None)
    files = _write_tree(tmp_path, {"a": 2, "b": 2}, "train")
    with pytest.raises(DataNotFoundError, match="val.* is missing"):
        ImageNet().load(tmp_path)
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "flat.JPEG").write_bytes(_encode(_image(0, (20, 20)), "JPEG"))
    with pytest.raises(DataNotFoundError, match="no class folders"):
        ImageNet().load(tmp_path)
    _write_tree(tmp_path, {"c": 1}, "val")
    with pytest.raises(DataNotFoundError, match=r"training set lacks: \['c'\]"):
        ImageNet().load(tmp_path)
    (tmp_path / "val" / "c").rename(tmp_path / "val" / "a")
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match=r"without images.*\['empty'\]"):
        ImageNet().load(tmp_path)
    (tmp_path / "train" / "empty").rmdir()
    files[1].write_bytes(b"\xff\xd8 truncated jpeg")
    data = ImageNet(resize=20, crop=16).load(tmp_path)  # listing never decodes
    assert data.train.images[torch.tensor([0])].shape == (1, 3, 16, 16)
    with pytest.raises(CorruptFileError, match=str(files[1].relative_to(tmp_path))):
        data.train.images[torch.tensor([0, 1])]
    loader = DeviceLoader(data.train, normalize=IMAGENET_NORMALIZE, batch_size=4)
    with pytest.raises(CorruptFileError, match=files[1].name):
        list(loader)
    files[2].unlink()
    with pytest.raises(DataNotFoundError, match=f"{files[2].name} is missing"):
        data.train.images[torch.tensor([2])]


# -- ImageNet: Hugging Face parquet -----------------------------------------------------------------
def test_imagenet_parquet_reads_each_needed_row_group_once(tmp_path: Path) -> None:
    names = ["tench", "goldfish", "shark"]
    images = [_image(i, SIZES[i % len(SIZES)]) for i in range(10)]
    labels = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    cells = _cells(images, "JPEG")
    data_dir = tmp_path / "data"
    _hub_parquet(data_dir / "train-00000-of-00002.parquet", {"image": cells[:6], "label": labels[:6]},
                 {"label": names}, row_group_size=2)
    _hub_parquet(data_dir / "train-00001-of-00002.parquet", {"image": cells[6:8], "label": labels[6:8]},
                 {"label": names}, row_group_size=2)
    _hub_parquet(data_dir / "validation-00000-of-00001.parquet", {"image": cells[8:], "label": labels[8:]},
                 {"label": names})
    _hub_parquet(data_dir / "test-00000-of-00001.parquet", {"image": cells[:1], "label": [-1]},
                 {"label": names})  # the hub's unlabelled test split is not read
    data = ImageNet(resize=20, crop=16).load(tmp_path)
    assert data.class_names == tuple(names) and len(data.train) == 8 and len(data.test) == 2
    assert data.train.labels.tolist() == labels[:8] and data.test.labels.tolist() == labels[8:]
    store = data.train.images.stores[0]
    assert store.row_group_reads == 0  # loading reads footers and labels only
    picked = data.train.images[torch.tensor([5, 0, 1, 4])]  # row groups 2, 0, 0, 2
    assert store.row_group_reads == 2
    for image, row in zip(picked, [5, 0, 1, 4]):
        assert np.array_equal(image.numpy(), _reference(cells[row]["bytes"], 20, 16))
    data.train.images[torch.tensor([1])]  # row group 0 is still cached
    assert store.row_group_reads == 2
    all_train = data.train.images[torch.arange(8)]
    assert all(np.array_equal(all_train[r].numpy(), _reference(cells[r]["bytes"], 20, 16)) for r in range(8))
    val_image = data.test.images[torch.tensor([1])][0].numpy()
    assert np.array_equal(val_image, _reference(cells[9]["bytes"], 20, 16))
    (data_dir / "validation-00000-of-00001.parquet").write_bytes(b"PAR1 not parquet")
    with pytest.raises(CorruptFileError, match="validation-00000-of-00001.parquet"):
        ImageNet().load(tmp_path)


def test_parquet_files_are_found_in_both_hub_layouts(tmp_path: Path) -> None:
    from unlearnbench.datasets._parquet import parquet_files

    layout = ["default/train-00000-of-00002.parquet", "default/train-00001-of-00002.parquet",
              "converted/default/train/0000.parquet", "default/validation-00000-of-00001.parquet",
              "converted/default/validation/0000.parquet", "default/test-00000-of-00001.parquet",
              "other/train-00000-of-00001.parquet", "default/train/notes.txt"]
    for name in layout:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = lambda split, config=None: [str(p.relative_to(tmp_path)) for p in  # noqa: E731
                                        parquet_files(tmp_path, split, config)]
    assert found("train") == [layout[2], layout[0], layout[1], layout[6]]
    assert found("validation") == [layout[4], layout[3]]
    assert found("train", "other") == [layout[6]]
    assert found("train", "missing") == found("train")  # no such config folder: all of them


# -- the random resized crop on the device ----------------------------------------------------------
def _batch(n: int = 32, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)


def test_resized_crop_shape_determinism_and_identity() -> None:
    images, augment = _batch(), Augment(resized_crop_scale=(0.08, 1.0), hflip=True)
    out = augment(images, torch.Generator().manual_seed(3))
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(out, augment(images, torch.Generator().manual_seed(3)))
    assert not torch.equal(out, augment(images, torch.Generator().manual_seed(4)))
    whole = Augment(resized_crop_scale=(1.0, 1.0), resized_crop_ratio=(1.0, 1.0))
    assert torch.equal(whole(images, torch.Generator().manual_seed(0)), images)  # box = image
    with pytest.raises(ConfigError, match="resized_crop_scale"):
        Augment(resized_crop_scale=(0.5, 0.2))


def test_crop_boxes_follow_torchvision_random_resized_crop() -> None:
    g = torch.Generator().manual_seed(0)
    fixed = random_crop_boxes(500, 16, 16, (0.25, 0.25), (1.0, 1.0), g, CPU)
    assert torch.all(fixed[:, 2] - fixed[:, 0] == 8) and torch.all(fixed[:, 3] - fixed[:, 1] == 8)
    assert fixed[:, :2].min() == 0 and fixed[:, 2:].max() == 16  # every position 0..8 is drawn
    assert len(set(map(tuple, fixed[:, :2].tolist()))) == 81
    # No attempt fits a 4:1 box of the full area: torchvision's center-crop fallback.
    fallback = random_crop_boxes(3, 16, 16, (1.0, 1.0), (4.0, 4.0), g, CPU)
    assert fallback.tolist() == [[0.0, 6.0, 16.0, 10.0]] * 3
    # The distribution of the default draw matches torchvision's get_params.
    from torchvision.transforms import RandomResizedCrop

    torch.manual_seed(0)
    ref = torch.tensor([RandomResizedCrop.get_params(torch.empty(3, 224, 224), [0.08, 1.0], [3 / 4, 4 / 3])
                        for _ in range(3000)], dtype=torch.float64)  # (top, left, h, w)
    ours = random_crop_boxes(3000, 224, 224, (0.08, 1.0), (3 / 4, 4 / 3), g, CPU).double()
    ours_hw = torch.stack([ours[:, 3] - ours[:, 1], ours[:, 2] - ours[:, 0]], dim=1)
    for a, b in ((ours_hw.prod(1) / 224**2, ref[:, 2] * ref[:, 3] / 224**2),
                 (torch.log(ours_hw[:, 1] / ours_hw[:, 0]), torch.log(ref[:, 3] / ref[:, 2])),
                 (ours[:, 1], ref[:, 0])):
        assert abs(a.mean() - b.mean()) < 0.04 * max(1.0, float(b.abs().mean())), (a.mean(), b.mean())
    assert (ours[:, :2] >= 0).all() and (ours[:, 2:] <= 224).all()


def test_resized_crop_equals_crop_then_bilinear_resize_inside_the_box() -> None:
    images = _batch(4)
    top, left, h, w = 3, 2, 7, 9
    boxes = torch.tensor([[left, top, left + w, top + h]] * 4, dtype=torch.float32)
    out = resized_crops(images, boxes)
    reference = torch.nn.functional.interpolate(
        images[:, :, top:top + h, left:left + w].float(), size=(16, 16), mode="bilinear",
        align_corners=False).round().to(torch.uint8)
    # Output pixels whose sample point lies inside the box's pixel centers are identical.
    sy, sx = ((torch.arange(16) + 0.5) * h / 16 - 0.5), ((torch.arange(16) + 0.5) * w / 16 - 0.5)
    inside = ((sy >= 0) & (sy <= h - 1))[:, None] & ((sx >= 0) & (sx <= w - 1))[None, :]
    assert inside.sum() > 150
    assert torch.equal(out[..., inside], reference[..., inside])


# -- recipe, model, and a whole run ------------------------------------------------------------------
def test_imagenet_recipe_and_default_model() -> None:
    from unlearnbench.components import build_model

    recipe = ImageNet().default_recipe()
    assert (recipe.epochs, recipe.lr, recipe.momentum, recipe.weight_decay, recipe.batch_size) == \
        (90, 0.1, 0.9, 1e-4, 256)
    lrs = {epoch: recipe.lr_at(epoch / 90) for epoch in (0, 29, 30, 59, 60, 89)}
    assert [round(v, 6) for v in lrs.values()] == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    model = build_model(ImageNet.default_arch, num_classes=1000, in_chans=3, image_size=224)
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    assert isinstance(model.maxpool, torch.nn.MaxPool2d)  # no CIFAR stem at 224 px


def test_a_whole_run_on_a_streamed_imagenet_tree(tmp_path: Path) -> None:
    from unlearnbench.run.config import RunConfig
    from unlearnbench.run.api import run_trials

    classes = {f"n0{k}": 6 for k in range(4)}
    _write_tree(tmp_path / "data", classes, "train")
    _write_tree(tmp_path / "data", {name: 2 for name in classes}, "val", seed=50)
    config = RunConfig(method="ft", method_params={"epochs": 1, "batch_size": 8}, dataset="imagenet",
                       dataset_params={"resize": 20, "crop": 16}, arch="tiny_cnn", forget="class:1",
                       train_params={"epochs": 2, "batch_size": 8}, val_fraction=0.0,
                       data_root=tmp_path / "data", cache_dir=tmp_path / "cache",
                       output_dir=tmp_path / "out", device="cpu")
    [record] = run_trials(config)
    assert record.dataset == "imagenet" and record.arch == "tiny_cnn"
    assert (record.split.train, record.split.forget, record.split.retain, record.split.test) == (24, 6, 18, 6)
    metrics = record.metrics
    assert all(0 <= metrics[k] <= 100 for k in ("UA", "MIA", "RA", "TA"))
    assert (tmp_path / "out" / f"{record.run_id}.json").is_file()
    assert not (tmp_path / "cache" / "datasets").exists()  # streamed: no decoded-tensor cache
    assert (tmp_path / "cache" / "originals").is_dir()


def test_cifar_augmentation_can_be_turned_off(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    images = _rng(4).integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    for name in ("train", "test"):
        (folder / name).write_bytes(pickle.dumps({b"data": images.reshape(4, 3072), b"fine_labels": [0, 1, 2, 3],
                                                  b"coarse_labels": [0, 0, 1, 1]}, protocol=2))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [n.encode() for n in FINE],
                                                b"coarse_label_names": [n.encode() for n in COARSE]}))
    assert Cifar100().load(tmp_path).augment == Augment(crop_padding=4, hflip=True)  # the paper's
    plain = Cifar100.from_params({"augment": False}).load(tmp_path)
    assert plain.augment == Augment() and not plain.augment.hflip and plain.augment.crop_padding == 0
