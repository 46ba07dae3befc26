"""Leaderboard tables, generated from run records (never typed by hand).

One row per (dataset, arch, scenario, method, pruning); each metric as mean ± std over seeds;
each metric's gap to Retrain at the same pruning and scenario (``|m - m_retrain|``), and the
paper's "Disparity Ave." (mean of the four gaps of UA, MIA, RA, TA). RTE is compared only
between runs on one device; rows from several devices are flagged.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from tabulate import tabulate

from ..errors import ConfigError
from .records import RunRecord

METRICS = ("UA", "MIA", "RA", "TA")
GROUP = ["dataset", "arch", "scenario", "forget", "pruning", "method"]
REFERENCE_METHOD = "retrain"
PROBE = "probe:"


def records_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    rows = []
    for r in records:
        pruning = f"{r.pruner} {r.target_sparsity:g}" if r.pruner else "dense"
        rows.append({"dataset": r.dataset, "arch": r.arch, "scenario": r.scenario, "forget": r.forget,
                     "forget_name": r.config.get("forget_class_name"),
                     "pruning": pruning, "method": r.label or r.method, "seed": r.seed,
                     "sparsity": r.sparsity, "device": r.environment.device_name,
                     **{m: getattr(r.metrics, m) for m in METRICS}, "RTE": r.metrics.RTE,
                     **{f"{PROBE}{name}:{when}": value for name, values in r.probes.items()
                        for when, value in values.items()}})
    return pd.DataFrame(rows)


def probe_columns(frame: pd.DataFrame) -> list[str]:
    """The ``probe:NAME:before|after`` columns of a records frame, in a stable order."""
    return sorted(c for c in frame.columns if c.startswith(PROBE))


def summarize(records: Sequence[RunRecord]) -> pd.DataFrame:
    """Numbers of the table: mean, std, n and gaps to retrain, one row per group."""
    if not records:
        raise ConfigError("no run records to tabulate")
    frame = records_frame(records)
    values = list(METRICS) + ["RTE", "sparsity"] + probe_columns(frame)
    grouped = frame.groupby(GROUP, sort=False)
    table = grouped[values].mean().add_suffix("_mean")
    table = table.join(grouped[values].std(ddof=1).fillna(0.0).add_suffix("_std"))
    table["n"] = grouped.size()
    table["devices"] = grouped["device"].agg(lambda d: ", ".join(sorted(set(d))))
    table["forget_name"] = grouped["forget_name"].agg(lambda n: next(iter(n.dropna()), None))
    table = table.reset_index()
    keys = ["dataset", "arch", "scenario", "forget", "pruning"]
    reference = table[table["method"] == REFERENCE_METHOD].set_index(keys)
    for m in METRICS:
        ref = table.set_index(keys).index.map(reference[f"{m}_mean"].to_dict().get)
        table[f"{m}_gap"] = (table[f"{m}_mean"] - pd.to_numeric(pd.Series(ref, index=table.index))).abs()
    table["disparity"] = table[[f"{m}_gap" for m in METRICS]].mean(axis=1, skipna=False)
    order = {"dense": 0}
    table["_p"] = table["pruning"].map(lambda p: order.get(p, 1))
    table["_r"] = table["method"] != REFERENCE_METHOD
    table = table.sort_values(["dataset", "arch", "scenario", "forget", "_p", "pruning", "_r", "method"])
    return table.drop(columns=["_p", "_r"]).reset_index(drop=True)


def _cell(mean: float, std: float, n: int) -> str:
    if pd.isna(mean):
        return "—"
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


def display_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """The human-readable table: formatted cells, gaps in parentheses."""
    rows = []
    for _, s in summary.iterrows():
        name = s["forget_name"]
        forget = f"{s['forget']} ({name})" if isinstance(name, str) else s["forget"]
        row = {"dataset": s["dataset"], "arch": s["arch"], "forget": forget,
               "pruning": s["pruning"], "method": s["method"], "seeds": int(s["n"])}
        for m in METRICS:
            cell = _cell(s[f"{m}_mean"], s[f"{m}_std"], s["n"])
            gap = s[f"{m}_gap"]
            row[m if m != "MIA" else "MIA-Efficacy"] = cell if pd.isna(gap) else f"{cell} ({gap:.2f})"
        row["Disparity Ave."] = "—" if pd.isna(s["disparity"]) else f"{s['disparity']:.2f}"
        row["RTE (s)"] = _cell(s["RTE_mean"], s["RTE_std"], s["n"])
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
        return summary.to_csv(index=False, float_format="%.4f")
    frame = display_frame(summary)
    tablefmt = {"markdown": "github", "latex": "latex_booktabs"}.get(fmt)
    if tablefmt is None:
        raise ConfigError(f"--format {fmt!r} is invalid: expected markdown, csv or latex")
    text = tabulate(frame, headers="keys", tablefmt=tablefmt, showindex=False, disable_numparse=True)
    notes = ["Cells: mean ± std over seeds; (gap) = |metric - Retrain's| at the same pruning and "
             "scenario; Disparity Ave. = mean of the four gaps."]
    if any(r.probes for r in records):
        notes.append("before → after: a probe measured on the model given to the unlearner and on "
                     "the unlearned model (means over seeds); ASR = backdoor attack success rate, "
                     "clean_acc = clean test accuracy, transfer_acc = downstream linear-probe "
                     "accuracy.")
    devices = sorted({r.environment.device_name for r in records})  # names may contain ", "
    if len(devices) > 1:
        notes.append("RTE was measured on different devices (" + "; ".join(devices)
                     + "): do not compare RTE across them.")
    else:
        notes.append(f"RTE measured on {devices[0]}.")
    if shared := [r for r in records if r.timings.shared_by]:
        notes.append(f"Warning: the RTE of {len(shared)} of {len(records)} runs was measured while "
                     f"other trials shared the device (up to {max(r.timings.shared_by for r in shared)}"
                     f" at once; record field timings.shared_by): those RTEs are not comparable.")
    if fmt == "latex":
        return text + "\n" + "\n".join(f"% {n}" for n in notes) + "\n"
    return text + "\n\n" + "\n".join(notes) + "\n"
