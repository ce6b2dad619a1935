"""Golden tests for util/video_metrics.py: J, F and J&F on masks worked out by hand, and per-frame
J and F on random masks against the DAVIS 2017 formulas written again below (_ref_*).

Coordinates are (row, col). Below a diagonal of 125 px the tolerance is ceil(0.008 x diagonal)
= 1 px: disk(1) is the plus-shaped cross (x^2 + y^2 <= 1), so a diagonal neighbour is NOT
within tolerance, an edge neighbour is.
"""

import json
import math

import numpy as np
import pytest

from util.video_metrics import (boundary_f, boundary_map, boundary_tolerance, dataset_scores,
                                jaccard, ref_davis_scores, unsupervised_assignment,
                                video_scores)


def _m(rows):
    return np.array([[int(c) for c in r] for r in rows.split()], dtype=bool)


def _dot(h, w, y, x):
    m = np.zeros((h, w), dtype=bool)
    m[y, x] = True
    return m


EMPTY = np.zeros((4, 4), dtype=bool)
FULL = np.ones((4, 4), dtype=bool)


# ---------------------------------------------------------------------------------------------
# tolerance

def test_boundary_tolerance_hand_worked():
    # 480x854: sqrt(480^2 + 854^2) = sqrt(230400 + 729316) = sqrt(959716) = 979.65;
    #   0.008 * 979.65 = 7.84 -> 8 px (DAVIS 480p).
    assert boundary_tolerance(480, 854) == 8
    # 720x1280: sqrt(518400 + 1638400) = 1468.6; x 0.008 = 11.75 -> 12 px.
    assert boundary_tolerance(720, 1280) == 12
    # 4x4: 5.66 x 0.008 = 0.045 -> 1.  88x88: 124.45 x 0.008 = 0.9956 -> 1;
    # 89x89: 125.87 x 0.008 = 1.007 -> 2.  100x100: 141.4 x 0.008 = 1.13 -> 2.
    assert [boundary_tolerance(n, n) for n in (4, 88, 89, 100)] == [1, 1, 2, 2]
    # bound_th >= 1 is already pixels
    assert boundary_tolerance(480, 854, bound_th=3) == 3


# ---------------------------------------------------------------------------------------------
# boundary maps by the neighbour rule (east, south, south-east, inside the image only)

def test_boundary_map_lone_pixel_is_the_2x2_block_towards_the_origin():
    # (1,1) differs from its east (1,2): boundary. (1,0)'s east, (0,1)'s south and (0,0)'s
    # south-east are (1,1): boundary. Every other pixel sees only zeros.
    assert np.array_equal(boundary_map(_dot(4, 4, 1, 1)), _m('1100 1100 0000 0000'))


def test_boundary_map_mask_on_the_top_left_border():
    # mask = rows 0-1, cols 0-1.  (0,0): E, S, SE all 1 -> no.  (0,1): E (0,2) = 0 -> yes.
    # (1,0): S (2,0) = 0 -> yes.  (1,1): yes.  Background pixels: their E/S/SE are all 0
    # (nothing lies above or left of the mask).  The top and left edges, on the image
    # border, are NOT boundary: 3 pixels, the mask's right column and bottom row.
    assert np.array_equal(boundary_map(_m('1100 1100 0000 0000')), _m('0100 1100 0000 0000'))


def test_boundary_map_mask_in_the_bottom_right_corner():
    # mask = rows 2-3, cols 2-3.  (1,1): SE (2,2) -> yes.  (1,2): S -> yes.  (1,3): last
    # column, S (2,3) -> yes.  (2,1): E -> yes.  (3,1): last row, E (3,2) -> yes.
    # (2,2): E, S, SE all 1 -> no.  (2,3): last column, S = 1 -> no.  (3,2): last row,
    # E = 1 -> no.  (3,3): the corner has no neighbour inside -> no.  5 pixels, all outside.
    assert np.array_equal(boundary_map(_m('0000 0000 0011 0011')), _m('0000 0111 0100 0100'))


def test_boundary_map_full_frame_and_empty_have_none():
    # every pixel equals each of its neighbours inside the image
    assert not boundary_map(FULL).any()
    assert not boundary_map(EMPTY).any()
    # a batch [n, h, w] maps frame by frame
    batch = boundary_map(np.stack([FULL, _dot(4, 4, 1, 1)]))
    assert batch.shape == (2, 4, 4) and not batch[0].any() and batch[1].sum() == 4


