"""The paper's metrics on hand-built inputs with known answers, and how the harness measures
every registered metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.svm import SVC
from torch import nn

from unlearnbench import METRICS, TrialEvaluation, TrialMetric
from unlearnbench.data.tensors import ImageData, Normalize
from unlearnbench.errors import PluginError
from unlearnbench.evaluate.measure import evaluate, measure
from unlearnbench.evaluate.metrics import (accuracy, fit_mia_attack, mia_efficacy, predict,
                                           true_label_confidence)
from unlearnbench.report.records import LEGACY_DECLARATIONS
from unlearnbench.train.runtime import Runtime

CPU = Runtime.resolve("cpu", "fp32")
IDENTITY = Normalize((0.0,), (1 / 255,))  # (x / 255 - 0) / (1 / 255) == x: pixels reach the model unchanged


class PixelClassifier(nn.Module):
    """Predicts the class written in pixel (0, 0), as logits ``scale * one_hot``."""

    def __init__(self, num_classes: int, scale: float = 10.0):
        super().__init__()
        self.num_classes, self.scale = num_classes, scale
        self.unused = nn.Linear(1, 1)  # a parameter, so the model is an ordinary module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        predicted = x[:, 0, 0, 0].round().long()
        return self.scale * nn.functional.one_hot(predicted, self.num_classes).float()


def images_predicting(classes: list[int], labels: list[int]) -> ImageData:
    """Images whose pixel (0, 0) holds the class PixelClassifier will predict."""
    images = torch.zeros(len(classes), 1, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.tensor(classes, dtype=torch.uint8)
    return ImageData(images, torch.tensor(labels))


# -- accuracy and confidence ----------------------------------------------------------------
def test_accuracy_counts_argmax_hits_in_percent() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.5, 0.1, 0.9], [1.0, 2.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0])
    assert accuracy(logits, labels) == 50.0
    assert accuracy(logits, torch.tensor([0, 1, 2, 1])) == 100.0
    assert math.isnan(accuracy(logits[:0], labels[:0]))


def test_true_label_confidence_is_the_softmax_of_the_label() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, math.log(2.0)]], dtype=torch.float64)
    labels = torch.tensor([2, 0])
    by_hand = [math.exp(3) / (math.exp(1) + math.exp(2) + math.exp(3)), 1 / (1 + 1 + 2)]
    np.testing.assert_allclose(true_label_confidence(logits, labels), by_hand, rtol=1e-12)


def test_one_hot_logits_of_the_labels_give_full_accuracy() -> None:
    labels = torch.tensor([3, 0, 2, 2, 1])
    logits = nn.functional.one_hot(labels, 4).float()
    assert accuracy(logits, labels) == 100.0


# -- the membership-inference attack ----------------------------------------------------------------
def _separable_features(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    members = rng.uniform(0.95, 1.0, n)  # confident on training data
    non_members = rng.uniform(0.0, 0.6, n)
    return members, non_members


def test_mia_calls_test_like_forget_data_non_members() -> None:
    members, non_members = _separable_features()
    assert mia_efficacy(members, non_members, non_members.copy()) == pytest.approx(100.0, abs=1.0)
    fresh = np.random.default_rng(1).uniform(0.0, 0.6, 300)  # unseen values of the same kind
    assert mia_efficacy(members, non_members, fresh) == pytest.approx(100.0, abs=2.0)


def test_mia_calls_member_like_forget_data_members() -> None:
    members, non_members = _separable_features()
    assert mia_efficacy(members, non_members, members.copy()) == pytest.approx(0.0, abs=1.0)


def test_mia_is_the_papers_svc_exactly() -> None:
    """Equal to a direct SVC(C=3, gamma="auto", kernel="rbf") fit and predict, on overlapping
    random features and enough targets to run the threaded prediction path."""
    rng = np.random.default_rng(7)
    members = rng.beta(5, 1, 300)
    non_members = rng.beta(2, 2, 300)
    target = np.concatenate([rng.uniform(0, 1, 2500), members[:50], non_members[:50]])
    direct = SVC(C=3, gamma="auto", kernel="rbf").fit(
        np.concatenate([members, non_members]).reshape(-1, 1),
        np.concatenate([np.ones(300), np.zeros(300)]))
    expected = 100.0 * (1.0 - direct.predict(target.reshape(-1, 1)).mean())
    assert 5.0 < expected < 95.0  # a case where the attack is neither trivially right nor wrong
    assert mia_efficacy(members, non_members, target) == expected


def _logit_confidences(rng: np.random.Generator, margins: np.ndarray, scale: float) -> np.ndarray:
    """The attack's feature as ``evaluate`` computes it: float32 logits of 10 classes whose true
    label is ``margin`` above the best other logit, all times ``scale``; float64 softmax.
    From ``scale`` 3 on, many margins pass ~37, where the confidence is exactly 1.0."""
    n = len(margins)
    labels = rng.integers(0, 10, n)
    logits = rng.normal(0.0, 1.0, (n, 10))
    logits[np.arange(n), labels] = -np.inf
    logits[np.arange(n), labels] = logits.max(axis=1) + margins
    logits32 = torch.from_numpy((scale * logits).astype(np.float32))
    return true_label_confidence(logits32, torch.from_numpy(labels))


def _realistic_attack_case(seed: int, scale: float, forget: str) -> tuple[np.ndarray, ...]:
    """2000 members, 2000 non-members, 1000 targets, shaped like a trained CIFAR model's:
    training margins ~ N(10, 2.5); test margins mostly N(7, 3) with a misclassified tail."""
    rng = np.random.default_rng(seed)

    def test_like(n: int) -> np.ndarray:
        return np.where(rng.random(n) < 0.93, rng.normal(7, 3, n), rng.normal(-2, 2, n))

    forget_margins = {"member-like": lambda n: rng.normal(10, 2.5, n),
                      "mixed": lambda n: np.where(rng.random(n) < 0.9, rng.normal(9, 3, n),
                                                  rng.normal(0, 2, n)),
                      "test-like": test_like,
                      "forgotten-class": lambda n: rng.normal(-3, 2, n)}[forget]
    return (_logit_confidences(rng, rng.normal(10, 2.5, 2000), scale),
            _logit_confidences(rng, test_like(2000), scale),
            _logit_confidences(rng, forget_margins(1000), scale))


def _plain_attack(member: np.ndarray, non_member: np.ndarray) -> SVC:
    """The paper's code: a default SVC on the dense feature column."""
    return SVC(C=3, gamma="auto", kernel="rbf").fit(np.concatenate([member, non_member]).reshape(-1, 1),
                                                    np.r_[np.ones(len(member)), np.zeros(len(non_member))])


