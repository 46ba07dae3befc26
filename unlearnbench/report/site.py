"""The leaderboard as a static web site: works from disk (``file://``) and from any static host.

``build_site(results, output)`` turns a folder of run records into

* ``index.html``: an overview of every benchmark folder (dataset, architecture, scale,
  scenarios, date, device);
* ``FOLDER/index.html``: that folder's table and its pictures (inline SVG);
* ``FOLDER/runs/RUN_ID.html``: one run's full record (configuration, provenance, timings, probes);
* ``AUDIT/index.html``: a population audit's page (a folder with ``audit.json``): its KLoM and
  U-LiRA tables, hyperparameters and cost, and its per-example pictures drawn from
  ``per_example.npz`` (``AUDIT/*.svg``);
* ``assets/``: one small CSS and one small JS file. Nothing is fetched from the network.

A benchmark folder is a folder with a ``records/`` subfolder (what ``unlearnbench reproduce``
writes) or with record files of its own; ``results`` is either one such folder or a folder of them
(``leaderboard/``). The table's cells are the markdown table's cells: both come from
:func:`~unlearnbench.report.leaderboard.summarize` and its ``display_frame``, so they cannot
disagree. The tables read without JavaScript; the script only adds sorting and filtering.

Records that ``unlearnbench verify`` re-executed are marked: the outcomes it wrote to
``verified.json`` beside them (record identity -> outcome) put a ✓ (verified) or ✗ (failed)
after the run's link, mark a row whose every run verified, and add a section to the run's page.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import matplotlib
import numpy as np
import pandas as pd

from ..errors import ConfigError, DataNotFoundError
from ..metric import MetricDeclaration
from .leaderboard import (DISPARITY, GROUP, PROBE, REFERENCE_METHOD, STEPS, WORK, disparity_metrics,
                          display_frame, metric_declarations, records_frame, summarize, table_notes)
from .audit import PICTURE_CAPTIONS, audit_blocks, plot_audit, recorded_total, table_text
from .plots import Skipped, figure_bytes, pictures, radar_axes, sweep_panels
from .records import VERIFIED_FILE, RunRecord, load_records

ASSETS = Path(__file__).with_name("site_assets")
TEMPLATES = Path(__file__).with_name("site_templates")
MARKER = ".unlearnbench-site"  # an output folder holding it is ours to replace


@dataclass(frozen=True)
class MetricColumn:
    """How one metric reads: its key in the summary, its column in the table, unit, direction
    and what it measures.

    ``direction`` is ``"retrain"`` (closer to Retrain is better: the cell's gap to Retrain is
    shaded by size), ``"lower"`` or ``"higher"``.
    """

    key: str
    column: str
    unit: str
    direction: str
    description: str = ""


def metric_columns(metrics: dict[str, MetricDeclaration]) -> tuple[MetricColumn, ...]:
    """The metric columns of a table of ``metrics`` (``metric_declarations(records)``), in the
    table's order: the Disparity metrics, Disparity Ave., the others."""
    gaps = disparity_metrics(metrics)

    def column(name: str) -> MetricColumn:
        d = metrics[name]
        return MetricColumn(name, d.header, d.unit, d.direction, d.description)

    columns = [column(m) for m in gaps]
    if gaps:
        units = {metrics[m].unit for m in gaps}
        columns.append(MetricColumn(
            "disparity", DISPARITY, units.pop() if len(units) == 1 else "mixed", "lower",
            f"mean gap to Retrain over {_and_join([metrics[m].label for m in gaps])}"))
    return tuple(columns + [column(m) for m in metrics if m not in gaps])


def _and_join(items: Sequence[str]) -> str:
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)
# Other numeric columns of the table, and the summary column each sorts by.
NUMERIC_COLUMNS = {"seeds": "n", "sparsity": "sparsity_mean", STEPS: f"{WORK}steps_mean"}
DIRECTIONS = {"retrain": ("≈R", "closer to Retrain is better"), "lower": ("↓", "lower is better"),
              "higher": ("↑", "higher is better")}
