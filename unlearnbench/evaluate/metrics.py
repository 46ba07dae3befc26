"""The metrics of Jia et al. 2023: UA, MIA-Efficacy, RA, TA (in percent) and RTE (seconds).

* UA = 100 - accuracy on the forget set; RA = accuracy on the retain set; TA = accuracy on
  the test set (class-wise forgetting: without the forgotten class).
* MIA-Efficacy = share of the forget set that a membership-inference attack calls
  "non-member". The attack is the paper's: feature = softmax probability of the true label;
  classifier = ``SVC(C=3, gamma="auto", kernel="rbf")`` trained on ``|test|`` retain examples
  (members, label 1) against the test set (non-members, label 0); then applied to the forget
  set. Models are evaluated in eval mode without augmentation, in fp32 whatever the training
  precision (``--precision bf16`` trains under bf16 autocast; the reference evaluates in fp32,
  and bf16 logits would move the MIA feature and the accuracies near ties).

Each is a :class:`~unlearnbench.metric.TrialMetric` registered in the entry-point group
``unlearnbench.metrics`` like a plugin's; the harness (``unlearnbench.evaluate.measure``)
computes the logits once and hands every metric the same :class:`TrialEvaluation`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..cpus import cpu_budget
from ..data.tensors import DeviceLoader, ImageData, Normalize
from ..errors import ConfigError, NonFiniteError
from ..metric import TrialEvaluation, TrialMetric
from ..train.runtime import Runtime

if TYPE_CHECKING:
    from sklearn.svm import SVC


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Percent of rows whose arg-max equals the label."""
    if len(labels) == 0:
        return float("nan")
    return 100.0 * (logits.argmax(dim=1) == labels).double().mean().item()


