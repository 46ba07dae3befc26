"""The paper's pictures, drawn from run records (never from numbers typed by hand).

* ``radar-*``: one radar chart per (dataset, arch, scenario, forget set, pruning), as the paper's
  Figure 1: an axis per metric in percent (UA, MIA-Efficacy, RA, TA for the built-ins) and speed
  (1/RTE: the first metric in seconds, scaled so the fastest method of the chart is 100), one
  polygon per method, Retrain as the black dashed reference.
* ``sweep-*``: each metric but the timed ones against sparsity (dense = 0), one line per method,
  one figure per setting and pruner; drawn once some method has runs at two sparsity levels or
  more.

The metrics and their labels and units come from the declarations the records keep
(:func:`~unlearnbench.report.leaderboard.metric_declarations`), so a plugin's metric is drawn
like the built-ins'.
* ``backdoor-*``: for records whose probes hold ``ASR``, the attack success rate before
  (dashed) and after (solid) unlearning against sparsity, and clean accuracy beside it.

Every value is the mean over seeds; ±1 std (sample, as the leaderboard) is drawn as error bars
on radars and as bands on curves. Figures are built on the Agg canvas without pyplot, so
drawing never opens a window and leaves no global figure state behind.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.colors
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..errors import ConfigError, UnlearnbenchError
from ..metric import MetricDeclaration
from .leaderboard import REFERENCE_METHOD, metric_declarations, records_frame, timed_metrics
from .records import RunRecord
from ..storage import atomic_write_bytes

FORMATS = ("png", "svg")
PROBE_PANELS = {"ASR": ("ASR", "attack success rate (%)"),
                "clean_acc": ("clean accuracy", "clean test accuracy (%)")}
_MARKERS = "osD^vPX<>hp*"
# Linear spacing crowds sparsities such as 0.99 and 0.995 into one spot: below this share of
# the axis between two neighbours, the sweep spaces them by log(1 - sparsity) instead.
_CROWDED = 0.08


class NotEnoughData(UnlearnbenchError):
    """The records cannot support a picture (too few methods or sparsity levels)."""


@dataclass(frozen=True)
class Skipped:
    """A picture that was not drawn, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Style:
    """One colour and marker per method, shared by every picture so a method reads the same."""

    colors: dict[str, str]
    markers: dict[str, str]

    @classmethod
    def for_methods(cls, methods: Sequence[str]) -> Style:
        others = [m for m in method_order(methods) if m != REFERENCE_METHOD]
        cmap = matplotlib.colormaps["tab10" if len(others) <= 10 else "tab20"]
        colors = {m: matplotlib.colors.to_hex(cmap(i % cmap.N)) for i, m in enumerate(others)}
        markers = {m: _MARKERS[i % len(_MARKERS)] for i, m in enumerate(others)}
        return cls(colors={REFERENCE_METHOD: "#000000", **colors},
                   markers={REFERENCE_METHOD: "o", **markers})

    def line(self, method: str, dashed_reference: bool = True) -> dict[str, object]:
        """Keyword arguments of a method's line: Retrain is the black (dashed) reference."""
        reference = method == REFERENCE_METHOD
        return {"color": self.colors[method], "marker": self.markers[method], "label": method,
                "linestyle": "--" if reference and dashed_reference else "-",
                "linewidth": 2.2 if reference else 1.6, "zorder": 3 if reference else 2}


def method_order(methods: Sequence[str]) -> list[str]:
    """Retrain first (the reference), then the others by name, as in the leaderboard."""
    unique = sorted(set(methods))
    return [m for m in unique if m == REFERENCE_METHOD] + [m for m in unique if m != REFERENCE_METHOD]


# ---- numbers -------------------------------------------------------------------------------

def _frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per record: the leaderboard's columns, the target sparsity (dense = 0), probes."""
    frame = records_frame(records)
    frame["target"] = [r.target_sparsity if r.pruner else 0.0 for r in records]
    probes = pd.DataFrame([{f"{name} {when}": value for name, values in r.probes.items()
                            for when, value in values.items()} for r in records], index=frame.index)
    return pd.concat([frame, probes], axis=1)


