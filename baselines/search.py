"""A documented, reproducible search for hyperparameters the reference leaves undocumented.

Used to pick the defaults of FF's ``alpha``, IU's ``alpha`` and to report sparse FT's
``gamma`` on the bundled ``digits`` dataset. Every candidate runs through the standard
harness (one grid of trials on an executor, ``--executor local|ray``), so it sees exactly
the benchmark's data, splits, original model (cached) and mask. The criterion never touches the test set:

    score = mean over seeds of max( |UA - UA_ref|, |RA - RA_ref| )

where UA and RA are measured on the forget and retain sets and "ref" is Retrain (exact
unlearning) at the same seed, run through the same harness. In class-wise forgetting this
rewards forgetting the class (Retrain's UA is 100) while keeping the retain set (Retrain's
RA). The worse of the two gaps counts, not their mean. TA and MIA-Efficacy are excluded:
both use the test set (MIA's attack is trained on it).

A utility constraint comes first: only candidates whose mean RA is within ``ra_tolerance``
(5 points) of the reference's are eligible. Without it, a candidate that destroys the model
(UA 100, RA ~20: worst gap ~80) beats one that does nothing (UA 0: gap 100), as it does under
the paper's own Disparity Ave. in class-wise forgetting; such a default would be useless. If
no candidate keeps the retain set, the best score over all candidates is returned and the
table says so. Ties go to the earliest candidate, so list grids from the gentlest value to
the strongest. The records of every candidate are kept under ``output_dir``.

The harness records no validation accuracy, so the retain set stands for utility here. In
the searches quoted by the methods, TA (recorded, never used to choose) fell whenever RA
fell; a method that could overfit the retain set would need the validation split
(``task.validation``) as its utility measure instead.

Command line (the docstrings of the methods quote its output)::

    python -m unlearnbench_baselines.search ff alpha=1e-8,1e-7,1e-6 --seeds 0,1 --cache-dir C --output OUT
    python -m unlearnbench_baselines.search iu alpha=1,10,30 --seeds 0,1 --cache-dir C --output OUT2 \\
        --reference-from OUT/retrain    # reuse the Retrain records of the first search
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearnbench.errors import ConfigError
from unlearnbench.run.config import RunConfig
from unlearnbench.run.executors import Executor, LocalExecutor, Trial, make_executor, run_grid
from unlearnbench.report.records import RunRecord, load_records
from unlearnbench.data.splits import ForgetSpec


@dataclass(frozen=True)
class Candidate:
    params: dict[str, Any]
    UA: float  # means over seeds
    RA: float
    score: float


@dataclass(frozen=True)
class SearchResult:
    method: str
    reference: str
    reference_UA: float
    reference_RA: float
    candidates: list[Candidate]
    ra_tolerance: float = 5.0

    def eligible(self, candidate: Candidate) -> bool:
        return candidate.RA >= self.reference_RA - self.ra_tolerance

    @property
    def best(self) -> Candidate:
        pool = [c for c in self.candidates if self.eligible(c)] or self.candidates
        return min(pool, key=lambda c: c.score)  # min is stable: ties -> first

    def table(self) -> str:
        from tabulate import tabulate
        names = list(self.candidates[0].params) if self.candidates else []
        rows = [[*map(str, c.params.values()), f"{c.UA:.2f}", f"{c.RA:.2f}", f"{c.score:.2f}",
                 "yes" if self.eligible(c) else "no", "<- best" if c is self.best else ""]
                for c in self.candidates]
        head = (f"{self.reference}: UA {self.reference_UA:.2f}  RA {self.reference_RA:.2f}; "
                f"eligible: RA >= {self.reference_RA - self.ra_tolerance:.2f}\n")
        if not any(self.eligible(c) for c in self.candidates):
            head += "no candidate keeps the retain set: best score over all candidates\n"
        return head + tabulate(rows, headers=[*names, "UA", "RA", "score", "eligible", ""],
                               disable_numparse=True,
                               colalign=["right"] * (len(names) + 3) + ["left", "left"])


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def gap_score(records: Sequence[RunRecord], reference: Mapping[int, RunRecord]) -> float:
    """Mean over seeds of the larger of the |UA| and |RA| gaps to the reference at that seed."""
    return _mean([max(abs(r.metrics["UA"] - reference[r.seed].metrics["UA"]),
                      abs(r.metrics["RA"] - reference[r.seed].metrics["RA"])) for r in records])


def search(method: str, grid: Mapping[str, Sequence[Any]], *, fixed: Mapping[str, Any] | None = None,
           seeds: Sequence[int] = (0,), dataset: str = "digits", forget: str = "class:0",
           pruner: str | None = None, sparsity: float | None = None, reference: str = "retrain",
           cache_dir: Path, output_dir: Path, device: str = "auto",
           reference_records: Sequence[RunRecord] | None = None, ra_tolerance: float = 5.0,
           log: Callable[[str], None] = lambda m: None, executor: Executor | None = None) -> SearchResult:
    """Run ``method`` for every combination in ``grid`` and score it (module docstring).

    ``reference_records`` (one per seed, from an earlier search of the same setting) spares
    re-running the reference.
    """
    def config(name: str, params: Mapping[str, Any], out: Path) -> RunConfig:
        return RunConfig(method=name, method_params=dict(params), dataset=dataset, forget=forget,
                         pruner=pruner, sparsity=sparsity, seeds=tuple(seeds),
                         cache_dir=Path(cache_dir), output_dir=out, device=device)

    output_dir = Path(output_dir)
    if reference_records is not None:  # checked before anything runs
        _check_reference(reference_records, reference, dataset, forget, pruner, seeds)
    names = list(grid)
    combos = [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]
    configs = [config(method, {**(fixed or {}), **params}, output_dir / f"{method}-{i:02d}")
               for i, params in enumerate(combos)]
    if reference_records is None:
        configs.insert(0, config(reference, {}, output_dir / reference))
    trials = [Trial(c, seed) for c in configs for seed in c.seeds]  # one grid: reference and candidates
    log(f"{len(trials)} trials: {'' if reference_records else 'the reference and '}{len(combos)} candidates")
    records = run_grid(trials, executor or LocalExecutor(), log=log)
    by_config = [records[i * len(seeds):(i + 1) * len(seeds)] for i in range(len(configs))]
    if reference_records is None:
        reference_records = by_config.pop(0)
    ref = _check_reference(reference_records, reference, dataset, forget, pruner, seeds)
    candidates = [Candidate(params, _mean([r.metrics["UA"] for r in recs]),
                            _mean([r.metrics["RA"] for r in recs]), gap_score(recs, ref))
                  for params, recs in zip(combos, by_config)]
    return SearchResult(method, reference, _mean([r.metrics["UA"] for r in ref.values()]),
                        _mean([r.metrics["RA"] for r in ref.values()]), candidates, ra_tolerance)


def _check_reference(records: Sequence[RunRecord], reference: str, dataset: str, forget: str,
                     pruner: str | None, seeds: Sequence[int]) -> dict[int, RunRecord]:
    ref = {r.seed: r for r in records}
    setting = (reference, dataset, str(ForgetSpec.parse(forget)), pruner)
    if sorted(ref) != sorted(seeds) or any(
            (r.method, r.dataset, r.forget, r.pruner) != setting for r in ref.values()):
        raise ConfigError(f"reference records do not match {reference} on {dataset} {forget} "
                          f"(pruner {pruner}) for seeds {list(seeds)}")
    return ref


def _grid_item(text: str) -> tuple[str, list[str]]:
    key, sep, values = text.partition("=")
    if not sep or not values:
        raise SystemExit(f"grid item {text!r} is invalid: expected KEY=V1,V2,...")
    return key.strip(), [v.strip() for v in values.split(",") if v.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unlearnbench_baselines.search", description=__doc__.split("\n")[0])
    parser.add_argument("method")
    parser.add_argument("grid", nargs="+", metavar="KEY=V1,V2,...", help="values to try")
    parser.add_argument("-p", "--fixed", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--forget", default="class:0")
    parser.add_argument("--pruner", default=None)
    parser.add_argument("--sparsity", type=float, default=None)
    parser.add_argument("--reference", default="retrain")
    parser.add_argument("--reference-from", type=Path, default=None, metavar="DIR",
                        help="reuse the reference's records of an earlier search (OUTPUT/retrain)")
    parser.add_argument("--ra-tolerance", type=float, default=5.0,
                        help="eligible: mean RA >= reference RA minus this (default 5 points)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/unlearnbench"))
    parser.add_argument("--output", type=Path, default=Path("results/search"))
    parser.add_argument("--executor", default="local", help="local (default) or ray")
    parser.add_argument("--executor-param", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter of the executor, e.g. cpus_per_trial=1 or address=HOST:6379")
    args = parser.parse_args(argv)
    executor = make_executor(args.executor, dict(item.split("=", 1) for item in args.executor_param))
    fixed = dict(item.split("=", 1) for item in args.fixed)
    reference_records = load_records(args.reference_from) if args.reference_from else None
    result = search(args.method, dict(_grid_item(g) for g in args.grid), fixed=fixed,
                    seeds=[int(s) for s in args.seeds.split(",") if s.strip()],
                    dataset=args.dataset, forget=args.forget, pruner=args.pruner,
                    sparsity=args.sparsity, reference=args.reference,
                    ra_tolerance=args.ra_tolerance, reference_records=reference_records,
                    cache_dir=args.cache_dir,
                    output_dir=args.output, device=args.device, executor=executor,
                    log=lambda m: print(m, file=sys.stderr, flush=True))
    print(result.table())
    print(f"\nbest: {result.best.params}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
