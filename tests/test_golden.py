"""Behaviour unchanged by the restructuring of issue 10: the tiny CMPC's forward outputs, one
train step's losses, weights and Adam moments equal what the code before it computed.

The golden values were written by tests/golden/write_golden.py from commit fe55de4 (the last
commit before the restructuring; its docstring has the commands) with the same weights, which
it sets from numpy generators seeded by each variable's name. On the machine that wrote them
every value below matched bit for bit; the tolerances allow another CPU's float32 rounding:
- outputs: logits O(1) at the end of a ~60-op float32 chain, as test_cmpc_model.py
  argues (1e-5 + 1e-4 |ref|); losses are per-image sums over 4096 pixels of terms whose
  derivative in the logit is below 1, so they inherit the same relative bound;
- Adam's first step moves a weight by lr * g / (|g| + 3.2e-7) (lr_t m / (sqrt(v) + eps) at
  t = 1): where |g| > 1e-4 that is lr to 0.3 %, and a relative change of g moves it by far
  less than 1e-6; where the gradient is smaller another CPU may round g to another sign, so
  there only |dw| <= 2 lr is asserted. The moments m = 0.1 g get 1e-3 relative plus 1e-4 of
  the tensor's largest.
"""

import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, 'golden'))

import write_golden as golden  # noqa: E402
from CMPC_model import LSTM_model  # noqa: E402
from util.pipeline.trainer import Trainer  # noqa: E402

REF = np.load(os.path.join(HERE, 'golden', 'pre_refactor.npz'))
RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(scope='module')
def trained():
    words, im, mask = golden.inputs()
    model = LSTM_model(mode='train', **golden.ARCH, **golden.TRAIN)
    trainer = Trainer(model, model.train_settings)
    golden.set_weights({n: v for n, v in model.store.variables.items()
                        if v.trainable or not n.startswith('text_objseg/')})
    return model, trainer.train_step(words, im, mask)


def test_forward_is_unchanged():
    words, im, _ = golden.inputs()
    model = LSTM_model(mode='eval', **golden.ARCH)
    golden.set_weights(model.store.variables)
    out = model.forward(words, im)
    assert sorted(out) == sorted(k[len('forward/'):] for k in REF.files
                                 if k.startswith('forward/'))
    for key, value in out.items():
        np.testing.assert_allclose(value, REF['forward/' + key], rtol=RTOL, atol=ATOL,
                                   err_msg=key)


def test_train_step_losses_are_unchanged(trained):
    _, out = trained
    assert sorted(out) == sorted(k[len('train/'):] for k in REF.files if k.startswith('train/'))
    for key, value in out.items():
        np.testing.assert_allclose(value, REF['train/' + key], rtol=2 * RTOL, atol=ATOL,
                                   err_msg=key)


def test_weights_and_moments_after_the_step_are_unchanged(trained):
    model, _ = trained
    lr = golden.TRAIN['start_lr']
    names = [n for n, v in model.store.variables.items()
             if v.trainable and n.startswith('text_objseg/')]
    assert sorted('weights/' + n for n in names) == sorted(k for k in REF.files
                                                           if k.startswith('weights/'))
    # Some gradients are zero in exact arithmetic (the biases of the exchange's key convs shift
    # every position's score alike, and the softmax over positions ignores them): their
    # moments hold float32 residue only, at most ~1e-12 of the largest moment, which any other
    # order of the same sums changes (e.g. the relation graph's product reassociated). The
    # floor, 1e-10 of the largest moment, lies above that residue and 30x below the smallest
    # moment that is not zero in exact arithmetic (~6e-7 of a largest 174).
    floor = 1e-10 * max(np.abs(REF['adam_m/' + n]).max() for n in names)
    for name in names:
        idx = golden.sample_indices(name, int(np.prod(model.store[name].shape)))
        w = model.store[name].numpy().reshape(-1)[idx]
        m = model.store['text_objseg/' + name + '/Adam'].numpy().reshape(-1)[idx]
        w_ref, m_ref = REF['weights/' + name], REF['adam_m/' + name]
        np.testing.assert_allclose(m, m_ref, rtol=1e-3,
                                   atol=max(1e-4 * np.abs(m_ref).max(), floor) + 1e-12,
                                   err_msg=name)
        steady = np.abs(m_ref) > 1e-5  # |g| > 1e-4
        np.testing.assert_allclose(w[steady], w_ref[steady], rtol=0, atol=1e-6, err_msg=name)
        assert np.all(np.abs(w - w_ref) <= 2 * lr + 1e-6), name
