"""Tests for util/dcrf.py on small synthetic images whose CRF answer is predictable."""

import numpy as np
import pytest

from util.dcrf import dense_crf

H = W = 32


def _square_scene():
    # A bright 16x16 square (value 200) on a dark background (20); the true mask is the
    # square. The unary is confident (0.8 inside, 0.2 outside) except for noise that a
    # plain 0.5 threshold gets wrong: a 2x2 hole inside and three isolated false positives.
    im = np.full((H, W, 3), 20, np.uint8)
    im[8:24, 8:24] = 200
    truth = np.zeros((H, W), np.float32)
    truth[8:24, 8:24] = 1
    sigm = np.where(truth > 0, 0.8, 0.2).astype(np.float32)
    sigm[12:14, 12:14] = 0.4
    sigm[2, 2] = sigm[28, 5] = 0.6
    sigm[8, 30] = 0.65
    return im, sigm, truth


def test_crf_cleans_noise_to_the_square():
    im, sigm, truth = _square_scene()
    # Thresholding alone is wrong on 4 + 3 = 7 pixels.
    assert np.sum((sigm >= 0.5) != truth) == 7
    out = dense_crf(im, sigm)
    assert out.shape == (H, W) and out.dtype == np.float32
    assert set(np.unique(out)) <= {0.0, 1.0}
    np.testing.assert_array_equal(out, truth)


def test_saturated_probabilities_pin_the_label_without_nan():
    # Uniform image and background 0.1: an isolated 0.99 pixel is smoothed away, but an
    # isolated 1.0 has -log(1 - 1) = inf background energy and must stay foreground (as
    # in the original); an exact 0.0 in a 0.9 field likewise stays background.
    im = np.full((16, 16, 3), 20, np.uint8)
    sigm = np.full((16, 16), 0.1, np.float32)
    sigm[4, 4] = 0.99
    sigm[10, 10] = 1.0
    out = dense_crf(im, sigm)
    assert out[4, 4] == 0 and out[10, 10] == 1
    sigm = np.full((16, 16), 0.9, np.float32)
    sigm[4, 10] = 0.0
    out = dense_crf(im, sigm)
    assert out[4, 10] == 0 and out.sum() == 16 * 16 - 1


def test_accepts_non_contiguous_inputs():
    im, sigm, truth = _square_scene()
    im_view = np.ascontiguousarray(im[:, :, ::-1])[:, :, ::-1]  # reversed-stride view
    sigm_t = np.asarray(sigm.T.copy().T, dtype=np.float64)       # F-ordered float64
    assert not im_view.flags['C_CONTIGUOUS'] and not sigm_t.flags['C_CONTIGUOUS']
    np.testing.assert_array_equal(dense_crf(im_view, sigm_t), truth)


def test_bad_inputs():
    im, sigm, _ = _square_scene()
    with pytest.raises(ValueError, match='uint8'):
        dense_crf(im.astype(np.float32), sigm)
    with pytest.raises(ValueError, match='uint8'):
        dense_crf(im[:16], sigm)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        dense_crf(im, sigm * 2)
    with pytest.raises(ValueError, match='sigm must be'):
        dense_crf(im, sigm[None])
