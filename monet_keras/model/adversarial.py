"""AdversarialModel(keras.Model): the train step of a GAN on both Keras backends.

A subclass says which networks are on each side (``generators``, ``discriminators``) and computes
the step's forward pass in :meth:`AdversarialModel.step_losses`: the tracked loss terms and two
scalars, the generator side's summed loss and the discriminator side's. One step then takes the
gradient of each scalar with respect to its own side's weights only and makes one update with one
optimizer over every weight (Adam keeps per-variable state, so with equal hyperparameters this is
the update of one Adam per network; and one optimizer is what Keras's JAX trainer threads through
its stateless step).

- TensorFlow: ``train_step(data)`` under a persistent ``GradientTape``; under a ``tf.distribute``
  strategy each replica computes its share (losses divide by :func:`global_batch_size`).
- JAX: ``train_step(state, data)``, stateless and jitted by Keras: the forward pass runs in a
  ``keras.StatelessScope`` over the state's values, ``jax.vjp`` gives both sides' gradients from
  one forward pass, and the new non-trainable values (seed generators, image pools), optimizer
  and metric variables are returned as the new state. Under ``keras.distribution.DataParallel``
  the step sees the whole global batch.

Loss scaling (float16) works on both: each side's loss is scaled, ``apply_gradients`` unscales.
"""

import keras
from keras import ops


def global_batch_size(batch):
    """The batch the losses average over. Under a tf.distribute strategy each replica sees its
    share; on JAX the step sees the whole batch (DataParallel shards the arrays)."""
    if keras.backend.backend() != "tensorflow":
        return ops.shape(batch)[0]
    import tensorflow as tf

    return ops.shape(batch)[0] * tf.distribute.get_strategy().num_replicas_in_sync


class AdversarialModel(keras.Model):
    """Base class; see the module docstring. ``loss_names``: the terms :meth:`step_losses` returns,
    each tracked as a mean over the epoch (the ``fit`` logs)."""

    def __init__(self, loss_names, **kwargs):
        super().__init__(**kwargs)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in loss_names}

    # --- what a subclass defines ----------------------------------------------------------

    @property
    def generators(self):
        """The networks the generator-side loss trains."""
        raise NotImplementedError

    @property
    def discriminators(self):
        """The networks the discriminator-side loss trains."""
        raise NotImplementedError

    def step_losses(self, data):
        """``(terms, generator_loss, discriminator_loss)``: ``{name: per-example values}`` for the
        trackers, and the two sides' scalar losses over the global batch."""
        raise NotImplementedError

    @property
    def networks(self):
        """Every network in a fixed order, for checkpoints and saved files."""
        return tuple(self.generators) + tuple(self.discriminators)

    # --- the step -------------------------------------------------------------------------

    def build(self, input_shape=None):
        """Nothing to build: the networks are built when they are made (Keras calls this before
        the first step)."""
        self.built = True

    def compile(self, optimizer, **kwargs):
        """One optimizer for every network (see the module docstring)."""
        super().compile(optimizer=optimizer, **kwargs)
        self.build_optimizer()

    def build_optimizer(self):
        """Create every optimizer slot now: in the strategy scope of ``compile`` (slots created
        lazily inside a MirroredStrategy train step fail), and so a checkpoint can be restored
        before training. Built over ``self.trainable_variables``, the order of the JAX step's
        state. ``compile`` calls it."""
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def side_variables(self):
        """The trainable variables of the generator side and of the discriminator side."""
        return ([v for net in self.generators for v in net.trainable_variables],
                [v for net in self.discriminators for v in net.trainable_variables])

    def _logs(self, terms):
        for name, value in terms.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, *args):
        """One update of every network. Keras calls ``train_step(data)`` on TensorFlow and
        ``train_step(state, data)`` (stateless, jitted) on JAX; both take the same gradients of
        the losses of :meth:`step_losses` and make one optimizer update."""
        if keras.backend.backend() == "jax":
            return self._jax_train_step(*args)
        return self._tensorflow_train_step(*args)

    def _tensorflow_train_step(self, data):
        import tensorflow as tf

        with tf.GradientTape(persistent=True) as tape:
            terms, generator_loss, discriminator_loss = self.step_losses(data)
            # scale_loss is the identity unless the optimizer is a LossScaleOptimizer (float16).
            scaled = [self.optimizer.scale_loss(loss) for loss in (generator_loss, discriminator_loss)]
        gradients = []
        for loss, variables in zip(scaled, self.side_variables()):
            gradients += zip(tape.gradient(loss, variables), variables)
        del tape
        self.optimizer.apply_gradients(gradients)  # unscales float16 gradients
        return self._logs(terms)

    def _jax_train_step(self, state, data):
        import jax

        trainable, non_trainable, optimizer_values, metric_values = state
        optimizer_mapping = list(zip(self.optimizer.variables, optimizer_values))

        def forward(trainable_values):
            mapping = [*zip(self.trainable_variables, trainable_values),
                       *zip(self.non_trainable_variables, non_trainable)]
            with keras.StatelessScope(state_mapping=mapping) as scope:
                terms, generator_loss, discriminator_loss = self.step_losses(data)
            with keras.StatelessScope(state_mapping=optimizer_mapping):
                scaled = tuple(map(self.optimizer.scale_loss, (generator_loss, discriminator_loss)))
            return scaled, (terms, _current_values(scope, self.non_trainable_variables, non_trainable))

        scaled, pullback, (terms, non_trainable) = jax.vjp(forward, trainable, has_aux=True)
        one, zero = ops.ones_like(scaled[0]), ops.zeros_like(scaled[0])
        (generator_grads,), (discriminator_grads,) = pullback((one, zero)), pullback((zero, one))
        generator_ids = {id(v) for v in self.side_variables()[0]}
        gradients = [g if id(v) in generator_ids else d
                     for v, g, d in zip(self.trainable_variables, generator_grads, discriminator_grads)]
        trainable, optimizer_values = self.optimizer.stateless_apply(optimizer_values, gradients, trainable)

        with keras.StatelessScope(state_mapping=list(zip(self.metrics_variables, metric_values))) as scope:
            logs = self._logs(terms)
        metric_values = _current_values(scope, self.metrics_variables, metric_values)
        return logs, (trainable, non_trainable, optimizer_values, metric_values)


def _current_values(scope, variables, values):
    """The values of ``variables`` at the end of a StatelessScope (unchanged ones as given)."""
    updated = [scope.get_current_value(v) for v in variables]
    return [value if new is None else new for new, value in zip(updated, values)]
