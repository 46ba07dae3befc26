"""Speed of training and evaluation on one device, next to the classic CIFAR input pipeline.

Measures the numbers of the performance targets for ResNet-18 (CIFAR stem) on CIFAR-10:

* seconds per training epoch of the reference-style pipeline (uint8 array -> PIL image ->
  torchvision transforms per image, ``DataLoader`` with 0 and 8 worker processes, fp32, a
  host-to-device copy per batch) and of ours (``unlearnbench.train.loop.fit`` over a
  ``DeviceLoader`` whose uint8 data already lives on the device; bf16 + channels_last, and fp32),
  side by side on the same card in one run, each after a warm-up;
* the evaluation of one run (UA, RA, TA, MIA-Efficacy on forget/retain/test = 5k/40.5k/9k),
  the MIA attack alone (ours and the plain scikit-learn reference, which must agree exactly),
  the RTE of FT (10 epochs on the retain set), and Retrain at the paper's 182 epochs
  (extrapolated from the measured epoch time);
* optionally (``--accuracy-epochs N``) the test accuracy after N epochs in fp32 and in bf16.

Every part prints its result as soon as it is measured, so an interrupted run still informs;
the table is printed at the end and written to ``--output``. ``--size small`` runs the same
code on a few dozen images (CPU, about a minute) to show that the script works::

    python benchmarks/gpu_benchmark.py --data-root ~/data/cifar10 --output gpu.md
    python benchmarks/gpu_benchmark.py --data-root ~/data/cifar10 --size small --device cpu
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench import Augment, DeviceLoader, ImageData, UnlearningTask, build_model, fit
from unlearnbench.datasets.cifar import CIFAR_NORMALIZE, Cifar10
from unlearnbench.run.artifacts import REFERENCE_EPOCHS
from unlearnbench.evaluate.measure import evaluate
from unlearnbench.evaluate.metrics import accuracy, mia_efficacy, predict, true_label_confidence
from unlearnbench.train.runtime import COMPILE_MODES, Runtime
from unlearnbench.run.timing import timed_unlearn

PARTS = ("reference", "bf16", "fp32", "loader", "plain", "compile", "eval", "ft", "accuracy")
OPT_IN = ("loader", "plain", "compile", "accuracy")  # diagnostics: only when --parts names them
RECIPE = Cifar10().default_recipe()  # lr 0.1, momentum 0.9, weight decay 5e-4, batch 256


@dataclass(frozen=True)
class Sizes:
    train: int | None  # training images per epoch (None: all 50,000)
    batch_size: int
    forget: int
    retain: int
    test: int
    ft_epochs: int
    workers: tuple[int, ...]
    warmup_batches: int  # warm-up of the single-process reference (a full epoch costs too much)


SIZES = {
    "full": Sizes(None, 256, forget=5000, retain=40500, test=9000, ft_epochs=10, workers=(0, 8),
                  warmup_batches=10),
    "small": Sizes(16, 8, forget=16, retain=32, test=16, ft_epochs=1, workers=(0, 2),
                   warmup_batches=1),
}
TARGETS = {"epoch": "<= 0.6 s", "eval": "< 5 s", "ft": "< 10 s", "retrain": "< 120 s"}


class Report:
    """Rows of the final table, each also printed the moment it is known. Targets are shown
    only at full size (they are meaningless for a few dozen images on a CPU)."""

    def __init__(self, show_targets: bool) -> None:
        self.rows: list[dict[str, str]] = []
        self.start = time.perf_counter()
        self.show_targets = show_targets

    def add(self, part: str, setting: str, seconds: float | None, note: str = "",
            target: str = "", value: str | None = None) -> None:
        shown = value if value is not None else (f"{seconds:.3f}" if seconds is not None else "-")
        self.rows.append({"part": part, "setting": setting, "seconds": shown,
                          "target": target if self.show_targets else "", "note": note})
        self.log(f"{part} | {setting} | {shown} | {note}")

    def log(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.start:7.1f}s] {message}", flush=True)

    def table(self) -> str:
        from tabulate import tabulate
        return tabulate(self.rows, headers="keys", tablefmt="github")


# -- the reference-style pipeline ----------------------------------------------------------
class PilCifar(torch.utils.data.Dataset):
    """uint8 images -> PIL -> RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor,
    Normalize: the per-image transforms of the classic CIFAR training scripts."""

    def __init__(self, data: ImageData):
        from torchvision import transforms as T
        self.images = data.images.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = data.labels.numpy()
        self.transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                                    T.Normalize(CIFAR_NORMALIZE.mean, CIFAR_NORMALIZE.std)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def reference_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer, device: torch.device,
                    max_batches: int | None = None) -> tuple[float, int]:
    """Seconds and batch count of one (possibly truncated) fp32 epoch, the classic way."""
    model.train()
    sync(device)
    start, batches = time.perf_counter(), 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        batches += 1
        if max_batches is not None and batches >= max_batches:
            break
    sync(device)
    return time.perf_counter() - start, batches


def run_reference(report: Report, train: ImageData, sizes: Sizes, args, device: torch.device) -> None:
    dataset = PilCifar(train)
    full_batches = -(-len(dataset) // sizes.batch_size)
    for workers in sizes.workers:
        model = new_model(device, channels_last=False)
        optimizer = torch.optim.SGD(model.parameters(), lr=RECIPE.lr, momentum=RECIPE.momentum,
                                    weight_decay=RECIPE.weight_decay)
        loader = torch.utils.data.DataLoader(dataset, batch_size=sizes.batch_size, shuffle=True,
                                             num_workers=workers, pin_memory=device.type == "cuda",
                                             drop_last=False)
        setting = f"reference DataLoader, PIL transforms, num_workers={workers}, fp32"
        if workers == 0:
            # One epoch takes about 35 s on an H100 host: warm up on a few batches, then time
            # one epoch (or --reference-batches of it, extrapolated and labelled so).
            reference_epoch(model, loader, optimizer, device, max_batches=sizes.warmup_batches)
            seconds, batches = reference_epoch(model, loader, optimizer, device, args.reference_batches)
            note = f"1 epoch after {sizes.warmup_batches} warm-up batches"
            if batches < full_batches:
                seconds *= full_batches / batches
                note = f"EXTRAPOLATED from {batches} of {full_batches} batches"
        else:
            reference_epoch(model, loader, optimizer, device)
            seconds = sum(reference_epoch(model, loader, optimizer, device)[0]
                          for _ in range(args.epochs)) / args.epochs
            note = f"mean of {_epochs(args.epochs)} after 1 warm-up epoch"
        report.add("epoch", setting, seconds, note, TARGETS["epoch"])


# -- our pipeline -------------------------------------------------------------------------
def new_model(device: torch.device, channels_last: bool, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model("resnet18", num_classes=10, in_chans=3, image_size=32)
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def our_loader(data: ImageData, runtime: Runtime, batch_size: int, seed: int = 0) -> DeviceLoader:
    return DeviceLoader(data, normalize=CIFAR_NORMALIZE, batch_size=batch_size, shuffle=True,
                        augment=Augment(crop_padding=4, hflip=True),
                        generator=torch.Generator().manual_seed(seed),
                        channels_last=runtime.channels_last)


def run_ours(report: Report, train: ImageData, sizes: Sizes, args, runtime: Runtime,
             label: str = "") -> tuple[nn.Module, float]:
    """Mean epoch seconds of ``fit`` after a warm-up epoch; returns the trained model too."""
    model = new_model(runtime.device, runtime.channels_last)
    loader = our_loader(train, runtime, sizes.batch_size)
    recipe = RECIPE.replace(epochs=1, batch_size=sizes.batch_size)
    fit(model, loader, recipe, runtime, desc="warm-up")
    with runtime.timer() as elapsed:
        fit(model, loader, recipe.replace(epochs=args.epochs), runtime, desc="timed")
    seconds = elapsed.seconds / args.epochs
    layout = ", channels_last" if runtime.channels_last else ""
    report.add("epoch", f"ours: fit + DeviceLoader (uint8 on device), {runtime.precision}{layout}{label}",
               seconds, f"mean of {_epochs(args.epochs)} after 1 warm-up epoch", TARGETS["epoch"])
    return model, seconds


def run_loader_only(report: Report, train: ImageData, sizes: Sizes, args, runtime: Runtime) -> None:
    """The data path alone: gather, crop, flip and normalize every batch of an epoch."""
    loader = our_loader(train, runtime, sizes.batch_size)
    for _ in loader:
        pass
    with runtime.timer() as elapsed:
        for _ in range(args.epochs):
            for _ in loader:
                pass
    report.add("epoch", "DeviceLoader alone (no model)", elapsed.seconds / args.epochs,
               f"mean of {_epochs(args.epochs)}; the data path's share of an epoch")


def run_plain(report: Report, train: ImageData, sizes: Sizes, args, runtime: Runtime) -> None:
    """A bare bf16 loop over the same batches (no schedule, no mask, no loss callback): how
    much of an epoch is the shared loop's own overhead."""
    model = new_model(runtime.device, runtime.channels_last)
    loader = our_loader(train, runtime, sizes.batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=RECIPE.lr, momentum=RECIPE.momentum,
                                weight_decay=RECIPE.weight_decay, fused=runtime.device.type == "cuda" or None)

    def epoch() -> None:
        for x, y in loader:
            optimizer.zero_grad(set_to_none=True)
            with runtime.autocast():
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()

    model.train()
    epoch()
    with runtime.timer() as elapsed:
        for _ in range(args.epochs):
            epoch()
    report.add("epoch", f"plain loop over the same DeviceLoader, {runtime.precision}"
               f"{', channels_last' if runtime.channels_last else ''}", elapsed.seconds / args.epochs,
               f"mean of {_epochs(args.epochs)} after 1 warm-up epoch", TARGETS["epoch"])


