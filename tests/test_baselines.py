import numpy as np

from predrnn.baselines import BASELINE_LABELS, BASELINES, context_mean, copy_last, zeros


def test_each_baseline_predicts_what_its_name_says(rng):
    context = rng.random((2, 3, 4, 5, 1)).astype("float32")
    horizon = 4
    for prediction in (copy_last(context, horizon), zeros(context, horizon), context_mean(context, horizon)):
        assert prediction.shape == (2, horizon, 4, 5, 1) and prediction.dtype == np.float32
    for t in range(horizon):
        np.testing.assert_array_equal(copy_last(context, horizon)[:, t], context[:, 2])
        np.testing.assert_allclose(
            context_mean(context, horizon)[:, t], (context[:, 0] + context[:, 1] + context[:, 2]) / 3, rtol=1e-6
        )
    assert not zeros(context, horizon).any()
    assert set(BASELINES) == set(BASELINE_LABELS) == {"copy_last", "zeros", "context_mean"}
