"""Building blocks of CMPC_model.py and deeplab_resnet/ against independent numpy computations,
and the variable lists against the original graph's (../shared/reference/vars_*.txt).

Each numpy reference is written from the original code (CMPC_model.py, util/cell.py,
util/loss.py, kaffe/tensorflow/network.py + slim batch_norm), in float64, per sample.

    cd /work/main && .venv/bin/python -m pytest tests/test_blocks.py -q
"""

import gc
import math
import types

import numpy as np
import pytest
import tensorflow as tf

from CMPC_model import (ConvLSTMCell, LayerNorm, LSTM_model, MutanFusion, RelationAwareReasoning,
                        WordEncoder, masked_softmax, resize_bilinear)
from deeplab_resnet import DeepLabResNetModel
from util.checkpoint import VariableStore

REFERENCE = '/work/shared/reference/'
CFG = dict(H=64, W=64, vf_h=8, vf_w=8, vocab_size=50, rnn_size=32, v_emb_dim=32, mlp_dim=16)
SCOPE = 'text_objseg/'
# float32 blocks of a few ops against float64: 1e-5 is ~100x the float32 rounding we see.
RTOL, ATOL = 1e-5, 1e-5


# ---------------------------------------------------------------------------------------------
# numpy helpers (float64)

from np_reference import l2_normalize as l2n, sigmoid, softmax  # noqa: E402


def ln_one(x, gamma, beta, eps=1e-12):
    """contrib layer_norm of ONE sample: moments over all its elements."""
    mean = x.mean()
    var = ((x - mean) ** 2).mean()
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def conv_same(x, w, stride=1, dilation=1):
    """tf.nn.conv2d(padding='SAME') with dilation, explicit zero padding: x [B, H, W, Ci],
    w [k, k, Ci, Co]. SAME pads (out - 1) * stride + k_eff - in in total, the smaller half first."""
    B, H, W, _ = x.shape
    k = w.shape[0]
    k_eff = (k - 1) * dilation + 1
    out_h, out_w = math.ceil(H / stride), math.ceil(W / stride)
    ph = max((out_h - 1) * stride + k_eff - H, 0)
    pw = max((out_w - 1) * stride + k_eff - W, 0)
    xp = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out = np.zeros((B, out_h, out_w, w.shape[3]))
    for dy in range(k):
        for dx in range(k):
            y0, x0 = dy * dilation, dx * dilation
            patch = xp[:, y0:y0 + (out_h - 1) * stride + 1:stride,
                       x0:x0 + (out_w - 1) * stride + 1:stride]
            out += patch @ w[dy, dx]
    return out


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


def read_reference(filename):
    """name -> shape from a `name<TAB>[d0, d1, ...]` file (scalars `[]`)."""
    out = {}
    with open(REFERENCE + filename) as fh:
        for line in fh:
            name, shape = line.rstrip('\n').split('\t')
            out[name] = [int(s) for s in shape.strip('[]').split(',') if s.strip()]
    return out


def assert_same_variables(store, reference):
    got = {n: v.shape.as_list() for n, v in store.variables.items()}
    missing = sorted(set(reference) - set(got))
    extra = sorted(set(got) - set(reference))
    wrong = sorted('%s: %s != %s' % (n, got[n], reference[n])
                   for n in set(got) & set(reference) if got[n] != reference[n])
    assert not missing, 'missing: %s' % missing[:10]
    assert not extra, 'extra: %s' % extra[:10]
    assert not wrong, 'wrong shapes: %s' % wrong[:10]
    assert len(got) == len(reference)


# ---------------------------------------------------------------------------------------------
# backbone

@pytest.fixture(scope='module')
def backbone():
    return DeepLabResNetModel()


