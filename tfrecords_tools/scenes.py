"""Procedural landscapes for the demo data set: the same kind of scene, as a photo or a painting.

:func:`sample_scene` draws a random landscape (sky gradient, sun disc with glow, clouds, one to
three ranges of hills fading into haze, water mirroring the sky or a field, an optional
foreground bank, round trees and conifers). :func:`render_photo` draws it photo-like: sharp
anti-aliased edges, smooth shading, the natural palette, a slight vignette and sensor noise.
:func:`render_painting` draws it Monet-like: soft edges, a pastel grade (bluish-violet shadows,
warm highlights, lifted blacks, lower contrast) and visible brush strokes: short oriented dabs,
each one flat colour sampled from the scene with its own small colour jitter and bristle lines.

Pure numpy (+ PIL for JPEG and smooth noise); an image is float32 ``(size, size, 3)`` in [0, 1]
until :func:`to_jpeg`. Everything random comes from the ``numpy.random.Generator`` passed in,
so equal generators give equal images.
"""

import dataclasses
import io

import numpy as np
from PIL import Image

# Sky palettes: (zenith, horizon, sun) colours for a few times of day.
_SKIES = (
    ((0.25, 0.45, 0.80), (0.70, 0.82, 0.95), (1.00, 0.98, 0.90)),  # clear day
    ((0.33, 0.43, 0.72), (0.98, 0.76, 0.48), (1.00, 0.86, 0.55)),  # golden hour
    ((0.52, 0.56, 0.62), (0.80, 0.80, 0.79), (0.95, 0.94, 0.90)),  # overcast
    ((0.12, 0.16, 0.36), (0.88, 0.48, 0.36), (1.00, 0.62, 0.32)),  # dusk
)
_GREENS = ((0.20, 0.42, 0.18), (0.30, 0.45, 0.20), (0.38, 0.48, 0.22), (0.25, 0.35, 0.20))
_FIELDS = ((0.45, 0.56, 0.22), (0.62, 0.56, 0.26), (0.35, 0.50, 0.22))
_TREES = ((0.10, 0.26, 0.10), (0.16, 0.30, 0.12), (0.08, 0.20, 0.12))
_BANK = (0.22, 0.32, 0.14)
_TRUNK = (0.25, 0.18, 0.12)
_WATER_TINT = (0.05, 0.20, 0.30)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclasses.dataclass
class Scene:
    """A landscape in unit coordinates: x to the right, y down, both in [0, 1].

    A ridge is ``(height, freqs, phases, weights, rgb)``: its top is a sum of sines scaled to
    ``height`` above its base line. Trees stand on hill range ``layer`` (-1: the bank).
    """

    horizon: float
    sky_top: np.ndarray
    sky_horizon: np.ndarray
    sun: tuple  # (x, y, radius, rgb, glow) or None
    clouds: list  # [(x, y, rx, ry, rgb, alpha)]
    hills: list  # ridges, far to near
    water: bool
    ground: np.ndarray  # field colour (not drawn when there is water)
    bank: tuple  # a ridge rising from the bottom edge, or None
    trees: list  # [(kind, x, layer, height, rgb)], kind "round" or "conifer"


def _jitter(rng, rgb, amount):
    return np.clip(np.asarray(rgb, np.float32) + rng.uniform(-amount, amount, 3), 0, 1).astype(np.float32)


