"""Per-sample random draws for the training-time image ops (augmentation, DiffAugment, image pool).

Every draw comes from a ``keras.random.SeedGenerator``, whose state is a variable that each draw
advances: in eager code, inside a ``tf.function`` (also under XLA) and inside Keras's stateless
JAX train step (where the new state is collected through ``keras.StatelessScope``).

Replicas: on JAX, ``keras.distribution.DataParallel`` runs the step once on the global batch, so
one draw per sample is all it takes. Under a ``tf.distribute`` strategy each replica runs the
step on its share of the batch with the same generator state, and plain draws would repeat
across replicas; so each replica draws the values of the whole global batch and keeps its own
share. N replicas with B samples each thus draw exactly what one device draws for N * B samples.
"""

import keras


def seed_generator(seed=None) -> keras.random.SeedGenerator:
    """``seed`` itself when it is a ``keras.random.SeedGenerator`` (new draws on every call);
    otherwise a new ``SeedGenerator(seed)``: the same int gives the same draws, None random ones.
    A new generator is a new variable, so pass a generator to code that is traced once and run
    many times (a train step)."""
    if isinstance(seed, keras.random.SeedGenerator):
        return seed
    return keras.random.SeedGenerator(seed)


def replica_share():
    """``(index, count)``: this replica's place among the ``tf.distribute`` replicas that run the
    step in sync, ``(0, 1)`` outside a replica context and on other backends."""
    if keras.backend.backend() != "tensorflow":
        return 0, 1
    import tensorflow as tf  # only under the TensorFlow backend

    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: the step runs once
        return 0, 1
    return context.replica_id_in_sync_group, context.num_replicas_in_sync


def uniform(batch_size, seed, minval=0.0, maxval=1.0):
    """``(batch_size,)`` float32 values from ``U(minval, maxval)``, one per sample of this
    replica's batch (see the module doc), from the ``SeedGenerator`` ``seed``."""
    index, count = replica_share()
    return keras.random.uniform((count, batch_size), minval, maxval, dtype="float32", seed=seed)[index]


def randint(batch_size, seed, minval, maxval):
    """``(batch_size,)`` int32 values drawn uniformly from ``minval, ..., maxval - 1``, one per
    sample of this replica's batch, from the ``SeedGenerator`` ``seed``."""
    index, count = replica_share()
    return keras.random.randint((count, batch_size), minval, maxval, dtype="int32", seed=seed)[index]