def _summarize(frame: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    """``{value}_mean``, ``{value}_std`` (sample std, 0 for one seed) and ``n`` per group."""
    grouped = frame.groupby(keys, sort=True)
    summary = grouped[values].mean().add_suffix("_mean")
    summary = summary.join(grouped[values].std(ddof=1).fillna(0.0).add_suffix("_std"))
    summary["n"] = grouped.size()
    return summary


def _one(records: Sequence[RunRecord], key: Callable[[RunRecord], tuple], what: str) -> tuple:
    keys = sorted({key(r) for r in records}, key=str)
    if len(keys) != 1:
        raise ConfigError(f"a {what} picture draws records of one group, got {len(keys)}: {keys}")
    return keys[0]


def _setting(r: RunRecord) -> tuple[str, str, str, str]:
    return (r.dataset, r.arch, r.scenario, r.forget)


def _pruning(r: RunRecord) -> str:
    return f"{r.pruner}{r.target_sparsity:g}" if r.pruner else "dense"


def _slug(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9.+-]+", "_", p).strip("_") for p in parts)


def _seeds_note(summary: pd.DataFrame) -> str:
    low, high = int(summary["n"].min()), int(summary["n"].max())
    seeds = f"{low}" if low == high else f"{low}-{high}"
    return f"mean over {seeds} seed{'s' if high > 1 else ''}" + (", ±1 std" if high > 1 else "")


def _setting_title(setting: tuple[str, str, str, str]) -> str:
    dataset, arch, scenario, forget = setting
    return f"{dataset} · {arch} · forget {forget} ({scenario})"


# ---- which metrics a picture shows ---------------------------------------------------------

def radar_axes(metrics: dict[str, MetricDeclaration]) -> tuple[list[str], str | None]:
    """The radar's metric axes (the metrics in percent, in column order) and the timed metric
    whose inverse is its speed axis (the first in seconds; None without one)."""
    timed = timed_metrics(metrics)
    return [m for m, d in metrics.items() if d.unit == "%"], timed[0] if timed else None


def sweep_panels(metrics: dict[str, MetricDeclaration]) -> list[str]:
    """The sweep's panels: every metric but the timed ones (device-dependent), in column order."""
    timed = timed_metrics(metrics)
    return [m for m in metrics if m not in timed]


def speed_label(timed: MetricDeclaration) -> str:
    return f"1/{timed.label}: speed\n(100 = fastest here)"


# ---- radar ---------------------------------------------------------------------------------

def radar_figure(records: Sequence[RunRecord], style: Style | None = None) -> Figure:
    """The Figure-1 radar of one (setting, pruning): a polygon per method, Retrain dashed.

    The speed axis is ``100 * min RTE / RTE`` (1/RTE relative to the fastest method of this
    chart; RTE: the timed metric of :func:`radar_axes`), so it reads like the others: bigger is
    better, 100 at most.
    """
    setting, pruning = _one(records, lambda r: (_setting(r), _pruning(r)), "radar")
    metrics = metric_declarations(records)
    percent, timed = radar_axes(metrics)
    if len(percent) + (timed is not None) < 3:
        raise NotEnoughData("a radar needs three axes or more: metrics in percent, and speed")
    frame = _frame(records)
    summary = _summarize(frame, ["method"], percent + ([timed] if timed else []))
    if len(summary) < 2:
        raise NotEnoughData(f"only {summary.index[0]!r} has runs; a radar compares two methods or more")
    labels = [metrics[m].label for m in percent]
    if timed is not None:
        if (summary[f"{timed}_mean"] <= 0).any():
            raise NotEnoughData(f"a method's mean {metrics[timed].label} is not positive, so its "
                                f"speed is undefined")
        summary["speed_mean"] = 100.0 * summary[f"{timed}_mean"].min() / summary[f"{timed}_mean"]
        summary["speed_std"] = 0.0
        labels.append(speed_label(metrics[timed]))
    style = style or Style.for_methods(list(summary.index))

    axes_keys = percent + (["speed"] if timed else [])
    angles = np.linspace(0.0, 2 * math.pi, len(axes_keys), endpoint=False)
    fig = _new_figure((7.6, 6.0))
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_offset(math.pi / 2)
    ax.set_theta_direction(-1)
    for method in method_order(list(summary.index)):
        row = summary.loc[method]
        means = np.array([row[f"{k}_mean"] for k in axes_keys], dtype=float)
        stds = np.array([row[f"{k}_std"] for k in axes_keys], dtype=float)
        kwargs = style.line(method)
        ax.plot(np.r_[angles, angles[:1]], np.r_[means, means[:1]], markersize=5, **kwargs)
        if method != REFERENCE_METHOD:
            ax.fill(angles, means, color=kwargs["color"], alpha=0.06, zorder=1)
        if (stds > 0).any():  # clipped to [0, 100]: a percentage cannot leave it
            yerr = np.vstack([np.minimum(stds, means), np.minimum(stds, 100 - means).clip(0)])
            ax.errorbar(angles, means, yerr=yerr, fmt="none", ecolor=kwargs["color"], alpha=0.7,
                        elinewidth=1.2, capsize=0, zorder=kwargs["zorder"])
    ax.set_xticks(angles, labels, fontsize=10)
    ax.tick_params(axis="x", pad=10)
    for angle, label in zip(angles, ax.get_xticklabels()):  # grow outwards, away from the data
        side = math.sin(angle)
        label.set_horizontalalignment("left" if side > 0.1 else "right" if side < -0.1 else "center")
    ax.set_ylim(0, 105)
    ax.set_yticks([20, 40, 60, 80, 100], ["20", "40", "60", "80", "100"], fontsize=7, color="0.4")
    ax.set_rlabel_position(180 / len(axes_keys))  # between the UA and MIA axes, off the data labels
    devices = sorted(set(frame["device"]))
    where = ""
    if timed is not None:
        label = metrics[timed].label
        where = (f"; {label} on {devices[0]}" if len(devices) == 1
                 else f"; {label} from several devices: speed not comparable")
    fig.suptitle(f"{_setting_title(setting)} · {pruning}\n"
                 f"{_seeds_note(summary)} (%){where}", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.12, 1.02), fontsize=9, frameon=False)
    return fig