@pytest.mark.parametrize(("seed", "scale", "forget"), [
    (0, 1.0, "mixed"),            # unsaturated confidences, all distinct
    (1, 1.0, "test-like"),        # retrained model, random forgetting
    (5, 2.0, "mixed"),            # a fit where libsvm's shrinking changes the bits
    (2, 3.0, "mixed"),            # ~18% of member confidences exactly 1.0
    (3, 4.5, "member-like"),      # most confidences exactly 1.0
    (4, 4.5, "forgotten-class"),  # retrained model, class-wise forgetting
])
def test_mia_fit_is_bit_identical_to_the_plain_svc(seed: int, scale: float, forget: str) -> None:
    """The fast fit (CSR input, small kernel cache) must be the plain SVC bit for bit: any change
    of libsvm's path, e.g. merging duplicate confidences, shows in these values."""
    member, non_member, target = _realistic_attack_case(seed, scale, forget)
    plain, ours = _plain_attack(member, non_member), fit_mia_attack(member, non_member)

    assert np.array_equal(ours.support_, plain.support_)
    assert np.array_equal(ours.support_vectors_.toarray(), plain.support_vectors_)
    assert np.array_equal(ours.dual_coef_.toarray(), plain.dual_coef_)
    assert np.array_equal(ours.intercept_, plain.intercept_)
    probe = np.concatenate([target, np.linspace(0.0, 1.0, 501)]).reshape(-1, 1)
    assert np.array_equal(ours.decision_function(probe), plain.decision_function(probe))
    labels = plain.predict(target.reshape(-1, 1))
    assert np.array_equal(ours.predict(target.reshape(-1, 1)), labels)
    assert mia_efficacy(member, non_member, target) == 100.0 * (1.0 - labels.mean())


