"""The ``unlearnbench`` command line: ``run``, ``reproduce``, ``audit``, ``tune``, ``verify``,
``ls``, ``leaderboard``, ``plot``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from .components import REGISTRIES, timm_names
from .errors import (ConfigError, DataNotFoundError, DuplicateRecordWarning, MetricNotMeasuredWarning,
                     UnlearnbenchError)
from .params import MAX_SEED

MAX_SEEDS = 10_000


def _key_values(items: Sequence[str] | None, flag: str) -> dict[str, str]:
    result = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r} is invalid: expected KEY=VALUE")
        if key.strip() in result:  # silently keeping the last would hide a typo in a long command
            first, second = (_shown(f"{key.strip()}={v}") for v in (result[key.strip()], value.strip()))
            raise ConfigError(f"{flag} {key.strip()!r} is given twice ({first} and {second}); "
                              f"expected each key once")
        result[key.strip()] = value.strip()
    return result


def _shown(text: str) -> str:
    """``text`` as typed, or quoted when it holds a line break or another unprintable character
    (an error message stays one line)."""
    return text if text.isprintable() else repr(text)


def _names(text: str | None, flag: str) -> list[str]:
    """A comma-separated list of names, each once."""
    names = [n.strip() for n in (text or "").split(",")]
    if text is not None and (not all(names) or len(set(names)) != len(names)):
        raise ConfigError(f"{flag} {text!r} is invalid: expected comma-separated names, each once")
    return names if text is not None else []


def _seeds(text: str, flag: str = "--seeds") -> tuple[int, ...]:
    """Comma-separated seeds, each an integer in 0..MAX_SEED, each once; an empty entry
    (``0,,1``, ``0,``) is an error, not a seed to skip."""
    entries = [s.strip() for s in text.split(",")]
    if not any(entries):
        raise ConfigError(f"{flag} is empty: expected at least one seed, e.g. 0,1,2")
    if not all(re.fullmatch(r"[+-]?[0-9]+", s) for s in entries):
        raise ConfigError(f"{flag} {text!r} is invalid: expected comma-separated integers, e.g. 0,1,2")
    for entry in entries:  # the digit count first: int() of a 5,000-digit string raises
        if len(entry.lstrip("+-0")) > len(str(MAX_SEED)) or not 0 <= int(entry) <= MAX_SEED:
            raise ConfigError(f"{flag} {text!r} is invalid: seed {entry} is out of range; expected "
                              f"integers 0 to {MAX_SEED}")
    seeds = tuple(int(s) for s in entries)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{flag} {text!r} repeats a seed")
    return seeds


def _seed_flags(args: argparse.Namespace) -> tuple[int, ...]:
    """``--seeds 0,3,7`` (the seeds themselves) or ``--num-seeds N`` (seeds 0..N-1); default seed 0."""
    if args.seeds is not None and args.num_seeds is not None:
        raise ConfigError(f"--seeds {args.seeds} and --num-seeds {args.num_seeds} both given; "
                          f"expected one of them")
    if args.num_seeds is not None:
        if not 1 <= args.num_seeds <= MAX_SEEDS:
            raise ConfigError(f"--num-seeds {args.num_seeds} is invalid: expected 1 to {MAX_SEEDS}")
        return tuple(range(args.num_seeds))
    return _seeds(args.seeds if args.seeds is not None else "0")


def _seed_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", default=None, metavar="S1,S2,...",
                        help="comma-separated trial seeds, e.g. 0,1,2 (default: 0)")
    parser.add_argument("--num-seeds", default=None, type=int, metavar="N",
                        help="seeds 0..N-1 (instead of --seeds)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearnbench", description=(
        "Benchmark machine-unlearning methods: train (or load) the original model, optionally "
        "prune it, unlearn a forget set, and measure every registered metric (UA, MIA-Efficacy, "
        "RA, TA, RTE and any plugin's: `unlearnbench ls metrics`)."))
    parser.add_argument("--debug", action="store_true",
                        help="on an error, print the full traceback before the one-line message")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one method on one setting (several seeds)")
    run.add_argument("--method", required=True, help="unlearner name (see `unlearnbench ls unlearners`)")
    run.add_argument("--baselines", default=None, metavar="M1,M2,...",
                     help="also run these methods (their defaults) on the same setting and seeds, "
                          "e.g. retrain,none: what the method is measured against")
    run.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="unlearner hyperparameter")
    _setting_options(run)
    _seed_options(run)
    run.add_argument("--holdout", default="test", choices=["test", "validation"],
                     help="what TA, HA and the MIA's non-members measure on: the test set (default) "
                          "or the validation hold-out (as a tuning trial does)")
    run.add_argument("--output", type=Path, default=Path("results"), help="folder for run records")
    run.add_argument("--save-model", type=Path, default=None, metavar="DIR",
                     help="also save each trial's unlearned model, mask and evaluation indices as "
                          "DIR/RUN_ID.pt (read back with unlearnbench.run.trial.load_model)")
    _execution_flags(run)

    rep = sub.add_parser("reproduce", help="run one of the paper's experiments (a recipe)")
    rep.add_argument("recipe", nargs="?", help="a bundled recipe's name or a recipe .toml file")
    rep.add_argument("--list", action="store_true", help="list the bundled recipes")
    rep.add_argument("--scale", default="full", help="full, or small: a subset and a smaller model "
                                                     "that run on a CPU")
    _seed_options(rep)
    rep.add_argument("--output", type=Path, default=None,
                     help="results folder (default: leaderboard/RECIPE[-SCALE])")
    rep.add_argument("--transfer-root", type=Path, default=None,
                     help="local folder of a recipe's transfer dataset (default: --data-root)")
    rep.add_argument("--dry-run", action="store_true", help="list the runs, run nothing")
    rep.add_argument("--no-plots", action="store_true", help="skip drawing the pictures")
    _execution_flags(rep)

    aud = sub.add_parser("audit", help="a population audit (KLoM, U-LiRA): many models per method")
    aud.add_argument("recipe", nargs="?", help="a bundled audit's name or an audit .toml file")
    aud.add_argument("--list", action="store_true", help="list the bundled audits")
    aud.add_argument("--scale", default="full", help="full, or small: a subset and a smaller model")
    aud.add_argument("--models", type=int, default=None, metavar="N",
                     help="models per population (originals, oracles, shadows; default: the recipe's)")
    aud.add_argument("--output", type=Path, default=None,
                     help="results folder (default: leaderboard/audit-NAME[-SCALE])")
    aud.add_argument("--dry-run", action="store_true", help="print the cost, run nothing")
    aud.add_argument("--no-plots", action="store_true", help="skip drawing the pictures")
    _execution_flags(aud)

    tune = sub.add_parser("tune", help="tune methods under the declared protocol (same budget for each)")
    tune.add_argument("methods", nargs="*", metavar="METHOD",
                      help="unlearners to tune on the setting the options give (or --recipe)")
    tune.add_argument("--recipe", default=None,
                      help="tune every method of a recipe's grid at each of its cells (pruning x forget)")
    tune.add_argument("--audit", default=None, metavar="NAME",
                      help="tune an audit's methods on its own setting, one cell per audited pruning")
    tune.add_argument("--scale", default="full", help="with --recipe or --audit: full or small")
    tune.add_argument("--cell", action="append", default=None, metavar="PRUNING|FORGET",
                      help="with --recipe or --audit: tune only this cell (repeatable; e.g. "
                           "'imp:0.95|class:0'; a cell the study lacks is an error that lists them all)")
    tune.add_argument("--trials", type=int, default=8, help="candidates per method and cell (default 8)")
    tune.add_argument("--sampler", default="qmc",
                      help="qmc (default: scrambled Sobol), random, tpe or grid (evenly spaced points)")
    tune.add_argument("--sampler-seed", type=int, default=0, help="the sampler's seed (default 0)")
    tune.add_argument("--tuning-seeds", default="0", metavar="S1,S2,...",
                      help="trial seeds every candidate runs (default 0)")
    tune.add_argument("--tolerance", type=float, default=5.0,
                      help="oracle-free: points of validation accuracy a candidate may lose (default 5)")
    tune.add_argument("--criterion", default="oracle",
                      help="what tpe optimizes: oracle or oracle-free (both are always reported)")
    tune.add_argument("--values", type=Path, default=None,
                      help="write the chosen values here (default with --recipe: the file the "
                           "recipe's scale declares)")
    tune.add_argument("--output", type=Path, default=None,
                      help="study folder (default: tuning/ or leaderboard/RECIPE[-SCALE]/tuning)")
    tune.add_argument("--dry-run", action="store_true", help="print the cost, run nothing")
    _setting_options(tune)
    _execution_flags(tune)

    ver = sub.add_parser("verify", help="re-execute recorded trials from their configuration and "
                                        "check their results (bit-identical on the CPU)")
    ver.add_argument("records", type=Path, help="a record file, or a folder of records (searched recursively)")
    ver.add_argument("--data-root", type=Path, default=None,
                     help="local folder of the records' dataset (its files must be the recorded ones)")
    ver.add_argument("--cache-dir", type=Path, default=None,
                     help="reuse the models cached here (default: a fresh cache: every model trains again)")
    ver.add_argument("--no-write", action="store_true",
                     help="do not write verified.json beside the records")

    ls = sub.add_parser("ls", help="list registered components and where they come from")
    ls.add_argument("kind", nargs="?",
                    choices=["datasets", "models", "pruners", "unlearners", "executors", "metrics",
                             "scenarios", "probes"],
                    help="metrics: with each one's declaration (imports the metrics)")
    ls.add_argument("pattern", nargs="?", default=None, help="wildcard filter, e.g. '*ft*'")

    board = sub.add_parser("leaderboard", help="render run records as a table")
    board.add_argument("results", type=Path, help="folder of run records (searched recursively)")
    board.add_argument("--format", default="markdown", choices=["markdown", "csv", "latex", "html"],
                       help="html: a static site (needs --output FOLDER)")
    board.add_argument("--output", type=Path, default=None,
                       help="write to this file instead (html: the site's folder)")

    plot = sub.add_parser("plot", help="draw the paper's pictures (radar, sparsity sweep, backdoor ASR)")
    plot.add_argument("results", type=Path, help="folder of run records (searched recursively)")
    plot.add_argument("--output", type=Path, default=Path("plots"), help="folder for the pictures")
    plot.add_argument("--format", default="png", choices=["png", "svg"])
    plot.add_argument("--dpi", type=int, default=150, help="resolution of PNG pictures (default 150)")
    for command in sub.choices.values():  # also after the command: `unlearnbench run --debug ...`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="on an error, print the full traceback before the one-line message")
    return parser


def _setting_options(parser: argparse.ArgumentParser) -> None:
    """What a trial runs on (data, model, pruning, forget set): shared by ``run`` and ``tune``."""
    parser.add_argument("--dataset", default="digits", help="dataset name (default: digits, bundled)")
    parser.add_argument("--dataset-param", action="append", metavar="KEY=VALUE")
    parser.add_argument("--arch", default=None, help="model: a registered name or any timm architecture "
                                                     "(default: the dataset's)")
    parser.add_argument("--label", default=None,
                        help="row name in tables, for a method run in several variants (default: --method)")
    parser.add_argument("--forget", default="class:0",
                        help="class:K, random:FRACTION, random:COUNT, backdoor:FRACTION[,target=T] or "
                          "backdoor:COUNT[,target=T]; a number with a decimal point is a fraction "
                          "in (0, 1), a whole number a count of examples")
    parser.add_argument("--pruner", default=None, help="prune first (see `unlearnbench ls pruners`)")
    parser.add_argument("--sparsity", default=None, type=float, help="target sparsity for --pruner")
    parser.add_argument("--pruner-param", action="append", metavar="KEY=VALUE")
    parser.add_argument("--train", action="append", metavar="KEY=VALUE",
                        help="override the original model's recipe (epochs, lr, batch_size, ...)")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="per-class validation hold-out of the training set (default 0.1, as the paper)")
    parser.add_argument("--train-size", type=int, default=None,
                        help="use a stratified subset of this many training images")
    parser.add_argument("--test-size", type=int, default=None,
                        help="use a stratified subset of this many test images")
    parser.add_argument("--probe", action=_InOrder, dest="probe_args", metavar="NAME[:KEY=VALUE,...]",
                        help="also measure this probe before/after unlearning (see `unlearnbench ls "
                          "probes`), e.g. transfer:dataset=svhn; repeatable")
    parser.add_argument("--probe-param", action=_InOrder, dest="probe_args", metavar="KEY=VALUE",
                        help="a parameter of the --probe given before it")
    parser.add_argument("--transfer", default=None, metavar="DATASET",
                        help="shorthand for --probe transfer:dataset=DATASET (linear-probe accuracy "
                          "on DATASET's features)")
    parser.add_argument("--transfer-param", action="append", metavar="KEY=VALUE",
                        help="with --transfer: a parameter of the downstream dataset")
    parser.add_argument("--transfer-root", type=Path, default=None,
                        help="with --transfer: the downstream dataset's folder (default: --data-root)")


def _execution_flags(parser: argparse.ArgumentParser) -> None:
    """Where the data is and how to run: shared by ``run`` and ``reproduce``."""
    parser.add_argument("--data-root", type=Path, default=None, help="local folder of the dataset")
    parser.add_argument("--download", action="store_true", help="allow downloading a missing dataset")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/unlearnbench"))
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="training precision; auto: bf16 autocast on CUDA, fp32 on CPU (evaluation is always fp32)")
    parser.add_argument("--compile", default="none",
                        choices=["none", "default", "reduce-overhead", "max-autotune-no-cudagraphs"],
                        help="torch.compile the training loop's model (warm-up excluded from RTE)")
    parser.add_argument("--executor", default="local",
                        help="where the trials run: local (default, in-process) or ray "
                             "(see `unlearnbench ls executors`)")
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="--executor ray: a running Ray cluster (default: a local instance)")
    parser.add_argument("--cpus-per-trial", type=float, default=None, metavar="N",
                        help="CPUs (and torch threads) a trial uses (ray default 1; local: all)")
    parser.add_argument("--gpus-per-trial", type=float, default=None, metavar="G",
                        help="--executor ray: GPUs a trial reserves, e.g. 0.25 for four per GPU")
    parser.add_argument("--executor-param", action="append", metavar="KEY=VALUE",
                        help="any other parameter of the executor")


def _execution(args: argparse.Namespace) -> dict:
    return dict(data_root=args.data_root, download=args.download, cache_dir=args.cache_dir,
                device=args.device, precision=args.precision, compile=args.compile)


class _InOrder(argparse.Action):
    """Keeps ``--probe`` and ``--probe-param`` in one list, in command-line order, so that each
    parameter belongs to the probe before it."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items.append((option_string, values))
        setattr(namespace, self.dest, items)