# ---------------------------------------------------------------------------------------------
# J and F, one frame

def test_both_empty_is_one():
    # union 0 -> J = 1; both boundaries empty -> P = R = 1 -> F = 1
    assert jaccard(EMPTY, EMPTY) == 1.0
    assert boundary_f(EMPTY, EMPTY) == 1.0


def test_one_side_empty_is_zero():
    gt = _dot(4, 4, 1, 1)
    # pred empty: J = 0 / 1; pred boundary empty, gt's not -> P = 1, R = 0 -> F = 0
    assert jaccard(EMPTY, gt) == 0.0 and boundary_f(EMPTY, gt) == 0.0
    # gt empty: J = 0; P = 0, R = 1 -> F = 0
    assert jaccard(gt, EMPTY) == 0.0 and boundary_f(gt, EMPTY) == 0.0


def test_full_frame():
    # full vs full: J = 16/16; neither has a boundary -> F = 1
    assert jaccard(FULL, FULL) == 1.0 and boundary_f(FULL, FULL) == 1.0
    # full vs empty: J = 0/16 = 0, but neither has a boundary either -> F = 1 (the
    # reference's rule, kept)
    assert jaccard(FULL, EMPTY) == 0.0 and boundary_f(FULL, EMPTY) == 1.0


def test_one_pixel_objects_4x4_tolerance_1():
    gt = _dot(4, 4, 1, 1)  # boundary G = {(0,0), (0,1), (1,0), (1,1)}
    # same pixel: J = 1/1, F = 1
    assert jaccard(gt, gt) == 1.0 and boundary_f(gt, gt) == 1.0
    # east neighbour (1,2): J = 0/2. Its boundary {(0,1), (0,2), (1,1), (1,2)}: (0,1), (1,1)
    # are in G, (0,2) and (1,2) are one column from (0,1), (1,1) -> P = 4/4. G: (0,0) is next
    # to (0,1), (1,0) next to (1,1), the others shared -> R = 4/4. F = 1 with J = 0.
    east = _dot(4, 4, 1, 2)
    assert jaccard(east, gt) == 0.0 and boundary_f(east, gt) == 1.0
    # diagonal neighbour (2,2): boundary {(1,1), (1,2), (2,1), (2,2)}. (1,1) in G; (1,2) and
    # (2,1) next to (1,1); (2,2)'s cross (1,2), (3,2), (2,1), (2,3) misses G -> P = 3/4.
    # G: (0,0)'s cross (0,1), (1,0) misses it; (0,1), (1,0) next to (1,1) -> R = 3/4.
    # F = 2 (9/16) / (3/2) = 3/4.
    diag = _dot(4, 4, 2, 2)
    assert jaccard(diag, gt) == 0.0 and boundary_f(diag, gt) == pytest.approx(0.75)
    # far apart in 8x8 (still 1 px): (1,1) vs (5,5), boundaries 3+ px apart -> P = R = 0,
    # F = 0
    assert boundary_f(_dot(8, 8, 5, 5), _dot(8, 8, 1, 1)) == 0.0


def test_one_pixel_diagonal_within_a_2px_tolerance():
    # 100x100 -> 2 px: disk(2) holds (1,1) (1 + 1 <= 4). gt (10,10): G = {9,10} x {9,10};
    # pred (11,11): {10,11} x {10,11}; every pixel of each is within (1,1) of (10,10), which
    # both share -> P = R = 1, F = 1 (3/4 at 1 px above).
    assert boundary_f(_dot(100, 100, 11, 11), _dot(100, 100, 10, 10)) == 1.0
    assert boundary_f(_dot(100, 100, 11, 11), _dot(100, 100, 10, 10), bound_th=1) == \
        pytest.approx(0.75)


def test_mask_touching_the_border():
    # 8x8 (1 px). gt = rows 0-1, cols 0-1: G = {(0,1), (1,0), (1,1)} (see the boundary map
    # test). pred = rows 0-2, cols 0-2: Pb = {(0,2), (1,2), (2,2), (2,0), (2,1)}.
    # J = 4/9.
    # P: (0,2) next to (0,1); (1,2) next to (1,1); (2,0) next to (1,0); (2,1) next to (1,1);
    #    (2,2)'s cross (1,2), (3,2), (2,1), (2,3) misses G -> 4/5.
    # R: (0,1) next to (0,2); (1,0) next to (2,0); (1,1) next to (1,2) -> 3/3.
    # F = 2 (4/5) / (9/5) = 8/9; J&F = (4/9 + 8/9) / 2 = 2/3.
    # (Were the border a boundary, (0,0) would be one, with P, R and F otherwise.)
    gt = np.zeros((8, 8), dtype=bool)
    gt[:2, :2] = True
    pred = np.zeros((8, 8), dtype=bool)
    pred[:3, :3] = True
    assert jaccard(pred, gt) == pytest.approx(4 / 9)
    assert boundary_f(pred, gt) == pytest.approx(8 / 9)
    s = video_scores(pred[None], gt[None])
    assert s['J&F'] == pytest.approx(2 / 3)


