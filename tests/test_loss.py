"""The loss, util/pipeline/loss.py: the original's util/loss.weighed_logistic_loss with weights 1 (batch
mean of per-image sums of sigmoid cross-entropy), by hand and against np_reference.sigmoid_ce
(tf.nn.sigmoid_cross_entropy_with_logits written out in float64); the loss table, whose rows
give the total and the logged names, and its recipe for a new term (one function, one row)
followed to the letter, through a real train step. The whole cost of a train step against the
original's is in test_trainer.py.

    cd /work/main && .venv/bin/python -m pytest tests/test_loss.py -q
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from helpers import TINY, random_images
from np_reference import sigmoid, sigmoid_ce
from util.pipeline import loss
from util.pipeline.loss import sigmoid_loss
from util.pipeline.settings import TrainSettings

pytestmark = pytest.mark.eager  # tf.functions run eagerly (conftest.py)


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


# ---------------------------------------------------------------------------------------------
# the loss table

# The one function of the recipe (loss.py's docstring): a soft Dice loss on a logit map.
def dice_loss(logits, labels):
    """1 - soft Dice of sigmoid(logits) and the mask, batch mean (smoothed by 1)."""
    p = tf.sigmoid(logits)  # [B, H, W, 1]
    inter = tf.reduce_sum(p * labels, [1, 2, 3])  # [B]
    total = tf.reduce_sum(p, [1, 2, 3]) + tf.reduce_sum(labels, [1, 2, 3])  # [B]
    return tf.reduce_mean(1.0 - (2.0 * inter + 1.0) / (total + 1.0))


def dice_numpy(logits, labels):
    """dice_loss written out in float64, for the independent check."""
    p = sigmoid(np.asarray(logits, np.float64))
    inter = (p * labels).sum(axis=(1, 2, 3))
    total = p.sum(axis=(1, 2, 3)) + labels.sum(axis=(1, 2, 3))
    return np.mean(1.0 - (2.0 * inter + 1.0) / (total + 1.0))


def with_dice(weight):
    """The recipe's one row, appended to a copy of the table."""
    return loss.TERMS + (loss.OutputTerm('dice_loss', 'up', weight, dice_loss),)


@pytest.fixture(scope='module')
def forward_and_mask():
    """Forward outputs (random logits, [2, 8, 8, 1] each), a mask, and two variables."""
    rng = np.random.RandomState(0)
    out = {k: tf.constant(3 * rng.randn(2, 8, 8, 1), tf.float32)
           for k in ('up', 'up_c3', 'up_c4', 'up_c5')}
    mask = tf.constant((rng.rand(2, 8, 8, 1) > 0.5).astype(np.float32))
    variables = {'text_objseg/score/DW': tf.Variable(rng.randn(3, 3, 4, 1).astype(np.float32)),
                 'text_objseg/score/biases': tf.Variable(rng.randn(1).astype(np.float32))}
    return out, mask, variables


def test_total_and_logged_names_come_from_the_rows(forward_and_mask):
    out, mask, variables = forward_and_mask
    settings = TrainSettings(weight_decay=0.01)
    got = {k: float(v) for k, v in loss.compute(loss.TERMS, out, mask, variables,
                                                  settings).items()}
    assert loss.LOGGED_TERMS == ('cls_loss', 'cls_loss_c5', 'cls_loss_c4', 'cls_loss_c3',
                                 'cls_loss_all', 'reg_loss', 'cost')
    assert sorted(got) == sorted(loss.LOGGED_TERMS)
    # In float64, independently: per-image sums, batch means; weight decay on DW only (not on
    # biases), l2_loss = sum(w^2) / 2.
    ce = {k: sigmoid_ce(out[k].numpy().astype(np.float64), mask.numpy()).sum(axis=(1, 2, 3)).mean()
          for k in out}
    cls_all = 0.7 * ce['up'] + 0.1 * ce['up_c5'] + 0.1 * ce['up_c4'] + 0.1 * ce['up_c3']
    reg = 0.01 * 0.5 * np.sum(variables['text_objseg/score/DW'].numpy().astype(np.float64) ** 2)
    np.testing.assert_allclose(got['cls_loss'], ce['up'], rtol=1e-5)
    np.testing.assert_allclose(got['cls_loss_c3'], ce['up_c3'], rtol=1e-5)
    np.testing.assert_allclose(got['cls_loss_all'], cls_all, rtol=1e-5)
    np.testing.assert_allclose(got['reg_loss'], reg, rtol=1e-5)
    np.testing.assert_allclose(got['cost'], cls_all + reg, rtol=1e-5)


