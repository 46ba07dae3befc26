"""The ``unlearnbench`` command line: ``run``, ``ls``, ``leaderboard``."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError, UnlearnbenchError


def _key_values(items: Sequence[str] | None, flag: str) -> dict[str, str]:
    result = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r} is invalid: expected KEY=VALUE")
        result[key.strip()] = value.strip()
    return result


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--seeds {text!r} is invalid: expected comma-separated integers, e.g. 0,1,2") from None
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r} repeats a seed")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unlearnbench", description=(
        "Benchmark machine-unlearning methods: train (or load) the original model, optionally "
        "prune it, unlearn a forget set, and measure UA, MIA-Efficacy, RA, TA and RTE."))
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one method on one setting (several seeds)")
    run.add_argument("--method", required=True, help="unlearner name (see `unlearnbench ls unlearners`)")
    run.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="unlearner hyperparameter")
    run.add_argument("--dataset", default="digits", help="dataset name (default: digits, bundled)")
    run.add_argument("--dataset-param", action="append", metavar="KEY=VALUE")
    run.add_argument("--arch", default=None, help="model: a registered name or any timm architecture "
                                                  "(default: the dataset's)")
    run.add_argument("--forget", default="class:0", help="class:K, random:FRACTION or random:COUNT")
    run.add_argument("--seeds", default="0", type=str, help="comma-separated trial seeds (default: 0)")
    run.add_argument("--pruner", default=None, help="prune first (see `unlearnbench ls pruners`)")
    run.add_argument("--sparsity", default=None, type=float, help="target sparsity for --pruner")
    run.add_argument("--pruner-param", action="append", metavar="KEY=VALUE")
    run.add_argument("--train", action="append", metavar="KEY=VALUE",
                     help="override the original model's recipe (epochs, lr, batch_size, ...)")
    run.add_argument("--val-fraction", type=float, default=0.1,
                     help="per-class validation hold-out of the training set (default 0.1, as the paper)")
    run.add_argument("--data-root", type=Path, default=None, help="local folder of the dataset")
    run.add_argument("--download", action="store_true", help="allow downloading a missing dataset")
    run.add_argument("--cache-dir", type=Path, default=Path("~/.cache/unlearnbench"))
    run.add_argument("--output", type=Path, default=Path("results"), help="folder for run records")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                     help="auto: bf16 autocast on CUDA, fp32 on CPU")
    run.add_argument("--compile", default="none",
                     choices=["none", "default", "reduce-overhead", "max-autotune-no-cudagraphs"],
                     help="torch.compile the training loop's model (warm-up excluded from RTE)")

    ls = sub.add_parser("ls", help="list registered components and where they come from")
    ls.add_argument("kind", nargs="?", choices=["datasets", "models", "pruners", "unlearners"])
    ls.add_argument("pattern", nargs="?", default=None, help="wildcard filter, e.g. '*ft*'")

    board = sub.add_parser("leaderboard", help="render run records as a table")
    board.add_argument("results", type=Path, help="folder of run records (searched recursively)")
    board.add_argument("--format", default="markdown", choices=["markdown", "csv", "latex"])
    board.add_argument("--output", type=Path, default=None, help="write to this file instead")

    plot = sub.add_parser("plot", help="draw the paper's pictures (radar, sparsity sweep, backdoor ASR)")
    plot.add_argument("results", type=Path, help="folder of run records (searched recursively)")
    plot.add_argument("--output", type=Path, default=Path("plots"), help="folder for the pictures")
    plot.add_argument("--format", default="png", choices=["png", "svg"])
    plot.add_argument("--dpi", type=int, default=150, help="resolution of PNG pictures (default 150)")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from .harness import RunConfig, run
    from .leaderboard import render
    from .records import load_records

    config = RunConfig(
        method=args.method, method_params=_key_values(args.param, "--param"),
        dataset=args.dataset, dataset_params=_key_values(args.dataset_param, "--dataset-param"),
        arch=args.arch, pruner=args.pruner, sparsity=args.sparsity,
        pruner_params=_key_values(args.pruner_param, "--pruner-param"), forget=args.forget,
        seeds=_seeds(args.seeds), train_params=_key_values(args.train, "--train"),
        val_fraction=args.val_fraction, data_root=args.data_root, download=args.download,
        cache_dir=args.cache_dir, output_dir=args.output, device=args.device, precision=args.precision,
        compile=args.compile)
    records = run(config, log=lambda m: print(m, file=sys.stderr, flush=True))
    for r in records:
        m = r.metrics
        print(f"{r.run_id}: UA {m.UA:.2f}  MIA-Efficacy {m.MIA:.2f}  RA {m.RA:.2f}  TA {m.TA:.2f}  "
              f"RTE {m.RTE:.2f}s  sparsity {r.sparsity:.3f}")
    print(f"\nrecords in {args.output}/ (all runs there, `unlearnbench leaderboard {args.output}`):\n")
    print(render(load_records(args.output)))
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .components import REGISTRIES, timm_names

    kinds = [args.kind] if args.kind else list(REGISTRIES)
    for kind in kinds:
        registry = REGISTRIES[kind]
        rows = [(e.name, str(e.origin) + (" (CONFLICT: also " + ", ".join(map(str, e.conflicts)) + ")"
                                          if e.conflicts else ""), e.target)
                for e in registry.entries(args.pattern)]
        print(f"{kind}:")
        print(tabulate(rows, headers=["name", "from", "target"], tablefmt="simple") if rows else "  (none)")
        if kind == "models":
            names = timm_names(args.pattern)
            shown = ", ".join(names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")
            print(f"  and any timm architecture by name: {shown or '(none matches)'}")
        print()
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from .leaderboard import render
    from .records import load_records
    from .storage import atomic_write_text

    text = render(load_records(args.results), args.format)
    if args.output:
        atomic_write_text(args.output, text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .errors import DataNotFoundError
    from .plots import plot_all
    from .records import load_records

    records = load_records(args.results)
    if not records:
        raise DataNotFoundError(f"no run records (*.json) under {args.results}; nothing to plot")
    paths = plot_all(records, args.output, args.format, dpi=args.dpi, log=print)
    print(f"wrote {len(paths)} picture{'s' if len(paths) != 1 else ''} to {args.output}/:")
    for path in paths:
        print(f"  {path.name}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"run": cmd_run, "ls": cmd_ls, "leaderboard": cmd_leaderboard,
               "plot": cmd_plot}[args.command]
    warnings.simplefilter("default")
    try:
        return handler(args)
    except UnlearnbenchError as exc:
        print(f"unlearnbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unlearnbench: interrupted; no partial record was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