# Upper bounds (percentage points) of the gap shades 0..5; a larger gap gets shade 6.
GAP_SHADES = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0)
FILTERS = ("scenario", "pruning", "method")


# ---- the table: the one place that reads the leaderboard's summary -----------------------

@dataclass(frozen=True)
class Cell:
    text: str
    sort: float | str | None = None  # what the column sorts by (None: empty, sorts last)
    shade: int | None = None  # gap-to-Retrain shade, 0 (close) .. 6 (far)
    gap: float | None = None


@dataclass(frozen=True)
class Column:
    name: str
    numeric: bool
    metric: MetricColumn | None = None


@dataclass(frozen=True)
class Row:
    cells: tuple[Cell, ...]
    facets: dict[str, str]  # scenario, pruning, method: what the filters select on
    runs: tuple[tuple[int, str], ...]  # (seed, run id), linked from the row
    reference: bool  # a Retrain row
    # judged against `none` (leaderboard.inert_verdicts): "baseline" (none's row), "inert" (no
    # measurable unlearning), "" (differs, or not judged)
    verdict: str = ""
    # `unlearnbench verify`'s outcome by run id: "verified" or "failed" (runs not verified: absent)
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        """Every run of the row re-executed to its recorded results."""
        return bool(self.runs) and all(self.checks.get(run_id) == "verified" for _, run_id in self.runs)


@dataclass(frozen=True)
class Table:
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    constant: dict[str, str]  # columns dropped from the table because they hold one value
    notes: tuple[str, ...]
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)


def gap_shade(gap: float) -> int:
    return next((i for i, bound in enumerate(GAP_SHADES) if gap <= bound), len(GAP_SHADES))


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def build_table(records: Sequence[RunRecord], verified: dict[str, dict[str, Any]] | None = None) -> Table:
    """The leaderboard's rows with the markdown table's cell texts, sort keys and gap shades;
    ``verified``: ``unlearnbench verify``'s outcomes by record identity (:func:`load_verifications`)."""
    checks = {r.run_id: "verified" if verified[r.identity].get("verified") else "failed"
              for r in records if verified and r.identity in verified}
    summary = summarize(records)
    declared = metric_declarations(records)
    frame = display_frame(summary, declared)
    metrics = {m.column: m for m in metric_columns(declared)}
    probes = {f"{name} (before → after)": name
              for name in sorted({c.split(":")[1] for c in summary.columns if c.startswith(PROBE)})}
    columns = tuple(Column(name, numeric=name in metrics or name in probes or name in NUMERIC_COLUMNS,
                           metric=metrics.get(name)) for name in frame.columns)
    runs = records_frame(records).assign(run_id=[r.run_id for r in records]).groupby(GROUP, sort=False)
    rows = []
    for (_, s), (_, shown) in zip(summary.iterrows(), frame.iterrows()):
        cells = []
        for column in columns:
            text = str(shown[column.name])
            if column.metric:
                key = column.metric.key
                mean = _number(s.get(f"{key}_mean", s.get(key)))
                gap = _number(s.get(f"{key}_gap"))
                cells.append(Cell(text, mean, None if gap is None else gap_shade(gap), gap))
            elif column.name in probes:
                cells.append(Cell(text, _number(s.get(f"{PROBE}{probes[column.name]}:after_mean"))))
            elif column.name in NUMERIC_COLUMNS:
                cells.append(Cell(text, _number(s[NUMERIC_COLUMNS[column.name]])))
            else:
                cells.append(Cell(text, text))
        group = runs.get_group(tuple(s[k] for k in GROUP))
        rows.append(Row(tuple(cells), {k: str(s[k]) for k in FILTERS},
                        tuple(sorted(zip(group["seed"].astype(int), group["run_id"]))),
                        s["method"] == REFERENCE_METHOD,
                        {"baseline": "baseline", "yes": "inert"}.get(s.get("inert"), ""),
                        {run_id: checks[run_id] for run_id in group["run_id"] if run_id in checks}))
    constant = {c: str(summary[c].iloc[0]) for c in ("dataset", "arch") if c not in frame.columns}
    filters = {k: tuple(dict.fromkeys(str(v) for v in summary[k])) for k in FILTERS}
    return Table(columns, tuple(rows), constant, tuple(table_notes(records, summary)), filters)