# ---- sparsity sweep ------------------------------------------------------------------------

def use_density_axis(levels: Sequence[float]) -> bool:
    """Whether a log(1 - sparsity) axis reads better than a linear one for these levels.

    True when two neighbouring levels would sit closer than ``_CROWDED`` of a linear axis,
    as 0.95, 0.99 and 0.995 do beside a dense 0.
    """
    levels = sorted(set(levels))
    if len(levels) < 3 or levels[-1] >= 1.0:
        return False
    closest = min(b - a for a, b in zip(levels, levels[1:]))
    return closest < _CROWDED * (levels[-1] - levels[0])


def _sparsity_axis(ax: Axes, levels: Sequence[float], density: bool, label: bool) -> None:
    """Ticks at the real sparsities, whichever spacing is used."""
    if density:
        ax.set_xscale("log")
        ax.set_xlim(max(1.0 - min(levels), 1e-12) * 1.4, (1.0 - max(levels)) / 1.4)  # denser left
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    else:
        pad = 0.05 * (max(levels) - min(levels) or 1.0)
        ax.set_xlim(min(levels) - pad, max(levels) + pad)
    ax.set_xticks(_xpos(levels, density), [f"{s:g}" for s in levels])
    ax.tick_params(axis="x", labelsize=9, labelrotation=45 if len(levels) > 5 else 0)
    if label:
        spacing = ", log(1 - sparsity) spacing" if density else ""
        ax.set_xlabel(f"sparsity (target; dense = 0{spacing})")
    ax.grid(alpha=0.3)


def _xpos(levels: Sequence[float], density: bool) -> np.ndarray:
    levels = np.asarray(levels, dtype=float)
    return 1.0 - levels if density else levels


def _curve(ax: Axes, x: np.ndarray, mean: np.ndarray, std: np.ndarray, band: bool,
           percent: bool = True, **kwargs: object) -> None:
    ax.plot(x, mean, markersize=5, **kwargs)
    if band and (std > 0).any():  # percentages: a band past 0 or 100 would show the impossible
        low, high = mean - std, mean + std
        if percent:
            low, high = np.clip(low, 0, 100), np.clip(high, 0, 100)
        ax.fill_between(x, low, high, color=kwargs["color"], alpha=0.12, linewidth=0)


def _levels_by_method(summary: pd.DataFrame) -> pd.Series:
    return summary.reset_index().groupby("method")["target"].nunique()


def _one_pruner(records: Sequence[RunRecord], what: str) -> tuple[tuple, str]:
    setting = _one(records, _setting, what)
    pruners = sorted({r.pruner for r in records if r.pruner})
    if len(pruners) > 1:
        raise ConfigError(f"a {what} picture draws one pruner's runs, got {pruners}")
    return setting, (pruners[0] if pruners else "dense")


