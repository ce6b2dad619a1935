"""One train step, util/pipeline/trainer.py (Trainer(model, settings).train_step): the losses
against np_reference.py (the numpy re-implementation of the ORIGINAL graph and its train_op,
float64, batch 1; see test_cmpc_model.py), the learning-rate schedule, the step counters and the
frozen backbone, TF1 Adam's update against float64 finite differences of the reference's cost; a small
model fits one batch; the train step's fast paths (XLA, bf16/fp16 with loss scaling) against
the faithful one; a train snapshot restores the optimizer's state and step; the optimizer comes
from optim.OPTIMIZERS.

    cd /work/main && .venv/bin/python -m pytest tests/test_trainer.py -q
    cd /work/main && .venv/bin/python -m pytest tests/test_trainer.py -q -m slow  # fast paths
"""

import numpy as np
import pytest
import tensorflow as tf

from CMPC_model import LSTM_model
from helpers import (ID_SENTENCES, TINY, build_trainer, features, model_params, random_images,
                     randomise, read_reference_variables, scene)
from np_reference import (SCOPE, WEIGHT_DECAY, cls_losses, polynomial_decay, reference_cost,
                          reference_forward, resize_bilinear_tf1, sigmoid, weight_decay_loss)
from util.pipeline.settings import TrainSettings
from util.pipeline.trainer import Trainer

# ---------------------------------------------------------------------------------------------
# one train step against the reference

START_LR, DECAY_STEPS = 0.00025, 10  # a short decay so that step 1's learning rate differs


