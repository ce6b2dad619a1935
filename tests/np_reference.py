"""The numpy reference of the ORIGINAL CMPC graph, in float64, one sample at a time.

Written by reading the original code, not the port: github:spyflying/CMPC-Refseg CMPC_model.py
(build_graph, build_lang_parser, valid_lang, nec_lang, mutan_head/mutan_fusion,
build_spa_graph/graph_conv, build_lang2vis, global_vec, lang_se, gated_exchange_module,
gated_exchange_fusion_lstm_2times, train_op), util/cell.py (ConvLSTMCell), util/pipeline/loss.py,
util/processing_tools.py and trainval_model.py (valid_idx = first non-zero id); the backbone's
convolution and batch norm from DrSleep/tensorflow-deeplab-resnet kaffe/tensorflow/network.py
and slim's batch_norm. TF1 semantics throughout (e.g. resize without half-pixel centres).

Also the original video model, CMPC_video/CMPC_video_mm_tgraph_allvec.py (build_temp_graph,
build_temp_ctx, its build_lang2vis and 5-type parser), for test_video_model.py.

Parameters `P` map the TF1 variable names WITHOUT the 'text_objseg/' scope (`unscoped`) to float64
arrays. Arrays have no batch axis unless a docstring says otherwise. Used by
test_cmpc_model.py (the whole graph, and one block at a time), test_trainer.py (a train step's
cost) and test_loss.py; nothing here imports the project.
"""

import math

import numpy as np

SCOPE = 'text_objseg/'
BN_EPSILON = 0.001  # slim batch_norm's default, which the original backbone kept
WEIGHT_DECAY = 0.0005  # trainval_model.py's default


# ---------------------------------------------------------------------------------------------
# TF1 primitives

def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def l2_normalize(x, axis=None):
    """tf.nn.l2_normalize: x / sqrt(max(sum x^2, 1e-12)); axis None = every element."""
    return x / np.sqrt(np.maximum(np.sum(x * x, axis=axis, keepdims=True), 1e-12))


def layer_norm_one(x, gamma, beta, eps=1e-12):
    """tf.contrib.layers.layer_norm of ONE sample: moments over every axis (all but batch),
    epsilon 1e-12, gamma/beta over the last axis."""
    mean = x.mean()
    var = ((x - mean) ** 2).mean()
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def sigmoid_ce(logits, labels):
    """tf.nn.sigmoid_cross_entropy_with_logits: max(x, 0) - x z + log(1 + exp(-|x|))."""
    return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))


def resize_bilinear_tf1(x, out_h, out_w):
    """tf.image.resize_bilinear of TF1 (align_corners False, no half-pixel centres) of one
    x [h, w, C]: src = dst * in/out, i0 = floor(src), i1 = min(i0 + 1, in - 1), linear weights."""
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


def conv_same(x, w, stride=1, dilation=1):
    """tf.nn.conv2d(padding='SAME') with dilation (the original's _conv and the backbone's
    kaffe conv/atrous_conv), explicit zero padding: x [B, H, W, Ci], w [k, k, Ci, Co].
    SAME pads (out - 1) * stride + k_eff - in in total, the smaller half first."""
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


def batch_norm(x, p, scope, eps=BN_EPSILON):
    """slim batch_norm in inference mode, as the original backbone ran it (is_training False):
    (x - moving_mean) / sqrt(moving_variance + eps) * gamma + beta; p holds `scope`/...."""
    return ((x - p[scope + '/moving_mean']) / np.sqrt(p[scope + '/moving_variance'] + eps)
            * p[scope + '/gamma'] + p[scope + '/beta'])


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


# ---------------------------------------------------------------------------------------------
# the original's layers, on parameters by TF1 name

def unscoped(params):
    """{name: value} of the text_objseg variables with the scope dropped, as float64."""
    return {n[len(SCOPE):]: np.asarray(v, np.float64) for n, v in params.items()
            if n.startswith(SCOPE)}


def layer_norm(x, P, scope):
    """tf.contrib.layers.layer_norm(scope=...) of one sample, with that scope's gamma/beta."""
    return layer_norm_one(x, P[scope + '/gamma'], P[scope + '/beta'])


def conv1x1(P, name, x):
    """The original's _conv with filter 1: x [..., Cin] -> [..., Cout], plus biases."""
    return x @ P[name + '/DW'][0, 0] + P[name + '/biases']


def conv3x3(P, name, x):
    """The original's _conv with filter 3, stride 1, SAME (a zero padding of 1): x [h, w, Cin]."""
    return conv_same(x[None], P[name + '/DW'])[0] + P[name + '/biases']


