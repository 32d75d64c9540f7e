"""Data augmentation for training: random translations and mirror images of square images.

A trained circuit sees the same kind of images as before (pixel values in [0, 1] set the input voltage
sources); only the training examples change: moved by a whole number of pixels in each direction, the
vacated pixels set to 0 (the background of MNIST, Fashion-MNIST and KMNIST) (:class:`RandomShift`), and/or
mirrored left to right (:class:`RandomFlip`; for Fashion-MNIST's garments, not for digits).  The changes of
an epoch are drawn once, from a generator seeded by ``(seed, epoch)``, so a run interrupted and resumed sees
the same examples as one that was not.  :class:`Augmentation` chains the two as the trainers use them.

The papers circuitprop compares against (fast DRN, universal DRN, the uncertainty paper) train without
augmentation: results with it are reported as such, beside those without.
"""
from __future__ import annotations

import math

import numpy as np


def _side(n_features: int, setting: str) -> int:
    side = math.isqrt(int(n_features))
    if side * side != n_features:
        raise ValueError(f"{setting} needs square images: {n_features} features is not a square number of pixels")
    return side


class RandomShift:
    """Translate each training image by up to ``pixels`` pixels along each axis.

    Parameters
    ----------
    pixels : int
        Largest shift along each axis (pixels); every shift in ``[-pixels, pixels]`` is equally likely,
        independently for rows and columns.  0 leaves the images unchanged.
    n_features : int
        Features per example: a square image flattened row by row (784 for 28 x 28).
    """

    def __init__(self, pixels: int, n_features: int):
        self.pixels = int(pixels)
        if self.pixels < 0:
            raise ValueError(f"augment_shift must be >= 0 pixels, got {pixels!r}")
        side = _side(n_features, "augment_shift")
        if self.pixels >= side:
            raise ValueError(f"augment_shift={self.pixels} pixels would move a {side} x {side} image out of view")
        self.side = side

    def draw(self, n: int, seed, epoch: int) -> np.ndarray:
        """The shifts ``(n, 2)`` (rows, columns; pixels) of one epoch's ``n`` examples, indexed like the data."""
        rng = np.random.default_rng([int(seed), int(epoch), 0x5A1F7])
        return rng.integers(-self.pixels, self.pixels + 1, size=(n, 2))

    def apply(self, x: np.ndarray, shifts: np.ndarray) -> np.ndarray:
        """``x`` (batch, side*side) with image ``k`` moved down by ``shifts[k, 0]`` and right by ``shifts[k, 1]``
        pixels (negative: up, left); vacated pixels are 0.  Returns a new array."""
        x = np.asarray(x)
        shifts = np.asarray(shifts)
        if shifts.shape != (x.shape[0], 2):
            raise ValueError(f"shifts have shape {shifts.shape}, expected {(x.shape[0], 2)}")
        s = self.side
        images = x.reshape(x.shape[0], s, s)
        out = np.zeros_like(images)
        for k, (dr, dc) in enumerate(shifts):
            dr, dc = int(dr), int(dc)
            out[k, max(dr, 0):s + min(dr, 0), max(dc, 0):s + min(dc, 0)] = \
                images[k, max(-dr, 0):s + min(-dr, 0), max(-dc, 0):s + min(-dc, 0)]
        return out.reshape(x.shape)


class RandomFlip:
    """Mirror each training image left to right with probability 1/2.

    Parameters
    ----------
    n_features : int
        Features per example: a square image flattened row by row (784 for 28 x 28).
    """

    def __init__(self, n_features: int):
        self.side = _side(n_features, "augment_flip")

    def draw(self, n: int, seed, epoch: int) -> np.ndarray:
        """Which of one epoch's ``n`` examples are mirrored (bool, ``(n,)``), indexed like the data."""
        rng = np.random.default_rng([int(seed), int(epoch), 0xF11B])
        return rng.random(n) < 0.5

    def apply(self, x: np.ndarray, flips: np.ndarray) -> np.ndarray:
        """``x`` (batch, side*side) with the images where ``flips`` is true mirrored left to right (column ``c``
        becomes column ``side - 1 - c``).  Returns a new array."""
        x = np.asarray(x)
        flips = np.asarray(flips, dtype=bool)
        if flips.shape != (x.shape[0],):
            raise ValueError(f"flips have shape {flips.shape}, expected {(x.shape[0],)}")
        images = x.reshape(x.shape[0], self.side, self.side).copy()
        images[flips] = images[flips][:, :, ::-1]
        return images.reshape(x.shape)


class Augmentation:
    """The random changes to a run's training images: shifts (if any), then mirror images (if asked).

    Parameters
    ----------
    n_features : int
        Features per example (a square image flattened row by row).
    shift : int
        Largest shift along each axis (pixels; :class:`RandomShift`); 0: none.
    flip : bool
        Mirror half of the images left to right, a new half every epoch (:class:`RandomFlip`).
    """

    def __init__(self, n_features: int, shift: int = 0, flip: bool = False):
        self.steps = []
        if shift:
            self.steps.append(RandomShift(shift, n_features))
        if flip:
            self.steps.append(RandomFlip(n_features))

    def __bool__(self):
        return bool(self.steps)

    def epoch(self, n: int, seed, epoch: int):
        """The function ``(x, rows) -> changed x`` for one epoch: ``x`` holds the examples ``rows`` of the
        ``n``-example training set, each changed by its own draw of that epoch."""
        draws = [step.draw(n, seed, epoch) for step in self.steps]

        def apply(x, rows):
            for step, drawn in zip(self.steps, draws):
                x = step.apply(x, drawn[rows])
            return x
        return apply