def test_realistic_attack_cases_cover_saturation_and_the_boundary() -> None:
    """The cases above exercise what they claim: exact 1.0 duplicates, and targets close to
    the decision boundary where a slightly different fit would change labels."""
    member, non_member, target = _realistic_attack_case(3, 4.5, "member-like")
    assert (member == 1.0).mean() > 0.5 and (target == 1.0).mean() > 0.5
    member, non_member, target = _realistic_attack_case(0, 1.0, "mixed")
    assert len(np.unique(np.r_[member, non_member])) == 4000
    margin = np.abs(_plain_attack(member, non_member).decision_function(target.reshape(-1, 1)))
    assert margin.min() < 0.02
    assert 5.0 < mia_efficacy(member, non_member, target) < 95.0


def test_mia_fit_is_bit_identical_with_exact_zero_confidences() -> None:
    """CSR leaves a 0.0 feature out; the kernel and decision values must not change."""
    rng = np.random.default_rng(5)
    member = np.r_[rng.beta(5, 1, 200), np.zeros(5), np.ones(20)]
    non_member = np.r_[rng.beta(2, 2, 200), np.zeros(30), np.ones(5)]
    target = np.r_[0.0, 1.0, rng.uniform(0, 1, 300)]
    plain, ours = _plain_attack(member, non_member), fit_mia_attack(member, non_member)
    assert np.array_equal(ours.dual_coef_.toarray(), plain.dual_coef_)
    assert np.array_equal(ours.intercept_, plain.intercept_)
    column = target.reshape(-1, 1)
    assert np.array_equal(ours.decision_function(column), plain.decision_function(column))
    assert mia_efficacy(member, non_member, target) == 100.0 * (1.0 - plain.predict(column).mean())


def test_mia_of_an_empty_forget_set_is_nan() -> None:
    members, non_members = _separable_features(20)
    assert math.isnan(mia_efficacy(members, non_members, np.array([])))


# -- predict and evaluate ---------------------------------------------------------------------------
def test_predict_returns_eval_mode_logits_and_restores_training_mode() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.9), nn.Linear(16, 3))
    model.train()
    data = ImageData(torch.randint(0, 255, (50, 1, 4, 4), dtype=torch.uint8), torch.zeros(50, dtype=torch.long))
    logits = predict(model, data, IDENTITY, CPU, batch_size=7)
    with torch.no_grad():
        expected = model.eval()(data.images.float())
    # No dropout: eval mode. Batches of 7 and one batch of 50 take different BLAS kernels, which
    # add the 16 products and the bias (up to 255 * 0.25 each, logits in the hundreds) in another
    # order (2.8e-5 seen on one machine, 1.3e-6 is assert_close's default). Any order of a float32
    # sum of n terms is within gamma_n = n*u / (1 - n*u) (u = 2**-24, unit roundoff) of the
    # exact sum, times the sum of the terms' magnitudes (Higham, Accuracy and Stability of
    # Numerical Algorithms, 4.2); two orders differ by at most twice that. This bound, per logit,
    # holds on every BLAS path, and dropout's effect (zeroing 90% of the inputs) is far above it.
    linear = model[2]
    n, u = linear.in_features + 1, 2.0 ** -24
    gamma = n * u / (1 - n * u)
    magnitude = data.images.float().flatten(1) @ linear.weight.abs().T + linear.bias.abs()
    bound = 2 * gamma * magnitude.detach()
    assert torch.all((logits - expected).abs() <= bound)
    with torch.no_grad():
        dropped = model.train()(data.images.float())
    assert torch.all((dropped - expected).abs().amax(1) > bound.amax(1))  # would catch train mode
    model.train()
    predict(model, data, IDENTITY, CPU)
    assert model.training


