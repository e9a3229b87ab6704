"""Synthetic rain streaks and synthetic haze of clean images, for offline all-in-one runs.

Stand-ins for Rain100L and SOTS where those sets are absent (the demo, tests, CPU studies): results
on them are not comparable with the papers', hence "synthetic" in every name. Each function takes a
clean float32 image in [0, 1], (H, W, C) with any C, and a ``numpy`` Generator that supplies all its
randomness, so one seed gives one image; the output has the same shape and stays in [0, 1].
"""
import cv2
import numpy as np

#: streak seeds per pixel, streak length (pixels), angle from the vertical (degrees), brightness
RAIN_DENSITY, RAIN_LENGTH, RAIN_ANGLE, RAIN_BRIGHTNESS = (0.002, 0.006), (9, 21), (-25., 25.), (0.5, 0.9)
#: scattering coefficient (per unit of the [0, 1] depth proxy), atmospheric light, depth-field roughness
HAZE_BETA, HAZE_AIRLIGHT, HAZE_DEPTH_NOISE = (0.8, 2.5), (0.75, 1.0), 0.3


def _streak_kernel(length, angle_deg):
    """A line of ones, ``length`` pixels long through the centre of a square kernel, tilted by ``angle_deg``."""
    kernel = np.zeros((length, length), np.float32)
    centre, half = (length - 1) / 2, (length - 1) / 2
    dx, dy = np.sin(np.deg2rad(angle_deg)) * half, np.cos(np.deg2rad(angle_deg)) * half
    start = (int(round(centre - dx)), int(round(centre - dy)))
    end = (int(round(centre + dx)), int(round(centre + dy)))
    cv2.line(kernel, start, end, 1., thickness=1)
    return kernel


def synthetic_rain(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bright, straight, parallel rain streaks screen-blended over ``img``.

    Sparse random seeds (density drawn from ``RAIN_DENSITY``) are smeared along one direction
    (``RAIN_ANGLE``) into streaks of ``RAIN_LENGTH`` pixels, softened by a 3x3 Gaussian, and scaled to
    a drawn brightness. The screen blend ``1 - (1 - J) (1 - S)`` brightens like light rain and keeps
    [0, 1] without clipping the image.

    Args:
        img (ndarray): (H, W, C) float32 in [0, 1].
        rng (Generator): Source of every random choice.

    Returns:
        ndarray: (H, W, C) float32 in [0, 1].
    """
    height, width = img.shape[:2]
    density = rng.uniform(*RAIN_DENSITY)
    seeds = (rng.random((height, width)) < density) * rng.uniform(0.6, 1., (height, width))
    length = int(rng.integers(RAIN_LENGTH[0], RAIN_LENGTH[1] + 1)) | 1  # odd: the line passes the centre
    kernel = _streak_kernel(length, rng.uniform(*RAIN_ANGLE))
    streaks = cv2.filter2D(seeds.astype(np.float32), -1, kernel, borderType=cv2.BORDER_CONSTANT)
    streaks = cv2.GaussianBlur(np.clip(streaks, 0., 1.), (3, 3), 0.)
    streaks = np.float32(rng.uniform(*RAIN_BRIGHTNESS)) * streaks[..., None]
    return np.clip(1. - (1. - img) * (1. - streaks), 0., 1.).astype(np.float32)


def depth_proxy(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A plausible outdoor depth in [0, 1]: far (1) at the top row, near (0) at the bottom, plus a smooth
    random field (weight ``HAZE_DEPTH_NOISE``) so that the scene is not a plane."""
    ramp = np.linspace(1., 0., height, dtype=np.float32)[:, None].repeat(width, axis=1)
    coarse = rng.random((4, 4)).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    depth = (1. - HAZE_DEPTH_NOISE) * ramp + HAZE_DEPTH_NOISE * np.clip(field, 0., 1.)
    return np.clip(depth, 0., 1.)


def synthetic_haze(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Haze by the atmospheric scattering model ``I = J t + A (1 - t)``, ``t = exp(-beta d)``.

    ``d`` is :func:`depth_proxy`, ``beta`` is drawn from ``HAZE_BETA`` and the gray atmospheric light
    ``A`` from ``HAZE_AIRLIGHT``. ``I`` is a convex combination of ``J`` and ``A``, so it stays in [0, 1].

    Args:
        img (ndarray): (H, W, C) float32 in [0, 1].
        rng (Generator): Source of every random choice.

    Returns:
        ndarray: (H, W, C) float32 in [0, 1].
    """
    beta, airlight = rng.uniform(*HAZE_BETA), rng.uniform(*HAZE_AIRLIGHT)
    transmission = np.exp(-beta * depth_proxy(img.shape[0], img.shape[1], rng))[..., None]
    return np.clip(img * transmission + airlight * (1. - transmission), 0., 1.).astype(np.float32)


SYNTHETIC_DEGRADATIONS = {'synthetic-rain': synthetic_rain, 'synthetic-haze': synthetic_haze}