# ---------------------------------------------------------------------------------------------
# the original build_graph at batch size 1, component by component

def basic_lstm(emb, kernel, bias, words):
    """build_graph's word encoder: MultiRNNCell([BasicLSTMCell]) with state_is_tuple=False
    (gates i, j, f, o of [x, h] @ kernel + bias; forget bias 1.0), unrolled with the original's
    tf.cond: where words[n] == 0 the step outputs zeros and keeps the state (f1).
    emb [vocab, E] (`Variable`), kernel [E + n, 4n], bias [4n], words [T] -> [T, n]."""
    n = bias.shape[0] // 4
    c, h = np.zeros(n), np.zeros(n)
    outputs = []
    for w in words:
        if w == 0:  # f1
            outputs.append(np.zeros(n))
            continue
        i, j, f, o = np.split(np.concatenate([emb[w], h]) @ kernel + bias, 4)  # _linear
        c = c * sigmoid(f + 1.0) + sigmoid(i) * np.tanh(j)  # forget_bias 1.0
        h = np.tanh(c) * sigmoid(o)
        outputs.append(h)
    return np.stack(outputs)  # [T, n]


def mutan_fusion(P, lang, spatial, vis, level):
    """mutan_head x 5 + mutan_fusion: lang [C], spatial [h, w, 8], vis [h, w, C] -> [h, w, C]."""
    vis_sp = np.concatenate([vis, spatial], -1)  # [h, w, C + 8]
    heads = [np.tanh(conv1x1(P, 'vis_trans_%s_head%d' % (level, k), vis_sp))
             * np.tanh(conv1x1(P, 'lang_trans_%s_head%d' % (level, k), lang))
             for k in range(1, 6)]
    return l2_normalize(np.tanh(np.sum(heads, axis=0)), -1)


def spa_graph(P, nodes, words_feat, words_parse, level, v_emb_dim):
    """build_spa_graph + graph_conv (relation-aware reasoning): nodes [h, w, C], words_feat
    [T', C] and words_parse [T', 4] already sliced from valid_idx."""
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
    """global_vec: language-attended pooling of feat [h, w, C] with lang [C] -> [C]."""
    h, w, C = feat.shape
    key = conv1x1(P, 'spa_graph_key_' + level, feat).reshape(h * w, C)
    query = conv1x1(P, 'lang_query_' + level, lang)  # [C]
    attn = softmax(key @ query / mlp_dim ** 0.5, axis=0)  # [HW], softmax over positions
    pooled = attn @ feat.reshape(h * w, C)  # [C]
    gv = conv1x1(P, 'gv_lang_' + level, np.concatenate([pooled, lang]))
    return l2_normalize(gv)  # tf.nn.l2_normalize(gv_lang): all axes


def lang_se(P, feat, gv, level):
    """lang_se: feat [h, w, C] gated by the global vector gv [C]."""
    gate = sigmoid(conv1x1(P, 'lang_feat_' + level, gv))
    return np.maximum(conv1x1(P, 'trans_feat_' + level, feat), 0) * gate


def exchange(P, feat, feat1, feat2, lang, level, mlp_dim):
    """gated_exchange_module (text-guided feature exchange) of one level."""
    gv = global_vec(P, feat, lang, level + 'gv_f1', mlp_dim)
    out = feat + lang_se(P, feat1, gv, level + '_f1') + lang_se(P, feat2, gv, level + '_f2')
    return l2_normalize(out, -1)


def conv_lstm(P, sequence):
    """util/cell.py ConvLSTMCell, kernel [1, 1], normalize=True (no bias), peephole=True, run by
    dynamic_rnn from a zero state over sequence (a list of [h, w, C]); layer norms on j, i, f
    (LayerNorm, _1, _2), then o (_3) and c (_4); the state carries the layer-normed c."""
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

    cell = 'RNN/multi_rnn_cell/cell_0/basic_lstm_cell/'
    words_feat = basic_lstm(P['Variable'], P[cell + 'kernel'], P[cell + 'bias'], words)
    words_feat = l2_normalize(words_feat[valid_idx:], -1)  # tf.slice from valid_idx; [T', C]
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
    out.update(exchange_and_score(P, fusion, lang, H, W, mlp_dim))
    out['words_parse'] = parse
    out['valid_idx'] = valid_idx
    return out


