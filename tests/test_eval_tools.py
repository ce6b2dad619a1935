"""Golden tests for util/eval_tools.py on hand-made 4x4 masks (counts worked out by hand)."""

import json

import numpy as np
import pytest

from util.eval_tools import SegEvaluator, compute_mask_IU


def _m(rows):
    return np.array([[int(c) for c in r] for r in rows.split()], dtype=np.float32)


# A: gt is a 2x2 block (4 px), pred adds column 2 (6 px): I = 4, U = 6, IoU = 2/3.
GT_A, PRED_A = _m('1100 1100 0000 0000'), _m('1110 1110 0000 0000')
# B: gt is the centre 2x2, pred the bottom-right 2x2; they share only (2, 2):
#    I = 1, U = 4 + 4 - 1 = 7, IoU = 1/7.
GT_B, PRED_B = _m('0000 0110 0110 0000'), _m('0000 0000 0011 0011')
# C: gt is row 0 (4 px), pred is (0,0),(0,1),(0,2),(1,0): I = 3, U = 5, IoU = 0.6 exactly.
GT_C, PRED_C = _m('1111 0000 0000 0000'), _m('1110 1000 0000 0000')
# D: pred equals gt on 2 px but is a tiny float (0.01) there, which still counts
#    (any non-zero value is foreground): I = U = 2, IoU = 1.
GT_D, PRED_D = _m('0000 0000 0000 0011'), _m('0000 0000 0000 0011') * 0.01


def test_compute_mask_IU_hand_counts():
    assert compute_mask_IU(PRED_A, GT_A) == (4, 6)
    assert compute_mask_IU(PRED_B, GT_B) == (1, 7)
    assert compute_mask_IU(PRED_C, GT_C.astype(bool)) == (3, 5)
    assert compute_mask_IU(PRED_D, GT_D) == (2, 2)


def test_compute_mask_IU_shape_mismatch():
    with pytest.raises(ValueError, match='share the last two'):
        compute_mask_IU(np.zeros((4, 4)), np.zeros((4, 5)))


def _four_sample_evaluator():
    ev = SegEvaluator()
    for pred, gt in [(PRED_A, GT_A), (PRED_B, GT_B), (PRED_C, GT_C), (PRED_D, GT_D)]:
        ev.add_masks(pred, gt)
    return ev


def test_metrics_hand_worked():
    # IoUs: 2/3, 1/7, 3/5, 1.
    #   >= .5: A, C, D -> 3/4;  >= .6: A (.667), C (.6 exactly), D -> 3/4;
    #   >= .7, .8, .9: D only -> 1/4.
    # cum_I = 4 + 1 + 3 + 2 = 10, cum_U = 6 + 7 + 5 + 2 = 20 -> overall IoU = .5.
    # mean IoU = (2/3 + 1/7 + 3/5 + 1) / 4 = (253/105) / 4 = 253/420 = .6023809...
    ev = _four_sample_evaluator()
    assert ev.precision() == {0.5: 0.75, 0.6: 0.75, 0.7: 0.25, 0.8: 0.25, 0.9: 0.25}
    assert ev.overall_iou() == pytest.approx(0.5)
    assert ev.mean_iou() == pytest.approx(253 / 420)
    assert (ev.cum_I, ev.cum_U, ev.n) == (10, 20, 4)


def test_format_results_matches_original_text():
    expected = ('precision@0.5 = 0.750000\n'
                'precision@0.6 = 0.750000\n'
                'precision@0.7 = 0.250000\n'
                'precision@0.8 = 0.250000\n'
                'precision@0.9 = 0.250000\n'
                'overall IoU = 0.500000; mean IoU = 0.602381\n')
    ev = _four_sample_evaluator()
    assert ev.format_results() == expected


def test_to_dict_is_json_ready():
    d = json.loads(json.dumps(_four_sample_evaluator().to_dict()))
    assert d['precision@0.6'] == 0.75 and d['precision@0.9'] == 0.25
    assert d['overall_iou'] == pytest.approx(0.5)
    assert d['mean_iou'] == pytest.approx(253 / 420)
    assert (d['cum_I'], d['cum_U'], d['n'], d['n_empty_union']) == (10, 20, 4, 0)


def test_empty_union_counts_as_iou_one():
    # Sample 1: both masks empty -> I = U = 0 -> IoU 1.0 by our convention.
    # Sample 2: I = 1, U = 2 -> IoU .5.
    # overall = (0 + 1) / (0 + 2) = .5; mean = (1 + .5) / 2 = .75;
    # precision@.5 = 2/2, @.6 .. @.9 = 1/2.
    ev = SegEvaluator()
    assert ev.add_masks(np.zeros((4, 4)), np.zeros((4, 4))) == (0, 0)
    ev.add(1, 2)
    assert ev.overall_iou() == pytest.approx(0.5)
    assert ev.mean_iou() == pytest.approx(0.75)
    assert ev.precision() == {0.5: 1.0, 0.6: 0.5, 0.7: 0.5, 0.8: 0.5, 0.9: 0.5}
    assert ev.n_empty_union == 1


def test_errors():
    ev = SegEvaluator()
    with pytest.raises(ValueError, match='no samples'):
        ev.format_results()
    with pytest.raises(ValueError, match='I <= U'):
        ev.add(3, 2)


def test_a2d_precisions_and_map_hand_worked():
    # IoUs 0.52, 0.74, 0.96: precision 3/3 at 0.5; 2/3 at 0.55, 0.6, 0.65, 0.7; 1/3 from 0.75
    # to 0.95, so mAP = (1 + 4 * 2/3 + 5 * 1/3) / 10 = 0.5333...
    from util.eval_tools import VIDEO_IOU_THRESHOLDS
    ev = SegEvaluator(VIDEO_IOU_THRESHOLDS, report_map=True)
    for I in (52, 74, 96):
        ev.add(I, 100)
    p = ev.precision()
    assert p[0.5] == 1 and p[0.7] == pytest.approx(2 / 3) and p[0.75] == pytest.approx(1 / 3)
    assert ev.to_dict()['mAP'] == pytest.approx(16 / 30)
    assert ev.format_results().endswith('mAP = 0.533333\n')
    assert 'precision@0.55 = 0.666667\n' in ev.format_results()
    image = SegEvaluator()
    image.add(52, 100)
    assert 'mAP' not in image.to_dict() and 'mAP' not in image.format_results()