def _ridge(rng, height, max_freq, rgb):
    n = 3
    return (height, rng.uniform(0.5, max_freq, n), rng.uniform(0, 2 * np.pi, n),
            rng.uniform(0.3, 1.0, n) / np.arange(1, n + 1), rgb)


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw one random landscape."""
    top, low, sun_rgb = _SKIES[rng.integers(len(_SKIES))]
    horizon = rng.uniform(0.45, 0.68)
    sun = None
    if rng.random() < 0.75:
        sun = (rng.uniform(0.1, 0.9), rng.uniform(0.12, horizon - 0.08), rng.uniform(0.03, 0.07),
               _jitter(rng, sun_rgb, 0.03), rng.uniform(0.15, 0.45))
    clouds = []
    for _ in range(rng.integers(0, 5)):
        cx, cy, alpha = rng.uniform(0, 1), rng.uniform(0.05, horizon * 0.7), rng.uniform(0.4, 0.85)
        rgb = _jitter(rng, (0.95, 0.95, 0.96) if top[2] > 0.5 else (0.75, 0.55, 0.60), 0.04)
        for _ in range(rng.integers(2, 5)):
            clouds.append((cx + rng.uniform(-0.08, 0.08), cy + rng.uniform(-0.02, 0.02),
                           rng.uniform(0.05, 0.14), rng.uniform(0.02, 0.045), rgb, alpha))
    hills = [_ridge(rng, rng.uniform(0.05, 0.28), 3.5,
                    _jitter(rng, _GREENS[rng.integers(len(_GREENS))], 0.06))
             for _ in range(rng.integers(1, 4))]
    water = bool(rng.random() < 0.55)
    bank = None
    if rng.random() < (0.6 if water else 0.35):
        bank = _ridge(rng, rng.uniform(0.08, 0.3), 1.5, _jitter(rng, _BANK, 0.06))
    layers = list(range(len(hills))) + ([-1] if bank else [])
    trees = []
    for _ in range(rng.integers(0, 8)):
        layer = layers[rng.integers(len(layers))]
        near = 1.0 if layer == -1 else 0.4 + 0.6 * (layer + 1) / len(hills)
        trees.append(("conifer" if rng.random() < 0.4 else "round", rng.uniform(0.03, 0.97), layer,
                      near * rng.uniform(0.08, 0.22), _jitter(rng, _TREES[rng.integers(len(_TREES))], 0.04)))
    return Scene(horizon=horizon, sky_top=_jitter(rng, top, 0.05), sky_horizon=_jitter(rng, low, 0.05),
                 sun=sun, clouds=clouds, hills=hills, water=water,
                 ground=_jitter(rng, _FIELDS[rng.integers(len(_FIELDS))], 0.05), bank=bank, trees=trees)


def smooth_noise(rng, size, cells):
    """A smooth random field in about [0, 1]: ``cells`` x ``cells`` uniform values, bicubic
    upsampled to ``size`` x ``size``."""
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((size, size), Image.BICUBIC))


class _Canvas:
    """Compositing on a size x size grid. Shapes are drawn inside a window (the pixel box that
    can hold them) from a signed distance, with edges ``edge`` pixels soft."""

    def __init__(self, size, edge):
        self.size = size
        self.edge = edge
        self.x = ((np.arange(size, dtype=np.float32) + 0.5) / size)[None, :]
        self.y = ((np.arange(size, dtype=np.float32) + 0.5) / size)[:, None]
        self.img = np.zeros((size, size, 3), np.float32)
        self.angle = np.zeros((size, size), np.float32)  # brush direction, radians from the x axis

    def window(self, x0, x1, y0, y1):
        """``(box, x, y)``: the pixel slices covering the unit box widened by the soft edge, and
        the x (row vector) and y (column vector) coordinates inside it; ``None`` if empty."""
        pad = (self.edge + 1) / self.size
        c0, c1 = max(0, int((x0 - pad) * self.size)), min(self.size, int(np.ceil((x1 + pad) * self.size)))
        r0, r1 = max(0, int((y0 - pad) * self.size)), min(self.size, int(np.ceil((y1 + pad) * self.size)))
        if c0 >= c1 or r0 >= r1:
            return None
        return (slice(r0, r1), slice(c0, c1)), self.x[:, c0:c1], self.y[r0:r1]

    def coverage(self, inside):
        """Edge-smoothed mask from a signed distance in unit coordinates (positive inside)."""
        return np.clip(0.5 + inside * (self.size / self.edge), 0, 1)

    def paint(self, box, mask, rgb, angle):
        """Blend colour ``rgb`` and brush direction ``angle`` into ``box`` with weight ``mask``."""
        img, ang = self.img[box], self.angle[box]
        img += mask[..., None] * (rgb - img)
        ang += mask * (angle - ang)

    def ridge_top(self, ridge, base):
        """The ridge's top line y(x) over the full width: ``base`` minus a wave in [0, height]."""
        height, freqs, phases, weights = ridge[:4]
        wave = sum(w * np.sin(2 * np.pi * f * self.x + p) for f, p, w in zip(freqs, phases, weights))
        return (base - height * (0.5 + 0.5 * wave / np.sum(weights))).astype(np.float32)


