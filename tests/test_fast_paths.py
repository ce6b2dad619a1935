"""The fast paths (XLA, folded batch norm, bf16/fp16, batching) against the faithful path:
fp32, no XLA, batch 1, on one small model with random (calibrated) weights."""

import numpy as np
import pytest
import tensorflow as tf

from CMPC_model import LSTM_model
from fixtures import TINY


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tf.random.set_seed(3)
    model = LSTM_model(mode='eval', **TINY)
    rng = np.random.RandomState(0)
    # Unit-scale backbone features, as with real weights (random BN statistics explode).
    model.backbone.calibrate((rng.randn(4, 64, 64, 3) * 50).astype(np.float32))
    prefix = str(tmp_path_factory.mktemp('fast') / 'm')
    model.save(prefix)
    words = np.zeros((3, 20), np.int32)
    words[0, 15:] = [3, 4, 5, 6, 7]
    words[1, 5:] = rng.randint(1, 50, 15)
    words[2, 18:] = [9, 10]
    im = (rng.randn(3, 64, 64, 3) * 50).astype(np.float32)
    mask = (rng.rand(3, 64, 64, 1) > 0.5).astype(np.float32)
    # The faithful reference: batch 1, one sample at a time.
    ref = [model.forward(words[i:i + 1], im[i:i + 1]) for i in range(3)]
    ref = {k: np.concatenate([r[k] for r in ref]) for k in ref[0]}
    return prefix, words, im, mask, ref


def build(prefix, **kw):
    model = LSTM_model(**dict(TINY, **kw))
    model.restore(prefix)
    return model


@pytest.mark.parametrize('kw, atol', [
    # Same float32 arithmetic in another order: differences are rounding (measured ~4e-5 on
    # logits of magnitude ~10).
    (dict(xla=True), 5e-4),
    # w * s then conv instead of conv then * s: rounding again (measured ~9e-5).
    (dict(fold_bn=True), 5e-4),
])
def test_float32_fast_paths_match(setup, kw, atol):
    prefix, words, im, _, ref = setup
    out = build(prefix, mode='eval', **kw).forward(words, im)
    for key in ('up', 'up_c3', 'up_c4', 'up_c5', 'words_parse'):
        np.testing.assert_allclose(out[key], ref[key], atol=atol, rtol=1e-4, err_msg=key)


@pytest.mark.parametrize('precision, max_sigm_diff, min_agree', [
    # bf16 keeps 8 bits of mantissa: probabilities move by a few hundredths (measured 0.04)
    # and about 1.5 % of pixels flip at the 0.5 threshold on this random model.
    ('bf16', 0.1, 0.95),
    ('fp16', 0.05, 0.98),
])
def test_mixed_precision_forward_is_close(setup, precision, max_sigm_diff, min_agree):
    prefix, words, im, _, ref = setup
    out = build(prefix, mode='eval', precision=precision).forward(words, im)
    assert out['up'].dtype == np.float32
    assert np.abs(out['sigm'] - ref['sigm']).max() < max_sigm_diff
    agree = ((out['up'] >= 1e-9) == (ref['up'] >= 1e-9)).mean()
    assert agree >= min_agree
    np.testing.assert_array_equal(out['words_parse'] == 0, ref['words_parse'] == 0)


def test_batched_forward_equals_batch_one(setup):
    prefix, words, im, _, ref = setup
    out = build(prefix, mode='eval').forward(words, im)
    for key in ('up', 'words_parse'):
        np.testing.assert_allclose(out[key], ref[key], atol=1e-5, rtol=1e-5)


# Compiling a train step with XLA on a CPU takes minutes: these run with the slow tests.
@pytest.mark.slow
@pytest.mark.parametrize('kw, rtol', [(dict(xla=True), 1e-4), (dict(precision='bf16'), 2e-2),
                                      (dict(precision='fp16'), 2e-2)])
def test_train_step_fast_paths(setup, kw, rtol):
    prefix, words, im, mask, _ = setup
    base = build(prefix, mode='train')
    fast = build(prefix, mode='train', **kw)
    for _ in range(2):
        b, f = base.train_step(words, im, mask), fast.train_step(words, im, mask)
        for key in ('cls_loss', 'cost', 'learning_rate'):
            assert f[key] == pytest.approx(float(b[key]), rel=rtol), key
    # fp16's loss scale starts low enough that no step was skipped.
    assert fast.step == base.step == 2
    name = 'text_objseg/score/biases'
    np.testing.assert_allclose(fast.store[name].numpy(), base.store[name].numpy(),
                               atol=base.start_lr * 0.5)


def test_fold_bn_refuses_training():
    with pytest.raises(ValueError, match='fold_bn'):
        LSTM_model(mode='train', fold_bn=True, **TINY)
