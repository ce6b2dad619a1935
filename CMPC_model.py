"""CMPC: Cross-Modal Progressive Comprehension for referring image segmentation (CVPR 2020).

A TensorFlow 2 port of the updated model of github:spyflying/CMPC-Refseg (CMPC_model.py), with
the same mathematics and the same variable names and shapes, so that checkpoints of the original
code load unchanged (see util/pipeline/checkpoint.py).

    model = LSTM_model(mode='eval', H=64, W=64, vf_h=8, vf_w=8, vocab_size=50,
                       rnn_size=32, v_emb_dim=32, mlp_dim=16)
    model.restore('ckpts/unc/unc_iter_700000.tfmodel')
    out = model.forward(words, im)  # words int32 [B, T] left-padded; im [B, H, W, 3] BGR - mean

Training is not in this module (no optimizer, no loss): util/pipeline/trainer.py wraps the network,

    from util.pipeline.trainer import Trainer
    model = LSTM_model(mode='train', H=64, W=64, vocab_size=50, rnn_size=32, v_emb_dim=32,
                       mlp_dim=16, start_lr=0.003)
    trainer = Trainer(model, model.train_settings)  # or any TrainSettings
    losses = trainer.train_step(words, im, mask)  # mask float32 [B, H, W, 1]; numpy losses

The paper's components and where they are:
- word features: GloVe embedding + LSTM (`WordEncoder`), and the word parser that gives each word
  soft types entity / attribute / relation / unnecessary (`WordParser`);
- entity perception: MUTAN fusion of the entity+attribute words with vision (`MutanFusion`);
- relation-aware reasoning: a graph over all spatial positions whose edges are driven by the
  relation words (`RelationAwareReasoning`);
- text-guided feature exchange between the three levels, twice (`TextGuidedExchange`), then a
  ConvLSTM over [c3, c4, c5] (`ConvLSTMCell`).

Batches. The original used sample 0's padding for the whole batch and ran the ConvLSTM on sample
0 alone. Here padded words are masked instead of sliced away, so every sample of a batch computes
exactly what it computes alone, and batch size 1 is the original.
"""

import numpy as np
import tensorflow as tf

from deeplab_resnet import DeepLabResNetModel
from util.pipeline.checkpoint import (VariableStore, constant, glorot_uniform, ones, zeros,
                                      restore_checkpoint, save_checkpoint)
from util.pipeline.settings import PAPER_BLOCKS, TrainSettings, run_record, split_model_kwargs
from util.processing_tools import generate_spatial_batch

SCOPE = 'text_objseg/'
LAYER_NORM_EPSILON = 1e-12  # tf.contrib.layers.layer_norm's
BACKBONE_PREFIXES = ('res', 'bn', 'conv1')


COMPUTE_DTYPES = {'fp32': tf.float32, 'bf16': tf.bfloat16, 'fp16': tf.float16}


def cast(v, dtype):
    """Variables stay float32; mixed precision reads them in the compute dtype."""
    return v if v.dtype == dtype else tf.cast(v, dtype)


def l2_normalize(x, axis):
    # Sums of squares over 1000-2048 channels overflow float16: normalise in float32.
    y = tf.nn.l2_normalize(cast(x, tf.float32), axis=axis, epsilon=1e-12)
    return cast(y, x.dtype)


def inverse_norm(x, axis):
    """The factor l2_normalize scales x by, 1 / max(|x|, 1e-6) over `axis` (kept), in float32."""
    x32 = cast(x, tf.float32)
    r = tf.math.rsqrt(tf.maximum(tf.reduce_sum(tf.square(x32), axis, keepdims=True), 1e-12))
    return cast(r, x.dtype)


def softmax(x, axis):
    return cast(tf.nn.softmax(cast(x, tf.float32), axis=axis), x.dtype)


def resize_bilinear(x, size):
    """TF1's tf.image.resize_bilinear: align_corners False, no half-pixel centres."""
    return tf.raw_ops.ResizeBilinear(images=x, size=size, align_corners=False,
                                     half_pixel_centers=False)


def masked_softmax(x, mask, axis):
    """Softmax over `axis` where entries with mask False get probability exactly 0."""
    x = cast(x, tf.float32)
    return tf.nn.softmax(tf.where(mask, x, x.dtype.min), axis=axis)


# ---------------------------------------------------------------------------------------------
# Building blocks, each creating its variables under the original's names.

class Conv:
    """The original's `_conv`: `name/DW` (Xavier) and `name/biases` (0), stride 1, SAME."""

    def __init__(self, store, name, k, cin, cout):
        self.w = store.get(SCOPE + name + '/DW', [k, k, cin, cout], glorot_uniform)
        self.b = store.get(SCOPE + name + '/biases', [cout], zeros)

    def __call__(self, x):
        w = cast(self.w, x.dtype)
        if w.shape[0] > 1 and w.shape[0] % 2 == 1 and w.shape[3] == 1:
            return self.taps(x, w) + cast(self.b, x.dtype)
        return tf.nn.conv2d(x, w, 1, 'SAME') + cast(self.b, x.dtype)

    @staticmethod
    def taps(x, w):
        """A k x k SAME conv to one channel (the scores) as k * k 1 x 1 ones, one per tap,
        whose shifted maps add up: the same sums in another order. oneDNN (TensorFlow's CPU
        kernels by default on CPUs with AVX-512 VNNI or BF16, AVX-VNNI or AMX) ran the 3 x 3
        conv from 500 channels to 1 in 41 ms and this in 0.9 ms (Eigen: 2.0 and 1.4 ms)."""
        k, cin = w.shape[0], w.shape[2]
        p = k // 2
        h, wd = x.shape[1], x.shape[2]
        per_tap = tf.reshape(tf.transpose(w[:, :, :, 0], [2, 0, 1]), [1, 1, cin, k * k])
        z = tf.pad(tf.nn.conv2d(x, per_tap, 1, 'VALID'), [[0, 0], [p, p], [p, p], [0, 0]])
        return tf.add_n([z[:, dy:dy + h, dx:dx + wd, dy * k + dx:dy * k + dx + 1]
                         for dy in range(k) for dx in range(k)])

    def dot(self, x, v):
        """For a 1x1 conv, its outputs' dot products with vectors v, without the outputs:
        x [B, N, cin], v [B, M, cout] -> [B, N, M] = conv(x) @ v^T, computed as
        x @ (v @ W^T)^T + v @ b: (N + cout) x M x cin multiplications instead of N x cin x cout
        (the same sums in another order; M is a handful of words or one query)."""
        w = cast(self.w[0, 0], x.dtype)  # [cin, cout]
        vw = tf.matmul(v, w, transpose_b=True)  # [B, M, cin]
        vb = tf.matmul(v, cast(self.b, x.dtype)[:, None])  # [B, M, 1]
        return tf.matmul(x, vw, transpose_b=True) + tf.transpose(vb, [0, 2, 1])