# ---- benchmark folders ---------------------------------------------------------------------

@dataclass(frozen=True)
class Benchmark:
    slug: str
    title: str
    folder: Path
    records: tuple[RunRecord, ...]
    recipe: dict[str, Any]  # recipe.json beside the records, if any
    verified: dict[str, dict[str, Any]] = field(default_factory=dict)  # load_verifications


def benchmark_folders(results: Path, exclude: Path | None = None) -> list[Path]:
    """``results`` itself when it holds records, else each subfolder that does."""
    results = Path(results)
    if not results.is_dir():
        raise DataNotFoundError(f"results folder {results} does not exist")
    if _holds_records(results):
        return [results]
    skip = exclude.resolve() if exclude else None
    folders = [d for d in sorted(results.iterdir())
               if d.is_dir() and d.resolve() != skip and _holds_records(d)]
    if not folders:
        raise DataNotFoundError(f"no run records (*.json) under {results}: expected a folder of "
                                f"records, or of benchmark folders each with a records/ folder")
    return folders


def _holds_records(folder: Path) -> bool:
    """Whether ``folder`` is a benchmark of records. A population audit's folder (its
    ``audit.json``) is not: its records are the members of populations, read through its own
    ``table.md`` (``unlearnbench.report.audit``), not rows of a leaderboard."""
    if (folder / "audit.json").is_file():
        return False
    records = folder / "records"
    if records.is_dir():
        return any(records.rglob("*.json"))
    return any(p.name != "recipe.json" for p in folder.glob("*.json"))


@dataclass(frozen=True)
class AuditPage:
    """A population audit's folder (its ``audit.json`` and ``per_example.npz``): one page."""

    slug: str
    title: str
    folder: Path
    summary: dict[str, Any]


def audit_folders(results: Path, exclude: Path | None = None) -> list[Path]:
    """``results`` itself when it is an audit's folder, else each subfolder that is."""
    results = Path(results)
    if (results / "audit.json").is_file():
        return [results]
    skip = exclude.resolve() if exclude else None
    return [d for d in sorted(results.iterdir()) if d.is_dir() and d.resolve() != skip
            and (d / "audit.json").is_file()] if results.is_dir() else []


def load_audit_page(folder: Path, slug: str) -> AuditPage:
    try:
        summary = json.loads((folder / "audit.json").read_text())
    except (OSError, ValueError) as exc:
        raise DataNotFoundError(f"audit {folder}: audit.json is not readable JSON ({exc})") from None
    return AuditPage(slug, _readme_title(folder) or f"Audit {summary.get('name', folder.name)}", folder, summary)


def audit_overview(audit: AuditPage) -> dict[str, str]:
    """One line of the overview page's audit table."""
    spec, summary = audit.summary["spec"], audit.summary
    base = spec["base"]
    return {"setting": f"{base.get('arch')} on {base.get('dataset')} ({base.get('train_size') or 'all'} "
                       f"training images), forget {spec['forget']:g}",
            "metrics": ", ".join(summary["metrics"]), "methods": str(len(spec["methods"])),
            "prunings": str(len(spec["prunings"])), "models": str(spec["models"]),
            "runs": str(summary["cost"]["unlearning"]), "wall": f"{summary['wall_clock_s']:,.0f} s",
            "recorded": f"{recorded_total(summary['trial_seconds']):,.0f} s" if summary.get("trial_seconds") else "—"}


def audit_page_blocks(audit: AuditPage) -> list[tuple[str, Any]]:
    """The audit's report blocks with each table as escaped HTML (the page marks it safe)."""
    return [(kind, table_text(content, "html") if kind == "table" else content)
            for kind, content in audit_blocks(audit.summary)[1:]]  # the page's own h1 replaces the first


