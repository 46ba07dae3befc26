"""RTE, the run-time efficiency of an unlearning method, measured without one-time costs.

cuDNN (with ``benchmark=True``) chooses its convolution algorithms, and ``torch.compile``
builds its graphs, the first time a layer meets an input shape. Those costs belong to the
machine and the process, not to the method, and a method meets new shapes in the middle of
its work: its own batch size, the smaller last batch of each loader. So the RTE stopwatch is
paused whenever a loader of the task is created, and :class:`WarmUp` runs one training step
(forward and backward) and one evaluation forward on a throwaway copy of the model for every
batch size that loader will yield and that has not been met yet. The random state of the
process is left as it was, so a run's results do not depend on what was warm. The seconds
spent there are the record's ``warmup_s``.

A method cannot pause the clock itself: what its task holds is a plain function that warms
shapes (:func:`sealed`), not the :class:`WarmUp` or the stopwatch, and the warm-up accepts
only the harness's own data (an exact :class:`ImageData` of plain tensors or streamed
:class:`~unlearnbench.data.streaming.DiskImages`), so no code of the method runs while the
clock is paused.

One cost belongs to the process, not to a shape: the first torch optimizer a process builds
imports ``torch._dynamo`` (about a second on a CPU), which with a cached original would fall
inside the first timed call of the process and make a cold and a warm run of one trial time
differently. :func:`warm_process` pays it before the stopwatch starts, by building and
stepping a throwaway optimizer on a throwaway parameter (no random numbers drawn, no step the
work meter counts); its seconds join ``warmup_s``.

For the compiler the batch dimension is marked dynamic, so one graph serves every batch size
of 2 or more. Not warmed: a batch of a single example (compiled and tuned at its first use;
a training step on it would fail BatchNorm layers of 1x1 maps) and work that does not go
through the task's loaders (the per-example gradients of FF and IU).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from ..data.streaming import DiskImages
from ..data.tensors import DeviceLoader, ImageData, Normalize
from ..errors import UnlearnbenchError
from ..report.records import Work
from ..train.runtime import Runtime, Stopwatch
from ..train.tasks import UnlearningTask
from ..unlearner import Unlearner


_OWN_IMAGES = (torch.Tensor, DiskImages)  # exact types: a subclass could run code while paused


class WarmUp:
    """Pays the one-time costs of batch shapes on a throwaway copy of the model, with
    ``stopwatch`` paused (its ``paused_seconds`` are the warm-up's). The task gets it only
    through :func:`sealed`."""

    def __init__(self, model: nn.Module, runtime: Runtime, normalize: Normalize, stopwatch: Stopwatch):
        self.probe = copy.deepcopy(model)
        self.net = runtime.compiled(self.probe)
        self.runtime, self.normalize, self.stopwatch = runtime, normalize, stopwatch
        self.warm: set[tuple[int, ...]] = set()  # input shapes met so far

    def __call__(self, data: ImageData, batch_sizes: Iterable[int]) -> None:
        if type(data) is not ImageData or type(data.images) not in _OWN_IMAGES \
                or type(data.labels) is not torch.Tensor:
            raise UnlearnbenchError(
                f"the warm-up got {type(data).__name__} data of {type(data.images).__name__} "
                f"images: expected the task's own ImageData (plain tensors or streamed DiskImages)")
        image_shape = tuple(data.images.shape[1:])
        todo = sorted(int(n) for n in set(batch_sizes))
        todo = [n for n in todo if n >= 2 and (n, *image_shape) not in self.warm]
        if not todo:
            return
        devices = [self.runtime.device] if self.runtime.device.type == "cuda" else []
        with self.stopwatch.paused(), torch.random.fork_rng(devices=devices):
            for n in todo:
                self._step(data.subset(torch.arange(n, device=data.device)))
                self.warm.add((n, *image_shape))

    def _step(self, batch: ImageData) -> None:
        x, y = next(iter(DeviceLoader(batch, normalize=self.normalize, batch_size=len(batch),
                                      channels_last=self.runtime.channels_last)))
        if self.runtime.compile != "none":
            torch._dynamo.maybe_mark_dynamic(x, 0)
        self.probe.train()
        with self.runtime.autocast():
            loss = F.cross_entropy(self.net(x), y)
        loss.backward()
        self.probe.zero_grad(set_to_none=True)
        self.probe.eval()
        with torch.no_grad():  # evaluation runs in fp32 (evaluate.metrics.predict)
            self.net(x)


_PROCESS_WARM = False


def warm_process() -> float:
    """Pay the one-time costs of the process that any method meets at its first optimizer
    (building the first ``torch.optim`` optimizer imports ``torch._dynamo``): build and step
    an SGD (with momentum and weight decay) and an Adam on a throwaway parameter. Returns the
    seconds it took (0.0 once the process is warm)."""
    global _PROCESS_WARM
    if _PROCESS_WARM:
        return 0.0
    start = time.perf_counter()
    weight = nn.Parameter(torch.zeros(1))
    weight.grad = torch.zeros(1)
    for optimizer in (torch.optim.SGD([weight], lr=0.1, momentum=0.9, weight_decay=1e-4),
                      torch.optim.Adam([weight], lr=0.1)):
        optimizer.step()
    _PROCESS_WARM = True
    return time.perf_counter() - start


@dataclasses.dataclass(frozen=True)
class Timed:
    model: nn.Module
    rte: float  # seconds of the unlearning call, one-time costs left out
    warmup_s: float  # seconds of the one-time costs met during the call, paid with the clock paused
    work: Work  # what the call did (optimizer steps, examples drawn per part of the data)


class WorkMeter:
    """Counts what an unlearning call does: every ``step()`` of any torch optimizer (a global
    post-hook, so a method's own optimizer counts too; the warm-up steps none) and the
    examples each of the task's loaders yields, by the part of the data it reads."""

    def __init__(self, task: UnlearningTask):
        parts = {"forget": task.forget, "retain": task.retain, "validation": task.validation}
        self.parts = {id(data): name for name, data in parts.items() if data is not None}
        self.steps = 0
        self.examples: dict[str, int] = {}

    def count_examples(self, data: ImageData, examples: int) -> None:
        part = self.parts.get(id(data), "other")
        self.examples[part] = self.examples.get(part, 0) + examples

    def _step(self, optimizer, args, kwargs) -> None:
        self.steps += 1

    def __enter__(self) -> WorkMeter:
        self._handle = register_optimizer_step_post_hook(self._step)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()

    @property
    def work(self) -> Work:
        return Work(self.steps, dict(sorted(self.examples.items())))


def sealed(warm_up: WarmUp) -> Callable[[ImageData, Iterable[int]], None]:
    """The task's ``warm_up``: a function that warms shapes and exposes nothing else (neither
    the :class:`WarmUp` nor the stopwatch it pauses is an attribute of it)."""
    def warm_up_shapes(data: ImageData, batch_sizes: Iterable[int]) -> None:
        warm_up(data, batch_sizes)
    return warm_up_shapes


def timed_unlearn(unlearner: Unlearner, model: nn.Module, task: UnlearningTask) -> Timed:
    """Run ``unlearner`` on a copy of ``model`` and time it as RTE (see the module docstring)."""
    stopwatch = Stopwatch(task.runtime)
    meter = WorkMeter(task)
    task = dataclasses.replace(task, warm_up=sealed(WarmUp(model, task.runtime, task.normalize,
                                                           stopwatch)),
                               count_examples=meter.count_examples)
    model = copy.deepcopy(model).train()  # the contract: the model arrives in training mode
    process_s = warm_process()  # before the meter and the stopwatch: counted in neither
    with meter, stopwatch:
        unlearned = unlearner.unlearn(model, task)
    return Timed(unlearned, stopwatch.seconds, stopwatch.paused_seconds + process_s, meter.work)