def test_void_pixels_are_left_out():
    # 4x4: gt = rows 0-1, cols 0-1; pred adds column 2; void = column 2.
    # J: I = 4, U = 6 minus the 2 void pixels (0,2), (1,2) -> 4/4 = 1.
    # F: pred with the void zeroed is gt -> F = 1.  Without void: J = 4/6.
    gt, pred, void = _m('1100 1100 0000 0000'), _m('1110 1110 0000 0000'), _m('0010 0010 0010 0010')
    assert jaccard(pred, gt, void) == 1.0 and boundary_f(pred, gt, void) == 1.0
    assert jaccard(pred, gt) == pytest.approx(4 / 6)


def test_non_boolean_masks_count_any_non_zero():
    gt = _dot(4, 4, 1, 1).astype(np.uint8) * 255  # a PNG's 0/255
    assert jaccard(gt.astype(np.float32) * 0.5, gt) == 1.0 and boundary_f(gt, gt > 0) == 1.0


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match='one shape'):
        jaccard(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match='void'):
        boundary_f(EMPTY, EMPTY, void=np.zeros((3, 4)))


# ---------------------------------------------------------------------------------------------
# means over frames, objects, annotators

def _object_leaving():
    """3 frames of 4x4: in the frame and found; in the frame and missed; gone and not
    predicted. J per frame 1, 0, 1; F per frame 1, 0, 1."""
    gt = np.stack([_dot(4, 4, 1, 1), _dot(4, 4, 2, 2), EMPTY])  # [3, 4, 4]
    pred = np.stack([_dot(4, 4, 1, 1), EMPTY, EMPTY])  # [3, 4, 4]
    return pred, gt


def test_video_scores_count_every_frame():
    # J = F = (1 + 0 + 1) / 3 = 2/3: the frame where the object has left counts as 1
    # (vos-benchmark's video mean would start at the first frame with the object and, by
    # default, drop the first and last frames).
    s = video_scores(*_object_leaving())
    assert s['J_per_frame'] == [1.0, 0.0, 1.0] and s['F_per_frame'] == [1.0, 0.0, 1.0]
    assert s['J'] == pytest.approx(2 / 3) and s['F'] == pytest.approx(2 / 3)
    assert s['J&F'] == pytest.approx(2 / 3) and s['n_frames'] == 3
    # jaccard and boundary_f themselves take [n, h, w]
    assert list(jaccard(*_object_leaving())) == [1.0, 0.0, 1.0]
    assert boundary_f(*_object_leaving()).shape == (3,)


def test_dataset_scores_weigh_each_object_the_same():
    # object a: 3 frames, J = F = 2/3 (above). object b: 1 frame, the diagonal case,
    # J = 0, F = 3/4. Means over objects, not over the 4 frames:
    #   J = (2/3 + 0) / 2 = 1/3;  F = (2/3 + 3/4) / 2 = 17/24;  J&F = (8/24 + 17/24) / 2 = 25/48.
    a = video_scores(*_object_leaving())
    b = video_scores(_dot(4, 4, 2, 2)[None], _dot(4, 4, 1, 1)[None])
    out = dataset_scores({'v1': {'a': a}, 'v2': {'b': b}})
    assert out['J'] == pytest.approx(1 / 3) and out['F'] == pytest.approx(17 / 24)
    assert out['J&F'] == pytest.approx(25 / 48) and out['n_items'] == 2
    assert out['videos']['v2']['b'] == {'J': 0.0, 'F': 0.75, 'J&F': 0.375, 'n_frames': 1}
    # JSON-friendly all the way down
    assert json.loads(json.dumps(out)) == out
    with pytest.raises(ValueError, match='no objects'):
        dataset_scores({})