def load_benchmark(folder: Path, slug: str) -> Benchmark:
    records_folder = folder / "records" if (folder / "records").is_dir() else folder
    records = load_records(records_folder)
    recipe_path = folder / "recipe.json"
    recipe = json.loads(recipe_path.read_text()) if recipe_path.is_file() else {}
    return Benchmark(slug, _readme_title(folder) or folder.name, folder, tuple(records), recipe,
                     load_verifications(records_folder))


def load_verifications(folder: Path) -> dict[str, dict[str, Any]]:
    """What ``unlearnbench verify`` found for the records under ``folder``: every
    ``verified.json`` there, merged (record identity -> outcome: ``verified``, ``problems``,
    ``device``, ``unlearnbench``, ``commit``, ``date``). A file that is not such a mapping is
    passed over."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).rglob(VERIFIED_FILE)):
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(entries, dict):
            found.update({k: v for k, v in entries.items() if isinstance(v, dict)})
    return found


def verification_lines(outcome: dict[str, Any] | None) -> list[tuple[str, str]]:
    """A run page's lines about its verification (none when it was not verified)."""
    if not outcome:
        return []
    code = f"unlearnbench {outcome.get('unlearnbench', '?')}"
    if outcome.get("commit"):
        code += f" (commit {outcome['commit']})"
    lines = [("result", "verified: re-executed to its recorded results" if outcome.get("verified")
              else "FAILED: " + "; ".join(outcome.get("problems") or ["not verified"])),
             ("code", code), ("device", str(outcome.get("device", "?"))),
             ("date", str(outcome.get("date", "?")))]
    if outcome.get("threads"):
        lines.insert(3, ("threads", str(outcome["threads"])))
    return lines


def _readme_title(folder: Path) -> str | None:
    readme = folder / "README.md"
    if readme.is_file():
        for line in readme.read_text().splitlines():
            if line.startswith("# "):
                return line[2:].replace("`", "").strip()  # plain text, not markdown
    return None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "results"


def overview(benchmark: Benchmark) -> dict[str, str]:
    """One line of the overview page: what a benchmark folder holds."""
    records = benchmark.records

    def values(get: Callable[[RunRecord], Any]) -> str:
        return ", ".join(str(v) for v in dict.fromkeys(get(r) for r in records))

    def sizes(r: RunRecord) -> str:
        train, test = (r.config.get(f"{split}_size") for split in ("train", "test"))
        if train is None and test is None:
            return "full dataset"
        count = lambda n: "all" if n is None else f"{n:,}"  # noqa: E731
        return f"subset of {count(train)} train / {count(test)} test images"

    sizes = values(sizes)
    scale = benchmark.recipe.get("scale")
    dates = sorted(r.created[:10] for r in records)
    return {"dataset": values(lambda r: r.dataset), "arch": values(lambda r: r.arch),
            "scale": f"{scale}: {sizes}" if scale else sizes,
            "scenarios": values(lambda r: r.scenario),
            "methods": str(len({r.label or r.method for r in records})),
            "runs": str(len(records)), "seeds": values(lambda r: r.seed),
            "date": dates[0] if dates[0] == dates[-1] else f"{dates[0]} – {dates[-1]}",
            "device": values(lambda r: r.environment.device_name)}


# ---- pictures ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Picture:
    name: str
    svg: str  # inline markup, ids prefixed so several pictures share one page
    alt: str


def picture_kinds(metrics: dict[str, MetricDeclaration]) -> dict[str, str]:
    """What each kind of picture shows, for its text alternative."""
    percent, timed = radar_axes(metrics)
    axes = [metrics[m].label for m in percent] + ([f"speed (1/{metrics[timed].label})"] if timed else [])
    return {"radar": f"Radar chart of {', '.join(axes[:-1])} and {axes[-1]}, one polygon per "
                     f"method, Retrain dashed" if len(axes) > 1 else "Radar chart",
            "sweep": f"{_and_join([metrics[m].label for m in sweep_panels(metrics)])} against "
                     f"sparsity, one line per method",
            "backdoor": "Backdoor attack success rate and clean accuracy before and after "
                        "unlearning against sparsity, one line per method"}


