"""FF: Fisher forgetting, Gaussian noise shaped by the retain set's Fisher information.

Golatkar, Achille, Soatto 2020 ("Eternal Sunshine of the Spotless Net"); the FF baseline of
Jia et al. 2023. Parameters that the retain data constrains (large Fisher) are
kept; the others, which carry information specific to the forget set, are scrambled:

    theta_i <- theta_i + sqrt(var_i) * N(0, 1),
    var_i = min(alpha / max(F_i, fisher_floor), max_variance),
    F_i = (1/|D_r|) sum_{x in D_r} sum_y p(y|x) (d log p(y|x) / d theta_i)^2.

``F`` is the diagonal of the *true* Fisher (an expectation over the model's own predictive
distribution, every class weighted by p(y|x), not the sampled label's "empirical" Fisher),
from **per-example** gradients, averaged over the retain examples, so ``alpha`` does not
scale with |D_r|. This is not what the reference code computes: it squares the gradient of
a whole batch's class-weighted loss (one squared gradient per batch and class, not per
example) and averages those over batches. The square of a batch-mean gradient is not the
mean of squared per-example gradients (it adds cross terms between examples, and where
those average out it is about 1/batch-size of it), so ``alpha`` here is **not on the
reference's scale** and values cannot be carried over.
It is computed with the model in eval mode, with batched per-example Jacobians
(``torch.func``: ``vmap`` of ``jacrev``), in chunks sized by ``gradient_memory_mb``.

Two guards, both documented values rather than hidden constants:
``fisher_floor`` (1e-8, the reference's ``1/(F + 1e-8)``) only avoids a division by zero;
``max_variance`` caps the noise on parameters the retain set barely constrains (1/F huge:
dead units, rarely active filters), which would otherwise receive unbounded noise. The
reference caps ``1/F`` at 1e3, i.e. the variance at ``1e3 * alpha``; it is a separate,
absolute cap here so that it does not move when ``alpha`` is searched.

Differences from the reference code, on purpose: no class-wise special case in any scenario
(the reference zeroes the forgotten class's head row whenever 4,500 examples are forgotten,
which also fires in random forgetting); the per-example Fisher above; no per-row averaging
of the variance and no extra x10 for the head and BN (undocumented heuristics); one alpha for every parameter. FF is a one-shot update
outside the training loop, so it re-applies the task's mask itself (noise on a pruned weight
must not survive).

``alpha`` is undocumented in the paper (its launcher uses about 3e-8; the reference's
``--alpha`` flag defaults to 0.2, a flag it shares with other methods), and neither value
transfers to this Fisher (see above). The default 2e-7 is the choice of a grid search
on digits (the suite's first search tool, since replaced by ``unlearnbench tune``) class-wise
forgetting: among the alphas whose mean RA stays within 5 points of Retrain's, the one with the
smallest worse-of-|UA - UA_retrain|-and-|RA - RA_retrain| (forget and retain sets only, never
the test set). Means over seeds 0, 1, 2 (small_cnn, 30-epoch original)::

    retrain: UA 100.00  RA 100.00; eligible: RA >= 95.00
      alpha     UA      RA    score  eligible
    -------  -----  ------  -------  ----------  -------
       1e-8   0.00  100.00   100.00  yes
       1e-7   0.00   99.97   100.00  yes
       2e-7   1.30   97.14    98.70  yes         <- best
       4e-7  15.36   76.09    84.64  no
       1e-6  63.80   46.47    76.46  no
       1e-5  79.17   22.65    77.35  no

On digits, FF's noise does not single out the forgotten class: UA and the loss of RA rise
together. The paper's class-wise FF numbers (UA ~80 dense) were produced by code with the
class-wise special case, which is not reproduced here.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.func import jacrev, vmap

from unlearnbench import LogUniform, Unlearner, UnlearningTask, param

from ._functional import Params, chunk_size, eval_batches, single_example_logits, trainable


def fisher_diagonal(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> Params:
    """Mean over the examples of ``sum_y p(y|x) (grad log p(y|x))^2``, per trainable parameter.

    Labels in ``batches`` are ignored: the expectation is over the model's own p(y|x).
    """
    was_training = model.training
    model.eval()
    params = {n: p.detach() for n, p in trainable(model).items()}
    logits = single_example_logits(model)

    def log_probs(p: Params, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logp = logits(p, x).float().log_softmax(-1)
        return logp, logp.detach().exp()

    jacobians = vmap(jacrev(log_probs, has_aux=True), in_dims=(None, 0))
    total = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    count = 0
    for x, _ in batches:
        jac, probs = jacobians(params, x)
        for n in total:
            total[n] += torch.einsum("bc,bc...->...", probs, jac[n].float().square())
        count += len(x)
    model.train(was_training)
    if count == 0:
        raise ValueError("the Fisher needs at least one example")
    return {n: t / count for n, t in total.items()}


def noise_variance(fisher: Params, *, alpha: float, fisher_floor: float,
                   max_variance: float) -> Params:
    """``min(alpha / max(F, fisher_floor), max_variance)`` per entry."""
    return {n: (alpha / f.clamp(min=fisher_floor)).clamp(max=max_variance) for n, f in fisher.items()}


class FisherForgetting(Unlearner):
    alpha: float = param(2e-7, gt=0, help="noise scale: variance = alpha / Fisher (mean over D_r)")
    fisher_floor: float = param(1e-8, gt=0, help="lower clamp of the Fisher (division guard)")
    max_variance: float = param(1e-2, gt=0, help="upper cap of the noise variance (std <= 0.1)")
    gradient_memory_mb: int = param(512, ge=1, help="memory for one chunk of per-example Jacobians")

    # The paper gives no range, and the reference's alpha (~3e-8) is not on this Fisher's
    # scale (see above): two decades on each side of the default 2e-7, chosen on digits.
    search_space = {"alpha": LogUniform(1e-9, 1e-5)}

    def retain_fisher(self, model: nn.Module, task: UnlearningTask) -> Params:
        """The diagonal Fisher of ``model`` on the whole retain set."""
        d = sum(p.numel() for p in trainable(model).values())
        size = chunk_size(task.num_classes * d, self.gradient_memory_mb)
        return fisher_diagonal(model, eval_batches(task, task.retain, size))

    def unlearn(self, model: nn.Module, task: UnlearningTask) -> nn.Module:
        variance = noise_variance(self.retain_fisher(model, task), alpha=self.alpha,
                                  fisher_floor=self.fisher_floor, max_variance=self.max_variance)
        noise = task.generator("ff/noise")
        with torch.no_grad():
            for name, p in trainable(model).items():
                draw = torch.randn(p.shape, generator=noise, dtype=torch.float32).to(p.device)
                p.add_((variance[name].sqrt() * draw).to(p.dtype))
        if task.mask is not None:
            task.mask.apply(model)
        return model