@pytest.mark.parametrize('conv_name, bn_name, shape, stride, dilation, relu', [
    ('conv1', 'bn_conv1', (2, 11, 11, 3), 2, 1, True),            # 7x7/2, odd input: asymmetric pad
    ('res2a_branch1', 'bn2a_branch1', (1, 5, 5, 64), 1, 1, False),  # 1x1, no relu
    ('res3a_branch2a', 'bn3a_branch2a', (1, 9, 9, 256), 2, 1, True),  # 1x1/2
    ('res4b5_branch2b', 'bn4b5_branch2b', (1, 7, 7, 256), 1, 2, True),  # 3x3, dilation 2
    ('res5b_branch2b', 'bn5b_branch2b', (1, 6, 6, 512), 1, 4, True),  # 3x3, dilation 4
])
def test_conv_bn_against_numpy(backbone, conv_name, bn_name, shape, stride, dilation, relu):
    # slim batch_norm in inference mode: (x - moving_mean) / sqrt(moving_variance + 0.001) * gamma
    # + beta, after a bias-free conv.
    rng = np.random.RandomState(len(conv_name))
    v = backbone.store.variables
    for suffix in ('beta', 'moving_mean'):
        v[bn_name + '/' + suffix].assign(rng.randn(v[bn_name + '/beta'].shape[0]).astype(np.float32))
    n = v[bn_name + '/beta'].shape[0]
    v[bn_name + '/gamma'].assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
    # Small variances make the 0.001 epsilon visible.
    v[bn_name + '/moving_variance'].assign(rng.uniform(0.0005, 0.01, n).astype(np.float32))
    x = rng.randn(*shape).astype(np.float32)
    got = backbone.conv_bn(tf.constant(x), conv_name, bn_name, stride=stride, dilation=dilation,
                           relu=relu).numpy()

    p = {k: v[k].numpy().astype(np.float64) for k in v if k.startswith((conv_name, bn_name))}
    conv = conv_same(x.astype(np.float64), p[conv_name + '/weights'], stride, dilation)

    def bn(eps):
        y = ((conv - p[bn_name + '/moving_mean']) / np.sqrt(p[bn_name + '/moving_variance'] + eps)
             * p[bn_name + '/gamma'] + p[bn_name + '/beta'])
        return np.maximum(y, 0) if relu else y

    want = bn(0.001)
    assert got.shape == want.shape
    tol = 1e-4 * np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=tol)
    # With another epsilon (1e-5, Keras' default) the result would be far outside that.
    assert np.abs(bn(1e-5) - want).max() > 100 * tol


@pytest.mark.parametrize('unit, bn, source, stride, dilation', [
    ('res3a', 'bn3a', 'res2c_relu', 2, 1),  # downsampling block: stride on branch1 and branch2a
    ('res4a', 'bn4a', 'res3b3_relu', 1, 2),  # dilated block: 3x3 at rate 2, no stride
])
def test_backbone_first_block_of_a_stage(backbone, unit, bn, source, stride, dilation):
    # The original (Caffe) block: branch1 = bn(conv1x1/s); branch2 = bn(conv1x1/s) relu ->
    # bn(conv3x3, dilation) relu -> bn(conv1x1); out = relu(branch1 + branch2).
    im = 50 * np.random.RandomState(1).randn(1, 64, 64, 3).astype(np.float32)
    layers = backbone(tf.constant(im))
    x = layers[source].numpy().astype(np.float64)
    v = {k: w.numpy().astype(np.float64) for k, w in backbone.store.variables.items()
         if k.startswith((unit + '_', bn + '_'))}

    def conv_bn(x, branch, stride=1, dilation=1, relu=True):
        y = conv_same(x, v['%s_%s/weights' % (unit, branch)], stride, dilation)
        b = '%s_%s/' % (bn, branch)
        y = ((y - v[b + 'moving_mean']) / np.sqrt(v[b + 'moving_variance'] + 0.001)
             * v[b + 'gamma'] + v[b + 'beta'])
        return np.maximum(y, 0) if relu else y

    short = conv_bn(x, 'branch1', stride, relu=False)
    y = conv_bn(x, 'branch2a', stride)
    y = conv_bn(y, 'branch2b', dilation=dilation)
    y = conv_bn(y, 'branch2c', relu=False)
    want = np.maximum(short + y, 0)
    got = layers[unit + '_relu'].numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    if stride > 1:
        # The stride on the 3x3 (the torchvision ResNet v1.5 habit) would give another result.
        y = conv_bn(conv_bn(x, 'branch2a'), 'branch2b', stride)
        other = np.maximum(short + conv_bn(y, 'branch2c', relu=False), 0)
        assert np.abs(other - want).max() > 1e-2 * np.abs(want).max()


def test_backbone_variables_are_the_original_ones(backbone):
    reference = {n: s for n, s in read_reference('vars_eval_full.txt').items()
                 if not n.startswith(SCOPE)}
    assert len(reference) > 500
    assert_same_variables(backbone.store, reference)
    for name, var in backbone.store.variables.items():
        # moving statistics frozen (slim's are not trainable); weights/beta/gamma trainable
        assert var.trainable == (not name.endswith(('moving_mean', 'moving_variance'))), name


