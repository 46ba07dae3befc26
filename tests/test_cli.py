"""The command line: clean one-line errors for bad input, and the happy paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from unlearnbench import PRUNERS, Pruner, PruningTask
from unlearnbench.cli import main


class KeepDense(Pruner):
    """Prunes nothing; only its registration matters here."""

    def prune(self, task: PruningTask):
        raise AssertionError("the command line must fail before pruning")


@pytest.fixture
def test_pruner():
    PRUNERS.register("cli_test_pruner", KeepDense)
    yield
    PRUNERS.unregister("cli_test_pruner")


def _run_args(tmp_path: Path, *args: str) -> list[str]:
    return ["run", "--dataset", "synthetic", "--cache-dir", str(tmp_path / "cache"),
            "--output", str(tmp_path / "out"), *args]


def _error_line(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """Run the CLI in-process; it must fail with exit code 2 and one clean error line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith("unlearnbench: error: ")
    return line.removeprefix("unlearnbench: error: ")


def test_errors_are_one_line_without_traceback_in_a_real_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "UNLEARNBENCH_DISABLE_PLUGINS"}
    result = subprocess.run(
        [sys.executable, "-m", "unlearnbench.cli", *_run_args(tmp_path, "--method", "fine_tune")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "unlearnbench: error: " + result.stderr.strip().removeprefix("unlearnbench: error: ")]
    assert "Unknown unlearner 'fine_tune'" in result.stderr and "Available:" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, expected", [
    (["--method", "retrian"], ["Unknown unlearner 'retrian'. Did you mean 'retrain'?", "Available: ", "ft"]),
    (["--method", "ft", "-p", "epoch=2"],
     ["Unknown parameter of FineTune 'epoch'. Did you mean 'epochs'?", "Available: ", "batch_size",
      "lr", "weight_decay"]),
    (["--method", "ft", "-p", "epochs=two"], ["FineTune.epochs='two' is invalid: expected int"]),
    (["--method", "ft", "-p", "lr=-1"], ["FineTune.lr=-1.0 is invalid: expected a value > 0"]),
    (["--method", "ft", "-p", "epochs"], ["--param 'epochs' is invalid: expected KEY=VALUE"]),
    (["--method", "ft", "--forget", "class-1"], ["forget spec 'class-1' is invalid"]),
    (["--method", "ft", "--forget", "random:0"], ["forget spec 'random:0'"]),
    (["--method", "ft", "--forget", "class:4"], ["class 4 does not exist; expected 0..3"]),
    (["--method", "ft", "--sparsity", "0.5"], ["--sparsity and pruner parameters need --pruner NAME"]),
    (["--method", "ft", "--pruner", "cli_test_pruner"],
     ["--sparsity None is invalid: a pruner needs a target sparsity in (0, 1)"]),
    (["--method", "ft", "--pruner", "cli_test_pruner", "--sparsity", "1.5"], ["--sparsity 1.5 is invalid"]),
    (["--method", "ft", "--pruner", "cli_test_pruner", "--pruner-param", "x=1", "--sparsity", "0.5"],
     ["Unknown parameter of KeepDense 'x'"]),
    (["--method", "ft", "--pruner", "opm", "--sparsity", "0.5"], ["Unknown pruner 'opm'. Did you mean 'omp'?"]),
    (["--method", "ft", "--seeds", "0,a"], ["--seeds '0,a' is invalid: expected comma-separated integers"]),
    (["--method", "ft", "--seeds", "1,1"], ["--seeds '1,1' repeats a seed"]),
    (["--method", "ft", "--seeds", ","], ["--seeds is empty"]),
    (["--method", "ft", "--train", "epoch=2"], ["Unknown parameter of TrainRecipe 'epoch'"]),
    (["--method", "ft", "--dataset-param", "num_classes=1"], ["Synthetic.num_classes=1 is invalid"]),
    (["--method", "ft", "--arch", "resnet_18"], ["Unknown model 'resnet_18'. Did you mean"]),
    (["--method", "ft", "--arch", "resnet1?"], ["Unknown model 'resnet1?'. Did you mean"]),
    (["--method", "ft", "--arch", "vit_tiny_patch16_224"],
     ["--arch 'vit_tiny_patch16_224' does not run on 1-channel 8px images"]),
    (["--method", "ft", "--device", "tpu"], ["--device 'tpu' is invalid"]),
    (["--method", "ft", "--val-fraction", "1.0"], ["val_fraction=1.0 is invalid"]),
])
def test_bad_run_arguments(capsys, tmp_path: Path, test_pruner, args: list[str],
                           expected: list[str]) -> None:
    message = _error_line(capsys, _run_args(tmp_path, *args))
    for part in expected:
        assert part in message
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written


def test_missing_cifar10_says_where_it_looked_and_how_to_get_it(capsys, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    message = _error_line(capsys, ["run", "--method", "ft", "--dataset", "cifar10", "--data-root",
                                   str(empty), "--cache-dir", str(tmp_path / "cache"),
                                   "--output", str(tmp_path / "out")])
    assert "cifar10" in message.lower() and str(empty) in message
    assert "cifar-10-batches-py" in message and "parquet" in message and "--download" in message
    message = _error_line(capsys, ["run", "--method", "ft", "--dataset", "cifar10",
                                   "--cache-dir", str(tmp_path / "cache")])
    assert "--data-root" in message


def test_missing_leaderboard_folder(capsys, tmp_path: Path) -> None:
    message = _error_line(capsys, ["leaderboard", str(tmp_path / "nowhere")])
    assert message == f"results folder {tmp_path / 'nowhere'} does not exist"


def test_argparse_errors_exit_2_with_usage(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--method", "ft", "--sparsity", "lots"])
    assert info.value.code == 2
    assert "argument --sparsity: invalid float value: 'lots'" in capsys.readouterr().err


def test_run_prints_a_table_and_writes_a_record(capsys, shared_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["run", "--method", "ft", "--dataset", "synthetic", "--train", "epochs=2",
                 "--cache-dir", str(shared_cache), "--output", str(out)]) == 0
    captured = capsys.readouterr()
    [path] = out.glob("*.json")
    record = json.loads(path.read_text())
    assert path.stem == record["run_id"] == f"synthetic-tiny_cnn-class_0-ft-dense-seed0-{record['identity'][:12]}"
    assert record["config"]["recipe"]["epochs"] == 2 and record["config"]["method_params"]["epochs"] == 10
    m = record["metrics"]
    assert f"UA {m['UA']:.2f}  MIA-Efficacy {m['MIA']:.2f}  RA {m['RA']:.2f}  TA {m['TA']:.2f}" in captured.out
    table = [line for line in captured.out.splitlines() if line.startswith("|")]
    assert "MIA-Efficacy" in table[0] and len(table) == 3  # header, rule, one row
    assert "| ft " in table[2]
    assert "[seed 0] unlearning with ft" in captured.err

    board = tmp_path / "board.csv"
    assert main(["leaderboard", str(out), "--format", "csv", "--output", str(board)]) == 0
    assert f"wrote {board}" in capsys.readouterr().out
    frame = pd.read_csv(board)
    assert list(frame["method"]) == ["ft"] and frame.loc[0, "UA_mean"] == pytest.approx(m["UA"], abs=1e-4)


def test_ls_lists_components_with_their_origin(capsys) -> None:
    assert main(["ls", "unlearners", "*ft*"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[3:] if line.strip()}
    assert {"ft", "sparse_ft"} <= rows.keys() and "retrain" not in rows
    assert "unlearnbench" in rows["ft"] and "unlearnbench_baselines.unlearners.ft:FineTune" in rows["ft"]
