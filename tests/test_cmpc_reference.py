"""Fidelity of CMPC_model.LSTM_model against a numpy re-implementation of the ORIGINAL graph.

The reference (`reference_forward`) was written by reading the original code, not the port:
github:spyflying/CMPC-Refseg CMPC_model.py (build_graph, build_lang_parser, valid_lang, nec_lang,
mutan_head/mutan_fusion, build_spa_graph/graph_conv, build_lang2vis, global_vec, lang_se,
gated_exchange_module, gated_exchange_fusion_lstm_2times, train_op), util/cell.py (ConvLSTMCell),
util/loss.py and trainval_model.py (valid_idx = first non-zero id). It runs at batch size 1, as
the original did at test time, in float64, on the port's weights read by their TF1 names and on
the port's backbone features (the backbone is tested in test_blocks.py).

    cd /work/main && .venv/bin/python -m pytest tests/test_cmpc_reference.py -q
"""

import numpy as np
import pytest
import tensorflow as tf

from CMPC_model import LSTM_model

CFG = dict(H=64, W=64, vf_h=8, vf_w=8, vocab_size=50, rnn_size=32, v_emb_dim=32, mlp_dim=16)
T = 20  # num_steps, the original's default
SCOPE = 'text_objseg/'
ENDPOINTS = ('res3b3_relu', 'res4b22_relu', 'res5c_relu')
OUTPUTS = ('pred', 'up', 'sigm', 'up_c3', 'up_c4', 'up_c5')

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


def sentence(words):
    """Left-pad a list of ids with 0 to T steps, as text_processing does."""
    return np.array([0] * (T - len(words)) + list(words), dtype=np.int32)


SENTENCES = {
    'short': sentence([5, 7]),                                       # 2 words, 18 pads
    'long': np.array([4, 9, 17, 23, 8, 31, 42, 11, 6, 19, 27, 33, 14, 45, 22, 13, 38, 29, 10, 48],
                     dtype=np.int32),                                # 20 words, no pad
    'unknown': sentence([3, 12, 3, 49, 1, 2]),                       # <unk> (3), the last id, <go>, <eos>
    'inner_zero': sentence([8, 0, 9, 10, 11]),                       # a 0 after the first word
    'all_pad': sentence([]),                                         # valid_idx 0: every step kept
}


# ---------------------------------------------------------------------------------------------
# numpy primitives with TF1 semantics, float64

from np_reference import l2_normalize, sigmoid, softmax  # noqa: E402


def layer_norm(x, P, scope):
    """tf.contrib.layers.layer_norm of ONE sample: moments over every axis (all but batch),
    epsilon 1e-12, gamma/beta over the last axis."""
    mean = x.mean()
    var = ((x - mean) ** 2).mean()
    return (x - mean) / np.sqrt(var + 1e-12) * P[scope + '/gamma'] + P[scope + '/beta']


def conv1x1(P, name, x):
    """The original's _conv with filter 1: x [..., Cin] -> [..., Cout], plus biases."""
    return x @ P[name + '/DW'][0, 0] + P[name + '/biases']


def conv3x3(P, name, x):
    """The original's _conv with filter 3, stride 1, SAME: explicit zero padding of 1."""
    h, w, _ = x.shape
    W = P[name + '/DW']  # [3, 3, Cin, Cout]
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((h, w, W.shape[3]))
    for dy in range(3):
        for dx in range(3):
            out += xp[dy:dy + h, dx:dx + w] @ W[dy, dx]
    return out + P[name + '/biases']


