"""Leaderboard tables, generated from run records (never typed by hand).

One row per configuration (its config identity: every parameter, the recipe, the data,
precision and code formats; see ``unlearnbench.run.identity``) and decoded data; seeds of one
configuration are averaged, different configurations never are. Two rows of one method at
one (dataset, arch, scenario, pruning) are labelled by what differs between them, e.g.
``ft (lr=0.05)``. Each metric as mean ± std over seeds; each Disparity metric's gap to Retrain
in the same setting (everything but the method and its parameters; ``|m - m_retrain|``), and
the paper's "Disparity Ave." (mean of those gaps: UA, MIA, RA, TA for the built-ins). Timed
metrics (unit ``s``, e.g. RTE) are compared only between runs on one device; rows from several
devices are flagged, and so are rows whose records come from several versions of the code.

The columns follow the declarations of the metrics the records hold (their snapshots in the
records, :class:`~unlearnbench.metric.MetricDeclaration`): a plugin's metric is a column
like the built-ins', with its label, unit and direction; population metrics are not per-trial
columns and never appear here.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from tabulate import tabulate

from ..errors import ConfigError
from ..metric import MetricDeclaration, columns
from ..run.identity import UNKNOWN, canonical, differing_keys, flatten, ordered, show
from .records import RunRecord

GROUP = ["dataset", "arch", "scenario", "forget", "pruning", "method"]
REFERENCE_METHOD = "retrain"
PROBE = "probe:"
DISPARITY = "Disparity Ave."
_COUNTS = ("none", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def metric_declarations(records: Sequence[RunRecord]) -> dict[str, MetricDeclaration]:
    """The trial metrics that ``records`` hold, by name in column order (declared ``order``,
    then name), each with its declaration in the newest record that has it."""
    found: dict[str, MetricDeclaration] = {}
    for r in sorted(records, key=lambda r: r.created):
        found.update(r.metric_declarations)
    return columns(found)


def disparity_metrics(metrics: dict[str, MetricDeclaration]) -> list[str]:
    """The names of ``metrics`` whose gap to Retrain enters Disparity Ave., in column order."""
    return [name for name, d in metrics.items() if d.in_disparity]


def timed_metrics(metrics: dict[str, MetricDeclaration]) -> list[str]:
    """The names of ``metrics`` measured in seconds: comparable only on one device."""
    return [name for name, d in metrics.items() if d.unit == "s"]


def records_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per record; ``method`` is the row label (see :func:`row_labels`); one column
    per metric of :func:`metric_declarations` (NaN where a record lacks it)."""
    rows = []
    labels = row_labels(records)
    metrics = list(metric_declarations(records))
    for r, label in zip(records, labels):
        pruning = f"{r.pruner} {r.target_sparsity:g}" if r.pruner else "dense"
        setting = {k: v for k, v in r.resolved.items() if k not in ("method", "method_params")}
        rows.append({"dataset": r.dataset, "arch": r.arch, "scenario": r.scenario, "forget": r.forget,
                     "forget_name": r.config.get("forget_class_name"),
                     "pruning": pruning, "method": label, "seed": r.seed,
                     "base": r.label or r.method, "variant": f"{r.config_identity}/{r.data_hash}",
                     "setting": canonical([setting, r.data_hash]), "versions": _versions(r),
                     "sparsity": r.sparsity, "device": r.environment.device_name,
                     "diverged": r.diverged,
                     **{m: r.metrics.get(m) for m in metrics},
                     **{f"{PROBE}{name}:{when}": value for name, values in r.probes.items()
                        for when, value in values.items()}})
    frame = pd.DataFrame(rows)
    # a diverged run has no numbers to average: its row counts it apart, never into a mean
    values = [c for c in frame.columns if c in metrics or c.startswith(PROBE)]
    frame[values] = frame[values].astype(float)
    frame.loc[frame["diverged"], values] = float("nan")
    return frame


def row_labels(records: Sequence[RunRecord]) -> list[str]:
    """Each record's row label: its label (or method), followed by the values of whatever
    differs between configurations that share that label at one dataset, arch, forget spec
    and pruning (``ft (lr=0.05)``); the same keys on every row of that label."""
    def shown(r: RunRecord) -> tuple:
        return (r.dataset, r.arch, r.forget, r.pruner, r.target_sparsity, r.label or r.method)

    def flat(r: RunRecord) -> dict:
        return {**flatten(r.resolved), "data_hash": r.data_hash}

    variants: dict[tuple, dict[tuple[str, str | None], RunRecord]] = {}
    for r in records:
        variants.setdefault(shown(r), {})[(r.config_identity, r.data_hash)] = r
    keys: dict[str, set[str]] = {}
    for (*_, base), same in variants.items():
        if len(same) > 1:
            keys.setdefault(base, set()).update(differing_keys([flat(r) for r in same.values()]))
    labels = []
    for r in records:
        base = r.label or r.method
        if differ := keys.get(base):
            values = flat(r)
            base += " (" + ", ".join(show(k, values.get(k, UNKNOWN)) for k in ordered(differ)) + ")"
        labels.append(base)
    return labels