def test_a_new_term_is_one_row(forward_and_mask):
    out, mask, variables = forward_and_mask
    settings = TrainSettings()
    base = loss.compute(loss.TERMS, out, mask, variables, settings)
    zero = loss.compute(with_dice(0.0), out, mask, variables, settings)
    # Logged and computed; weight 0 leaves the total exactly as it was.
    assert loss.logged_names(with_dice(0.0)) == ('cls_loss', 'cls_loss_c5', 'cls_loss_c4',
                                                 'cls_loss_c3', 'dice_loss', 'cls_loss_all',
                                                 'reg_loss', 'cost')
    want = dice_numpy(out['up'].numpy(), mask.numpy())
    assert 0.05 < want < 0.95
    np.testing.assert_allclose(float(zero['dice_loss']), want, rtol=1e-5)
    assert float(zero['cost']) == float(base['cost'])
    # Weight w: the cost grows by w x the term. cost is O(100) here: float32 spacing 1e-5.
    w = 3.0
    heavy = loss.compute(with_dice(w), out, mask, variables, settings)
    assert float(heavy['cost']) - float(base['cost']) == pytest.approx(w * want, abs=1e-4)
    assert float(heavy['cls_loss_all']) - float(base['cls_loss_all']) == pytest.approx(
        w * want, abs=1e-4)


def test_a_new_term_trains_through_the_trainer(tmp_path):
    # The recipe through a real train step: two Trainers on the same weights and batch, the
    # module's table and the table with the Dice row; the step returns the new term and its
    # cost is the other's plus w x the term (computed in numpy from the forward).
    from CMPC_model import LSTM_model
    from util.pipeline.trainer import Trainer
    small = dict(TINY, backbone_blocks=(1, 1, 1, 1))
    tf.random.set_seed(0)
    im = random_images(2, seed=5)
    words = np.zeros((2, 20), np.int32)
    words[0, 16:] = [5, 6, 7, 8]
    words[1, 18:] = [9, 10]
    mask = np.zeros((2, 64, 64, 1), np.float32)
    mask[0, 8:40, 16:48] = 1
    mask[1, 30:60, 4:30] = 1
    base_model = LSTM_model(mode='train', **small)
    base_model.backbone.calibrate(im)
    base = Trainer(base_model, base_model.train_settings)
    prefix = str(tmp_path / 'w')
    base.save(prefix)
    w = 50.0
    dice_model = LSTM_model(mode='train', **small)
    dice = Trainer(dice_model, dice_model.train_settings, loss_terms=with_dice(w))
    dice_model.restore(prefix)
    assert 'dice_loss' in dice.logged_terms and 'dice_loss' not in base.logged_terms

    want = dice_numpy(base_model.forward(words, im)['up'], mask)
    a, b = base.train_step(words, im, mask), dice.train_step(words, im, mask)
    assert 'dice_loss' in b and 'dice_loss' not in a
    np.testing.assert_allclose(b['dice_loss'], want, rtol=1e-5)
    # Per-image sums over 4096 pixels: the cost is O(1e3), float32 spacing 1e-4.
    assert float(b['cost']) - float(a['cost']) == pytest.approx(w * want, abs=2e-3)
    for k in ('cls_loss', 'cls_loss_c3', 'reg_loss', 'learning_rate'):
        np.testing.assert_allclose(b[k], a[k], rtol=1e-6, err_msg=k)
    # The term is in the gradient: Adam's first moments (0.1 g) of the score differ.
    m = 'text_objseg/text_objseg/score/biases/Adam'
    assert not np.allclose(dice_model.store[m].numpy(), base_model.store[m].numpy())