# -- evaluation, the attack, FT -----------------------------------------------------------
@dataclass(frozen=True)
class Split:
    forget: ImageData
    retain: ImageData
    test: ImageData
    shadow: torch.Tensor


def class_split(train: ImageData, test: ImageData, sizes: Sizes, device: torch.device) -> Split:
    """Class-wise forgetting of class 0 at the paper's sizes (5k / 40.5k / 9k)."""
    forget_idx = torch.nonzero(train.labels == 0).flatten()[:sizes.forget]
    retain_idx = torch.nonzero(train.labels != 0).flatten()[:sizes.retain]
    test_idx = torch.nonzero(test.labels != 0).flatten()[:sizes.test]
    shadow = torch.randperm(len(retain_idx), generator=torch.Generator().manual_seed(0))[:len(test_idx)]
    return Split(train.subset(forget_idx).to(device), train.subset(retain_idx).to(device),
                 test.subset(test_idx).to(device), shadow)


def reference_mia(member: np.ndarray, non_member: np.ndarray, target: np.ndarray) -> float:
    """The attack exactly as the reference code runs it (default SVC, one predict call)."""
    from sklearn.svm import SVC
    x = np.concatenate([member, non_member]).reshape(-1, 1)
    y = np.concatenate([np.ones(len(member)), np.zeros(len(non_member))])
    attack = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
    return 100.0 * float(1.0 - attack.predict(target.reshape(-1, 1)).mean())


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def run_eval(report: Report, model: nn.Module, split: Split, runtime: Runtime) -> None:
    sizes = f"forget/retain/test = {len(split.forget)}/{len(split.retain)}/{len(split.test)}"
    predict(model, split.test, CIFAR_NORMALIZE, runtime)  # warm-up: cuDNN autotuning of eval shapes
    with runtime.timer() as elapsed:
        metrics = evaluate(model, forget=split.forget, retain=split.retain, test=split.test,
                           normalize=CIFAR_NORMALIZE, runtime=runtime, mia_members=split.shadow)
    report.add("eval", f"evaluate (UA, RA, TA, MIA), {runtime.precision}", elapsed.seconds,
               f"{sizes}; UA {metrics['UA']:.1f} RA {metrics['RA']:.1f} TA {metrics['TA']:.1f} "
               f"MIA {metrics['MIA']:.1f}", TARGETS["eval"])

    def confidence(data: ImageData, index: torch.Tensor | None = None) -> np.ndarray:
        logits = predict(model, data, CIFAR_NORMALIZE, runtime)
        labels = data.labels.cpu()
        if index is not None:
            logits, labels = logits[index], labels[index]
        return true_label_confidence(logits, labels)

    member, non_member = confidence(split.retain, split.shadow), confidence(split.test)
    target = confidence(split.forget)
    ours, ours_s = timed(lambda: mia_efficacy(member, non_member, target))
    reference, reference_s = timed(lambda: reference_mia(member, non_member, target))
    samples = f"{len(member)}+{len(non_member)} samples, {len(target)} targets"
    report.add("mia", "MIA attack: ours (SVC fit + predict)", ours_s, f"{samples}; MIA {ours:.2f}")
    report.add("mia", "MIA attack: plain sklearn SVC, one predict call", reference_s,
               f"equal to ours: {ours == reference}")
    if ours != reference:
        raise SystemExit(f"MIA differs from the reference SVC: {ours} != {reference}")