def sweep_figure(records: Sequence[RunRecord], style: Style | None = None) -> Figure:
    """Every metric of :func:`sweep_panels` (UA, MIA-Efficacy, RA and TA for the built-ins)
    against sparsity for one setting and one pruner, two panels a row."""
    setting, pruner = _one_pruner(records, "sweep")
    metrics = metric_declarations(records)
    panels = sweep_panels(metrics)
    if not panels:
        raise NotEnoughData("the records hold no metric to draw against sparsity")
    summary = _summarize(_frame(records), ["method", "target"], panels)
    if _levels_by_method(summary).max() < 2:
        raise NotEnoughData("no method has runs at two sparsity levels or more")
    levels = sorted(summary.index.get_level_values("target").unique())
    density = use_density_axis(levels)
    style = style or Style.for_methods(list(summary.index.get_level_values("method")))
    columns = min(2, len(panels))
    rows_of_panels = math.ceil(len(panels) / columns)
    fig = _new_figure((10.5 if columns == 2 else 6.0, 3.5 * rows_of_panels))
    axes = fig.subplots(rows_of_panels, columns, sharex=True, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.remove()
    if len(panels) % columns:  # the panel above the empty place is a bottom one too
        axes.flat[len(panels) - columns].tick_params(axis="x", labelbottom=True)
    for i, (ax, metric) in enumerate(zip(axes.flat, panels)):
        unit = metrics[metric].unit
        for method in method_order(list(summary.index.get_level_values("method"))):
            rows = summary.loc[method].sort_index()
            _curve(ax, _xpos(rows.index, density), rows[f"{metric}_mean"].to_numpy(),
                   rows[f"{metric}_std"].to_numpy(), band=True, percent=unit == "%",
                   **style.line(method))
        ax.set_title(metrics[metric].label, fontsize=11)
        ax.set_ylabel(unit)
        _sparsity_axis(ax, levels, density, label=i >= len(panels) - columns)
    fig.suptitle(f"{_setting_title(setting)} · pruner {pruner}\n{_seeds_note(summary)} (band)",
                 fontsize=11)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=9, frameon=False)
    return fig


# ---- backdoor ------------------------------------------------------------------------------

def backdoor_figure(records: Sequence[RunRecord], style: Style | None = None) -> Figure:
    """ASR before (dashed) and after (solid) unlearning against sparsity; clean accuracy beside.

    The model before unlearning is the same for every method at one sparsity, so when all
    methods agree on a "before" value it is drawn once, in grey, instead of as overlapping lines.
    """
    records = [r for r in records if "ASR" in r.probes]
    if not records:
        raise NotEnoughData("no record has an ASR probe")
    setting, pruner = _one_pruner(records, "backdoor")
    frame = _frame(records)
    panels = [p for p in PROBE_PANELS if f"{p} after" in frame]
    if "ASR" not in panels:
        raise NotEnoughData("the ASR probes hold no 'after' value")
    values = [f"{p} {w}" for p in panels for w in ("before", "after") if f"{p} {w}" in frame]
    summary = _summarize(frame, ["method", "target"], values)
    if _levels_by_method(summary).max() < 2:
        raise NotEnoughData("no method has ASR at two sparsity levels or more")
    levels = sorted(summary.index.get_level_values("target").unique())
    density = use_density_axis(levels)
    methods = method_order(list(summary.index.get_level_values("method")))
    style = style or Style.for_methods(methods)
    fig = _new_figure((5.2 * len(panels) + 1.8, 4.6))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, probe in zip(axes, panels):
        _draw_before(ax, summary, f"{probe} before", methods, style, density)
        for method in methods:
            rows = summary.loc[method].sort_index()
            _curve(ax, _xpos(rows.index, density), rows[f"{probe} after_mean"].to_numpy(),
                   rows[f"{probe} after_std"].to_numpy(), band=True,
                   **style.line(method, dashed_reference=False))  # dashes mean "before" here
        title, ylabel = PROBE_PANELS[probe]
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: after unlearning (solid), before (dashed)", fontsize=10)
        _sparsity_axis(ax, levels, density, label=True)
    fig.suptitle(f"{_setting_title(setting)} · pruner {pruner}\n{_seeds_note(summary)} (band)",
                 fontsize=11)
    handles, labels = axes[0].get_legend_handles_labels()
    handles += [Line2D([], [], color="0.2", linestyle="-"), Line2D([], [], color="0.2", linestyle="--")]
    labels += ["after unlearning", "before unlearning"]
    fig.legend(handles, labels, loc="outside right upper", fontsize=9, frameon=False)
    return fig


