"""The optimizer's pieces, util/pipeline/optim.py: the learning-rate schedule (tf.train.polynomial_decay
as the original called it, power 0.9, end 1e-5, cycle False) worked by hand. TF1 Adam's update
is checked on a real train step in test_trainer.py.

    cd /work/main && .venv/bin/python -m pytest tests/test_optim.py -q
"""

import pytest
import tensorflow as tf

from util.pipeline.optim import polynomial_decay

pytestmark = pytest.mark.eager  # tf.functions run eagerly (conftest.py)


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


class PlainSGD:
    """The README's "an optimizer" recipe: a class with TF1Adam's constructor and `apply`, here
    var -= lr * mult * grad, and no state of its own."""

    def __init__(self, store, names, scope, lr_mult=None):
        self.names, self.lr_mult = list(names), dict(lr_mult or {})

    def apply(self, variables, grads, lr):
        for name, var, grad in zip(self.names, variables, grads):
            var.assign_sub(lr * self.lr_mult.get(name, 1.0) * grad)


def test_a_new_optimizer_is_one_class_and_one_row(monkeypatch):
    # The recipe: a row in OPTIMIZERS, chosen by TrainSettings.optimizer. One step of the
    # Trainer must move each trained weight by exactly -lr * mult * g (Adam's first step would
    # move it by about -lr * sign(g)), with g the gradient of the step's own cost.
    import numpy as np

    from CMPC_model import LSTM_model
    from helpers import TINY, random_images
    from util.pipeline import loss, optim
    from util.pipeline.settings import TrainSettings
    from util.pipeline.trainer import Trainer
    monkeypatch.setitem(optim.OPTIMIZERS, 'sgd', PlainSGD)
    tf.random.set_seed(1)
    model = LSTM_model(mode='eval', **dict(TINY, backbone_blocks=(1, 1, 1, 1)))
    im = random_images(1, seed=2)
    model.backbone.calibrate(im)
    settings = TrainSettings(optimizer='sgd', start_lr=0.5, weight_decay=0.0)
    trainer = Trainer(model, settings)
    assert isinstance(trainer.optimizer, PlainSGD)
    words = np.zeros((1, 20), np.int32)
    words[0, 17:] = [4, 5, 6]
    mask = np.zeros((1, 64, 64, 1), np.float32)
    mask[0, 10:40, 20:50] = 1
    names = ('text_objseg/score/DW', 'text_objseg/score/biases')
    variables = [model.store[n] for n in names]
    with tf.GradientTape() as tape:
        out = model.build_graph(tf.constant(words), tf.constant(im))
        cost = loss.compute(loss.TERMS, out, tf.constant(mask),
                            {n: model.model_variables[n] for n in trainer.names}, settings)['cost']
    grads = [g.numpy() for g in tape.gradient(cost, variables)]
    before = [v.numpy() for v in variables]
    lr = float(trainer.train_step(words, im, mask)['learning_rate'])
    assert lr == pytest.approx(0.5, rel=1e-6) and trainer.step == 1
    for name, b, g, v in zip(names, before, grads, variables):
        mult = 2.0 if 'biases' in name else 1.0  # the original doubled the biases' gradients
        np.testing.assert_allclose(v.numpy() - b, -lr * mult * g, rtol=1e-4, atol=1e-6,
                                   err_msg=name)