def draw_pictures(records: Sequence[RunRecord]) -> tuple[list[Picture], list[str]]:
    """Every picture the records support as inline SVG, and why the others were not drawn."""
    kinds = picture_kinds(metric_declarations(records))
    drawn, skipped = [], []
    for item in pictures(records):
        if isinstance(item, Skipped):
            skipped.append(f"{item.name}: {item.reason}")
            continue
        name, fig = item
        with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as text: smaller, selectable
            svg = figure_bytes(fig, "svg").decode()
        kind = name.split("-")[0]
        title = fig.get_suptitle().replace("\n", "; ") or name
        alt = f"{kinds.get(kind, name)}. {title}. The numbers are in the table above."
        drawn.append(Picture(name, inline_svg(svg, f"p{len(drawn)}", alt), alt))
    return drawn, skipped


def inline_svg(svg: str, prefix: str, alt: str) -> str:
    """An SVG document as markup to place in a page: no prolog, unique ids, a text alternative."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r'url\(#([^)]+)\)', rf'url(#{prefix}-\1)', svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', svg)
    alt = jinja2.utils.markupsafe.escape(alt)
    return re.sub(r"<svg\b([^>]*)>", rf'<svg\1 role="img" aria-labelledby="{prefix}-title">'
                                     rf'<title id="{prefix}-title">{alt}</title>', svg, count=1)


# ---- pages ---------------------------------------------------------------------------------

def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested mappings as ``a.b.c`` -> value lines, in a stable order."""
    if isinstance(value, dict) and value:
        lines = []
        for key in sorted(value):
            lines += _flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
        return lines
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (dict, list, tuple)) or value is None or isinstance(value, bool):
        text = json.dumps(value)
    else:
        text = str(value)
    return [(prefix, text)]


def _value(number: float | None) -> str:
    """A metric or probe value; None where the run diverged."""
    return "—" if number is None else f"{number:.4f}"


def run_sections(record: RunRecord) -> list[tuple[str, list[tuple[str, str]]]]:
    """The record, section by section, every field included."""
    data = record.to_dict()
    metrics = data.pop("metrics")
    data.pop("metric_declarations")
    columns = [c for c in metric_columns(metric_declarations([record])) if c.key in metrics]
    sections = [("Metrics", [(c.column, _value(metrics[c.key])) for c in columns]),
                ("Metric declarations", [(c.key, _declared(c, record.metric_declarations[c.key]))
                                         for c in columns])]
    probes = data.pop("probes")
    sections.append(("Probes", [(f"{name} ({when})", _value(value))
                                for name, values in sorted(probes.items())
                                for when, value in values.items()]))
    for key, title in (("config", "Configuration"), ("resolved", "Identity (the hashed configuration)"),
                       ("components", "Components"),
                       ("timings", "Timings (s)"), ("split", "Split"), ("environment", "Environment")):
        sections.append((title, _flatten(data.pop(key))))
    sections.insert(1, ("Run", _flatten(data)))
    return sections


def _declared(column: MetricColumn, d: MetricDeclaration) -> str:
    """One line of what a record says about one of its metrics."""
    disparity = ", in Disparity Ave." if d.in_disparity else ""
    return f"{d.label} ({d.unit}; {DIRECTIONS[column.direction][1]}{disparity}): {d.description}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.globals.update(directions=DIRECTIONS, gap_shades=GAP_SHADES, run_page=run_page_name,
                       version=md.version("unlearnbench"))
    return env


