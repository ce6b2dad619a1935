"""The network, CMPC_model.py: its blocks against np_reference.py (the numpy re-implementation of
the ORIGINAL graph, github:spyflying/CMPC-Refseg, written by reading the original code, not the
port; float64, per sample), its variable lists against the original graph's
(../shared/reference/vars_*.txt), the whole forward against the reference, batches, save and
restore, and the forward's fast paths (XLA, the folded lateral conv, bf16/fp16, batching) against
the faithful path (fp32, no XLA, batch 1).

The reference runs at batch size 1, as the original did at test time, in float64, on the port's
weights read by their TF1 names and on the port's backbone features (the backbone is tested in
test_deeplab_resnet.py; the train step in test_trainer.py).

    cd /work/main && .venv/bin/python -m pytest tests/test_cmpc_model.py -q
"""

import gc

import numpy as np
import pytest
import tensorflow as tf

from CMPC_model import (Conv, ConvLSTMCell, LayerNorm, LSTM_model, MutanFusion, RelationAwareReasoning,
                        WordEncoder, inverse_norm, masked_softmax, resize_bilinear)
from helpers import (ID_SENTENCES, NUM_STEPS, TINY, assert_same_variables, build_restored,
                     features, model_params, random_images, randomise, read_reference_variables)
from np_reference import (SCOPE, basic_lstm, conv3x3, conv_lstm, l2_normalize as l2n, layer_norm_one,
                          mutan_fusion, reference_forward, resize_bilinear_tf1, softmax, spa_graph,
                          unscoped)
from util.pipeline.checkpoint import VariableStore
from util.pipeline.trainer import Trainer

# Blocks of a few float32 ops against float64: 1e-5 is ~100x the float32 rounding we see.
BLOCK_RTOL, BLOCK_ATOL = 1e-5, 1e-5

# Tolerance of the port (float32) against the reference (float64). Each logit is the end of a
# ~60-op float32 chain (LSTM x20, MUTAN, a 64x64 graph softmax, two layer norms per graph, two
# exchange rounds, a 3-step ConvLSTM with five layer norms per step); layer norms divide by a
# standard deviation and amplify float32 rounding (~6e-8 relative per op) by up to ~10-100x.
# Logits are O(1) (|logit| < 1 here); we measured max |diff| <= 2.5e-7 on every output. The
# allowed 1e-5 + 1e-4 |ref| (<= 9e-5 here) leaves a ~400x margin for other CPUs/BLAS,
# while the mistakes we tried on a copy of the port move the logits by far more: a wrong LSTM gate
# order, layer-norm axes, a missing peephole or ConvLSTM state norm, half-pixel resizing by
# 4e-1 .. 6e-1; a missing forget bias by 4e-2; the graph's node softmax over the wrong axis or a
# wrong input to the second exchange round by 7e-4.
RTOL, ATOL = 1e-4, 1e-5

OUTPUTS = ('pred', 'up', 'sigm', 'up_c3', 'up_c4', 'up_c5')


# ---------------------------------------------------------------------------------------------
# random weights

def randomise_store(store, seed, scale=0.5):
    """Random values for every variable of a block (gammas around 1, variances positive)."""
    rng = np.random.RandomState(seed)
    for name, var in store.variables.items():
        shape = var.shape.as_list()
        if name.endswith('/gamma'):
            value = 1 + 0.3 * rng.randn(*shape)
        elif name.endswith('/moving_variance'):
            value = rng.uniform(0.2, 2.0, shape)
        else:
            value = scale * rng.randn(*shape)
        var.assign(value.astype(np.float32))
    return {n: v.numpy().astype(np.float64) for n, v in store.variables.items()}


# ---------------------------------------------------------------------------------------------
# small functions

def test_layer_norm_against_numpy():
    store = VariableStore()
    ln = LayerNorm(store, 'ln_test', 5)
    assert sorted(store.variables) == [SCOPE + 'ln_test/beta', SCOPE + 'ln_test/gamma']
    p = randomise_store(store, 0)
    x = np.random.RandomState(1).randn(3, 4, 6, 5) * np.array([1, 10, 0.1])[:, None, None, None]
    got = ln(tf.constant(x, tf.float32)).numpy()
    for b in range(3):  # moments over every axis of one sample, gamma/beta over channels
        want = layer_norm_one(x[b], p[SCOPE + 'ln_test/gamma'], p[SCOPE + 'ln_test/beta'])
        np.testing.assert_allclose(got[b], want, rtol=1e-4, atol=1e-5)