def test_backbone_endpoints_for_64x64(backbone):
    im = 50 * np.random.RandomState(0).randn(2, 64, 64, 3).astype(np.float32)
    layers = backbone(tf.constant(im))
    assert layers['res3b3_relu'].shape == (2, 8, 8, 512)
    assert layers['res4b22_relu'].shape == (2, 8, 8, 1024)
    assert layers['res5c_relu'].shape == (2, 8, 8, 2048)
    for k in ('res3b3_relu', 'res4b22_relu', 'res5c_relu'):
        x = layers[k].numpy()
        assert x.min() >= 0 and x.max() > 0, k  # after a relu, not all dead
    # Samples are independent (frozen batch norm, no batch statistics).
    alone = backbone(tf.constant(im[1:]))['res5c_relu'].numpy()[0]
    np.testing.assert_allclose(layers['res5c_relu'].numpy()[1], alone,
                               rtol=1e-4, atol=1e-5 * np.abs(alone).max())


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
        want = ln_one(x[b], p[SCOPE + 'ln_test/gamma'], p[SCOPE + 'ln_test/beta'])
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
    src = np.arange(64) * (8 / 64)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, 7)
    f = src - i0
    rows = x[:, i0] * (1 - f)[None, :, None, None] + x[:, i1] * f[None, :, None, None]
    want = rows[:, :, i0] * (1 - f)[None, None, :, None] + rows[:, :, i1] * f[None, None, :, None]
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

