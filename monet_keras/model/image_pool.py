"""Image history pool for discriminator fakes (Shrivastava et al. 2017; Zhu et al. 2017, size 50).

Until the pool is full, each fake is stored and returned as is. Once full, each fake is, with
probability 1/2, swapped for a uniformly chosen stored fake (which is returned, the new one
taking its place), and otherwise returned as is. Decisions are per image, drawn from a seeded
``keras.random.SeedGenerator``, in graph mode. The pool's contents are not checkpointed: after a
resume it refills over the first ``pool_size`` fakes.
"""

import keras
import tensorflow as tf
from keras import ops


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
        fakes = ops.cast(fakes, self.images.dtype)
        out = []
        for i in range(fakes.shape[0]):  # batches have a static size (drop_remainder)
            out.append(self._one(fakes[i]))
        return ops.stack(out)

    def _one(self, fake):
        full = self.count >= self.pool_size
        swap = keras.random.uniform((), seed=self.seed_generator) < 0.5
        slot = ops.cast(keras.random.uniform((), 0, self.pool_size, seed=self.seed_generator), "int32")
        slot = tf.minimum(slot, self.pool_size - 1)
        # Not full: store at `count`, return the fake. Full and swap: return the stored one at
        # `slot` and put the fake there. Full, no swap: leave the pool alone.
        index = tf.where(full, slot, tf.minimum(self.count, self.pool_size - 1))
        stored = self.images[index]
        write = tf.logical_or(tf.logical_not(full), swap)
        self.images.assign(tf.tensor_scatter_nd_update(
            self.images, [[index]], [tf.where(write, fake, stored)]))
        self.count.assign(tf.minimum(self.count + 1, self.pool_size))
        return tf.where(tf.logical_and(full, swap), stored, fake)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "image_shape": self.image_shape}
