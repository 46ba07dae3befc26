"""RL: random labelling. Fine-tune on the retain set together with the forget set relabelled
with random wrong labels.

Golatkar et al. 2020 ("Eternal Sunshine of the Spotless Net"), in the form used as a baseline
and as the base of SalUn by Fan et al. 2024 ("SalUn", ICLR 2024, Sec. 4 and their public code
OPTML-Group/Unlearn-Saliency, ``unlearn/RL.py``). Training on wrong labels moves the decision
boundary so that the forget examples are no longer predicted as their class, while the retain
examples in the same batches keep the rest of the model's behaviour.

Defaults are the CIFAR-10 defaults of the SalUn reference code (``arg_parser.py``): 10 epochs,
constant lr 0.01 (``--unlearn_lr``; its schedule only decays at epochs 91 and 136, so it is
constant over 10 epochs), SGD momentum 0.9, weight decay 5e-4, batch 256. They equal FT's, so
the class inherits them.

Differences from the reference, on purpose:

* Labels are drawn uniformly among the *wrong* classes (never the true one), once per run from
  the trial's ``rl/labels`` stream. The reference draws ``randint(0, C)``, which gives the true
  label back to 1/C of the forget examples (10% on CIFAR-10), and on CIFAR-10 draws new labels
  for every batch.
* The relabelled forget set and the retain set are shuffled into one set of batches. This is
  the reference's CIFAR-100 / TinyImageNet branch; its CIFAR-10 branch makes one pass over the
  forget set, then one over the retain set, in every epoch.
"""

from __future__ import annotations

from unlearnbench import ImageData, UnlearningTask, param

from ._common import random_wrong_labels
from .ft import FineTune


def relabelled_forget(task: UnlearningTask) -> ImageData:
    """The forget set with every label replaced by a random wrong one (seeded by the trial)."""
    labels = random_wrong_labels(task.forget.labels, task.num_classes, task.generator("rl/labels"))
    return task.forget.with_labels(labels)


class RandomLabel(FineTune):
    epochs: int = param(10, ge=1, help="passes over the retain set plus the relabelled forget set")

    def data(self, task: UnlearningTask) -> ImageData:
        return ImageData.concat([task.retain, relabelled_forget(task)])