def _versions(r: RunRecord) -> str:
    packages = {**r.environment.packages, "unlearnbench": r.environment.unlearnbench}
    return ", ".join(f"{name} {version}" for name, version in sorted(packages.items()))


def probe_columns(frame: pd.DataFrame) -> list[str]:
    """The ``probe:NAME:before|after`` columns of a records frame, in a stable order."""
    return sorted(c for c in frame.columns if c.startswith(PROBE))


def summarize(records: Sequence[RunRecord]) -> pd.DataFrame:
    """Numbers of the table: mean, std, n and gaps to retrain, one row per group."""
    if not records:
        raise ConfigError("no run records to tabulate")
    frame = records_frame(records)
    metrics = metric_declarations(records)
    values = list(metrics) + ["sparsity"] + probe_columns(frame)
    grouped = frame.groupby(GROUP + ["variant"], sort=False)
    table = grouped[values].mean().add_suffix("_mean")
    table = table.join(grouped[values].std(ddof=1).fillna(0.0).add_suffix("_std"))
    table["n"] = grouped["diverged"].agg(lambda d: int((~d).sum()))  # seeds in the means
    table["diverged"] = grouped["diverged"].agg(lambda d: int(d.sum()))
    table["devices"] = grouped["device"].agg(lambda d: ", ".join(sorted(set(d))))
    table["versions"] = grouped["versions"].agg(lambda v: sorted(set(v)))
    table["forget_name"] = grouped["forget_name"].agg(lambda n: next(iter(n.dropna()), None))
    for column in ("base", "setting"):  # one value per configuration
        table[column] = grouped[column].first()
    table = table.reset_index()
    # Retrain in the same setting; none when several Retrain configurations share it.
    reference = table[table["base"] == REFERENCE_METHOD].drop_duplicates("setting", keep=False)
    reference = reference.set_index("setting")
    gaps = disparity_metrics(metrics)
    for m in gaps:
        ref = table["setting"].map(reference[f"{m}_mean"].to_dict().get)
        table[f"{m}_gap"] = (table[f"{m}_mean"] - pd.to_numeric(ref)).abs()
    if gaps:
        table["disparity"] = table[[f"{m}_gap" for m in gaps]].mean(axis=1, skipna=False)
    order = {"dense": 0}
    table["_p"] = table["pruning"].map(lambda p: order.get(p, 1))
    table["_r"] = table["base"] != REFERENCE_METHOD
    table = table.sort_values(["dataset", "arch", "scenario", "forget", "_p", "pruning", "_r", "method"])
    return table.drop(columns=["_p", "_r", "variant", "setting", "base"]).reset_index(drop=True)


def _cell(mean: float, std: float, n: int, decimals: int = 2) -> str:
    if pd.isna(mean):
        return "—"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}" if n > 1 else f"{mean:.{decimals}f}"


def metric_cells(s: pd.Series, metrics: dict[str, MetricDeclaration]) -> dict[str, str]:
    """One summary row's metric cells by column header: the Disparity metrics with their gaps
    in parentheses, Disparity Ave., then the other metrics (``metrics`` in column order)."""
    gaps = disparity_metrics(metrics)
    cells = {}
    for name in [*gaps, DISPARITY, *(m for m in metrics if m not in gaps)]:
        if name == DISPARITY:
            if gaps:
                cells[DISPARITY] = "—" if pd.isna(s["disparity"]) else f"{s['disparity']:.2f}"
            continue
        d = metrics[name]
        if s["n"] == 0:
            cells[d.header] = "diverged"
            continue
        cell = _cell(s[f"{name}_mean"], s[f"{name}_std"], s["n"], d.decimals)
        gap = s.get(f"{name}_gap")
        cells[d.header] = cell if gap is None or pd.isna(gap) else f"{cell} ({gap:.{d.decimals}f})"
    return cells


