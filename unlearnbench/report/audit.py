"""A population audit's table and pictures, generated from its ``audit.json`` and
``per_example.npz`` (written by ``unlearnbench.run.audit``), never typed by hand.

Every estimate sits beside its same-N null (the oracle method, Retrain, scored through the
same design), because at small N the null is far from zero (KLoM) or the attack's spread is
wide (U-LiRA). Beside them, the trial metrics (MIA-Efficacy, UA, RA, TA) averaged over the same
models, so a reader can compare the rankings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from ..storage import atomic_write_bytes
from .plots import figure_bytes

TRIAL_COLUMNS = (("MIA", "MIA-Eff."), ("UA", "UA"), ("RA", "RA"), ("TA", "TA"))


def _num(value: Any, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def klom_rows(rows: list[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """KLoM's table: headers and body."""
    splits = [s for s in ("forget", "retain", "val") if any(s in r for r in rows)]
    headers = ["pruning", "method", "N"]
    for split in splits:
        headers += [f"KLoM {split}", "null"]
    headers += ["Gauss. KL forget", "null", *(label for _, label in TRIAL_COLUMNS)]
    body = []
    for r in rows:
        line = [r["pruning"], r["method"] + (" (= null)" if r.get("is_null") else ""), r["models"]]
        for split in splits:
            line += [_num(r.get(split)), _num(r.get(f"null_{split}"))]
        line += [_num(r.get("forget_gaussian")), _num(r.get("null_forget_gaussian"))]
        line += [_num(r.get(key)) for key, _ in TRIAL_COLUMNS]
        body.append(line)
    return headers, body


def klom_table(rows: list[Mapping[str, Any]]) -> str:
    return table_text(klom_rows(rows))


def table_text(table: tuple[list[str], list[list[Any]]], fmt: str = "github") -> str:
    """A table as markdown (``github``) or escaped HTML (``html``)."""
    headers, body = table
    return tabulate(body, headers=headers, tablefmt=fmt, disable_numparse=True)


SIGMA_LABELS = {"shared": "one global σ shared by U and O (LiRA's fix_variance): Λ linear in φ",
                "per_side": "one global σ for U and another for O: Λ quadratic in φ",
                "per_example": "one σ per example and side"}


def ulira_rows(rows: list[Mapping[str, Any]], prefix: str = "", *, trials: bool = True
               ) -> tuple[list[str], list[list[Any]]]:
    """The attack's columns for the σ of ``prefix`` ("" for the main one, "variant_" for the
    labelled variant): mean ± std over targets, the naive s.e., and the null."""
    sigma = rows[0]["variant" if prefix else "variance"]
    headers = ["pruning", "method", "runs", f"acc. % (σ {sigma}), mean ± std", "s.e.", "null",
               "AUC, mean ± std", "s.e.", "null"]
    body = []
    for r in rows:
        line = [r["pruning"], r["method"] + (" (= null)" if r.get("is_null") else ""), r["models"],
                f"{r[prefix + 'accuracy']:.1f} ± {r[prefix + 'accuracy_std']:.1f}",
                _num(r.get(prefix + "accuracy_se"), 1), _num(r[prefix + "null_accuracy"], 1),
                f"{r[prefix + 'auc']:.3f} ± {r[prefix + 'auc_std']:.3f}",
                _num(r.get(prefix + "auc_se"), 3), _num(r[prefix + "null_auc"], 3)]
        if trials:
            line += [_num(r.get(key)) for key, _ in TRIAL_COLUMNS]
        body.append(line)
    if trials:
        headers += [label for _, label in TRIAL_COLUMNS]
    return headers, body


def ulira_table(rows: list[Mapping[str, Any]], prefix: str = "", *, trials: bool = True) -> str:
    return table_text(ulira_rows(rows, prefix, trials=trials))


