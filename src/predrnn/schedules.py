"""Scheduled-sampling schedules: pure functions of the global training step.

A schedule answers one question: at global step ``step`` (0-based, the number of
optimizer updates already applied), with which probability is the *true* frame fed
to the model at each input step ``t = 1 .. T-2``? The answer is a vector of
``T - 2`` probabilities (``T = input_length + output_length``): the first
``input_length - 1`` entries cover the context steps, the rest the future steps.

Turning probabilities into a ``(batch, T - 2)`` teacher-forcing mask is done by
:func:`sample_teacher_forcing_mask`, reproducibly from ``(seed, step)``, on the
host, by the data pipeline. The model only *uses* the mask. Because the mask is
data, the probability really follows the step inside compiled training (reading a
Python attribute at trace time would freeze it).

Mask convention everywhere: 1 = feed the ground-truth frame, 0 = feed the model's
own previous prediction.
"""

from __future__ import annotations

import math

import keras
import numpy as np

__all__ = [
    "SamplingSchedule",
    "ConstantSchedule",
    "ReferenceSchedule",
    "ReverseSchedule",
    "LinearSchedule",
    "ExponentialSchedule",
    "SigmoidSchedule",
    "get_schedule",
    "PAPER_STEPS",
    "scaled_arguments",
    "describe_schedule",
    "sample_teacher_forcing_mask",
    "inference_teacher_forcing_mask",
]


def _check_lengths(input_length: int, output_length: int) -> None:
    if int(input_length) < 1 or int(output_length) < 1:
        raise ValueError(
            "input_length and output_length must both be >= 1. "
            f"Received: input_length={input_length}, output_length={output_length}"
        )


class SamplingSchedule:
    """Base class. Subclasses implement the scalar probabilities of one step.

    ``context_probability(step)`` is used for the context steps ``1 .. input_length-1``,
    ``future_probability(step)`` for the future steps ``input_length .. T-2``.
    """

    def context_probability(self, step: int) -> float:
        return 1.0

    def future_probability(self, step: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement future_probability().")

    def probabilities(self, step: int, input_length: int, output_length: int) -> np.ndarray:
        """Probabilities of feeding the true frame at input steps 1..T-2, shape ``(T-2,)``."""
        _check_lengths(input_length, output_length)
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0. Received: step={step}")
        context = np.full(input_length - 1, self.context_probability(step), dtype=np.float64)
        future = np.full(output_length - 1, self.future_probability(step), dtype=np.float64)
        return np.concatenate([context, future])

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement get_config().")

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))


def _check_probability(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1]. Received: {name}={value}")
    return value


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name} must be > 0. Received: {name}={value}")
    return value


@keras.saving.register_keras_serializable(package="predrnn")
class ConstantSchedule(SamplingSchedule):
    """Fixed probabilities: ``future_probability=0`` is training without scheduled
    sampling (the model always feeds back its own predictions after the context)."""

    def __init__(self, future_probability: float = 0.0, context_probability: float = 1.0):
        self._future = _check_probability("future_probability", future_probability)
        self._context = _check_probability("context_probability", context_probability)

    def context_probability(self, step: int) -> float:
        return self._context

    def future_probability(self, step: int) -> float:
        return self._future

    def get_config(self) -> dict:
        return {"future_probability": self._future, "context_probability": self._context}


@keras.saving.register_keras_serializable(package="predrnn")
class ReferenceSchedule(SamplingSchedule):
    """PredRNN (NeurIPS 2017) scheduled sampling, as in the official code.

    Context always true; future probability ``eta = max(0, start - decay_rate * step)``,
    and 0 from ``stop_step`` on (with the defaults eta reaches 0 at step 50,000).
    """

    def __init__(self, start: float = 1.0, decay_rate: float = 2e-5, stop_step: int = 50_000):
        self.start = _check_probability("start", start)
        self.decay_rate = float(decay_rate)
        if self.decay_rate < 0:
            raise ValueError(f"decay_rate must be >= 0. Received: decay_rate={decay_rate}")
        self.stop_step = int(stop_step)
        if self.stop_step < 0:
            raise ValueError(f"stop_step must be >= 0. Received: stop_step={stop_step}")

    def future_probability(self, step: int) -> float:
        if step >= self.stop_step:
            return 0.0
        return max(0.0, self.start - self.decay_rate * step)

    def get_config(self) -> dict:
        return {"start": self.start, "decay_rate": self.decay_rate, "stop_step": self.stop_step}


