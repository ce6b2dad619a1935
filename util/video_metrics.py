"""Video object segmentation metrics J, F and J&F as DAVIS 2017 defines them (pure numpy).

Matched to the DAVIS 2017 evaluation code, github:davisvideochallenge/davis2017-evaluation
at ac7c43fca936f9722837b7fbd337d284ba37004b (2023-02-26), read, not copied:

  J (region similarity), `davis2017/metrics.py: db_eval_iou`
      J = |pred AND gt| / |pred OR gt| per frame, and J = 1 where the union is empty (both
      masks empty: an object that has left the frame and is rightly not predicted).
  F (boundary accuracy), `davis2017/metrics.py: db_eval_boundary, f_measure, _seg2bmap`
      boundaries by `_seg2bmap`'s neighbour rule: a pixel is a boundary pixel when it differs
      from its east, south or south-east neighbour, comparing only neighbours INSIDE the
      image (the last row looks east only, the last column south only, the bottom-right
      pixel nowhere). So the image border is never a boundary: a full-frame mask has none,
      and a mask touching the top or left border has no boundary along it. The map sits half
      a pixel towards the origin: a lone pixel (y, x) gives the 2x2 block (y-1..y, x-1..x).
      Tolerance: bound_pix = ceil(bound_th * sqrt(h^2 + w^2)) with bound_th = 0.008 at the
      frame's own resolution (8 px at 480x854, 12 px at 720x1280, 1 px below a diagonal of
      125); a bound_th >= 1 is taken as pixels. A boundary pixel is matched when a boundary
      pixel of the other mask lies within skimage's disk(bound_pix) of it
      (x^2 + y^2 <= bound_pix^2; the reference dilates with cv2, we row by row: the same set).
      precision = matched pred boundary / pred boundary, recall = matched gt boundary / gt
      boundary; both boundaries empty: P = R = 1; pred empty only: P = 1, R = 0; gt empty
      only: P = 0, R = 1. F = 2PR / (P + R), 0 when P + R = 0.
      Consequence kept on purpose: a full-frame prediction against an empty ground truth
      has no boundary on either side, so J = 0 but F = 1.
  Void pixels (DAVIS annotations' 255): `db_eval_iou` leaves them out of I and U;
      `f_measure` zeroes them in both masks before taking boundaries.
  Means, `davis2017/utils.py: db_statistics` (M = nanmean over frames) and
      `evaluation_method.py`: per object, the mean of its per-frame J (and F) over ALL the
      frames given; then J-Mean and F-Mean are means over all objects of the split (each
      object weighs the same, whatever its length); J&F-Mean = (J-Mean + F-Mean) / 2.
      (db_statistics' recall and decay are not ported.)

How each benchmark runs it:
  MeViS, github:henghuiding/MeViS at 7c0620b9 `tools/eval_mevis.py` (`tools/metrics.py` is
      the DAVIS file): per expression, J and F are means over all the video's frames (the
      ground truth is the union of the expression's objects); J and F over the split are
      means over expressions; J&F = (J + F) / 2. No void, no frames dropped.
  Ref-DAVIS17, as github:wjn922/ReferFormer at 06fc218f runs it (`scripts/dist_test_davis.sh`,
      `eval_davis.py`): each of the four annotators' expressions is scored on its own, as
      DAVIS's task='unsupervised' (all frames, void left out, and the predicted objects
      assigned to the ground-truth objects by `linear_sum_assignment` on the pairs' J&F
      means: `unsupervised_assignment`); the papers report the mean of the four J, F and J&F.
  Ref-YouTube-VOS: its server scores the valid split; locally, per expression as MeViS.
The vos-benchmark package agrees frame by frame, but its video means start at an object's
first frame present in gt or prediction and by default drop each video's first and last
frames (the semi-supervised protocol): its video averages are not this reference.
"""

import math

import numpy as np
from scipy.optimize import linear_sum_assignment
from skimage.morphology import disk

BOUND_TH = 0.008  # davis2017/metrics.py: db_eval_boundary's default


def _as_masks(pred, gt, void=None):
    """Boolean pred, gt (and void, all False when None) of one shape [..., h, w]; any non-zero
    value is foreground, as the reference's astype(bool)."""
    pred = np.asarray(pred).astype(bool)
    gt = np.asarray(gt).astype(bool)
    if pred.shape != gt.shape or pred.ndim < 2:
        raise ValueError('video_metrics: pred %s and gt %s must have one shape [..., h, w]'
                         % (pred.shape, gt.shape))
    if void is None:
        void = np.zeros_like(gt)
    else:
        void = np.asarray(void).astype(bool)
        if void.shape != gt.shape:
            raise ValueError('video_metrics: void %s must have the shape of gt %s'
                             % (void.shape, gt.shape))
    return pred, gt, void


