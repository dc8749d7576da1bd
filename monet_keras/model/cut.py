"""CUT (Park et al. 2020): one generator G (photo -> Monet), no inverse generator and no cycle.

G is trained by the PatchGAN's adversarial loss plus PatchNCE (:mod:`monet_keras.model.patchnce`):
patches of G(x) must match, in G's own encoder features passed through a small MLP head, the
patches of x at the same places. With ``nce_identity`` (CUT; off in FastCUT) PatchNCE between a
Monet y and G(y) is added too, and the two NCE terms are averaged, as the reference does:

    G loss = adversarial + (nce + nce_identity) / 2     (nce alone without nce_identity)
    D loss = (loss(D(y), real) + loss(D(G(x)), fake)) / 2

With ``flip_equivariance`` (FastCUT), each step flips G's input left-right with probability 1/2
and flips the translation's features back before PatchNCE compares them with the unflipped
input's, so G(flip(x)) must be flip(G(x)) patch by patch.

The head's weights train with G (it is on the generator side). Batches are the kit's
``(real_monet, real_photo)`` pairs; losses are per example over the global batch, and the step
on both backends is :class:`~monet_keras.model.adversarial.AdversarialModel`'s.
"""

import keras
from keras import ops

from monet_keras.model import diffaugment, losses, networks, patchnce
from monet_keras.model.adversarial import AdversarialModel, global_batch_size

LOSS_NAMES = (
    "monet_gen_loss",  # adversarial loss of G
    "monet_disc_loss",
    "nce_loss",  # lambda_nce * PatchNCE(photo, G(photo))
    "nce_identity_loss",  # lambda_nce * PatchNCE(monet, G(monet)), with nce_identity
)

# The encoder layers PatchNCE reads by default. U-Net: the first four encoder blocks, whose maps
# (S/2 .. S/16 wide: 16x16 = 256 positions at 256 px) hold enough places for CUT's 256 patches;
# the deeper ones are 8x8 and less, nearly global. ResNet: the reference's layers 0, 4, 8, 12, 16
# of its ResnetGenerator: the padded input, the two down-sampling convolutions, and the outputs of
# residual blocks 1 and 5 (our down-sampling convolutions have stride 2, the reference's
# anti-aliased ones stride 1 before a blur-pool).
DEFAULT_NCE_LAYERS = {
    "unet": ("down1_lrelu", "down2_lrelu", "down3_lrelu", "down4_lrelu"),
    "resnet": ("c7s1_pad_left_right", "down1_conv", "down2_conv", "res1_add", "res5_add"),
}


def nce_layer_names(config):
    """The layers of ``config.nce_layers`` (comma-separated), or the generator's defaults."""
    names = tuple(n.strip() for n in config.nce_layers.split(",") if n.strip())
    return names or DEFAULT_NCE_LAYERS[config.generator]


