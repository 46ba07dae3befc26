"""The standardized pipeline of one trial.

original model (trained or loaded from the cache) -> optional pruning (cached too) ->
forget/retain split -> timed unlearning with the mask held fixed -> UA, MIA-Efficacy, RA, TA
(and the probes of the scenario, before and after unlearning) -> one record, written
atomically. Every component comes from a registry; nothing here knows a method, pruner,
dataset or architecture by name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata as md
import platform
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .components import DATASETS, MODELS, PRUNERS, UNLEARNERS, build_model, check_arch
from .backdoor import poison
from .data import Augment, DeviceLoader, ImageData, Normalize, tensor_hash
from .dataset import Dataset, LoadedDataset
from .errors import ConfigError, UnlearnbenchError
from .masks import Mask, weight_sparsity
from .metrics import evaluate
from .probes import BackdoorProbe, Probe, ProbeContext, TransferProbe
from .pruner import Pruner, PruningTask
from .records import Environment, MetricValues, RunRecord, SplitInfo, Timings
from .runtime import Runtime, derive_seed, generator
from .splits import ForgetSpec, Split, make_split, subsample
from .storage import CheckpointCache
from .timing import timed_unlearn
from .training import TrainRecipe, fit
from .unlearner import Unlearner, UnlearningTask

CACHE_FORMAT = 2  # bump when a change to training code makes old cached models stale
REWIND_EPOCH, REFERENCE_EPOCHS = 8, 182  # OMP/IMP rewind point of the reference recipe


@dataclass(frozen=True)
class RunConfig:
    """What to run; names and parameters are validated by :func:`prepare`."""

    method: str
    method_params: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None  # the row's name in tables when a method runs in several variants
    dataset: str = "digits"
    dataset_params: Mapping[str, Any] = field(default_factory=dict)
    arch: str | None = None  # None: the dataset's default
    pruner: str | None = None
    sparsity: float | None = None
    pruner_params: Mapping[str, Any] = field(default_factory=dict)
    forget: str = "class:0"
    seeds: tuple[int, ...] = (0,)
    train_params: Mapping[str, Any] = field(default_factory=dict)  # overrides of the recipe
    val_fraction: float = 0.1
    train_size: int | None = None  # a stratified subset of the training set (same for every seed)
    test_size: int | None = None  # ... and of the test set
    transfer: str | None = None  # a downstream dataset: linear-probe accuracy before/after
    transfer_params: Mapping[str, Any] = field(default_factory=dict)
    transfer_root: Path | None = None  # its local folder (default: data_root)
    data_root: Path | None = None
    download: bool = False
    cache_dir: Path = Path("~/.cache/unlearnbench")
    output_dir: Path = Path("results")
    device: str = "auto"
    precision: str = "auto"
    compile: str = "none"


@dataclass(frozen=True)
class Plan:
    """A validated :class:`RunConfig`: every component resolved and instantiated."""

    config: RunConfig
    dataset: Dataset
    arch: str
    recipe: TrainRecipe
    unlearner: Unlearner
    pruner: Pruner | None
    forget: ForgetSpec
    runtime: Runtime
    cache: CheckpointCache
    transfer: Dataset | None = None


def prepare(config: RunConfig) -> Plan:
    """Resolve and validate everything before any data is read or any model trained."""
    unlearner = UNLEARNERS.get(config.method).from_params(config.method_params)
    dataset = DATASETS.get(config.dataset).from_params(config.dataset_params)
    pruner = None
    if config.pruner is not None:
        pruner = PRUNERS.get(config.pruner).from_params(config.pruner_params)
        if config.sparsity is None or not 0 < config.sparsity < 1:
            raise ConfigError(f"--sparsity {config.sparsity} is invalid: a pruner needs a "
                              f"target sparsity in (0, 1)")
    elif config.sparsity is not None or config.pruner_params:
        raise ConfigError("--sparsity and pruner parameters need --pruner NAME")
    arch = config.arch or dataset.default_arch
    check_arch(arch)
    recipe = dataset.default_recipe().replace(**dict(config.train_params))
    if not config.seeds:
        raise ConfigError("--seeds is empty: expected at least one seed")
    for name in ("train_size", "test_size"):
        if (size := getattr(config, name)) is not None and size < 1:
            raise ConfigError(f"{name}={size} is invalid: expected a positive number of images")
    if config.label is not None and not re.fullmatch(r"[A-Za-z0-9_.+-]+", config.label):
        raise ConfigError(f"label {config.label!r} is invalid: use letters, digits and _ . + -")
    transfer = (DATASETS.get(config.transfer).from_params(config.transfer_params)
                if config.transfer else None)
    return Plan(config, dataset, arch, recipe, unlearner, pruner, ForgetSpec.parse(config.forget),
                Runtime.resolve(config.device, config.precision, config.compile),
                CheckpointCache(config.cache_dir), transfer)


def run(config: RunConfig, *, log: Callable[[str], None] = lambda m: None) -> list[RunRecord]:
    """Run every seed of ``config``; returns the records (also written to ``output_dir``)."""
    plan = prepare(config)
    data = load_data(plan)
    probes = [_transfer_probe(plan, data)] if plan.transfer is not None else []
    return [run_trial(plan, data, seed, log=log, probes=probes) for seed in config.seeds]


def load_data(plan: Plan) -> LoadedDataset:
    """The dataset's tensors, cut to ``train_size``/``test_size`` when the config asks."""
    cfg = plan.config
    data = _load(plan.dataset, cfg.dataset, cfg.data_root, cfg.download, plan.cache)
    return subsample(data, cfg.train_size, cfg.test_size)