def numpy_lstm(emb, kernel, bias, words):
    """BasicLSTMCell (i, j, f, o; forget bias 1; [x, h] @ kernel + bias), where id 0 outputs
    zeros and keeps the state (the original's f1 branch)."""
    n = bias.shape[0] // 4
    c, h = np.zeros(n), np.zeros(n)
    outs = []
    for w in words:
        if w == 0:
            outs.append(np.zeros(n))
            continue
        i, j, f, o = np.split(np.concatenate([emb[w], h]) @ kernel + bias, 4)
        c = c * sigmoid(f + 1.0) + sigmoid(i) * np.tanh(j)
        h = np.tanh(c) * sigmoid(o)
        outs.append(h)
    return np.stack(outs)


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
        want = numpy_lstm(p[SCOPE + 'Variable'], p[cell + 'kernel'], p[cell + 'bias'], words[b])
        np.testing.assert_allclose(got[b], want, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(got[0, [0, 1, 2, 5]], 0)  # pad steps output zeros
    # The pad inside leaves the state untouched: sample 0 ends as the sequence 4, 5, 6 alone.
    alone = enc(tf.constant([[0, 0, 0, 0, 4, 5, 6]], tf.int32)).numpy()
    np.testing.assert_allclose(got[0, 6], alone[0, 6], rtol=1e-6, atol=1e-7)
    # Gate order matters: reading the gates as (j, i, f, o) would change the outputs.
    kernel = p[cell + 'kernel']
    swapped = np.concatenate([kernel[:, 5:10], kernel[:, :5], kernel[:, 10:]], 1)
    bias = p[cell + 'bias']
    bias_sw = np.concatenate([bias[5:10], bias[:5], bias[10:]])
    other = numpy_lstm(p[SCOPE + 'Variable'], swapped, bias_sw, words[1])
    assert np.abs(other - got[1]).max() > 1e-2


# ---------------------------------------------------------------------------------------------
# ConvLSTM (util/cell.py)

def numpy_conv_lstm(p, sequence):
    """One sample: sequence of [h, w, C]; 1x1 kernel, no bias, peepholes, layer norms on
    j, i, f (LayerNorm, _1, _2), then o (_3) and c (_4); forget bias 1; state c normalised."""
    pre = SCOPE + 'rnn/conv_lstm_cell/'

    def ln(x, k):
        scope = pre + ('LayerNorm' if k == 0 else 'LayerNorm_%d' % k)
        return ln_one(x, p[scope + '/gamma'], p[scope + '/beta'])

    kernel = p[pre + 'kernel'][0, 0]
    c = h = np.zeros_like(sequence[0])
    for x in sequence:
        j, i, f, o = np.split(np.concatenate([x, h], -1) @ kernel, 4, axis=-1)
        i = i + p[pre + 'W_ci'] * c
        f = f + p[pre + 'W_cf'] * c
        j, i, f = ln(j, 0), ln(i, 1), ln(f, 2)
        c = c * sigmoid(f + 1.0) + sigmoid(i) * np.tanh(j)
        o = ln(o + p[pre + 'W_co'] * c, 3)
        c = ln(c, 4)
        h = sigmoid(o) * np.tanh(c)
    return h


def test_conv_lstm_cell_against_numpy():
    store = VariableStore()
    cell = ConvLSTMCell(store, 3, 4, 5)
    pre = SCOPE + 'rnn/conv_lstm_cell/'
    assert store.variables[pre + 'kernel'].shape == (1, 1, 10, 20)
    assert store.variables[pre + 'W_ci'].shape == (3, 4, 5)
    assert not any(n.endswith('bias') for n in store.variables)  # normalize=True: no bias
    p = randomise_store(store, 4)
    seq = np.random.RandomState(5).randn(3, 2, 3, 4, 5)  # [steps, B, h, w, C]
    got = cell([tf.constant(s, tf.float32) for s in seq]).numpy()
    for b in range(2):
        want = numpy_conv_lstm(p, [s[b] for s in seq])
        np.testing.assert_allclose(got[b], want, rtol=1e-4, atol=1e-5)
    # Each step counts: dropping the first step changes the result.
    other = numpy_conv_lstm(p, [s[0] for s in seq[1:]])
    assert np.abs(other - got[0]).max() > 1e-2


# ---------------------------------------------------------------------------------------------
# MUTAN fusion and relation-aware reasoning

def test_mutan_fusion_against_numpy():
    store = VariableStore()
    mutan = MutanFusion(store, 'c4', v_emb_dim=6, rnn_size=6)
    assert store.variables[SCOPE + 'vis_trans_c4_head5/DW'].shape == (1, 1, 14, 6)
    assert store.variables[SCOPE + 'lang_trans_c4_head1/DW'].shape == (1, 1, 6, 6)
    p = randomise_store(store, 6, scale=0.3)
    rng = np.random.RandomState(7)
    lang = rng.randn(2, 1, 1, 6)
    spatial = rng.randn(2, 3, 4, 8)
    vis = rng.randn(2, 3, 4, 6)
    got = mutan(*[tf.constant(a, tf.float32) for a in (lang, spatial, vis)]).numpy()
    for b in range(2):
        vis_sp = np.concatenate([vis[b], spatial[b]], -1)
        heads = 0
        for k in range(1, 6):
            v = 'vis_trans_c4_head%d/' % k
            lt = 'lang_trans_c4_head%d/' % k
            heads = heads + (np.tanh(vis_sp @ p[SCOPE + v + 'DW'][0, 0] + p[SCOPE + v + 'biases'])
                             * np.tanh(lang[b, 0, 0] @ p[SCOPE + lt + 'DW'][0, 0]
                                       + p[SCOPE + lt + 'biases']))
        want = l2n(np.tanh(heads), -1)
        np.testing.assert_allclose(got[b], want, rtol=RTOL, atol=ATOL)


def numpy_reasoning(p, level, nodes, words_feat, words_parse, first):
    """build_spa_graph + graph_conv of the original for one sample, words sliced from `first`."""
    h, w, C = nodes.shape
    wf, parse = words_feat[first:], words_parse[first:]

    def conv(name, x):
        return x @ p[SCOPE + name + '/DW'][0, 0] + p[SCOPE + name + '/biases']

    def ln(name, x):
        return ln_one(x, p[SCOPE + name + '/gamma'], p[SCOPE + name + '/beta'])

    words_trans = conv('words_trans_' + level, wf)
    nodes_trans = conv('spa_graph_trans2_' + level, nodes).reshape(h * w, C)
    affi = parse[None, :, 2] * (nodes_trans @ words_trans.T / C ** 0.5)  # [HW, T']
    adj = softmax(affi, 1) @ softmax(affi, 0).T  # words, then nodes
    graph = nodes.reshape(h * w, C)
    x = np.maximum(graph + ln('gconv_feat_ln_spa_graph_' + level, adj @ graph), 0)
    x = np.maximum(ln('gconv_update_ln_spa_graph_' + level, conv('gconv_update_spa_graph_' + level, x)), 0)
    return l2n(x.reshape(h, w, C), -1)


def test_relation_aware_reasoning_against_numpy():
    C, T = 6, 5
    store = VariableStore()
    rar = RelationAwareReasoning(store, 'c3', v_emb_dim=C, rnn_size=C)
    p = randomise_store(store, 8, scale=0.5)
    rng = np.random.RandomState(9)
    nodes = l2n(rng.randn(2, 3, 4, C), -1)
    first = np.array([2, 0])  # sample 0: two pads; sample 1: none
    valid = np.arange(T)[None, :] >= first[:, None]  # [B, T]
    words_feat = l2n(rng.randn(2, 1, T, C), -1) * valid[:, None, :, None]
    words_parse = softmax(2 * rng.randn(2, 1, T, 4), -1) * valid[:, None, :, None]
    got = rar(*[tf.constant(a, tf.float32) for a in (nodes, words_feat, words_parse)],
              tf.constant(valid)).numpy()
    for b in range(2):
        want = numpy_reasoning(p, 'c3', nodes[b], words_feat[b, 0], words_parse[b, 0], first[b])
        np.testing.assert_allclose(got[b], want, rtol=1e-4, atol=1e-5)
    # Keeping the pad columns in the word softmax (no slicing) would give another result.
    unsliced = numpy_reasoning(p, 'c3', nodes[0], words_feat[0, 0], words_parse[0, 0], 0)
    assert np.abs(unsliced - got[0]).max() > 1e-3


# ---------------------------------------------------------------------------------------------
# loss and learning rate

def test_sigmoid_loss_hand_worked():
    # Logits 0: each pixel costs log 2 whatever its label; 3x3 pixels per image, so every image
    # sums to 9 log 2 and the batch mean is 9 log 2 = 6.238325.
    labels = np.zeros((2, 3, 3, 1), np.float32)
    labels[0, 1, 1] = 1
    got = LSTM_model.sigmoid_loss(tf.zeros([2, 3, 3, 1]), tf.constant(labels)).numpy()
    assert got == pytest.approx(9 * math.log(2), rel=1e-6)
    # Image 0: logits +2 on a positive pixel costs log(1 + e^-2) = 0.126928; image 1: logits +2
    # on a negative pixel costs log(1 + e^2) = 2.126928; mean of the per-image sums = 1.126928.
    logits = np.zeros((2, 1, 1, 1), np.float32) + 2
    labels = np.array([1, 0], np.float32).reshape(2, 1, 1, 1)
    got = LSTM_model.sigmoid_loss(tf.constant(logits), tf.constant(labels)).numpy()
    assert got == pytest.approx(1.126928, abs=1e-6)


def test_sigmoid_loss_against_numpy():
    rng = np.random.RandomState(0)
    logits = 5 * rng.randn(3, 8, 6, 1)
    labels = (rng.rand(3, 8, 6, 1) > 0.6).astype(np.float64)
    ce = np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))
    want = ce.sum(axis=(1, 2, 3)).mean()  # per-image sum, batch mean
    got = LSTM_model.sigmoid_loss(tf.constant(logits, tf.float32),
                                  tf.constant(labels, tf.float32)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)


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
    fake = types.SimpleNamespace(start_lr=0.00025, lr_decay_step=800000)
    got = LSTM_model.learning_rate(fake, tf.constant(float(step))).numpy()
    assert got == pytest.approx(want, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# variable lists: name for name, shape for shape

def test_variables_tiny_eval():
    model = LSTM_model(mode='eval', **CFG)
    assert_same_variables(model.store, read_reference('vars_eval_tiny.txt'))


def test_variables_paper_eval():
    # The paper's configuration: only variables are created (no forward at this size).
    model = LSTM_model(mode='eval')
    assert_same_variables(model.store, read_reference('vars_eval_full.txt'))
    assert len(model.store.variables) == 735
    del model
    gc.collect()


def test_variables_paper_train():
    model = LSTM_model(mode='train')
    reference = read_reference('vars_train_full.txt')
    assert_same_variables(model.store, reference)
    # Everything that train adds: the step counter, Adam's powers and two slots per trainable
    # text_objseg variable (the backbone is frozen without -conv5).
    extra = set(reference) - set(read_reference('vars_eval_full.txt'))
    assert {SCOPE + 'Variable_1', SCOPE + 'beta1_power', SCOPE + 'beta2_power'} <= extra
    slots = {n for n in extra if n.endswith(('/Adam', '/Adam_1'))}
    assert len(slots) == 2 * sum(1 for n in model.model_variables if n.startswith(SCOPE))
    del model
    gc.collect()
