"""Running code the way Keras's JAX trainer runs a train step (keras/src/backend/jax/trainer.py):
jitted, with the variables' values passed in through a ``keras.StatelessScope`` and their new
values returned, never assigned in place."""

import keras
import pytest

jax_only = pytest.mark.skipif(keras.backend.backend() != "jax", reason="the JAX backend's stateless step")
tensorflow_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                     reason="tf.function, XLA and tf.distribute are TensorFlow's")


def jit_stateless(function, variables):
    """``step(values, *args) -> (function(*args), new values of variables)``, jitted with JAX."""
    import jax

    def step(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
            outputs = function(*args)
        return outputs, [scope.get_current_value(variable) for variable in variables]

    return jax.jit(step)


def values_of(variables):
    return [variable.value for variable in variables]
