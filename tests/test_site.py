"""The static site: its table agrees with the markdown, csv and latex tables on every number;
its pages hold the records; it is self-contained; bad input fails before anything is written."""

from __future__ import annotations

import html

import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from unlearnbench import CorruptFileError
from unlearnbench.cli import main
from unlearnbench.report.leaderboard import render, summarize
from unlearnbench.report.records import load_records
from unlearnbench.report.site import GAP_SHADES, MARKER, build_site, gap_shade

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")

# (method, pruning, seed, forget) -> UA, MIA, RA, TA, RTE; the gaps are known by hand
RUNS = {
    ("retrain", None, 0, "class:0"): (100.0, 100.0, 99.0, 90.0, 40.0),
    ("retrain", None, 1, "class:0"): (98.0, 96.0, 97.0, 88.0, 44.0),
    ("ft", None, 0, "class:0"): (20.0, 70.0, 99.0, 92.0, 2.0),
    ("ft", None, 1, "class:0"): (30.0, 80.0, 99.0, 93.0, 3.0),
    ("ft", None, 2, "class:0"): (40.0, 90.0, 99.0, 94.0, 4.0),
    ("ga", None, 0, "class:0"): (98.5, 97.0, 95.0, 86.0, 1.0),
    ("retrain", "omp", 0, "class:0"): (100.0, 100.0, 100.0, 91.0, 41.0),
    ("ft", "omp", 0, "class:0"): (70.0, 85.0, 99.5, 92.0, 2.5),
    ("retrain", None, 0, "random:0.1"): (8.0, 14.0, 100.0, 93.0, 39.0),
    ("ft", None, 0, "random:0.1"): (5.0, 12.0, 97.0, 91.0, 2.2),
}


def make_runs(make_record, runs=RUNS, probes: bool = True):
    return [make_record(method=m, pruner=p, target_sparsity=0.95 if p else None, seed=s, forget=f,
                        UA=ua, MIA=mia, RA=ra, TA=ta, RTE=rte,
                        probes={"ASR": {"before": 99.0, "after": ua / 2}} if probes else {})
            for (m, p, s, f), (ua, mia, ra, ta, rte) in runs.items()]


def save(records, folder: Path) -> Path:
    for r in records:
        r.save(folder / f"{r.run_id}.json")
    return folder


@pytest.fixture
def bench(make_record, tmp_path: Path) -> Path:
    """One benchmark folder in a leaderboard folder, laid out as ``reproduce`` writes it."""
    save(make_runs(make_record), tmp_path / "board" / "grid" / "records")
    return tmp_path / "board"


class TableParser(HTMLParser):
    """The leaderboard table of a page: its columns, and per row the cells' text and attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.columns: list[str] = []
        self.rows: list[list[dict]] = []
        self.row_attrs: list[dict] = []
        self._depth = 0  # inside <table class="board">
        self._cell: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("class") == "board":
            self._depth = 1
        elif not self._depth:
            return
        elif tag == "th" and "data-column" in attrs:
            self.columns.append(attrs["data-column"])
        elif tag == "tr" and "data-index" in attrs:
            self.rows.append([])
            self.row_attrs.append(attrs)
        elif tag == "td":
            self._cell = {"text": "", "attrs": attrs, "links": []}
            self.rows[-1].append(self._cell)
        elif tag == "a" and self._cell is not None:
            self._cell["links"].append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._depth = 0
        elif tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def table(self) -> list[dict[str, dict]]:
        return [dict(zip(self.columns, row)) for row in self.rows]


def parse_board(path: Path) -> TableParser:
    parser = TableParser()
    parser.feed(path.read_text())
    assert parser.rows, f"no table rows in {path}"
    return parser


def markdown_rows(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


def latex_rows(text: str) -> list[str]:
    body = text.split("\\midrule")[1].split("\\bottomrule")[0]
    return [line.strip().removesuffix("\\\\") for line in body.strip().splitlines()]


def assert_agrees_with_every_format(page: Path, records) -> None:
    """Every cell of the page equals the markdown's; its numbers are the csv's and the latex's."""
    board = parse_board(page).table()
    shown = [{c: cell["text"] for c, cell in row.items() if c != "runs"} for row in board]
    assert shown == markdown_rows(render(records, "markdown"))
    csv = pd.read_csv(io.StringIO(render(records, "csv")))
    assert len(csv) == len(board)
    for (_, expected), row in zip(csv.iterrows(), board):
        assert row["method"]["text"] == expected["method"]
        assert row["pruning"]["text"] == expected["pruning"]
        assert int(row["seeds"]["text"]) == expected["n"]
        for metric, column in (("UA", "UA"), ("MIA", "MIA-Efficacy"), ("RA", "RA"), ("TA", "TA"),
                               ("RTE", "RTE (s)")):
            numbers = [float(x) for x in NUMBER.findall(row[column]["text"])]
            wanted = [expected[f"{metric}_mean"]] + ([expected[f"{metric}_std"]] if expected["n"] > 1 else [])
            if metric != "RTE" and not pd.isna(expected[f"{metric}_gap"]):
                wanted.append(expected[f"{metric}_gap"])
            assert numbers == pytest.approx(wanted, abs=0.005 + 1e-4), (column, row[column]["text"])
            assert float(row[column]["attrs"]["data-sort"]) == pytest.approx(expected[f"{metric}_mean"], abs=1e-4)
        if not pd.isna(expected["disparity"]):
            assert float(row["Disparity Ave."]["text"]) == pytest.approx(expected["disparity"], abs=0.005 + 1e-4)
    for latex, row in zip(latex_rows(render(records, "latex")), shown, strict=True):
        assert NUMBER.findall(latex) == NUMBER.findall(" ".join(row.values()))


