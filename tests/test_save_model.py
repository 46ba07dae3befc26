"""A trial's unlearned model and evaluation data are public: ``--save-model`` writes them, and
``run_trial`` returns them, so every number of a record can be recomputed by hand."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from unlearnbench.cli import main
from unlearnbench.run.config import RunConfig, prepare
from unlearnbench.run.trial import load_data, load_model, mia_members, run_trial


def _config(tmp_path: Path, cache: Path, **overrides) -> RunConfig:
    fields = dict(method="ft", method_params={"epochs": 1}, dataset="synthetic", forget="class:1",
                  pruner="omp", sparsity=0.5, train_params={"epochs": 2}, cache_dir=cache,
                  output_dir=tmp_path / "records", save_model=tmp_path / "models")
    return RunConfig(**{**fields, **overrides})


def _accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, normalize) -> float:
    with torch.no_grad():
        predicted = model(normalize(images)).argmax(dim=1)
    return 100.0 * (predicted == labels).double().mean().item()


def test_a_saved_model_and_its_indices_reproduce_every_metric_of_the_record(
        tmp_path: Path, shared_cache: Path) -> None:
    from sklearn.svm import SVC

    plan = prepare(_config(tmp_path, shared_cache))
    data = load_data(plan)
    outcome = run_trial(plan, data, seed=0)
    record = outcome.record
    [path] = (tmp_path / "models").glob("*.pt")
    assert path.name == f"{record.run_id}.pt"
    assert [p.name for p in (tmp_path / "models").iterdir()] == [path.name]  # no temporary left

    model, saved = load_model(path)
    assert not model.training and saved["run_id"] == record.run_id
    split = saved["split"]
    forget = data.train.subset(split["forget"])
    retain = data.train.subset(split["retain"])
    test = data.test.subset(split["test"])
    assert (forget.labels == 1).all() and not (test.labels == 1).any()  # class-wise forgetting
    # the mask was held fixed: pruned weights are exactly zero in the saved model
    weights = dict(model.named_parameters())
    assert saved["mask"] and all((weights[n][~keep] == 0).all() for n, keep in saved["mask"].items())

    m = SimpleNamespace(**record.metrics)
    assert _accuracy(model, test.images, test.labels, data.normalize) == m.TA
    assert _accuracy(model, retain.images, retain.labels, data.normalize) == m.RA
    assert 100.0 - _accuracy(model, forget.images, forget.labels, data.normalize) == m.UA

    # MIA-Efficacy by the paper's recipe, written out: SVC on the true-label confidence of
    # |test| random retain examples (members) vs the test set (non-members), applied to the forget set
    members = split["mia_members"]
    assert torch.equal(members, mia_members(len(retain), len(test), seed=0)) and len(members) == len(test)

    def confidence(part) -> np.ndarray:
        with torch.no_grad():
            probs = torch.softmax(model(data.normalize(part.images)).double(), dim=1)
        return probs.gather(1, part.labels.view(-1, 1)).flatten().numpy()

    features = np.concatenate([confidence(retain.subset(members)), confidence(test)]).reshape(-1, 1)
    is_member = np.concatenate([np.ones(len(members)), np.zeros(len(test))])
    attack = SVC(C=3, gamma="auto", kernel="rbf").fit(features, is_member)
    assert 100.0 * (1.0 - attack.predict(confidence(forget).reshape(-1, 1)).mean()) == m.MIA

    # the in-memory outcome is the same model on the same data
    assert torch.equal(outcome.forget.labels, forget.labels) and torch.equal(outcome.mia_members, members)
    # (the weights bitwise: the in-memory model may be channels_last, whose conv sums in another
    # order, so its logits may differ from the loaded NCHW model's in the last bits)
    mine, saved_state = outcome.model.state_dict(), model.state_dict()
    assert mine.keys() == saved_state.keys()
    assert all(torch.equal(mine[k], saved_state[k]) for k in mine)
    with torch.no_grad():
        torch.testing.assert_close(outcome.model(data.normalize(test.images)), model(data.normalize(test.images)))


def test_without_save_model_nothing_is_written(tmp_path: Path, shared_cache: Path) -> None:
    plan = prepare(_config(tmp_path, shared_cache, save_model=None, pruner=None, sparsity=None))
    outcome = run_trial(plan, load_data(plan), seed=0)
    assert outcome.mask is None and not (tmp_path / "models").exists()
    assert not (tmp_path / "records").exists()  # the record is the caller's to write (run_grid does)


def test_the_command_line_saves_each_seeds_model(tmp_path: Path, shared_cache: Path, capsys) -> None:
    assert main(["run", "--method", "ft", "-p", "epochs=1", "--dataset", "synthetic", "--train", "epochs=2",
                 "--seeds", "0,1", "--cache-dir", str(shared_cache), "--output", str(tmp_path / "out"),
                 "--save-model", str(tmp_path / "models")]) == 0
    records = sorted(p.stem for p in (tmp_path / "out").glob("*.json"))
    assert sorted(p.stem for p in (tmp_path / "models").glob("*.pt")) == records and len(records) == 2


def test_save_model_pointing_at_a_file_fails_before_anything_runs(tmp_path: Path, capsys) -> None:
    (tmp_path / "taken").write_text("")
    assert main(["run", "--method", "ft", "--dataset", "synthetic", "--cache-dir", str(tmp_path / "cache"),
                 "--output", str(tmp_path / "out"), "--save-model", str(tmp_path / "taken")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == f"unlearnbench: error: --save-model {tmp_path / 'taken'} is a file: expected a folder for the models"
    assert not (tmp_path / "out").exists()


def test_the_documented_snippet_recomputes_the_test_accuracy(tmp_path: Path, shared_cache: Path, capsys) -> None:
    import pytest
    from doc_blocks import doc_block

    snippet = doc_block("docs/trial.md", "Checking a number yourself", "python", "run_trial(plan")
    original = 'RunConfig(method="ft", dataset="digits", forget="class:0")'
    assert original in snippet
    tiny = (f'RunConfig(method="ft", dataset="synthetic", forget="class:0", method_params={{"epochs": 1}}, '
            f'train_params={{"epochs": 2}}, cache_dir={str(shared_cache)!r}, output_dir={str(tmp_path)!r})')
    namespace: dict = {}
    exec(snippet.replace(original, tiny), namespace)
    outcome, correct, test = namespace["outcome"], namespace["correct"], namespace["test"]
    assert 100.0 * correct / len(test) == pytest.approx(outcome.record.metrics["TA"], rel=1e-12, abs=0)
    assert " == " in capsys.readouterr().out
