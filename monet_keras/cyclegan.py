"""CycleGAN(keras.Model): two generators, two discriminators, one readable train_step.

Naming follows keras-io's CycleGAN example: ``fake_monet = G_monet(real_photo)``,
``cycled_photo = G_photo(fake_monet)``, ``same_monet = G_monet(real_monet)``. Batches are
``(real_monet, real_photo)`` pairs from :mod:`monet_keras.data`.

Losses are per example and reduced over the *global* batch (see :mod:`monet_keras.losses`), so
training under a ``tf.distribute`` strategy makes the same update as one device.
"""

import keras
import tensorflow as tf
from keras import ops

from monet_keras import diffaugment, losses

LOSS_NAMES = (
    "monet_gen_loss",  # adversarial loss of G_monet (photo -> Monet)
    "photo_gen_loss",  # adversarial loss of G_photo (Monet -> photo)
    "monet_disc_loss",
    "photo_disc_loss",
    "cycle_loss",  # both directions, times lambda_cycle
    "identity_loss",  # both generators, times lambda_identity
)


class CycleGAN(keras.Model):
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
    """

    def __init__(self, monet_generator, photo_generator, monet_discriminator, photo_discriminator,
                 lambda_cycle=10.0, lambda_identity=5.0, adversarial_loss="bce", augmenter=None,
                 diffaugment_policy="", cycle_noise_std=0.0, image_pool_monet=None, image_pool_photo=None,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
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
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOSS_NAMES}

    def compile(self, monet_generator_optimizer, photo_generator_optimizer,
                monet_discriminator_optimizer, photo_discriminator_optimizer, **kwargs):
        super().compile(**kwargs)
        self.monet_generator_optimizer = monet_generator_optimizer
        self.photo_generator_optimizer = photo_generator_optimizer
        self.monet_discriminator_optimizer = monet_discriminator_optimizer
        self.photo_discriminator_optimizer = photo_discriminator_optimizer

    @property
    def networks_and_optimizers(self):
        """(network, its optimizer) in a fixed order, for checkpoints and schedules."""
        return (
            (self.monet_generator, self.monet_generator_optimizer),
            (self.photo_generator, self.photo_generator_optimizer),
            (self.monet_discriminator, self.monet_discriminator_optimizer),
            (self.photo_discriminator, self.photo_discriminator_optimizer),
        )

    def build_optimizers(self):
        """Create every optimizer slot now (so a checkpoint can be restored before training)."""
        for network, optimizer in self.networks_and_optimizers:
            if not optimizer.built:
                optimizer.build(network.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, photos, training=False):
        """Photo -> Monet, so ``model.predict(photos)`` translates."""
        return self.monet_generator(photos, training=training)

    # --- pieces of the train step -------------------------------------------------------

    def _global_batch_size(self, batch):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return ops.shape(batch)[0] * replicas

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

    def train_step(self, data):
        real_monet, real_photo = data
        global_batch = self._global_batch_size(real_monet)

        def mean(per_example):
            return losses.reduce_batch(per_example, global_batch)

        # Training-only augmentation of the real batches, before anything else sees them.
        if self.augmenter is not None:
            real_monet = self.augmenter(real_monet, training=True)
            real_photo = self.augmenter(real_photo, training=True)

        with tf.GradientTape(persistent=True) as tape:
            # photo -> Monet -> photo, and Monet -> photo -> Monet.
            fake_monet = self.monet_generator(real_photo, training=True)
            cycled_photo = self.photo_generator(self._noisy(fake_monet), training=True)
            fake_photo = self.photo_generator(real_monet, training=True)
            cycled_monet = self.monet_generator(self._noisy(fake_photo), training=True)

            # Identity: each generator should leave its own domain unchanged.
            same_monet = self.monet_generator(real_monet, training=True)
            same_photo = self.photo_generator(real_photo, training=True)

            # Discriminator outputs, every input through T().
            disc_real_monet = self._discriminate(self.monet_discriminator, real_monet)
            disc_real_photo = self._discriminate(self.photo_discriminator, real_photo)
            disc_fake_monet = self._discriminate(self.monet_discriminator, fake_monet)
            disc_fake_photo = self._discriminate(self.photo_discriminator, fake_photo)

            # Generator losses: fool the discriminator, close both cycles, keep identities.
            kind = self.adversarial_loss
            monet_gen = losses.generator_loss(disc_fake_monet, kind)
            photo_gen = losses.generator_loss(disc_fake_photo, kind)
            cycle = (losses.cycle_loss(real_monet, cycled_monet, self.lambda_cycle)
                     + losses.cycle_loss(real_photo, cycled_photo, self.lambda_cycle))
            monet_identity = losses.identity_loss(real_monet, same_monet, self.lambda_identity)
            photo_identity = losses.identity_loss(real_photo, same_photo, self.lambda_identity)
            total_monet_gen = mean(monet_gen + cycle + monet_identity)
            total_photo_gen = mean(photo_gen + cycle + photo_identity)

            # Discriminator losses: the fakes may come from the history pool.
            if self.image_pool_monet is not None:
                disc_fake_monet = self._discriminate(
                    self.monet_discriminator, self._pooled(self.image_pool_monet, fake_monet))
            if self.image_pool_photo is not None:
                disc_fake_photo = self._discriminate(
                    self.photo_discriminator, self._pooled(self.image_pool_photo, fake_photo))
            monet_disc = losses.discriminator_loss(disc_real_monet, disc_fake_monet, kind)
            photo_disc = losses.discriminator_loss(disc_real_photo, disc_fake_photo, kind)
            total_monet_disc = mean(monet_disc)
            total_photo_disc = mean(photo_disc)

        # One update of each network by its own optimizer.
        for loss, (network, optimizer) in zip(
                (total_monet_gen, total_photo_gen, total_monet_disc, total_photo_disc),
                self.networks_and_optimizers):
            # scale_loss is the identity unless the optimizer is a LossScaleOptimizer (float16).
            grads = tape.gradient(optimizer.scale_loss(loss), network.trainable_variables)
            optimizer.apply_gradients(zip(grads, network.trainable_variables))
        del tape

        for name, value in zip(LOSS_NAMES, (monet_gen, photo_gen, monet_disc, photo_disc, cycle,
                                            monet_identity + photo_identity)):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}