def blob_mask(n, seed):
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:TINY['H'], :TINY['W']]
    masks = []
    for _ in range(n):
        cy, cx, r = rng.randint(16, 48), rng.randint(16, 48), rng.randint(8, 20)
        masks.append(((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.float32))
    return np.stack(masks)[..., None]


# (variable, index) pairs whose update is checked against a finite-difference gradient of the
# numpy cost; biases have their gradient doubled (learning-rate multiplier 2).
FD_ENTRIES = [
    ('score/biases', (0,)),
    ('score/DW', (1, 1, 3, 0)),
    ('score/DW', (0, 2, 7, 0)),
    ('fusion_c3/biases', None),  # all 16 entries
    ('c5_lateral/DW', (0, 0, 5, 2)),
    ('rnn/conv_lstm_cell/W_ci', (3, 4, 2)),
    ('Variable', (3, 0)),  # <unk>, read twice by the sentence
    ('Variable', (0, 0)),  # the pad id's embedding: never read, gradient 0
]


@pytest.fixture(scope='module')
def trained():
    """A train-mode model, two train steps; everything the tests below check is recorded."""
    # Seeded: the random weights were once whatever the tests before had left of TensorFlow's
    # random state, so the finite-difference test checked another network in every run.
    tf.random.set_seed(0)
    m = LSTM_model(mode='train', start_lr=START_LR, lr_decay_step=DECAY_STEPS, **TINY)
    trainer = Trainer(m, m.train_settings)
    randomise(m, 1)
    r = {'model': m, 'trainer': trainer}
    r['words1'] = ID_SENTENCES['unknown'][None]
    r['im1'] = random_images(1, seed=21)
    r['mask1'] = blob_mask(1, seed=21)
    r['before'] = {n: v.numpy().copy() for n, v in m.store.variables.items()}
    r['params'] = model_params(m)
    r['feats'] = features(m, r['im1'][0])
    r['out1'] = m.forward(r['words1'], r['im1'])
    r['losses1'] = trainer.train_step(r['words1'], r['im1'], r['mask1'])
    r['after'] = {n: v.numpy().copy() for n, v in m.store.variables.items()}
    # Second step on a batch of two, at the updated weights.
    r['words2'] = np.stack([ID_SENTENCES['short'], ID_SENTENCES['long']])
    r['im2'] = random_images(2, seed=22)
    r['mask2'] = blob_mask(2, seed=22)
    r['out2'] = m.forward(r['words2'], r['im2'])
    r['losses2'] = trainer.train_step(r['words2'], r['im2'], r['mask2'])
    r['after2'] = {n: v.numpy().copy() for n, v in m.store.variables.items()}
    return r


def trainable_names(m):
    return [n for n in m.model_variables if n.startswith(SCOPE)]


@pytest.mark.parametrize('step', [1, 2])
def test_train_step_losses_before_update(trained, step):
    m = trained['model']
    out, mask, got = trained['out%d' % step], trained['mask%d' % step], trained['losses%d' % step]
    before = trained['before'] if step == 1 else trained['after']
    want = cls_losses(out, mask)
    want['reg_loss'] = weight_decay_loss({n: before[n] for n in trainable_names(m)})
    want['cost'] = want['cls_loss_all'] + want['reg_loss']
    for k, v in want.items():
        # float32 sums over 4096 pixels of O(1) terms: relative 1e-5
        np.testing.assert_allclose(got[k], v, rtol=1e-5, err_msg=k)
    assert want['reg_loss'] > 0 and want['cls_loss'] > 0
    np.testing.assert_allclose(got['learning_rate'],
                               polynomial_decay(step - 1, START_LR, DECAY_STEPS), rtol=1e-6)
    # `pred` is the score map before the update; `target` is train_op's
    # resize_bilinear(target_fine, [vf_h, vf_w]) (used for the logged accuracies).
    np.testing.assert_allclose(got['pred'], out['pred'], rtol=1e-5, atol=1e-6)
    target = np.stack([resize_bilinear_tf1(mk.astype(np.float64), 8, 8) for mk in mask])
    np.testing.assert_allclose(got['target'], target, rtol=1e-6, atol=1e-7)


def test_train_step_loss_matches_original_cost(trained):
    # The cost of step 1 (batch 1) against the reference network's cost, independently of the
    # port's forward.
    want = reference_cost(trained['params'], trained['words1'][0], trained['feats'],
                          trained['mask1'][0], TINY)
    np.testing.assert_allclose(trained['losses1']['cost'], want, rtol=1e-5)


def test_learning_rate_schedule(trained):
    assert trained['losses1']['learning_rate'] == pytest.approx(START_LR, rel=1e-6)
    lr1 = (START_LR - 1e-5) * 0.9 ** 0.9 + 1e-5  # step 1 of 10
    assert trained['losses2']['learning_rate'] == pytest.approx(lr1, rel=1e-6)
    assert lr1 < START_LR * 0.95


def test_step_counters_and_frozen_variables(trained):
    b, a, a2 = trained['before'], trained['after'], trained['after2']
    assert b[SCOPE + 'Variable_1'] == 0 and a[SCOPE + 'Variable_1'] == 1
    assert a2[SCOPE + 'Variable_1'] == 2
    np.testing.assert_allclose(b[SCOPE + 'beta1_power'], 0.9, rtol=1e-7)
    np.testing.assert_allclose(a[SCOPE + 'beta1_power'], 0.81, rtol=1e-6)
    np.testing.assert_allclose(a[SCOPE + 'beta2_power'], 0.999 ** 2, rtol=1e-6)
    np.testing.assert_allclose(a2[SCOPE + 'beta1_power'], 0.729, rtol=1e-6)
    m = trained['model']
    frozen = [n for n in m.model_variables if not n.startswith(SCOPE)]
    assert len(frozen) > 500
    for n in frozen:  # the backbone is not trained without -conv5
        np.testing.assert_array_equal(a2[n], b[n], err_msg=n)
    changed = [n for n in trainable_names(m) if not np.array_equal(a[n], b[n])]
    assert len(changed) > 0.9 * len(trainable_names(m))


def test_train_snapshot_restores_optimizer_state_and_step(trained, tmp_path):
    # After the two steps: Trainer.save writes the weights, the optimizer's state under the
    # original's names and the JSON with both settings and the step; a new Trainer-wrapped model
    # restores all of it.
    import json
    trainer, m = trained['trainer'], trained['model']
    prefix = str(tmp_path / 'unc_iter_2.tfmodel')
    trainer.save(prefix, {'dataset': 'unc'})
    meta = json.load(open(prefix + '.json'))
    assert meta['step'] == 2 and meta['dataset'] == 'unc'
    assert meta['training'] == dict(TrainSettings(start_lr=START_LR,
                                                  lr_decay_step=DECAY_STEPS).to_json())
    # The tiny eval graph's variables and, by name, what the original's train graph adds.
    names = set(tf.train.load_checkpoint(prefix).get_variable_to_shape_map())
    train_only = (set(read_reference_variables('vars_train_full.txt'))
                  - set(read_reference_variables('vars_eval_full.txt')))
    assert names == set(read_reference_variables('vars_eval_tiny.txt')) | train_only
    fresh = build_trainer(prefix, start_lr=START_LR, lr_decay_step=DECAY_STEPS)
    assert fresh.step == 2
    for name in (SCOPE + 'beta1_power', SCOPE + SCOPE + 'score/DW/Adam',
                 SCOPE + SCOPE + 'fusion_c3/biases/Adam_1', SCOPE + 'score/DW'):
        np.testing.assert_array_equal(fresh.model.store[name].numpy(),
                                      m.store[name].numpy(), err_msg=name)


def test_optimizer_comes_from_the_table(trained):
    m = trained['model']
    with pytest.raises(ValueError, match='Unknown optimizer type sgd'):
        Trainer(m, TrainSettings(optimizer='sgd'))
    from util.pipeline.optim import OPTIMIZERS
    assert isinstance(trained['trainer'].optimizer, OPTIMIZERS['adam'])


# The tolerance of Adam's moments against finite differences, worked out below.
U32, U64 = 2.0 ** -24, 2.0 ** -53  # unit roundoffs of float32 and float64
FD_STEP = 1e-5
K_FLOAT32 = 1000  # float32 roundings per gradient term, with the layer norms' amplification
K_FLOAT64 = 100  # float64 roundings of the reference cost, relative to the cost
LEVEL_MAPS = ('up', 'up_c5', 'up_c4', 'up_c3')
LEVEL_WEIGHTS = np.array([0.7, 0.1, 0.1, 0.1])[:, None, None, None]  # cls_loss_all's


def reference_cost_and_logits(P, words, feats, mask):
    """train_op's cost at batch size 1 (as np_reference.reference_cost) and the four score maps
    it is made of, [4, H, W, 1] in LEVEL_MAPS' order."""
    out = reference_forward(P, words, feats, TINY)
    maps = {k: out[k][None] for k in LEVEL_MAPS}
    cost = cls_losses(maps, mask[None])['cls_loss_all'] + weight_decay_loss(P)
    return cost, np.stack([out[k] for k in LEVEL_MAPS])


def test_adam_update_against_finite_differences(trained):
    # TF1 AdamOptimizer at step 1 (beta1_power 0.9, beta2_power 0.999):
    #   lr_t = lr sqrt(1 - 0.999) / (1 - 0.9),  m = 0.1 g,  v = 0.001 g^2,
    #   var_new = var - lr_t m / (sqrt(v) + 1e-8)
    #           = var - lr sign(g) |g| / (|g| + 1e-8 / sqrt(0.001))
    # (lr_t * 0.1 / sqrt(0.001) = lr) with g the gradient of the cost, doubled for biases. For
    # |g| >> 3.2e-7 the update is -lr sign(g) whatever |g| is: sign and size are checked on the
    # variable, the gradient's value (and the bias multiplier 2) through the slots m and v.
    #
    # How far TF's float32 g may lie from the float64 central difference g_fd:
    #
    # 1. float32. The cost is a sum over the 4 score maps x 64 x 64 pixels, so
    #        g = sum_p t_p + wd theta,  t_p = w_l (sigmoid(x_p) - y_p) dx_p/dtheta,
    #    and the terms cancel: a fusion bias raises some logits and lowers others, |g| can be
    #    a small fraction of S = sum_p |t_p| + |wd theta|. TF's float32 back-propagation rounds
    #    each term along a chain of ~60 ops forward and as many back (u = 2^-24 each, amplified
    #    up to ~10x where a layer norm divides by a standard deviation; see test_cmpc_model.py)
    #    and sums the terms in an order that depends on the CPU (SIMD width, kernels, threads).
    #    So |g - g_exact| <= K u S with K = 1000 ~ 120 roundings x 10; the largest error
    #    measured on 9 random networks was 10 u S (8 u S on this one). A fixed fraction of |g|
    #    (once 1e-3) does not follow from this: where S >> |g|, rounding alone can exceed it.
    #    The t_p come from the two reference evaluations that give g_fd (dx_p/dtheta by central
    #    differences of the logits).
    # 2. float64 central difference of step h = 1e-5. Rounding of the cost: ~100 u64 |cost| / h
    #    (pairwise sums over 4096 pixels of ~100-op chains; 4e-6 here). Kinks: the cost is only
    #    piecewise smooth, every relu (fusion, graph reasoning, exchange gates) has one, and a
    #    kink at d < h past theta puts the central difference J (h - d) / (2h) away from the
    #    derivative on theta's side, which TF takes (J: the jump of the slope there), in any
    #    precision. The one-sided differences D+ = (f(theta + h) - f(theta)) / h and
    #    D- = (f(theta) - f(theta - h)) / h differ by J (h - d) / h there, twice that error (and
    #    cover TF taking the other side, which float32 can do only for d ~ 0); where smooth,
    #    |D+ - D-| = h |f''| (4e-7 .. 4e-5 of |g| here), above the truncation h^2 |f'''| / 6. So
    #    |D+ - D-| bounds kinks and truncation together.
    #    This is what failed once (fusion_c3/biases[4] 0.55 % off): the weights were not seeded,
    #    and with random weights a kink whose jump exceeds 1e-3 of g lies within h of one of
    #    these 23 entries about once in 15 to 30 networks, on any CPU.
    # So |g - g_fd| <= tol = K u S + |D+ - D-| + 100 u64 |f| / h (times 2 for a bias), and
    # m = 0.1 g, v = 0.001 g^2 lie within that plus their own float32 rounding.
    #
    # A wrong Adam moves m or v by far more than tol where tol is under 1 % of |g| ("sharp"):
    # a missing bias multiplier by 50 %, beta1 = 0.95 instead of 0.9 by 50 %, beta2 = 0.99 by
    # 10x; a wrong step counter changes lr_t (beta powers) or lr, and so the update, checked to
    # 1e-3.
    r = trained
    params, words, feats, mask = r['params'], r['words1'][0], r['feats'], r['mask1'][0]
    f0, x0 = reference_cost_and_logits(params, words, feats, mask)
    dcost_dx = LEVEL_WEIGHTS * (sigmoid(x0) - mask[None])  # [4, H, W, 1]

    lr_t = START_LR * np.sqrt(1 - 0.999) / (1 - 0.9)
    checked_big, sharp, sharp_biases = 0, 0, 0
    for short, index in FD_ENTRIES:
        name = SCOPE + short
        indices = [index] if index is not None else list(np.ndindex(params[short].shape))
        mult = 2.0 if short.endswith('/biases') else 1.0
        for idx in indices:
            P = dict(params)
            P[short] = params[short].copy()
            theta = P[short][idx]
            P[short][idx] = theta + FD_STEP
            f_plus, x_plus = reference_cost_and_logits(P, words, feats, mask)
            P[short][idx] = theta - FD_STEP
            f_minus, x_minus = reference_cost_and_logits(P, words, feats, mask)
            g = mult * (f_plus - f_minus) / (2 * FD_STEP)
            terms = dcost_dx * (x_plus - x_minus) / (2 * FD_STEP)  # t_p
            decay = WEIGHT_DECAY * theta if short.find('DW') > 0 else 0.0
            S = np.abs(terms).sum() + abs(decay)
            one_sided_gap = abs(f_plus - 2 * f0 + f_minus) / FD_STEP  # |D+ - D-|
            tol = mult * (K_FLOAT32 * U32 * S + one_sided_gap
                          + K_FLOAT64 * U64 * abs(f0) / FD_STEP)
            where = '%s%s: g_fd %.7g, S %.4g, |D+ - D-| %.2g, tol %.2g' % (
                name, idx, g, mult * S, mult * one_sided_gap, tol)

            m_slot = r['after'][SCOPE + name + '/Adam'][idx]
            v_slot = r['after'][SCOPE + name + '/Adam_1'][idx]
            assert abs(m_slot - 0.1 * g) <= 0.1 * tol + 2 * U32 * abs(m_slot), (where, m_slot)
            # v = 0.001 g^2: |g'^2 - g^2| <= tol (2 |g| + tol) for |g' - g| <= tol.
            assert abs(v_slot - 0.001 * g * g) <= (0.001 * tol * (2 * abs(g) + tol)
                                                   + 3 * U32 * v_slot), (where, v_slot)
            if tol < 1e-2 * abs(g):
                sharp += 1
                sharp_biases += mult == 2.0

            delta = float(r['after'][name][idx]) - float(r['before'][name][idx])
            want = -lr_t * (0.1 * g) / (np.sqrt(0.001 * g * g) + 1e-8)
            if abs(g) > 1e-4:
                checked_big += 1
                assert np.sign(delta) == -np.sign(g), (where, delta)
                # float32 var of size ~0.3 has a spacing of ~3e-8 against an update of ~8e-5
                np.testing.assert_allclose(delta, want, rtol=1e-3, atol=3e-8, err_msg=where)
            elif g == 0:
                assert delta == 0 and m_slot == 0, where
    assert checked_big >= 8
    # Enough entries are sharp to tell a wrong multiplier or beta from rounding.
    assert sharp >= 12 and sharp_biases >= 8, (sharp, sharp_biases)
    # The pad id's embedding row is never read: no gradient, no update.
    pad = SCOPE + 'Variable'
    np.testing.assert_array_equal(r['after'][pad][0], r['before'][pad][0])
    assert not np.array_equal(r['after'][pad][3], r['before'][pad][3])


# ---------------------------------------------------------------------------------------------
# training fits one batch

@pytest.mark.slow  # half a minute: in CI (.ci/run)
def test_overfit_one_batch():
    tf.random.set_seed(0)
    rng = np.random.RandomState(0)
    model = LSTM_model(mode='train', start_lr=0.003, **dict(TINY, backbone_blocks=(1, 1, 1, 1)))
    trainer = Trainer(model, model.train_settings)
    ims, masks = zip(*[scene(rng, 64, 64) for _ in range(2)])
    im = np.stack(ims).astype(np.float32)[..., ::-1] - np.array([104.0, 116.7, 122.7])
    model.backbone.calibrate(im)
    mask = np.stack(masks).astype(np.float32)[..., None]
    words = np.zeros((2, 20), np.int32)
    words[0, 16:] = [5, 6, 7, 8]
    words[1, 18:] = [9, 10]
    losses = [float(trainer.train_step(words, im, mask)['cls_loss']) for _ in range(80)]
    # At initialisation every pixel costs about log 2 (4096 px: ~2800 per image); a model that
    # fits these two masks costs a small fraction of that.
    assert losses[0] > 2000
    assert np.mean(losses[-5:]) < 0.25 * losses[0], losses[::10]
    out = model.forward(words, im)
    iou = [((out['up'][i] > 0) & (mask[i] > 0)).sum() / ((out['up'][i] > 0) | (mask[i] > 0)).sum()
           for i in range(2)]
    assert min(iou) > 0.5, iou


# ---------------------------------------------------------------------------------------------
# fast paths of the train step, against the faithful one

# Compiling a train step with XLA on a CPU takes minutes: these run with the slow tests.
@pytest.mark.slow
@pytest.mark.parametrize('kw, rtol', [(dict(xla=True), 1e-4), (dict(precision='bf16'), 2e-2),
                                      (dict(precision='fp16'), 2e-2)])
def test_train_step_fast_paths(fast_path_setup, kw, rtol):
    prefix, words, im, mask, _ = fast_path_setup
    base = build_trainer(prefix)
    fast = build_trainer(prefix, **kw)
    for _ in range(2):
        b, f = base.train_step(words, im, mask), fast.train_step(words, im, mask)
        for key in ('cls_loss', 'cost', 'learning_rate'):
            assert f[key] == pytest.approx(float(b[key]), rel=rtol), key
    # fp16's loss scale starts low enough that no step was skipped.
    assert fast.step == base.step == 2
    name = 'text_objseg/score/biases'
    np.testing.assert_allclose(fast.model.store[name].numpy(), base.model.store[name].numpy(),
                               atol=base.settings.start_lr * 0.5)
