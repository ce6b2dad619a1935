"""Tests for util/visualize.py: pixel colours worked out by hand from the original's rule."""

import os

import numpy as np
import pytest
from PIL import Image

from util.visualize import GREEN, MAX_NAME_BYTES, overlay, sentence_dirname, visualize_seg

# 2x2 image; gt.png is (170, 0, 0) on the mask, (0, 0, 170) elsewhere; pred.png is
# trunc(im / 2) with +100 red where uint8(predicts) == 1.
IM = np.array([[[255, 10, 3], [11, 200, 100]],
               [[0, 0, 0], [254, 1, 2]]], np.uint8)
MASK = np.array([[1, 0], [1, 0]], np.float32)
PRED = np.array([[1, 0.999], [0, 1]], np.float32)  # 0.999 casts to 0: not drawn
GT_EXPECTED = [[[170, 0, 0], [0, 0, 170]],
               [[170, 0, 0], [0, 0, 170]]]
PRED_EXPECTED = [[[227, 5, 1], [5, 100, 50]],     # 127.5+100 -> 227; 1.5 -> 1; 5.5 -> 5
                 [[0, 0, 0], [227, 0, 1]]]        # 127+100; .5 -> 0; 1


def _read(path):
    return np.asarray(Image.open(path))


def test_writes_three_pngs_with_original_colours(tmp_path):
    out_dir = visualize_seg(IM, MASK, PRED, 'the man on the left/right', str(tmp_path))
    assert out_dir == os.path.join(str(tmp_path), 'the man on the left_right')
    assert sorted(os.listdir(out_dir)) == ['gt.png', 'im.png', 'pred.png']
    np.testing.assert_array_equal(_read(os.path.join(out_dir, 'im.png')), IM)
    np.testing.assert_array_equal(_read(os.path.join(out_dir, 'gt.png')), GT_EXPECTED)
    np.testing.assert_array_equal(_read(os.path.join(out_dir, 'pred.png')), PRED_EXPECTED)


def test_dcrf_suffix_keeps_plain_prediction(tmp_path):
    visualize_seg(IM, MASK, PRED, 'a dog', str(tmp_path))
    visualize_seg(IM, MASK, np.zeros((2, 2)), 'a dog', str(tmp_path), suffix='_dcrf')
    sent_dir = os.path.join(str(tmp_path), 'a dog')
    assert sorted(os.listdir(sent_dir)) == ['gt.png', 'im.png', 'pred.png', 'pred_dcrf.png']
    np.testing.assert_array_equal(_read(os.path.join(sent_dir, 'pred.png')), PRED_EXPECTED)
    # All-zero prediction: just trunc(im / 2).
    np.testing.assert_array_equal(_read(os.path.join(sent_dir, 'pred_dcrf.png')), IM // 2)


def test_sentence_dirname():
    assert sentence_dirname('  left/right\tone ') == 'left_right_one'
    assert sentence_dirname(b'bytes sentence') == 'bytes sentence'
    assert sentence_dirname('..') == '_' and sentence_dirname('') == '_'
    long_name = sentence_dirname('\xe9' * 300)        # 2 UTF-8 bytes per character
    assert long_name == '\xe9' * (MAX_NAME_BYTES // 2)
    assert len(long_name.encode('utf-8')) <= MAX_NAME_BYTES


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match='im must be uint8'):
        visualize_seg(IM.astype(np.float32), MASK, PRED, 's', str(tmp_path))
    with pytest.raises(ValueError, match='predicts must be'):
        visualize_seg(IM, MASK, PRED[:1], 's', str(tmp_path))
    with pytest.raises(ValueError, match=r'mask values must lie in \[0, 1\]'):
        visualize_seg(IM, MASK * 255, PRED, 's', str(tmp_path))
    with pytest.raises(ValueError, match='suffix'):
        visualize_seg(IM, MASK, PRED, 's', str(tmp_path), suffix='/x')


def test_overlay_blends_the_colour_into_the_masked_pixels_only():
    # Worked by hand: 0.5 * (101, 50, 4) + 0.5 * (255, 0, 0) = (178, 25, 2);
    # 0.5 * (100, 51, 4) + 0.5 * (0, 255, 0) = (50, 153, 2).
    mask = np.zeros((2, 3), bool)
    mask[1, 2] = True
    red = overlay(np.full((2, 3, 3), (101, 50, 4), np.uint8), mask)
    assert red.dtype == np.uint8
    assert red[1, 2].tolist() == [178, 25, 2]
    assert (red[~mask] == (101, 50, 4)).all()
    green = overlay(np.full((2, 3, 3), (100, 51, 4), np.uint8), mask, GREEN)
    assert green[1, 2].tolist() == [50, 153, 2]
    assert (green[~mask] == (100, 51, 4)).all()