class LayerNorm:
    """tf.contrib.layers.layer_norm: moments over all axes but the batch axis, beta and gamma over
    the last axis, epsilon 1e-12."""

    def __init__(self, store, name, dim):
        self.beta = store.get(SCOPE + name + '/beta', [dim], zeros)
        self.gamma = store.get(SCOPE + name + '/gamma', [dim], ones)

    def __call__(self, x):
        x32 = cast(x, tf.float32)  # moments in float32 under mixed precision
        mean, var = tf.nn.moments(x32, list(range(1, x.shape.rank)), keepdims=True)
        y = tf.nn.batch_normalization(x32, mean, var, self.beta, self.gamma, LAYER_NORM_EPSILON)
        return cast(y, x.dtype)


class WordEncoder:
    """GloVe embedding + one-layer LSTM with TF1 BasicLSTMCell semantics (gates i, j, f, o,
    forget bias 1.0). A pad step (id 0) leaves the state untouched and outputs zeros, as the
    original's tf.cond did. inference_only (an eval-mode model's): a step where every row is a
    pad is skipped, as the original skipped sample 0's pad steps (at the paper size the
    1300 x 4000 kernel is then read 5 times for a 5-word sentence, not 20). A train step keeps
    every step: with the conditionals, the synthetic configuration's was 3 % slower."""

    def __init__(self, store, vocab_size, glove_dim, rnn_size, glove=None, inference_only=False):
        emb_init = constant(glove) if glove is not None else (
            lambda shape: tf.random.normal(shape, stddev=0.1))
        self.embedding = store.get(SCOPE + 'Variable', [vocab_size, glove_dim], emb_init)
        cell = SCOPE + 'RNN/multi_rnn_cell/cell_0/basic_lstm_cell/'
        self.kernel = store.get(cell + 'kernel', [glove_dim + rnn_size, 4 * rnn_size],
                                glorot_uniform)
        self.bias = store.get(cell + 'bias', [4 * rnn_size], zeros)
        self.rnn_size = rnn_size
        self.inference_only = inference_only

    def __call__(self, words, keep_prob_emb=1.0, keep_prob_rnn=1.0):
        B, T = tf.shape(words)[0], words.shape[1]
        embedded = tf.nn.embedding_lookup(self.embedding, words)  # [B, T, glove_dim]
        c = h = tf.zeros([B, self.rnn_size])
        outputs = []
        for n in range(T):
            step = (words[:, n] != 0)[:, None]  # [B, 1]

            def run_step(x=embedded[:, n], c=c, h=h, step=step):
                if keep_prob_emb < 1:
                    x = tf.nn.dropout(x, rate=1 - keep_prob_emb)
                gates = tf.matmul(tf.concat([x, h], 1), self.kernel) + self.bias  # [B, 4 rnn]
                i, j, f, o = tf.split(gates, 4, axis=1)
                new_c = c * tf.sigmoid(f + 1.0) + tf.sigmoid(i) * tf.tanh(j)
                new_h = tf.tanh(new_c) * tf.sigmoid(o)
                out = tf.nn.dropout(new_h, rate=1 - keep_prob_rnn) if keep_prob_rnn < 1 else new_h
                return (tf.where(step, new_c, c), tf.where(step, new_h, h),
                        tf.where(step, out, tf.zeros_like(out)))

            if self.inference_only:
                c, h, out = tf.cond(tf.reduce_any(step), run_step,
                                    lambda c=c, h=h: (c, h, tf.zeros_like(h)))
            else:
                c, h, out = run_step()
            outputs.append(out)
        return tf.stack(outputs, axis=1)  # [B, T, rnn_size]


class WordParser:
    """Soft word types (build_lang_parser): [entity, attribute, relation, unnecessary] for
    images; [entity, attribute, static relation, action, unnecessary] for video (types=5)."""

    def __init__(self, store, rnn_size, types=4):
        # The hidden width 500 is fixed in the original, whatever mlp_dim is.
        self.conv1 = Conv(store, 'words_parse_1', 1, rnn_size, 500)
        self.conv2 = Conv(store, 'words_parse_2', 1, 500, types)

    def __call__(self, words_feat, valid):
        # words_feat [B, 1, T, C]; valid [B, T] bool
        x = tf.nn.relu(self.conv1(words_feat))  # [B, 1, T, 500]
        parse = softmax(self.conv2(x), axis=3)  # [B, 1, T, types]
        # Words before the first real token were sliced away in the original.
        return parse * tf.cast(valid, parse.dtype)[:, None, :, None]