def exchange_and_score(P, fusion, lang, H, W, mlp_dim):
    """gated_exchange_fusion_lstm_2times and the final score, as both originals end:
    fusion {level: [h, w, C]}, lang [C] -> pred, up, sigm."""
    f3, f4, f5 = fusion['c3'], fusion['c4'], fusion['c5']
    e3 = exchange(P, f3, f4, f5, lang, 'c3', mlp_dim)
    e4 = exchange(P, f4, f3, f5, lang, 'c4', mlp_dim)
    e5 = exchange(P, f5, f3, f4, lang, 'c5', mlp_dim)
    e3_2 = exchange(P, e3, e4, e5, lang, 'c3_2', mlp_dim)
    e4_2 = exchange(P, e4, e3, e5, lang, 'c4_2', mlp_dim)
    e5_2 = exchange(P, e5, e3, e4, lang, 'c5_2', mlp_dim)
    fused = conv_lstm(P, [e3_2, e4_2, e5_2])
    pred = conv3x3(P, 'score', fused)
    up = resize_bilinear_tf1(pred, H, W)
    return {'pred': pred, 'up': up, 'sigm': sigmoid(up)}


# ---------------------------------------------------------------------------------------------
# train_op: losses, weight decay, learning rate

def cls_losses(out, mask):
    """util/loss.weighed_logistic_loss(scores, mask, 1, 1) of each score map (batch mean of
    per-image sums) and train_op's combination cls_loss_all = 0.7 final + 0.1 per level.
    out: {'up', 'up_c3', 'up_c4', 'up_c5': [B, H, W, 1]}, mask [B, H, W, 1]."""
    loss = {}
    for name, k in (('cls_loss', 'up'), ('cls_loss_c3', 'up_c3'), ('cls_loss_c4', 'up_c4'),
                    ('cls_loss_c5', 'up_c5')):
        loss[name] = sigmoid_ce(out[k].astype(np.float64), mask).sum(axis=(1, 2, 3)).mean()
    loss['cls_loss_all'] = (0.7 * loss['cls_loss'] + 0.1 * loss['cls_loss_c5']
                            + 0.1 * loss['cls_loss_c4'] + 0.1 * loss['cls_loss_c3'])
    return loss


def weight_decay_loss(params, weight_decay=WEIGHT_DECAY):
    """train_op's reg_loss: weight_decay * sum of tf.nn.l2_loss (sum x^2 / 2) over the given
    trainable variables whose name holds 'DW' (not first) or ends with 'weights'."""
    return weight_decay * sum((np.asarray(params[n], np.float64) ** 2).sum() / 2 for n in params
                              if n.find('DW') > 0 or n.endswith('weights'))


def reference_cost(P, words, feats, mask, cfg, weight_decay=WEIGHT_DECAY):
    """train_op's cost at batch size 1, mask [H, W, 1]: cls_loss_all + reg_loss."""
    out = reference_forward(P, words, feats, cfg)
    batch = {k: out[k][None] for k in ('up', 'up_c3', 'up_c4', 'up_c5')}
    return cls_losses(batch, mask[None])['cls_loss_all'] + weight_decay_loss(P, weight_decay)


def polynomial_decay(step, start_lr, decay_steps, end_lr=1e-5, power=0.9):
    """tf.train.polynomial_decay(start_lr, step, decay_steps, end_lr, power), cycle False."""
    return (start_lr - end_lr) * (1 - min(step, decay_steps) / decay_steps) ** power + end_lr


# ---------------------------------------------------------------------------------------------
# the original video model, CMPC_video/CMPC_video_mm_tgraph_allvec.py, at batch size 1

VIDEO_SAMPLED_FRAMES = (0, 4, 8, 12, 15)  # tf.gather(self.clip, [0, 4, 8, 12, 15], axis=1)


def graph_conv(P, nodes, adj, graph_name, level):
    """graph_conv of one sample: nodes [N, C], adj [N, N] -> [N, C]."""
    gconv = layer_norm(adj @ nodes, P, 'gconv_feat_ln_%s_%s' % (graph_name, level))
    gconv = np.maximum(nodes + gconv, 0)
    update = conv1x1(P, 'gconv_update_%s_%s' % (graph_name, level), gconv)
    return np.maximum(layer_norm(update, P, 'gconv_update_ln_%s_%s' % (graph_name, level)), 0)


