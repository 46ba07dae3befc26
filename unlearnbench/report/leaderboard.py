"""Leaderboard tables, generated from run records (never typed by hand).

One row per configuration (its config identity: every parameter, the recipe, the data,
precision and code formats; see ``unlearnbench.identity``) and decoded data; seeds of one
configuration are averaged, different configurations never are. Two rows of one method at
one (dataset, arch, scenario, pruning) are labelled by what differs between them, e.g.
``ft (lr=0.05)``. Each metric as mean ± std over seeds; each Disparity metric's gap to Retrain
in the same setting (everything but the method and its parameters; ``|m - m_retrain|``), and
the paper's "Disparity Ave." (mean of those gaps: UA, MIA, RA, TA for the built-ins). Timed
metrics (unit ``s``, e.g. RTE) are compared only between runs on one device; rows from several
devices are flagged, and so are rows whose records come from several versions of the code.

When records count their work (:class:`~unlearnbench.report.records.Work`, schema 5), a "steps"
column follows the timed metrics: the mean optimizer steps of the unlearning call over seeds, and
their share of Retrain's in the same setting (``640 (22% of Retrain)``). When the method ``none``
(no unlearning: the original model) ran in a row's setting, the row is judged against it: a row
whose every Disparity metric is within seed noise of ``none``'s shows "no measurable unlearning"
(see :func:`within_noise` for the rule). Tables of records without either render as before.

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
from ..identity import UNKNOWN, canonical, differing_keys, flatten, ordered, show
from .records import RunRecord

GROUP = ["dataset", "arch", "scenario", "forget", "pruning", "method"]
REFERENCE_METHOD = "retrain"
BASELINE_METHOD = "none"  # no unlearning: rows are judged against it (see within_noise)
NOISE_Z = 2.0  # a difference of at least this many standard errors is measurable
INERT = "no measurable unlearning"
VS_NONE = "vs none"  # the display column of the judgement
STEPS = "steps"  # the display column of the optimizer steps
WORK = "work:"  # summary columns of Work; metric names hold no ":", so these never clash
LATEX_MARK = "†"  # LaTeX marks an inert row's method instead of a column
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
                     f"{WORK}steps": r.work.optimizer_steps if r.work is not None else None,
                     **{m: r.metrics.get(m) for m in metrics},
                     **{f"{PROBE}{name}:{when}": value for name, values in r.probes.items()
                        for when, value in values.items()}})
    frame = pd.DataFrame(rows)
    # a diverged run has no numbers to average: its row counts it apart, never into a mean
    values = [c for c in frame.columns if c in metrics or c.startswith((PROBE, WORK))]
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
    """Numbers of the table: mean, std, n and gaps to retrain, one row per group; with records
    that count their work, ``work:steps_mean``/``_std`` and ``work:steps_of_retrain`` (a
    fraction); with a ``none`` row at some setting, ``inert`` (see :func:`inert_verdicts`)."""
    if not records:
        raise ConfigError("no run records to tabulate")
    frame = records_frame(records)
    metrics = metric_declarations(records)
    gaps = disparity_metrics(metrics)
    work = any(r.work is not None for r in records)
    values = list(metrics) + ["sparsity"] + probe_columns(frame) + ([f"{WORK}steps"] if work else [])
    grouped = frame.groupby(GROUP + ["variant"], sort=False)
    table = grouped[values].mean().add_suffix("_mean")
    table = table.join(grouped[values].std(ddof=1).fillna(0.0).add_suffix("_std"))
    table = table.join(grouped[gaps].var(ddof=1).add_prefix("_var:"))  # exact, for the noise rule
    table["n"] = grouped["diverged"].agg(lambda d: int((~d).sum()))  # seeds in the means
    table["diverged"] = grouped["diverged"].agg(lambda d: int(d.sum()))
    table["devices"] = grouped["device"].agg(lambda d: ", ".join(sorted(set(d))))
    table["versions"] = grouped["versions"].agg(lambda v: sorted(set(v)))
    table["forget_name"] = grouped["forget_name"].agg(lambda n: next(iter(n.dropna()), None))
    for column in ("base", "setting"):  # one value per configuration
        table[column] = grouped[column].first()
    table = table.reset_index()
    reference = _reference_rows(table, REFERENCE_METHOD)
    for m in gaps:
        ref = table["setting"].map(reference[f"{m}_mean"].to_dict().get)
        table[f"{m}_gap"] = (table[f"{m}_mean"] - pd.to_numeric(ref)).abs()
    if gaps:
        table["disparity"] = table[[f"{m}_gap" for m in gaps]].mean(axis=1, skipna=False)
    if work:
        ref = table["setting"].map(reference[f"{WORK}steps_mean"].to_dict().get)
        table[f"{WORK}steps_of_retrain"] = table[f"{WORK}steps_mean"] / pd.to_numeric(ref)
    if not (baseline := _reference_rows(table, BASELINE_METHOD)).empty:
        table["inert"] = inert_verdicts(table, baseline, metrics)
    order = {"dense": 0}
    table["_p"] = table["pruning"].map(lambda p: order.get(p, 1))
    table["_r"] = table["base"] != REFERENCE_METHOD
    table = table.sort_values(["dataset", "arch", "scenario", "forget", "_p", "pruning", "_r", "method"])
    table = table.drop(columns=[c for c in table.columns if c.startswith("_var:")])
    return table.drop(columns=["_p", "_r", "variant", "setting", "base"]).reset_index(drop=True)


def _reference_rows(table: pd.DataFrame, base: str) -> pd.DataFrame:
    """The rows of method (or label) ``base`` by setting (everything but the method and its
    parameters); none for a setting where several configurations of ``base`` share it."""
    rows = table[table["base"] == base].drop_duplicates("setting", keep=False)
    return rows.set_index("setting")


def within_noise(mean: float, var: float, n: int, ref_mean: float, ref_var: float, ref_n: int,
                 decimals: int) -> bool:
    """Whether a metric's mean over ``n`` seeds (sample variance ``var``, ddof=1) is within seed
    noise of a reference's (``ref_*``; ``none`` at the same setting).

    The rule: ``|mean - ref_mean| < NOISE_Z * sqrt(se**2 + ref_se**2)`` with ``NOISE_Z = 2``
    and ``se = std / sqrt(n)`` (compared squared, so a boundary case is decided exactly), or the
    two means read the same at the metric's shown ``decimals`` (so two constant columns that
    agree count as equal, though their spread is zero). With one seed on either side there is
    no noise estimate: only the second condition, equality as displayed, applies.
    """
    if f"{mean:.{decimals}f}" == f"{ref_mean:.{decimals}f}":
        return True
    if n < 2 or ref_n < 2:
        return False
    return (mean - ref_mean) ** 2 < NOISE_Z ** 2 * (var / n + ref_var / ref_n)


def inert_verdicts(table: pd.DataFrame, baseline: pd.DataFrame,
                   metrics: dict[str, MetricDeclaration]) -> list[str | None]:
    """Each summary row judged against ``none`` at its setting (``baseline``, by setting):
    ``"baseline"`` for ``none``'s own row, ``"yes"`` (no measurable unlearning) when every
    Disparity metric is :func:`within_noise` of ``none``'s, ``"no"`` when one is not, None (not
    judged) without a ``none`` row at the setting, without seeds or means on either side, or
    without Disparity metrics."""
    gaps = disparity_metrics(metrics)
    verdicts: list[str | None] = []
    for _, s in table.iterrows():
        ref = baseline.loc[s["setting"]] if s["setting"] in baseline.index else None
        if ref is not None and ref["variant"] == s["variant"]:
            verdicts.append("baseline")
            continue
        if (ref is None or not gaps or s["n"] == 0 or ref["n"] == 0
                or any(pd.isna(x[f"{m}_mean"]) for m in gaps for x in (s, ref))):
            verdicts.append(None)
            continue
        inert = all(within_noise(s[f"{m}_mean"], s[f"_var:{m}"], s["n"], ref[f"{m}_mean"],
                                 ref[f"_var:{m}"], ref["n"], metrics[m].decimals) for m in gaps)
        verdicts.append("yes" if inert else "no")
    return verdicts


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
    parentheses; ``metrics`` is ``metric_declarations(records)``. A "vs none" column follows
    the seeds when ``none`` ran in some setting; a "steps" column follows the timed metrics (or
    the last metric) when records count their work."""
    timed = [metrics[m].header for m in timed_metrics(metrics)]
    rows = []
    for _, s in summary.iterrows():
        name = s["forget_name"]
        forget = f"{s['forget']} ({name})" if isinstance(name, str) else s["forget"]
        seeds = f"{int(s['n'])} + {int(s['diverged'])} diverged" if s["diverged"] else int(s["n"])
        row = {"dataset": s["dataset"], "arch": s["arch"], "forget": forget,
               "pruning": s["pruning"], "method": s["method"], "seeds": str(seeds)}
        if "inert" in summary.columns:
            row[VS_NONE] = _verdict(s["inert"])
        cells = metric_cells(s, metrics)
        if f"{WORK}steps_mean" in summary.columns:
            after = timed[-1] if timed else list(cells)[-1]
            cells = {k: v for c, cell in cells.items()
                     for k, v in ((c, cell), *([(STEPS, _steps_cell(s))] if c == after else []))}
        row.update(cells)
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