def display_frame(summary: pd.DataFrame, metrics: dict[str, MetricDeclaration]) -> pd.DataFrame:
    """The human-readable table of ``summarize(records)``: formatted cells, gaps in
    parentheses; ``metrics`` is ``metric_declarations(records)``."""
    rows = []
    for _, s in summary.iterrows():
        name = s["forget_name"]
        forget = f"{s['forget']} ({name})" if isinstance(name, str) else s["forget"]
        seeds = f"{int(s['n'])} + {int(s['diverged'])} diverged" if s["diverged"] else int(s["n"])
        row = {"dataset": s["dataset"], "arch": s["arch"], "forget": forget,
               "pruning": s["pruning"], "method": s["method"], "seeds": str(seeds)}
        row.update(metric_cells(s, metrics))
        row["sparsity"] = f"{s['sparsity_mean']:.3f}"
        for name in sorted({c.split(":")[1] for c in summary.columns if c.startswith(PROBE)}):
            before, after = (s.get(f"{PROBE}{name}:{w}_mean") for w in ("before", "after"))
            row[f"{name} (before → after)"] = ("—" if pd.isna(before) or pd.isna(after)
                                               else f"{before:.2f} → {after:.2f}")
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in ("dataset", "arch"):  # shown once in the caption when constant
        if frame[column].nunique() == 1:
            frame = frame.drop(columns=column)
    return frame


def render(records: Sequence[RunRecord], fmt: str = "markdown") -> str:
    """The leaderboard as markdown, csv (raw numbers) or latex."""
    summary = summarize(records)
    if fmt == "csv":
        return summary.assign(versions=summary["versions"].map("; ".join)).to_csv(
            index=False, float_format="%.4f")
    frame = display_frame(summary, metric_declarations(records))
    tablefmt = {"markdown": "github", "latex": "latex_booktabs"}.get(fmt)
    if tablefmt is None:
        raise ConfigError(f"--format {fmt!r} is invalid: expected markdown, csv or latex")
    text = tabulate(frame, headers="keys", tablefmt=tablefmt, showindex=False, disable_numparse=True)
    notes = table_notes(records, summary)
    if fmt == "latex":
        return text + "\n" + "\n".join(f"% {n}" for n in notes) + "\n"
    return text + "\n\n" + "\n".join(notes) + "\n"


def table_notes(records: Sequence[RunRecord], summary: pd.DataFrame | None = None) -> list[str]:
    """How to read the table's cells, and where the timed metrics were measured (shared by
    every renderer); ``summary`` is ``summarize(records)`` when the caller has it already."""
    if summary is None:
        summary = summarize(records)
    metrics = metric_declarations(records)
    notes = [_cells_note(len(disparity_metrics(metrics)))]
    if diverged := sum(r.diverged for r in records):
        notes.append(f"diverged: {diverged} run{'s' if diverged != 1 else ''} ended with non-finite "
                     f"weights or logits; a row's seeds count them apart (\"2 + 1 diverged\"), "
                     f"and they are left out of every mean.")
    if any(r.probes for r in records):
        notes.append("before → after: a probe measured on the model given to the unlearner and on "
                     "the unlearned model (means over seeds); ASR = backdoor attack success rate, "
                     "clean_acc = clean test accuracy, transfer_acc = downstream linear-probe "
                     "accuracy.")
    for _, s in summary[summary["versions"].map(len) > 1].iterrows():
        notes.append(f"{s['method']} ({s['pruning']}, {s['forget']}) averages records made by "
                     f"different code: " + " / ".join(s["versions"]) + ".")
    if timed := [metrics[m].label for m in timed_metrics(metrics)]:
        notes += _timing_notes(records, " and ".join(timed))
    return notes


def _cells_note(gaps: int) -> str:
    """How a cell reads, when ``gaps`` metrics enter Disparity Ave."""
    if not gaps:
        return "Cells: mean ± std over seeds."
    count = _COUNTS[gaps] if gaps < len(_COUNTS) else str(gaps)
    average = "that gap" if gaps == 1 else f"mean of the {count} gaps"
    return (f"Cells: mean ± std over seeds; (gap) = |metric - Retrain's| at the same pruning and "
            f"scenario; {DISPARITY} = {average}.")


def _timing_notes(records: Sequence[RunRecord], timed: str) -> list[str]:
    """Where the metrics measured in seconds (``timed``: their labels) were measured."""
    devices = sorted({r.environment.device_name for r in records})  # names may contain ", "
    if len(devices) > 1:
        notes = [f"{timed} was measured on different devices (" + "; ".join(devices)
                 + f"): do not compare {timed} across them."]
    else:
        notes = [f"{timed} measured on {devices[0]}."]
    if shared := [r for r in records if r.timings.shared_by]:
        notes.append(f"Warning: the {timed} of {len(shared)} of {len(records)} runs was measured "
                     f"while other trials shared the device (up to "
                     f"{max(r.timings.shared_by for r in shared)} at once; record field "
                     f"timings.shared_by): those values are not comparable.")
    return notes
