"""Adam whose per-variable update is TensorFlow's fused ``ResourceApplyAdam`` kernel.

``keras.optimizers.Adam`` updates each variable with separate element-wise ops (two
``assign_add`` for the moments, one ``assign_sub`` with its own temporaries), each a full pass
over the variable: on the 2-core CPU that is 131 ms per update of a 54-million-parameter
generator, about 0.28 s of every 256-px CycleGAN step. TF's ``ResourceApplyAdam`` does the same
arithmetic in one multi-threaded pass (35 ms; benchmarks/README.md):

    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m += (g - m) * (1 - beta_1);  v += (g^2 - v) * (1 - beta_2)
    var -= m * alpha / (sqrt(v) + epsilon)

which is, line by line, Keras 3's ``Adam.update_step`` (epsilon outside the bias correction,
as in Keras). One rounding differs: the kernel forms ``1 - beta`` in float32, Keras in Python
floats (for beta_2 = 0.999 the two coefficients differ by 1.3e-5 relative). Everything else is
Keras's: the optimizer variables (so checkpoints are unchanged), learning rate and schedules,
gradient clipping, weight decay, EMA and loss scaling.
Variables or gradients the kernel does not take go through Keras's own update: mirrored
variables (MirroredStrategy, TPUStrategy: the raw kernel cannot address one replica's copy
inside Keras's cross-replica update; on TPU, XLA fuses Keras's element-wise ops anyway),
dtypes other than float32/float64, sparse gradients and ``amsgrad``.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="monet_keras")
class Adam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with the same arguments, updating through ``ResourceApplyAdam``."""

    def update_step(self, gradient, variable, learning_rate):
        if not _fusable(self, gradient, variable):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        m, v = self._momentums[index].value, self._velocities[index].value
        if isinstance(m, tf.distribute.DistributedValues) or isinstance(v, tf.distribute.DistributedValues):
            return super().update_step(gradient, variable, learning_rate)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.handle, v=v.handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


def _fusable(optimizer, gradient, variable):
    return (keras.backend.backend() == "tensorflow" and not optimizer.amsgrad
            and isinstance(variable, tf.Variable)
            and not isinstance(variable, tf.distribute.DistributedValues)
            and variable.dtype in (tf.float32, tf.float64) and not isinstance(gradient, tf.IndexedSlices))