def true_label_confidence(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Softmax probability of each example's true label (the attack's feature)."""
    probs = torch.softmax(logits.double(), dim=1)
    return probs.gather(1, labels.view(-1, 1)).flatten().cpu().numpy()


# libsvm's kernel cache in MB. It only stores kernel rows, recomputed bit-identically when
# evicted; libsvm's shrinking step walks every cached row, so a small cache is the faster one
# (1 to 20 MB measured equal; 200 MB, sklearn's default, 10-20% slower).
MIA_CACHE_MB = 10


def fit_mia_attack(member: np.ndarray, non_member: np.ndarray) -> SVC:
    """The paper's attack, ``SVC(C=3, gamma="auto", kernel="rbf")``, fitted on member (label 1)
    vs non-member (label 0) confidences, in this order (libsvm's result depends on the order).

    Its dual coefficients, intercept, support vectors and decision values are bit-identical to
    those of a plain fit on the dense column; two settings change how libsvm computes, not what:

    * The single feature goes in as a CSR matrix, so sklearn runs libsvm's sparse build: the
      same solver source compiled without ``_DENSE_REP``. The solver sees the data only through
      the kernel ``exp(-gamma * (x_i**2 + x_j**2 - 2 * x_i * x_j))`` (and ``exp(-gamma * d**2)``
      with ``d = x - s`` at prediction). With one feature each product is one IEEE
      multiplication in both builds; the dense build makes it through a length-1 BLAS ``ddot``
      call per kernel entry, the sparse build inline. A zero feature, which CSR leaves out,
      adds nothing to the sparse dot product and ``s * s`` to the squared distance, exactly
      the dense build's ``0 * x`` and ``(0 - s)**2``.
    * The kernel cache is ``MIA_CACHE_MB`` instead of 200 MB (see its comment).

    On one core this fit is 1.2x-1.4x faster than the plain one (10k + 10k realistic
    confidences: 4.3 s -> 3.4 s; 2k + 2k: 0.19 s -> 0.13 s), with bit-identical results on 49
    cases (confidences of trained digits models; of float32 logits simulated at 2k + 2k and
    10k + 10k, from unsaturated to mostly exactly 1.0; and the benchmark's own case).
    """
    # scipy and sklearn load when an attack is fitted, not with the metric classes (`ls metrics`)
    from scipy import sparse
    from sklearn.svm import SVC

    features = sparse.csr_matrix(np.concatenate([member, non_member]).astype(np.float64).reshape(-1, 1))
    is_member = np.concatenate([np.ones(len(member)), np.zeros(len(non_member))])
    return SVC(C=3, gamma="auto", kernel="rbf", cache_size=MIA_CACHE_MB).fit(features, is_member)


def mia_efficacy(member: np.ndarray, non_member: np.ndarray, target: np.ndarray) -> float:
    """Percent of ``target`` that an SVC trained on member-vs-non-member features calls non-member.

    The classifier is ``fit_mia_attack``'s, bit-identical to the paper's plain SVC. The
    prediction is organized for speed in ways that cannot change a single label: libsvm decides
    each row on its own, so each distinct target value is classified once, and chunks of them
    run on parallel threads (libsvm releases the GIL). Prediction runs in the sparse build too,
    2.7x faster than the dense one, whose kernel allocates a buffer for every kernel value.
    On one core, 10k + 10k confidences and 5k targets: 4.0 s, against 5.5 s with the dense fit.
    """
    attack = fit_mia_attack(member, non_member)
    target = np.asarray(target, dtype=np.float64).ravel()
    if len(target) == 0:
        return float("nan")
    values, inverse = np.unique(target, return_inverse=True)
    predicted = _predict_in_threads(attack, values.reshape(-1, 1))[inverse]
    return 100.0 * float(1.0 - predicted.mean())


def _predict_in_threads(classifier, features: np.ndarray, min_rows: int = 512) -> np.ndarray:
    """``classifier.predict(features)``, computed in row chunks on the available cores.

    Each chunk's labels are exactly those of the single call: prediction is row-wise.
    """
    cores = cpu_budget()
    workers = min(cores, max(1, len(features) // min_rows))
    if workers <= 1:
        return classifier.predict(features)
    with ThreadPoolExecutor(workers) as pool:
        return np.concatenate(list(pool.map(classifier.predict, np.array_split(features, workers))))


# Evaluation batch sizes. On the CPU a batch of 128 keeps its activations in cache: with
# channels_last, predict over 2,250 images on mini_vgg_wide took 0.31 of the NCHW batch-1024
# time at 128, 0.39-0.65 at 256 and 0.64-0.68 at 1024 (1 and 2 threads,
# benchmarks/channels_last_cpu.py). A GPU is bound by kernel launches: large batches.
CPU_EVAL_BATCH = 128
GPU_EVAL_BATCH = 1024


@torch.no_grad()
def predict(model: nn.Module, data: ImageData, normalize: Normalize, runtime: Runtime,
            batch_size: int | None = None) -> torch.Tensor:
    """Logits (fp32, computed in fp32 even under a bf16 runtime; on the CPU) of ``model`` in
    eval mode, no augmentation, in batches of ``batch_size`` (None: the device's best, see
    ``CPU_EVAL_BATCH``) laid out as ``runtime.channels_last`` says."""
    if batch_size is None:
        batch_size = CPU_EVAL_BATCH if runtime.device.type == "cpu" else GPU_EVAL_BATCH
    was_training = model.training
    model.eval()
    outputs = []
    loader = DeviceLoader(data, normalize=normalize, batch_size=batch_size,
                          channels_last=runtime.channels_last)
    for x, _ in tqdm(loader, desc="evaluate", unit="batch", leave=False, disable=None):
        outputs.append(model(x).float())  # kept on the device: one copy, not one sync per batch
    model.train(was_training)
    if not outputs:
        raise ConfigError("cannot evaluate a model on an empty set of examples")
    return torch.cat(outputs).cpu()


def non_finite_weights(model: nn.Module) -> str | None:
    """What in ``model``'s state is NaN or infinite (the first such tensor), or None."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return f"its weights {name!r} are non-finite"
    return None


def check_finite(model: nn.Module, data: ImageData, normalize: Normalize, runtime: Runtime,
                 what: str, examples: int = 256) -> None:
    """Raise :class:`NonFiniteError` if ``model``'s weights, or its logits on the first
    ``examples`` of ``data``, are NaN or infinite."""
    problem = non_finite_weights(model)
    if problem is None:
        sample = data.subset(torch.arange(min(examples, len(data)), device=data.device))
        if len(sample) and not bool(torch.isfinite(predict(model, sample, normalize, runtime)).all()):
            problem = "its logits are non-finite"
    if problem is not None:
        raise NonFiniteError(f"{what} diverged: {problem}")


# -- the built-in trial metrics (entry points in pyproject.toml, like any plugin's) ----------

class UnlearningAccuracy(TrialMetric):
    """UA: 100 - accuracy on the forget set (Jia et al. 2023, Sec. 6.1); the goal is Retrain's."""

    label = "UA"
    in_disparity = True
    description = "100 - accuracy on the forget set"
    order = 10

    def compute(self, evaluation: TrialEvaluation) -> float:
        return 100.0 - accuracy(evaluation.forget_logits, evaluation.forget_labels)


class MIAEfficacy(TrialMetric):
    """MIA-Efficacy: the share of the forget set that the paper's attack calls non-member (see
    the module docstring and :func:`mia_efficacy`)."""

    label = "MIA-Efficacy"
    in_disparity = True
    description = "share of the forget set that a membership-inference attack calls non-member"
    order = 20

    def compute(self, evaluation: TrialEvaluation) -> float:
        e, members = evaluation, evaluation.mia_members
        return mia_efficacy(true_label_confidence(e.retain_logits[members], e.retain_labels[members]),
                            true_label_confidence(e.test_logits, e.test_labels),
                            true_label_confidence(e.forget_logits, e.forget_labels))


class RemainingAccuracy(TrialMetric):
    """RA: accuracy on the retain set."""

    label = "RA"
    in_disparity = True
    description = "accuracy on the retain set"
    order = 30

    def compute(self, evaluation: TrialEvaluation) -> float:
        return accuracy(evaluation.retain_logits, evaluation.retain_labels)


class TestingAccuracy(TrialMetric):
    """TA: accuracy on the test set (class-wise forgetting: without the forgotten class)."""

    label = "TA"
    in_disparity = True
    description = "accuracy on the test set (without a forgotten class)"
    order = 40

    def compute(self, evaluation: TrialEvaluation) -> float:
        return accuracy(evaluation.test_logits, evaluation.test_labels)


class RunTimeEfficiency(TrialMetric):
    """RTE: seconds of the unlearning call (``unlearnbench.run.timing``). Device-dependent, so
    it stays out of Disparity Ave."""

    label = "RTE"
    unit = "s"
    higher_is_better = False
    description = "wall-clock seconds of the unlearning call"
    order = 50

    def compute(self, evaluation: TrialEvaluation) -> float:
        return evaluation.rte
