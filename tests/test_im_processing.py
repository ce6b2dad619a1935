"""Golden tests for util/im_processing.py against scikit-image 0.13's resize.

0.13's bilinear resize samples output pixel o at input coordinate
    x = (o + 0.5) * in_size / out_size - 0.5
and blends floor(x) and ceil(x) with weights (1 - (x - floor x), x - floor x); a
neighbour outside the image reads as cval = 0. Rows and columns are separable, so a
resize is out = R @ X @ C.T with R, C the 1-D weight matrices worked out below.
"""

import numpy as np
import pytest
import skimage.transform

from util.im_processing import resize_and_crop, resize_and_pad, _resize_like_skimage_013

# 2 -> 4: x = (o + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25
#   o=0: x=-0.25 -> 0.25 * cval + 0.75 * p0
#   o=1: x= 0.25 -> 0.75 * p0 + 0.25 * p1
#   o=2: x= 0.75 -> 0.25 * p0 + 0.75 * p1
#   o=3: x= 1.25 -> 0.75 * p1 + 0.25 * cval
UP_2_TO_4 = np.array([[0.75, 0.00],
                      [0.75, 0.25],
                      [0.25, 0.75],
                      [0.00, 0.75]])


def test_upsample_2x2_to_4x4_hand_worked():
    # X = [[0, 1], [1, 1]]; out[i, j] = a_i * c_j1 + b_i * (c_j0 + c_j1) with (a_i, b_i)
    # row i of UP_2_TO_4 and (c_j0, c_j1) row j:  c_j1 = 0, .25, .75, .75 and
    # c_j0 + c_j1 = .75, 1, 1, .75.
    #   row 0 (a=.75, b=0):   .75 * c_j1                 -> 0, .1875, .5625, .5625
    #   row 1 (a=.75, b=.25): .75 * c_j1 + .25 * sum_j   -> .1875, .4375, .8125, .75
    #   row 2 (a=.25, b=.75): .25 * c_j1 + .75 * sum_j   -> .5625, .8125, .9375, .75
    #   row 3 (a=0, b=.75):   .75 * sum_j                -> .5625, .75, .75, .5625
    expected = np.array([[0.0, 0.1875, 0.5625, 0.5625],
                         [0.1875, 0.4375, 0.8125, 0.75],
                         [0.5625, 0.8125, 0.9375, 0.75],
                         [0.5625, 0.75, 0.75, 0.5625]])
    x_uint8 = np.array([[0, 255], [255, 255]], dtype=np.uint8)  # img_as_float: / 255
    out = _resize_like_skimage_013(x_uint8, 4, 4)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(out, UP_2_TO_4 @ np.array([[0., 1.], [1., 1.]]) @ UP_2_TO_4.T,
                               atol=1e-15)


def test_downsample_4x4_to_2x2_has_no_anti_aliasing():
    # 4 -> 2: x = (o + 0.5) * 2 - 0.5 = 0.5, 2.5, so each output is the plain mean of a
    # 2x2 block: mean(0,1,4,5) = 2.5, mean(2,3,6,7) = 4.5, mean(8,9,12,13) = 10.5,
    # mean(10,11,14,15) = 12.5.
    x = np.arange(16, dtype=np.float64).reshape(4, 4)
    out = _resize_like_skimage_013(x, 2, 2)
    np.testing.assert_allclose(out, [[2.5, 4.5], [10.5, 12.5]], atol=1e-12)
    # Today's default resize smooths first (anti_aliasing=True), which 0.13 did not.
    today = skimage.transform.resize(x, (2, 2), order=1, mode='constant')
    assert not np.allclose(today, out)


def test_clip_of_0_13_lifts_edge_blends_to_the_minimum():
    # A constant 0.5 image: the raw bilinear border blends with cval (0.75 * 0.5 ...),
    # 0.13 clipped every output to [min, max] = [0.5, 0.5] (no pixel is exactly 0), so the
    # whole 4x4 output is 0.5. Unclipped, the corner would be .75 * .75 * .5 = .28125.
    x = np.full((2, 2), 0.5)
    out = _resize_like_skimage_013(x, 4, 4)
    np.testing.assert_array_equal(out, np.full((4, 4), 0.5))
    raw = skimage.transform.resize(x, (4, 4), order=1, mode='constant', clip=False,
                                   anti_aliasing=False)
    assert raw[0, 0] == pytest.approx(0.28125)


def test_dtypes_follow_0_13():
    f32 = np.ones((3, 3), np.float32)
    assert _resize_like_skimage_013(f32, 5, 5).dtype == np.float64  # 0.13 always gave double
    b = np.zeros((2, 2), bool)
    b[0, 0] = True
    out = _resize_like_skimage_013(b, 4, 4)
    assert out.dtype == np.float64
    # True -> 1.0, then out[0, 0] = .75 * .75 * 1 (UP_2_TO_4 rows 0, cols 0).
    assert out[0, 0] == pytest.approx(0.5625)