class CUT(AdversarialModel):
    """Contrastive unpaired translation, photo -> Monet.

    Args:
        monet_generator: G, photo -> Monet (a functional Keras model).
        monet_discriminator: the PatchGAN of the Monet domain.
        nce_layers: names of G's layers whose outputs PatchNCE compares.
        lambda_nce: weight of the NCE terms (CUT: 1; FastCUT: 10).
        nce_identity: add PatchNCE(y, G(y)) for Monet images y (CUT: on; FastCUT: off).
        nce_patches: patches sampled per layer and image (fewer when a map is smaller).
        nce_temperature: the softmax temperature (0.07).
        flip_equivariance: flip G's input at random and its features back (FastCUT: on).
        head_units: width of the MLP head (the reference's 256).
        adversarial_loss: ``"bce"`` or ``"lsgan"`` (the reference's default).
        augmenter, diffaugment_policy, image_pool_monet: as in :class:`~.cyclegan.CycleGAN`.
        seed: seeds the head's initialisers and the random draws (patches, DiffAugment).
    """

    def __init__(self, monet_generator, monet_discriminator, nce_layers, lambda_nce=1.0, nce_identity=True,
                 nce_patches=256, nce_temperature=0.07, flip_equivariance=False, head_units=256,
                 adversarial_loss="bce", augmenter=None, diffaugment_policy="", image_pool_monet=None,
                 seed=None, **kwargs):
        self.nce_identity = bool(nce_identity)
        super().__init__(LOSS_NAMES if self.nce_identity else LOSS_NAMES[:3], **kwargs)
        self.monet_generator = monet_generator
        self.monet_discriminator = monet_discriminator
        self.nce_features = patchnce.feature_model(monet_generator, tuple(nce_layers))
        # G's image and the NCE features of its input from one pass.
        self.translate_with_features = keras.Model(
            monet_generator.inputs, [*monet_generator.outputs, *self.nce_features.outputs],
            name="translate_with_features")
        channels = [int(shape[-1]) for shape in (t.shape for t in self.nce_features.outputs)]
        self.patch_head = patchnce.build_patch_head(
            channels, head_units, seed=None if seed is None else networks.network_seed(seed, 4))
        self.lambda_nce = float(lambda_nce)
        self.nce_patches = int(nce_patches)
        self.nce_temperature = float(nce_temperature)
        self.flip_equivariance = bool(flip_equivariance)
        self.flip_seed = keras.random.SeedGenerator(None if seed is None else seed + 5)
        self.adversarial_loss = adversarial_loss
        self.augmenter = augmenter
        self.diffaugment_policy = diffaugment_policy
        diffaugment.parse_policy(diffaugment_policy)  # fail now on an unknown op name
        self.diffaugment_seed = keras.random.SeedGenerator(None if seed is None else seed + 1)
        self.patch_seed = keras.random.SeedGenerator(None if seed is None else seed + 3)
        self.image_pool_monet = image_pool_monet

    @property
    def generators(self):
        """G and the MLP head: both trained by the generator-side loss."""
        return (self.monet_generator, self.patch_head)

    @property
    def discriminators(self):
        return (self.monet_discriminator,)

    def call(self, photos, training=False):
        """Photo -> Monet, so ``model.predict(photos)`` translates."""
        return self.monet_generator(photos, training=training)

    def _discriminate(self, images):
        """D(T(images)): DiffAugment wraps every discriminator input, real and fake."""
        if self.diffaugment_policy:
            images = diffaugment.diff_augment(images, self.diffaugment_policy, seed=self.diffaugment_seed)
        return self.monet_discriminator(images, training=True)

    def _flip_coin(self):
        """True on about half the steps: whether :meth:`_translate_for_nce` flips this one."""
        return keras.random.uniform((), seed=self.flip_seed) < 0.5

    def _translate_for_nce(self, sources):
        """``(G(sources), key maps, query maps)``: the NCE features of the sources and of their
        translations, position for position. Without flip equivariance G runs once and its own
        encoder pass gives the keys; with it G may see the sources flipped, so the keys come from
        a pass over the unflipped sources and the queries are flipped back."""
        if not self.flip_equivariance:
            outputs, *key_maps = self.translate_with_features(sources, training=True)
            return outputs, key_maps, self.nce_features(outputs, training=True)
        flip = self._flip_coin()
        outputs = self.monet_generator(ops.where(flip, ops.flip(sources, axis=2), sources), training=True)
        queries = self.nce_features(outputs, training=True)
        queries = [ops.where(flip, ops.flip(q, axis=2), q) for q in queries]  # back to the sources' places
        return outputs, self.nce_features(sources, training=True), queries

    def step_losses(self, data):
        """``(terms, generator_loss, discriminator_loss)`` of :class:`AdversarialModel`.

        G runs once on [photos, Monets] (fakes, identity images and the NCE keys of both), and
        its encoder once on the outputs (the queries); the two NCE terms share the step's patch
        positions, drawn once per layer.
        """
        real_monet, real_photo = data
        global_batch = global_batch_size(real_monet)
        if self.augmenter is not None:
            real_monet = self.augmenter(real_monet, training=True)
            real_photo = self.augmenter(real_photo, training=True)

        sources = ops.concatenate([real_photo, real_monet], axis=0) if self.nce_identity else real_photo
        outputs, key_maps, query_maps = self._translate_for_nce(sources)
        indices = patchnce.draw_patch_indices(key_maps, self.nce_patches, self.patch_seed)
        nce = self.lambda_nce * patchnce.patch_nce_loss(key_maps, query_maps, self.patch_head, indices,
                                                        self.nce_temperature)
        fake_monet = ops.split(outputs, 2, axis=0)[0] if self.nce_identity else outputs

        # One discriminator call on [real, fake(, pooled fake)].
        parts = [real_monet, fake_monet]
        if self.image_pool_monet is not None:
            parts.append(self.image_pool_monet.query(fake_monet))
        logits = ops.split(self._discriminate(ops.concatenate(parts, axis=0)), len(parts), axis=0)
        logits_real, logits_fake, logits_pooled = logits[0], logits[1], logits[-1]
        gen = losses.generator_loss(logits_fake, self.adversarial_loss)
        disc = losses.discriminator_loss(logits_real, logits_pooled, self.adversarial_loss)

        if self.nce_identity:
            nce, nce_identity = ops.split(nce, 2, axis=0)
            terms = dict(zip(LOSS_NAMES, (gen, disc, nce, nce_identity)))
            generator_total = gen + 0.5 * (nce + nce_identity)
        else:
            terms = dict(zip(LOSS_NAMES, (gen, disc, nce)))
            generator_total = gen + nce
        return (terms, losses.reduce_batch(generator_total, global_batch),
                losses.reduce_batch(disc, global_batch))
