"""RTE: the stopwatch, and the warm-up of new batch shapes kept out of it."""

from __future__ import annotations

import copy
import dataclasses
import time

import pytest
import torch
from torch._dynamo.utils import counters

from unlearnbench_baselines.unlearners.ft import FineTune
from unlearnbench import TrainRecipe
from unlearnbench.errors import UnlearnbenchError
from unlearnbench.data.tensors import DeviceLoader, ImageData, Normalize
from unlearnbench.train import runtime as runtime_module
from unlearnbench.train.runtime import Runtime, Stopwatch
from unlearnbench.testing import tiny_task
from unlearnbench.run.timing import WarmUp, timed_unlearn

CPU = Runtime.resolve("cpu", "fp32")


class _Clock:
    """``time`` for the stopwatch: the real ``perf_counter`` plus seconds a test adds at will, so
    a test can make a block "last" 1000 s without waiting, and load cannot move the result."""

    def __init__(self) -> None:
        self.added = 0.0

    def perf_counter(self) -> float:
        return time.perf_counter() + self.added

    def advance(self, seconds: float) -> None:
        self.added += seconds


@pytest.fixture
def clock(monkeypatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(runtime_module, "time", fake)
    return fake


def test_the_stopwatch_leaves_out_what_runs_paused(clock) -> None:
    start = time.perf_counter()
    with Stopwatch(CPU) as watch:
        clock.advance(50.0)
        with watch.paused():
            clock.advance(1000.0)
    real = time.perf_counter() - start  # what really passed, however loaded the machine
    assert 50.0 <= watch.seconds <= 50.0 + real
    assert 1000.0 <= watch.paused_seconds <= 1000.0 + real
    with watch.paused():  # not running: a plain block
        clock.advance(1000.0)
    assert watch.paused_seconds <= 1000.0 + real


def test_the_stopwatch_on_the_real_clock() -> None:
    """Sleeps last at least what they ask for, and the watch's interval lies inside the
    test's: bounds that hold under any load (the paused part in ``seconds`` breaks them)."""
    start = time.perf_counter()
    with Stopwatch(CPU) as watch:
        time.sleep(0.02)
        with watch.paused():
            time.sleep(0.1)
    outside = time.perf_counter() - start
    assert watch.seconds >= 0.02 and watch.paused_seconds >= 0.1
    assert watch.seconds + watch.paused_seconds <= outside


def _data(n: int) -> ImageData:
    return ImageData(torch.zeros(n, 1, 4, 4, dtype=torch.uint8), torch.zeros(n, dtype=torch.int64))


@pytest.mark.parametrize(("n", "batch", "drop_last", "sizes"), [
    (66, 16, False, {16, 2}), (64, 16, False, {16}), (10, 16, False, {10}), (66, 16, True, {16}),
    (10, 16, True, set()), (0, 16, False, set())])
def test_a_loader_knows_the_batch_sizes_it_yields(n, batch, drop_last, sizes) -> None:
    loader = DeviceLoader(_data(n), normalize=Normalize((0.5,), (0.5,)), batch_size=batch,
                          drop_last=drop_last)
    assert loader.batch_sizes() == sizes
    assert {len(y) for _, y in loader} == sizes


def test_task_loaders_announce_their_batch_sizes_to_the_warm_up() -> None:
    _, task = tiny_task()
    seen = []
    task = dataclasses.replace(task, warm_up=lambda data, sizes: seen.append((len(data), set(sizes))))
    task.loader(task.retain, batch_size=16)
    assert seen == [(len(task.retain), {16, len(task.retain) % 16})]


def test_each_shape_is_warmed_once_and_single_examples_never(monkeypatch) -> None:
    model, task = tiny_task()
    steps = []
    monkeypatch.setattr(WarmUp, "_step", lambda self, batch: steps.append(len(batch)))
    warm = WarmUp(model, CPU, task.normalize, Stopwatch(CPU))
    warm(task.retain, [16, 2, 1])
    warm(task.forget, [16, 3])
    assert steps == [2, 16, 3]


def test_rte_leaves_out_the_warm_up_and_results_do_not_depend_on_it(monkeypatch, clock) -> None:
    """A warm-up of every new shape that lasts 1000 s on the stopwatch's clock is not in RTE;
    the unlearned model is the one an untimed, unwarmed run makes from the same random state.
    RTE itself is real seconds of a tiny FT, far below 1000 s under any load; counting one
    warm-up step in it breaks the bound."""
    model, task = tiny_task()
    original = copy.deepcopy(model.state_dict())
    ft = FineTune(epochs=1, batch_size=16)
    torch.manual_seed(0)
    plain = ft.unlearn(copy.deepcopy(model), task)

    real_step = WarmUp._step
    injected = 1000.0

    def slow_step(self, batch):
        clock.advance(injected)
        real_step(self, batch)
    monkeypatch.setattr(WarmUp, "_step", slow_step)
    torch.manual_seed(0)
    start = time.perf_counter()
    timed = timed_unlearn(ft, model, task)
    real = time.perf_counter() - start
    assert 2 * injected <= timed.warmup_s <= 2 * injected + real  # the batch of 16 and the last one
    assert 0 < timed.rte <= real < injected
    for a, b in zip(plain.state_dict().values(), timed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert all(torch.equal(original[k], v) for k, v in model.state_dict().items())  # a copy was unlearned


def _count_compiled_graphs(monkeypatch) -> None:
    """torch.compile with the aot_eager backend: dynamo and autograd capture as with
    inductor, without generating code (seconds instead of minutes on a CPU)."""
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, mode=None, **kw: real(model, backend="aot_eager", **kw))
    torch._dynamo.reset()
    counters.clear()


@pytest.mark.parametrize("warm", [True, False])
def test_with_compile_nothing_is_compiled_inside_the_timed_call(monkeypatch, warm: bool) -> None:
    """After the loaders' warm-up, new batch sizes (16, the last batch of 2) reuse the graph
    built for the dynamic batch dimension: dynamo captures no graph during training. Without
    the warm-up it does, which is what RTE must not contain."""
    _count_compiled_graphs(monkeypatch)
    model, task = tiny_task()
    runtime = dataclasses.replace(task.runtime, compile="default")
    task = dataclasses.replace(task, runtime=runtime)
    if warm:
        task = dataclasses.replace(task, warm_up=WarmUp(model, runtime, task.normalize, Stopwatch(runtime)))
    batches = task.loader(task.retain, batch_size=16)
    assert batches.batch_sizes() == {16, 2}
    before = counters["stats"]["unique_graphs"]
    task.fit(copy.deepcopy(model), batches, TrainRecipe(epochs=1, lr=0.01, batch_size=16, schedule="constant"))
    compiled = counters["stats"]["unique_graphs"] - before
    assert (compiled == 0) if warm else (compiled > 0)
    torch._dynamo.reset()


def _reachable(root: object) -> list[object]:
    """Every object reachable from ``root`` through attributes, bound methods and containers
    (not through a function's closure or globals: that is introspection, not an interface)."""
    import functools
    import types
    seen: dict[int, object] = {}
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (torch.Tensor, type, types.ModuleType, str, bytes, int, float)):
            continue
        seen[id(obj)] = obj
        if isinstance(obj, dict):
            todo += list(obj.keys()) + list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            todo += list(obj)
        elif isinstance(obj, types.MethodType):
            todo += [obj.__self__, obj.__func__]
        elif isinstance(obj, functools.partial):
            todo += [obj.func, *obj.args, *obj.keywords.values()]
        if hasattr(obj, "__dict__") and not isinstance(obj, types.FunctionType):
            todo += list(vars(obj).values())
        if dataclasses.is_dataclass(obj):
            todo += [getattr(obj, f.name) for f in dataclasses.fields(obj)]
        todo += [getattr(obj, name) for name in getattr(type(obj), "__slots__", ()) if hasattr(obj, name)]
    return list(seen.values())