def _reference_resize_013(x, out_h, out_w):
    """Direct numpy transcription of 0.13's bilinear sampling + clip, for float input."""
    def weights(n_in, n_out):
        # 1-D weight matrix [n_out, n_in] from the pixel-centre formula; outside -> cval 0.
        pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        lo = np.floor(pos).astype(int)
        frac = pos - lo
        w = np.zeros((n_out, n_in))
        for o in range(n_out):
            for k, wt in ((lo[o], 1 - frac[o]), (lo[o] + 1, frac[o])):
                if 0 <= k < n_in:
                    w[o, k] += wt
        return w
    r, c = weights(x.shape[0], out_h), weights(x.shape[1], out_w)
    out = np.einsum('ip,pqk,jq->ijk', r, x.reshape(x.shape[:2] + (-1,)), c)
    out = out.reshape((out_h, out_w) + x.shape[2:])
    lo, hi = x.min(), x.max()
    if not lo <= 0 <= hi:
        zero = out == 0
        out = np.clip(out, lo, hi)
        out[zero] = 0
    else:
        out = np.clip(out, lo, hi)
    return out


@pytest.mark.parametrize('shape,out_hw,offset', [
    ((7, 5), (13, 9), 0.0),
    ((9, 11, 3), (4, 6), 0.0),
    ((10, 3), (6, 8), 0.3),     # min > 0: border blends with cval get clipped
    ((5, 5, 2), (5, 5), 0.0),   # identity size
])
def test_matches_reference_on_random_images(shape, out_hw, offset):
    rng = np.random.default_rng(0)
    x = rng.random(shape) * (1 - offset) + offset
    np.testing.assert_allclose(_resize_like_skimage_013(x, *out_hw),
                               _reference_resize_013(x, *out_hw), rtol=0, atol=1e-12)


def test_resize_and_pad_geometry_uses_round_half_to_even():
    # 5x8 into 4x4: scale = min(4/5, 4/8) = 0.5; 5 * 0.5 = 2.5 rounds (half to even) to 2,
    # not 3; 8 * 0.5 = 4. pad_h = (4 - 2) // 2 = 1, pad_w = 0. An all-ones image resizes to
    # all ones (clip to [1, 1]), so rows 1-2 are 1 and rows 0, 3 are padding zeros.
    out = resize_and_pad(np.ones((5, 8), np.float32), 4, 4)
    assert out.shape == (4, 4) and out.dtype == np.float64
    np.testing.assert_array_equal(out, [[0] * 4, [1] * 4, [1] * 4, [0] * 4])


def test_resize_and_pad_identity_scale_rgb_uint8():
    # 2x4x3 into 4x4: scale = min(2, 1) = 1, no resampling (x = o), pad_h = 1, pad_w = 0.
    rng = np.random.default_rng(1)
    im = rng.integers(0, 256, size=(2, 4, 3), dtype=np.uint8)
    out = resize_and_pad(im, 4, 4)
    assert out.shape == (4, 4, 3) and out.dtype == np.float64
    np.testing.assert_allclose(out[1:3], im / 255.0, atol=1e-15)
    assert not out[0].any() and not out[3].any()


def test_resize_and_crop_hand_worked():
    # 2x4 into 4x4: scale = max(4/2, 4/4) = 2 -> resized 4x8, crop_h = 0, crop_w = 2.
    # Columns: X[:, q] = q; kept output columns o = 2..5 sample x = o/2 - 0.25 =
    # .75, 1.25, 1.75, 2.25, all inside, so the values are the coordinates themselves.
    # Rows 2 -> 4 use UP_2_TO_4, whose row sums are .75, 1, 1, .75.
    x = np.tile(np.arange(4, dtype=np.float64), (2, 1))
    cols = np.array([0.75, 1.25, 1.75, 2.25])
    expected = np.outer([0.75, 1.0, 1.0, 0.75], cols)
    out = resize_and_crop(x, 4, 4)
    assert out.shape == (4, 4) and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_pad_then_crop_round_trip_shape():
    # A 320x320 prediction mapped back onto a 480x640 frame: scale = max(1.5, 2) = 2 ->
    # 640x640, crop_h = 80.
    pred = np.zeros((320, 320), np.float32)
    pred[100:200, 100:200] = 1
    out = resize_and_crop(pred, 480, 640)
    assert out.shape == (480, 640)
    # Foreground rows 100..199 -> resized rows ~200..399 -> cropped rows ~120..319.
    assert out[130:310, 210:390].min() == 1.0 and out[:110].max() == 0.0


def test_bad_input_errors():
    with pytest.raises(ValueError, match='input_h'):
        resize_and_pad(np.zeros((4, 4)), 0, 4)
    with pytest.raises(ValueError, match='shape'):
        resize_and_crop(np.zeros((4,)), 4, 4)
    with pytest.raises(TypeError, match='numpy array'):
        resize_and_pad([[0, 1]], 4, 4)