def weighted_words(weights, words_feat):
    """sum_t weights[b, t] * words_feat[b, t], l2-normalised (valid_lang / nec_lang)."""
    # weights [B, 1, T]; words_feat [B, 1, T, C]
    feat = tf.matmul(weights, words_feat[:, 0])  # [B, 1, C]
    return l2_normalize(feat, 2)[:, :, None, :]  # [B, 1, 1, C]


class MutanFusion:
    """Entity perception: 5-head MUTAN fusion of words and vision (with the 8-d spatial grid)."""

    def __init__(self, store, level, v_emb_dim, rnn_size, heads=5):
        self.vis = [Conv(store, 'vis_trans_%s_head%d' % (level, k), 1, v_emb_dim + 8, v_emb_dim)
                    for k in range(1, heads + 1)]
        self.lang = [Conv(store, 'lang_trans_%s_head%d' % (level, k), 1, rnn_size, v_emb_dim)
                     for k in range(1, heads + 1)]
        self.folded = None  # fold_lateral's kernels

    def visual(self, visual_feat, spatial):
        """The picture's side, without the words: each head's tanh(transform of [visual,
        spatial grid]). visual_feat [B, h, w, C]; spatial [B, h, w, 8] -> 5 x [B, h, w, C]."""
        vis_sp = tf.concat([visual_feat, spatial], 3)  # [B, h, w, C + 8]
        return [tf.tanh(vis(vis_sp)) for vis in self.vis]

    def fold_lateral(self, lateral):
        """For inference: each head's transform folded with the lateral conv `lateral` (L, b)
        before it. Its visual features are l2_normalize(L x + b) = (L x + b) r with r the
        inverse norm, so a head's W_v (L x + b) r + W_s s = (W_v L)(x r) + (W_v b) r + W_s s,
        one transform of [x r, r, s]: cin + 9 channels instead of C + 8 (at the paper size
        c3's 521 against 1008). The products are taken in float64; the kernels are variables
        of their own (not checkpointed), refreshed from the weights by calling this again."""
        L, b = (tf.cast(v, tf.float64) for v in (lateral.w[0, 0], lateral.b))  # [cin, C], [C]
        C = L.shape[1]
        kernels = []
        for vis in self.vis:
            w = tf.cast(vis.w[0, 0], tf.float64)  # [C + 8, C]
            k = tf.concat([tf.matmul(L, w[:C]), tf.matmul(b[None], w[:C]), w[C:]], 0)
            kernels.append(tf.cast(k, tf.float32)[None, None])
        if self.folded is None:
            self.folded = [tf.Variable(k, trainable=False) for k in kernels]
        else:
            for var, k in zip(self.folded, kernels):
                var.assign(k)

    def visual_folded(self, x, r, spatial):
        """visual() of l2_normalize(lateral(x)) through fold_lateral's kernels: x [B, h, w, cin]
        the lateral conv's input, r [B, h, w, 1] the inverse norm of its output."""
        x_r = tf.concat([x * r, r, spatial], 3)  # [B, h, w, cin + 9]
        return [tf.tanh(tf.nn.conv2d(x_r, cast(k, x.dtype), 1, 'SAME') + cast(vis.b, x.dtype))
                for k, vis in zip(self.folded, self.vis)]

    def __call__(self, lang_feat, vis_heads):
        # lang_feat [B, 1, 1, rnn]; vis_heads: visual()'s, 5 x [B, h, w, C]
        heads = [v * tf.tanh(lang(lang_feat)) for v, lang in zip(vis_heads, self.lang)]
        fused = tf.tanh(tf.add_n(heads))
        return l2_normalize(fused, 3)  # [B, h, w, C]


class GraphConv:
    """The original's graph_conv: nodes [B, 1, N, C] gather messages along adj [B, N, N]
    (row-stochastic), then a residual, layer norms and a 1x1 update; `graph` names the
    variables (gconv_*_{graph}_{level})."""

    def __init__(self, store, graph, level, dim):
        self.ln_feat = LayerNorm(store, 'gconv_feat_ln_%s_%s' % (graph, level), dim)
        self.update = Conv(store, 'gconv_update_%s_%s' % (graph, level), 1, dim, dim)
        self.ln_update = LayerNorm(store, 'gconv_update_ln_%s_%s' % (graph, level), dim)

    def __call__(self, nodes, adj):
        # nodes [B, 1, N, C]; adj [B, N, N]
        return self.gathered(nodes, tf.matmul(adj, nodes[:, 0])[:, None])

    def gathered(self, nodes, message):
        """The update after the messages: nodes, message [B, 1, N, C] -> [B, 1, N, C]."""
        x = tf.nn.relu(nodes + self.ln_feat(message))
        return tf.nn.relu(self.ln_update(self.update(x)))  # [B, 1, N, C]


