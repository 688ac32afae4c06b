import dataclasses

import numpy as np
import pytest

from predrnn import ConvLSTM, PredRNN
from predrnn.errors import ConfigError
from predrnn.jobs.config import (
    ExperimentConfig,
    from_dict,
    load_config,
    load_saved_config,
    model_arguments,
    parse_override,
    preset_names,
    save_config,
)
from predrnn.jobs.train import build_model, build_schedule

REQUIRED_PRESETS = {
    "quickstart",
    "smoke",
    "moving_mnist_predrnn",
    "moving_mnist_predrnn_v2",
    "moving_mnist_convlstm",
    "ss_reference",
    "ss_reverse",
    "ss_linear",
    "ss_exponential",
    "ss_sigmoid",
}


def test_all_presets_load_and_build():
    assert REQUIRED_PRESETS <= set(preset_names())
    for name in preset_names():
        config = load_config(name)
        model = build_model(config.model)
        assert isinstance(model, ConvLSTM if config.model.architecture == "convlstm" else PredRNN)
        build_schedule(config.sampling)


def test_config_keys_are_constructor_arguments():
    config = load_config("moving_mnist_predrnn_v2")
    model = build_model(config.model)
    model_config = model.get_config()
    for key, value in model_arguments(config.model).items():
        assert model_config[key] == (list(value) if isinstance(value, tuple) else value), key
    assert config.model.decoupling_weight == 0.1 and config.sampling.schedule == "reverse"


def test_overrides_are_typed():
    config = load_config(
        "smoke",
        [
            "train.batch_size=16",
            "model.filters=[4, 6]",
            "train.jit_compile=false",
            "sampling.schedule=linear",
            "sampling.rate=0.5",
        ],
    )
    assert config.train.batch_size == 16 and config.model.filters == (4, 6)
    assert config.train.jit_compile == "false"
    assert build_schedule(config.sampling).rate == 0.5
    assert parse_override("data.path=a b.npy") == ("data", "path", "a b.npy")


def test_saved_config_round_trip(tmp_path):
    config = load_config("moving_mnist_predrnn_v2")
    save_config(config, tmp_path / "config.json")
    assert load_saved_config(tmp_path / "config.json") == config


@pytest.mark.parametrize(
    "raw, match",
    [
        ({"train": {"batchsize": 3}}, "unknown key train.batchsize. Did you mean 'batch_size'"),
        ({"modle": {}}, "unknown section \\[modle\\]. Did you mean 'model'"),
        ({"train": {"batch_size": "eight"}}, "train.batch_size must be of type int. Received: 'eight'"),
        ({"train": {"batch_size": 2.5}}, "train.batch_size must be of type int"),
        ({"model": {"architecture": "predrn"}}, "must be predrnn, convlstm or a registered cell .*Did you mean 'predrnn'"),
        ({"model": {"architecture": "convlstm", "decoupling_weight": 0.1}}, "ConvLSTM has no memory"),
        ({"data": {"image_size": 30}, "model": {"patch_size": 4}}, "not divisible by model.patch_size=4"),
        ({"data": {"dataset": "file"}}, "needs data.path"),
        ({"sampling": {"schedule": "reverse", "rate": 0.1}}, "Valid arguments: start_step, stop_step, alpha"),
        ({"train": {"steps": 0}}, "train.steps must be >= 1"),
        (
            {"train": {"steps": 1500, "steps_per_epoch": 400}},
            "train.steps = 1500 is not a multiple of train.steps_per_epoch = 400 .*"
            "Set train.steps_per_epoch = 375, or train.steps = 1200 or 1600",
        ),
        ({"train": {"steps": 3, "steps_per_epoch": 500}}, "Set train.steps_per_epoch = 3, or train.steps = 500\\."),
        ({"train": {"use_layer_norm": True}}, "Valid keys in \\[train\\]"),
        ({"train": {"adam_epsilon": 0.0}}, "train.adam_epsilon must be > 0 \\(PyTorch's and the official code's: 1e-8\\)"),
        ({"train": {"adam_epsilon": float("nan")}}, "train.adam_epsilon must be > 0"),
        ({"train": {"adam_beta_2": 1.0}}, "train.adam_beta_2 must be in \\[0, 1\\)"),
        ({"train": {"adam_beta_1": -0.1}}, "train.adam_beta_1 must be in \\[0, 1\\)"),
        ({"train": {"adam_epsilon_placement": "pytorh"}}, "must be one of pytorch, keras. Did you mean 'pytorch'"),
        ({"train": {"adam_eps": 1e-8}}, "unknown key train.adam_eps. Did you mean 'adam_epsilon'"),
        ({"data": {"dataset": "file", "path": "x.npy", "window_stride": 0}}, "data.window_stride must be a positive number"),
        ({"data": {"dataset": "file", "path": "x.npy", "window_stride": 1.5}}, "data.window_stride must be of type int"),
        ({"data": {"window_stride": 2}}, "data.window_stride apply to dataset = 'file'"),
    ],
)
def test_config_errors(raw, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(raw)


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="Unknown preset 'quickstrat'. Did you mean 'quickstart'"):
        load_config("quickstrat")
    with pytest.raises(ConfigError, match="Config file not found"):
        load_config(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nseed = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="--set takes section.key=value"):
        load_config("smoke", ["batch_size=3"])