def test_the_html_table_agrees_with_markdown_csv_and_latex_on_every_number(bench, tmp_path) -> None:
    build_site(bench, tmp_path / "site", log=lambda _: None)
    records = load_records(bench / "grid" / "records")
    assert_agrees_with_every_format(tmp_path / "site" / "grid" / "index.html", records)


def test_cells_hold_hand_computed_values_and_gaps_are_shaded_by_size(bench, tmp_path) -> None:
    build_site(bench, tmp_path / "site", log=lambda _: None)
    parser = parse_board(tmp_path / "site" / "grid" / "index.html")
    rows = {(a["data-scenario"], a["data-pruning"], a["data-method"]): r
            for a, r in zip(parser.row_attrs, parser.table())}
    ft = rows[("class-wise", "dense", "ft")]
    # ft vs retrain, dense, class-wise: UA 30 ± 10 vs 99 (gap 69); RA 99 vs 98 (gap 1)
    assert ft["UA"]["text"] == "30.00 ± 10.00 (69.00)"
    assert "shade6" in ft["UA"]["attrs"]["class"] and "shade1" in ft["RA"]["attrs"]["class"]
    ga = rows[("class-wise", "dense", "ga")]  # one seed: no ± ; |98.5 - 99| = 0.5
    assert ga["UA"]["text"] == "98.50 (0.50)" and "shade0" in ga["UA"]["attrs"]["class"]
    assert ft["ASR (before → after)"]["text"] == "99.00 → 15.00"
    assert [len(rows[k]["runs"]["links"]) for k in rows] == [2, 3, 1, 1, 1, 1, 1]
    assert [a.get("class") for a in parser.row_attrs].count("reference") == 3  # retrain rows
    assert [gap_shade(g) for g in (0.0, 0.5, 0.51, 1.0, 2.5, 5.0, 10.0, 20.0, 20.01, 99.0)] == \
        [0, 0, 1, 1, 2, 3, 4, 5, 6, 6]
    assert len(GAP_SHADES) == 6