def resize_bilinear_tf1(x, out_h, out_w):
    """tf.image.resize_bilinear of TF1 (align_corners False, no half-pixel centres):
    src = dst * in/out, i0 = floor(src), i1 = min(i0 + 1, in - 1), linear weights."""
    in_h, in_w, _ = x.shape

    def axis(n_in, n_out):
        src = np.arange(n_out) * (n_in / n_out)
        i0 = np.floor(src).astype(int)
        return i0, np.minimum(i0 + 1, n_in - 1), src - i0

    y0, y1, fy = axis(in_h, out_h)
    x0, x1, fx = axis(in_w, out_w)
    fy, fx = fy[:, None, None], fx[None, :, None]
    top = x[y0][:, x0] * (1 - fx) + x[y0][:, x1] * fx
    bottom = x[y1][:, x0] * (1 - fx) + x[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def spatial_grid(h, w):
    """generate_spatial_batch of the original (util/processing_tools.py), one sample."""
    out = np.zeros((h, w, 8))
    for i in range(h):
        for j in range(w):
            xmin, xmax = j / w * 2 - 1, (j + 1) / w * 2 - 1
            ymin, ymax = i / h * 2 - 1, (i + 1) / h * 2 - 1
            out[i, j] = [xmin, ymin, xmax, ymax, (xmin + xmax) / 2, (ymin + ymax) / 2,
                         1 / w, 1 / h]
    return out


def sigmoid_ce(logits, labels):
    """tf.nn.sigmoid_cross_entropy_with_logits: max(x, 0) - x z + log(1 + exp(-|x|))."""
    return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))


# ---------------------------------------------------------------------------------------------
# The original build_graph at batch size 1

def basic_lstm(P, words, rnn_size):
    """MultiRNNCell([BasicLSTMCell]) with state_is_tuple=False, unrolled with the original's
    tf.cond: where words[0, n] == 0 the step outputs zeros and keeps the state."""
    kernel = P['RNN/multi_rnn_cell/cell_0/basic_lstm_cell/kernel']
    bias = P['RNN/multi_rnn_cell/cell_0/basic_lstm_cell/bias']
    emb = P['Variable']
    c = np.zeros(rnn_size)
    h = np.zeros(rnn_size)
    outputs = []
    for n in range(len(words)):
        if words[n] == 0:  # f1
            outputs.append(np.zeros(rnn_size))
            continue
        gates = np.concatenate([emb[words[n]], h]) @ kernel + bias  # _linear([inputs, h])
        i, j, f, o = np.split(gates, 4)
        c = c * sigmoid(f + 1.0) + sigmoid(i) * np.tanh(j)  # forget_bias 1.0
        h = np.tanh(c) * sigmoid(o)
        outputs.append(h)
    return np.stack(outputs)  # [T, rnn]


def mutan_fusion(P, lang, spatial, vis, level):
    vis_sp = np.concatenate([vis, spatial], -1)  # [h, w, C + 8]
    heads = [np.tanh(conv1x1(P, 'vis_trans_%s_head%d' % (level, k), vis_sp))
             * np.tanh(conv1x1(P, 'lang_trans_%s_head%d' % (level, k), lang))
             for k in range(1, 6)]
    return l2_normalize(np.tanh(np.sum(heads, axis=0)), -1)


def spa_graph(P, nodes, words_feat, words_parse, level, v_emb_dim):
    h, w, C = nodes.shape
    words_trans = conv1x1(P, 'words_trans_' + level, words_feat)  # [T', C]
    nodes_trans = conv1x1(P, 'spa_graph_trans2_' + level, nodes).reshape(h * w, C)
    affi = nodes_trans @ words_trans.T / v_emb_dim ** 0.5  # [HW, T']
    affi = words_parse[None, :, 2] * affi
    affi_w = softmax(affi, axis=1)  # tf.nn.softmax(axis=2) of [B, HW, T]: over words
    affi_v = softmax(affi, axis=0)  # axis=1: over nodes
    adj = affi_w @ affi_v.T  # [HW, HW]
    graph = nodes.reshape(h * w, C)
    gconv = layer_norm(adj @ graph, P, 'gconv_feat_ln_spa_graph_' + level)
    gconv = np.maximum(graph + gconv, 0)
    update = conv1x1(P, 'gconv_update_spa_graph_' + level, gconv)
    update = np.maximum(layer_norm(update, P, 'gconv_update_ln_spa_graph_' + level), 0)
    return l2_normalize(update.reshape(h, w, C), -1)