@keras.saving.register_keras_serializable(package="predrnn")
class ReverseSchedule(SamplingSchedule):
    """PredRNN-V2 reverse scheduled sampling (TPAMI 2022, arXiv 2103.09504).

    Encoder (context) probability ``r_eta``: 0.5 before ``start_step``,
    ``1 - 0.5 * exp(-(step - start_step) / alpha)`` until ``stop_step``, 1 after.
    Decoder (future) probability ``eta``: 0.5 before ``start_step``, falling linearly
    to 0 at ``stop_step``, 0 after. Official defaults: 25,000 / 50,000, alpha 5,000
    (2,500 for Moving MNIST).
    """

    def __init__(self, start_step: int = 25_000, stop_step: int = 50_000, alpha: float = 5_000.0):
        self.start_step = int(start_step)
        self.stop_step = int(stop_step)
        if not 0 <= self.start_step < self.stop_step:
            raise ValueError(
                f"ReverseSchedule needs 0 <= start_step < stop_step. Received: start_step={start_step}, stop_step={stop_step}"
            )
        self.alpha = _check_positive("alpha", alpha)

    def context_probability(self, step: int) -> float:
        if step < self.start_step:
            return 0.5
        if step < self.stop_step:
            return 1.0 - 0.5 * math.exp(-float(step - self.start_step) / self.alpha)
        return 1.0

    def future_probability(self, step: int) -> float:
        if step < self.start_step:
            return 0.5
        if step < self.stop_step:
            return 0.5 - 0.5 * (step - self.start_step) / (self.stop_step - self.start_step)
        return 0.0

    def get_config(self) -> dict:
        return {"start_step": self.start_step, "stop_step": self.stop_step, "alpha": self.alpha}


class _ProbabilityCurve(SamplingSchedule):
    """A single future probability moving from ``start`` to ``end``; context stays true."""

    def __init__(self, start: float = 1.0, end: float = 0.0):
        self.start = _check_probability("start", start)
        self.end = _check_probability("end", end)


@keras.saving.register_keras_serializable(package="predrnn")
class LinearSchedule(_ProbabilityCurve):
    """``e = start + rate * step`` towards ``end``, then held at ``end``.

    For an increasing curve this is the earlier TensorFlow port's
    ``min(e_s + a*k, e_e)``; a decreasing one (the usual 1 -> 0) mirrors it.
    """

    def __init__(self, start: float = 1.0, end: float = 0.0, rate: float = 2e-5):
        super().__init__(start, end)
        self.rate = _check_positive("rate", rate)

    def future_probability(self, step: int) -> float:
        if self.end >= self.start:
            return min(self.start + self.rate * step, self.end)
        return max(self.start - self.rate * step, self.end)

    def get_config(self) -> dict:
        return {"start": self.start, "end": self.end, "rate": self.rate}


@keras.saving.register_keras_serializable(package="predrnn")
class ExponentialSchedule(_ProbabilityCurve):
    """``e = end - (end - start) * exp(-step / alpha)``."""

    def __init__(self, start: float = 1.0, end: float = 0.0, alpha: float = 10_000.0):
        super().__init__(start, end)
        self.alpha = _check_positive("alpha", alpha)

    def future_probability(self, step: int) -> float:
        return self.end - (self.end - self.start) * math.exp(-step / self.alpha)

    def get_config(self) -> dict:
        return {"start": self.start, "end": self.end, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="predrnn")