def test_a_plugin_metric_is_a_column_with_its_direction_and_on_the_overview(
        make_record, add_metric, tmp_path) -> None:
    """UA top-5 (UA / 2, in Disparity) reads "closer to Retrain" with shaded gaps; forget loss
    (nats, lower is better) reads "↓"; both are described on the overview."""
    records = [add_metric(add_metric(r, "UA_top5", r.metrics["UA"] / 2, label="UA top-5",
                                     in_disparity=True, order=45, description="100 - top-5 accuracy"),
                          "forget_loss", r.metrics["RTE"] / 10, label="forget loss", unit="nats",
                          higher_is_better=False, decimals=3, description="forget-set cross-entropy")
               for r in make_runs(make_record)]
    board = save(records, tmp_path / "board" / "grid" / "records").parents[1]
    build_site(board, tmp_path / "site", log=lambda _: None)
    page = tmp_path / "site" / "grid" / "index.html"
    parser = parse_board(page)
    assert parser.columns[parser.columns.index("TA"):] == [
        "TA", "UA top-5", "Disparity Ave.", "RTE (s)", "forget loss (nats)", "sparsity",
        "ASR (before → after)", "runs"]
    ft = next(row for a, row in zip(parser.row_attrs, parser.table())
              if (a["data-scenario"], a["data-pruning"], a["data-method"]) == ("class-wise", "dense", "ft"))
    assert ft["UA top-5"]["text"] == "15.00 ± 5.00 (34.50)" and "shade6" in ft["UA top-5"]["attrs"]["class"]
    assert ft["forget loss (nats)"]["text"] == "0.300 ± 0.100"
    assert float(ft["forget loss (nats)"]["attrs"]["data-sort"]) == pytest.approx(0.3)
    text = page.read_text()
    assert 'title="UA top-5: closer to Retrain is better"' in text
    assert 'title="forget loss (nats): lower is better"' in text
    assert "Radar chart of UA, MIA-Efficacy, RA, TA, UA top-5 and speed (1/RTE)" in text
    assert "UA, MIA-Efficacy, RA, TA, UA top-5 and forget loss against sparsity" in text  # not RTE
    overview = (tmp_path / "site" / "index.html").read_text()
    assert ('<tr><th scope="row">forget loss (nats)</th><td>nats</td><td>lower is better</td>'
            '<td>forget-set cross-entropy</td></tr>') in overview
    assert "mean gap to Retrain over UA, MIA-Efficacy, RA, TA and UA top-5" in overview


def test_every_row_links_to_the_run_pages_of_its_seeds(bench, tmp_path) -> None:
    build_site(bench, tmp_path / "site", log=lambda _: None)
    page = tmp_path / "site" / "grid" / "index.html"
    board = parse_board(page).table()
    links = [link for row in board for link in row["runs"]["links"]]
    assert len(links) == len(RUNS)
    for link in links:
        assert (page.parent / link).is_file(), link


def _leaves(value, prefix=""):
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, value


def test_a_run_page_holds_the_full_record(bench, tmp_path) -> None:
    import html
    build_site(bench, tmp_path / "site", log=lambda _: None)
    record = load_records(bench / "grid" / "records")[0]
    text = html.unescape((tmp_path / "site" / "grid" / "runs" / f"{record.run_id}.html").read_text())
    sections = {k: v for k, v in record.to_dict().items()
                if k not in ("metrics", "metric_declarations", "probes")}
    leaves = [leaf for k, v in sections.items()
              for leaf in (_leaves(v) if isinstance(v, dict) and v else [(k, v)])]
    for key, value in leaves:
        assert f"<th scope=\"row\">{key}</th>" in text, key
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        if isinstance(value, (list, bool, dict)) or value is None:
            shown = json.dumps(value)
        assert f"<td>{shown}</td>" in text, (key, shown)
    for name, value in (("UA", record.metrics["UA"]), ("MIA-Efficacy", record.metrics["MIA"]),
                        ("RTE (s)", record.metrics["RTE"])):
        assert f"<th scope=\"row\">{name}</th><td>{value:.4f}</td>" in text
    assert ("<th scope=\"row\">RTE</th><td>RTE (s; lower is better): wall-clock seconds of the "
            "unlearning call</td>") in text
    assert ("<th scope=\"row\">MIA</th><td>MIA-Efficacy (%; closer to Retrain is better, in "
            "Disparity Ave.): share of the forget set") in text
    assert f"<th scope=\"row\">ASR (after)</th><td>{record.probes['ASR']['after']:.4f}</td>" in text


def test_the_overview_lists_every_benchmark_folder(make_record, tmp_path) -> None:
    board = tmp_path / "board"
    save(make_runs(make_record, probes=False), board / "main" / "records")
    (board / "main" / "recipe.json").write_text('{"recipe": "main-table", "scale": "small"}')
    (board / "main" / "README.md").write_text("# The main grid\n\ntext\n")
    save(make_runs(make_record, {("retrain", None, 0, "class:0"): (1, 2, 3, 4, 5)}), board / "flat")
    (board / "notes").mkdir()  # a folder without records is not a benchmark
    pages = build_site(board, board / "site", log=lambda _: None)
    index = (board / "site" / "index.html").read_text()
    assert 'href="flat/index.html"' in index and 'href="main/index.html"' in index
    assert "The main grid" in index and "small: full dataset" in index
    assert "notes" not in index and 'href="site/' not in index
    assert len(pages) == 1 + 2 + len(RUNS) + 1
    assert (board / "site" / MARKER).is_file()