def global_vec(P, feat, lang, level, mlp_dim):
    h, w, C = feat.shape
    key = conv1x1(P, 'spa_graph_key_' + level, feat).reshape(h * w, C)
    query = conv1x1(P, 'lang_query_' + level, lang)  # [C]
    attn = softmax(key @ query / mlp_dim ** 0.5, axis=0)  # [HW], softmax over positions
    pooled = attn @ feat.reshape(h * w, C)  # [C]
    gv = conv1x1(P, 'gv_lang_' + level, np.concatenate([pooled, lang]))
    return l2_normalize(gv)  # tf.nn.l2_normalize(gv_lang): all axes


def lang_se(P, feat, gv, level):
    gate = sigmoid(conv1x1(P, 'lang_feat_' + level, gv))
    return np.maximum(conv1x1(P, 'trans_feat_' + level, feat), 0) * gate


def exchange(P, feat, feat1, feat2, lang, level, mlp_dim):
    gv = global_vec(P, feat, lang, level + 'gv_f1', mlp_dim)
    out = feat + lang_se(P, feat1, gv, level + '_f1') + lang_se(P, feat2, gv, level + '_f2')
    return l2_normalize(out, -1)


def conv_lstm(P, sequence):
    """util/cell.py ConvLSTMCell, kernel [1, 1], normalize=True (no bias), peephole=True, run by
    dynamic_rnn from a zero state; the state carries the layer-normed c."""
    p = 'rnn/conv_lstm_cell/'
    kernel = P[p + 'kernel'][0, 0]
    c = np.zeros_like(sequence[0])
    h = np.zeros_like(sequence[0])
    for x in sequence:
        y = np.concatenate([x, h], -1) @ kernel
        j, i, f, o = np.split(y, 4, axis=-1)
        i = i + P[p + 'W_ci'] * c
        f = f + P[p + 'W_cf'] * c
        j = layer_norm(j, P, p + 'LayerNorm')
        i = layer_norm(i, P, p + 'LayerNorm_1')
        f = layer_norm(f, P, p + 'LayerNorm_2')
        c = c * sigmoid(f + 1.0) + sigmoid(i) * np.tanh(j)
        o = o + P[p + 'W_co'] * c
        o = layer_norm(o, P, p + 'LayerNorm_3')
        c = layer_norm(c, P, p + 'LayerNorm_4')
        h = sigmoid(o) * np.tanh(c)
    return h