def temp_graph(P, mm_feats, ac_lang, level, v_emb_dim):
    """build_temp_graph: mm_feats [F, h, w, C] (MUTAN of each sampled frame), ac_lang [C] ->
    the l2-normalised nodes [F, C]."""
    F, h, w, C = mm_feats.shape
    lang_trans = conv1x1(P, 'tg_ltrans_' + level, ac_lang)  # [C]
    nodes = []
    for f in range(F):
        vis_trans = conv1x1(P, 'tg_vtrans_' + level, mm_feats[f]).reshape(h * w, C)
        attn = softmax(vis_trans @ lang_trans / v_emb_dim ** 0.5, axis=0)  # over positions
        nodes.append(attn @ mm_feats[f].reshape(h * w, C))
    nodes = np.stack(nodes)  # [F, C]
    query = conv1x1(P, 'tg_query_' + level, nodes)
    key = conv1x1(P, 'tg_key_' + level, nodes)
    adj = softmax(query @ key.T / v_emb_dim ** 0.5, axis=1)  # [F, F]
    return l2_normalize(graph_conv(P, nodes, adj, 'temp_graph', level), -1)


def temp_ctx(P, mm_feat, nodes, level, v_emb_dim):
    """build_temp_ctx: mm_feat [h, w, C] of the annotated frame, nodes [F, C] -> [h, w, C]."""
    h, w, C = mm_feat.shape
    mm_trans = conv1x1(P, 'mm_trans_' + level, mm_feat).reshape(h * w, C)
    ctx_trans = conv1x1(P, 'ctx_trans_' + level, nodes)  # [F, C]
    attn = softmax(mm_trans @ ctx_trans.T / v_emb_dim ** 0.5, axis=1)  # [HW, F], over frames
    return l2_normalize((attn @ nodes).reshape(h, w, C), -1)


def reference_forward_video(P, words, frame_feats, cfg):
    """The original video build_graph for one sentence `words` [T] and the backbone features of
    the 5 sampled frames, frame_feats = [{endpoint: [h, w, C]}] x 5. float64, no batch axis."""
    H, W, vf_h, vf_w = cfg['H'], cfg['W'], cfg['vf_h'], cfg['vf_w']
    rnn_size, v_emb_dim, mlp_dim = cfg['rnn_size'], cfg['v_emb_dim'], cfg['mlp_dim']
    valid_idx = next((i for i in range(len(words)) if words[i] != 0), 0)
    annotated = len(VIDEO_SAMPLED_FRAMES) // 2  # visual_feat[self.sample_frames // 2]

    cell = 'RNN/multi_rnn_cell/cell_0/basic_lstm_cell/'
    words_feat = basic_lstm(P['Variable'], P[cell + 'kernel'], P[cell + 'bias'], words)
    words_feat = l2_normalize(words_feat[valid_idx:], -1)  # [T', C]
    spatial = spatial_grid(vf_h, vf_w)

    # build_lang_parser: entity, attribute, static relation, action, unnecessary
    parse = np.maximum(conv1x1(P, 'words_parse_1', words_feat), 0)
    parse = softmax(conv1x1(P, 'words_parse_2', parse), axis=-1)  # [T', 5]
    ea_lang = l2_normalize((parse[:, 0] + parse[:, 1]) @ words_feat)  # ea_lang
    ac_lang = l2_normalize(parse[:, -2] @ words_feat)  # ac_lang: the action words
    valid_lang = l2_normalize((parse.sum(-1) - parse[:, 4]) @ words_feat)  # valid_lang

    endpoints = {'c5': ('res5c_relu', 'c5_lateral'), 'c4': ('res4b22_relu', 'c4_lateral'),
                 'c3': ('res3b3_relu', 'c3_lateral')}
    out, fusion = {}, {}
    for level in ('c5', 'c4', 'c3'):
        endpoint, lateral = endpoints[level]
        vis = np.stack([l2_normalize(conv1x1(P, lateral, f[endpoint]), -1)
                        for f in frame_feats])  # [F, h, w, C]
        mm = np.stack([mutan_fusion(P, ea_lang, spatial, v, level) for v in vis])
        nodes = temp_graph(P, mm, ac_lang, level, v_emb_dim)
        ctx = temp_ctx(P, mm[annotated], nodes, level, v_emb_dim)
        graph = spa_graph(P, mm[annotated], words_feat, parse, level, v_emb_dim)
        lang_tiled = np.broadcast_to(valid_lang, (vf_h, vf_w, rnn_size))
        feat_all = np.concatenate([vis[annotated], graph, ctx, lang_tiled, spatial], -1)
        fusion[level] = np.maximum(conv1x1(P, 'fusion_' + level, feat_all), 0)
        out['up_' + level] = resize_bilinear_tf1(conv3x3(P, 'score_' + level, fusion[level]), H, W)

    out.update(exchange_and_score(P, fusion, valid_lang, H, W, mlp_dim))
    out['words_parse'] = parse
    out['valid_idx'] = valid_idx
    return out
