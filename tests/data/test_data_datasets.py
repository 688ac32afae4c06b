"""The VideoPredictionDataset contract the training job relies on."""

import keras
import numpy as np
import pytest

from predrnn.data import (
    MovingMNISTStream,
    VideoPredictionDataset,
    as_sequence_array,
    load_sequences,
    save_sequences,
    split_train_validation,
)
from predrnn.errors import DataError
from predrnn.schedules import ConstantSchedule, ReferenceSchedule, ReverseSchedule


def _sequences(num=12, frames=6, size=4, seed=0):
    # Each sequence is tagged: pixel (0, 0) of frame t of sequence n is (n * frames + t) / 255.
    data = np.random.default_rng(seed).integers(0, 200, (num, frames, size, size, 1)).astype(np.uint8)
    data[:, :, 0, 0, 0] = (np.arange(num)[:, None] * frames + np.arange(frames)).astype(np.uint8)
    return data


def _tags(frames):
    """(B,) sequence id and (B,) start frame recovered from the tags of _sequences(frames=6)."""
    first = np.round(frames[:, 0, 0, 0, 0] * 255).astype(int)
    return first // 6, first % 6


def test_batch_structure_shapes_dtypes_and_target():
    ds = VideoPredictionDataset(_sequences(), batch_size=4, input_length=3, output_length=3, schedule=ReferenceSchedule())
    assert len(ds) == 3 and ds.num_batches == 3 and ds.num_frames == 6
    inputs, target = ds[0]
    assert set(inputs) == {"frames", "teacher_forcing_mask"}
    assert inputs["frames"].shape == (4, 6, 4, 4, 1) and inputs["frames"].dtype == np.float32
    assert inputs["teacher_forcing_mask"].shape == (4, 4) and inputs["teacher_forcing_mask"].dtype == np.float32
    assert target.dtype == np.float32
    np.testing.assert_array_equal(target, inputs["frames"][:, 1:])
    assert 0.0 <= inputs["frames"].min() and inputs["frames"].max() <= 1.0


def test_without_a_schedule_the_mask_is_the_inference_mask():
    ds = VideoPredictionDataset(_sequences(), 3, input_length=4, output_length=2)
    mask = ds[1][0]["teacher_forcing_mask"]
    np.testing.assert_array_equal(mask, np.tile([1, 1, 1, 0], (3, 1)))


def test_mask_frequency_matches_the_probability_and_is_reproducible():
    stream = MovingMNISTStream(0, num_frames=12, image_size=8, digit_size=4, digits=np.full((1, 4, 4), 255, np.uint8))
    schedule = ConstantSchedule(future_probability=0.3)
    ds = VideoPredictionDataset(stream, 64, input_length=6, output_length=6, schedule=schedule, seed=9, steps_per_epoch=20)
    masks = np.stack([ds.teacher_forcing_mask(step) for step in range(20)])  # (20, 64, 10)
    assert masks.shape == (20, 64, 10) and masks.dtype == np.float32
    assert np.all(masks[:, :, :5] == 1.0)  # context steps 1..5 always true
    assert masks[:, :, 5:].mean() == pytest.approx(0.3, abs=0.02)
    np.testing.assert_array_equal(ds[7][0]["teacher_forcing_mask"], masks[7])
    again = VideoPredictionDataset(stream, 64, 6, 6, schedule=schedule, seed=9, steps_per_epoch=20)
    np.testing.assert_array_equal(again.teacher_forcing_mask(7), masks[7])
    assert not np.array_equal(masks[7], masks[8])


def test_reverse_schedule_masks_cover_context_steps_too():
    ds = VideoPredictionDataset(_sequences(), 4, 3, 3, schedule=ReverseSchedule(start_step=10, stop_step=20))
    mask = ds.teacher_forcing_mask(0, batch_size=1000)  # r_eta = eta = 0.5 before start_step
    assert mask[:, :2].mean() == pytest.approx(0.5, abs=0.05)
    assert mask[:, 2:].mean() == pytest.approx(0.5, abs=0.05)


def test_global_step_advances_across_epochs():
    schedule = ReferenceSchedule(decay_rate=0.1)  # future probability 1 - 0.1 * step
    ds = VideoPredictionDataset(_sequences(), 4, 3, 3, schedule=schedule, seed=1)
    assert [ds.global_step(i) for i in range(3)] == [0, 1, 2]
    ds.on_epoch_end()
    assert ds.epoch == 1 and ds.global_step(0) == 3
    np.testing.assert_array_equal(ds[2][0]["teacher_forcing_mask"], ds.teacher_forcing_mask(5))
    ds.on_epoch_end()
    ds.on_epoch_end()
    assert ds.global_step(2) == 11 and np.all(ds[2][0]["teacher_forcing_mask"][:, 2:] == 0)