def _probes(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """``--probe NAME[:KEY=VALUE,...]`` and ``--probe-param KEY=VALUE`` (for the probe before
    it), and the ``--transfer`` shorthand, as name -> parameters."""
    given: dict[str, list[str]] = {}
    current = None
    for flag, text in getattr(args, "probe_args", None) or []:
        if flag == "--probe":
            current, _, inline = text.partition(":")
            current = current.strip()
            if not current or current in given:
                raise ConfigError(f"--probe {text!r} is invalid: expected NAME[:KEY=VALUE,...], "
                                  f"each probe once")
            given[current] = [item for item in inline.split(",") if item.strip()]
        elif current is None:
            raise ConfigError(f"--probe-param {text!r} comes before any --probe; expected "
                              f"--probe NAME --probe-param KEY=VALUE")
        else:
            given[current].append(text)
    probes = {name: _key_values(items, f"--probe {name}") for name, items in given.items()}
    if args.transfer is None and (args.transfer_param or args.transfer_root):
        raise ConfigError("--transfer-param and --transfer-root need --transfer DATASET")
    if args.transfer is not None:
        if "transfer" in probes:
            raise ConfigError("--transfer and --probe transfer both given; expected one of them")
        probes["transfer"] = {"dataset": args.transfer,
                              **_key_values(args.transfer_param, "--transfer-param"),
                              **({"root": str(args.transfer_root)} if args.transfer_root else {})}
    return probes


def _executor(args: argparse.Namespace):
    """The executor the flags ask for, validated before any trial starts."""
    # imported when the command runs: --help, `ls` and argument errors stay free of torch
    from .run.executors import make_executor

    params = _key_values(args.executor_param, "--executor-param")
    flags = {"address": ("--ray-address", args.ray_address),
             "cpus_per_trial": ("--cpus-per-trial", args.cpus_per_trial),
             "gpus_per_trial": ("--gpus-per-trial", args.gpus_per_trial)}
    for key, (flag, value) in flags.items():
        if value is None:
            continue
        if args.executor == "local" and key == "cpus_per_trial":
            if value != int(value) or value < 1:
                raise ConfigError(f"--cpus-per-trial {value:g} is invalid for --executor local: "
                                  f"expected a whole number of CPUs >= 1")
            value = int(value)
        elif args.executor == "local":
            raise ConfigError(f"{flag} needs --executor ray (or an executor that takes {key})")
        params[key] = value
    return make_executor(args.executor, params)


def cmd_run(args: argparse.Namespace) -> int:
    fields = dict(  # the command line's own errors come before torch is imported
        method=args.method, method_params=_key_values(args.param, "--param"), label=args.label,
        dataset=args.dataset, dataset_params=_key_values(args.dataset_param, "--dataset-param"),
        arch=args.arch, pruner=args.pruner, sparsity=args.sparsity,
        pruner_params=_key_values(args.pruner_param, "--pruner-param"), forget=args.forget,
        seeds=_seed_flags(args), train_params=_key_values(args.train, "--train"),
        val_fraction=args.val_fraction, train_size=args.train_size, test_size=args.test_size,
        probes=_probes(args), holdout=args.holdout, output_dir=args.output, save_model=args.save_model,
        **_execution(args))
    # imported when the command runs: --help, `ls` and argument errors stay free of torch
    from .report.leaderboard import render
    from .report.records import load_records
    from .run.api import run_trials
    from .run.config import RunConfig

    config = RunConfig(**fields)
    configs = [config] + [dataclasses.replace(config, method=name, method_params={}, label=None)
                          for name in _names(args.baselines, "--baselines") if name != config.method]
    records = _finishing(lambda: run_trials(configs, log=_log, executor=_executor(args)), args.output,
                         args.cache_dir)
    for r in records:
        if r.diverged:
            print(f"{r.run_id}: {r.metric_summary()} ({r.config.get('divergence')})")
            continue
        print(f"{r.run_id}: {r.metric_summary()}  sparsity {r.sparsity:.3f}")
    print(f"\nrecords in {args.output}/ (all runs there, `unlearnbench leaderboard {args.output}`):\n")
    print(render(load_records(args.output, log=_log)))
    if diverged := [r for r in records if r.diverged]:
        raise DivergedRuns(f"{len(diverged)} of {len(records)} runs diverged (non-finite weights or "
                           f"logits; lower the learning rate?); their records, marked diverged, are "
                           f"in {args.output}/")
    return 0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _finishing(work, output: Path, cache: Path | None = None):
    """``work()``, with a filesystem failure after the compute turned into one line that says
    where the finished results are (and that the cache folder failed, when it did)."""
    try:
        return work()
    except UnlearnbenchError:  # DataNotFoundError is an OSError too, and says all it needs
        raise
    except OSError as exc:
        done = len(list(Path(output).rglob("*.json"))) if Path(output).is_dir() else 0
        where = ""
        if cache is not None and exc.filename and _inside(Path(str(exc.filename)), Path(cache).expanduser()):
            where = f" (in the cache folder --cache-dir {Path(cache).expanduser()})"
        raise UnlearnbenchError(f"{_os_message(exc)}{where}; the finished records are in {output}/ "
                                f"({done} JSON file{'s' if done != 1 else ''} there)") from exc


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve(strict=False).is_relative_to(folder.resolve(strict=False))


def _os_message(exc: OSError) -> str:
    return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc.strerror or exc)