def reference_forward(P, words, feats, cfg):
    """The original build_graph for one sentence `words` [T] and one image's backbone features
    feats = {endpoint: [h, w, C]}. Returns float64 arrays without the batch axis."""
    H, W, vf_h, vf_w = cfg['H'], cfg['W'], cfg['vf_h'], cfg['vf_w']
    rnn_size, v_emb_dim, mlp_dim = cfg['rnn_size'], cfg['v_emb_dim'], cfg['mlp_dim']
    # trainval_model.py: the first index whose id is not 0, else 0.
    valid_idx = next((i for i in range(len(words)) if words[i] != 0), 0)

    words_feat = basic_lstm(P, words, rnn_size)[valid_idx:]  # tf.slice from valid_idx
    words_feat = l2_normalize(words_feat, -1)  # [T', C]
    spatial = spatial_grid(vf_h, vf_w)

    # build_lang_parser (hidden width 500 hard-coded)
    parse = np.maximum(conv1x1(P, 'words_parse_1', words_feat), 0)
    parse = softmax(conv1x1(P, 'words_parse_2', parse), axis=-1)  # [T', 4]

    # valid_lang: entity + attribute
    valid_lang = l2_normalize((parse[:, 0] + parse[:, 1]) @ words_feat)  # [C]
    visual = {'c5': (feats['res5c_relu'], 'c5_lateral'), 'c4': (feats['res4b22_relu'], 'c4_lateral'),
              'c3': (feats['res3b3_relu'], 'c3_lateral')}
    out, fusion = {}, {}
    for level in ('c5', 'c4', 'c3'):
        feat, lateral = visual[level]
        vis = l2_normalize(conv1x1(P, lateral, feat), -1)
        vis_la_sp = mutan_fusion(P, valid_lang, spatial, vis, level)
        graph = spa_graph(P, vis_la_sp, words_feat, parse, level, v_emb_dim)
        lang_tiled = np.broadcast_to(valid_lang, (vf_h, vf_w, rnn_size))
        feat_all = np.concatenate([vis_la_sp, graph, lang_tiled, spatial], -1)
        fusion[level] = np.maximum(conv1x1(P, 'fusion_' + level, feat_all), 0)
        out['up_' + level] = resize_bilinear_tf1(conv3x3(P, 'score_' + level, fusion[level]), H, W)

    # nec_lang: sum of all four minus 'unnecessary'
    lang = l2_normalize((parse.sum(-1) - parse[:, 3]) @ words_feat)
    f3, f4, f5 = fusion['c3'], fusion['c4'], fusion['c5']
    e3 = exchange(P, f3, f4, f5, lang, 'c3', mlp_dim)
    e4 = exchange(P, f4, f3, f5, lang, 'c4', mlp_dim)
    e5 = exchange(P, f5, f3, f4, lang, 'c5', mlp_dim)
    e3_2 = exchange(P, e3, e4, e5, lang, 'c3_2', mlp_dim)
    e4_2 = exchange(P, e4, e3, e5, lang, 'c4_2', mlp_dim)
    e5_2 = exchange(P, e5, e3, e4, lang, 'c5_2', mlp_dim)
    fused = conv_lstm(P, [e3_2, e4_2, e5_2])

    out['pred'] = conv3x3(P, 'score', fused)
    out['up'] = resize_bilinear_tf1(out['pred'], H, W)
    out['sigm'] = sigmoid(out['up'])
    out['words_parse'] = parse
    out['valid_idx'] = valid_idx
    return out


def reference_cost(P, words, feats, mask, cfg, weight_decay=0.0005):
    """train_op's cost at batch size 1: 0.7 final + 0.1 per level + weight decay."""
    out = reference_forward(P, words, feats, cfg)
    loss = {k: sigmoid_ce(out[k], mask).sum() for k in ('up', 'up_c3', 'up_c4', 'up_c5')}
    cls_all = 0.7 * loss['up'] + 0.1 * (loss['up_c5'] + loss['up_c4'] + loss['up_c3'])
    reg = weight_decay * sum((P[n] ** 2).sum() / 2 for n in P
                             if n.find('DW') > 0 or n.endswith('weights'))
    return cls_all + reg


# ---------------------------------------------------------------------------------------------
# fixtures

def randomise(model, seed):
    """Random biases, layer-norm betas/gammas and peepholes, so that no zero- or one-initialised
    parameter can hide a bug (a missing bias, beta on the wrong axis, ...)."""
    rng = np.random.RandomState(seed)
    for name, var in model.store.variables.items():
        if not name.startswith(SCOPE):
            continue
        shape = var.shape.as_list()
        last = name.rsplit('/', 1)[1]
        if last in ('biases', 'bias', 'beta'):
            var.assign(0.3 * rng.randn(*shape).astype(np.float32))
        elif last == 'gamma':
            var.assign((1 + 0.3 * rng.randn(*shape)).astype(np.float32))
        elif last in ('W_ci', 'W_cf', 'W_co'):
            var.assign(0.5 * rng.randn(*shape).astype(np.float32))


def model_params(model):
    """The text_objseg weights, by their TF1 names without the scope, as float64."""
    return {n[len(SCOPE):]: v.numpy().astype(np.float64)
            for n, v in model.store.variables.items()
            if n.startswith(SCOPE) and n in model.model_variables}


def features(model, im):
    """The port's backbone endpoints for ONE image im [H, W, 3], float64 [h, w, C]."""
    layers = model.backbone(tf.constant(im[None], tf.float32))
    return {k: layers[k].numpy()[0].astype(np.float64) for k in ENDPOINTS}