def jaccard(pred, gt, void=None):
    """Region similarity J of pred and gt masks [h, w] (a float) or [n, h, w] (an array [n]).

    |pred AND gt| / |pred OR gt| over the non-void pixels; 1.0 where that union is empty.
    """
    pred, gt, void = _as_masks(pred, gt, void)
    keep = ~void
    inter = np.sum(pred & gt & keep, axis=(-2, -1))  # [...]
    union = np.sum((pred | gt) & keep, axis=(-2, -1))  # [...]
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))  # [...]
    return float(j) if j.ndim == 0 else j


def boundary_tolerance(h, w, bound_th=BOUND_TH):
    """The match distance in pixels: bound_th itself when >= 1, else ceil(bound_th * diagonal)."""
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(h, w)))


def boundary_map(mask):
    """One-pixel-wide boundary [..., h, w] (bool) of masks [..., h, w], by _seg2bmap's rule.

    A pixel is on the boundary when it differs from its east, south or south-east neighbour,
    among the neighbours that lie inside the image: the image border is never a boundary.
    """
    m = np.asarray(mask).astype(bool)  # [..., h, w]
    b = np.zeros_like(m)
    b[..., :, :-1] |= m[..., :, :-1] != m[..., :, 1:]  # east
    b[..., :-1, :] |= m[..., :-1, :] != m[..., 1:, :]  # south
    b[..., :-1, :-1] |= m[..., :-1, :-1] != m[..., 1:, 1:]  # south-east
    return b