class RelationAwareReasoning:
    """Relation words drive a graph over all spatial positions (build_spa_graph + graph_conv)."""

    def __init__(self, store, level, v_emb_dim, rnn_size):
        self.words_trans = Conv(store, 'words_trans_' + level, 1, rnn_size, rnn_size)
        self.nodes_trans = Conv(store, 'spa_graph_trans2_' + level, 1, v_emb_dim, v_emb_dim)
        self.graph_conv = GraphConv(store, 'spa_graph', level, v_emb_dim)
        self.v_emb_dim = v_emb_dim

    def __call__(self, nodes, words_feat, words_parse, valid):
        # nodes [B, h, w, C]; words_feat [B, 1, T, C]; words_parse [B, 1, T, types]; valid [B, T]
        B, h, w, C = tf.shape(nodes)[0], nodes.shape[1], nodes.shape[2], nodes.shape[3]
        words_trans = self.words_trans(words_feat)[:, 0]  # [B, T, C]
        flat = tf.reshape(nodes, [B, h * w, C])
        # nodes_trans(nodes) @ words_trans^T, without the [B, HW, C] transform (Conv.dot)
        affinity = self.nodes_trans.dot(flat, words_trans)  # [B, HW, T]
        affinity = affinity / self.v_emb_dim ** 0.5
        affinity = words_parse[:, :, :, 2] * affinity  # (static) relation weights [B, 1, T]
        attn_words = cast(masked_softmax(affinity, valid[:, None, :], axis=2), nodes.dtype)
        attn_nodes = softmax(affinity, axis=1)  # [B, HW, T]
        # The original's adjacency is attn_words @ attn_nodes^T [B, HW, HW], of rank <= T (pad
        # columns of attn_nodes meet zeros of attn_words), and the messages adj @ nodes. The
        # same product in the other order, attn_words @ (attn_nodes^T @ nodes), takes about
        # HW / (2 T) times fewer multiplications (40 at 40 x 40) and no [HW, HW] matrix.
        words_nodes = tf.matmul(attn_nodes, flat, transpose_a=True)  # [B, T, C]
        message = tf.matmul(attn_words, words_nodes)[:, None]  # [B, 1, HW, C]
        x = self.graph_conv.gathered(flat[:, None], message)  # [B, 1, HW, C]
        return l2_normalize(tf.reshape(x, [B, h, w, C]), 3)


class TextGuidedExchange:
    """One feature exchange: `feat` gathers from the two other levels through channel gates
    computed from a sentence-guided global vector (gated_exchange_module)."""

    def __init__(self, store, level, mlp_dim, rnn_size):
        gv = level + 'gv_f1'
        self.key = Conv(store, 'spa_graph_key_' + gv, 1, mlp_dim, mlp_dim)
        self.query = Conv(store, 'lang_query_' + gv, 1, rnn_size, mlp_dim)
        self.gv_lang = Conv(store, 'gv_lang_' + gv, 1, mlp_dim + rnn_size, mlp_dim)
        self.gates = [(Conv(store, 'lang_feat_%s_%s' % (level, f), 1, mlp_dim, mlp_dim),
                       Conv(store, 'trans_feat_%s_%s' % (level, f), 1, mlp_dim, mlp_dim))
                      for f in ('f1', 'f2')]
        self.mlp_dim = mlp_dim

    def global_vec(self, feat, lang_feat):
        # feat [B, h, w, C]; lang_feat [B, 1, 1, rnn]
        B, h, w, C = tf.shape(feat)[0], feat.shape[1], feat.shape[2], feat.shape[3]
        flat = tf.reshape(feat, [B, h * w, C])
        query = tf.reshape(self.query(lang_feat), [B, 1, C])  # [B, 1, C]
        # key(feat) @ query^T, without the [B, HW, C] keys (Conv.dot)
        attn = self.key.dot(flat, query) / self.mlp_dim ** 0.5  # [B, HW, 1]
        attn = softmax(attn, axis=1)
        pooled = tf.matmul(attn, flat, transpose_a=True)  # [B, 1, C]
        gv = tf.concat([tf.reshape(pooled, [B, 1, 1, C]), lang_feat], 3)  # [B, 1, 1, C + rnn]
        # The original normalised over every axis of the whole batch (identical at batch 1).
        return l2_normalize(self.gv_lang(gv), [1, 2, 3])  # [B, 1, 1, C]

    def __call__(self, feat, feat1, feat2, lang_feat):
        gv = self.global_vec(feat, lang_feat)
        out = feat
        for (gate, trans), other in zip(self.gates, (feat1, feat2)):
            out = out + tf.nn.relu(trans(other)) * tf.sigmoid(gate(gv))
        return l2_normalize(out, 3)


class ConvLSTMCell:
    """util/cell.py's ConvLSTMCell: 1x1 kernel, peepholes, layer norm, no bias, gates j, i, f, o."""

    def __init__(self, store, vf_h, vf_w, filters):
        p = 'rnn/conv_lstm_cell/'
        self.kernel = store.get(SCOPE + p + 'kernel', [1, 1, 2 * filters, 4 * filters],
                                glorot_uniform)
        self.w_ci = store.get(SCOPE + p + 'W_ci', [vf_h, vf_w, filters], glorot_uniform)
        self.w_cf = store.get(SCOPE + p + 'W_cf', [vf_h, vf_w, filters], glorot_uniform)
        self.w_co = store.get(SCOPE + p + 'W_co', [vf_h, vf_w, filters], glorot_uniform)
        # contrib layer_norm named them in call order: j, i, f, o, c.
        self.ln = [LayerNorm(store, p + ('LayerNorm' if k == 0 else 'LayerNorm_%d' % k), filters)
                   for k in range(5)]

    def __call__(self, sequence):
        c = tf.zeros_like(sequence[0])  # [B, h, w, C]
        h = None  # zero at the first step: the kernel's rows for it are left out
        for x in sequence:
            kernel = cast(self.kernel, x.dtype)
            if h is None:
                y = tf.nn.conv2d(x, kernel[:, :, :x.shape[3]], 1, 'SAME')  # [B, h, w, 4C]
            else:
                y = tf.nn.conv2d(tf.concat([x, h], 3), kernel, 1, 'SAME')
            j, i, f, o = tf.split(y, 4, axis=3)
            i = i + cast(self.w_ci, x.dtype) * c
            f = f + cast(self.w_cf, x.dtype) * c
            j, i, f = self.ln[0](j), self.ln[1](i), self.ln[2](f)
            c = c * tf.sigmoid(f + 1.0) + tf.sigmoid(i) * tf.tanh(j)
            o = self.ln[3](o + cast(self.w_co, x.dtype) * c)
            c = self.ln[4](c)
            h = tf.sigmoid(o) * tf.tanh(c)
        return h


# ---------------------------------------------------------------------------------------------