class SigmoidSchedule(_ProbabilityCurve):
    """``e = start + (end - start) / (1 + exp((midpoint - step) / alpha))``."""

    def __init__(self, start: float = 1.0, end: float = 0.0, alpha: float = 2_500.0, midpoint: float = 25_000.0):
        super().__init__(start, end)
        self.alpha = _check_positive("alpha", alpha)
        self.midpoint = float(midpoint)

    def future_probability(self, step: int) -> float:
        z = (self.midpoint - step) / self.alpha
        if z > 700:  # exp overflow: the curve sits at its start value
            return self.start
        return self.start + (self.end - self.start) / (1.0 + math.exp(z))

    def get_config(self) -> dict:
        return {"start": self.start, "end": self.end, "alpha": self.alpha, "midpoint": self.midpoint}


SCHEDULES = {
    "constant": ConstantSchedule,
    "reference": ReferenceSchedule,
    "reverse": ReverseSchedule,
    "linear": LinearSchedule,
    "exponential": ExponentialSchedule,
    "sigmoid": SigmoidSchedule,
}


def get_schedule(name: str, **kwargs) -> SamplingSchedule:
    """Build a schedule by its short name (``"reference"``, ``"reverse"``, ``"linear"``,
    ``"exponential"``, ``"sigmoid"``, ``"constant"``) and keyword arguments."""
    if isinstance(name, SamplingSchedule):
        return name
    key = str(name).lower()
    if key not in SCHEDULES:
        raise ValueError(f"Unknown sampling schedule {name!r}. Choose one of: {', '.join(sorted(SCHEDULES))}.")
    cls = SCHEDULES[key]
    try:
        return cls(**kwargs)
    except TypeError as error:
        import inspect

        valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        raise ValueError(
            f"Bad arguments for the {key!r} schedule: {error}. Valid arguments: {', '.join(valid)}. Received: {kwargs}"
        ) from None


# ----------------------------------------------------------------------------------
# Schedules sized for a run
# ----------------------------------------------------------------------------------

PAPER_STEPS = 80_000  # the papers' Moving MNIST runs, which the classes' defaults are sized for

# The step-valued arguments that scale with the run: the classes' defaults as fractions of
# PAPER_STEPS (reference: 50,000; reverse: 25,000, 50,000, 5,000; exponential: 10,000;
# sigmoid: 25,000 and 2,500). The reference decay_rate and the linear rate follow the stop
# step instead (see scaled_arguments).
STEP_FRACTIONS = {
    "reference": {"stop_step": 0.625},
    "reverse": {"start_step": 0.3125, "stop_step": 0.625, "alpha": 0.0625},
    "linear": {},
    "exponential": {"alpha": 0.125},
    "sigmoid": {"midpoint": 0.3125, "alpha": 0.03125},
    "constant": {},
}


def scaling_rule(name: str, key: str) -> str | None:
    """How :func:`scaled_arguments` fills ``key`` of schedule ``name`` when it is not set, in
    words (``"0.625 x train.steps"``); ``None`` for a key that does not scale."""
    fraction = STEP_FRACTIONS.get(str(name).lower(), {}).get(key)
    if fraction is not None:
        return f"{fraction:g} x train.steps"
    if (str(name).lower(), key) == ("reference", "decay_rate"):
        return "start / stop_step"
    if (str(name).lower(), key) == ("linear", "rate"):
        return "|end - start| / (0.625 x train.steps)"
    return None


def _round_step(value: float) -> int:
    return int(math.floor(value + 0.5))