def test_evaluate_a_model_that_outputs_the_labels() -> None:
    labels = [0, 1, 2, 3, 1, 2]
    data = images_predicting(labels, labels)
    metrics = evaluate(PixelClassifier(4), forget=data, retain=data, test=data, normalize=IDENTITY,
                       runtime=CPU, mia_members=torch.arange(6))
    assert (metrics["UA"], metrics["RA"], metrics["TA"]) == (0.0, 100.0, 100.0)


def test_evaluate_on_known_outputs() -> None:
    """forget: 2 of 4 right; retain: all right; test: 6 of 8 right (2 wrong).

    Attack: members = 8 retain examples, all at the high confidence c = e^10 / (e^10 + 3);
    non-members = the test set, 6 at c and 2 at the low confidence 1 / (e^10 + 3). At c
    members outnumber non-members (8 vs 6), at the low value only non-members lie, so the
    attack calls exactly the two wrongly predicted forget examples non-members: MIA = 50.
    HA: the forget set's classes 0, 1, 2, 2 (shares 1/4, 1/4, 1/2, all still in the retain set)
    with test accuracies 2/2, 2/2, 1/2 on those classes: 25 + 25 + 50 * 1/2 = 75.
    """
    forget = images_predicting([0, 1, 3, 0], [0, 1, 2, 2])
    retain = images_predicting([0, 1, 2, 3] * 3, [0, 1, 2, 3] * 3)
    test = images_predicting([0, 1, 2, 3, 0, 1, 1, 0], [0, 1, 2, 3, 0, 1, 2, 3])
    shadow = torch.tensor([0, 2, 4, 5, 6, 7, 9, 11])
    metrics = evaluate(PixelClassifier(4), forget=forget, retain=retain, test=test, normalize=IDENTITY,
                       runtime=CPU, mia_members=shadow, rte=2.5)
    assert metrics == {"UA": 50.0, "MIA": 50.0, "RA": 100.0, "TA": 75.0, "HA": 75.0, "RTE": 2.5}


def test_evaluation_is_fp32_under_a_bf16_runtime() -> None:
    # The reference evaluates in fp32; bf16 autocast (the GPU default for training) must not
    # reach UA/RA/TA, the MIA feature or a probe's features.
    from unlearnbench.evaluate.probes.transfer import features
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 4))
    model.get_classifier = lambda: model[4]
    data = ImageData(torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8), torch.arange(16) % 4)
    normalize = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    fp32, bf16 = Runtime(torch.device("cpu"), "fp32"), Runtime(torch.device("cpu"), "bf16")
    with torch.no_grad(), bf16.autocast():  # what bf16 evaluation used to give: not fp32
        assert model(normalize(data.images)).dtype == torch.bfloat16
    assert torch.equal(predict(model, data, normalize, bf16), predict(model, data, normalize, fp32))
    assert np.array_equal(features(model, data, normalize, bf16), features(model, data, normalize, fp32))


# -- the built-in metrics on hand-built logits ---------------------------------------------------
def _scores(predicted: list[int], num_classes: int = 3) -> torch.Tensor:
    """Logits whose arg-max is ``predicted``."""
    return 5.0 * nn.functional.one_hot(torch.tensor(predicted), num_classes).float()