def _sky(c, scene, rng):
    t = np.clip(c.y / scene.horizon, 0, 1) ** 0.8
    c.img[:] = scene.sky_top * (1 - t[..., None]) + scene.sky_horizon * t[..., None]
    c.angle[:] = rng.uniform(-0.4, 0.4) + 0.3 * np.sin(6 * c.x + 3 * c.y)
    if scene.sun is not None:
        sx, sy, r, rgb, glow = scene.sun
        box, x, y = c.window(sx - 10 * r, sx + 10 * r, sy - 10 * r, sy + 10 * r)
        d = np.sqrt((x - sx) ** 2 + (y - sy) ** 2)
        c.img[box] += (glow * np.exp(-(d / (4 * r)) ** 2))[..., None] * (rgb - 0.5 * c.img[box])
        c.paint(box, c.coverage(r - d), rgb, 0.0)
    for cx, cy, rx, ry, rgb, alpha in scene.clouds:
        window = c.window(cx - 1.8 * rx, cx + 1.8 * rx, cy - 1.8 * ry, cy + 1.8 * ry)
        if window:
            box, x, y = window
            c.paint(box, alpha * np.exp(-(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2) ** 1.5), rgb, 0.1)


def _hills(c, scene, rng):
    """Hill ranges far to near: hazier with distance, lit on the side facing the sun."""
    h = scene.horizon
    tops = []
    toward_sun = 1 if scene.sun is None or scene.sun[0] > 0.5 else -1
    for i, ridge in enumerate(scene.hills):
        depth = (len(scene.hills) - 1 - i) / len(scene.hills)  # 0 = nearest range
        top = c.ridge_top((ridge[0] * (1 - 0.4 * depth),) + ridge[1:], h + 0.01)
        tops.append(top)
        box, x, y = c.window(0, 1, float(top.min()), h + 0.03)
        slope = np.gradient(top[0])[box[1]] * c.size
        body = np.clip((y - top[:, box[1]]) / (h + 0.01 - top[:, box[1]] + 1e-3), 0, 1)
        texture = smooth_noise(rng, c.size, 12)[box] - 0.5
        shade = np.clip(1 + 0.4 * toward_sun * slope - 0.25 * body + 0.12 * texture, 0.6, 1.3)
        colour = (ridge[4] * (1 - 0.6 * depth) + scene.sky_horizon * (0.6 * depth)) * shade[..., None]
        c.paint(box, c.coverage(y - top[:, box[1]]), colour, -0.6 * np.sign(slope))
    return tops


def _water_or_field(c, scene, rng):
    """Below the horizon: water mirroring everything above it, with ripples, or a field."""
    h = scene.horizon
    box, x, y = c.window(0, 1, h, 1)
    rows = np.arange(box[0].start, box[0].stop)
    below = c.coverage(y - h)
    if scene.water:
        mirror = np.clip(2 * int(round(h * c.size)) - rows, 0, c.size - 1)
        wobble = np.round(2.0 * np.sin(rows * 0.9 + rng.uniform(0, 6)) * (rows / c.size)).astype(int)
        cols = np.clip(np.arange(c.size)[None, :] + wobble[:, None], 0, c.size - 1)
        reflection = c.img[mirror[:, None], cols]
        ripple = 1 + 0.04 * np.sin(y * c.size * 1.3 + 3 * np.sin(x * 9)) * smooth_noise(rng, c.size, 6)[box]
        water = (0.78 * reflection + 0.22 * np.float32(_WATER_TINT)) * ripple[..., None]
        c.paint(box, below, water, 0.0)
    else:
        t = np.clip((y - h) / (1 - h), 0, 1)[..., None]
        grass = 0.85 + 0.3 * smooth_noise(rng, c.size, 10)[box][..., None]
        field = scene.ground * (0.75 + 0.35 * t) * grass
        field = field * (0.6 + 0.4 * t) + scene.sky_horizon * (0.4 * (1 - t))
        c.paint(box, below, field, 0.2 * np.sin(5 * x))


