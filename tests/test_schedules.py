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


# ---- schedules sized for a run (the [sampling] keys left unset scale with train.steps)


@pytest.mark.parametrize("name", sorted(S.SCHEDULES))
def test_scaled_arguments_at_80000_steps_are_the_class_defaults(name):
    assert S.scaled_arguments(name, 80_000) == S.get_schedule(name).get_config()  # exact, floats included


def test_scaled_arguments_follow_the_papers_ratios():
    assert S.scaled_arguments("reference", 3_000) == {"start": 1.0, "decay_rate": 1 / 1875, "stop_step": 1875}
    assert S.scaled_arguments("reverse", 3_000) == {"start_step": 938, "stop_step": 1875, "alpha": 187.5}
    assert S.scaled_arguments("reverse", 4_000) == {"start_step": 1250, "stop_step": 2500, "alpha": 250.0}
    assert S.scaled_arguments("linear", 4_000) == {"start": 1.0, "end": 0.0, "rate": 1 / 2500}
    assert S.scaled_arguments("linear", 4_000, start=0.8, end=0.2)["rate"] == pytest.approx(0.6 / 2500)
    assert S.scaled_arguments("exponential", 4_000) == {"start": 1.0, "end": 0.0, "alpha": 500.0}
    assert S.scaled_arguments("sigmoid", 4_000) == {"start": 1.0, "end": 0.0, "alpha": 125.0, "midpoint": 1250.0}
    # the reference line reaches 0 at the stop step: at step 2,499 of 4,000 eta = 1 - 2499/2500
    reference = S.get_schedule("reference", **S.scaled_arguments("reference", 4_000))
    assert reference.future_probability(2_499) == pytest.approx(1 / 2500) and reference.future_probability(2_500) == 0.0


def test_scaled_arguments_keep_what_is_set():
    assert S.scaled_arguments("reference", 3_000, stop_step=1_000) == {"start": 1.0, "decay_rate": 1e-3, "stop_step": 1_000}
    assert S.scaled_arguments("reference", 3_000, decay_rate=2e-5)["decay_rate"] == 2e-5
    assert S.scaled_arguments("reverse", 80_000, start_step=500, stop_step=1_000) == {
        "start_step": 500,
        "stop_step": 1_000,
        "alpha": 5_000.0,
    }
    assert S.scaled_arguments("reverse", 80_000, start_step=None, alpha=2_500.0)["alpha"] == 2_500.0  # None: not set
    with pytest.raises(
        ValueError, match="start_step, not set, scales to 0.3125 x train.steps = 25000, which is not below stop_step = 1000"
    ):
        S.scaled_arguments("reverse", 80_000, stop_step=1_000)
    # the shortest runs still give valid schedules
    assert S.scaled_arguments("reverse", 1) == {"start_step": 0, "stop_step": 1, "alpha": 0.0625}
    assert S.scaled_arguments("reverse", 2) == {"start_step": 0, "stop_step": 1, "alpha": 0.125}
    assert S.scaled_arguments("reference", 1) == {"start": 1.0, "decay_rate": 1.0, "stop_step": 1}


def test_describe_schedule_says_what_the_run_feeds():
    reference = S.get_schedule("reference", **S.scaled_arguments("reference", 4_000))
    assert S.describe_schedule(reference, 4_000) == [
        "Scheduled sampling: reference, true future frames 1.0 -> 0.0 over steps 0-2500 (decay 0.0004/step)."
    ]
    # the papers' 80,000-step schedule in a 3,000-step run: eta = 1 - 2e-5 * 2999 at the last step
    (line, note) = S.describe_schedule(S.ReferenceSchedule(), 3_000)
    assert line == "Scheduled sampling: reference, true future frames 1.0 -> 0.0 over steps 0-50000 (decay 2e-05/step)."
    assert note == (
        "Note: the schedule does not finish within train.steps = 3000: it moves until step 50000, and at the last "
        "step true future frames are still fed with probability 0.94."
    )
    # a stop step before the line reaches 0
    lines = S.describe_schedule(S.ReferenceSchedule(decay_rate=2e-5, stop_step=1_000), 3_000)
    assert lines == [
        "Scheduled sampling: reference, true future frames 1.0 -> 0.98 over steps 0-999, then 0.0 from step 1000 (decay 2e-05/step)."
    ]
    # teacher forcing: all of the run, or a part of it
    (line, note) = S.describe_schedule(S.ConstantSchedule(future_probability=1.0), 500)
    assert line == "Scheduled sampling: constant, true future frames 1.0 and true context frames 1.0 at every step."
    assert note.startswith("Note: the whole run (train.steps = 500) is fully teacher-forced")
    lines = S.describe_schedule(S.ReferenceSchedule(decay_rate=0.0, stop_step=250), 1_000)
    assert lines[1] == "Note: steps 0-249 (25% of the run) are fully teacher-forced: every future input there is a true frame."
    reverse = S.describe_schedule(S.ReverseSchedule(start_step=1_250, stop_step=2_500, alpha=125.0), 4_000)
    assert reverse == [
        "Scheduled sampling: reverse, true context frames 0.5 -> 1.0 (time constant 125 steps) and true future frames "
        "0.5 -> 0.0 over steps 1250-2500."
    ]
    sigmoid = S.describe_schedule(S.SigmoidSchedule(alpha=125.0, midpoint=1_250.0), 4_000)
    assert sigmoid == [
        f"Scheduled sampling: sigmoid, true future frames 1.0 -> 0.0, halfway at step 1250 (alpha 125), within 1% of 0.0 "
        f"from step {math.ceil(1250 + 125 * math.log(99))}."
    ]