def scaled_arguments(name: str, total_steps: int, **given) -> dict:
    """Every argument of schedule ``name`` for a run of ``total_steps`` optimizer steps.

    The arguments in ``given`` are kept (``None`` counts as not given). The step-valued ones
    not given are the classes' defaults scaled by ``total_steps / 80,000``
    (:data:`STEP_FRACTIONS`: the papers' schedules keep their shape over a shorter or longer
    run); the reference ``decay_rate`` not given is ``start / stop_step`` (the line reaches 0 at
    the stop step), the linear ``rate`` not given ``|end - start| / (0.625 x total_steps)``. At
    ``total_steps = 80,000`` every filled value equals the class's default. The other arguments
    keep the class's defaults. Raises ``ValueError`` for values that do not fit together.
    """
    key = str(name).lower()
    if key not in SCHEDULES:
        raise ValueError(f"Unknown sampling schedule {name!r}. Choose one of: {', '.join(sorted(SCHEDULES))}.")
    total_steps = int(total_steps)
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1. Received: total_steps={total_steps}")
    arguments = {k: v for k, v in given.items() if v is not None}
    filled = {}
    for argument, fraction in STEP_FRACTIONS[key].items():
        if argument in arguments:
            continue
        value = fraction * total_steps
        if argument == "stop_step":
            value = max(1, _round_step(value))
        elif argument == "start_step":
            value = _round_step(value)
        filled[argument] = value
    if key == "reverse" and "start_step" in filled:
        stop = arguments.get("stop_step", filled.get("stop_step"))
        if "stop_step" in filled:
            filled["start_step"] = min(filled["start_step"], filled["stop_step"] - 1)  # a run of a step or two
        elif filled["start_step"] >= int(stop):
            raise ValueError(
                f"start_step, not set, scales to 0.3125 x train.steps = {filled['start_step']}, which is not below "
                f"stop_step = {stop}. Set start_step too (e.g. stop_step / 2 = {int(stop) // 2})."
            )
    arguments.update(filled)
    defaults = get_schedule(key).get_config()
    if key == "reference" and "decay_rate" not in arguments:
        start = float(arguments.get("start", defaults["start"]))
        arguments["decay_rate"] = start / int(arguments["stop_step"]) if int(arguments["stop_step"]) > 0 else 0.0
    if key == "linear" and "rate" not in arguments:
        span = abs(float(arguments.get("end", defaults["end"])) - float(arguments.get("start", defaults["start"])))
        arguments["rate"] = (span or 1.0) / (0.625 * total_steps)
    return get_schedule(key, **arguments).get_config()


def _final_step(schedule: SamplingSchedule) -> int:
    """The step from which the probabilities stay at (within 1% of) their final values."""
    if isinstance(schedule, ReferenceSchedule):
        if schedule.decay_rate > 0:
            return min(schedule.stop_step, math.ceil(schedule.start / schedule.decay_rate))
        return schedule.stop_step
    if isinstance(schedule, ReverseSchedule):
        return schedule.stop_step
    if isinstance(schedule, LinearSchedule):
        return math.ceil(abs(schedule.end - schedule.start) / schedule.rate)
    if isinstance(schedule, ExponentialSchedule):
        return math.ceil(schedule.alpha * math.log(100.0)) if schedule.end != schedule.start else 0
    if isinstance(schedule, SigmoidSchedule):
        return max(0, math.ceil(schedule.midpoint + schedule.alpha * math.log(99.0))) if schedule.end != schedule.start else 0
    return 0


def _p(value: float) -> str:
    return f"{value:.1f}" if abs(value * 10 - round(value * 10)) < 1e-9 else f"{value:.3g}"


