"""The unlearner contract as docs/extending/unlearner.md states it, checked on the harness
itself and on the documentation's own snippets (README's short unlearner included)."""

from __future__ import annotations

import sys
import types

import torch
import torch.nn.functional as F

from doc_blocks import doc_block
from unlearnbench import Unlearner
from unlearnbench.run.timing import timed_unlearn
from unlearnbench.testing import tiny_task

GUIDE = "docs/extending/unlearner.md"


SEEN_MODES: list[bool] = []


class RecordsMode(Unlearner):
    def unlearn(self, model, task):
        SEEN_MODES.append(model.training)
        return model


def test_the_model_arrives_in_training_mode_whatever_mode_the_original_is_in() -> None:
    model, task = tiny_task()
    model.eval()
    SEEN_MODES.clear()
    timed_unlearn(RecordsMode(), model, task)
    assert SEEN_MODES == [True]
    assert not model.training  # the original itself is left alone: the method gets a copy


def test_a_measuring_loader_yields_every_example_once_as_it_is_in_order() -> None:
    _, task = tiny_task()
    batches = list(task.loader(task.forget, batch_size=5, augment=False, shuffle=False))
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert torch.equal(x, task.normalize(task.forget.images)) and torch.equal(y, task.forget.labels)
    # the training defaults shuffle and augment: the same call without the flags differs
    x_train = torch.cat([b[0] for b in task.loader(task.forget, batch_size=5)])
    assert not torch.equal(x_train, x)


def test_the_documented_gradient_snippet_is_the_full_batch_gradient() -> None:
    namespace: dict = {}
    exec(doc_block(GUIDE, "Gradients without `task.fit`", "python", "def retain_gradient"), namespace)
    model, task = tiny_task()
    task = task.__class__(**{**task.__dict__, "recipe": task.recipe.replace(batch_size=7)})  # several batches
    before = {n: b.clone() for n, b in model.named_buffers()}
    assert any("running_mean" in n for n in before)  # the tiny model has batch norm
    grads = namespace["retain_gradient"](model, task)
    assert model.training
    assert all(torch.equal(b, before[n]) for n, b in model.named_buffers())  # statistics untouched

    model.eval()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(task.normalize(task.retain.images)), task.retain.labels, reduction="sum").backward()
    expected = {n: p.grad for n, p in model.named_parameters()}
    assert grads.keys() == expected.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected[name], rtol=1e-4, atol=1e-5)


def test_the_documented_plugin_reads_its_forget_set_unaugmented_and_in_order() -> None:
    module = doc_block(GUIDE, "The package", "python", "# my-unlearner/my_unlearner.py")
    assert "augment=False, shuffle=False" in module


def test_the_readme_unlearner_passes_its_own_conformance_check(monkeypatch) -> None:
    """README's short unlearner, run as printed: its last line is ``check_unlearner``, which
    raises on any failed check (the class lives in a module of its own, so that it pickles)."""
    block = doc_block("README.md", "Writing an unlearner", "python", "check_unlearner(")
    module = types.ModuleType("readme_unlearner")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(block, "README.md", "exec"), module.__dict__)
    assert issubclass(module.RetainFineTune, Unlearner)
