"""The image history pool against a plain-Python pool, eagerly and inside compiled steps, on the
TensorFlow and the JAX backend."""

import keras
import numpy as np
import pytest
from keras import ops
from stateless_jit import jax_only, jit_stateless, tensorflow_only, values_of

from monet_keras.model.image_pool import ImagePool

SHAPE = (2, 2, 1)


def fakes(values):
    """A batch of images, image i filled with values[i] (so each image is recognisable)."""
    return np.stack([np.full(SHAPE, v, np.float32) for v in values])


def reference_query(pool, count, batch, swaps, slots):
    """The pool rule in plain Python on a list of stored images: returns (out, pool, count)."""
    pool, out = list(pool), []
    for fake, swap, slot in zip(batch, swaps, slots, strict=True):
        if count < len(pool):  # filling: store, return the fake
            pool[count] = fake
            count += 1
            out.append(fake)
        elif swap:  # full: return a stored one, keep the fake in its place
            out.append(pool[slot])
            pool[slot] = fake
        else:
            out.append(fake)
    return np.stack(out), pool, count


# Decisions for three pools of size 3 fed batches of 2, 3 and 3: filling (decisions ignored),
# the last fill then a swap and a keep, then a swap at slot 2 twice in one batch (the second
# returns the fake stored by the first) and a keep.
BATCHES = [([1, 2], [True, True], [0, 0]),
           ([3, 4, 5], [True, True, False], [2, 0, 1]),
           ([6, 7, 8], [True, True, False], [2, 2, 0])]
EXPECTED_OUT = [[1, 2], [3, 1, 5], [3, 6, 8]]


def _exchanger(pool, compiled):
    """pool.exchange, eager or compiled: with XLA on TensorFlow, as the JAX trainer runs a step
    on JAX (the new variable values assigned back afterwards)."""
    if not compiled:
        return pool.exchange
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(pool.exchange, jit_compile=True)
    step = jit_stateless(pool.exchange, pool.variables)

    def run(*args):
        out, state = step(values_of(pool.variables), *args)
        for variable, value in zip(pool.variables, state, strict=True):
            variable.assign(value)
        return out
    return run


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_exact_swaps_and_stores_for_given_decisions(compiled):
    pool = ImagePool(3, SHAPE, seed=0)
    run = _exchanger(pool, compiled)
    stored, count = [np.zeros(SHAPE, np.float32)] * 3, 0
    for (values, swaps, slots), expected in zip(BATCHES, EXPECTED_OUT, strict=True):
        out = ops.convert_to_numpy(run(fakes(values), np.array(swaps), np.array(slots, np.int32)))
        want, stored, count = reference_query(stored, count, fakes(values), swaps, slots)
        np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(out[:, 0, 0, 0], expected)  # the rule, by hand
        np.testing.assert_array_equal(ops.convert_to_numpy(pool.images), np.stack(stored))
        assert int(ops.convert_to_numpy(pool.count)) == count
    assert [s[0, 0, 0] for s in stored] == [4, 2, 7]


def test_image_pool_fills_then_swaps_half_the_time():
    pool = ImagePool(4, SHAPE, seed=0)
    for value in range(4):  # filling: each fake comes back as is
        assert float(pool.query(fakes([value]))[0, 0, 0, 0]) == value
    inserted, swapped = set(range(4)), 0
    for value in range(4, 404):
        got = float(pool.query(fakes([value]))[0, 0, 0, 0])
        if got != value:
            swapped += 1
            assert got in inserted, "a swapped-in image is one stored earlier"
        inserted.add(value)
    # Binomial(400, 1/2): 0.4..0.6 is more than 4 standard deviations either side.
    assert 160 <= swapped <= 240


def test_image_pool_per_image_in_a_batch():
    pool = ImagePool(2, (1, 1, 1), seed=1)
    out = np.asarray(pool.query(np.arange(3, dtype=np.float32).reshape(3, 1, 1, 1))).ravel()
    assert out[0] == 0 and out[1] == 1  # stored while filling
    assert out[2] in (0, 1, 2)


def replay(pool_size, values, outputs):
    """Check ``outputs`` (for fakes ``values``, from an empty pool) follow the rule, whatever was
    drawn: the first pool_size come back as they are, later ones as they are or swapped for a
    stored one. Returns (values held per slot, slots swapped at, number of swaps)."""
    held, slots, swaps = list(values[:pool_size]), set(), 0
    assert list(outputs[:pool_size]) == held
    for value, got in zip(values[pool_size:], outputs[pool_size:], strict=True):
        if got != value:
            assert got in held, "a swapped-in image is one stored earlier"
            slot = held.index(got)
            held[slot] = value
            slots.add(slot)
            swaps += 1
    return held, slots, swaps


def test_decisions_are_per_image_in_a_batch():
    # A pool of 8 and one batch of 208: the decisions drawn (read back from the images that come
    # out) follow the rule, are about half swaps, spread over every slot, and leave the pool
    # holding what the rule says.
    pool = ImagePool(8, SHAPE, seed=3)
    values = list(range(208))
    out = ops.convert_to_numpy(pool.query(fakes(values)))[:, 0, 0, 0]
    held, slots, swaps = replay(8, values, list(out))
    assert 70 <= swaps <= 130  # Binomial(200, 1/2), over 4 standard deviations
    assert slots == set(range(8))
    np.testing.assert_array_equal(ops.convert_to_numpy(pool.images)[:, 0, 0, 0], held)


@tensorflow_only
def test_query_in_an_xla_compiled_tf_function():
    import tensorflow as tf

    pool = ImagePool(3, SHAPE, seed=5)
    step = tf.function(pool.query, jit_compile=True)
    values = list(range(30))
    out = [v for k in range(0, 30, 3) for v in step(fakes(values[k: k + 3])).numpy()[:, 0, 0, 0]]
    held, _, swaps = replay(3, values, out)
    assert 0 < swaps < 27  # new decisions every step
    np.testing.assert_array_equal(pool.images.numpy()[:, 0, 0, 0], held)
    assert int(pool.count.numpy()) == 3


@jax_only
def test_query_in_a_jitted_stateless_jax_step():
    pool, twin = ImagePool(3, SHAPE, seed=5), ImagePool(3, SHAPE, seed=5)
    initial = [ops.convert_to_numpy(v) for v in values_of(pool.variables)]
    step = jit_stateless(pool.query, pool.variables)
    state = values_of(pool.variables)
    for k in range(4):
        batch = fakes([3 * k, 3 * k + 1, 3 * k + 2])
        out, state = step(state, batch)
        # The same decisions, outputs and new state as the eager pool with the same seed.
        np.testing.assert_array_equal(ops.convert_to_numpy(out), ops.convert_to_numpy(twin.query(batch)))
    for got, want in zip(state, values_of(twin.variables), strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(got), ops.convert_to_numpy(want))
    assert int(ops.convert_to_numpy(twin.count)) == 3
    assert not np.array_equal(ops.convert_to_numpy(twin.images)[:, 0, 0, 0], [6, 7, 8])  # some swaps
    for value, variable in zip(initial, pool.variables, strict=True):  # stateless: nothing assigned
        np.testing.assert_array_equal(ops.convert_to_numpy(variable.value), value)
