"""channels_last on the CPU, old way vs new way, side by side in one run.

The small-scale workload: ``mini_vgg_wide``, 2,250 random 3x32x32 uint8 images. For each
thread count it times, in alternating rounds (CPU seconds of the process, median of the
per-round ratios new / old):

* one epoch of ``fit`` at batch 32: NCHW model and batches (old) vs the channels_last model
  and batches that ``Runtime.resolve("cpu")`` now asks for (new);
* ``predict`` over the 2,250 images: NCHW batches of 1024 (old) vs channels_last batches of
  128, 256 and 1024 (new; 128 is predict's CPU default).

    python benchmarks/channels_last_cpu.py [--rounds 5] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from unlearnbench import DeviceLoader, ImageData, Normalize, TrainRecipe, build_model, fit
from unlearnbench.evaluate.metrics import predict
from unlearnbench.train.runtime import Runtime

IMAGES = 2250
NCHW = Runtime(torch.device("cpu"), "fp32", channels_last=False)
CHANNELS_LAST = Runtime(torch.device("cpu"), "fp32", channels_last=True)


def model(runtime: Runtime) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_model("mini_vgg_wide", num_classes=10, in_chans=3, image_size=32)
    return net.to(memory_format=torch.channels_last) if runtime.channels_last else net


def cpu_seconds(call: Callable[[], object]) -> float:
    start = time.process_time()
    call()
    return time.process_time() - start


def median_ratio(new: Callable[[], object], old: Callable[[], object], rounds: int) -> tuple[float, float]:
    """(median of new / old over alternating rounds, old's median seconds); one untimed warm-up."""
    new(), old()
    pairs = [(cpu_seconds(old), cpu_seconds(new)) for _ in range(rounds)]
    return statistics.median(n / o for o, n in pairs), statistics.median(o for o, _ in pairs)


def epoch(runtime: Runtime, data: ImageData, normalize: Normalize) -> Callable[[], object]:
    start, recipe = model(runtime), TrainRecipe(epochs=1, lr=0.05, batch_size=32)
    loader = DeviceLoader(data, normalize=normalize, batch_size=32, shuffle=True,
                          channels_last=runtime.channels_last)
    return lambda: fit(copy.deepcopy(start), loader, recipe, runtime)


def evaluation(runtime: Runtime, data: ImageData, normalize: Normalize, batch: int) -> Callable[[], object]:
    net = model(runtime)
    return lambda: predict(net, data, normalize, runtime, batch_size=batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    data = ImageData(torch.randint(0, 256, (IMAGES, 3, 32, 32), dtype=torch.uint8, generator=g),
                     torch.randint(0, 10, (IMAGES,), generator=g))
    normalize = Normalize((0.5,) * 3, (0.25,) * 3)
    for threads in map(int, args.threads.split(",")):
        torch.set_num_threads(threads)
        ratio, old = median_ratio(epoch(CHANNELS_LAST, data, normalize), epoch(NCHW, data, normalize),
                                  args.rounds)
        print(f"threads={threads} fit epoch (batch 32): channels_last / NCHW = {ratio:.3f} (NCHW {old:.2f} s)")
        old_predict = evaluation(NCHW, data, normalize, 1024)
        for batch in (128, 256, 1024):
            ratio, old = median_ratio(evaluation(CHANNELS_LAST, data, normalize, batch), old_predict,
                                      args.rounds)
            print(f"threads={threads} predict: channels_last batch {batch} / NCHW batch 1024 = {ratio:.3f} "
                  f"(NCHW {old:.3f} s)")


if __name__ == "__main__":
    main()