def describe_schedule(schedule: SamplingSchedule, total_steps: int) -> list[str]:
    """The schedule over a run of ``total_steps`` steps in words: one line of what it does,
    then a ``Note:`` line for each part of the run that is fully teacher-forced (every future
    input a true frame) and for a schedule that does not finish within the run."""
    total_steps = int(total_steps)
    end = _final_step(schedule)
    f = schedule.future_probability
    if isinstance(schedule, ReferenceSchedule):
        cut = schedule.decay_rate > 0 and schedule.stop_step < schedule.start / schedule.decay_rate
        if cut and schedule.stop_step > 0:
            text = (
                f"reference, true future frames {_p(schedule.start)} -> {_p(f(schedule.stop_step - 1))} over steps "
                f"0-{schedule.stop_step - 1}, then 0.0 from step {schedule.stop_step} (decay {schedule.decay_rate:.3g}/step)"
            )
        else:
            text = f"reference, true future frames {_p(schedule.start)} -> 0.0 over steps 0-{end} (decay {schedule.decay_rate:.3g}/step)"
    elif isinstance(schedule, ReverseSchedule):
        text = (
            f"reverse, true context frames 0.5 -> 1.0 (time constant {schedule.alpha:g} steps) and true future "
            f"frames 0.5 -> 0.0 over steps {schedule.start_step}-{schedule.stop_step}"
        )
    elif isinstance(schedule, LinearSchedule):
        text = (
            f"linear, true future frames {_p(schedule.start)} -> {_p(schedule.end)} over steps 0-{end} ({schedule.rate:.3g}/step)"
        )
    elif isinstance(schedule, ExponentialSchedule):
        text = (
            f"exponential, true future frames {_p(schedule.start)} -> {_p(schedule.end)} as exp(-step / {schedule.alpha:g}), "
            f"within 1% of {_p(schedule.end)} from step {end}"
        )
    elif isinstance(schedule, SigmoidSchedule):
        text = (
            f"sigmoid, true future frames {_p(schedule.start)} -> {_p(schedule.end)}, halfway at step {schedule.midpoint:g} "
            f"(alpha {schedule.alpha:g}), within 1% of {_p(schedule.end)} from step {end}"
        )
    elif isinstance(schedule, ConstantSchedule):
        text = (
            f"constant, true future frames {_p(schedule.future_probability(0))} and true context frames "
            f"{_p(schedule.context_probability(0))} at every step"
        )
    else:
        text = f"{schedule!r}, true future frames {_p(f(0))} at step 0"
    lines = [f"Scheduled sampling: {text}."]
    forced = np.flatnonzero(np.array([f(step) for step in range(total_steps)]) >= 1.0 - 1e-6)
    if forced.size == total_steps:
        lines.append(
            f"Note: the whole run (train.steps = {total_steps}) is fully teacher-forced: every future input is a true "
            "frame, so the model never learns from its own predictions, which it is scored on."
        )
    elif forced.size > 1:
        where = f"steps {forced[0]}-{forced[-1]}" if forced[-1] - forced[0] + 1 == forced.size else f"{forced.size} of its steps"
        lines.append(
            f"Note: {where} ({forced.size / total_steps:.0%} of the run) are fully teacher-forced: every future input "
            "there is a true frame."
        )
    if end > total_steps:
        lines.append(
            f"Note: the schedule does not finish within train.steps = {total_steps}: it moves until step {end}, and at the "
            f"last step true future frames are still fed with probability {f(total_steps - 1):.4g}."
        )
    return lines


def sample_teacher_forcing_mask(probabilities: np.ndarray, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Sample a ``(batch_size, T-2)`` float32 teacher-forcing mask.

    Each entry is 1 with its step's probability, independently per sample and step.
    The same ``(seed, step)`` always gives the same mask, on every backend.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 1:
        raise ValueError(f"probabilities must be a vector of length T-2. Received shape {probabilities.shape}")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(step), 0x5EED])
    draws = rng.random((int(batch_size), probabilities.shape[0]))
    return (draws < probabilities[None, :]).astype(np.float32)


def inference_teacher_forcing_mask(batch_size: int, input_length: int, output_length: int) -> np.ndarray:
    """The test-time mask: true frames in the context, predictions fed back after it."""
    _check_lengths(input_length, output_length)
    mask = np.zeros((int(batch_size), input_length + output_length - 2), dtype=np.float32)
    mask[:, : input_length - 1] = 1.0
    return mask