def images(n, seed):
    # BGR minus the mean: roughly zero-centred, tens of units
    return (60 * np.random.RandomState(seed).randn(n, CFG['H'], CFG['W'], 3)).astype(np.float32)


@pytest.fixture(scope='module')
def model():
    m = LSTM_model(mode='eval', **CFG)
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

@pytest.mark.parametrize('key', list(SENTENCES))
def test_forward_matches_original(model, params, key):
    words = SENTENCES[key]
    im = images(1, seed=sorted(SENTENCES).index(key) + 1)
    out = model.forward(words[None], im)
    ref = reference_forward(params, words, features(model, im[0]), CFG)

    assert out['pred'].shape == (1, 8, 8, 1) and out['up'].shape == (1, 64, 64, 1)
    for k in OUTPUTS:
        assert out[k].shape == (1,) + ref[k].shape, k
        np.testing.assert_allclose(out[k][0], ref[k], rtol=RTOL, atol=ATOL, err_msg=k)
    # The logits are not degenerate (a test that compares constants would prove nothing).
    assert np.std(ref['up']) > 1e-2 and np.std(ref['pred']) > 1e-2

    v = ref['valid_idx']
    parse = out['words_parse'][0]
    assert parse.shape == (T, 4)
    np.testing.assert_array_equal(parse[:v], 0)  # sliced away in the original
    np.testing.assert_allclose(parse[v:], ref['words_parse'], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(parse[v:].sum(-1), 1, atol=1e-5)


def test_reference_is_sensitive_to_the_words(model, params):
    # The words change the logits well beyond the tolerance: the comparison above tests the
    # language branch, not only the vision branch.
    im = images(1, seed=1)
    feats = features(model, im[0])
    a = reference_forward(params, SENTENCES['short'], feats, CFG)['up']
    b = reference_forward(params, SENTENCES['long'], feats, CFG)['up']
    assert np.abs(a - b).max() > 100 * ATOL


def test_batch_gives_each_sample_its_own_result(model):
    # Three sentences of different lengths (18 pads, none, 14) and three different images: each
    # sample of the batch gets what it gets alone with B = 1.
    words = np.stack([SENTENCES['short'], SENTENCES['long'], SENTENCES['unknown']])
    im = images(3, seed=11)
    batch = model.forward(words, im)
    for b in range(3):
        alone = model.forward(words[b:b + 1], im[b:b + 1])
        for k in OUTPUTS + ('words_parse',):
            np.testing.assert_allclose(batch[k][b], alone[k][0], rtol=1e-5, atol=1e-5,
                                       err_msg='%s of sample %d' % (k, b))
    # The samples really differ from each other.
    assert np.abs(batch['up'][0] - batch['up'][1]).max() > 1e-2


# ---------------------------------------------------------------------------------------------
# one train step

START_LR, DECAY_STEPS = 0.00025, 10  # a short decay so that step 1's learning rate differs


def poly_lr(step):
    """tf.train.polynomial_decay(start_lr, step, decay, 1e-5, power=0.9), cycle False."""
    return (START_LR - 1e-5) * (1 - min(step, DECAY_STEPS) / DECAY_STEPS) ** 0.9 + 1e-5


def numpy_losses(out, mask):
    """util/loss.weighed_logistic_loss(scores, mask, 1, 1): batch mean of per-image sums, and
    train_op's combination."""
    loss = {}
    for name, k in (('cls_loss', 'up'), ('cls_loss_c3', 'up_c3'), ('cls_loss_c4', 'up_c4'),
                    ('cls_loss_c5', 'up_c5')):
        loss[name] = sigmoid_ce(out[k].astype(np.float64), mask).sum(axis=(1, 2, 3)).mean()
    loss['cls_loss_all'] = (0.7 * loss['cls_loss'] + 0.1 * loss['cls_loss_c5']
                            + 0.1 * loss['cls_loss_c4'] + 0.1 * loss['cls_loss_c3'])
    return loss


def blob_mask(n, seed):
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:CFG['H'], :CFG['W']]
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
    m = LSTM_model(mode='train', start_lr=START_LR, lr_decay_step=DECAY_STEPS, **CFG)
    randomise(m, 1)
    r = {'model': m}
    r['words1'] = SENTENCES['unknown'][None]
    r['im1'] = images(1, seed=21)
    r['mask1'] = blob_mask(1, seed=21)
    r['before'] = {n: v.numpy().copy() for n, v in m.store.variables.items()}
    r['params'] = model_params(m)
    r['feats'] = features(m, r['im1'][0])
    r['out1'] = m.forward(r['words1'], r['im1'])
    r['losses1'] = m.train_step(r['words1'], r['im1'], r['mask1'])
    r['after'] = {n: v.numpy().copy() for n, v in m.store.variables.items()}
    # Second step on a batch of two, at the updated weights.
    r['words2'] = np.stack([SENTENCES['short'], SENTENCES['long']])
    r['im2'] = images(2, seed=22)
    r['mask2'] = blob_mask(2, seed=22)
    r['out2'] = m.forward(r['words2'], r['im2'])
    r['losses2'] = m.train_step(r['words2'], r['im2'], r['mask2'])
    r['after2'] = {n: v.numpy().copy() for n, v in m.store.variables.items()}
    return r