def _transfer_probe(plan: Plan, data: LoadedDataset) -> TransferProbe:
    cfg = plan.config
    downstream = _load(plan.transfer, cfg.transfer, cfg.transfer_root or cfg.data_root,
                       cfg.download, plan.cache)
    probe = TransferProbe(cfg.transfer, subsample(downstream, cfg.train_size, cfg.test_size))
    probe.check(data.in_chans, data.image_size)
    return probe


def _load(dataset: Dataset, name: str, root: Path | None, download: bool,
          cache: CheckpointCache) -> LoadedDataset:
    """A dataset's tensors; decoded once per set of files when the dataset fingerprints them."""
    root = Path(root).expanduser() if root else None
    fingerprint = dataset.fingerprint(root)
    if fingerprint is None:
        return dataset.load(root, download)
    description = {"format": CACHE_FORMAT, "kind": "dataset", "layout": 2, "dataset": name,
                   "params": dataset.get_params(), "root": str(root.resolve()),
                   "files": fingerprint}
    cached = cache.load("datasets", description)
    if cached is not None:
        return LoadedDataset(
            ImageData(cached["train_images"], cached["train_labels"]),
            ImageData(cached["test_images"], cached["test_labels"]), tuple(cached["class_names"]),
            Normalize(tuple(cached["mean"]), tuple(cached["std"])),
            Augment(**cached["augment"]))
    data = dataset.load(root, download)
    cache.save("datasets", description, {
        "train_images": data.train.images, "train_labels": data.train.labels,
        "test_images": data.test.images, "test_labels": data.test.labels,
        "class_names": list(data.class_names), "mean": list(data.normalize.mean),
        "std": list(data.normalize.std), "augment": dataclasses.asdict(data.augment)})
    return data


def run_trial(plan: Plan, data: LoadedDataset, seed: int, *,
              log: Callable[[str], None] = lambda m: None, probes: Sequence[Probe] = ()) -> RunRecord:
    runtime = plan.runtime
    split = make_split(data.train.labels, data.test.labels, plan.forget,
                       num_classes=data.num_classes, val_fraction=plan.config.val_fraction, seed=seed)
    train_all = data.train.to(runtime.device)
    probes = list(probes)
    if plan.forget.poisons:  # the original model learns the backdoor from the forget set
        train_all = poison(train_all, split.forget, plan.forget.target)
        probes.insert(0, BackdoorProbe(plan.forget.target))
    new_model = _model_factory(plan, data)

    log(f"[seed {seed}] original model ({plan.arch} on {plan.config.dataset})")
    original, original_s, original_cached, snapshots, model_key = _original(
        plan, data, train_all.subset(split.train), split, seed, new_model)
    model, mask, prune_s, prune_cached = original, None, 0.0, True
    if plan.pruner is not None:
        log(f"[seed {seed}] pruning with {plan.config.pruner} to sparsity {plan.config.sparsity}")
        model, mask, prune_s, prune_cached, model_key = _pruned(
            plan, data, train_all.subset(split.train), seed, new_model, original, snapshots, model_key)
    full_test = data.test.to(runtime.device)
    context = ProbeContext(full_test, data.normalize, runtime)
    before = {key: value for probe in probes
              for key, value in _probe_before(plan, probe, model, context, model_key).items()}

    forget, retain = train_all.subset(split.forget), train_all.subset(split.retain)
    task = UnlearningTask(
        forget=forget, retain=retain,
        validation=train_all.subset(split.validation) if len(split.validation) else None,
        num_classes=data.num_classes, recipe=plan.recipe, normalize=data.normalize,
        augment=data.augment, runtime=runtime, seed=seed,
        mask=mask.to(runtime.device) if mask is not None else None,
        new_model=lambda: new_model(derive_seed(seed, "unlearn/new-model")))

    log(f"[seed {seed}] unlearning with {plan.config.method}")
    torch.manual_seed(derive_seed(seed, "unlearn"))
    timed = timed_unlearn(plan.unlearner, model, task)
    unlearned, rte, warmup_s = timed.model, timed.rte, timed.warmup_s
    if not isinstance(unlearned, nn.Module):
        raise UnlearnbenchError(f"unlearner {plan.config.method!r} returned {type(unlearned).__name__}, "
                                f"expected the unlearned torch.nn.Module")
    if mask is not None and (bad := mask.violations(unlearned)):
        raise UnlearnbenchError(f"unlearner {plan.config.method!r} made {bad} pruned weights non-zero; "
                                f"the mask must stay fixed (train with task.fit, or call task.mask.apply)")

    log(f"[seed {seed}] evaluating")
    test = full_test.subset(split.test)
    shadow = torch.randperm(len(retain), generator=generator(seed, "mia-shadow"))[:len(test)]
    with runtime.timer() as evaluation:
        metrics = evaluate(unlearned, forget=forget, retain=retain, test=test,
                           normalize=data.normalize, runtime=runtime, shadow_index=shadow)
        after = {key: value for probe in probes for key, value in probe.measure(unlearned, context).items()}

    record = _record(plan, data, seed, split, unlearned, metrics, rte,
                     Timings(original_s, original_cached, prune_s, prune_cached, rte, evaluation.seconds, warmup_s),
                     {k: {"before": before[k], "after": after[k]} for k in after})
    record.save(Path(plan.config.output_dir) / f"{record.run_id}.json")
    return record