def _evaluation(**changes) -> TrialEvaluation:
    """forget: 1 of 4 right (UA 75); retain: 4 of 5 right (RA 80); test: 6 of 8 right (TA 75)."""
    fields = dict(forget_logits=_scores([0, 1, 2, 0]), forget_labels=torch.tensor([0, 0, 0, 1]),
                  retain_logits=_scores([0, 1, 2, 1, 0]), retain_labels=torch.tensor([0, 1, 2, 1, 2]),
                  test_logits=_scores([0, 1, 2, 0, 1, 2, 0, 1]),
                  test_labels=torch.tensor([0, 1, 2, 0, 1, 2, 1, 2]),
                  mia_members=torch.tensor([0, 2, 4]), rte=3.25)
    return TrialEvaluation(**{**fields, **changes})


def _builtin(name: str) -> TrialMetric:
    return METRICS.get(name)()


def test_ua_ra_ta_and_rte_are_exact_on_hand_built_logits() -> None:
    evaluation = _evaluation()
    assert _builtin("UA").compute(evaluation) == 75.0
    assert _builtin("RA").compute(evaluation) == 80.0
    assert _builtin("TA").compute(evaluation) == 75.0
    assert _builtin("RTE").compute(evaluation) == 3.25


def _softmax_of_label(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """The attack's feature written out in numpy: exp(z_y) / sum_k exp(z_k), in float64."""
    z = logits.numpy().astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True))[np.arange(len(z)), labels.numpy()]


def test_mia_efficacy_is_the_plain_svc_of_the_paper_on_hand_built_logits() -> None:
    """Members: the retain examples at ``mia_members``; non-members: the test set; the share of
    the forget set that a plain ``SVC(C=3, gamma="auto", kernel="rbf")`` calls non-member."""
    rng = np.random.default_rng(3)

    def logits(n: int, margin_mean: float) -> tuple[torch.Tensor, torch.Tensor]:
        labels = rng.integers(0, 5, n)
        z = rng.normal(0.0, 1.0, (n, 5))
        z[np.arange(n), labels] += rng.normal(margin_mean, 1.5, n)
        return torch.from_numpy(z.astype(np.float32)), torch.from_numpy(labels)

    (retain, retain_y), (test, test_y), (forget, forget_y) = logits(60, 4.0), logits(30, 1.5), logits(40, 2.5)
    members = torch.from_numpy(rng.permutation(60)[:30])
    evaluation = TrialEvaluation(forget, forget_y, retain, retain_y, test, test_y, members, rte=1.0)

    member_x = _softmax_of_label(retain[members], retain_y[members])
    non_member_x = _softmax_of_label(test, test_y)
    attack = SVC(C=3, gamma="auto", kernel="rbf").fit(np.r_[member_x, non_member_x].reshape(-1, 1),
                                                      np.r_[np.ones(30), np.zeros(30)])
    called_members = attack.predict(_softmax_of_label(forget, forget_y).reshape(-1, 1))
    expected = 100.0 * (1.0 - called_members.mean())
    assert 10.0 < expected < 90.0  # neither trivially all members nor all non-members
    assert _builtin("MIA").compute(evaluation) == expected


def test_the_builtins_declare_what_schema_3_records_meant() -> None:
    """Old records render with these declarations, new ones with the built-ins': they agree."""
    for name, declared in LEGACY_DECLARATIONS.items():
        assert METRICS.get(name).declaration() == declared
        assert METRICS.origin(name).package == "unlearnbench"
    assert [name for name, d in LEGACY_DECLARATIONS.items() if d.in_disparity] == ["UA", "MIA", "RA", "TA"]


# -- measuring: every metric from one evaluation -----------------------------------------------
class Constant(TrialMetric):
    label = "constant"
    value = 1.0

    def compute(self, evaluation):
        return type(self).value


@pytest.fixture
def constant():
    """A registered metric whose value the test sets (``Constant.value``)."""
    METRICS.register("test_constant", Constant)
    yield Constant
    METRICS.unregister("test_constant")
    Constant.value = 1.0