def _all_batches(ds, epochs):
    out = []
    for _ in range(epochs):
        out.append([ds[i] for i in range(len(ds))])
        ds.on_epoch_end()
    return out


def test_resuming_with_initial_epoch_gives_the_batches_of_a_continuous_run():
    kwargs = dict(batch_size=4, input_length=3, output_length=3, schedule=ConstantSchedule(0.5), seed=3)
    continuous = _all_batches(VideoPredictionDataset(_sequences(), **kwargs), epochs=3)
    resumed = _all_batches(VideoPredictionDataset(_sequences(), initial_epoch=2, **kwargs), epochs=1)
    for (x_a, y_a), (x_b, y_b) in zip(continuous[2], resumed[0]):
        np.testing.assert_array_equal(x_a["frames"], x_b["frames"])
        np.testing.assert_array_equal(x_a["teacher_forcing_mask"], x_b["teacher_forcing_mask"])
        np.testing.assert_array_equal(y_a, y_b)


def test_each_epoch_is_a_seeded_permutation_of_all_windows():
    ds = VideoPredictionDataset(_sequences(), 4, 3, 3, seed=5)
    epochs = _all_batches(ds, epochs=2)
    orders = [np.concatenate([_tags(x["frames"])[0] for x, _ in batches]) for batches in epochs]
    assert sorted(orders[0]) == list(range(12)) and sorted(orders[1]) == list(range(12))
    assert not np.array_equal(orders[0], orders[1])
    same_seed = _all_batches(VideoPredictionDataset(_sequences(), 4, 3, 3, seed=5), epochs=1)
    np.testing.assert_array_equal(np.concatenate([_tags(x["frames"])[0] for x, _ in same_seed[0]]), orders[0])
    unshuffled = VideoPredictionDataset(_sequences(), 4, 3, 3, shuffle=False)
    np.testing.assert_array_equal(_tags(unshuffled[1][0]["frames"])[0], [4, 5, 6, 7])


def test_long_sequences_are_cut_into_windows():
    data = _sequences(num=2, frames=6)
    ds = VideoPredictionDataset(data, 1, input_length=1, output_length=1, shuffle=False)  # T = 2
    assert ds.num_windows == 6 and len(ds) == 6
    ids, starts = zip(*[(int(a), int(b)) for a, b in (np.array(_tags(ds[i][0]["frames"])).ravel() for i in range(6))])
    assert list(ids) == [0, 0, 0, 1, 1, 1] and list(starts) == [0, 2, 4, 0, 2, 4]
    strided = VideoPredictionDataset(data, 1, 1, 1, shuffle=False, window_stride=1)
    assert strided.num_windows == 10
    np.testing.assert_allclose(strided[6][0]["frames"][0], data[1, 1:3] / 255, atol=1e-7)


def test_drop_remainder_false_keeps_the_last_partial_batch():
    ds = VideoPredictionDataset(_sequences(num=10), 4, 3, 3, shuffle=False, drop_remainder=False)
    assert len(ds) == 3
    inputs, target = ds[2]
    assert inputs["frames"].shape[0] == 2 and inputs["teacher_forcing_mask"].shape == (2, 4)
    assert target.shape == (2, 5, 4, 4, 1)
    assert len(VideoPredictionDataset(_sequences(num=10), 4, 3, 3)) == 2


def test_steps_per_epoch_cycles_through_the_data():
    ds = VideoPredictionDataset(_sequences(num=5), 2, 3, 3, seed=2, steps_per_epoch=5)
    seen = [_tags(ds[i][0]["frames"])[0] for i in range(5)]  # 10 samples = 2 passes over 5
    flat = np.concatenate(seen)
    assert sorted(flat[:5]) == list(range(5)) and sorted(flat[5:]) == list(range(5))
    ds.on_epoch_end()
    assert ds.global_step(0) == 5


def test_stream_source_batches_are_the_streams_batches():
    stream = MovingMNISTStream(4, num_frames=8, image_size=16, digit_size=6, digits=np.full((2, 6, 6), 200, np.uint8))
    ds = VideoPredictionDataset(stream, 3, input_length=3, output_length=2, steps_per_epoch=4, initial_epoch=1)
    inputs, target = ds[2]
    np.testing.assert_array_equal(inputs["frames"], stream.batch(3, 6)[:, :5])
    np.testing.assert_array_equal(target, inputs["frames"][:, 1:])
    with pytest.raises(DataError, match="pass steps_per_epoch"):
        VideoPredictionDataset(stream, 3, 3, 2)
    with pytest.raises(DataError, match="makes 8 frames.*= 12"):
        VideoPredictionDataset(stream, 3, 6, 6, steps_per_epoch=1)


