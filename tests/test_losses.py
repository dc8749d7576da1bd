"""Loss formulas against direct numpy recomputations."""

import numpy as np
import pytest

from monet_keras.model import losses


def np_bce_with_logits(target, logits):
    # -[z log s(x) + (1-z) log(1 - s(x))], computed naively in float64.
    s = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return -(target * np.log(s) + (1 - target) * np.log(1 - s))


@pytest.fixture
def logits():
    rng = np.random.default_rng(0)
    return rng.normal(0, 2, size=(3, 5, 5, 1)).astype(np.float32)


def test_bce_adversarial_per_example(logits):
    got = np.asarray(losses.adversarial(logits, True, "bce"))
    want = np_bce_with_logits(np.ones_like(logits), logits).reshape(3, -1).mean(axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    got = np.asarray(losses.adversarial(logits, False, "bce"))
    want = np_bce_with_logits(np.zeros_like(logits), logits).reshape(3, -1).mean(axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_discriminator_and_generator_losses(logits):
    rng = np.random.default_rng(1)
    fake = rng.normal(0, 2, size=logits.shape).astype(np.float32)
    d = np.asarray(losses.discriminator_loss(logits, fake, "bce"))
    want = 0.5 * (np_bce_with_logits(1.0, logits).reshape(3, -1).mean(1)
                  + np_bce_with_logits(0.0, fake).reshape(3, -1).mean(1))
    np.testing.assert_allclose(d, want, rtol=1e-5)
    g = np.asarray(losses.generator_loss(fake, "bce"))
    np.testing.assert_allclose(g, np_bce_with_logits(1.0, fake).reshape(3, -1).mean(1), rtol=1e-5)


def test_lsgan(logits):
    d = np.asarray(losses.discriminator_loss(logits, -logits, "lsgan"))
    want = 0.5 * (((logits - 1) ** 2).reshape(3, -1).mean(1) + ((-logits) ** 2).reshape(3, -1).mean(1))
    np.testing.assert_allclose(d, want, rtol=1e-5)


def test_zero_logit_bce_is_log2():
    z = np.zeros((2, 4, 4, 1), np.float32)
    np.testing.assert_allclose(np.asarray(losses.generator_loss(z)), [np.log(2)] * 2, rtol=1e-6)


def test_cycle_and_identity():
    rng = np.random.default_rng(2)
    real = rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    other = rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    l1 = np.abs(real - other).reshape(2, -1).mean(1)
    np.testing.assert_allclose(np.asarray(losses.cycle_loss(real, other, 10.0)), 10 * l1, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(losses.identity_loss(real, other, 5.0)), 5 * l1, rtol=1e-5)


def test_reduce_batch_divides_by_global_batch():
    per_example = np.array([1.0, 2.0, 3.0], np.float32)
    assert float(losses.reduce_batch(per_example, 6)) == pytest.approx(1.0)


def test_unknown_kind():
    with pytest.raises(ValueError):
        losses.adversarial(np.zeros((1, 2, 2, 1), np.float32), True, "hinge")