class LSTM_model(tf.Module):
    """CMPC with the original's constructor arguments and defaults (the paper's configuration).

    The keyword arguments are split into the architecture (`self.settings`, a ModelSettings)
    and, in train mode, the training settings (`self.train_settings`, a TrainSettings); see
    util/pipeline/settings.py. `LSTM_model.from_settings(settings, ...)` builds from them directly.
    vf_h and vf_w are derived from H and W (output stride 8); when given they must agree.
    The model does not use the training settings: they are kept for whoever trains it,
    `Trainer(model, model.train_settings)` (util/pipeline/trainer.py), which passes the
    dropout keep-probabilities to `build_graph`. mode='train' also refuses fold.

    Extra arguments: `glove`, the initial embedding (array [vocab_size, glove_dim] or a .npy
    path; random when None: in eval mode the embedding comes from the checkpoint).
    `batch_size` is kept for compatibility: forward and a train step take any batch size.
    `backbone_blocks`: blocks per ResNet stage, (3, 4, 23, 3) = ResNet-101 as the paper; fewer
    (e.g. (1, 1, 1, 1)) give a small backbone for CPU experiments.

    Fast paths, off by default (the faithful path): `precision` 'bf16' or 'fp16' computes in
    that dtype with float32 variables, losses, softmaxes, norms and LSTM (fp16 training uses
    dynamic loss scaling); `xla` compiles forward and train step; `fold` (eval only) folds
    the c3 lateral conv into MUTAN's visual heads at load time (`fold_weights`).

    Data-parallel training: built inside a tf.distribute strategy's `scope()` (MirroredStrategy,
    MultiWorkerMirroredStrategy), the variables are mirrored and the Trainer's train_step splits
    the batch among the replicas and averages their gradients (trainval_model.py's -g, TF_CONFIG).

    Public parts: `forward` / `forward_fn` (numpy / tf.function), `build_graph` (tensors, for a
    train step), `check_inputs`, `save`, `restore`, `restore_backbone`, `store` (variables by TF1
    name; a Trainer adds the optimizer's), `model_variables` (the network's), `backbone`.
    """

    scope = SCOPE

    def __init__(self, batch_size=1, num_steps=20, vf_h=None, vf_w=None, H=320, W=320,
                 vf_dim=2048, vocab_size=12112, w_emb_dim=1000, v_emb_dim=1000, mlp_dim=500,
                 start_lr=0.00025, lr_decay_step=800000, lr_decay_rate=1.0, rnn_size=1000,
                 keep_prob_rnn=1.0, keep_prob_emb=1.0, keep_prob_mlp=1.0, num_rnn_layers=1,
                 optimizer='adam', weight_decay=0.0005, mode='eval', conv5=False, glove_dim=300,
                 emb_name='Gref', glove=None, backbone_blocks=PAPER_BLOCKS, precision='fp32',
                 xla=False, fold=False):
        settings, train_settings = split_model_kwargs(dict(
            batch_size=batch_size, num_steps=num_steps, vf_h=vf_h, vf_w=vf_w, H=H, W=W,
            vf_dim=vf_dim, vocab_size=vocab_size, w_emb_dim=w_emb_dim, v_emb_dim=v_emb_dim,
            mlp_dim=mlp_dim, start_lr=start_lr, lr_decay_step=lr_decay_step,
            lr_decay_rate=lr_decay_rate, rnn_size=rnn_size, keep_prob_rnn=keep_prob_rnn,
            keep_prob_emb=keep_prob_emb, keep_prob_mlp=keep_prob_mlp,
            num_rnn_layers=num_rnn_layers, optimizer=optimizer, weight_decay=weight_decay,
            conv5=conv5, glove_dim=glove_dim, emb_name=emb_name,
            backbone_blocks=backbone_blocks))
        self._build(settings, train_settings, mode, glove, precision, xla, fold)

    @classmethod
    def from_settings(cls, settings, mode='eval', train_settings=None, glove=None,
                      precision='fp32', xla=False, fold=False):
        """The model of a ModelSettings (and, for mode='train', a TrainSettings)."""
        model = cls.__new__(cls)
        model._build(settings, train_settings or TrainSettings(), mode, glove, precision, xla,
                     fold)
        return model

    def _build(self, settings, train_settings, mode, glove, precision, xla, fold):
        super().__init__(name='LSTM_model')
        if mode not in ('eval', 'train'):
            raise ValueError("mode must be 'eval' or 'train', got %r" % (mode,))
        if precision not in COMPUTE_DTYPES:
            raise ValueError('precision must be one of %s, got %r'
                             % (sorted(COMPUTE_DTYPES), precision))
        if fold and mode == 'train':
            raise ValueError('fold is for inference: training may change the weights it folds')
        self.settings, self.mode = settings, mode
        self.train_settings = train_settings if mode == 'train' else None
        self.precision, self.xla, self.fold = precision, xla, fold
        # Built inside `strategy.scope()`, the variables are mirrored on its replicas and a
        # Trainer's train_step runs data-parallel; otherwise the default (single-replica) strategy.
        self.strategy = tf.distribute.get_strategy()
        if xla and self.strategy.num_replicas_in_sync > 1:
            raise ValueError('xla is not supported with several replicas (%d)'
                             % self.strategy.num_replicas_in_sync)
        self.compute_dtype = COMPUTE_DTYPES[precision]
        s = settings
        if isinstance(glove, str):
            glove = np.load(glove)
        if glove is not None and tuple(np.shape(glove)) != (s.vocab_size, s.glove_dim):
            raise ValueError('embedding has shape %s, expected [vocab_size, glove_dim] = [%d, %d]'
                             % (list(np.shape(glove)), s.vocab_size, s.glove_dim))

        self.store = store = VariableStore()
        # No gradient through an eval-mode model: its backbone and word encoder take the
        # faster inference paths.
        inference_only = mode == 'eval'
        self.backbone = DeepLabResNetModel(store, blocks=s.backbone_blocks,
                                           inference_only=inference_only)
        self.words_encoder = WordEncoder(store, s.vocab_size, s.glove_dim, s.rnn_size, glove,
                                         inference_only=inference_only)
        self.lateral = {'c5': Conv(store, 'c5_lateral', 1, s.vf_dim, s.v_emb_dim),
                        'c4': Conv(store, 'c4_lateral', 1, 1024, s.v_emb_dim),
                        'c3': Conv(store, 'c3_lateral', 1, 512, s.v_emb_dim)}
        self.parser = WordParser(store, s.rnn_size, types=len(self.WORD_TYPES))
        self.levels = ('c5', 'c4', 'c3')
        self.mutan = {lv: MutanFusion(store, lv, s.v_emb_dim, s.rnn_size) for lv in self.levels}
        self.reasoning = {lv: RelationAwareReasoning(store, lv, s.v_emb_dim, s.rnn_size)
                          for lv in self.levels}
        self._build_extra(store, s)
        self.fusion = {lv: Conv(store, 'fusion_' + lv, 1, self.fusion_width(s), s.mlp_dim)
                       for lv in self.levels}
        self.level_score = {lv: Conv(store, 'score_' + lv, 3, s.mlp_dim, 1) for lv in self.levels}
        self.exchange = {lv: TextGuidedExchange(store, lv, s.mlp_dim, s.rnn_size)
                         for lv in ('c3', 'c4', 'c5', 'c3_2', 'c4_2', 'c5_2')}
        self.convlstm = ConvLSTMCell(store, s.vf_h, s.vf_w, s.mlp_dim)
        self.score = Conv(store, 'score', 3, s.mlp_dim, 1)
        self.model_variables = dict(store.variables)
        self.spatial = tf.constant(generate_spatial_batch(1, s.vf_h, s.vf_w))  # [1, h, w, 8]
        if fold:
            self.fold_weights()

        self.forward_fn = tf.function(
            lambda words, visual: self.build_graph(words, visual), jit_compile=xla,
            input_signature=self.input_signature)
        # The forward in two parts (the backbone once per picture, then each expression).
        self.visual_fn = tf.function(self.visual_features, jit_compile=xla,
                                     input_signature=self.input_signature[1:])
        features = tf.TensorSpec([None, s.vf_h, s.vf_w, s.v_emb_dim], self.compute_dtype)
        self.segment_fn = tf.function(
            lambda words, visual: self.segment(words, visual), jit_compile=xla,
            input_signature=[self.input_signature[0], {lv: {
                'lateral': features, 'mutan': [features] * len(self.mutan[lv].vis)}
                for lv in self.levels}])

    # -- what a subclass (the video model) changes ---------------------------------------------

    WORD_TYPES = ('entity', 'attribute', 'relation', 'unnecessary')
    input_name = 'im'  # the visual input, as error messages name it

    def _build_extra(self, store, s):
        """Blocks beyond the image model's, created before the fusion convs."""

    @staticmethod
    def fusion_width(s):
        """Channels of build_lang2vis's concatenation: [MUTAN, graph, words, spatial grid]."""
        return 2 * s.v_emb_dim + s.rnn_size + 8

    @property
    def input_signature(self):
        """[words, image] as the forward and the train step take them."""
        s = self.settings
        return [tf.TensorSpec([None, s.num_steps], tf.int32),
                tf.TensorSpec([None, s.H, s.W, 3], tf.float32)]

    # The architecture's sizes, read by the pipeline (settings.vf_h etc. are the owners).
    H = property(lambda self: self.settings.H)
    W = property(lambda self: self.settings.W)
    num_steps = property(lambda self: self.settings.num_steps)
    vocab_size = property(lambda self: self.settings.vocab_size)
    vf_h = property(lambda self: self.settings.vf_h)
    vf_w = property(lambda self: self.settings.vf_w)

    # -- the network ---------------------------------------------------------------------------

    def build_graph(self, words, im, keep_probs=None):
        """words int32 [B, T], im float32 [B, H, W, 3] -> dict of tensors (logits and maps).
        keep_probs: (keep_prob_emb, keep_prob_rnn), the word encoder's dropout in a train step
        (the Trainer passes its settings'); None at inference, no dropout."""
        return self.segment(words, self.visual_features(im), keep_probs)

    def visual_features(self, im):
        """The part of the forward that depends only on the picture: im [B, H, W, 3] ->
        {level: {'lateral': [B, vf_h, vf_w, v_emb], 'mutan': 5 x [B, vf_h, vf_w, v_emb]}}, the
        backbone's res5 / res4 / res3 through the lateral convs and MUTAN's visual heads.
        Computed once, it serves every expression on that picture (`segment`)."""
        return self.picture_side(self.backbone(cast(im, self.compute_dtype)))

    def picture_side(self, backbone_out):
        """visual_features from the backbone's endpoints (the video model's: of the frames)."""
        lateral, folded = self.lateral_features(backbone_out)
        rows = tf.shape(lateral[self.levels[0]])[0]
        spatial = tf.tile(cast(self.spatial, self.compute_dtype), [rows, 1, 1, 1])
        out = {}
        for lv, vis in lateral.items():
            mutan = self.mutan[lv]
            with tf.name_scope('mutan_visual_' + lv):
                heads = (mutan.visual_folded(*folded[lv], spatial) if lv in folded
                         else mutan.visual(vis, spatial))
                out[lv] = {'lateral': vis, 'mutan': heads}
        return out

    def segment(self, words, visual, keep_probs=None):
        """The part of the forward that takes the words: words [B, T] and visual_features of
        their pictures, row for row -> the outputs of build_graph."""
        B = tf.shape(words)[0]
        words_feat, words_parse, valid = self.encode_words(words, keep_probs)
        spatial = tf.tile(cast(self.spatial, self.compute_dtype), [B, 1, 1, 1])  # [B, h, w, 8]
        with tf.name_scope('sentence'):
            entity_attr = words_parse[:, :, :, 0] + words_parse[:, :, :, 1]  # [B, 1, T]
            valid_lang = weighted_words(entity_attr, words_feat)  # [B, 1, 1, rnn]
            nec_lang = self.necessary_lang(words_feat, words_parse)  # [B, 1, 1, rnn]

        fusion = {}
        for lv in self.levels:
            with tf.name_scope('mutan_' + lv):
                vis_la_sp = self.mutan[lv](valid_lang, visual[lv]['mutan'])  # [B, h, w, v_emb]
            with tf.name_scope('reasoning_' + lv):
                graph = self.reasoning[lv](vis_la_sp, words_feat, words_parse, valid)
            fusion[lv] = self.fuse(lv, [vis_la_sp, graph], valid_lang, spatial)
        return self.decode(fusion, nec_lang, words_parse)

    def encode_words(self, words, keep_probs=None):
        """words [B, T] -> words_feat [B, 1, T, rnn] (l2-normalised), words_parse
        [B, 1, T, types] (zero before the first real word) and valid [B, T]; keep_probs as
        build_graph's."""
        T = self.num_steps
        with tf.name_scope('word_encoder'):  # a scope per part: tools/profile_forward.py
            # Words from the first real token on take part (all of them for an all-pad
            # sentence, where the original's valid_idx stayed 0).
            leading_pads = tf.reduce_sum(
                tf.cast(tf.cumsum(tf.cast(words != 0, tf.int32), axis=1) == 0, tf.int32), axis=1)
            first = tf.where(leading_pads == T, 0, leading_pads)  # [B]
            valid = tf.range(T)[None, :] >= first[:, None]  # [B, T]

            keep_emb, keep_rnn = keep_probs if keep_probs is not None else (1.0, 1.0)
            words_feat = self.words_encoder(words, keep_emb, keep_rnn)  # [B, T, rnn]
            words_feat = cast(l2_normalize(words_feat, 2)[:, None], self.compute_dtype)
            return words_feat, self.parser(words_feat, valid), valid

    def lateral_features(self, visual):
        """The backbone's res5 / res4 / res3 through the lateral 1x1 convs, l2-normalised:
        {level: features}; and for each level whose lateral conv is folded into MUTAN's heads
        (fold), what they take instead: {level: (the conv's input, its output's inverse norm)}."""
        c3, c4, c5 = self.backbone.endpoints  # res3b3_relu, res4b22_relu, res5c_relu
        layers = {'c5': visual[c5], 'c4': visual[c4], 'c3': visual[c3]}
        out, folded = {}, {}
        for lv in self.levels:
            with tf.name_scope('lateral_' + lv):
                y = self.lateral[lv](layers[lv])
                out[lv] = l2_normalize(y, 3)
                if self.mutan[lv].folded is not None:
                    folded[lv] = layers[lv], inverse_norm(y, 3)
        return out, folded

    def fuse(self, lv, feats, lang, spatial):
        """The fusion conv of build_lang2vis over [*feats, lang tiled, spatial grid]. The
        sentence is the same at every position: its rows of the kernel act once per sample and
        the result is added everywhere (the original tiled it and convolved every copy)."""
        conv = self.fusion[lv]
        with tf.name_scope('fusion_' + lv):
            w = cast(conv.w, lang.dtype)  # [1, 1, cin, mlp]
            n, r = sum(f.shape[3] for f in feats), lang.shape[3]
            x = tf.concat(feats + [spatial], 3)  # [B, h, w, cin - rnn]
            y = tf.nn.conv2d(x, tf.concat([w[:, :, :n], w[:, :, n + r:]], 2), 1, 'SAME')
            sentence = tf.matmul(lang[:, 0], w[0, 0, n:n + r])[:, None]  # [B, 1, 1, mlp]
            return tf.nn.relu(y + sentence + cast(conv.b, lang.dtype))

    @staticmethod
    def necessary_lang(words_feat, words_parse):
        """The sentence from the words that are not 'unnecessary' (the last type), written as
        the original: the sum of all types minus that one (nec_lang; the video's valid_lang)."""
        necessary = tf.reduce_sum(words_parse, 3) - words_parse[:, :, :, -1]  # [B, 1, T]
        return weighted_words(necessary, words_feat)  # [B, 1, 1, rnn]

    def decode(self, fusion, lang, words_parse):
        """The levels' scores, text-guided feature exchange twice guided by `lang` [B, 1, 1,
        rnn], the ConvLSTM and the score: fusion {level: [B, h, w, mlp]} -> the outputs."""
        out = {}
        for lv in self.levels:
            with tf.name_scope('score_' + lv):
                score = cast(self.level_score[lv](fusion[lv]), tf.float32)  # [B, h, w, 1]
                out['up_' + lv] = resize_bilinear(score, [self.H, self.W])
        f3, f4, f5 = fusion['c3'], fusion['c4'], fusion['c5']
        ex = self.exchange
        with tf.name_scope('exchange'):
            e3, e4, e5 = (ex['c3'](f3, f4, f5, lang), ex['c4'](f4, f3, f5, lang),
                          ex['c5'](f5, f3, f4, lang))
        with tf.name_scope('exchange_2'):
            e3, e4, e5 = (ex['c3_2'](e3, e4, e5, lang), ex['c4_2'](e4, e3, e5, lang),
                          ex['c5_2'](e5, e3, e4, lang))
        with tf.name_scope('convlstm'):
            fused = self.convlstm([e3, e4, e5])  # [B, h, w, mlp]
        with tf.name_scope('score'):
            out['pred'] = cast(self.score(fused), tf.float32)  # [B, h, w, 1]
            out['up'] = resize_bilinear(out['pred'], [self.H, self.W])  # [B, H, W, 1]
            out['sigm'] = tf.sigmoid(out['up'])
        out['words_parse'] = cast(words_parse[:, 0], tf.float32)  # [B, T, types]
        return out

    def forward(self, words, im):
        """numpy in, numpy out: pred, up, sigm, up_c3, up_c4, up_c5, words_parse."""
        words, im = self.check_inputs(words, im)
        return {k: v.numpy() for k, v in self.forward_fn(words, im).items()}

    def forward_visual(self, im):
        """The forward's first part on numpy: im [B, H, W, 3] (the video model: clips) ->
        visual_features, as tensors to pass to forward_words."""
        return self.visual_fn(self.check_picture(im))

    def forward_words(self, words, visual):
        """The forward's second part: words [B, T] and forward_visual's features of their
        pictures, row for row (a picture's rows repeated for several expressions, as
        util/pipeline/once_per_picture.py does) -> numpy outputs equal to forward(words, im)."""
        words = self.check_words(words)
        return {k: v.numpy() for k, v in self.segment_fn(words, visual).items()}

    def check_picture(self, im, batch=None):
        """im (or clip) as float32, checked against the model's size (and batch when given)."""
        im = np.asarray(im, dtype=np.float32)
        want = tuple(self.input_signature[1].shape[1:])
        if im.shape[1:] != want or (batch is not None and im.shape[0] != batch):
            raise ValueError('%s must be [B, %s]%s, got shape %s'
                             % (self.input_name, ', '.join(map(str, want)),
                                '' if batch is None else ' with B = %d' % batch, list(im.shape)))
        return im

    def check_words(self, words):
        """words as int32 [B, T] left-padded ids of the vocabulary; ValueError otherwise."""
        words = np.asarray(words)
        if words.ndim != 2 or words.shape[1] != self.num_steps:
            raise ValueError('words must be [B, %d] (left-padded ids), got shape %s'
                             % (self.num_steps, list(words.shape)))
        if words.min() < 0 or words.max() >= self.vocab_size:
            raise ValueError('word ids must lie in [0, %d), got %d..%d'
                             % (self.vocab_size, words.min(), words.max()))
        return words.astype(np.int32)

    def check_inputs(self, words, im, mask=None):
        """The numpy inputs of a forward (and the mask of a train step) checked against the
        model's sizes and vocabulary, as int32 / float32; ValueError names the bad one."""
        words = self.check_words(words)
        im = self.check_picture(im, batch=words.shape[0])
        if mask is None:
            return words, im
        mask = np.asarray(mask, dtype=np.float32)
        if mask.shape != (im.shape[0], self.H, self.W, 1):
            raise ValueError('mask must be [B, %d, %d, 1], got shape %s'
                             % (self.H, self.W, list(mask.shape)))
        return words, im, mask

    def downsample_mask(self, mask):
        """mask [B, H, W, 1] at the score map's size [B, vf_h, vf_w, 1] (pixel accuracy)."""
        return resize_bilinear(mask, [self.vf_h, self.vf_w])

    # -- checkpoints ---------------------------------------------------------------------------

    def save(self, prefix, meta=None, train_settings=None, step=0):
        """Writes every variable of the store (with a Trainer's optimizer state) under its TF1
        name, and prefix.json: the model's settings, `meta`, and for a train snapshot the
        training settings and step (Trainer.save passes them)."""
        info = run_record(self.settings, train_settings, step, **(meta or {}))
        return save_checkpoint(prefix, dict(self.store.variables), info)

    def restore(self, prefix):
        """Restores a checkpoint of this port or of the original code. Strict for the model's
        variables; optimizer state and step (of a Trainer built before) are restored when the
        checkpoint has them."""
        required = list(self.model_variables)
        restored, missing, unused = restore_checkpoint(prefix, self.store.variables, required)
        if self.fold:
            self.fold_weights()
        print('Restored %d variables from %s' % (len(restored), prefix))
        if missing:
            print('  not in checkpoint (kept as initialised): %d optimizer variables'
                  % len(missing))
        if unused:
            print('  in checkpoint but not in this model: %d (%s%s)'
                  % (len(unused), ', '.join(unused[:3]), ', ...' if len(unused) > 3 else ''))
        return restored, missing, unused

    def fold_weights(self):
        """fold's weights, from the model's (again after each restore; a traced forward keeps
        the path it was traced on): each lateral conv into MUTAN's visual heads where that
        takes fewer multiplications, its input narrower than its output (c3 at the paper size:
        512 channels to 1000; at the small configurations, MUTAN narrower than the backbone,
        nothing folds)."""
        for lv in self.levels:
            cin, cout = self.lateral[lv].w.shape[2:]
            if cin + 1 < cout:
                self.mutan[lv].fold_lateral(self.lateral[lv])

    def restore_backbone(self, prefix):
        """Loads the DeepLab-ResNet-101 weights (deeplab_resnet_init.ckpt) by their Caffe names."""
        backbone = {n: v for n, v in self.model_variables.items()
                    if n.startswith(BACKBONE_PREFIXES)}
        restored, _, unused = restore_checkpoint(prefix, backbone)
        print('Loaded %d backbone variables from %s (%d checkpoint tensors unused)'
              % (len(restored), prefix, len(unused)))
        return restored


# The model module's interface (util/pipeline/models.py): `-n CMPC_model` builds this module.
from util.pipeline.settings import ModelSettings as Settings  # noqa: E402,F401
INPUT = 'image'  # one picture per expression
WORD_TYPES = LSTM_model.WORD_TYPES