def test_one_folder_of_records_is_a_site_of_one_benchmark(make_record, tmp_path) -> None:
    results = save(make_runs(make_record), tmp_path / "results")
    build_site(results, tmp_path / "site", log=lambda _: None)
    assert_agrees_with_every_format(tmp_path / "site" / "results" / "index.html", load_records(results))


ATTRIBUTE = re.compile(r'\b(?:src|href)="([^"]*)"')


def test_the_site_is_self_contained_and_its_links_resolve(make_record, tmp_path) -> None:
    save([make_record(method=m, pruner="omp" if t else None, target_sparsity=t or None,
                      UA=50.0 + t, RTE=1.0 + t) for m in ("retrain", "ft") for t in (0, 0.5, 0.9)],
         tmp_path / "results")
    build_site(tmp_path / "results", tmp_path / "site", log=lambda _: None)
    pages = sorted((tmp_path / "site").rglob("*.html"))
    for page in pages:
        text = page.read_text()
        for target in ATTRIBUTE.findall(text):
            if target.startswith(("#", "data:")):
                continue
            assert "//" not in target, (page, target)  # no network, no absolute URL
            assert (page.parent / target).resolve().is_file(), (page, target)
        assert "@import" not in text and "url(http" not in text
    for asset in (tmp_path / "site" / "assets").iterdir():
        assert "http" not in asset.read_text(), asset
    board = (tmp_path / "site" / "results" / "index.html").read_text()
    svgs = re.findall(r"<svg\b[^>]*>", board)
    assert len(svgs) >= 2  # radars and the sweep
    assert all('role="img"' in s and "aria-labelledby" in s for s in svgs)
    assert board.count("<title id=") == len(svgs)
    ids = re.findall(r'\bid="([^"]+)"', board)
    assert len(ids) == len(set(ids)), "ids repeat across the inline pictures"
    for ref in re.findall(r"url\(#([^)]+)\)", board):
        assert ref in ids