def run_ft(report: Report, model: nn.Module, split: Split, sizes: Sizes, runtime: Runtime) -> None:
    from unlearnbench_baselines.unlearners.ft import FineTune
    task = UnlearningTask(forget=split.forget, retain=split.retain, validation=None, num_classes=10,
                          recipe=RECIPE, normalize=CIFAR_NORMALIZE, augment=Augment(crop_padding=4, hflip=True),
                          runtime=runtime, seed=0, mask=None,
                          new_model=lambda: new_model(runtime.device, runtime.channels_last, seed=1))
    timed = timed_unlearn(FineTune(epochs=sizes.ft_epochs), model, task)  # as the harness times it
    report.add("ft", f"FT RTE ({_epochs(sizes.ft_epochs)} on {len(split.retain)} retain images), "
               f"{runtime.precision}", timed.rte, f"warm-up ({timed.warmup_s:.1f} s) excluded, as in "
               f"the harness", TARGETS["ft"])


def run_accuracy(report: Report, train: ImageData, test: ImageData, sizes: Sizes, epochs: int,
                 runtimes: list[Runtime]) -> None:
    if sizes.train is not None:  # small: a test set to match
        test = test.subset(torch.arange(sizes.test))
    test = test.to(runtimes[0].device)
    for runtime in runtimes:
        model = new_model(runtime.device, runtime.channels_last)
        recipe = RECIPE.replace(epochs=epochs, batch_size=sizes.batch_size)
        with runtime.timer() as elapsed:
            fit(model, our_loader(train, runtime, sizes.batch_size, seed=1), recipe, runtime)
        top1 = accuracy(predict(model, test, CIFAR_NORMALIZE, runtime), test.labels.cpu())
        report.add("accuracy", f"test accuracy after {_epochs(epochs)} (step schedule), {runtime.precision}",
                   elapsed.seconds, f"training seconds in 'seconds'; test accuracy {top1:.2f}%",
                   value=f"{elapsed.seconds:.1f}")


