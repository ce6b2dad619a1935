"""Golden tests for util/processing_tools.py and util/functions.py."""

import numpy as np
import pytest

from util import MovingAverage
from util.processing_tools import compute_accuracy, generate_spatial_batch


def test_spatial_batch_2x4_hand_worked():
    # H = 2, W = 4. Column w spans x in [w/4*2-1, (w+1)/4*2-1]:
    #   w=0: [-1, -.5], ctr -.75   w=1: [-.5, 0], ctr -.25
    #   w=2: [0, .5],  ctr .25     w=3: [.5, 1],  ctr .75
    # Row h spans y in [h/2*2-1, (h+1)/2*2-1]: h=0: [-1, 0] ctr -.5; h=1: [0, 1] ctr .5.
    # Last two channels: 1/W = .25, 1/H = .5.
    out = generate_spatial_batch(3, 2, 4)
    assert out.shape == (3, 2, 4, 8) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 1, 2], [0, 0, .5, 1, .25, .5, .25, .5])
    np.testing.assert_array_equal(out[2, 0, 0], [-1, -1, -.5, 0, -.75, -.5, .25, .5])
    np.testing.assert_array_equal(out[1, 0, 3], [.5, -1, 1, 0, .75, -.5, .25, .5])
    np.testing.assert_array_equal(out[0], out[2])  # same map for every batch item


def test_spatial_batch_matches_per_cell_formula():
    # The per-cell Python-float formula, evaluated independently for an odd 40x40 map
    # (the model's 320/8 feature map), must agree bit for bit after the float32 cast.
    H = W = 40
    out = generate_spatial_batch(1, H, W)
    for h, w in [(0, 0), (7, 13), (39, 39), (21, 3)]:
        xmin, xmax = w / W * 2 - 1, (w + 1) / W * 2 - 1
        ymin, ymax = h / H * 2 - 1, (h + 1) / H * 2 - 1
        ref = np.array([xmin, ymin, xmax, ymax, (xmin + xmax) / 2, (ymin + ymax) / 2,
                        1 / W, 1 / H], dtype=np.float32)
        np.testing.assert_array_equal(out[0, h, w], ref)


def test_spatial_batch_bad_args():
    with pytest.raises(ValueError, match='featmap_W'):
        generate_spatial_batch(1, 4, 0)


def test_compute_accuracy_hand_worked():
    # labels: 3 positives, 5 negatives.
    #   scores:  [ 1, -1,  2, -3,  0.5, -2, 0, -0.1]
    #   labels:  [ 1,  1,  1,  0,  0,    0, 0,  0  ]
    #   correct: [ T,  F,  T,  T,  F,    T, F,  T  ]  (score >= 0 means foreground)
    # all = 5/8; pos = 2/(3+1) = .5 (the +1 quirk); neg = 3/5.
    scores = np.array([1, -1, 2, -3, 0.5, -2, 0, -0.1]).reshape(2, 4)
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0], np.float32).reshape(2, 4)
    acc_all, acc_pos, acc_neg = compute_accuracy(scores, labels)
    assert acc_all == pytest.approx(5 / 8)
    assert acc_pos == pytest.approx(0.5)
    assert acc_neg == pytest.approx(3 / 5)


def test_compute_accuracy_shape_mismatch():
    with pytest.raises(ValueError, match='same shape'):
        compute_accuracy(np.zeros((2, 3)), np.zeros((3, 2)))


def test_moving_average_window_and_blowup_guard():
    ma = MovingAverage(max_window_size=3)
    assert ma.get_avg() == 0
    for v in [1, 2, 3, 10]:  # window keeps 2, 3, 10
        ma.add(v)
    assert ma.get_avg() == pytest.approx(5.0)
    ma.add(1e13)              # ignored as a blow-up
    assert ma.get_avg() == pytest.approx(5.0)
    ma.reset()
    assert ma.get_avg() == 0