def reg_loss_np(variables, trainable):
    return 0.0005 * sum((variables[n].astype(np.float64) ** 2).sum() / 2 for n in trainable
                        if n.find('DW') > 0 or n.endswith('weights'))


def trainable_names(m):
    return [n for n in m.model_variables if n.startswith(SCOPE)]


@pytest.mark.parametrize('step', [1, 2])
def test_train_step_losses_before_update(trained, step):
    m = trained['model']
    out, mask, got = trained['out%d' % step], trained['mask%d' % step], trained['losses%d' % step]
    before = trained['before'] if step == 1 else trained['after']
    want = numpy_losses(out, mask)
    want['reg_loss'] = reg_loss_np(before, trainable_names(m))
    want['cost'] = want['cls_loss_all'] + want['reg_loss']
    for k, v in want.items():
        # float32 sums over 4096 pixels of O(1) terms: relative 1e-5
        np.testing.assert_allclose(got[k], v, rtol=1e-5, err_msg=k)
    assert want['reg_loss'] > 0 and want['cls_loss'] > 0
    np.testing.assert_allclose(got['learning_rate'], poly_lr(step - 1), rtol=1e-6)
    # `pred` is the score map before the update; `target` is train_op's
    # resize_bilinear(target_fine, [vf_h, vf_w]) (used for the logged accuracies).
    np.testing.assert_allclose(got['pred'], out['pred'], rtol=1e-5, atol=1e-6)
    target = np.stack([resize_bilinear_tf1(mk.astype(np.float64), 8, 8) for mk in mask])
    np.testing.assert_allclose(got['target'], target, rtol=1e-6, atol=1e-7)


def test_train_step_loss_matches_original_cost(trained):
    # The cost of step 1 (batch 1) against the reference network's cost, independently of the
    # port's forward.
    want = reference_cost(trained['params'], trained['words1'][0], trained['feats'],
                          trained['mask1'][0], CFG)
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


def finite_difference(params, name, index, fn, eps=1e-5):
    """Central difference of fn(params) w.r.t. params[name][index], float64."""
    P = dict(params)
    P[name] = params[name].copy()
    orig = P[name][index]
    P[name][index] = orig + eps
    plus = fn(P)
    P[name][index] = orig - eps
    minus = fn(P)
    return (plus - minus) / (2 * eps)