# -- main ---------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, required=True,
                   help="folder with CIFAR-10 as train/test parquet files or cifar-10-batches-py/")
    p.add_argument("--size", choices=sorted(SIZES), default="full",
                   help="full: 50k images, the paper's split sizes; small: a few dozen images (CPU check)")
    p.add_argument("--epochs", type=int, default=None, help="timed epochs per setting (default 2, small 1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--parts", default=",".join(p for p in PARTS if p not in OPT_IN),
                   help=f"comma-separated subset of {','.join(PARTS)}; {','.join(OPT_IN)} run only "
                        f"when named (accuracy needs --accuracy-epochs)")
    p.add_argument("--compile-mode", default="reduce-overhead",
                   choices=[m for m in COMPILE_MODES if m != "none"],
                   help="torch.compile mode of the 'compile' part (compilation happens in its warm-up)")
    p.add_argument("--reference-batches", type=int, default=None,
                   help="time only this many batches of the single-process reference epoch and extrapolate")
    p.add_argument("--accuracy-epochs", type=int, default=0, help="train this long in fp32 and bf16 and "
                   "report test accuracy (0: skip)")
    p.add_argument("--output", type=Path, default=None, help="also write the markdown table here")
    args = p.parse_args(argv)
    args.parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        p.error(f"unknown part(s) {unknown}; expected a subset of {list(PARTS)}")
    if args.epochs is None:
        args.epochs = 1 if args.size == "small" else 2
    if args.accuracy_epochs and "accuracy" not in args.parts:
        args.parts.append("accuracy")
    return args


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = SIZES[args.size]
    bf16 = Runtime.resolve(args.device, "bf16")
    fp32 = Runtime.resolve(args.device, "fp32")
    device = bf16.device
    torch.backends.cudnn.benchmark = True  # for every row, the reference-style ones too
    report = Report(show_targets=args.size == "full")
    report.log(f"device {bf16.device_name}, torch {torch.__version__}, size {args.size}, "
               f"parts {','.join(args.parts)}")

    data, decode_s = timed(lambda: Cifar10().load(args.data_root))
    report.add("data", "decode CIFAR-10 (60k images) to uint8 tensors", decode_s, "not part of any epoch")
    train_cpu = data.train if sizes.train is None else data.train.subset(torch.arange(sizes.train))
    train = train_cpu.to(device)

    bf16_epoch, model = None, None
    if "reference" in args.parts:
        run_reference(report, train_cpu, sizes, args, device)
    if "bf16" in args.parts:
        model, bf16_epoch = run_ours(report, train, sizes, args, bf16)
    if "fp32" in args.parts:
        run_ours(report, train, sizes, args, fp32)
    if "loader" in args.parts:
        run_loader_only(report, train, sizes, args, bf16)
    if "plain" in args.parts:
        run_plain(report, train, sizes, args, bf16)
    if "compile" in args.parts:
        compiled = Runtime(bf16.device, "bf16", bf16.channels_last, compile=args.compile_mode)
        run_ours(report, train, sizes, args, compiled, label=f", torch.compile {args.compile_mode}")
    if bf16_epoch is not None and sizes.train is None:
        report.add("retrain", f"Retrain, {REFERENCE_EPOCHS} epochs on 40.5k retain images, bf16",
                   bf16_epoch * REFERENCE_EPOCHS * sizes.retain / len(train),
                   "EXTRAPOLATED from the bf16 epoch time", TARGETS["retrain"])
    if {"eval", "ft"} & set(args.parts):
        split = class_split(data.train, data.test, sizes, device)
        model = model if model is not None else new_model(device, bf16.channels_last)
        if "eval" in args.parts:
            run_eval(report, model, split, bf16)
        if "ft" in args.parts:
            run_ft(report, model, split, sizes, bf16)
    if "accuracy" in args.parts and args.accuracy_epochs > 0:
        run_accuracy(report, train, data.test, sizes, args.accuracy_epochs, [fp32, bf16])

    table = report.table()
    header = (f"ResNet-18 (CIFAR stem) on CIFAR-10, {bf16.device_name}, torch {torch.__version__}, "
              f"size {args.size}, batch {sizes.batch_size}, {len(train)} training images per epoch")
    print(f"\n{header}\n\n{table}", flush=True)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(f"{header}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