def _draw_before(ax: Axes, summary: pd.DataFrame, column: str, methods: list[str], style: Style,
                 density: bool) -> None:
    if f"{column}_mean" not in summary:
        return
    table = summary[f"{column}_mean"].unstack("method")
    shared = table.dropna(how="all")
    if np.allclose(shared.min(axis=1), shared.max(axis=1), rtol=0, atol=1e-9):
        ax.plot(_xpos(shared.index, density), shared.mean(axis=1).to_numpy(), color="0.45",
                linestyle="--", linewidth=2.0, marker=".", label="_before (all methods)")
        return
    for method in methods:
        rows = summary.loc[method].sort_index()
        ax.plot(_xpos(rows.index, density), rows[f"{column}_mean"].to_numpy(),
                color=style.colors[method], linestyle="--", linewidth=1.4, marker=".",
                label=f"_{method} before")  # a leading "_" keeps it out of the legend


# ---- all pictures --------------------------------------------------------------------------

def _new_figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


Picture = tuple[str, Figure]


def pictures(records: Sequence[RunRecord]) -> Iterator[Picture | Skipped]:
    """Every picture the records support, by stable name, and a :class:`Skipped` for the rest."""
    style = Style.for_methods([r.label or r.method for r in records])
    for key, group in _groups(records, lambda r: (*_setting(r), _pruning(r))):
        yield _attempt(f"radar-{_slug(*key)}", radar_figure, group, style)
    for setting, group in _groups(records, _setting):
        pruned = _groups([r for r in group if r.pruner], lambda r: (r.pruner,))
        if not pruned:
            yield Skipped(f"sweep-{_slug(*setting)}", "only dense runs; a sweep needs pruned ones")
        dense = [r for r in group if not r.pruner]
        for (pruner,), runs in pruned:
            yield _attempt(f"sweep-{_slug(*setting, pruner)}", sweep_figure, dense + runs, style)
            backdoor = [r for r in dense + runs if "ASR" in r.probes]
            if backdoor:
                yield _attempt(f"backdoor-{_slug(*setting, pruner)}", backdoor_figure, backdoor, style)
        if not pruned and any("ASR" in r.probes for r in dense):
            yield Skipped(f"backdoor-{_slug(*setting)}", "only dense runs; the ASR curve needs pruned ones")


def _groups(records: Sequence[RunRecord], key: Callable[[RunRecord], tuple]
            ) -> list[tuple[tuple, list[RunRecord]]]:
    groups: dict[tuple, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return sorted(groups.items(), key=lambda item: [str(k) for k in item[0]])


def _attempt(name: str, draw: Callable[..., Figure], records: list[RunRecord],
             style: Style) -> Picture | Skipped:
    try:
        return name, draw(records, style)
    except NotEnoughData as exc:
        return Skipped(name, str(exc))


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 150) -> bytes:
    """The picture as a PNG or SVG file's bytes."""
    buffer = io.BytesIO()
    # A fixed salt and no date keep an SVG byte-identical when redrawn from the same records.
    with matplotlib.rc_context({"svg.hashsalt": "unlearnbench"}):
        fig.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight",
                    metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


def save_figure(fig: Figure, path: Path, fmt: str = "png", dpi: int = 150) -> Path:
    """Write atomically (a temporary file in the folder, then a rename): never half a picture."""
    atomic_write_bytes(path, figure_bytes(fig, fmt, dpi))
    return path


def plot_all(records: Sequence[RunRecord], out_dir: Path, fmt: str = "png", *, dpi: int = 150,
             log: Callable[[str], None] = print) -> list[Path]:
    """Draw every supported picture into ``out_dir/NAME.FMT``; report skipped ones via ``log``."""
    if not records:
        raise ConfigError("no run records to plot")
    if fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r} is invalid: expected one of {', '.join(FORMATS)}")
    if dpi <= 0:
        raise ConfigError(f"dpi {dpi} is invalid: expected a positive integer")
    if diverged := [r for r in records if r.diverged]:  # no numbers to draw; said, not hidden
        log(f"left out {len(diverged)} diverged run{'s' if len(diverged) != 1 else ''}: "
            + ", ".join(r.run_id for r in diverged[:5]) + (", ..." if len(diverged) > 5 else ""))
        records = [r for r in records if not r.diverged]
        if not records:
            raise ConfigError("every run record is of a diverged run; nothing to plot")
    paths: list[Path] = []
    for item in pictures(records):
        if isinstance(item, Skipped):
            log(f"skipped {item.name}: {item.reason}")
            continue
        name, fig = item
        path = Path(out_dir) / f"{name}.{fmt}"
        if path in paths:
            raise ConfigError(f"two pictures would both be written to {path}; rename a forget set "
                              f"or dataset so their names differ")
        paths.append(save_figure(fig, path, fmt, dpi))
    return paths