def test_ref_davis_averages_the_annotators():
    # annotator 0 scores J = 1/3, F = 17/24 (above); annotator 1 one perfect object: 1, 1.
    #   J = (1/3 + 1) / 2 = 2/3;  F = (17/24 + 1) / 2 = 41/48;  J&F = (32/48 + 41/48) / 2 = 73/96.
    a = video_scores(*_object_leaving())
    b = video_scores(_dot(4, 4, 2, 2)[None], _dot(4, 4, 1, 1)[None])
    perfect = video_scores(*([_dot(4, 4, 1, 1)[None]] * 2))
    out = ref_davis_scores({'anno_0': {'v1': {'1': a}, 'v2': {'1': b}},
                            'anno_1': {'v1': {'1': perfect}}})
    assert out['J'] == pytest.approx(2 / 3) and out['F'] == pytest.approx(41 / 48)
    assert out['J&F'] == pytest.approx(73 / 96)
    assert out['annotators']['anno_1']['J&F'] == 1.0


def test_unsupervised_assignment_maximises_the_summed_j_and_f():
    # 3 predictions x 2 objects, 1 frame, F = J. Pair scores (rows pred, cols gt):
    #   [[.9, .8], [.85, .1], [0, 0]]: greedy would take (0, 0) = .9 then (1, 1) = .1, 1.0 in
    #   all; the best is (0, 1) + (1, 0) = .8 + .85 = 1.65. Ordered by prediction.
    j = np.array([[.9, .8], [.85, .1], [0., 0.]])[:, :, None]  # [3, 2, 1]
    pred_index, gt_index = unsupervised_assignment(j, j)
    assert list(pred_index) == [0, 1] and list(gt_index) == [1, 0]
    with pytest.raises(ValueError, match='n_pred >= n_gt'):
        unsupervised_assignment(j[:1], j[:1])


# ---------------------------------------------------------------------------------------------
# random masks against the DAVIS 2017 formulas written again

def _ref_seg2bmap(seg):
    """davis2017/metrics.py _seg2bmap's formula (same size): zero-filled east, south and
    south-east copies, XORed, then the last row against east only, the last column against
    south only, and the bottom-right pixel cleared."""
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def _ref_dilate(b, r):
    """Dilation by every offset with dy^2 + dx^2 <= r^2 (skimage's disk(r)), outside = 0."""
    h, w = b.shape
    padded = np.pad(b, r)
    out = np.zeros_like(b)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx <= r * r:
                out |= padded[r + dy:r + dy + h, r + dx:r + dx + w]
    return out


def _ref_frame(pred, gt):
    """(J, F) of one frame by db_eval_iou and f_measure's formulas."""
    union = np.sum(pred | gt)
    j = 1.0 if union == 0 else np.sum(pred & gt) / union
    r = int(math.ceil(0.008 * np.linalg.norm(gt.shape)))
    pb, gb = _ref_seg2bmap(pred), _ref_seg2bmap(gt)
    n_fg, n_gt = pb.sum(), gb.sum()
    if n_fg == 0 and n_gt > 0:
        p, rec = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        p, rec = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        p, rec = 1.0, 1.0
    else:
        p = np.sum(pb & _ref_dilate(gb, r)) / n_fg
        rec = np.sum(gb & _ref_dilate(pb, r)) / n_gt
    f = 0.0 if p + rec == 0 else 2 * p * rec / (p + rec)
    return j, f


@pytest.mark.parametrize('h, w', [(5, 7), (37, 23), (90, 130), (180, 320)])
def test_random_masks_match_the_reference_formulas(h, w):
    rng = np.random.default_rng(h * w)
    n = 6
    # blobs (coarse noise upsampled), each perturbed, plus speckle, empty and full frames
    coarse = rng.random((n, h // 4 + 2, w // 4 + 2)) < 0.5
    gt = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)[:, :h, :w]  # [n, h, w]
    pred = gt ^ (rng.random((n, h, w)) < 0.03)  # [n, h, w]
    pred[1] = rng.random((h, w)) < 0.5
    pred[2], gt[3], pred[4], gt[4] = False, True, True, False
    j, f = jaccard(pred, gt), boundary_f(pred, gt)  # [n], [n]
    for t in range(n):
        rj, rf = _ref_frame(pred[t], gt[t])
        assert j[t] == pytest.approx(rj, abs=1e-12) and f[t] == pytest.approx(rf, abs=1e-12)
        assert np.array_equal(boundary_map(gt[t]), _ref_seg2bmap(gt[t]))
