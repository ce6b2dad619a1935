"""Referring-segmentation metrics as the field reports them (pure numpy).

Per sample: I = |pred AND gt|, U = |pred OR gt|. Over a split:
  precision@t  = fraction of samples with I / U >= t, t in 0.5 ... 0.9
  overall IoU  = sum(I) / sum(U)            (cumulative IoU, dominated by large objects)
  mean IoU     = mean over samples of I / U

Empty union (U == 0, prediction and ground truth both empty): the original divided by zero
there. We count such a sample as IoU 1.0 (nothing to find, nothing predicted: a correct
answer), so it passes every precision threshold and adds 1.0 to the mean IoU; it adds 0 to
cum_I and cum_U, so the overall IoU formula is unchanged (and is 1.0 if every union is
empty). Such samples are counted in `n_empty_union`. Reference splits have no empty
ground-truth masks, so published numbers are unaffected.
"""

import numpy as np

EVAL_IOU_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
# A2D Sentences: 0.5, 0.55, ..., 0.95, and mAP, the mean of those ten precisions
VIDEO_IOU_THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def compute_mask_IU(masks, target):
    """Intersection and union pixel counts (I, U) of two masks of the same [..., H, W] shape.

    Any non-zero value counts as foreground, as in the original: a bilinearly resized
    0/1 prediction is foreground wherever it is > 0, not >= 0.5.
    """
    masks = np.asarray(masks)
    target = np.asarray(target)
    if masks.ndim < 2 or target.shape[-2:] != masks.shape[-2:]:
        raise ValueError('compute_mask_IU: masks %s and target %s must share the last two '
                         '(H, W) dimensions' % (masks.shape, target.shape))
    I = np.sum(np.logical_and(masks, target))
    U = np.sum(np.logical_or(masks, target))
    return I, U


class SegEvaluator:
    """Accumulates per-sample (I, U) and reports precision@t, overall IoU and mean IoU."""

    def __init__(self, thresholds=EVAL_IOU_THRESHOLDS, report_map=False):
        self.thresholds = tuple(thresholds)
        self.report_map = report_map  # also mAP, the mean of the precisions
        self.cum_I = 0
        self.cum_U = 0
        self.n = 0
        self.n_empty_union = 0
        self.iou_sum = 0.0  # summed in sample order, as the original's mean_IoU
        self.seg_correct = np.zeros(len(self.thresholds), dtype=np.int64)

    def add(self, I, U):
        """Add one sample's counts; returns its IoU (1.0 for an empty union)."""
        I, U = int(I), int(U)
        if not 0 <= I <= U:
            raise ValueError('SegEvaluator.add: need 0 <= I <= U, got I=%d, U=%d' % (I, U))
        if U == 0:
            iou = 1.0
            self.n_empty_union += 1
        else:
            iou = I / U
        self.cum_I += I
        self.cum_U += U
        self.iou_sum += iou
        # Same float comparison as the original (I / U >= 0.6 with Python floats), so a
        # sample exactly at a threshold, e.g. 3 / 5, passes it.
        self.seg_correct += np.array([iou >= t for t in self.thresholds], dtype=np.int64)
        self.n += 1
        return iou

    def add_masks(self, pred, gt):
        """compute_mask_IU(pred, gt) then add(); returns (I, U)."""
        I, U = compute_mask_IU(pred, gt)
        self.add(I, U)
        return I, U

    def _check_nonempty(self):
        if self.n == 0:
            raise ValueError('SegEvaluator: no samples were added')

    def precision(self):
        """{threshold: fraction of samples with IoU >= threshold}."""
        self._check_nonempty()
        return {t: c / self.n for t, c in zip(self.thresholds, self.seg_correct.tolist())}

    def overall_iou(self):
        """cum_I / cum_U (1.0 when every union was empty)."""
        self._check_nonempty()
        return self.cum_I / self.cum_U if self.cum_U > 0 else 1.0

    def mean_iou(self):
        """Mean of the per-sample IoU."""
        self._check_nonempty()
        return self.iou_sum / self.n

    def format_results(self):
        """The original test()'s result text, byte for byte (ends with a newline).

        The original printed a heading ('Segmentation evaluation (without DenseCRF):')
        before it and printed it with print(), i.e. followed by one more blank line.
        """
        lines = ['precision@%s = %f\n' % (str(t), p) for t, p in self.precision().items()]
        lines.append('overall IoU = %f; mean IoU = %f\n' % (self.overall_iou(), self.mean_iou()))
        if self.report_map:
            lines.append('mAP = %f\n' % self.mean_precision())
        return ''.join(lines)

    def mean_precision(self):
        """mAP as A2D Sentences reports it for one mask per query: the mean of the
        precisions at the thresholds."""
        return float(np.mean(list(self.precision().values())))

    def to_dict(self):
        """JSON-ready summary: the metrics plus the raw counts behind them."""
        out = {'precision@%s' % str(t): p for t, p in self.precision().items()}
        out.update(overall_iou=self.overall_iou(), mean_iou=self.mean_iou(),
                   cum_I=int(self.cum_I), cum_U=int(self.cum_U), n=int(self.n),
                   n_empty_union=int(self.n_empty_union))
        if self.report_map:
            out['mAP'] = self.mean_precision()
        return out

