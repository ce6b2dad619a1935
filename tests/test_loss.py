"""The loss, util/pipeline/loss.py: the original's util/loss.weighed_logistic_loss with weights 1 (batch
mean of per-image sums of sigmoid cross-entropy), by hand and against np_reference.sigmoid_ce
(tf.nn.sigmoid_cross_entropy_with_logits written out in float64). The whole cost of a train
step against the original's is in test_trainer.py.

    cd /work/main && .venv/bin/python -m pytest tests/test_loss.py -q
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from np_reference import sigmoid_ce
from util.pipeline.loss import sigmoid_loss


def test_sigmoid_loss_hand_worked():
    # Logits 0: each pixel costs log 2 whatever its label; 3x3 pixels per image, so every image
    # sums to 9 log 2 and the batch mean is 9 log 2 = 6.238325.
    labels = np.zeros((2, 3, 3, 1), np.float32)
    labels[0, 1, 1] = 1
    got = sigmoid_loss(tf.zeros([2, 3, 3, 1]), tf.constant(labels)).numpy()
    assert got == pytest.approx(9 * math.log(2), rel=1e-6)
    # Image 0: logits +2 on a positive pixel costs log(1 + e^-2) = 0.126928; image 1: logits +2
    # on a negative pixel costs log(1 + e^2) = 2.126928; mean of the per-image sums = 1.126928.
    logits = np.zeros((2, 1, 1, 1), np.float32) + 2
    labels = np.array([1, 0], np.float32).reshape(2, 1, 1, 1)
    got = sigmoid_loss(tf.constant(logits), tf.constant(labels)).numpy()
    assert got == pytest.approx(1.126928, abs=1e-6)


def test_sigmoid_loss_against_numpy():
    rng = np.random.RandomState(0)
    logits = 5 * rng.randn(3, 8, 6, 1)
    labels = (rng.rand(3, 8, 6, 1) > 0.6).astype(np.float64)
    want = sigmoid_ce(logits, labels).sum(axis=(1, 2, 3)).mean()  # per-image sum, batch mean
    got = sigmoid_loss(tf.constant(logits, tf.float32), tf.constant(labels, tf.float32)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)