def _bank(c, scene):
    """A foreground ridge rising from below the bottom edge; returns its top line."""
    top = c.ridge_top(scene.bank, 1.05)
    window = c.window(0, 1, float(top.min()), 1)
    if window:
        box, x, y = window
        shade = np.clip(1.1 - 0.5 * (y - top), 0.5, 1.2)[..., None]
        c.paint(box, c.coverage(y - top), scene.bank[4] * shade, 0.8)
    return top


def _tree(c, scene, tree, ground):
    """A round tree (trunk and elliptic crown) or a conifer (triangle) standing on ``ground``."""
    kind, tx, layer, height, rgb = tree
    base = float(ground[0, min(int(tx * c.size), c.size - 1)]) + 0.01
    light = 1 if scene.sun is None or scene.sun[0] > tx else -1
    if kind == "conifer":
        half = 0.22 * height
        window = c.window(tx - half, tx + half, base - height, base)
        if window:
            box, x, y = window
            inside = np.minimum(half * np.clip((y - base + height) / height, 0, 1) - np.abs(x - tx),
                                np.minimum(y - (base - height), base - y))
            shade = 1 + 0.8 * light * (x - tx) / half
            c.paint(box, c.coverage(inside), rgb * np.clip(shade, 0.5, 1.6)[..., None], 1.57)
        return
    trunk = 0.008 * height / 0.1
    window = c.window(tx - trunk, tx + trunk, base - 0.5 * height, base)
    if window:
        box, x, y = window
        inside = np.minimum(trunk - np.abs(x - tx), np.minimum(y - (base - 0.5 * height), base - y))
        c.paint(box, c.coverage(inside), np.float32(_TRUNK), 1.57)
    cy, rx, ry = base - 0.65 * height, 0.3 * height, 0.4 * height
    window = c.window(tx - rx, tx + rx, cy - ry, cy + ry)
    if window:
        box, x, y = window
        inside = (1 - np.sqrt(((x - tx) / rx) ** 2 + ((y - cy) / ry) ** 2)) * min(rx, ry)
        shade = 1 + 0.35 * light * (x - tx) / rx - 0.3 * (y - cy) / ry
        c.paint(box, c.coverage(inside), rgb * np.clip(shade, 0.5, 1.6)[..., None], 1.57 + 2 * (x - tx))


def _render(scene: Scene, size: int, edge: float, rng: np.random.Generator):
    """The scene's colours and brush directions, before any photo or painting finish."""
    c = _Canvas(size, edge)
    _sky(c, scene, rng)
    tops = _hills(c, scene, rng)
    _water_or_field(c, scene, rng)
    if scene.bank is not None:
        tops.append(_bank(c, scene))  # index -1: the bank
    for tree in scene.trees:
        _tree(c, scene, tree, tops[tree[2]])
    return np.clip(c.img, 0, 1), c.angle


def render_photo(scene: Scene, size: int, rng: np.random.Generator) -> np.ndarray:
    """The scene as a photo: sharp edges (0.8 px), natural colours, vignette, sensor noise
    (uniform, standard deviation 0.012 per channel)."""
    img, _ = _render(scene, size, 0.8, rng)
    x = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    img *= (1 - 0.35 * (x[None, :] ** 2 + x[:, None] ** 2))[..., None]
    img += (rng.random(img.shape, dtype=np.float32) - 0.5) * np.float32(0.012 * 12 ** 0.5)
    return np.clip(img, 0, 1)


def monet_grade(img: np.ndarray) -> np.ndarray:
    """Monet-like colour grade per pixel from its luminance ``L`` (BT.601 weights): add
    ``(1-L)^2 * (0.06, 0, 0.20)`` (bluish-violet shadows) and ``L^2 * (0.10, 0.05, -0.08)``
    (warm highlights), scale contrast about 0.5 by 0.8, then lift blacks to 0.1 (pastel)."""
    lum = (img @ _LUMA)[..., None]
    img = img + (1 - lum) ** 2 * np.float32([0.06, 0.0, 0.20]) + lum ** 2 * np.float32([0.10, 0.05, -0.08])
    img = 0.5 + 0.8 * (img - 0.5)
    return 0.1 + 0.9 * np.clip(img, 0, 1)