def _probe_before(plan: Plan, probe: Probe, model: nn.Module, context: ProbeContext,
                  model_key: Mapping[str, Any]) -> dict[str, float]:
    """A probe of the model before unlearning; shared by every method run on that model."""
    description = {"format": CACHE_FORMAT, "kind": "probe", "model": model_key,
                   "probe": probe.identity(), "test": len(context.test)}
    cached = plan.cache.load("probes", description)
    if cached is not None:
        return cached["values"]
    values = probe.measure(model, context)
    plan.cache.save("probes", description, {"values": values})
    return values


# -- the original model ------------------------------------------------------------------
def _model_factory(plan: Plan, data: LoadedDataset) -> Callable[[int], nn.Module]:
    def new_model(init_seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            model = build_model(plan.arch, num_classes=data.num_classes, in_chans=data.in_chans,
                                image_size=data.image_size)
        model = model.to(plan.runtime.device)
        return model.to(memory_format=torch.channels_last) if plan.runtime.channels_last else model
    return new_model


def rewind_epoch(recipe: TrainRecipe) -> int:
    """Epoch 8 of the reference's 182, scaled to the recipe's length (at least 1)."""
    return max(1, round(REWIND_EPOCH * recipe.epochs / REFERENCE_EPOCHS)) if recipe.epochs else 0


def _original(plan: Plan, data: LoadedDataset, train: ImageData, split: Split, seed: int,
              new_model: Callable[[int], nn.Module]):
    description = {
        "format": CACHE_FORMAT, "kind": "original", "dataset": plan.config.dataset,
        "dataset_params": plan.dataset.get_params(), "arch": plan.arch,
        "recipe": plan.recipe.get_params(), "seed": seed, "train_split": split.train_hash,
        "data": data.content_hash,
        "precision": plan.runtime.precision,
    }
    if plan.forget.poisons:  # same indices, different images: the scenario is part of the key
        description["poison"] = {"spec": str(plan.forget), "forget": tensor_hash(split.forget)}
    model = new_model(derive_seed(seed, "original/init"))
    cached = plan.cache.load("originals", description)
    if cached is not None:
        model.load_state_dict(cached["state"], strict=True)
        return model, cached["seconds"], True, cached["snapshots"], description

    snapshots = {0: _cpu_state(model)}
    keep_at = rewind_epoch(plan.recipe)

    def snapshot(epoch: int, m: nn.Module) -> None:
        if epoch == keep_at:
            snapshots[epoch] = _cpu_state(m)

    loader = _train_loader(plan, data, train, seed, "original/batches")
    with plan.runtime.timer() as watch:
        fit(model, loader, plan.recipe, plan.runtime, desc="train original", on_epoch_end=snapshot)
    plan.cache.save("originals", description,
                    {"state": _cpu_state(model), "snapshots": snapshots, "seconds": watch.seconds})
    return model, watch.seconds, False, snapshots, description


def _pruned(plan: Plan, data: LoadedDataset, train: ImageData, seed: int,
            new_model: Callable[[int], nn.Module], original: nn.Module,
            snapshots: Mapping[int, Any], original_key: Mapping[str, Any]):
    description = {"format": CACHE_FORMAT, "kind": "pruned", "original": original_key,
                   "pruner": plan.config.pruner, "pruner_params": plan.pruner.get_params(),
                   "sparsity": plan.config.sparsity}
    model = new_model(derive_seed(seed, "pruned/init"))
    cached = plan.cache.load("pruned", description)
    if cached is not None:
        mask = Mask(cached["mask"])
        model.load_state_dict(cached["state"], strict=True)
        mask.check_model(model)
        return model, mask, cached["seconds"], True, description

    task = PruningTask(
        sparsity=plan.config.sparsity, train=train, recipe=plan.recipe, normalize=data.normalize,
        augment=data.augment, runtime=plan.runtime, seed=seed,
        new_model=lambda: new_model(derive_seed(seed, "pruned/new-model")),
        dense_state=_cpu_state(original), snapshots=snapshots)
    torch.manual_seed(derive_seed(seed, "prune"))
    with plan.runtime.timer() as watch:
        model, mask = plan.pruner.prune(task)
    if mask.violations(model):
        raise UnlearnbenchError(f"pruner {plan.config.pruner!r} returned a model whose pruned "
                                f"weights are not zero")
    plan.cache.save("pruned", description,
                    {"state": _cpu_state(model), "mask": mask.state_dict(), "seconds": watch.seconds})
    return model, mask, watch.seconds, False, description


def _train_loader(plan: Plan, data: LoadedDataset, train: ImageData, seed: int, stream: str):
    return DeviceLoader(train, normalize=data.normalize, batch_size=plan.recipe.batch_size,
                        shuffle=True, augment=data.augment, generator=generator(seed, stream),
                        channels_last=plan.runtime.channels_last)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


# -- the record --------------------------------------------------------------------------
def _record(plan: Plan, data: LoadedDataset, seed: int, split: Split, model: nn.Module, metrics,
            rte: float, timings: Timings, probes: dict[str, dict[str, float]]) -> RunRecord:
    cfg = plan.config
    roles = {"dataset": (DATASETS, cfg.dataset), "unlearner": (UNLEARNERS, cfg.method)}
    if plan.arch in MODELS:
        roles["model"] = (MODELS, plan.arch)
    if cfg.pruner:
        roles["pruner"] = (PRUNERS, cfg.pruner)
    origins = {role: reg.origin(name) for role, (reg, name) in roles.items()}
    packages = {o.package: o.version or "?" for o in origins.values()}
    if "model" not in roles:
        import timm
        packages["timm"] = timm.__version__
    run_id = planned_run_id(plan, seed)
    runtime = plan.runtime
    return RunRecord(
        run_id=run_id, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        dataset=cfg.dataset, arch=plan.arch, forget=str(plan.forget), scenario=plan.forget.scenario,
        method=cfg.method, label=cfg.label, pruner=cfg.pruner, target_sparsity=cfg.sparsity, seed=seed,
        sparsity=weight_sparsity(model),
        metrics=MetricValues(UA=metrics.UA, MIA=metrics.MIA, RA=metrics.RA, TA=metrics.TA, RTE=rte),
        timings=timings,
        split=SplitInfo(split.hash, len(split.train), len(split.validation), len(split.forget),
                        len(split.retain), len(split.test)),
        environment=Environment(
            python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
            unlearnbench=md.version("unlearnbench"), device=str(runtime.device),
            device_name=runtime.device_name, precision=runtime.precision, packages=packages,
            compile=runtime.compile),
        config={"method_params": plan.unlearner.get_params(),
                "dataset_params": plan.dataset.get_params(),
                "pruner_params": plan.pruner.get_params() if plan.pruner else None,
                "recipe": plan.recipe.get_params(), "val_fraction": cfg.val_fraction,
                "train_size": cfg.train_size, "test_size": cfg.test_size, "transfer": cfg.transfer,
                "forget": str(plan.forget), "arch": plan.arch,
                "forget_class_name": (data.class_names[plan.forget.forget_class]
                                      if plan.forget.forget_class is not None else None)},
        components={role: f"{name} ({origins[role]})" for role, (_, name) in roles.items()},
        probes=probes)


def planned_run_id(plan: Plan, seed: int) -> str:
    """The id (and file name) of a trial's record, known before it runs."""
    cfg = plan.config
    pruning = f"{cfg.pruner}{cfg.sparsity:g}" if cfg.pruner else "dense"
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_",
                  f"{cfg.dataset}-{plan.arch}-{plan.forget}-{cfg.label or cfg.method}-{pruning}"
                  f"{_size_tag(cfg)}-seed{seed}")


def _size_tag(cfg: RunConfig) -> str:
    """Runs on a subset of the data get their own ids (and never overwrite full-size runs)."""
    sizes = [f"{k}{v}" for k, v in (("n", cfg.train_size), ("t", cfg.test_size)) if v is not None]
    return "-" + "".join(sizes) if sizes else ""