@pytest.mark.parametrize("value, recorded", [
    (2, 2.0), (np.float32(0.5), 0.5), (torch.tensor(1.5), 1.5), (None, None),
    (float("nan"), None), (math.inf, None)])
def test_a_value_is_a_float_or_none(constant, value, recorded) -> None:
    constant.value = value
    assert measure({"test_constant": Constant()}, _evaluation()) == {"test_constant": recorded}


@pytest.mark.parametrize("value", ["high", True, torch.ones(2), [1.0]])
def test_a_value_that_is_no_number_names_the_metric(constant, value) -> None:
    constant.value = value
    with pytest.raises(PluginError, match=r"metric 'test_constant' \(from in-process .*\) returned .*; "
                                          r"expected a number or None"):
        measure({"test_constant": Constant()}, _evaluation())


def test_a_metric_that_fails_is_an_error_naming_it(constant) -> None:
    class Failing(Constant):
        def compute(self, evaluation):
            raise KeyError("forget_loss")

    with pytest.raises(PluginError, match="metric 'test_constant' .* failed: KeyError: 'forget_loss'"):
        measure({"test_constant": Failing()}, _evaluation())


METRICS_MODULE = """
    from unlearnbench import TrialMetric
    from unlearnbench.metric import PopulationMetric

    class Good(TrialMetric):
        label = "good"
        def compute(self, evaluation):
            return 1.0

    class BadDeclaration(Good):
        needs = "weekly"

    class NoLabel(TrialMetric):
        def compute(self, evaluation):
            return 1.0

    class Audit(PopulationMetric):
        label = "audit"
        def design(self, spec):
            return spec
        def score(self, population):
            return 0.0
"""


def test_a_run_measures_every_loadable_trial_metric_and_names_the_broken_ones(
        make_distribution, monkeypatch: pytest.MonkeyPatch) -> None:
    from unlearnbench import components
    from unlearnbench.errors import MetricNotMeasuredWarning
    from unlearnbench.evaluate import measure as measure_module
    from unlearnbench.metric import Metric
    from unlearnbench.registry import Registry, subclass_of

    group = "unlearnbench_tests.metrics"
    root = make_distribution(
        "ub-metric-mix", "0.2",
        {"ub_metric_mix.py": METRICS_MODULE, "ub_metric_broken.py": "raise ImportError('needs libfoo')\n"},
        {group: {"good": "ub_metric_mix:Good", "audit": "ub_metric_mix:Audit",
                 "broken": "ub_metric_broken:Good", "absent": "ub_metric_absent.sub:Good",
                 "weekly": "ub_metric_mix:BadDeclaration", "unlabelled": "ub_metric_mix:NoLabel",
                 "sparsity": "ub_metric_mix:Good"}})
    monkeypatch.syspath_prepend(str(root))
    registry = Registry("metric", group, subclass_of(Metric), "a subclass of unlearnbench.TrialMetric")
    monkeypatch.setattr(measure_module, "METRICS", registry)
    assert components.METRICS is not registry
    with pytest.warns(MetricNotMeasuredWarning) as caught:
        metrics = measure_module.trial_metrics()
    assert list(metrics) == ["good"]  # the population metric is not a per-trial one
    messages = sorted(str(w.message) for w in caught)  # none for the metric not installed
    assert len(messages) == 4 and all("ub-metric-mix 0.2" in m and "left out of this run" in m
                                      for m in messages)
    assert "metric 'broken' from ub-metric-mix 0.2 could not be loaded" in messages[0]
    assert "ImportError: needs libfoo" in messages[0]
    assert "metric 'sparsity'" in messages[1] and "taken by a column of the tables" in messages[1]
    assert "NoLabel declares no label" in messages[2]
    assert "BadDeclaration declares needs='weekly' is invalid" in messages[3]