def test_layer_norm_epsilon_is_tiny():
    # A constant input has variance 0: with epsilon 1e-12 (contrib's), (x - mean) = 0 gives beta
    # exactly, and a variance of 1e-8 is still normalised to unit scale (1e-3 would flatten it).
    store = VariableStore()
    ln = LayerNorm(store, 'ln_eps', 2)
    np.testing.assert_array_equal(ln(tf.fill([1, 3, 2], 7.0)).numpy(), 0)
    x = 1e-4 * np.array([[[1, -1], [-1, 1]]], np.float32)  # variance 1e-8
    np.testing.assert_allclose(ln(tf.constant(x)).numpy(), x / 1e-4, rtol=1e-3)


def test_resize_bilinear_hand_worked():
    # TF1 resize_bilinear, align_corners False, no half-pixel centres: src = dst * in/out.
    # 2 -> 4: src = 0, .5, 1, 1.5; i0 = 0, 0, 1, 1; i1 = min(i0 + 1, 1) = 1, 1, 1, 1;
    # so rows/cols are: in0, (in0 + in1)/2, in1, in1 (the last one clamps instead of
    # extrapolating). [[0, 1], [2, 3]] gives rows [0, .5, 1, 1] and [2, 2.5, 3, 3], mixed.
    x = np.array([[0, 1], [2, 3]], np.float32).reshape(1, 2, 2, 1)
    want = np.array([[0, .5, 1, 1],
                     [1, 1.5, 2, 2],
                     [2, 2.5, 3, 3],
                     [2, 2.5, 3, 3]], np.float32)
    got = resize_bilinear(tf.constant(x), [4, 4]).numpy()
    np.testing.assert_allclose(got[0, :, :, 0], want, atol=1e-7)
    # 3 -> 7 along x: src = 3x/7; x=3: src 9/7, 1 + 2 * 2/7 = 11/7; x=4: 1 + 2 * 5/7 = 17/7;
    # x=5, 6: src 15/7, 18/7 > 2, clamped to the last value 3.
    row = np.array([0, 1, 3], np.float32).reshape(1, 1, 3, 1)
    got = resize_bilinear(tf.constant(row), [1, 7]).numpy()[0, 0, :, 0]
    np.testing.assert_allclose(got, [0, 3 / 7, 6 / 7, 11 / 7, 17 / 7, 3, 3], rtol=1e-6)


def test_resize_bilinear_8_to_64_against_numpy():
    x = np.random.RandomState(0).randn(2, 8, 8, 3)
    got = resize_bilinear(tf.constant(x, tf.float32), [64, 64]).numpy()
    want = np.stack([resize_bilinear_tf1(sample, 64, 64) for sample in x])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The last 8 output rows all equal the last input row (clamped), unlike half-pixel resizing.
    # Output row 56 samples input row 7 exactly (src = 56/8 = 7), and rows 57..63 are clamped
    # to it (i1 = min(8, 7)), unlike half-pixel resizing.
    np.testing.assert_allclose(got[:, 56, ::8], x[:, 7], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[:, 63], got[:, 56], rtol=1e-5, atol=1e-6)