def cmd_reproduce(args: argparse.Namespace) -> int:
    # imported when the command runs: --help, `ls` and argument errors stay free of torch
    from .run.recipes import (bundled_recipes, default_output, load_recipe, pending, pruning_label,
                              reproduce)

    if args.list or not args.recipe:
        rows = [(r.name, ", ".join(r.scale_names), r.description.split(". ")[0]) for r in bundled_recipes()]
        print(tabulate(rows, headers=["recipe", "scales", "what"], tablefmt="simple"))
        return 0
    recipe = load_recipe(args.recipe)
    output = args.output or default_output(recipe, args.scale)
    seeds = _seed_flags(args)
    # --transfer-root: the shorthand for the transfer probe's root, wherever a recipe asks for it
    probe_params = {"transfer": {"root": str(args.transfer_root)}} if args.transfer_root else {}
    if args.dry_run:
        configs = recipe.configs(scale=args.scale, seeds=seeds, output_dir=output / "records",
                                 probe_params=probe_params, **_execution(args))
        for c in pending(configs, output / "records"):
            print(f"{c.label or c.method:28s} {pruning_label(c):12s} {c.forget:14s} {c.dataset}/{c.arch} "
                  f"seeds to run: {','.join(map(str, c.seeds)) or '(all done)'}")
        print(f"{len(configs)} settings x {len(seeds)} seeds -> {output}/records")
        return 0
    executor = _executor(args)
    summary = _finishing(lambda: reproduce(recipe, output=output, scale=args.scale, seeds=seeds,
                                           plots=not args.no_plots, executor=executor, log=_log,
                                           probe_params=probe_params, **_execution(args)),
                         output / "records", args.cache_dir)
    print((output / "table.md").read_text())
    if summary.get("diverged"):
        raise DivergedRuns(f"{summary['diverged']} runs diverged (non-finite weights or logits); "
                           f"their records, marked diverged, are in {output / 'records'}/")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    # imported when the command runs: --help, `ls` and argument errors stay free of torch
    from .run.audit import bundled_audits, load_audit, run_audit

    if args.list or not args.recipe:
        specs = [load_audit(p.stem) for p in bundled_audits()]
        print(tabulate([(s.name, s.description.split(". ")[0]) for s in specs], headers=["audit", "what"],
                       tablefmt="simple"))
        return 0
    if args.models is not None and args.models < 2:
        raise ConfigError(f"--models {args.models} is invalid: expected at least 2 models per population")
    execution = _execution(args)
    spec = load_audit(args.recipe, scale=args.scale, models=args.models, **execution)
    output = args.output or Path("leaderboard") / f"audit-{spec.name}"
    executor = None if args.dry_run else _executor(args)
    _finishing(lambda: run_audit(spec, output=output, executor=executor, log=_log,
                                 plots=not args.no_plots, dry_run=args.dry_run), output / "records",
               args.cache_dir)
    if not args.dry_run:
        print((output / "table.md").read_text())
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    # imported when the command runs: --help, `ls` and argument errors stay free of torch
    from .run.tuning import Protocol

    protocol = Protocol(trials=args.trials, sampler=args.sampler, seed=args.sampler_seed,
                        seeds=_seeds(args.tuning_seeds, "--tuning-seeds"), tolerance=args.tolerance,
                        criterion=args.criterion)
    if [bool(args.methods), bool(args.recipe), bool(args.audit)].count(True) != 1:
        raise ConfigError("unlearnbench tune needs METHOD..., --recipe NAME or --audit NAME (one of them)")
    fields = dict(dataset=args.dataset, dataset_params=_key_values(args.dataset_param, "--dataset-param"),
                  arch=args.arch, pruner=args.pruner, sparsity=args.sparsity,
                  pruner_params=_key_values(args.pruner_param, "--pruner-param"), forget=args.forget,
                  train_params=_key_values(args.train, "--train"), val_fraction=args.val_fraction,
                  train_size=args.train_size, test_size=args.test_size, **_execution(args))
    # imported when the command runs: --help, `ls` and argument errors stay free of torch
    from .run.audit import audit_cells
    from .run.recipes import recipe_cells
    from .run.tuning import select_cells, setting_cells, tune

    if args.recipe:
        cells, values, output = recipe_cells(args.recipe, args.scale, execution=_execution(args))
    elif args.audit:
        cells, values, output = audit_cells(args.audit, args.scale, execution=_execution(args))
    else:
        cells, values, output = setting_cells(args.methods, fields), None, Path("tuning")
    if args.cell:
        if not (args.recipe or args.audit):
            raise ConfigError("--cell names cells of a recipe or an audit: give --recipe or --audit")
        cells = select_cells(cells, args.cell)
    output = args.output or output
    values = args.values or values
    executor = None if args.dry_run else _executor(args)
    _finishing(lambda: tune(cells, protocol, output, executor=executor, values=values, log=_log,
                            dry_run=args.dry_run), output / "records", args.cache_dir)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    # imported when the command runs: --help, `ls` and argument errors stay free of torch
    from .run.verify import code_version, verify_path, write_verified

    results = verify_path(args.records, data_root=args.data_root, cache_dir=args.cache_dir, log=_log)
    if not args.no_write:
        for path in write_verified(results, code_version()):
            print(f"wrote {path}")
    failed = [r for r in results if not r.verified]
    if failed:
        print(f"unlearnbench: {len(failed)} of {len(results)} record{'s' if len(results) != 1 else ''} "
              f"failed verification: {', '.join(r.record.run_id for r in failed)}", file=sys.stderr)
        return 1
    print(f"{len(results)} record{'s' if len(results) != 1 else ''} verified")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else list(REGISTRIES)
    for kind in kinds:
        registry = REGISTRIES[kind]
        rows = [(e.name, str(e.origin) + (" (CONFLICT: also " + ", ".join(map(str, e.conflicts)) + ")"
                                          if e.conflicts else ""), e.target)
                for e in registry.entries(args.pattern)]
        headers, unloadable = ["name", "from", "target"], []
        if args.kind == "metrics":  # only when asked: declarations are read by importing the classes
            rows = [(*row, *_declared(registry, row[0], unloadable)) for row in rows]
            headers += ["kind", "label", "unit", "better", "disparity"]
        print(f"{kind}:")
        print(tabulate(rows, headers=headers, tablefmt="simple") if rows else "  (none)")
        for name, reason in unloadable:
            print(f"  {name}: cannot be loaded: {reason}")
        if kind == "models":
            names = timm_names(args.pattern)
            shown = ", ".join(names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")
            print(f"  and any timm architecture by name: {shown or '(none matches)'}")
        print()
    return 0


def _declared(registry, name: str, unloadable: list[tuple[str, str]]) -> tuple[str, ...]:
    """A metric's kind, label, unit, direction and Disparity membership for ``ls metrics``;
    question marks, and the reason added to ``unloadable``, when it cannot be loaded."""
    try:
        d = registry.get(name).declaration()
    except UnlearnbenchError as exc:
        unloadable.append((name, " ".join(str(exc).split())))
        return ("?",) * 5
    better = "closer to Retrain" if d.direction == "retrain" else d.direction
    return (d.needs, d.label, d.unit, better, "yes" if d.in_disparity else "no")


def cmd_leaderboard(args: argparse.Namespace) -> int:
    # imported when the command runs: --help, `ls` and argument errors stay free of torch
    from .report.leaderboard import render
    from .report.records import load_records
    from .storage import atomic_write_text, check_writable_file

    if args.format == "html":
        return _leaderboard_site(args)
    if (args.results / "audit.json").is_file():  # a population audit: its own table
        return _audit_table(args)
    if args.output:
        check_writable_file(args.output, "--output")
    text = render(load_records(args.results, log=_log), args.format)
    if args.output:
        atomic_write_text(args.output, text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0


def _audit_table(args: argparse.Namespace) -> int:
    # imported when the command runs: --help, `ls` and argument errors stay free of torch
    from .report.audit import render_audit
    from .storage import atomic_write_text

    if args.format != "markdown":
        raise ConfigError(f"--format {args.format} is not available for a population audit "
                          f"({args.results / 'audit.json'}): expected markdown")
    text = render_audit(json.loads((args.results / "audit.json").read_text()))
    if args.output:
        atomic_write_text(args.output, text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0


def _leaderboard_site(args: argparse.Namespace) -> int:
    # imported when the command runs: --help, `ls` and argument errors stay free of torch
    from .report.site import build_site

    if args.output is None:
        raise ConfigError("--format html writes a folder: expected --output SITE_FOLDER")
    pages = build_site(args.results, args.output, log=print)
    print(f"wrote {len(pages)} pages to {args.output}/ (open {args.output / 'index.html'})")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    # imported when the command runs: --help, `ls` and argument errors stay free of torch
    from .report.plots import plot_all
    from .report.records import load_records
    from .storage import check_writable_folder

    check_writable_folder(args.output, "--output")
    records = load_records(args.results, log=_log)
    if not records:
        raise DataNotFoundError(f"no run records (*.json) under {args.results}; nothing to plot")
    paths = plot_all(records, args.output, args.format, dpi=args.dpi, log=print)
    print(f"wrote {len(paths)} picture{'s' if len(paths) != 1 else ''} to {args.output}/:")
    for path in paths:
        print(f"  {path.name}")
    return 0


def _one_line_warnings() -> None:
    """Our own warnings (e.g. a trial recorded twice) print as one line, like errors."""
    show = warnings.showwarning
    if getattr(show, "unlearnbench", False):
        return

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (DuplicateRecordWarning, MetricNotMeasuredWarning)):
            print(f"unlearnbench: warning: {message}", file=file or sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    showwarning.unlearnbench = True
    warnings.showwarning = showwarning


class DivergedRuns(UnlearnbenchError):
    """Some runs finished with a diverged model: recorded, and the exit status says so."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"run": cmd_run, "reproduce": cmd_reproduce, "audit": cmd_audit, "tune": cmd_tune,
               "verify": cmd_verify, "ls": cmd_ls, "leaderboard": cmd_leaderboard,
               "plot": cmd_plot}[args.command]
    warnings.simplefilter("default")
    _one_line_warnings()
    try:
        return handler(args)
    except (UnlearnbenchError, OSError) as exc:
        if args.debug:
            traceback.print_exc()
        message = str(exc) if isinstance(exc, UnlearnbenchError) else _os_message(exc)
        print(f"unlearnbench: error: {' '.join(message.split())}", file=sys.stderr)
        return 1 if isinstance(exc, DivergedRuns) else 2
    except KeyboardInterrupt:
        print("unlearnbench: interrupted; no partial record was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
