"""The video network, CMPC_video/CMPC_video_mm_tgraph_allvec.py: its new blocks (frame sampling,
the 5-type word parser, the temporal graph, the temporal context) against numpy, its variable
lists against the original graph's (../shared/reference/vars_video_*.txt), the whole forward
against np_reference.reference_forward_video (the numpy re-implementation of the ORIGINAL video
graph at batch size 1, float64), batches against batch size 1, one train step's losses against
the original's cost, and checkpoints.

    cd /work/main && .venv/bin/python -m pytest tests/test_video_model.py -q
"""

import gc

import numpy as np
import pytest
import tensorflow as tf

from CMPC_model import WordParser
from CMPC_video.CMPC_video_mm_tgraph_allvec import (SAMPLED_FRAMES, LSTM_model, TemporalContext,
                                                    TemporalGraph, sample_frames)
from helpers import (ENDPOINTS, ID_SENTENCES, NUM_STEPS, TINY, VIDEO_TINY,
                     assert_same_variables,
                     model_params, randomise, read_reference_variables)
from np_reference import (SCOPE, cls_losses, l2_normalize as l2n, reference_forward_video,
                          softmax, temp_ctx, temp_graph, unscoped, weight_decay_loss)
from test_cmpc_model import (ATOL, BLOCK_ATOL, BLOCK_RTOL, OUTPUTS, RTOL,
                             assert_each_sample_as_alone, randomise_store)
from util.pipeline.checkpoint import VariableStore
from util.pipeline.settings import ModelSettings, VideoModelSettings
from util.pipeline.trainer import Trainer

FRAMES = 16