def test_split_train_validation_is_a_seeded_view_split(tmp_path):
    path = save_sequences(tmp_path / "s.npy", _sequences(num=10))
    loaded = load_sequences(path)
    train, validation = split_train_validation(loaded, 0.3, seed=4)
    assert len(train) == 7 and len(validation) == 3
    assert sorted(np.concatenate([train.indices, validation.indices])) == list(range(10))
    assert train.raw is loaded.raw  # views: nothing copied
    again = split_train_validation(loaded, 0.3, seed=4)
    np.testing.assert_array_equal(again[1].indices, validation.indices)
    other = split_train_validation(loaded, 0.3, seed=5)
    assert not np.array_equal(other[1].indices, validation.indices)
    np.testing.assert_allclose(validation[0], _sequences(num=10)[validation.indices[0]] / 255, atol=1e-7)
    with pytest.raises(DataError, match="validation_fraction must be in \\(0, 1\\)"):
        split_train_validation(loaded, 1.0)


def test_validation_names_the_source_and_sequence():
    data = np.random.default_rng(0).random((6, 4, 3, 3, 1)).astype(np.float32)
    data[4, 2, 1, 1, 0] = np.nan
    source = as_sequence_array(data, source="radar.npy")
    with pytest.raises(DataError, match="radar.npy: sequence 4 contains NaN"):
        VideoPredictionDataset(source, 6, 2, 2, shuffle=False)[0]
    data[4, 2, 1, 1, 0] = 1.5
    with pytest.raises(DataError, match="sequence 4 has values outside"):
        VideoPredictionDataset(as_sequence_array(data), 6, 2, 2)[0]


def test_check_frames_reports_the_bad_sample():
    from predrnn.data import check_frames

    frames = np.zeros((3, 2, 2, 2, 1), np.float32)
    check_frames(frames, "ok")
    frames[2, 0, 0, 0, 0] = np.inf
    with pytest.raises(DataError, match="src: sample 2 contains NaN or inf"):
        check_frames(frames, "src")
    frames[2, 0, 0, 0, 0] = -0.5
    with pytest.raises(DataError, match="src: seq-c has values outside \\[0, 1\\]: min -0.5"):
        check_frames(frames, "src", ["seq-a", "seq-b", "seq-c"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1. Received: batch_size=0"),
        ({"input_length": 0}, "input_length must be an integer >= 1"),
        ({"batch_size": 13}, "12 windows of 6 frames, fewer than batch_size=13"),
        ({"schedule": "reference"}, "schedule must be a predrnn.schedules.SamplingSchedule"),
        ({"window_stride": 0}, "window_stride must be an integer >= 1"),
    ],
)
def test_bad_dataset_arguments(kwargs, message):
    arguments = dict(source=_sequences(), batch_size=4, input_length=3, output_length=3) | kwargs
    with pytest.raises(DataError, match=message):
        VideoPredictionDataset(**arguments)


def _tiny_model(frames_shape, mask_length):
    frames = keras.Input(frames_shape, name="frames")
    mask = keras.Input((mask_length,), name="teacher_forcing_mask")
    previous = keras.layers.Cropping3D(((0, 1), (0, 0), (0, 0)))(frames)  # frames 0 .. T-2
    prediction = keras.layers.Dense(1, use_bias=False)(previous)
    prediction = prediction + 0.0 * keras.ops.mean(mask)
    model = keras.Model({"frames": frames, "teacher_forcing_mask": mask}, prediction)
    model.compile(optimizer="sgd", loss="mse")
    return model


class _Recording(VideoPredictionDataset):
    """Records the epoch each batch was read with (Keras may read a batch or two early to
    build the model; the real epochs are the last calls)."""

    def __getitem__(self, index):
        self.calls.append((self.epoch, int(index)))
        return super().__getitem__(index)


def _recording(initial_epoch=0, workers=1):
    ds = _Recording(
        _sequences(num=8),
        batch_size=2,
        input_length=3,
        output_length=3,
        schedule=ReferenceSchedule(),
        initial_epoch=initial_epoch,
        workers=workers,
    )
    ds.calls = []
    return ds