def test_adam_update_against_finite_differences(trained):
    # TF1 AdamOptimizer at step 1 (beta1_power 0.9, beta2_power 0.999):
    #   lr_t = lr sqrt(1 - 0.999) / (1 - 0.9),  m = 0.1 g,  v = 0.001 g^2,
    #   var_new = var - lr_t m / (sqrt(v) + 1e-8)
    #           = var - lr sign(g) |g| / (|g| + 1e-8 / sqrt(0.001))
    # (lr_t * 0.1 / sqrt(0.001) = lr) with g the gradient of the cost, doubled for biases. For
    # |g| >> 3.2e-7 the update is -lr sign(g) whatever |g| is: sign and size are checked on the
    # variable, the gradient's value (and the bias multiplier 2) through the slots m and v.
    r = trained
    params, words, feats, mask = r['params'], r['words1'][0], r['feats'], r['mask1'][0]

    def cost(P):
        return reference_cost(P, words, feats, mask, CFG)

    lr_t = START_LR * np.sqrt(1 - 0.999) / (1 - 0.9)
    checked_big = 0
    for short, index in FD_ENTRIES:
        name = SCOPE + short
        indices = [index] if index is not None else list(np.ndindex(params[short].shape))
        mult = 2.0 if short.endswith('/biases') else 1.0
        for idx in indices:
            g = mult * finite_difference(params, short, idx, cost)
            m_slot = r['after'][SCOPE + name + '/Adam'][idx]
            v_slot = r['after'][SCOPE + name + '/Adam_1'][idx]
            # float32 gradients against float64 central differences
            scale = 1e-3 * max(abs(g), 1e-3)
            assert abs(m_slot - 0.1 * g) <= 0.1 * scale, (name, idx, m_slot, 0.1 * g)
            np.testing.assert_allclose(v_slot, 0.001 * g * g, rtol=5e-3, atol=1e-9,
                                       err_msg='%s%s' % (name, idx))
            delta = float(r['after'][name][idx]) - float(r['before'][name][idx])
            want = -lr_t * (0.1 * g) / (np.sqrt(0.001 * g * g) + 1e-8)
            if abs(g) > 1e-4:
                checked_big += 1
                assert np.sign(delta) == -np.sign(g), (name, idx, delta, g)
                # float32 var of size ~0.3 has a spacing of ~3e-8 against an update of ~8e-5
                np.testing.assert_allclose(delta, want, rtol=1e-3, atol=3e-8,
                                           err_msg='%s%s' % (name, idx))
            elif g == 0:
                assert delta == 0 and m_slot == 0, (name, idx)
    assert checked_big >= 8
    # The pad id's embedding row is never read: no gradient, no update.
    pad = SCOPE + 'Variable'
    np.testing.assert_array_equal(r['after'][pad][0], r['before'][pad][0])
    assert not np.array_equal(r['after'][pad][3], r['before'][pad][3])


# ---------------------------------------------------------------------------------------------
# save / restore

def test_save_restore_round_trip(model, tmp_path):
    prefix = str(tmp_path / 'ckpt' / 'tiny_iter_3.tfmodel')
    model.save(prefix)
    fresh = LSTM_model(mode='eval', **CFG)
    fresh.restore(prefix)
    words = np.stack([SENTENCES['short'], SENTENCES['long']])
    im = images(2, seed=31)
    a, b = model.forward(words, im), fresh.forward(words, im)
    for k in OUTPUTS + ('words_parse',):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)

    # The file holds exactly the TF1 names and shapes of the original's eval graph.
    reference = {}
    with open('/work/shared/reference/vars_eval_tiny.txt') as fh:
        for line in fh:
            name, shape = line.rstrip('\n').split('\t')
            reference[name] = [int(s) for s in shape.strip('[]').split(',') if s.strip()]
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    assert {k: list(v) for k, v in shapes.items()} == reference

    # A train-mode model restores from the eval checkpoint; its optimizer state stays initial.
    train = LSTM_model(mode='train', **CFG)
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
    # Written with the raw SaveV2 op, independently of util/checkpoint.py.
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
    fresh = LSTM_model(mode='eval', **CFG)
    with pytest.raises(ValueError, match=bad_name):
        fresh.restore(bad)
