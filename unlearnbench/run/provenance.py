"""Provenance: the record of one trial, with the versions and origins of everything it used."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..components import DATASETS, METRICS, MODELS, PROBES, PRUNERS, SCENARIOS, UNLEARNERS
from ..data.dataset import LoadedDataset
from ..data.splits import Split
from ..identity import SHORT, config_identity, trial_identity
from ..report.records import Environment, RunRecord, SplitInfo, Timings, Work
from ..train.masks import weight_sparsity
from .identity import planned_identity, resolved_config

if TYPE_CHECKING:
    from ..metric import MetricDeclaration
    from .config import Plan, RunConfig


def make_record(plan: Plan, data: LoadedDataset, seed: int, split: Split, model: nn.Module,
                metrics: dict[str, float | None], declarations: dict[str, MetricDeclaration],
                timings: Timings, probes: dict[str, dict[str, float]],
                margins: dict[str, list[float]] | None = None, work: Work | None = None) -> RunRecord:
    """The record of one trial; ``metrics`` and ``declarations`` are by metric name, and every
    metric's package joins the record's packages; ``margins``: a population trial's scored margins."""
    cfg = plan.config
    roles = {"dataset": (DATASETS, cfg.dataset), "unlearner": (UNLEARNERS, cfg.method)}
    if plan.arch in MODELS:
        roles["model"] = (MODELS, plan.arch)
    if cfg.pruner:
        roles["pruner"] = (PRUNERS, cfg.pruner)
    roles["scenario"] = (SCENARIOS, plan.forget.kind)
    for name in plan.probes:  # the scenario's probes and those the configuration asks for
        roles[f"probe:{name}"] = (PROBES, name)
    origins = {role: reg.origin(name) for role, (reg, name) in roles.items()}
    packages = {o.package: o.version or "?"
                for o in [*origins.values(), *(METRICS.origin(name) for name in declarations)]}
    if "model" not in roles:
        import timm  # a heavy import, paid only by a run of a timm architecture
        packages["timm"] = timm.__version__
    resolved = resolved_config(plan)
    identity = trial_identity(resolved, seed)
    runtime = plan.runtime
    return RunRecord(
        run_id=_run_id(plan, seed, identity), created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        dataset=cfg.dataset, arch=plan.arch, forget=str(plan.forget), scenario=plan.forget.scenario,
        method=cfg.method, label=cfg.label, pruner=cfg.pruner, target_sparsity=cfg.sparsity, seed=seed,
        sparsity=weight_sparsity(model),
        metrics=dict(metrics), metric_declarations=dict(declarations),
        timings=timings,
        split=SplitInfo(split.hash, len(split.train), len(split.validation), len(split.forget),
                        len(split.retain), len(split.test)),
        environment=Environment(
            python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
            unlearnbench=md.version("unlearnbench"), device=str(runtime.device),
            device_name=runtime.device_name, precision=runtime.precision, packages=packages,
            compile=runtime.compile, unlearnbench_commit=checkout_commit(),
            threads=torch.get_num_threads()),
        config={"method_params": plan.unlearner.get_params(),
                "dataset_params": plan.dataset.get_params(),
                "pruner_params": plan.pruner.get_params() if plan.pruner else None,
                "recipe": plan.recipe.get_params(), "val_fraction": cfg.val_fraction,
                "train_size": cfg.train_size, "test_size": cfg.test_size,
                "probes": {name: dict(params) for name, params in cfg.probes.items()},
                "forget": str(plan.forget), "arch": plan.arch, "holdout": cfg.holdout,
                "forget_class_name": (data.class_names[plan.forget.forget_class]
                                      if plan.forget.forget_class is not None else None)},
        components={role: f"{name} ({origins[role]})" for role, (_, name) in roles.items()},
        probes=probes, margins=margins, work=work, resolved=resolved, identity=identity,
        config_identity=config_identity(resolved), data_hash=data.content_hash)


def planned_run_id(plan: Plan, seed: int) -> str:
    """The id (and file name) of a trial's record, known before it runs: a readable prefix
    and the first digits of the trial's identity (:mod:`unlearnbench.run.identity`), so two
    configurations never share a file."""
    return _run_id(plan, seed, planned_identity(plan, seed))


def _run_id(plan: Plan, seed: int, identity: str) -> str:
    cfg = plan.config
    pruning = f"{cfg.pruner}{cfg.sparsity:g}" if cfg.pruner else "dense"
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_",
                  f"{cfg.dataset}-{plan.arch}-{plan.forget}-{cfg.label or cfg.method}-{pruning}"
                  f"{_size_tag(cfg)}-seed{seed}-{identity[:SHORT]}")


def _size_tag(cfg: RunConfig) -> str:
    """Runs on a subset of the data get their own ids (and never overwrite full-size runs)."""
    sizes = [f"{k}{v}" for k, v in (("n", cfg.train_size), ("t", cfg.test_size)) if v is not None]
    return "-" + "".join(sizes) if sizes else ""


def checkout_commit(package_dir: Path = Path(__file__).resolve().parents[1]) -> str | None:
    """The commit of the git checkout that ``package_dir`` (the imported ``unlearnbench``
    folder) belongs to, with ``-dirty`` when tracked files differ from it; None when the package
    is not imported from the top of a checkout (e.g. installed from a wheel) or git is missing."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(package_dir), *args], capture_output=True, text=True,
                              check=True, timeout=30, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
                              ).stdout.strip()
    try:
        top = Path(git("rev-parse", "--show-toplevel")).resolve()
        if top != package_dir.resolve().parent:  # a package installed inside some other repository
            return None
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")