def ulira_notes(rows: list[Mapping[str, Any]], params: Mapping[str, Any]) -> list[str]:
    """What the U-LiRA tables' columns are, and how far from 50% the null lands by chance."""
    first = rows[0]
    targets = sorted({r["targets"] for r in rows})
    lines = [f"Balanced accuracy and AUC of the per-example attack (leave one shadow out; "
             f"{params['runs_per_shadow']} runs per shadow; {'/'.join(map(str, targets))} target "
             f"runs per row). σ {first['variance']}: {SIGMA_LABELS.get(first['variance'], first['variance'])}. "
             f"\"mean ± std\": the std (ddof 0) is the spread of single targets over the target "
             f"runs, not an uncertainty of the mean. \"s.e.\": std (ddof 1) / √targets, the standard "
             f"error if the targets were independent; they share shadows (each is scored against "
             f"fits on the others), so it leaves their correlation out. \"null\": Retrain through "
             f"the same design. MIA-Eff., UA, RA, TA: means over the same unlearning runs."]
    spread = [r for r in rows if "null_simulated_accuracy_sd" in r]
    if spread:
        by_pruning = {r["pruning"]: r for r in spread}
        numbers = "; ".join(
            f"{p}: {r['null_simulated_accuracy']:.1f}% ± {r['null_simulated_accuracy_sd']:.1f} "
            f"(AUC {r['null_simulated_auc']:.3f} ± {r['null_simulated_auc_sd']:.3f})"
            for p, r in by_pruning.items())
        nulls = "; ".join(
            f"{r['pruning']}: {r['accuracy']:.1f}%, "
            f"{(r['accuracy'] - 50) / r['null_simulated_accuracy_sd']:+.1f} standard deviations"
            for r in spread if r.get("is_null"))
        lines += ["", f"How far the null lands from 50% by chance: {first['null_simulations']} audits "
                      f"of this design (its shadows, halves and forget sets) with Gaussian margins, "
                      f"the same for forgotten and never-held points, scored like the real one, give "
                      f"a mean accuracy of {numbers} (mean ± standard deviation over simulated "
                      f"audits, σ {first['variance']}). This standard deviation is the noise of one "
                      f"audit's mean, shared shadows included. The Retrain rows here: {nulls} from 50%."]
    return lines


Block = tuple[str, Any]  # ("h1" | "h2" | "h3", text), ("p", [lines]) or ("table", (headers, body))


def recorded_total(seconds: Mapping[str, float]) -> float:
    """The phases' total, exactly rounded whatever the keys' order (``audit.json`` sorts them, the
    summary in memory does not, and a plain sum can then round to another whole second)."""
    return math.fsum(seconds.values())


def _recorded_time(seconds: Mapping[str, float]) -> str:
    """The member trials' own recorded time, by phase (absent from audits written before it)."""
    if not seconds:
        return ""
    order = ("train", "prune", "unlearn", "eval")  # a fixed order (audit.json sorts its keys)
    names = [n for n in order if n in seconds] + sorted(set(seconds) - set(order))
    phases = ", ".join(f"{name} {seconds[name]:,.0f} s" for name in names)
    return f"; the trials recorded {recorded_total(seconds):,.0f} s ({phases})"


def audit_blocks(summary: Mapping[str, Any]) -> list[Block]:
    """An audit's report as blocks, which ``table.md`` and the web site's page both render."""
    spec = summary["spec"]
    base = spec["base"]
    rows = summary["rows"]
    blocks: list[Block] = [
        ("h1", f"Audit {summary['name']}"), ("p", [summary.get("description", "").strip()]),
        ("p", [f"Setting: {base.get('arch') or 'default model'} on {base.get('dataset')} "
               f"({base.get('train_size') or 'all'} training / {base.get('test_size') or 'all'} test images), "
               f"{spec['models']} models per population, forget set {spec['forget']:g} "
               f"({'count' if spec['forget'] >= 1 else 'fraction of the training split'}), audit seed {spec['seed']}.",
               f"Cost: {summary['cost']['originals']} originals, {summary['cost']['pruned']} pruned models, "
               f"{summary['cost']['unlearning']} unlearning runs; wall clock {summary['wall_clock_s']:.0f} s"
               + _recorded_time(summary.get("trial_seconds") or {}) + "."])]
    if spec.get("tuned"):
        tuning = spec.get("tuning", {})
        # sorted: audit.json keeps its keys sorted, so the table renders the same from it
        values = "; ".join(f"{pruning}: " + ", ".join(
            f"{row} " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in sorted(params.items()))
            for row, params in sorted(rows_.items())) for pruning, rows_ in sorted(spec["tuned"].items()))
        borrowed = ", ".join(f"{cell} from {source}" for cell, source in sorted(tuning.get("cells", {}).items())
                             if cell != source)  # a cell the file holds is its own
        blocks.append(("p", [f"Hyperparameters ({tuning.get('criterion', 'oracle')} criterion, "
                             f"{tuning.get('values', 'a tuned-values file')}"
                             + (f"; {borrowed}" if borrowed else "") + f"): {values}."]))
    klom = [r for r in rows if r["metric"] == "klom"]
    if klom:
        params = summary["metrics"]["klom"]["params"]
        blocks += [("h2", "KLoM (lower is better; compare with the null)"),
                   ("p", [f"P{params['percentile']:g} over examples of the per-example KL(unlearned ‖ oracle) of "
                          f"margins ({params['bins']} bins), in nats (max 11.51). \"null\": Retrain, a second "
                          f"set of oracles, scored the same way (same N). Gauss. KL: closed-form KL of fitted "
                          f"Gaussians (a deviation from the histogram estimator, less inflated at small N). "
                          f"MIA-Eff., UA, RA, TA: means over the same N unlearned models."]),
                   ("table", klom_rows(klom))]
    ulira = [r for r in rows if r["metric"] == "ulira"]
    if ulira:
        params = summary["metrics"]["ulira"]["params"]
        notes = ulira_notes(ulira, params)
        blocks.append(("h2", "U-LiRA (50% / 0.5 is ideal)"))
        blocks += [("p", [line]) for line in notes if line]
        blocks.append(("table", ulira_rows(ulira)))
        if "variant" in ulira[0]:
            variant = ulira[0]["variant"]
            blocks += [("h3", f"U-LiRA with σ {variant} (a labelled variant)"),
                       ("p", [f"The same attack and targets with σ {variant}: "
                              f"{SIGMA_LABELS.get(variant, variant)}; its own Retrain null."]),
                       ("table", ulira_rows(ulira, "variant_", trials=False))]
    return blocks


