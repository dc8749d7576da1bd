"""Image history pool for discriminator fakes (Shrivastava et al. 2017; Zhu et al. 2017, size 50).

Until the pool is full, each fake is stored and returned as is. Once full, each fake is, with
probability 1/2, swapped for a uniformly chosen stored fake (which is returned, the new one
taking its place), and otherwise returned as is. Decisions are per image, in batch order (a fake
can come back swapped for one stored earlier in the same batch), drawn from a seeded
``keras.random.SeedGenerator`` (per replica under ``tf.distribute``, see
:mod:`monet_keras.model.randomness`). The stored images and their count are layer variables,
updated with ``assign``, so the pool works in a ``tf.function`` and in Keras's stateless JAX
train step. The pool's contents are not checkpointed: after a resume it refills over the first
``pool_size`` fakes.
"""

import keras
from keras import ops

from monet_keras.model import randomness


class ImagePool(keras.layers.Layer):
    def __init__(self, pool_size, image_shape, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.image_shape = tuple(image_shape)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.images = self.add_weight(shape=(self.pool_size, *self.image_shape), initializer="zeros",
                                      trainable=False, name="images")
        self.count = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False,
                                     name="count")

    def query(self, fakes):
        """Fakes for the discriminator loss: the batch, with stored ones swapped in (see module doc)."""
        batch = fakes.shape[0]  # static: batches are drop_remainder
        swaps = randomness.uniform(batch, self.seed_generator) < 0.5
        slots = randomness.randint(batch, self.seed_generator, 0, self.pool_size)
        return self.exchange(fakes, swaps, slots)

    def exchange(self, fakes, swaps, slots):
        """:meth:`query` with its decisions given: image ``i`` is swapped for stored image
        ``slots[i]`` when the pool is full and the boolean ``swaps[i]`` is true."""
        fakes = ops.cast(fakes, self.images.dtype)
        images, count = self.images.value, self.count.value
        out = []
        for i in range(fakes.shape[0]):
            full = count >= self.pool_size
            # Not full: store at `count`, return the fake. Full and swap: return the stored one at
            # `slot` and put the fake there. Full, no swap: leave the pool alone.
            index = ops.where(full, slots[i], ops.minimum(count, self.pool_size - 1))
            stored = ops.take(images, index, axis=0)
            write = ops.logical_or(ops.logical_not(full), swaps[i])
            images = ops.scatter_update(images, ops.reshape(index, (1, 1)),
                                        ops.where(write, fakes[i], stored)[None])
            count = ops.minimum(count + 1, self.pool_size)
            out.append(ops.where(ops.logical_and(full, swaps[i]), stored, fakes[i]))
        self.images.assign(images)
        self.count.assign(count)
        return ops.stack(out)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "image_shape": self.image_shape}