def build_site(results: Path, output: Path, *, log: Callable[[str], None] = print) -> list[Path]:
    """Write the site for the records under ``results`` into ``output``; returns the pages.

    The site is built in a fresh folder beside ``output`` and moved into place at the end, so an
    error leaves any earlier site untouched. An existing ``output`` is replaced only when it is an
    earlier site (it holds the marker file) or empty.
    """
    results, output = Path(results), Path(output)
    _check_output(output)
    audits = [load_audit_page(f, _folder_slug(f, results)) for f in audit_folders(results, exclude=output)]
    try:
        folders = benchmark_folders(results, exclude=output)
    except DataNotFoundError:
        if not audits:
            raise
        folders = []
    benchmarks = [load_benchmark(f, _folder_slug(f, results)) for f in folders]
    env = _environment()
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    staging.chmod(0o755)  # mkdtemp's folder is private; a site is for reading
    try:
        pages = _write_site(staging, benchmarks, audits, env, log)
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [output / p.relative_to(staging) for p in pages]


def _check_output(output: Path) -> None:
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output} is a file: expected a folder for the site")
    if output.is_dir() and any(output.iterdir()) and not (output / MARKER).is_file():
        raise ConfigError(f"--output {output} is a non-empty folder that is not an unlearnbench "
                          f"site (no {MARKER}): expected a new or empty folder")


def _folder_slug(folder: Path, results: Path) -> str:
    return _slug(str(folder.relative_to(results))) if folder != results else _slug(results.resolve().name)


def _write_site(root: Path, benchmarks: list[Benchmark], audits: list[AuditPage], env: jinja2.Environment,
                log: Callable[[str], None]) -> list[Path]:
    (root / "assets").mkdir()
    for asset in sorted(ASSETS.iterdir()):
        shutil.copyfile(asset, root / "assets" / asset.name)
    (root / MARKER).write_text("written by `unlearnbench leaderboard --format html`; "
                               "the folder is replaced when the site is regenerated\n")
    pages = [_page(root / "index.html", env.get_template("index.html").render(
        base="", benchmarks=[(b, overview(b)) for b in benchmarks],
        audits=[(a, audit_overview(a)) for a in audits],
        metrics=metric_columns(metric_declarations([r for b in benchmarks for r in b.records])),
        records=sum(len(b.records) for b in benchmarks)))]
    for b in benchmarks:
        pictures, skipped = draw_pictures(b.records)
        pages.append(_page(root / b.slug / "index.html", env.get_template("benchmark.html").render(
            base="../", benchmark=b, info=overview(b), table=build_table(b.records, b.verified),
            pictures=pictures, skipped=skipped)))
        for record in b.records:
            pages.append(_page(root / b.slug / "runs" / f"{_slug(record.run_id)}.html",
                               env.get_template("run.html").render(
                                   base="../../", benchmark=b, record=record,
                                   sections=run_sections(record) + (
                                       [("Verification", lines)] if (lines := verification_lines(
                                           b.verified.get(record.identity))) else []))))
        log(f"{b.slug}: {len(b.records)} runs, {len(pictures)} pictures")
    for a in audits:
        pages.append(_write_audit(root / a.slug, a, env))
        log(f"{a.slug}: audit, {a.summary['cost']['unlearning']} runs")
    return pages


def _write_audit(folder: Path, audit: AuditPage, env: jinja2.Environment) -> Path:
    """The audit's page, its per-example pictures drawn from ``per_example.npz`` as SVG files."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = []
    arrays_path = audit.folder / "per_example.npz"
    if arrays_path.is_file():
        with np.load(arrays_path) as arrays:
            drawn = plot_audit(audit.summary, dict(arrays), folder, log=lambda m: None, fmt="svg")
        figures = [(p.name, PICTURE_CAPTIONS[p.name.split("-")[0]]) for p in drawn]
    return _page(folder / "index.html", env.get_template("audit.html").render(
        base="../", audit=audit, info=audit_overview(audit), blocks=audit_page_blocks(audit),
        figures=figures))


def _page(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def run_page_name(run_id: str) -> str:
    """The file name of a run's page, relative to its benchmark folder's page."""
    return f"runs/{_slug(run_id)}.html"