def test_masked_softmax_hand_worked():
    # [1, 2, 3, 4] with entries 1 and 3 masked: e^1 and e^3 over their sum,
    # 1 / (1 + e^2) = 0.11920292, e^2 / (1 + e^2) = 0.88079708; masked entries exactly 0.
    x = tf.constant([[1., 2., 3., 4.]])
    mask = tf.constant([[True, False, True, False]])
    got = masked_softmax(x, mask, axis=1).numpy()
    np.testing.assert_allclose(got, [[0.11920292, 0, 0.88079708, 0]], rtol=1e-6)
    assert got[0, 1] == 0 and got[0, 3] == 0
    # Along axis 2 of [B, HW, T] with a [B, 1, T] mask, as relation-aware reasoning uses it;
    # large logits at masked places must not leak.
    x = np.random.RandomState(0).randn(2, 3, 5) * 5
    x[0, :, :2] = 80.0
    mask = np.array([[False, False, True, True, True], [True] * 5])[:, None, :]
    got = masked_softmax(tf.constant(x, tf.float32), tf.constant(mask), axis=2).numpy()
    np.testing.assert_array_equal(got[0, :, :2], 0)
    np.testing.assert_allclose(got[0, :, 2:], softmax(x[0, :, 2:], 1), rtol=1e-5)
    np.testing.assert_allclose(got[1], softmax(x[1], 1), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# word encoder: TF1 BasicLSTMCell under the original's tf.cond

def test_word_encoder_against_numpy_lstm():
    store = VariableStore()
    enc = WordEncoder(store, vocab_size=10, glove_dim=6, rnn_size=5)
    cell = SCOPE + 'RNN/multi_rnn_cell/cell_0/basic_lstm_cell/'
    assert store.variables[cell + 'kernel'].shape == (11, 20)
    p = randomise_store(store, 3)
    words = np.array([[0, 0, 0, 4, 5, 0, 6],   # left pads and a pad inside
                      [1, 2, 3, 4, 5, 6, 7],   # no pad
                      [0, 0, 0, 0, 0, 0, 9]], np.int32)
    got = enc(tf.constant(words)).numpy()
    assert got.shape == (3, 7, 5)
    for b in range(3):
        want = basic_lstm(p[SCOPE + 'Variable'], p[cell + 'kernel'], p[cell + 'bias'], words[b])
        np.testing.assert_allclose(got[b], want, rtol=BLOCK_RTOL, atol=BLOCK_ATOL)
    np.testing.assert_array_equal(got[0, [0, 1, 2, 5]], 0)  # pad steps output zeros
    # The pad inside leaves the state untouched: sample 0 ends as the sequence 4, 5, 6 alone.
    alone = enc(tf.constant([[0, 0, 0, 0, 4, 5, 6]], tf.int32)).numpy()
    np.testing.assert_allclose(got[0, 6], alone[0, 6], rtol=1e-6, atol=1e-7)
    # inference_only (an eval-mode model's): a step where every row is a pad is skipped by a
    # conditional (as the original skipped its pad steps), traced as well as eager; the outputs
    # are numpy's LSTM's, zero at the pads.
    late = np.array([[0, 0, 0, 0, 4, 5, 6],
                     [0, 0, 0, 0, 0, 7, 8]], np.int32)
    enc.inference_only = True
    traced = tf.function(enc).get_concrete_function(tf.TensorSpec([None, 7], tf.int32))
    assert sum(op.type in ('If', 'StatelessIf') for op in traced.graph.get_operations()) == 7
    for got in (traced(tf.constant(late)).numpy(), enc(tf.constant(late)).numpy()):
        for b in range(2):
            want = basic_lstm(p[SCOPE + 'Variable'], p[cell + 'kernel'], p[cell + 'bias'],
                              late[b])
            np.testing.assert_allclose(got[b], want, rtol=BLOCK_RTOL, atol=BLOCK_ATOL)
        np.testing.assert_array_equal(got[:, :4], 0)
    enc.inference_only = False
    # Gate order matters: reading the gates as (j, i, f, o) would change the outputs.
    kernel = p[cell + 'kernel']
    swapped = np.concatenate([kernel[:, 5:10], kernel[:, :5], kernel[:, 10:]], 1)
    bias = p[cell + 'bias']
    bias_sw = np.concatenate([bias[5:10], bias[:5], bias[10:]])
    other = basic_lstm(p[SCOPE + 'Variable'], swapped, bias_sw, words[1])
    assert np.abs(other - got[1]).max() > 1e-2


# ---------------------------------------------------------------------------------------------
# ConvLSTM (util/cell.py)

def test_conv_lstm_cell_against_numpy():
    store = VariableStore()
    cell = ConvLSTMCell(store, 3, 4, 5)
    pre = SCOPE + 'rnn/conv_lstm_cell/'
    assert store.variables[pre + 'kernel'].shape == (1, 1, 10, 20)
    assert store.variables[pre + 'W_ci'].shape == (3, 4, 5)
    assert not any(n.endswith('bias') for n in store.variables)  # normalize=True: no bias
    p = unscoped(randomise_store(store, 4))
    seq = np.random.RandomState(5).randn(3, 2, 3, 4, 5)  # [steps, B, h, w, C]
    got = cell([tf.constant(s, tf.float32) for s in seq]).numpy()
    for b in range(2):
        want = conv_lstm(p, [s[b] for s in seq])
        np.testing.assert_allclose(got[b], want, rtol=1e-4, atol=1e-5)
    # Each step counts: dropping the first step changes the result.
    other = conv_lstm(p, [s[0] for s in seq[1:]])
    assert np.abs(other - got[0]).max() > 1e-2


# ---------------------------------------------------------------------------------------------
# MUTAN fusion and relation-aware reasoning

def test_score_conv_by_taps_against_numpy():
    """The 3 x 3 convs to one channel (the level scores and the score) run as nine 1 x 1 taps
    (Conv.taps): the original's SAME conv, numpy's explicit padding, on a 5 x 7 map whose
    border rows and columns see the zero padding."""
    store = VariableStore()
    conv = Conv(store, 'score', 3, 6, 1)
    p = unscoped(randomise_store(store, 6, scale=0.5))
    x = np.random.RandomState(3).randn(2, 5, 7, 6)
    got = conv(tf.constant(x, tf.float32)).numpy()
    want = np.stack([conv3x3(p, 'score', x[b]) for b in range(2)])
    np.testing.assert_allclose(got, want, rtol=BLOCK_RTOL, atol=BLOCK_ATOL)


def test_mutan_fusion_against_numpy():
    store = VariableStore()
    mutan = MutanFusion(store, 'c4', v_emb_dim=6, rnn_size=6)
    assert store.variables[SCOPE + 'vis_trans_c4_head5/DW'].shape == (1, 1, 14, 6)
    assert store.variables[SCOPE + 'lang_trans_c4_head1/DW'].shape == (1, 1, 6, 6)
    p = unscoped(randomise_store(store, 6, scale=0.3))
    rng = np.random.RandomState(7)
    lang = rng.randn(2, 1, 1, 6)
    spatial = rng.randn(2, 3, 4, 8)
    vis = rng.randn(2, 3, 4, 6)
    lang_t, spatial_t, vis_t = [tf.constant(a, tf.float32) for a in (lang, spatial, vis)]
    # The picture's side (visual_features computes it once per picture), then the words'.
    got = mutan(lang_t, mutan.visual(vis_t, spatial_t)).numpy()
    for b in range(2):
        want = mutan_fusion(p, lang[b, 0, 0], spatial[b], vis[b], 'c4')
        np.testing.assert_allclose(got[b], want, rtol=BLOCK_RTOL, atol=BLOCK_ATOL)


def test_mutan_heads_folded_with_the_lateral_conv_against_numpy():
    """fold_lateral: the heads of [l2_normalize(lateral(x)), spatial] from x itself, against
    the original's two steps in numpy; folded again after the lateral weights change."""
    cin, C = 5, 9
    store = VariableStore()
    mutan = MutanFusion(store, 'c3', v_emb_dim=C, rnn_size=C)
    lateral = Conv(store, 'c3_lateral', 1, cin, C)
    rng = np.random.RandomState(8)
    x, spatial, lang = rng.randn(2, 3, 4, cin), rng.randn(2, 3, 4, 8), rng.randn(2, 1, 1, C)
    x_t, spatial_t, lang_t = [tf.constant(a, tf.float32) for a in (x, spatial, lang)]
    for seed in (9, 10):
        p = unscoped(randomise_store(store, seed, scale=0.3))
        mutan.fold_lateral(lateral)
        r = inverse_norm(lateral(x_t), 3)
        got = mutan(lang_t, mutan.visual_folded(x_t, r, spatial_t)).numpy()
        for b in range(2):
            vis = l2n(x[b] @ p['c3_lateral/DW'][0, 0] + p['c3_lateral/biases'], -1)
            want = mutan_fusion(p, lang[b, 0, 0], spatial[b], vis, 'c3')
            np.testing.assert_allclose(got[b], want, rtol=BLOCK_RTOL, atol=BLOCK_ATOL)


def test_relation_aware_reasoning_against_numpy():
    C, T = 6, 5
    store = VariableStore()
    rar = RelationAwareReasoning(store, 'c3', v_emb_dim=C, rnn_size=C)
    p = unscoped(randomise_store(store, 8, scale=0.5))
    rng = np.random.RandomState(9)
    nodes = l2n(rng.randn(2, 3, 4, C), -1)
    first = np.array([2, 0])  # sample 0: two pads; sample 1: none
    valid = np.arange(T)[None, :] >= first[:, None]  # [B, T]
    words_feat = l2n(rng.randn(2, 1, T, C), -1) * valid[:, None, :, None]
    words_parse = softmax(2 * rng.randn(2, 1, T, 4), -1) * valid[:, None, :, None]
    got = rar(*[tf.constant(a, tf.float32) for a in (nodes, words_feat, words_parse)],
              tf.constant(valid)).numpy()
    for b in range(2):  # the original slices the words from the first non-pad one
        f = first[b]
        want = spa_graph(p, nodes[b], words_feat[b, 0, f:], words_parse[b, 0, f:], 'c3', C)
        np.testing.assert_allclose(got[b], want, rtol=1e-4, atol=1e-5)
    # Keeping the pad columns in the word softmax (no slicing) would give another result.
    unsliced = spa_graph(p, nodes[0], words_feat[0, 0], words_parse[0, 0], 'c3', C)
    assert np.abs(unsliced - got[0]).max() > 1e-3


# ---------------------------------------------------------------------------------------------
# variable lists: name for name, shape for shape

def test_variables_tiny_eval():
    model = LSTM_model(mode='eval', **TINY)
    assert_same_variables(model.store, read_reference_variables('vars_eval_tiny.txt'))


def test_variables_paper_eval():
    # The paper's configuration: only variables are created (no forward at this size).
    model = LSTM_model(mode='eval')
    assert_same_variables(model.store, read_reference_variables('vars_eval_full.txt'))
    assert len(model.store.variables) == 735
    del model
    gc.collect()


def test_variables_paper_train():
    model = LSTM_model(mode='train')
    Trainer(model, model.train_settings)  # adds the optimizer's variables to the store
    reference = read_reference_variables('vars_train_full.txt')
    assert_same_variables(model.store, reference)
    # Everything that train adds: the step counter, Adam's powers and two slots per trainable
    # text_objseg variable (the backbone is frozen without -conv5).
    extra = set(reference) - set(read_reference_variables('vars_eval_full.txt'))
    assert {SCOPE + 'Variable_1', SCOPE + 'beta1_power', SCOPE + 'beta2_power'} <= extra
    slots = {n for n in extra if n.endswith(('/Adam', '/Adam_1'))}
    assert len(slots) == 2 * sum(1 for n in model.model_variables if n.startswith(SCOPE))
    del model
    gc.collect()


# ---------------------------------------------------------------------------------------------
# a tiny model with random weights

@pytest.fixture(scope='module')
def model():
    m = LSTM_model(mode='eval', **TINY)
    randomise(m, 0)
    return m


@pytest.fixture(scope='module')
def params(model):
    return model_params(model)


def test_randomised_parameters_are_not_trivial(model):
    # Every text_objseg variable varies, so none is left at its zero/one initial value.
    for name, var in model.store.variables.items():
        if name.startswith(SCOPE):
            v = var.numpy()
            assert np.abs(v).max() > 0.01 and np.abs(v - 1).max() > 0.01, name
            assert v.size == 1 or np.std(v) > 0.01, name


# ---------------------------------------------------------------------------------------------
# forward against the reference

@pytest.mark.parametrize('key', list(ID_SENTENCES))
def test_forward_matches_original(model, params, key):
    words = ID_SENTENCES[key]
    im = random_images(1, seed=sorted(ID_SENTENCES).index(key) + 1)
    out = model.forward(words[None], im)
    ref = reference_forward(params, words, features(model, im[0]), TINY)

    assert out['pred'].shape == (1, 8, 8, 1) and out['up'].shape == (1, 64, 64, 1)
    for k in OUTPUTS:
        assert out[k].shape == (1,) + ref[k].shape, k
        np.testing.assert_allclose(out[k][0], ref[k], rtol=RTOL, atol=ATOL, err_msg=k)
    # The logits are not degenerate (a test that compares constants would prove nothing).
    assert np.std(ref['up']) > 1e-2 and np.std(ref['pred']) > 1e-2

    v = ref['valid_idx']
    parse = out['words_parse'][0]
    assert parse.shape == (NUM_STEPS, 4)
    np.testing.assert_array_equal(parse[:v], 0)  # sliced away in the original
    np.testing.assert_allclose(parse[v:], ref['words_parse'], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(parse[v:].sum(-1), 1, atol=1e-5)


def test_reference_is_sensitive_to_the_words(model, params):
    # The words change the logits well beyond the tolerance: the comparison above tests the
    # language branch, not only the vision branch.
    im = random_images(1, seed=1)
    feats = features(model, im[0])
    a = reference_forward(params, ID_SENTENCES['short'], feats, TINY)['up']
    b = reference_forward(params, ID_SENTENCES['long'], feats, TINY)['up']
    assert np.abs(a - b).max() > 100 * ATOL


def test_batch_gives_each_sample_its_own_result(model):
    # Three sentences of different lengths (18 pads, none, 14) and three different images: each
    # sample of the batch gets what it gets alone with B = 1.
    assert_each_sample_as_alone(model, random_images(3, seed=11))


def assert_each_sample_as_alone(model, visual):
    """A batch of three samples (sentences of 18 pads, none and 14; three images or clips
    `visual`) gives each sample what it gives alone with B = 1 (the video model's test too)."""
    words = np.stack([ID_SENTENCES['short'], ID_SENTENCES['long'], ID_SENTENCES['unknown']])
    batch = model.forward(words, visual)
    for b in range(3):
        alone = model.forward(words[b:b + 1], visual[b:b + 1])
        for k in OUTPUTS + ('words_parse',):
            np.testing.assert_allclose(batch[k][b], alone[k][0], rtol=1e-5, atol=1e-5,
                                       err_msg='%s of sample %d' % (k, b))
    # The samples really differ from each other.
    assert np.abs(batch['up'][0] - batch['up'][1]).max() > 1e-2


# ---------------------------------------------------------------------------------------------
# save / restore

def test_save_restore_round_trip(model, tmp_path):
    prefix = str(tmp_path / 'ckpt' / 'tiny_iter_3.tfmodel')
    model.save(prefix)
    fresh = LSTM_model(mode='eval', **TINY)
    fresh.restore(prefix)
    words = np.stack([ID_SENTENCES['short'], ID_SENTENCES['long']])
    im = random_images(2, seed=31)
    a, b = model.forward(words, im), fresh.forward(words, im)
    for k in OUTPUTS + ('words_parse',):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)

    # The file holds exactly the TF1 names and shapes of the original's eval graph.
    reference = read_reference_variables('vars_eval_tiny.txt')
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    assert {k: list(v) for k, v in shapes.items()} == reference

    # A model with a Trainer restores from the eval checkpoint; its optimizer state stays
    # initial.
    train = LSTM_model(mode='train', **TINY)
    Trainer(train, train.train_settings)
    train.restore(prefix)
    reader = tf.train.load_checkpoint(prefix)
    for name in ('text_objseg/score/biases', 'text_objseg/Variable',
                 'text_objseg/rnn/conv_lstm_cell/LayerNorm_4/gamma', 'res5c_branch2c/weights'):
        np.testing.assert_array_equal(train.store.variables[name].numpy(),
                                      reader.get_tensor(name), err_msg=name)
    v = train.store.variables
    assert v['text_objseg/Variable_1'].numpy() == 0
    assert v['text_objseg/beta1_power'].numpy() == np.float32(0.9)
    assert v['text_objseg/beta2_power'].numpy() == np.float32(0.999)
    assert not np.any(v['text_objseg/text_objseg/score/biases/Adam'].numpy())
    assert not np.any(v['text_objseg/text_objseg/score/DW/Adam_1'].numpy())


def test_restore_rejects_a_wrong_shape(model, tmp_path):
    # Written with the raw SaveV2 op, independently of util/pipeline/checkpoint.py.
    good = str(tmp_path / 'good')
    model.save(good)
    reader = tf.train.load_checkpoint(good)
    names = sorted(reader.get_variable_to_shape_map())
    tensors = [reader.get_tensor(n) for n in names]
    bad_name = 'text_objseg/fusion_c4/DW'
    tensors[names.index(bad_name)] = np.zeros([1, 1, 104, 17], np.float32)
    bad = str(tmp_path / 'bad')
    tf.raw_ops.SaveV2(prefix=bad, tensor_names=names, shape_and_slices=[''] * len(names),
                      tensors=tensors)
    fresh = LSTM_model(mode='eval', **TINY)
    with pytest.raises(ValueError, match=bad_name):
        fresh.restore(bad)


# ---------------------------------------------------------------------------------------------
# fast paths of the forward, against the faithful path (fp32, no XLA, batch 1)

@pytest.mark.slow  # XLA compiles the forward: half a minute; in CI (.ci/run)
def test_xla_matches(fast_path_setup):
    """The same float32 arithmetic in another order: differences are rounding (measured ~4e-5
    on logits of magnitude ~10). (fold: test_fold_takes_the_c3_lateral_conv_into_mutan; at
    this size nothing folds.)"""
    prefix, words, im, _, ref = fast_path_setup
    out = build_restored(prefix, mode='eval', xla=True).forward(words, im)
    for key in ('up', 'up_c3', 'up_c4', 'up_c5', 'words_parse'):
        np.testing.assert_allclose(out[key], ref[key], atol=5e-4, rtol=1e-4, err_msg=key)


@pytest.mark.parametrize('precision, max_sigm_diff, min_agree', [
    # bf16 keeps 8 bits of mantissa: probabilities move by a few hundredths (measured 0.04)
    # and about 1.5 % of pixels flip at the 0.5 threshold on this random model.
    ('bf16', 0.1, 0.95),
    ('fp16', 0.05, 0.98),
])
def test_mixed_precision_forward_is_close(fast_path_setup, precision, max_sigm_diff, min_agree):
    prefix, words, im, _, ref = fast_path_setup
    out = build_restored(prefix, mode='eval', precision=precision).forward(words, im)
    assert out['up'].dtype == np.float32
    assert np.abs(out['sigm'] - ref['sigm']).max() < max_sigm_diff
    agree = ((out['up'] >= 1e-9) == (ref['up'] >= 1e-9)).mean()
    assert agree >= min_agree
    np.testing.assert_array_equal(out['words_parse'] == 0, ref['words_parse'] == 0)


def test_batched_forward_equals_batch_one(fast_path_setup):
    prefix, words, im, _, ref = fast_path_setup
    out = build_restored(prefix, mode='eval').forward(words, im)
    for key in ('up', 'words_parse'):
        np.testing.assert_allclose(out[key], ref[key], atol=1e-5, rtol=1e-5)


def test_fold_takes_the_c3_lateral_conv_into_mutan(tmp_path):
    """With MUTAN wider than the backbone's res3 (520 > 512 + 1 channels, as at the paper size),
    fold folds the c3 lateral conv into MUTAN's visual heads, not c4's or c5's (1024 and 2048
    channels in). Built folded from its initial weights, then restored: the picture's features
    are the plain path's up to rounding, so the fold was taken again from the restored weights
    (the words' part does not change)."""
    kw = dict(TINY, v_emb_dim=520, rnn_size=520)  # the graph takes both the same
    tf.random.set_seed(5)
    plain = LSTM_model(mode='eval', **kw)
    rng = np.random.RandomState(1)
    plain.backbone.calibrate((rng.randn(2, 64, 64, 3) * 50).astype(np.float32))
    prefix = str(tmp_path / 'wide')
    plain.save(prefix)
    folded = LSTM_model(mode='eval', fold=True, **kw)
    assert [lv for lv in folded.levels if folded.mutan[lv].folded is not None] == ['c3']
    folded.restore(prefix)
    im = (rng.randn(2, 64, 64, 3) * 50).astype(np.float32)
    ref, out = plain.forward_visual(im), folded.forward_visual(im)
    # Rounding at c3, measured 1.0e-7 (values up to 0.37; the bound leaves room for other
    # CPUs' kernels); a fold left from the initial weights moves c3's heads by 0.5. The
    # backbone, the laterals and the other levels are the plain path's ops: the same bits.
    for k, (a, b) in enumerate(zip(out['c3']['mutan'], ref['c3']['mutan'])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg='c3 %d' % k)
    for lv in ('c3', 'c4', 'c5'):
        np.testing.assert_array_equal(out[lv]['lateral'].numpy(), ref[lv]['lateral'].numpy())
    for lv in ('c4', 'c5'):
        for a, b in zip(out[lv]['mutan'], ref[lv]['mutan']):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fold_refuses_training():
    with pytest.raises(ValueError, match='fold is for inference'):
        LSTM_model(mode='train', fold=True, **TINY)


def test_only_an_eval_model_takes_the_inference_paths():
    """The backbone of an eval-mode model runs its dilated convs natively (faster with oneDNN,
    docs/speed.md) and its word encoder skips all-pad steps; a model that trains keeps
    space-to-batch, whose CPU gradient exists (tests/test_deeplab_resnet.py), and every step."""
    evaluating, training = LSTM_model(mode='eval', **TINY), LSTM_model(mode='train', **TINY)
    assert evaluating.backbone.inference_only and evaluating.words_encoder.inference_only
    assert not training.backbone.inference_only
    assert not training.words_encoder.inference_only
