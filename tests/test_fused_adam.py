"""The fused-kernel Adam: Adam's update (numpy formula), Keras's Adam, EMA and loss scaling."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from monet_keras.accel import fused_adam

LR, BETA_1, BETA_2, EPSILON = 1e-2, 0.5, 0.999, 1e-7


def numpy_adam(w, gradients, lr=LR, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPSILON):
    """Kingma & Ba's Adam with Keras's epsilon (added to sqrt(v), outside the bias correction)."""
    w, m, v = w.astype(np.float64), np.zeros(w.shape), np.zeros(w.shape)
    for t, g in enumerate(gradients, 1):
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g * g
        w = w - lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t) * m / (np.sqrt(v) + epsilon)
    return w, m, v


def _problem(seed=0, steps=6):
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal((7, 5)).astype(np.float32)
    return w0, [rng.standard_normal((7, 5)).astype(np.float32) for _ in range(steps)]


def _run(optimizer, w0, gradients, compiled=True):
    variable = keras.Variable(w0)

    def apply(g):
        optimizer.apply([g], [variable])
    step = tf.function(apply) if compiled else apply
    for g in gradients:
        step(tf.constant(g))
    return variable, optimizer


@pytest.mark.parametrize("compiled", [True, False])
def test_fused_adam_is_adam(compiled):
    w0, gradients = _problem()
    variable, optimizer = _run(fused_adam.Adam(LR, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPSILON), w0,
                               gradients, compiled)
    w, m, v = numpy_adam(w0, gradients)
    np.testing.assert_allclose(variable.numpy(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(optimizer._momentums[0].numpy(), m, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(optimizer._velocities[0].numpy(), v, rtol=1e-4, atol=1e-8)
    assert int(optimizer.iterations.numpy()) == len(gradients)


def test_fused_adam_equals_keras_adam_with_ema_and_a_learning_rate_change():
    w0, gradients = _problem(1)
    results = []
    for cls in (keras.optimizers.Adam, fused_adam.Adam):
        optimizer = cls(LR, beta_1=BETA_1, use_ema=True, ema_momentum=0.9)
        variable = keras.Variable(w0)
        step = tf.function(lambda g: optimizer.apply([g], [variable]))  # noqa: B023 (used in this loop only)
        for i, g in enumerate(gradients):
            if i == 3:
                optimizer.learning_rate.assign(LR / 4)  # what the linear-decay callback does
            step(tf.constant(g))
        results.append((variable.numpy(), optimizer._model_variables_moving_average[0].numpy()))
    (keras_w, keras_ema), (fused_w, fused_ema) = results
    assert np.abs(fused_w - w0).max() > 1e-3
    np.testing.assert_allclose(fused_w, keras_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused_ema, keras_ema, rtol=1e-5, atol=1e-6)


def test_fused_adam_under_loss_scaling_unscales():
    w0, gradients = _problem(2, steps=3)
    optimizer = keras.optimizers.LossScaleOptimizer(fused_adam.Adam(LR, beta_1=BETA_1))
    variable = keras.Variable(w0)
    scale = float(optimizer.dynamic_scale.numpy()) if hasattr(optimizer, "dynamic_scale") else 2.0 ** 15
    for g in gradients:
        optimizer.apply([tf.constant(g * scale)], [variable])
    np.testing.assert_allclose(variable.numpy(), numpy_adam(w0, gradients)[0], rtol=1e-5, atol=1e-6)


def test_amsgrad_goes_through_keras_update():
    w0, gradients = _problem(3)
    fused, _ = _run(fused_adam.Adam(LR, amsgrad=True), w0, gradients)
    keras_, _ = _run(keras.optimizers.Adam(LR, amsgrad=True), w0, gradients)
    np.testing.assert_allclose(fused.numpy(), keras_.numpy(), rtol=1e-6, atol=1e-7)
    # amsgrad differs from Adam
    assert np.abs(fused.numpy() - numpy_adam(w0, gradients, lr=LR)[0]).max() > 1e-6


def test_fused_adam_serializes():
    optimizer = fused_adam.Adam(3e-4, beta_1=0.4)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, fused_adam.Adam)
    assert restored.beta_1 == pytest.approx(0.4)
    assert float(restored.learning_rate) == pytest.approx(3e-4)
