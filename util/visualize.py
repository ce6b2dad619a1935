"""Per-expression visualisation: the image, the ground truth and the prediction as PNGs."""

import os
import re

import numpy as np
from PIL import Image

GT_FG = (170, 0, 0)     # ground truth: red object ...
GT_BG = (0, 0, 170)     # ... on blue background
PRED_RED_BOOST = 100    # prediction: image at half brightness, +100 red on the object
MAX_NAME_BYTES = 200    # folder name cap, below the usual 255-byte file-name limit
RED, GREEN = (255, 0, 0), (0, 255, 0)  # the overlays' prediction and ground truth
OVERLAY_ALPHA = 0.5


def overlay(image, mask, colour=RED, alpha=OVERLAY_ALPHA):
    """uint8 [h, w, 3]: the image with `mask` (bool [h, w]) blended in `colour`; the overlay of
    predict mode, the demo, the explain figure and the validation images."""
    out = np.asarray(image).astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * np.array(colour, np.float32)
    return np.round(out).astype(np.uint8)


def sentence_dirname(sent):
    """File-system-safe folder name for a referring expression.

    Path separators and control characters become '_', surrounding blanks are stripped,
    and the UTF-8 name is cut to MAX_NAME_BYTES. Distinct sentences can still share a
    folder (as in the original, where a repeated sentence overwrote the earlier one).
    """
    if isinstance(sent, bytes):
        sent = sent.decode('utf-8', errors='replace')
    name = re.sub(r'[/\\\x00-\x1f\x7f]', '_', str(sent)).strip()
    name = name.encode('utf-8')[:MAX_NAME_BYTES].decode('utf-8', errors='ignore')
    return name if name not in ('', '.', '..') else '_'


def visualize_seg(im, mask, predicts, sent, vis_dir, suffix=''):
    """Write im.png, gt.png and pred{suffix}.png into vis_dir/<sentence>/; returns that folder.

    im: uint8 [H, W, 3]; mask, predicts: [H, W] 0/1 maps; as in the original both go
    through a uint8 cast, so a fractional value (e.g. 0.999 from a bilinear resize)
    is drawn as background. Use suffix='_dcrf' for the DenseCRF result: the
    original wrote both to pred.png, so the CRF one overwrote the plain one.
    """
    im = np.asarray(im)
    mask = np.asarray(mask)
    predicts = np.asarray(predicts)
    if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
        raise ValueError('visualize_seg: im must be uint8 [H, W, 3], got %s %s'
                         % (im.dtype, im.shape))
    for name, arr in (('mask', mask), ('predicts', predicts)):
        if arr.shape != im.shape[:2]:
            raise ValueError('visualize_seg: %s must be [H, W] = %s, got %s'
                             % (name, im.shape[:2], arr.shape))
        if arr.size and not (arr.min() >= 0 and arr.max() <= 1):  # else the uint8 math wraps
            raise ValueError('visualize_seg: %s values must lie in [0, 1]' % name)
    if os.sep in suffix or '/' in suffix:
        raise ValueError('visualize_seg: suffix must not contain a path separator, got %r'
                         % (suffix,))
    sent_dir = os.path.join(vis_dir, sentence_dirname(sent))
    os.makedirs(sent_dir, exist_ok=True)

    Image.fromarray(im).save(os.path.join(sent_dir, 'im.png'))

    is_gt = (mask.astype(np.uint8) != 0)[..., None]                       # [H, W, 1]
    im_gt = np.where(is_gt, np.array(GT_FG, np.uint8), np.array(GT_BG, np.uint8))  # [H, W, 3]
    Image.fromarray(im_gt).save(os.path.join(sent_dir, 'gt.png'))

    # Half-brightness values are truncated by the final cast, as in the original
    # (127.5 + 100 -> 227), so a 0/1 prediction never exceeds 227 and cannot overflow.
    im_seg = im / 2                                                            # float64
    im_seg[..., 0] += predicts.astype(np.uint8) * PRED_RED_BOOST
    Image.fromarray(im_seg.astype(np.uint8)).save(os.path.join(sent_dir, 'pred%s.png' % suffix))
    return sent_dir