@pytest.mark.parametrize("workers", [1, 2])
def test_keras_fit_reads_epoch_e_as_epoch_e_and_resumes_exactly(workers, keras_session):
    # Keras' fit also calls on_epoch_end() before the first epoch; the dataset ignores that call.
    model = _tiny_model((6, 4, 4, 1), 4)
    ds = _recording(workers=workers)
    history = model.fit(ds, epochs=2, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2
    assert sorted(ds.calls[-8:]) == [(e, i) for e in (0, 1) for i in range(4)]
    assert ds.epoch == 2 and ds.global_step(0) == int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    resumed = _recording(initial_epoch=2, workers=workers)
    model.fit(resumed, epochs=3, initial_epoch=2, shuffle=False, verbose=0)
    assert sorted(resumed.calls[-4:]) == [(2, i) for i in range(4)]
    assert resumed.epoch == 3
    model.evaluate(resumed, verbose=0)  # one more full pass: one more epoch, not two
    assert resumed.epoch == 4


def test_the_epoch_callback_pins_the_epoch_to_kerass_index(keras_session):
    model = _tiny_model((6, 4, 4, 1), 4)
    ds = _recording(initial_epoch=5)
    model.fit(ds, epochs=3, initial_epoch=1, shuffle=False, verbose=0, callbacks=[ds.epoch_callback()])
    assert sorted(ds.calls[-8:]) == [(e, i) for e in (1, 2) for i in range(4)]


def test_dataset_pickles_for_worker_processes_without_copying_the_file(tmp_path):
    import pickle

    loaded = load_sequences(save_sequences(tmp_path / "w.npy", _sequences()))
    ds = VideoPredictionDataset(loaded, 4, 3, 3, schedule=ConstantSchedule(0.5), initial_epoch=1)
    ds[0]
    copy = pickle.loads(pickle.dumps(ds))
    assert isinstance(copy.sequences.raw, np.memmap) and copy.epoch == 1
    for (x_a, _), (x_b, _) in zip([ds[i] for i in range(3)], [copy[i] for i in range(3)]):
        np.testing.assert_array_equal(x_a["frames"], x_b["frames"])
        np.testing.assert_array_equal(x_a["teacher_forcing_mask"], x_b["teacher_forcing_mask"])


def test_batch_at_is_the_batch_of_that_global_step_in_any_epoch():
    ds = VideoPredictionDataset(_sequences(), batch_size=4, input_length=3, output_length=3, schedule=ReferenceSchedule(), seed=2)
    ds.epoch = 1
    expected = ds[2]  # global step 1 * 3 + 2 = 5
    ds.epoch = 7
    inputs, target = ds.batch_at(5)
    np.testing.assert_array_equal(inputs["frames"], expected[0]["frames"])
    np.testing.assert_array_equal(inputs["teacher_forcing_mask"], expected[0]["teacher_forcing_mask"])
    np.testing.assert_array_equal(target, expected[1])
    with pytest.raises(DataError, match="step must be an integer >= 0"):
        ds.batch_at(-1)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.data pipeline of the TensorFlow backend")
def test_to_tf_dataset_yields_the_batches_of_the_global_steps_in_order():
    stream = MovingMNISTStream(0, num_frames=6, image_size=8, digit_size=4, digits=np.full((2, 4, 4), 255, np.uint8))
    ds = VideoPredictionDataset(
        stream, 3, 3, 3, schedule=ConstantSchedule(future_probability=0.5), seed=4, steps_per_epoch=2, workers=2
    )
    batches = list(ds.to_tf_dataset(first_step=3, num_steps=4).as_numpy_iterator())
    assert len(batches) == 4
    for step, (inputs, target) in zip(range(3, 7), batches):
        expected_inputs, expected_target = ds.batch_at(step)
        np.testing.assert_array_equal(inputs["frames"], expected_inputs["frames"])
        np.testing.assert_array_equal(inputs["teacher_forcing_mask"], expected_inputs["teacher_forcing_mask"])
        np.testing.assert_array_equal(target, expected_target)
    spec = ds.to_tf_dataset(0, 1).element_spec
    assert tuple(spec[0]["frames"].shape) == (3, 6, 8, 8, 1) and tuple(spec[1].shape) == (3, 5, 8, 8, 1)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.data pipeline of the TensorFlow backend")
def test_to_tf_dataset_keeps_the_error_of_a_bad_batch():
    data = _sequences(num=8).astype(np.float32) / 255.0
    data[5, 2, 1, 1, 0] = np.nan
    ds = VideoPredictionDataset(data, 2, 3, 3, schedule=ReferenceSchedule(), shuffle=False)
    pipeline = ds.to_tf_dataset(0, 4)  # batch 0 (checked eagerly) is fine; batch 2 holds sequence 5
    with pytest.raises(Exception):  # noqa: B017 - tf.data raises the loader's error as its own type
        list(pipeline)
    assert isinstance(ds.loader_error, DataError) and "sequence 5" in str(ds.loader_error)
    with pytest.raises(DataError, match="sequence 5 contains NaN"):
        ds.to_tf_dataset(2, 1)  # the first batch is made eagerly: the error is raised as is
