"""HA: the forget set's accuracy expected of a model that never saw it, read off held-out data.

A model trained without the forget set predicts it about as well as it predicts unseen
examples like it. "Like it" is taken per class: for each class c, with p_F(c) its share of the
forget set and acc_H(c) the accuracy on held-out examples of class c (the test set, or a tuning
trial's validation hold-out, *with* any class TA leaves out),

    HA = sum_c p_F(c) * acc_H(c) * [c is still taught by the retain set]

A class the retain set no longer holds counts 0: a classifier trained with cross-entropy on
data without a label does not predict that label. So in class-wise forgetting HA is 0 (Retrain's
UA is 100) and in random forgetting about the held-out accuracy (Retrain's forget accuracy is
about its test accuracy). ``(100 - UA) - HA``, the forget accuracy's excess over it, is what the
oracle-free tuning criterion drives to 0 (``unlearnbench.run.tuning``); the paper reports no
such metric.
"""

from __future__ import annotations

import torch

from ..metric import TrialEvaluation, TrialMetric


def expected_forget_accuracy(forget_labels: torch.Tensor, retain_labels: torch.Tensor,
                             heldout_logits: torch.Tensor, heldout_labels: torch.Tensor) -> float | None:
    """HA in % (see the module docstring); classes without held-out examples are left out (the
    others' shares renormalized); None when no forget class can be estimated."""
    correct = heldout_logits.argmax(dim=1) == heldout_labels
    taught = set(torch.unique(retain_labels).tolist())
    total, weight = 0.0, 0
    for c, n in zip(*torch.unique(forget_labels, return_counts=True)):
        c, n = int(c), int(n)
        if c not in taught:
            weight += n  # a label the retain set never shows is not predicted: accuracy 0
            continue
        of_class = heldout_labels == c
        if of_class.any():
            total += n * float(correct[of_class].double().mean())
            weight += n
    return 100.0 * total / weight if weight else None


class HeldOutAccuracy(TrialMetric):
    """HA (see the module docstring)."""

    label = "HA"
    description = ("forget-set accuracy expected without it: held-out accuracy on its classes "
                   "(0 for a class the retain set lacks)")
    order = 45

    def compute(self, evaluation: TrialEvaluation) -> float | None:
        return expected_forget_accuracy(evaluation.forget_labels, evaluation.retain_labels,
                                        evaluation.heldout_logits, evaluation.heldout_labels)
