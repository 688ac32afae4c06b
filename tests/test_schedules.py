import math

import keras
import numpy as np
import pytest

from predrnn import schedules as S


def test_reference_schedule_formula():
    s = S.ReferenceSchedule()
    for step, eta in [(0, 1.0), (1, 1 - 2e-5), (25_000, 0.5), (49_999, 2e-5), (50_000, 0.0), (90_000, 0.0)]:
        p = s.probabilities(step, input_length=10, output_length=10)
        assert p.shape == (18,)
        np.testing.assert_allclose(p[:9], 1.0)
        np.testing.assert_allclose(p[9:], eta, atol=1e-12)


@pytest.mark.parametrize("alpha", [2_500.0, 5_000.0])
def test_reverse_schedule_formula(alpha):
    s = S.ReverseSchedule(start_step=25_000, stop_step=50_000, alpha=alpha)
    cases = {
        0: (0.5, 0.5),
        24_999: (0.5, 0.5),
        25_000: (0.5, 0.5),
        30_000: (1 - 0.5 * math.exp(-5_000 / alpha), 0.5 - 0.5 * 5_000 / 25_000),
        37_500: (1 - 0.5 * math.exp(-12_500 / alpha), 0.25),
        50_000: (1.0, 0.0),
        80_000: (1.0, 0.0),
    }
    for step, (r_eta, eta) in cases.items():
        p = s.probabilities(step, 10, 10)
        np.testing.assert_allclose(p[:9], r_eta, atol=1e-12, err_msg=str(step))
        np.testing.assert_allclose(p[9:], eta, atol=1e-12, err_msg=str(step))


def test_linear_exponential_sigmoid_formulas():
    lin = S.LinearSchedule(start=0.2, end=0.9, rate=1e-4)
    assert lin.future_probability(1_000) == pytest.approx(min(0.2 + 1e-4 * 1_000, 0.9))
    assert lin.future_probability(100_000) == pytest.approx(0.9)
    down = S.LinearSchedule(start=1.0, end=0.0, rate=1e-4)
    assert down.future_probability(2_500) == pytest.approx(0.75)
    assert down.future_probability(20_000) == 0.0
    exp = S.ExponentialSchedule(start=1.0, end=0.0, alpha=1_000)
    assert exp.future_probability(2_000) == pytest.approx(0.0 - (0.0 - 1.0) * math.exp(-2.0))
    sig = S.SigmoidSchedule(start=1.0, end=0.0, alpha=100, midpoint=1_000)
    assert sig.future_probability(1_000) == pytest.approx(0.5)
    assert sig.future_probability(1_300) == pytest.approx(1.0 + (0.0 - 1.0) / (1 + math.exp(-3.0)))
    assert sig.future_probability(0) == pytest.approx(1.0, abs=1e-4)
    for schedule in (lin, exp, sig):
        np.testing.assert_allclose(schedule.probabilities(5, 3, 4)[:2], 1.0)


@pytest.mark.parametrize("name", sorted(S.SCHEDULES))
def test_monotonic_in_range_and_serializable(name):
    schedule = S.get_schedule(name)
    steps = np.arange(0, 120_000, 997)
    probs = np.stack([schedule.probabilities(int(k), 4, 6) for k in steps])
    assert probs.min() >= 0 and probs.max() <= 1
    future = probs[:, -1]
    assert np.all(np.diff(future) <= 1e-12), name
    clone = type(schedule).from_config(schedule.get_config())
    assert clone == schedule
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert revived == schedule


def test_layout_context_then_future():
    p = S.ReverseSchedule(alpha=2_500).probabilities(40_000, input_length=3, output_length=5)
    assert p.shape == (3 + 5 - 2,)
    assert len(set(p[:2])) == 1 and len(set(p[2:])) == 1 and p[0] != p[2]


def test_mask_sampling_reproducible_and_frequency():
    p = np.array([1.0, 0.0, 0.3, 0.7])
    a = S.sample_teacher_forcing_mask(p, 4000, seed=7, step=12)
    b = S.sample_teacher_forcing_mask(p, 4000, seed=7, step=12)
    c = S.sample_teacher_forcing_mask(p, 4000, seed=7, step=13)
    assert a.shape == (4000, 4) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_allclose(a.mean(axis=0), p, atol=0.03)
    assert set(np.unique(a)) <= {0.0, 1.0}


def test_inference_mask():
    m = S.inference_teacher_forcing_mask(2, 3, 4)
    np.testing.assert_array_equal(m, [[1, 1, 0, 0, 0]] * 2)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: S.get_schedule("cosine"), "Unknown sampling schedule 'cosine'"),
        (lambda: S.get_schedule("linear", slope=1), "Valid arguments: start, end, rate"),
        (lambda: S.ReverseSchedule(start_step=10, stop_step=5), "start_step < stop_step"),
        (lambda: S.ConstantSchedule(future_probability=1.5), "probability in \\[0, 1\\]"),
        (lambda: S.ReferenceSchedule().probabilities(-1, 10, 10), "step must be >= 0"),
        (lambda: S.ReferenceSchedule().probabilities(0, 0, 10), "input_length and output_length"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
