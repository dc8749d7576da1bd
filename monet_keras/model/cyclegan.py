"""CycleGAN: two generators, two discriminators, the report's losses in one readable forward pass.

Naming follows keras-io's CycleGAN example: ``fake_monet = G_monet(real_photo)``,
``cycled_photo = G_photo(fake_monet)``, ``same_monet = G_monet(real_monet)``. Batches are
``(real_monet, real_photo)`` pairs from :mod:`monet_keras.data`.

Losses are per example and reduced over the *global* batch (see :mod:`monet_keras.model.losses`), so
training under a ``tf.distribute`` strategy, or on JAX under ``keras.distribution.DataParallel``,
makes the same update as one device. The train step itself, on both Keras backends, is
:class:`~monet_keras.model.adversarial.AdversarialModel`'s: one optimizer updates all four networks.
"""

from typing import NamedTuple

import keras
from keras import ops

from monet_keras.model import diffaugment, losses
from monet_keras.model.adversarial import AdversarialModel, global_batch_size

LOSS_NAMES = (
    "monet_gen_loss",  # adversarial loss of G_monet (photo -> Monet)
    "photo_gen_loss",  # adversarial loss of G_photo (Monet -> photo)
    "monet_disc_loss",
    "photo_disc_loss",
    "cycle_loss",  # both directions, times lambda_cycle
    "identity_loss",  # both generators, times lambda_identity
)


class _Images(NamedTuple):
    """The generated images the cycle and identity losses compare with the real ones."""

    cycled_monet: object
    cycled_photo: object
    same_monet: object
    same_photo: object


class _Logits(NamedTuple):
    """Discriminator logits of T(real), T(fake) (generator loss) and T(pooled fake) (D loss)."""

    real_monet: object
    real_photo: object
    fake_monet: object
    fake_photo: object
    pooled_monet: object
    pooled_photo: object


