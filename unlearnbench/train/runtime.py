"""Where and how a run computes: device, precision, compile mode, and timing on the device.

The random streams of a trial are in :mod:`unlearnbench.seeds`, its CPU budget in
:mod:`unlearnbench.cpus`.
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import ConfigError

Precision = Literal["auto", "fp32", "bf16"]
CompileMode = Literal["none", "default", "reduce-overhead", "max-autotune-no-cudagraphs"]
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    compile: CompileMode = "none"

    @classmethod
    def resolve(cls, device: str = "auto", precision: Precision = "auto",
                compile: CompileMode = "none") -> Runtime:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ConfigError(f"--device {device!r} is invalid: expected auto, cpu, cuda or cuda:N") from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"--device {device!r} was asked for but torch sees no CUDA device")
        if precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"precision {precision!r} is invalid: expected auto, fp32 or bf16")
        if precision == "auto":
            precision = "bf16" if dev.type == "cuda" else "fp32"
        if compile not in COMPILE_MODES:
            raise ConfigError(f"--compile {compile!r} is invalid: expected one of {', '.join(COMPILE_MODES)}")
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
        # channels_last on the CPU too: oneDNN's NHWC convolutions and pooling beat PyTorch's NCHW
        # kernels there (mini_vgg_wide at batch 32: an epoch of fit in 0.69-0.75 of the NCHW time,
        # benchmarks/channels_last_cpu.py). Tensors of other ranks ignore the format.
        return cls(dev, precision, channels_last=True, compile=compile)

    def compiled(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` wrapped by ``torch.compile`` in this runtime's mode (shares its parameters)."""
        return model if self.compile == "none" else torch.compile(model, mode=self.compile)

    @property
    def device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({platform.processor() or platform.machine()})"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def timer(self) -> Stopwatch:
        """``with runtime.timer() as watch:`` times the block on this runtime's device."""
        return Stopwatch(self)


class Stopwatch:
    """Wall-clock seconds of a ``with`` block, the device synchronized at every boundary.

    Parts of the block run under :meth:`paused` are left out of :attr:`seconds` (and added
    to :attr:`paused_seconds`): the one-time costs met in the middle of a timed call.
    """

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.seconds: float | None = None
        self.paused_seconds = 0.0
        self._start: float | None = None

    def __enter__(self) -> Stopwatch:
        self.runtime.synchronize()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runtime.synchronize()
        self.seconds = time.perf_counter() - self._start - self.paused_seconds
        self._start = None

    @property
    def running(self) -> bool:
        return self._start is not None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the block out of the measurement (a no-op pause when the watch is not running)."""
        if not self.running:
            yield
            return
        self.runtime.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.runtime.synchronize()
            self.paused_seconds += time.perf_counter() - start

