"""The optimizer's pieces, util/pipeline/optim.py: the learning-rate schedule (tf.train.polynomial_decay
as the original called it, power 0.9, end 1e-5, cycle False) worked by hand. TF1 Adam's update
is checked on a real train step in test_trainer.py.

    cd /work/main && .venv/bin/python -m pytest tests/test_optim.py -q
"""

import pytest
import tensorflow as tf

from util.pipeline.optim import polynomial_decay


@pytest.mark.parametrize('step, want', [
    (0, 0.00025),
    # half way: (0.00025 - 1e-5) * (1 - 0.5) ** 0.9 + 1e-5; 0.5 ** 0.9 = exp(-0.9 * 0.693147)
    # = exp(-0.623832) = 0.5358867, so 0.00024 * 0.5358867 + 1e-5 = 1.3861282e-4
    (400000, 1.3861282e-4),
    # a quarter: 0.75 ** 0.9 = exp(-0.9 * 0.287682) = exp(-0.258914) = 0.7718895,
    # 0.00024 * 0.7718895 + 1e-5 = 1.9525348e-4
    (200000, 1.9525348e-4),
    (800000, 1e-5),    # the end learning rate
    (1200000, 1e-5),   # cycle False: the step is clipped to lr_decay_step
])
def test_learning_rate_polynomial_decay(step, want):
    got = polynomial_decay(tf.constant(float(step)), 0.00025, 800000).numpy()
    assert got == pytest.approx(want, rel=1e-5)