class CycleGAN(AdversarialModel):
    """The report's CycleGAN with optional augmentation, DiffAugment and noisy cycle loss.

    Args:
        monet_generator, photo_generator: photo -> Monet and Monet -> photo U-Nets.
        monet_discriminator, photo_discriminator: PatchGANs for each domain.
        lambda_cycle: weight of the cycle loss (report: 10).
        lambda_identity: weight of the identity loss (report: 0.5 * lambda_cycle).
        adversarial_loss: ``"bce"`` (report) or ``"lsgan"``.
        augmenter: a layer applied to both real batches before anything else sees them
            (training only), or None.
        diffaugment_policy: DiffAugment policy T() applied to every discriminator input, real
            and fake (e.g. ``"color,translation,cutout"``; ``""`` = none). Never applied to the
            targets of the cycle and identity losses.
        cycle_noise_std: std of Gaussian noise added to each fake before the reverse generator
            in the cycle loss (report eq. 8); 0 disables it.
        image_pool_monet, image_pool_photo: optional history pools for discriminator fakes.
        seed: seed of the noise generator.
        fused_step: True batches the step's calls: each generator runs once on [other
            domain, own domain] (fake and identity images) and once for the cycle, and each
            discriminator once on [real, fake]. False runs the straightforward forward pass (each
            generator three times, each discriminator twice), the reference. Both compute the
            same losses and gradients (instance norm is per image); with dropout or DiffAugment
            on, only the random draws differ. :mod:`monet_keras.accel.policy` chooses it per device.
    """

    def __init__(self, monet_generator, photo_generator, monet_discriminator, photo_discriminator,
                 lambda_cycle=10.0, lambda_identity=5.0, adversarial_loss="bce", augmenter=None,
                 diffaugment_policy="", cycle_noise_std=0.0, image_pool_monet=None, image_pool_photo=None,
                 seed=None, fused_step=False, **kwargs):
        super().__init__(LOSS_NAMES, **kwargs)
        self.monet_generator = monet_generator
        self.photo_generator = photo_generator
        self.monet_discriminator = monet_discriminator
        self.photo_discriminator = photo_discriminator
        self.lambda_cycle = float(lambda_cycle)
        self.lambda_identity = float(lambda_identity)
        self.adversarial_loss = adversarial_loss
        self.augmenter = augmenter
        self.diffaugment_policy = diffaugment_policy
        diffaugment.parse_policy(diffaugment_policy)  # fail now on an unknown op name
        self.diffaugment_seed = keras.random.SeedGenerator(None if seed is None else seed + 1)
        self.cycle_noise_std = float(cycle_noise_std)
        self.image_pool_monet = image_pool_monet
        self.image_pool_photo = image_pool_photo
        self.noise_seed = keras.random.SeedGenerator(seed)
        self.fused_step = bool(fused_step)

    @property
    def generators(self):
        """The generator side of the step (see :class:`~.adversarial.AdversarialModel`)."""
        return (self.monet_generator, self.photo_generator)

    @property
    def discriminators(self):
        """The discriminator side of the step."""
        return (self.monet_discriminator, self.photo_discriminator)

    def call(self, photos, training=False):
        """Photo -> Monet, so ``model.predict(photos)`` translates."""
        return self.monet_generator(photos, training=training)

    # --- pieces of the train step -------------------------------------------------------

    def _noisy(self, fake):
        """Report eq. 8: perturb the fake before it is translated back."""
        if self.cycle_noise_std <= 0:
            return fake
        noise = keras.random.normal(ops.shape(fake), stddev=self.cycle_noise_std, dtype=fake.dtype,
                                    seed=self.noise_seed)
        return fake + noise

    def _discriminate(self, discriminator, images):
        """D(T(images)): DiffAugment wraps every discriminator input, real and fake."""
        if self.diffaugment_policy:
            images = diffaugment.diff_augment(images, self.diffaugment_policy, seed=self.diffaugment_seed)
        return discriminator(images, training=True)

    @staticmethod
    def _pooled(pool, fakes):
        return fakes if pool is None else pool.query(fakes)

    def _reference_forward(self, real_monet, real_photo):
        """The straightforward step: each generator three times, each discriminator twice."""
        # photo -> Monet -> photo, and Monet -> photo -> Monet.
        fake_monet = self.monet_generator(real_photo, training=True)
        cycled_photo = self.photo_generator(self._noisy(fake_monet), training=True)
        fake_photo = self.photo_generator(real_monet, training=True)
        cycled_monet = self.monet_generator(self._noisy(fake_photo), training=True)

        # Identity: each generator should leave its own domain unchanged.
        same_monet = self.monet_generator(real_monet, training=True)
        same_photo = self.photo_generator(real_photo, training=True)

        # Discriminator outputs, every input through T(); the fakes of the discriminator loss
        # may come from the history pool.
        disc_real_monet = self._discriminate(self.monet_discriminator, real_monet)
        disc_real_photo = self._discriminate(self.photo_discriminator, real_photo)
        disc_fake_monet = self._discriminate(self.monet_discriminator, fake_monet)
        disc_fake_photo = self._discriminate(self.photo_discriminator, fake_photo)
        logits = _Logits(
            disc_real_monet, disc_real_photo, disc_fake_monet, disc_fake_photo,
            pooled_monet=disc_fake_monet if self.image_pool_monet is None else self._discriminate(
                self.monet_discriminator, self._pooled(self.image_pool_monet, fake_monet)),
            pooled_photo=disc_fake_photo if self.image_pool_photo is None else self._discriminate(
                self.photo_discriminator, self._pooled(self.image_pool_photo, fake_photo)),
        )
        return _Images(cycled_monet, cycled_photo, same_monet, same_photo), logits

    def _fused_forward(self, real_monet, real_photo):
        """The same images and logits as :meth:`_reference_forward` from batched calls.

        Instance norm, convolutions and activations act on each image alone, so a call on a
        concatenated batch gives, image by image, the outputs of separate calls.
        """
        # Fake and identity images: one call per generator on [other domain, own domain].
        fake_monet, same_monet = _split(
            self.monet_generator(ops.concatenate([real_photo, real_monet], axis=0), training=True), 2)
        fake_photo, same_photo = _split(
            self.photo_generator(ops.concatenate([real_monet, real_photo], axis=0), training=True), 2)
        # Cycles, in the reference's order (so the noise draws are the same).
        cycled_photo = self.photo_generator(self._noisy(fake_monet), training=True)
        cycled_monet = self.monet_generator(self._noisy(fake_photo), training=True)

        # One call per discriminator on [real, fake(, pooled fake)], every input through T().
        def discriminate(discriminator, pool, real, fake):
            parts = [real, fake] if pool is None else [real, fake, self._pooled(pool, fake)]
            out = _split(self._discriminate(discriminator, ops.concatenate(parts, axis=0)), len(parts))
            return out[0], out[1], out[-1]

        real_m, fake_m, pooled_m = discriminate(self.monet_discriminator, self.image_pool_monet, real_monet,
                                                fake_monet)
        real_p, fake_p, pooled_p = discriminate(self.photo_discriminator, self.image_pool_photo, real_photo,
                                                fake_photo)
        return (_Images(cycled_monet, cycled_photo, same_monet, same_photo),
                _Logits(real_m, real_p, fake_m, fake_p, pooled_m, pooled_p))

    def step_losses(self, data):
        """The step's forward pass: ``(losses, generator_loss, discriminator_loss)``.

        ``losses``: the tracked terms of :data:`LOSS_NAMES` (per example). The two scalars are
        the summed losses of each pair of networks over the global batch. Each is exact for both
        networks of its pair: a pair's sum differs from one network's own loss only by terms with
        no path to that network's weights (photo_gen and photo_identity never reach G_monet,
        photo_disc never D_monet, and so on), so one gradient of each sum updates all four.
        """
        real_monet, real_photo = data
        global_batch = global_batch_size(real_monet)

        # Training-only augmentation of the real batches, before anything else sees them.
        if self.augmenter is not None:
            real_monet = self.augmenter(real_monet, training=True)
            real_photo = self.augmenter(real_photo, training=True)

        forward = self._fused_forward if self.fused_step else self._reference_forward
        images, logits = forward(real_monet, real_photo)

        # Generator losses: fool the discriminator, close both cycles, keep identities.
        kind = self.adversarial_loss
        monet_gen = losses.generator_loss(logits.fake_monet, kind)
        photo_gen = losses.generator_loss(logits.fake_photo, kind)
        cycle = (losses.cycle_loss(real_monet, images.cycled_monet, self.lambda_cycle)
                 + losses.cycle_loss(real_photo, images.cycled_photo, self.lambda_cycle))
        identity = (losses.identity_loss(real_monet, images.same_monet, self.lambda_identity)
                    + losses.identity_loss(real_photo, images.same_photo, self.lambda_identity))
        # Discriminator losses (on the pooled fakes when there is a pool).
        monet_disc = losses.discriminator_loss(logits.real_monet, logits.pooled_monet, kind)
        photo_disc = losses.discriminator_loss(logits.real_photo, logits.pooled_photo, kind)

        terms = dict(zip(LOSS_NAMES, (monet_gen, photo_gen, monet_disc, photo_disc, cycle, identity)))
        return (terms,
                losses.reduce_batch(monet_gen + photo_gen + cycle + identity, global_batch),
                losses.reduce_batch(monet_disc + photo_disc, global_batch))

def _split(batched, parts):
    """The ``parts`` equal consecutive pieces of a concatenated batch."""
    return ops.split(batched, parts, axis=0)