def random_clips(n, seed):
    """n clips [n, 16, 64, 64, 3] (BGR minus the mean, tens of units) whose frames differ."""
    rng = np.random.RandomState(seed)
    return (60 * rng.randn(n, FRAMES, TINY['H'], TINY['W'], 3)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# blocks

def test_sample_frames_takes_clip_frames_0_4_8_12_15_sample_by_sample():
    # Each pixel holds 100 * sample + frame: the gathered frames say where they came from.
    clip = (100 * np.arange(2)[:, None] + np.arange(FRAMES)[None, :]).astype(np.float32)
    clip = np.broadcast_to(clip[:, :, None, None, None], (2, FRAMES, 3, 2, 3)).copy()
    got = sample_frames(tf.constant(clip)).numpy()
    assert got.shape == (10, 3, 2, 3)
    np.testing.assert_array_equal(got[:, 0, 0, 0], [0, 4, 8, 12, 15, 100, 104, 108, 112, 115])
    assert SAMPLED_FRAMES[2] == 8  # the annotated frame is the third sampled one


def test_word_parser_has_five_types_and_zero_padding():
    store = VariableStore()
    parser = WordParser(store, rnn_size=6, types=5)
    assert store.variables[SCOPE + 'words_parse_2/DW'].shape == (1, 1, 500, 5)
    p = unscoped(randomise_store(store, 3, scale=0.3))
    rng = np.random.RandomState(4)
    feat = l2n(rng.randn(2, 1, 7, 6), -1)
    valid = np.arange(7)[None] >= np.array([3, 0])[:, None]
    got = parser(tf.constant(feat, tf.float32), tf.constant(valid)).numpy()
    hidden = np.maximum(feat @ p['words_parse_1/DW'][0, 0] + p['words_parse_1/biases'], 0)
    want = softmax(hidden @ p['words_parse_2/DW'][0, 0] + p['words_parse_2/biases'], -1)
    want = want * valid[:, None, :, None]
    assert got.shape == (2, 1, 7, 5)
    np.testing.assert_allclose(got, want, rtol=BLOCK_RTOL, atol=BLOCK_ATOL)
    np.testing.assert_array_equal(got[0, 0, :3], 0)


def test_temporal_graph_against_numpy():
    C, F, B = 6, len(SAMPLED_FRAMES), 2
    store = VariableStore()
    graph = TemporalGraph(store, 'c4', v_emb_dim=C, rnn_size=C)
    p = unscoped(randomise_store(store, 5, scale=0.5))
    rng = np.random.RandomState(6)
    mm = l2n(rng.randn(B * F, 3, 4, C), -1)  # the frames of a sample in a row
    lang = l2n(rng.randn(B, 1, 1, C), -1)
    got = graph(tf.constant(mm, tf.float32), tf.constant(lang, tf.float32)).numpy()
    assert got.shape == (B, 1, F, C)
    for b in range(B):
        want = temp_graph(p, mm[b * F:(b + 1) * F], lang[b, 0, 0], 'c4', C)
        np.testing.assert_allclose(got[b, 0], want, rtol=1e-4, atol=1e-5)
    # The samples' nodes differ: no sample reads another's frames or words.
    assert np.abs(got[0] - got[1]).max() > 1e-2


def test_temporal_context_against_numpy():
    C, F, B = 6, len(SAMPLED_FRAMES), 2
    store = VariableStore()
    context = TemporalContext(store, 'c3', v_emb_dim=C)
    p = unscoped(randomise_store(store, 7, scale=0.5))
    rng = np.random.RandomState(8)
    mm = l2n(rng.randn(B, 3, 4, C), -1)
    nodes = l2n(rng.randn(B, 1, F, C), -1)
    got = context(tf.constant(mm, tf.float32), tf.constant(nodes, tf.float32)).numpy()
    for b in range(B):
        want = temp_ctx(p, mm[b], nodes[b, 0], 'c3', C)
        np.testing.assert_allclose(got[b], want, rtol=BLOCK_RTOL, atol=BLOCK_ATOL)


# ---------------------------------------------------------------------------------------------
# variable lists: name for name, shape for shape

def test_variables_tiny_eval():
    model = LSTM_model(mode='eval', **VIDEO_TINY)
    assert_same_variables(model.store, read_reference_variables('vars_video_eval_tiny.txt'))


def test_variables_paper_eval_and_train():
    # Only variables are created at the paper's size (no forward).
    model = LSTM_model(mode='eval')
    assert_same_variables(model.store, read_reference_variables('vars_video_eval_full.txt'))
    del model
    gc.collect()
    model = LSTM_model(mode='train')
    Trainer(model, model.train_settings)  # adds the optimizer's variables to the store
    assert_same_variables(model.store, read_reference_variables('vars_video_train_full.txt'))
    del model
    gc.collect()


# ---------------------------------------------------------------------------------------------
# a tiny video model with random weights

@pytest.fixture(scope='module')
def model():
    m = LSTM_model(mode='eval', **VIDEO_TINY)
    randomise(m, 1)
    # Unit-scale backbone features that differ from frame to frame, as with real weights
    # (random batch-norm statistics would leave the frames' features nearly alike).
    m.backbone.calibrate(random_clips(1, seed=99)[0])
    return m


def frame_features(model, clip):
    """The port's backbone endpoints of the 5 sampled frames of ONE clip [16, H, W, 3] (clip
    indices 0, 4, 8, 12, 15, picked here by numpy), float64. The backbone (tested in
    test_deeplab_resnet.py) runs on the 5 frames at once in a tf.function as in the model's
    forward: with calibrated batch norms, eager and graph execution of the 101 layers differ
    by ~4e-5 relative (graph rewrites change the float32 rounding), which the heads amplify
    beyond the tolerance."""
    layers = tf.function(model.backbone)(tf.constant(clip[[0, 4, 8, 12, 15]], tf.float32))
    return [{k: layers[k].numpy()[f].astype(np.float64) for k in ENDPOINTS} for f in range(5)]


@pytest.mark.parametrize('key', ['short', 'long', 'unknown'])
def test_forward_matches_original(model, key):
    words = ID_SENTENCES[key]
    clip = random_clips(1, seed=len(key))
    out = model.forward(words[None], clip)
    ref = reference_forward_video(model_params(model), words, frame_features(model, clip[0]),
                                  VIDEO_TINY)
    assert out['pred'].shape == (1, 8, 8, 1) and out['up'].shape == (1, 64, 64, 1)
    for k in OUTPUTS:  # the tolerances of test_cmpc_model.py: the chain is as long
        np.testing.assert_allclose(out[k][0], ref[k], rtol=RTOL, atol=ATOL, err_msg=k)
    assert np.std(ref['up']) > 1e-2 and np.std(ref['pred']) > 1e-2
    v = ref['valid_idx']
    parse = out['words_parse'][0]
    assert parse.shape == (NUM_STEPS, 5)
    np.testing.assert_array_equal(parse[:v], 0)
    np.testing.assert_allclose(parse[v:], ref['words_parse'], rtol=RTOL, atol=ATOL)


def test_forward_depends_on_the_other_frames(model):
    # Changing a sampled frame other than the annotated one changes the result (the temporal
    # graph reads it); changing an unsampled frame does not.
    words = ID_SENTENCES['long'][None]
    clip = random_clips(1, seed=21)
    base = model.forward(words, clip)['up']
    other = clip.copy()
    other[0, 0] = random_clips(1, seed=22)[0, 0]
    unsampled = clip.copy()
    unsampled[0, 1] = random_clips(1, seed=23)[0, 1]
    # Two forwards of one input are identical here, so 10 x ATOL is far above any noise.
    assert np.abs(model.forward(words, other)['up'] - base).max() > 10 * ATOL
    np.testing.assert_array_equal(model.forward(words, unsampled)['up'], base)


def test_batch_of_three_gives_each_sample_its_own_result(model):
    assert_each_sample_as_alone(model, random_clips(3, seed=31))


def test_forward_refuses_an_image(model):
    with pytest.raises(ValueError, match=r'clip must be \[B, 16, 64, 64, 3\]'):
        model.forward(ID_SENTENCES['short'][None], np.zeros((1, 64, 64, 3), np.float32))


# ---------------------------------------------------------------------------------------------
# training and checkpoints

@pytest.mark.slow  # a video train step, about 50 s: in CI (.ci/run)
def test_train_step_losses_match_original_cost(model, tmp_path):
    prefix = str(tmp_path / 'v')
    model.save(prefix)
    trained = LSTM_model(mode='train', **VIDEO_TINY)
    trainer = Trainer(trained, trained.train_settings)
    trained.restore(prefix)
    words = np.stack([ID_SENTENCES['short'], ID_SENTENCES['long']])
    clips = random_clips(2, seed=41)
    mask = np.zeros((2, 64, 64, 1), np.float32)
    mask[0, 10:30, 20:50] = 1
    mask[1, 40:60, 5:25] = 1
    params = model_params(model)
    refs = [reference_forward_video(params, words[b], frame_features(model, clips[b]),
                                    VIDEO_TINY)
            for b in range(2)]
    want = cls_losses({k: np.stack([r[k] for r in refs]) for k in ('up', 'up_c3', 'up_c4',
                                                                     'up_c5')}, mask)
    before = {n: v.numpy() for n, v in trained.store.variables.items()}
    out = trainer.train_step(words, clips, mask)
    # Per-image sums over 4096 pixels of float32 terms: the logits' relative bound carries over.
    for k in ('cls_loss', 'cls_loss_c3', 'cls_loss_c4', 'cls_loss_c5', 'cls_loss_all'):
        np.testing.assert_allclose(out[k], want[k], rtol=1e-4, err_msg=k)
    np.testing.assert_allclose(out['reg_loss'], weight_decay_loss(params), rtol=1e-5)
    assert trainer.step == 1
    # The temporal blocks are trained; the backbone is frozen without finetune.
    for name in ('tg_vtrans_c4/DW', 'ctx_trans_c5/DW', 'words_parse_2/DW'):
        assert np.abs(trained.store[SCOPE + name].numpy() - before[SCOPE + name]).max() > 0
    assert np.array_equal(trained.store['res5c_branch2b/weights'].numpy(),
                          before['res5c_branch2b/weights'])


def test_finetune_trains_res3_to_res5():
    model = LSTM_model(mode='train', finetune=True, **VIDEO_TINY)
    assert model.train_settings.conv5
    trainer = Trainer(model, model.train_settings)
    assert 'res5c_branch2b/weights' in trainer.names
    assert not any(n.startswith('bn') for n in trainer.names)


def test_checkpoint_records_the_video_model(model, tmp_path):
    import json
    prefix = str(tmp_path / 'v')
    model.save(prefix)
    with open(prefix + '.json') as f:
        meta = json.load(f)
    assert meta['model']['kind'] == 'video' and meta['model']['frames'] == 16
    assert VideoModelSettings.from_json(meta) == model.settings
    with pytest.raises(ValueError, match='video model.*CMPC_video/trainval_video.py'):
        ModelSettings.from_json(meta)
    fresh = LSTM_model(mode='eval', **VIDEO_TINY)
    fresh.restore(prefix)
    words, clip = ID_SENTENCES['short'][None], random_clips(1, seed=51)
    np.testing.assert_array_equal(fresh.forward(words, clip)['up'], model.forward(words, clip)['up'])
