"""Pictures drawn from hand-built records: file names and formats, plotted values, skips, CLI."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from matplotlib.lines import Line2D

from unlearnbench import ConfigError
from unlearnbench.cli import main
from unlearnbench.report.plots import (NotEnoughData, backdoor_figure, plot_all, radar_figure,
                                sweep_figure, use_density_axis)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
AXES = ["UA", "MIA", "RA", "TA", "speed"]  # the radar's vertex order

# (method, seed) -> UA, MIA, RA, TA, RTE; dense class:0 runs
RADAR_RUNS = {
    ("retrain", 0): (100.0, 100.0, 99.0, 90.0, 40.0),
    ("retrain", 1): (98.0, 96.0, 97.0, 88.0, 40.0),
    ("ft", 0): (20.0, 70.0, 99.0, 92.0, 2.0),
    ("ft", 1): (40.0, 90.0, 99.0, 94.0, 6.0),
    ("ga", 0): (90.0, 95.0, 90.0, 85.0, 1.0),
}
# hand-computed speed = 100 * fastest mean RTE / mean RTE: ga 1 s, ft (2 + 6) / 2 = 4 s, retrain 40 s
SPEED = {"ga": 100.0, "ft": 25.0, "retrain": 2.5}


@pytest.fixture
def radar_records(make_record):
    return [make_record(method=m, seed=s, UA=ua, MIA=mia, RA=ra, TA=ta, RTE=rte)
            for (m, s), (ua, mia, ra, ta, rte) in RADAR_RUNS.items()]


def _sweep_ua(method: str, sparsity: float, seed: int) -> float:
    return {"retrain": 100.0, "ft": 20.0 + 70.0 * sparsity}[method] + seed  # seeds 0, 2: mean + 1


@pytest.fixture
def sweep_records(make_record):
    """class:0 runs of retrain and ft, dense and OMP at 0.5, 0.95 and 0.99, two seeds each."""
    return [make_record(method=m, seed=seed, pruner="omp" if s else None, target_sparsity=s,
                        UA=_sweep_ua(m, s or 0.0, seed), RTE=40.0 if m == "retrain" else 2.0)
            for m in ("retrain", "ft") for s in (None, 0.5, 0.95, 0.99) for seed in (0, 2)]


def _backdoor_after(method: str, sparsity: float) -> float:
    return {"retrain": 1.0, "ft": 47.0 - 35.0 * sparsity}[method]


@pytest.fixture
def backdoor_records(make_record):
    """Backdoor runs, dense and OMP 0.9: the same poisoned model (ASR 99) before each method."""
    return [make_record(method=m, seed=seed, pruner="omp" if s else None, target_sparsity=s,
                        forget="backdoor:0.1", scenario="backdoor", UA=50.0, MIA=50.0,
                        probes={"ASR": {"before": 99.0, "after": _backdoor_after(m, s or 0.0) + seed},
                                "clean_acc": {"before": 94.0, "after": 93.0 - seed}})
            for m in ("retrain", "ft") for s in (None, 0.9) for seed in (0, 2)]


@pytest.fixture
def all_records(sweep_records, backdoor_records, make_record):
    lonely = [make_record(method="ft", forget="class:5", seed=s) for s in (0, 1)]  # one method only
    dense_random = [make_record(method=m, forget="random:0.1") for m in ("retrain", "ft")]
    return sweep_records + backdoor_records + lonely + dense_random


def _method_line(fig, method: str) -> Line2D:
    [line] = [line for ax in fig.axes[:1] for line in ax.get_lines() if line.get_label() == method]
    return line


EXPECTED_NAMES = {
    "radar-synthetic-tiny_cnn-class-wise-class_0-dense",
    "radar-synthetic-tiny_cnn-class-wise-class_0-omp0.5",
    "radar-synthetic-tiny_cnn-class-wise-class_0-omp0.95",
    "radar-synthetic-tiny_cnn-class-wise-class_0-omp0.99",
    "radar-synthetic-tiny_cnn-backdoor-backdoor_0.1-dense",
    "radar-synthetic-tiny_cnn-backdoor-backdoor_0.1-omp0.9",
    "radar-synthetic-tiny_cnn-random-random_0.1-dense",
    "sweep-synthetic-tiny_cnn-class-wise-class_0-omp",
    "sweep-synthetic-tiny_cnn-backdoor-backdoor_0.1-omp",
    "backdoor-synthetic-tiny_cnn-backdoor-backdoor_0.1-omp",
}


def test_png_files_have_stable_names_and_are_real_nonblank_images(all_records, tmp_path: Path) -> None:
    messages: list[str] = []
    paths = plot_all(all_records, tmp_path / "plots", "png", dpi=40, log=messages.append)
    assert {p.stem for p in paths} == EXPECTED_NAMES
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(p.name for p in paths)
    for path in paths:  # nothing else there: no temporary files left behind
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        pixels = matplotlib.image.imread(path)
        assert pixels.ndim == 3 and min(pixels.shape[:2]) > 50
        assert pixels[..., :3].std() > 0.05, f"{path.name} is blank"
        assert (pixels[..., :3] < 0.5).mean() > 0.005, f"{path.name} has almost nothing drawn"
    assert plot_all(all_records, tmp_path / "plots", "png", dpi=40, log=messages.append) == paths


def test_svg_files_are_valid_xml(sweep_records, tmp_path: Path) -> None:
    paths = plot_all(sweep_records, tmp_path, "svg", log=lambda m: None)
    assert paths and all(p.suffix == ".svg" for p in paths)
    for path in paths:
        root = ET.parse(path).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.find(".//{http://www.w3.org/2000/svg}path") is not None


def test_radar_vertices_are_the_seed_means_and_retrain_is_the_dashed_reference(radar_records) -> None:
    fig = radar_figure(radar_records)
    ft, retrain, ga = (_method_line(fig, m) for m in ("ft", "retrain", "ga"))
    # the polygon is closed: five vertices and the first again
    assert list(ft.get_ydata()) == pytest.approx([30.0, 80.0, 99.0, 93.0, SPEED["ft"], 30.0])
    assert list(retrain.get_ydata()[:4]) == pytest.approx([99.0, 98.0, 98.0, 89.0])
    assert ga.get_ydata()[AXES.index("UA")] == pytest.approx(90.0)
    assert retrain.get_linestyle() == "--" and retrain.get_color() in ("#000000", "black", "k")
    assert ft.get_linestyle() == "-"
    np.testing.assert_allclose(ft.get_xdata()[:5], np.linspace(0, 2 * np.pi, 5, endpoint=False))


def test_radar_speed_axis_is_inverse_rte_relative_to_the_fastest_method(radar_records) -> None:
    fig = radar_figure(radar_records)
    speeds = {m: _method_line(fig, m).get_ydata()[AXES.index("speed")] for m in SPEED}
    assert speeds == pytest.approx(SPEED)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["UA", "MIA-Efficacy", "RA", "TA", "1/RTE: speed\n(100 = fastest here)"]


def test_radar_needs_two_methods(make_record) -> None:
    with pytest.raises(NotEnoughData, match="two methods"):
        radar_figure([make_record(method="ft", seed=s) for s in (0, 1)])


def test_a_picture_of_several_groups_is_refused(make_record) -> None:
    with pytest.raises(ConfigError, match="one group"):
        radar_figure([make_record(method="ft"), make_record(method="ga", forget="class:1")])


def test_sweep_lines_are_seed_means_at_the_real_sparsities(sweep_records) -> None:
    fig = sweep_figure(sweep_records)
    ua_axes = fig.axes[0]
    assert ua_axes.get_title() == "UA"
    ft = _method_line(fig, "ft")
    levels = [0.0, 0.5, 0.95, 0.99]
    assert list(ft.get_ydata()) == pytest.approx([_sweep_ua("ft", s, 0) + 1 for s in levels])
    # 0.95 and 0.99 crowd a linear axis: spaced by 1 - sparsity on a log scale, real labels
    assert ua_axes.get_xscale() == "log"
    assert list(ft.get_xdata()) == pytest.approx([1 - s for s in levels])
    assert [t.get_text() for t in fig.axes[2].get_xticklabels()] == ["0", "0.5", "0.95", "0.99"]
    assert [ax.get_title() for ax in fig.axes[:4]] == ["UA", "MIA-Efficacy", "RA", "TA"]


def test_density_axis_only_when_linear_spacing_crowds_the_levels() -> None:
    assert not use_density_axis([0.0, 0.95])
    assert not use_density_axis([0.0, 0.5, 0.95])
    assert use_density_axis([0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995])
    assert use_density_axis([0.0, 0.99, 0.995])


def test_sweep_with_a_single_level_per_method_is_not_drawn(make_record) -> None:
    records = [make_record(method="ft"), make_record(method="ga", pruner="omp", target_sparsity=0.9)]
    with pytest.raises(NotEnoughData, match="two sparsity levels"):
        sweep_figure(records)


def test_backdoor_curves_show_asr_after_solid_and_the_shared_before_dashed(backdoor_records) -> None:
    fig = backdoor_figure(backdoor_records)
    asr_axes, clean_axes = fig.axes[:2]
    assert "attack success" in asr_axes.get_ylabel() and "clean" in clean_axes.get_ylabel()
    ft = _method_line(fig, "ft")
    assert list(ft.get_ydata()) == pytest.approx([_backdoor_after("ft", s) + 1 for s in (0.0, 0.9)])
    assert ft.get_linestyle() == "-" and _method_line(fig, "retrain").get_linestyle() == "-"
    dashed = [line for line in asr_axes.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1  # every method unlearns the same poisoned model: one "before" line
    assert list(dashed[0].get_ydata()) == pytest.approx([99.0, 99.0])
    clean_ft = [line for line in clean_axes.get_lines() if line.get_label() == "ft"][0]
    assert list(clean_ft.get_ydata()) == pytest.approx([92.0, 92.0])


def test_backdoor_before_values_that_differ_get_a_dashed_line_per_method(backdoor_records) -> None:
    import dataclasses
    changed = [dataclasses.replace(r, probes={**r.probes, "ASR": {"before": 80.0, "after": 5.0}})
               if r.method == "ft" else r for r in backdoor_records]
    dashed = [line for line in backdoor_figure(changed).axes[0].get_lines()
              if line.get_linestyle() == "--"]
    assert sorted(tuple(line.get_ydata()) for line in dashed) == [(80.0, 80.0), (99.0, 99.0)]


def test_unsupported_pictures_are_skipped_with_a_reason(all_records, make_record, tmp_path) -> None:
    dense_backdoor = [make_record(method=m, forget="backdoor:0.2", scenario="backdoor",
                                  probes={"ASR": {"before": 99.0, "after": 10.0}}) for m in ("ft", "ga")]
    messages: list[str] = []
    paths = plot_all(all_records + dense_backdoor, tmp_path, "png", dpi=30, log=messages.append)
    assert "radar-synthetic-tiny_cnn-class-wise-class_5-dense" not in {p.stem for p in paths}
    assert messages == [
        "skipped radar-synthetic-tiny_cnn-class-wise-class_5-dense: only 'ft' has runs; "
        "a radar compares two methods or more",
        "skipped sweep-synthetic-tiny_cnn-backdoor-backdoor_0.2: only dense runs; a sweep needs "
        "pruned ones",
        "skipped backdoor-synthetic-tiny_cnn-backdoor-backdoor_0.2: only dense runs; the ASR curve "
        "needs pruned ones",
        "skipped sweep-synthetic-tiny_cnn-class-wise-class_5: only dense runs; a sweep needs pruned ones",
        "skipped sweep-synthetic-tiny_cnn-random-random_0.1: only dense runs; a sweep needs pruned ones",
    ]


def test_no_records_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no run records"):
        plot_all([], tmp_path)


def test_cli_plot_writes_pictures(sweep_records, backdoor_records, tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    for record in sweep_records + backdoor_records:
        record.save(results / f"{record.run_id}.json")
    out = tmp_path / "plots"
    assert main(["plot", str(results), "--output", str(out), "--format", "svg", "--dpi", "40"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert "backdoor-synthetic-tiny_cnn-backdoor-backdoor_0.1-omp.svg" in written
    assert "sweep-synthetic-tiny_cnn-class-wise-class_0-omp.svg" in written
    stdout = capsys.readouterr().out
    assert f"wrote {len(written)} pictures to {out}/" in stdout


def test_cli_plot_on_an_empty_folder_fails_clearly(tmp_path: Path, capsys) -> None:
    assert main(["plot", str(tmp_path), "--output", str(tmp_path / "plots")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"unlearnbench: error: no run records (*.json) under {tmp_path}; nothing to plot"
    assert not (tmp_path / "plots").exists()


# -- the metrics drawn follow their declarations -------------------------------------------------
TOP5 = dict(label="UA top-5", in_disparity=True, order=45)
LOSS = dict(label="forget loss", unit="nats", decimals=3)


def test_a_metric_in_percent_is_a_radar_axis_and_others_are_not(radar_records, add_metric) -> None:
    records = [add_metric(add_metric(r, "UA_top5", r.metrics["UA"] / 2, **TOP5), "forget_loss", 2.0, **LOSS)
               for r in radar_records]
    fig = radar_figure(records)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["UA", "MIA-Efficacy", "RA", "TA", "UA top-5", "1/RTE: speed\n(100 = fastest here)"]
    ft = _method_line(fig, "ft").get_ydata()
    assert list(ft[:6]) == pytest.approx([30.0, 80.0, 99.0, 93.0, 15.0, SPEED["ft"]])


def test_the_sweep_has_a_panel_per_metric_but_the_timed_ones(sweep_records, add_metric) -> None:
    records = [add_metric(r, "forget_loss", 150.0 + r.seed, **LOSS) for r in sweep_records]
    fig = sweep_figure(records)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["UA", "MIA-Efficacy", "RA", "TA", "forget loss"]  # 3 x 2 panels, the last empty
    loss = fig.axes[4]
    assert loss.get_ylabel() == "nats" and fig.axes[0].get_ylabel() == "%"
    band = loss.collections[0]  # seeds 150 and 152: mean 151, std sqrt(2)
    assert band.get_paths()[0].vertices[:, 1].max() == pytest.approx(151.0 + 2 ** 0.5)  # not clipped at 100
    # sparsities under the bottom panel of each column, the one above the empty place too
    assert [len(ax.get_xticklabels()) > 0 for ax in fig.axes] == [False, False, False, True, True]


def test_a_radar_needs_three_axes(make_record) -> None:
    from unlearnbench import METRICS
    only = {name: METRICS.get(name).declaration() for name in ("UA", "RTE")}
    records = [make_record(method=m, metrics={"UA": 1.0, "RTE": 1.0}, metric_declarations=only)
               for m in ("retrain", "ft")]
    with pytest.raises(NotEnoughData, match="three axes"):
        radar_figure(records)