def _verdict(inert: str | None) -> str:
    """The "vs none" cell of a summary row's ``inert``."""
    return {"baseline": "baseline", "yes": INERT, "no": "differs"}.get(inert, "—")


def _steps_cell(s: pd.Series) -> str:
    """Mean optimizer steps and their share of Retrain's: ``640 (22% of Retrain)``."""
    steps, share = s[f"{WORK}steps_mean"], s[f"{WORK}steps_of_retrain"]
    if pd.isna(steps):
        return "—"
    if pd.isna(share) or s["method"] == REFERENCE_METHOD:
        return f"{steps:.0f}"
    percent = 100 * share
    shown = f"{percent:.0f}" if percent >= 10 or percent == 0 else f"{percent:.2g}"
    return f"{steps:.0f} ({shown}% of Retrain)"


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
    if fmt == "latex" and VS_NONE in frame.columns:  # a footnote mark, not a column
        marks = frame[VS_NONE].map({INERT: LATEX_MARK, "baseline": " (baseline)"}).fillna("")
        frame = frame.assign(method=frame["method"] + marks).drop(columns=VS_NONE)
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
    if f"{WORK}steps_mean" in summary.columns:
        counted = sum(r.work is not None for r in records)
        notes.append(f"{STEPS}: mean optimizer steps of the unlearning call over seeds; (x% of "
                     f"Retrain) = its share of Retrain's mean steps at the same pruning and "
                     f"scenario" + ("." if counted == len(records) else
                                    f"; {len(records) - counted} of {len(records)} runs did not "
                                    f"count their work (records before schema 5) and are left out."))
    if "inert" in summary.columns:
        notes.append(_inert_note(metrics))
    if timed := [metrics[m].label for m in timed_metrics(metrics)]:
        notes += _timing_notes(records, " and ".join(timed))
    return notes


def _inert_note(metrics: dict[str, MetricDeclaration]) -> str:
    """The rule of the "vs none" column (:func:`within_noise`), in words."""
    labels = [metrics[m].label for m in disparity_metrics(metrics)]
    listed = ", ".join(labels[:-1]) + " and " + labels[-1] if len(labels) > 1 else "".join(labels)
    return (f"{VS_NONE}: \"{INERT}\" (LaTeX: {LATEX_MARK} after the method) when every Disparity "
            f"metric ({listed}) is within seed noise of {BASELINE_METHOD}'s (no unlearning, the "
            f"original model; its row is the baseline) at the same pruning and scenario: "
            f"|mean - mean({BASELINE_METHOD})| < {NOISE_Z:g} · sqrt(se² + se({BASELINE_METHOD})²), "
            f"se = std / sqrt(seeds) (sample std), or both means equal as shown; with one seed on "
            f"either side there is no noise estimate and only equality as shown counts. "
            f"\"differs\": some metric is not; — : not judged (no {BASELINE_METHOD} row there).")


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