def test_adam_defaults_are_the_official_codes():
    """The official PredRNN code trains with torch.optim.Adam's defaults: betas (0.9, 0.999),
    eps 1e-8 added after bias correction (tests/test_optimizer_parity.py checks the update)."""
    train = ExperimentConfig().train
    assert (train.adam_beta_1, train.adam_beta_2, train.adam_epsilon) == (0.9, 0.999, 1e-8)
    assert train.adam_epsilon_placement == "pytorch"
    config = load_config("smoke", ["train.adam_epsilon=1e-7", "train.adam_epsilon_placement=keras"])
    assert (config.train.adam_epsilon, config.train.adam_epsilon_placement) == (1e-7, "keras")


def test_saved_config_without_adam_keys_loads(tmp_path):
    """A run folder written before the Adam keys existed still loads (with today's defaults)."""
    import json

    save_config(load_config("smoke"), tmp_path / "config.json")
    raw = json.loads((tmp_path / "config.json").read_text())
    for key in ("adam_epsilon", "adam_epsilon_placement", "adam_beta_1", "adam_beta_2"):
        del raw["train"][key]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    assert load_saved_config(tmp_path / "config.json").train.adam_epsilon == 1e-8


def test_defaults_are_frozen():
    config = ExperimentConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.seed = 3


def test_window_stride_cuts_long_clips_into_overlapping_windows(tmp_path):
    """Clips of 10 frames, windows of 3 + 3 = 6: one window a clip without window_stride
    ((10 - 6) // 6 + 1), three with window_stride = 2 ((10 - 6) // 2 + 1), starting at 0, 2, 4."""
    from predrnn.jobs.train import build_datasets

    clips = np.arange(5 * 10 * 16 * 16, dtype=np.uint32).reshape(5, 10, 16, 16) % 251
    np.save(tmp_path / "clips.npy", clips.astype(np.uint8))
    common = [
        f"data.path={str(tmp_path / 'clips.npy')!r}",
        'data.dataset="file"',
        'data.layout="NTHW"',
        "data.validation_fraction=0.2",
    ]
    plain, _ = build_datasets(load_config("smoke", common))
    strided, validation = build_datasets(load_config("smoke", [*common, "data.window_stride=2"]))
    assert (plain.num_windows, strided.num_windows) == (4, 12)  # 4 training clips (one held out)
    np.testing.assert_array_equal(strided._window_start[:3], [0, 2, 4])
    assert validation.shape == (1, 6, 16, 16, 1)


def _class_defaults(sampling):
    """The schedule as it ran before the unset step keys scaled: the classes' defaults."""
    from predrnn.jobs.config import SamplingConfig
    from predrnn.schedules import get_schedule

    return SamplingConfig(sampling.schedule, **get_schedule(sampling.schedule, **sampling.arguments()).get_config())


def test_presets_and_shipped_experiments_keep_their_schedules():
    """Every shipped preset and experiment variant runs the schedule it ran before the unset step
    keys scaled with train.steps (each sets its keys or runs 80,000 steps), except the smoke
    test's preset, which now finishes its schedule within its 4 steps."""
    from predrnn.jobs import experiment as ex

    configs = {name: load_config(name) for name in preset_names()}
    for spec in ex.spec_names():
        configs.update({f"{spec}/{v}": c for v, c in ex.load_spec(spec).configs().items()})
    assert len(configs) > 30
    for name, config in configs.items():
        resolved = config.sampling.resolved(config.train.steps)
        if name == "smoke":
            assert (resolved.stop_step, resolved.decay_rate) == (3, 1 / 3)
        else:
            assert resolved == _class_defaults(config.sampling), name


def test_resolved_schedule_is_saved_and_pinned_on_resume(tmp_path):
    from predrnn.jobs.config import resolve_sampling
    from predrnn.jobs.train import _resolve_schedule

    reverse = ["sampling.schedule=reverse", "sampling.start_step=1000"]
    config = load_config("smoke", [*reverse, "train.steps=4000"])
    resolved = resolve_sampling(config)
    assert (resolved.sampling.start_step, resolved.sampling.stop_step, resolved.sampling.alpha) == (1000, 2500, 250.0)
    save_config(resolved, tmp_path / "config.json")
    assert load_saved_config(tmp_path / "config.json") == resolved
    # resumed with more steps: the unset keys keep the run's values, not 0.625 x 8000
    longer = load_config("smoke", [*reverse, "train.steps=8000"])
    again = _resolve_schedule(longer, tmp_path, resume=True)
    assert again.sampling == resolved.sampling and again.train.steps == 8000
    fresh = _resolve_schedule(longer, tmp_path, resume=False)
    assert fresh.sampling.stop_step == 5000
    assert _resolve_schedule(resolved, tmp_path, resume=False) == resolved  # idempotent


def test_a_saved_config_without_the_resolved_schedule_keeps_the_class_defaults(tmp_path):
    """A run folder written before the schedule was recorded trained with the classes' defaults."""
    import json

    save_config(load_config("smoke", ["sampling.schedule=reverse", "sampling.alpha=7.0"]), tmp_path / "config.json")
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["sampling"]["stop_step"] is None and raw["train"]["steps"] == 4
    saved = load_saved_config(tmp_path / "config.json").sampling
    assert (saved.start_step, saved.stop_step, saved.alpha) == (25_000, 50_000, 7.0)


def test_announced_schedule(tmp_path, capsys):
    from predrnn.jobs.train import _announce_schedule, _resolve_schedule

    config = load_config("quickstart", ["train.steps=200", "train.steps_per_epoch=100"])
    _announce_schedule(_resolve_schedule(config, tmp_path, resume=False))
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "Scheduled sampling: reference, true future frames 1.0 -> 0.0 over steps 0-295 (decay 0.0034/step).",
        "Note: the schedule does not finish within train.steps = 200: it moves until step 295, and at the last step true "
        "future frames are still fed with probability 0.3234.",
    ]
