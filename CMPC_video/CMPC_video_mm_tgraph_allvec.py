"""CMPC for video: the model of github:spyflying/CMPC-Refseg's
CMPC_video/CMPC_video_mm_tgraph_allvec.py, with the same mathematics and the same variable names
and shapes, so that its checkpoints load unchanged.

    model = LSTM_model(mode='eval', H=64, W=64, vocab_size=50, rnn_size=32, v_emb_dim=32,
                       mlp_dim=16)
    out = model.forward(words, clip)  # words int32 [B, T]; clip [B, 16, H, W, 3] BGR - mean

It is the image model (CMPC_model.py) with these differences, each a block of its own here or a
hook of the image model:
- the backbone runs on 5 frames of the 16-frame clip, [0, 4, 8, 12, 15] (`sample_frames`); the
  annotated frame is clip index 8, the third sampled frame;
- the word parser has 5 types: entity, attribute, static relation, action, unnecessary;
- per level, MUTAN fuses every frame with the entity + attribute words; a temporal graph
  (`TemporalGraph`) whose 5 nodes are the frames pooled by attention of the action words; the
  annotated frame attends to those nodes (`TemporalContext`); the spatial relation graph runs
  on the annotated frame; the fusion conv takes [lateral feature, spatial graph, temporal
  context, words, spatial grid] of the annotated frame;
- the rest (text-guided exchange twice, ConvLSTM) is the image model's, and so is training
  (util/pipeline/trainer.py: the four losses, Adam).

Batches. The original only ran at batch size 1: it took the annotated frame as row 2 of the
flattened [B * 5] frames and tiled MUTAN's words so that frames met another sample's sentence.
Here every sample computes what it computes alone; batch size 1 is the original.
"""

import tensorflow as tf

# Imported as CMPC_video.CMPC_video_mm_tgraph_allvec from the repository root (the scripts in
# CMPC_video/ put the root on the path themselves).
import CMPC_model
from CMPC_model import Conv, GraphConv, cast, l2_normalize, softmax, weighted_words
from util.pipeline.settings import VideoModelSettings, split_model_kwargs

SAMPLED_FRAMES = (0, 4, 8, 12, 15)  # clip indices the backbone sees
ANNOTATED = 2  # the annotated frame (clip index 8) among them


def sample_frames(clip):
    """clip [B, frames, H, W, 3] -> the sampled frames [B * 5, H, W, 3], sample by sample."""
    frames = tf.gather(clip, SAMPLED_FRAMES, axis=1)  # [B, 5, H, W, 3]
    return tf.reshape(frames, [-1] + list(clip.shape[2:]))


class TemporalGraph:
    """build_temp_graph: each frame is pooled into one node by attention of the action words,
    and the 5 nodes exchange messages along their affinities (graph_conv 'temp_graph')."""

    def __init__(self, store, level, v_emb_dim, rnn_size, frames=len(SAMPLED_FRAMES)):
        self.vtrans = Conv(store, 'tg_vtrans_' + level, 1, v_emb_dim, v_emb_dim)
        self.ltrans = Conv(store, 'tg_ltrans_' + level, 1, rnn_size, rnn_size)
        self.query = Conv(store, 'tg_query_' + level, 1, v_emb_dim, v_emb_dim)
        self.key = Conv(store, 'tg_key_' + level, 1, v_emb_dim, v_emb_dim)
        self.graph_conv = GraphConv(store, 'temp_graph', level, v_emb_dim)
        self.v_emb_dim, self.frames = v_emb_dim, frames

    def __call__(self, mm_feat, action_lang):
        # mm_feat [B * F, h, w, C] (the frames of a sample in a row); action_lang [B, 1, 1, rnn]
        h, w, C = mm_feat.shape[1], mm_feat.shape[2], mm_feat.shape[3]
        F = self.frames
        flat = tf.reshape(mm_feat, [-1, h * w, C])  # [BF, HW, C]
        lang_trans = tf.repeat(self.ltrans(action_lang), F, axis=0)[:, 0]  # [BF, 1, rnn]
        # lang_trans @ vtrans(mm_feat)^T, without the [BF, HW, C] transform (Conv.dot)
        attn = tf.transpose(self.vtrans.dot(flat, lang_trans), [0, 2, 1]) / self.v_emb_dim ** 0.5
        attn = softmax(attn, axis=2)  # [BF, 1, HW], over positions
        nodes = tf.matmul(attn, flat)  # [BF, 1, C]
        nodes = tf.reshape(nodes, [-1, 1, F, C])  # [B, 1, F, C]
        query = tf.reshape(self.query(nodes), [-1, F, C])  # [B, F, C]
        key = tf.reshape(self.key(nodes), [-1, F, C])  # [B, F, C]
        adj = softmax(tf.matmul(query, key, transpose_b=True) / self.v_emb_dim ** 0.5, axis=2)
        return l2_normalize(self.graph_conv(nodes, adj), 3)  # [B, 1, F, C]


class TemporalContext:
    """build_temp_ctx: each position of the annotated frame gathers the temporal graph's nodes
    by attention."""

    def __init__(self, store, level, v_emb_dim):
        self.mm_trans = Conv(store, 'mm_trans_' + level, 1, v_emb_dim, v_emb_dim)
        self.ctx_trans = Conv(store, 'ctx_trans_' + level, 1, v_emb_dim, v_emb_dim)
        self.v_emb_dim = v_emb_dim

    def __call__(self, mm_feat, nodes):
        # mm_feat [B, h, w, C] (the annotated frame); nodes [B, 1, F, C]
        h, w, C = mm_feat.shape[1], mm_feat.shape[2], mm_feat.shape[3]
        F = nodes.shape[2]
        ctx_trans = tf.reshape(self.ctx_trans(nodes), [-1, F, C])  # [B, F, C]
        # mm_trans(mm_feat) @ ctx_trans^T, without the [B, HW, C] transform (Conv.dot)
        attn = self.mm_trans.dot(tf.reshape(mm_feat, [-1, h * w, C]), ctx_trans)
        attn = attn / self.v_emb_dim ** 0.5
        attn = softmax(attn, axis=2)  # [B, HW, F], over frames
        context = tf.matmul(attn, tf.reshape(nodes, [-1, F, C]))  # [B, HW, C]
        return l2_normalize(tf.reshape(context, [-1, h, w, C]), 3)  # [B, h, w, C]