def render_audit(summary: Mapping[str, Any]) -> str:
    """table.md of an audit."""
    marks = {"h1": "# ", "h2": "## ", "h3": "### "}
    lines: list[str] = []
    for kind, content in audit_blocks(summary):
        if kind in marks:
            lines.append(marks[kind] + content)
        elif kind == "p":
            lines.extend(content)
        else:
            lines.append(table_text(content))
        lines.append("")
    return "\n".join(lines)


PICTURE_CAPTIONS = {
    "klom": "KLoM of every forget example (KL between the unlearned and the oracle models' margin "
            "distributions, nats), per method, one panel per pruning; the dashed line is the null's P95 "
            "(Retrain scored against a second set of oracles). Points far above it are examples the "
            "method left distinguishable from never having been trained on.",
    "ulira": "U-LiRA's log-likelihood ratio for every candidate of every target run, per method, one "
             "panel per pruning: red, examples the target forgot (the attack should call them "
             "forgotten, above 0); blue, examples it never held (below 0). Two clouds split at 0 mean "
             "the attack tells forgetting from never having seen; overlapping clouds (as for "
             "Retrain, the null) mean it cannot.",
}


def plot_audit(summary: Mapping[str, Any], arrays: Mapping[str, np.ndarray], folder: Path, *,
               log: Callable[[str], None] = print, fmt: str = "png", dpi: int = 150) -> list[Path]:
    """The per-example distributions: KLoM of every forget example per method (one panel per
    pruning, the null's P95 dashed), and U-LiRA's log-likelihood ratios of forget (positive) and
    never-held (negative) candidates per method."""
    # matplotlib loads only when pictures are drawn (the table renders without it)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the backend that draws without a display

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for metric, draw in (("klom", _draw_klom), ("ulira", _draw_ulira)):
        rows = [r for r in summary["rows"] if r["metric"] == metric]
        if not rows:
            continue
        prunings = list(dict.fromkeys(r["pruning"] for r in rows))
        fig, axes = plt.subplots(1, len(prunings), figsize=(5.5 * len(prunings), 4.2), squeeze=False,
                                 sharey=True)
        for ax, pruning in zip(axes[0], prunings):
            draw(ax, [r for r in rows if r["pruning"] == pruning], arrays, pruning)
        fig.tight_layout()
        picture = figure_bytes(fig, fmt, dpi)  # an SVG redrawn from the same record is byte-identical
        plt.close(fig)
        path = folder / f"{metric}-per-example.{fmt}"
        atomic_write_bytes(path, picture)
        written.append(path)
        log(f"wrote {path}")
    return written


def _draw_klom(ax, rows, arrays, pruning) -> None:
    methods = [r["method"] for r in rows]
    data = [arrays[f"klom/{pruning}/{m}/forget"] for m in methods]
    ax.boxplot(data, showfliers=False)
    for i, values in enumerate(data, start=1):
        jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(i + jitter, values, s=8, alpha=0.6)
    null = rows[0].get("null_forget")
    if null is not None:
        ax.axhline(null, linestyle="--", color="gray", label=f"null P95 ({null:.2f})")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xticks(range(1, len(methods) + 1), methods, rotation=30)
    ax.set_title(f"KLoM per forget example, {pruning}")
    ax.set_ylabel("KL(unlearned ‖ oracle), nats")


def _draw_ulira(ax, rows, arrays, pruning) -> None:
    methods = [r["method"] for r in rows]
    for i, method in enumerate(methods):
        llr = arrays[f"ulira/{pruning}/{method}/llr"]
        label = arrays[f"ulira/{pruning}/{method}/label"].astype(bool)
        for mask, offset, color in ((label, -0.15, "tab:red"), (~label, 0.15, "tab:blue")):
            values = np.clip(llr[mask], -20, 20)
            ax.scatter(np.full(len(values), i + 1 + offset), values, s=5, alpha=0.3, color=color)
    ax.axhline(0, color="gray", linewidth=0.8)
    ax.scatter([], [], color="tab:red", label="forgotten (positive)")
    ax.scatter([], [], color="tab:blue", label="never held (negative)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xticks(range(1, len(methods) + 1), methods, rotation=30)
    ax.set_title(f"U-LiRA log-likelihood ratio, {pruning}")
    ax.set_ylabel("Λ (clipped to ±20); > 0: called forgotten")