def _dilate(b, footprint):
    """Binary dilation [h, w] of b [h, w] by a footprint [2r+1, 2r+1] that is symmetric and
    whose rows are centred runs (a disk), outside the image counting as background.

    The same set as scipy's binary_dilation (and the reference's cv2.dilate), row by row: the
    footprint row at height dy is a horizontal run of half-width k, so b widened by k columns
    each way, shifted dy rows. Widening one column at a time keeps it to a few array ORs per
    row (binary_dilation was 20x slower at r = 12).
    """
    h, w = b.shape
    r = footprint.shape[0] // 2
    half = [int(row.sum()) // 2 for row in footprint]  # [2r+1], half-width of each row
    runs = [b]  # runs[k]: b widened by k columns each way, [h, w]
    for k in range(1, max(half) + 1):
        wider = runs[-1].copy()
        if k < w:
            wider[:, k:] |= b[:, :-k]
            wider[:, :-k] |= b[:, k:]
        runs.append(wider)
    out = np.zeros_like(b)
    for i, k in enumerate(half):
        dy = i - r
        if abs(dy) >= h:  # a footprint taller than the (cropped) image
            continue
        if dy >= 0:
            out[:h - dy] |= runs[k][dy:]
        else:
            out[-dy:] |= runs[k][:h + dy]
    return out


def _matched(a, b, footprint):
    """How many pixels of boundary a [h, w] lie within the footprint of some pixel of b."""
    return int(np.sum(a & _dilate(b, footprint)))


def _boundary_f_frame(pred, gt, void, bound_pix):
    """F of one frame (bool masks [h, w])."""
    keep = ~void
    pb = boundary_map(pred & keep)  # [h, w]
    gb = boundary_map(gt & keep)  # [h, w]
    n_pred, n_gt = int(pb.sum()), int(gb.sum())
    if n_pred == 0 or n_gt == 0:
        # f_measure's special cases: (P, R) = (1, 1), (1, 0) or (0, 1)
        return 1.0 if n_pred == n_gt else 0.0
    # Every boundary pixel lies in the box around both boundaries, so dilating inside that box
    # gives the same counts as dilating the whole frame (and is much cheaper for small objects).
    ys, xs = np.nonzero(pb | gb)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    pb, gb = pb[box], gb[box]  # [bh, bw]
    footprint = disk(bound_pix).astype(bool)  # [2r+1, 2r+1]
    precision = _matched(pb, gb, footprint) / n_pred
    recall = _matched(gb, pb, footprint) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


def boundary_f(pred, gt, void=None, bound_th=BOUND_TH):
    """Boundary F-measure of masks [h, w] (a float) or [n, h, w] (an array [n]).

    The tolerance is boundary_tolerance(h, w, bound_th) at the masks' own resolution.
    """
    pred, gt, void = _as_masks(pred, gt, void)
    h, w = gt.shape[-2:]
    bound_pix = boundary_tolerance(h, w, bound_th)
    if gt.ndim == 2:
        return _boundary_f_frame(pred, gt, void, bound_pix)
    lead = gt.shape[:-2]
    frames = zip(pred.reshape(-1, h, w), gt.reshape(-1, h, w), void.reshape(-1, h, w))
    f = [_boundary_f_frame(p, g, v, bound_pix) for p, g, v in frames]
    return np.array(f, dtype=np.float64).reshape(lead)


def video_scores(preds, gts, void=None, bound_th=BOUND_TH):
    """J, F and J&F of one object (or expression) over the frames of its video.

    preds, gts: masks [t, h, w] (void likewise, optional). Every frame counts, those where
    both masks are empty with J = F = 1. Returns a JSON-friendly dict:
    {'J', 'F', 'J&F': floats, 'n_frames': t, 'J_per_frame', 'F_per_frame': lists of t}.
    """
    preds, gts, void = _as_masks(preds, gts, void)
    if gts.ndim != 3 or gts.shape[0] == 0:
        raise ValueError('video_scores: masks must be [t, h, w] with t >= 1, got %s'
                         % (gts.shape,))
    return frame_means(jaccard(preds, gts, void), boundary_f(preds, gts, void, bound_th))


def frame_means(j, f):
    """video_scores from the per-frame J and F of one object or expression (sequences of t
    floats, e.g. gathered a frame at a time)."""
    if len(j) != len(f) or len(j) == 0:
        raise ValueError('frame_means: need as many J as F values, at least one, got %d and %d'
                         % (len(j), len(f)))
    j_mean, f_mean = float(np.mean(j)), float(np.mean(f))
    return {'J': j_mean, 'F': f_mean, 'J&F': (j_mean + f_mean) / 2, 'n_frames': len(j),
            'J_per_frame': [float(x) for x in j], 'F_per_frame': [float(x) for x in f]}


def dataset_scores(per_video):
    """Split means from {video: {object or expression: video_scores(...)}}.

    J and F are means over all the objects or expressions of all videos (each weighs the
    same), J&F = (J + F) / 2, as DAVIS's evaluation_method.py and MeViS's eval_mevis.py.
    Returns a JSON-friendly dict {'J', 'F', 'J&F', 'n_items', 'videos': {video: {item:
    {'J', 'F', 'J&F', 'n_frames'}}}}; the per-frame lists stay in the inputs.
    """
    videos = {}
    js, fs = [], []
    for video, items in per_video.items():
        videos[video] = {}
        for item, s in items.items():
            videos[video][item] = {k: s[k] for k in ('J', 'F', 'J&F', 'n_frames')}
            js.append(s['J'])
            fs.append(s['F'])
    if not js:
        raise ValueError('dataset_scores: no objects or expressions were given')
    j_mean, f_mean = float(np.mean(js)), float(np.mean(fs))
    return {'J': j_mean, 'F': f_mean, 'J&F': (j_mean + f_mean) / 2, 'n_items': len(js),
            'videos': videos}


def ref_davis_scores(per_annotator):
    """Ref-DAVIS17: {annotator: {video: {object: video_scores(...)}}} scored one annotator at a
    time (dataset_scores), then J, F and J&F averaged over the annotators.

    Returns {'J', 'F', 'J&F', 'annotators': {annotator: dataset_scores(...)}}.
    """
    annotators = {a: dataset_scores(v) for a, v in per_annotator.items()}
    if not annotators:
        raise ValueError('ref_davis_scores: no annotators were given')
    out = {k: float(np.mean([s[k] for s in annotators.values()])) for k in ('J', 'F', 'J&F')}
    out['annotators'] = annotators
    return out


def unsupervised_assignment(j_pairs, f_pairs):
    """The ground-truth object each predicted object is scored against, in DAVIS's
    task='unsupervised' (`davis2017/evaluation.py: _evaluate_unsupervised`).

    j_pairs, f_pairs: per-frame J and F [n_pred, n_gt, t] of every (prediction, object) pair,
    n_pred >= n_gt (the reference pads missing predictions with empty masks). The pairing
    maximises the summed (mean J + mean F) / 2 (scipy's linear_sum_assignment). Returns
    (pred_index, gt_index), two int arrays [n_gt] ordered by pred_index: the reference names
    its per-object rows in this order, so its per-object table may be permuted against the
    objects, while the split means are not.
    """
    j_pairs = np.asarray(j_pairs, dtype=np.float64)
    f_pairs = np.asarray(f_pairs, dtype=np.float64)
    if j_pairs.shape != f_pairs.shape or j_pairs.ndim != 3 or j_pairs.shape[0] < j_pairs.shape[1]:
        raise ValueError('unsupervised_assignment: need J and F of one shape [n_pred, n_gt, t] '
                         'with n_pred >= n_gt, got %s and %s' % (j_pairs.shape, f_pairs.shape))
    score = (j_pairs.mean(axis=2) + f_pairs.mean(axis=2)) / 2  # [n_pred, n_gt]
    pred_index, gt_index = linear_sum_assignment(-score)  # [n_gt], [n_gt]
    return pred_index, gt_index