class LSTM_model(CMPC_model.LSTM_model):
    """The video CMPC with the original's constructor arguments (`frames=16`, `finetune` to train
    res3-res5 as the image model's conv5) and the image model's API: forward(words, clip), save,
    restore; trained by util/pipeline/trainer.py's Trainer as the image model, its
    train_step(words, clip, mask) taking mask [B, H, W, 1] of the annotated frame. The other
    keyword arguments, the fast paths and tf.distribute are the image model's."""

    WORD_TYPES = ('entity', 'attribute', 'static relation', 'action', 'unnecessary')
    SAMPLED_FRAMES = SAMPLED_FRAMES
    input_name = 'clip'

    def __init__(self, mode='eval', finetune=False, frames=16, glove=None, precision='fp32',
                 xla=False, fold=False, **kwargs):
        settings, train_settings = split_model_kwargs(
            dict(kwargs, frames=frames, conv5=finetune), VideoModelSettings)
        self._build(settings, train_settings, mode, glove, precision, xla, fold)

    def _build_extra(self, store, s):
        self.frame_fn = tf.function(self.frame_features, jit_compile=self.xla,
                                    input_signature=[tf.TensorSpec([None, s.H, s.W, 3],
                                                                   tf.float32)])
        self.temporal_graph = {lv: TemporalGraph(store, lv, s.v_emb_dim, s.rnn_size)
                               for lv in self.levels}
        self.temporal_context = {lv: TemporalContext(store, lv, s.v_emb_dim)
                                 for lv in self.levels}

    @staticmethod
    def fusion_width(s):
        """[lateral, spatial graph, temporal context, words, spatial grid]: 3C + R + 8."""
        return 3 * s.v_emb_dim + s.rnn_size + 8

    @property
    def input_signature(self):
        """[words, clip] as the forward and the train step take them."""
        s = self.settings
        words = super().input_signature[0]
        return [words, tf.TensorSpec([None, s.frames, s.H, s.W, 3], tf.float32)]

    def visual_features(self, clip):
        """clip [B, frames, H, W, 3] -> frame_features of the sampled frames, [B * 5, ...]
        sample by sample (build_graph's first part)."""
        return self.frame_features(sample_frames(clip))

    def frame_features(self, frames):
        """frames [N, H, W, 3] -> the image model's visual_features of each frame, row for row.
        A frame's rows are the same in every clip that samples it, so a whole video needs them
        once per frame (util/pipeline/once_per_picture.FrameFeatures); a clip's
        visual_features are the rows of its sampled frames, in SAMPLED_FRAMES order."""
        return self.picture_side(self.backbone(cast(frames, self.compute_dtype)))

    def segment(self, words, visual, keep_probs=None):
        """words [B, T] and visual_features of their clips -> the outputs of the annotated
        frame (build_graph's second part)."""
        B, F = tf.shape(words)[0], len(SAMPLED_FRAMES)
        words_feat, words_parse, valid = self.encode_words(words, keep_probs)
        spatial = tf.tile(cast(self.spatial, self.compute_dtype), [B, 1, 1, 1])  # [B, h, w, 8]
        with tf.name_scope('sentence'):
            entity_attr = words_parse[:, :, :, 0] + words_parse[:, :, :, 1]  # [B, 1, T]
            ea_lang = weighted_words(entity_attr, words_feat)  # [B, 1, 1, rnn]
            action_lang = weighted_words(words_parse[:, :, :, 3], words_feat)
            valid_lang = self.necessary_lang(words_feat, words_parse)  # all but 'unnecessary'
            ea_frames = tf.repeat(ea_lang, F, axis=0)  # [BF, 1, 1, rnn]: each frame its sentence

        fusion = {}
        for lv in self.levels:
            vis = visual[lv]['lateral']  # [BF, h, w, C]
            h, w, C = vis.shape[1], vis.shape[2], vis.shape[3]
            with tf.name_scope('mutan_' + lv):
                mm_feat = self.mutan[lv](ea_frames, visual[lv]['mutan'])  # [BF, h, w, C]
            with tf.name_scope('temporal_graph_' + lv):
                nodes = self.temporal_graph[lv](mm_feat, action_lang)  # [B, 1, F, C]
                key_mm = tf.reshape(mm_feat, [-1, F, h, w, C])[:, ANNOTATED]  # [B, h, w, C]
                key_vis = tf.reshape(vis, [-1, F, h, w, C])[:, ANNOTATED]
                context = self.temporal_context[lv](key_mm, nodes)  # [B, h, w, C]
            with tf.name_scope('reasoning_' + lv):
                graph = self.reasoning[lv](key_mm, words_feat, words_parse, valid)
            fusion[lv] = self.fuse(lv, [key_vis, graph, context], valid_lang, spatial)
        return self.decode(fusion, valid_lang, words_parse)


# The model module's interface (util/pipeline/models.py): `-n CMPC_video_mm_tgraph_allvec`.
Settings = VideoModelSettings
INPUT = 'clip'  # a 16-frame clip per expression
WORD_TYPES = LSTM_model.WORD_TYPES