class _PeekingUnlearner(FineTune):
    """Sleeps, with the RTE clock paused if anything in its task lets it pause the clock."""

    def unlearn(self, model, task):
        for obj in _reachable(task):
            if isinstance(obj, Stopwatch):
                with obj.paused():
                    time.sleep(0.3)
                return model
        time.sleep(0.3)
        return model


def test_a_method_cannot_reach_the_rte_stopwatch() -> None:
    model, task = tiny_task()
    timed = timed_unlearn(_PeekingUnlearner(epochs=1), model, task)
    assert timed.rte >= 0.3 and timed.warmup_s < 0.3


class _Sneaky(ImageData):
    def subset(self, index):
        time.sleep(0.3)  # work a method would like the paused clock to hide
        return super().subset(index)


def test_the_warm_up_runs_no_code_of_the_method_while_the_clock_is_paused() -> None:
    model, task = tiny_task()
    warm = WarmUp(model, CPU, task.normalize, Stopwatch(CPU))
    with pytest.raises(UnlearnbenchError, match="expected the task.s own ImageData"):
        warm(_Sneaky(task.retain.images, task.retain.labels), [16])


_COLD_PROCESS = '''
import sys
import torch
from unlearnbench import Unlearner
from unlearnbench.data.splits import ForgetSpec, make_split
from unlearnbench.run.timing import timed_unlearn
from unlearnbench.testing import TINY_RECIPE, _new_model, tiny_data
from unlearnbench.train.runtime import Runtime
from unlearnbench.train.tasks import UnlearningTask

class Probe(Unlearner):
    """What a method meets when its call starts: is the optimizer machinery loaded yet?"""
    def unlearn(self, model, task):
        print("dynamo loaded at the start of the call:", "torch._dynamo" in sys.modules)
        torch.optim.SGD(model.parameters(), lr=0.01)
        return model

assert "torch._dynamo" not in sys.modules  # a cold process: no optimizer built yet
data = tiny_data()
split = make_split(data.train.labels, data.test.labels, ForgetSpec.parse("class:0"),
                   num_classes=data.num_classes, val_fraction=0.1, seed=0)
model = _new_model(data, 0)  # untrained: as a cached original arrives, no optimizer has run
task = UnlearningTask(forget=data.train.subset(split.forget), retain=data.train.subset(split.retain),
                      validation=None, num_classes=data.num_classes, recipe=TINY_RECIPE,
                      normalize=data.normalize, augment=data.augment,
                      runtime=Runtime.resolve("cpu", "fp32"), seed=0, mask=None,
                      new_model=lambda: _new_model(data, 1))
timed = timed_unlearn(Probe(), model, task)
print("steps counted:", timed.work.optimizer_steps, "warmup_s > 0:", timed.warmup_s > 0)
'''


def test_the_first_optimizer_of_a_process_is_built_before_the_rte_clock_starts() -> None:
    """In a fresh process whose original came from the cache, the first ``torch.optim``
    optimizer imports ``torch._dynamo`` (about a second): the warm-up pays that before the
    stopwatch starts, so a cold and a warm run of one trial time the same work; its own
    optimizer steps are not counted as the method's, and its seconds are in ``warmup_s``."""
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-c", _COLD_PROCESS], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "dynamo loaded at the start of the call: True" in result.stdout
    assert "steps counted: 0 warmup_s > 0: True" in result.stdout
