"""numpy primitives with TF1 semantics (float64), shared by the fidelity tests."""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def l2_normalize(x, axis=None):
    """tf.nn.l2_normalize: x / sqrt(max(sum x^2, 1e-12)); axis None = every element."""
    return x / np.sqrt(np.maximum(np.sum(x * x, axis=axis, keepdims=True), 1e-12))
