"""PatchNCE (Park et al. 2020, "Contrastive Learning for Unpaired Image-to-Image Translation").

A patch of the translated image should be closer, in the generator's own encoder features, to
the patch of the input at the same place than to the input's other patches:

1. :func:`feature_model`: the outputs of some encoder layers of the generator, as a Keras model
   sharing the generator's layers (and so its weights).
2. :func:`sample_patch_indices`: per layer, ``n`` distinct flat positions drawn per step; the
   same positions are taken from the input's maps (keys) and the output's (queries), for every
   image of the batch (CUT's PatchSampleF).
3. :func:`build_patch_head`: per layer a small MLP, Dense(units) -> ReLU -> Dense(units), then
   each vector is L2-normalised (:func:`l2_normalize`).
4. :func:`patch_nce`: for each query patch, cross-entropy over ``q . k / temperature`` with
   the key at the same position as the positive and the same image's other sampled keys as
   negatives. Keys are constants (no gradient), as in the reference. The reference also puts
   a logit of -10 / temperature for the query's own position among its negatives, which adds
   exp(-143) to the softmax's denominator; it is left out here.

:func:`patch_nce_loss` chains them (with :func:`draw_patch_indices`' positions) and averages
over layers: one value per image.
"""

import keras
from keras import layers, ops

from monet_keras.errors import MonetKerasError


def feature_model(generator, layer_names, name="nce_features"):
    """A model from ``generator``'s input to the outputs of its layers ``layer_names``: it shares
    the generator's layers and weights, and computes only what those outputs need."""
    known = {layer.name for layer in generator.layers}
    missing = [n for n in layer_names if n not in known]
    if missing or not layer_names:
        raise MonetKerasError(f"bad parameter nce_layers={','.join(layer_names)!r}: "
                              f"{generator.name} has no layer {missing[0]!r}" if missing else
                              "bad parameter nce_layers='': expected layer names")
    outputs = [generator.get_layer(n).output for n in layer_names]
    return keras.Model(generator.inputs, outputs, name=name)


def build_patch_head(channels, units=256, seed=None, name="patch_head"):
    """One MLP per feature layer (input ``channels[l]`` wide): inputs ``(B, n, channels[l])``,
    outputs ``(B, n, units)``. Initialised as the reference's: Xavier-normal with gain 0.02,
    zero biases. ``seed``: first initialiser seed (layers use seed, seed + 1, ...). float32 under
    every precision policy: the losses are float32."""
    def init(k):
        return keras.initializers.VarianceScaling(0.02 ** 2, mode="fan_avg",
                                                  distribution="untruncated_normal",
                                                  seed=None if seed is None else seed + k)

    inputs = [keras.Input((None, c), name=f"layer{i}") for i, c in enumerate(channels)]
    outputs = []
    for i, x in enumerate(inputs):
        x = layers.Dense(units, activation="relu", kernel_initializer=init(2 * i), dtype="float32",
                         name=f"mlp{i}_1")(x)
        outputs.append(layers.Dense(units, kernel_initializer=init(2 * i + 1), dtype="float32",
                                    name=f"mlp{i}_2")(x))
    return keras.Model(inputs, outputs, name=name)


def sample_patch_indices(positions, count, seed):
    """``min(count, positions)`` distinct flat positions out of ``range(positions)``, in random
    order; ``seed``: a SeedGenerator (advanced) or an integer."""
    return keras.random.shuffle(ops.arange(positions, dtype="int32"), seed=seed)[:min(count, positions)]


def gather_patches(features, indices):
    """``(B, H, W, C)`` maps -> ``(B, n, C)``: each image's vectors at the flat positions ``indices``
    (row-major over H, W)."""
    _, height, width, channels = features.shape
    return ops.take(ops.reshape(features, (-1, height * width, channels)), indices, axis=1)


def l2_normalize(x, epsilon=1e-7):
    """``x / (||x|| + epsilon)`` along the last axis (the reference's Normalize)."""
    return x / (ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True)) + epsilon)


def patch_nce(queries, keys, temperature=0.07):
    """Per-image PatchNCE of ``(B, n, D)`` normalised queries and keys: the mean over the n
    queries of the cross-entropy of ``q_i . k_j / temperature`` over j with target i. Shape (B,)."""
    keys = ops.stop_gradient(keys)
    logits = ops.einsum("bid,bjd->bij", queries, keys) / temperature
    # The diagonal q_i . k_i as a row-wise dot product: TensorFlow cannot build the gradient of
    # a diagonal when the batch size is unknown (a dataset batched without drop_remainder).
    positives = ops.sum(queries * keys, axis=-1) / temperature
    return ops.mean(ops.logsumexp(logits, axis=-1) - positives, axis=-1)


def draw_patch_indices(maps, patches, seed):
    """One draw of :func:`sample_patch_indices` per feature map of ``maps`` (``(B, H, W, C)``)."""
    return [sample_patch_indices(m.shape[1] * m.shape[2], patches, seed) for m in maps]


def patch_nce_loss(key_maps, query_maps, head, indices, temperature=0.07):
    """PatchNCE averaged over layers, one value per image: ``key_maps`` from the source images,
    ``query_maps`` from their translations (lists of ``(B, H, W, C)``, one per layer), ``head``
    from :func:`build_patch_head`, ``indices`` the positions of each layer (both maps use them)."""
    keys = [ops.cast(gather_patches(m, i), "float32") for m, i in zip(key_maps, indices)]
    queries = [ops.cast(gather_patches(m, i), "float32") for m, i in zip(query_maps, indices)]
    keys, queries = head(keys), head(queries)
    per_layer = [patch_nce(l2_normalize(q), l2_normalize(k), temperature) for q, k in zip(queries, keys)]
    return ops.mean(ops.stack(per_layer, axis=0), axis=0)
