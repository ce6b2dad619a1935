"""Spatial coordinate features and the training-log accuracy of the original."""

import numpy as np


def generate_spatial_batch(N, featmap_H, featmap_W):
    """8-D spatial feature of every cell of an H x W feature map, tiled over a batch.

    Returns float32 [N, H, W, 8]: (xmin, ymin, xmax, ymax, xctr, yctr, 1/W, 1/H) of each
    cell in normalised image coordinates [-1, 1].
    """
    for name, val in (('N', N), ('featmap_H', featmap_H), ('featmap_W', featmap_W)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val <= 0:
            raise ValueError('generate_spatial_batch: %s must be a positive int, got %r'
                             % (name, val))
    # Same float64 operation order as the original's per-cell Python floats
    # (w / W * 2 - 1), so the float32 values are bit-identical.
    w = np.arange(featmap_W, dtype=np.float64)
    h = np.arange(featmap_H, dtype=np.float64)
    xmin = w / featmap_W * 2 - 1                       # [W]
    xmax = (w + 1) / featmap_W * 2 - 1                 # [W]
    xctr = (xmin + xmax) / 2                           # [W]
    ymin = h / featmap_H * 2 - 1                       # [H]
    ymax = (h + 1) / featmap_H * 2 - 1                 # [H]
    yctr = (ymin + ymax) / 2                           # [H]

    feat = np.empty((featmap_H, featmap_W, 8), dtype=np.float64)  # [H, W, 8]
    feat[..., 0] = xmin[None, :]
    feat[..., 1] = ymin[:, None]
    feat[..., 2] = xmax[None, :]
    feat[..., 3] = ymax[:, None]
    feat[..., 4] = xctr[None, :]
    feat[..., 5] = yctr[:, None]
    feat[..., 6] = 1 / featmap_W
    feat[..., 7] = 1 / featmap_H
    return np.tile(feat.astype(np.float32)[None], (N, 1, 1, 1))  # [N, H, W, 8]


def compute_accuracy(scores, labels):
    """Pixel accuracy of the sign of `scores` against `labels != 0`, as logged in training.

    Returns (accuracy_all, accuracy_pos, accuracy_neg). A score >= 0 predicts foreground.
    accuracy_pos divides by (num_pos + 1), a quirk of the original kept so that logged
    numbers compare (it avoids 0/0 on empty masks and slightly under-reports). With no
    negative pixels accuracy_neg is numpy's x / 0 (nan or inf, with a RuntimeWarning), as
    in the original.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.shape != labels.shape:
        raise ValueError('compute_accuracy: scores %s and labels %s must have the same shape'
                         % (scores.shape, labels.shape))
    is_pos = labels != 0
    is_neg = ~is_pos
    num_pos = np.sum(is_pos)
    num_neg = np.sum(is_neg)
    num_all = num_pos + num_neg

    is_correct = np.logical_xor(scores < 0, is_pos)
    accuracy_all = np.sum(is_correct) / num_all
    accuracy_pos = np.sum(is_correct[is_pos]) / (num_pos + 1)
    accuracy_neg = np.sum(is_correct[is_neg]) / num_neg
    return accuracy_all, accuracy_pos, accuracy_neg
