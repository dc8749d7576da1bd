"""CycleGAN losses, per example.

Every function returns one value per example (shape ``(B,)``): the mean over that example's
pixels or logits. The train step turns them into a scalar with :func:`reduce_batch`, which
divides by the *global* batch size, so N replicas with global batch B make the same update as
one replica with batch B (gradients are summed across replicas).

- adversarial BCE from logits (the report) or least squares (``"lsgan"``, Mao et al. 2017);
- discriminator loss = 0.5 * (loss(real, 1) + loss(fake, 0));
- generator adversarial loss = loss(fake, 1);
- cycle loss = lambda_cycle * mean |real - cycled|;
- identity loss = lambda_identity * mean |real - same|, lambda_identity = 0.5 * lambda_cycle.
"""

from keras import ops


def _per_example_mean(x):
    return ops.mean(ops.reshape(x, (ops.shape(x)[0], -1)), axis=1)


def adversarial(logits, target_is_real: bool, kind: str = "bce"):
    """Mean adversarial loss of each example's logit map against an all-real/all-fake target."""
    logits = ops.cast(logits, "float32")
    target = ops.ones_like(logits) if target_is_real else ops.zeros_like(logits)
    if kind == "bce":
        return _per_example_mean(ops.binary_crossentropy(target, logits, from_logits=True))
    if kind == "lsgan":
        return _per_example_mean(ops.square(logits - target))
    raise ValueError(f"unknown adversarial loss {kind!r}")


def discriminator_loss(real_logits, fake_logits, kind: str = "bce"):
    return 0.5 * (adversarial(real_logits, True, kind) + adversarial(fake_logits, False, kind))


def generator_loss(fake_logits, kind: str = "bce"):
    return adversarial(fake_logits, True, kind)


def cycle_loss(real, cycled, lambda_cycle: float):
    return lambda_cycle * _per_example_mean(ops.abs(ops.cast(real, "float32") - ops.cast(cycled, "float32")))


def identity_loss(real, same, lambda_identity: float):
    return lambda_identity * _per_example_mean(ops.abs(ops.cast(real, "float32") - ops.cast(same, "float32")))


def reduce_batch(per_example, global_batch_size):
    """Sum of per-example losses over the global batch size (the replica's share of the mean)."""
    return ops.sum(per_example) / ops.cast(global_batch_size, per_example.dtype)