def brush_strokes(img: np.ndarray, angle: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Repaint a square ``img`` as short oriented brush dabs.

    Stroke centres sit on a jittered grid of ``cell`` = size/40 pixels (at least 2). Each pixel
    takes the colour of the nearest centre among the 3x3 cells around its own, under a distance
    stretched 1.6 cells along that stroke's direction (``angle`` at the centre, plus noise) and
    0.55 cells across it, so each stroke is an elongated dab. Each dab gets its own colour
    jitter, bristle lines along it (5 %) and a slightly darker rim (up to 9 %).
    """
    size = img.shape[0]
    cell = max(2, size // 40)
    n = -(-size // cell)  # cells per side; a one-cell margin is added all round below
    m = n + 2
    centre_y = (np.arange(m)[:, None] - 0.5 + rng.uniform(-0.45, 0.45, (m, m))).astype(np.float32) * cell
    centre_x = (np.arange(m)[None, :] - 0.5 + rng.uniform(-0.45, 0.45, (m, m))).astype(np.float32) * cell
    iy = np.clip(centre_y.astype(int), 0, size - 1)
    ix = np.clip(centre_x.astype(int), 0, size - 1)
    theta = angle[iy, ix] + rng.normal(0, 0.25, (m, m)).astype(np.float32)
    stretch = np.sqrt(rng.uniform(0.8, 1.25, (m, m))).astype(np.float32)
    along_cos, along_sin = stretch * np.cos(theta) / (1.6 * cell), stretch * np.sin(theta) / (1.6 * cell)
    across_cos, across_sin = stretch * np.cos(theta) / (0.55 * cell), stretch * np.sin(theta) / (0.55 * cell)
    colour = img[iy, ix] * rng.uniform(0.92, 1.08, (m, m, 1)) + rng.normal(0, 0.025, (m, m, 3))
    phase = rng.uniform(0, 2 * np.pi, (m, m))

    # Pixels as blocks (block row, row in block, block col, col in block), so the candidate
    # centres of a block broadcast over its pixels without gathering.
    block, inner = np.arange(n, dtype=np.float32) * cell, np.arange(cell, dtype=np.float32) + 0.5
    py = block[:, None, None, None] + inner[None, :, None, None]
    px = block[None, None, :, None] + inner[None, None, None, :]
    shape = (n, cell, n, cell)
    best = np.full(shape, np.inf, np.float32)
    best_k = np.zeros(shape, np.int8)
    best_v = np.zeros(shape, np.float32)
    grids = (centre_y, centre_x, along_cos, along_sin, across_cos, across_sin)
    for k, (dy, dx) in enumerate((dy, dx) for dy in (0, 1, 2) for dx in (0, 1, 2)):
        cy, cx, a_cos, a_sin, x_cos, x_sin = (g[dy:dy + n, dx:dx + n][:, None, :, None] for g in grids)
        oy, ox = py - cy, px - cx
        u = ox * a_cos + oy * a_sin
        v = oy * x_cos - ox * x_sin
        d = u * u + v * v
        closer = d < best
        np.copyto(best, d, where=closer)
        np.copyto(best_k, k, where=closer)
        np.copyto(best_v, v, where=closer)
    # The winning centre's grid index, from the block index plus the candidate offset.
    ky = np.arange(n)[:, None, None, None] + best_k // 3
    kx = np.arange(n)[None, None, :, None] + best_k % 3
    bristles = 1 + 0.05 * np.sin(best_v * 2.5 * np.pi + phase[ky, kx])
    rim = 1 - 0.06 * np.minimum(best, 1.5)
    out = colour[ky, kx] * (bristles * rim)[..., None]
    return np.clip(out.reshape(n * cell, n * cell, 3)[:size, :size], 0, 1).astype(np.float32)


def render_painting(scene: Scene, size: int, rng: np.random.Generator) -> np.ndarray:
    """The scene as a Monet-like painting: soft edges (2.5 px at 256), :func:`monet_grade`,
    :func:`brush_strokes`."""
    img, angle = _render(scene, size, max(1.0, 2.5 * size / 256), rng)
    return brush_strokes(monet_grade(img), angle, rng)


def to_jpeg(img: np.ndarray, quality: int = 95) -> bytes:
    """Encode a float ``(H, W, 3)`` image in [0, 1] as RGB JPEG bytes at ``quality``."""
    pixels = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