def test_regenerating_replaces_the_site(bench, tmp_path, make_record) -> None:
    site = tmp_path / "site"
    build_site(bench, site, log=lambda _: None)
    first = {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    (bench / "grid" / "records" / "synthetic-tiny_cnn-class_0-ga-dense-seed0.json").unlink()
    build_site(bench, site, log=lambda _: None)
    second = {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    assert Path("grid/runs/synthetic-tiny_cnn-class_0-ga-dense-seed0.html") in first
    assert set(first) - set(second) == {Path("grid/runs/synthetic-tiny_cnn-class_0-ga-dense-seed0.html")}
    assert not list(tmp_path.glob(".site.*"))  # no staging folder left behind
    damaged = bench / "grid" / "records" / "synthetic-tiny_cnn-class_0-ga-dense-seed0.json"
    damaged.write_text('{"schema_version": 3}')  # claims to be a record, and is damaged
    with pytest.raises(CorruptFileError, match="ga-dense-seed0.json"):
        build_site(bench, site, log=lambda _: None)
    third = {p.relative_to(site): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    assert third == second


def test_bad_input_fails_with_one_line_before_anything_is_written(bench, tmp_path, capsys) -> None:
    def fails(*argv: str) -> str:
        assert main(["leaderboard", *map(str, argv)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        return err

    assert "expected --output" in fails(bench, "--format", "html")
    assert "does not exist" in fails(tmp_path / "nowhere", "--format", "html", "--output", tmp_path / "s1")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("mine")
    assert "not an unlearnbench site" in fails(bench, "--format", "html", "--output", busy)
    assert (busy / "thesis.tex").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    assert "is a file" in fails(bench, "--format", "html", "--output", tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no run records" in fails(empty, "--format", "html", "--output", tmp_path / "s2")
    broken = tmp_path / "broken"
    save(make_runs_of_one(bench), broken)
    (broken / "bad.json").write_text('{"schema_version": 3, "run_id": ')  # a record cut short
    assert "bad.json" in fails(broken, "--format", "html", "--output", tmp_path / "s3")
    assert not (tmp_path / "s1").exists() and not (tmp_path / "s2").exists() and not (tmp_path / "s3").exists()
    assert not list(tmp_path.glob(".s*.*"))


def make_runs_of_one(bench: Path):
    return load_records(bench / "grid" / "records")[:1]


def test_cli_writes_the_site(bench, tmp_path, capsys) -> None:
    assert main(["leaderboard", str(bench), "--format", "html", "--output", str(tmp_path / "site")]) == 0
    out = capsys.readouterr().out
    assert f"wrote {1 + 1 + len(RUNS)} pages" in out
    assert (tmp_path / "site" / "index.html").is_file()


# ---- the committed site --------------------------------------------------------------------

SITE = ROOT / "leaderboard" / "site"


def test_the_committed_site_agrees_with_the_committed_records_and_is_light() -> None:
    page = SITE / "main-table-small" / "index.html"
    assert page.is_file(), "regenerate: unlearnbench leaderboard leaderboard/ --format html --output leaderboard/site"
    assert page.stat().st_size < 1_000_000
    assert_agrees_with_every_format(page, load_records(ROOT / "leaderboard" / "main-table-small" / "records"))
    # every benchmark folder, and every population audit's (its audit.json) on a page of its own
    audits = sorted(p.name for p in (ROOT / "leaderboard").iterdir() if (p / "audit.json").is_file())
    folders = sorted(p.name for p in (ROOT / "leaderboard").iterdir()
                     if (p / "records").is_dir() and not (p / "audit.json").is_file())
    assert sorted(p.parent.name for p in SITE.glob("*/index.html")) == sorted(folders + audits)
    for folder in folders:
        runs = {p.stem for p in (ROOT / "leaderboard" / folder / "records").glob("*.json")}
        assert {p.stem for p in (SITE / folder / "runs").glob("*.html")} == runs
    for audit in audits:
        page = html.unescape((SITE / audit / "index.html").read_text())
        assert (ROOT / "leaderboard" / audit / "table.md").read_text().splitlines()[2] in page  # the description
        assert sorted(p.name for p in (SITE / audit).glob("*.svg")) == ["klom-per-example.svg", "ulira-per-example.svg"]
        assert f'href="{audit}/index.html"' in (SITE / "index.html").read_text()


def test_steps_and_the_verdict_against_none_are_columns_rows_and_notes(make_record, tmp_path) -> None:
    """Records that count their work get a sortable steps column after RTE; a row within seed
    noise of ``none`` reads "no measurable unlearning" and is styled apart, ``none`` is the baseline."""
    from unlearnbench.report.records import Work

    runs = {("none", 0): (46.0, 0), ("none", 1): (54.0, 0), ("retrain", 0): (99.0, 2900),
            ("retrain", 1): (100.0, 2900), ("lazy", 0): (56.5, 600), ("lazy", 1): (62.5, 680)}
    records = [make_record(method=m, seed=s, UA=ua, work=Work(optimizer_steps=steps))
               for (m, s), (ua, steps) in runs.items()]
    build_site(save(records, tmp_path / "results"), tmp_path / "site", log=lambda _: None)
    page = tmp_path / "site" / "results" / "index.html"
    parser = parse_board(page)
    assert parser.columns[parser.columns.index("seeds") + 1] == "vs none"
    assert parser.columns[parser.columns.index("RTE (s)") + 1] == "steps"
    rows = {a["data-method"]: (a.get("class"), row) for a, row in zip(parser.row_attrs, parser.table())}
    assert {m: (c, row["vs none"]["text"]) for m, (c, row) in rows.items()} == {
        "retrain": ("reference", "differs"), "lazy": ("inert", "no measurable unlearning"),
        "none": ("baseline", "baseline")}
    lazy = rows["lazy"][1]["steps"]
    assert lazy["text"] == "640 (22% of Retrain)" and float(lazy["attrs"]["data-sort"]) == 640.0
    text = page.read_text()
    assert "|mean - mean(none)| &lt; 2 · sqrt(se² + se(none)²)" in text
    assert "mean optimizer steps of the unlearning call" in text
    assert_agrees_with_every_format(page, load_records(tmp_path / "results"))
