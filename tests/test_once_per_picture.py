"""The backbone once per picture (util/pipeline/once_per_picture.py, LSTM_model.visual_features
and segment) and test mode's picture-by-picture order (util/pipeline/evaluate.picture_order):
outputs, I and U equal to one plain forward per expression, and the backbone counted."""

import numpy as np
import pytest
import tensorflow as tf

from helpers import TINY, VIDEO_TINY, random_images, scene
from util.datasets import batches
from util.pipeline.evaluate import evaluate, picture_order, read_samples
from util.pipeline.once_per_picture import OncePerPicture

SMALL = dict(TINY, backbone_blocks=(1, 1, 1, 1))


def words_of(n, seed):
    """n left-padded sentences of 1-20 ids of TINY's vocabulary."""
    rng = np.random.RandomState(seed)
    words = np.zeros((n, TINY['num_steps']), np.int32)
    for k in range(n):
        length = rng.randint(1, TINY['num_steps'] + 1)
        words[k, -length:] = rng.randint(1, TINY['vocab_size'], length)
    return words


@pytest.fixture(scope='module')
def image_model():
    from CMPC_model import LSTM_model
    tf.random.set_seed(4)
    model = LSTM_model(mode='eval', **SMALL)
    model.backbone.calibrate(random_images(4, seed=1))
    return model


@pytest.fixture(scope='module')
def video_model():
    from CMPC_video.CMPC_video_mm_tgraph_allvec import LSTM_model
    tf.random.set_seed(5)
    model = LSTM_model(mode='eval', **dict(VIDEO_TINY, backbone_blocks=(1, 1, 1, 1)))
    model.backbone.calibrate(random_images(4, seed=2))
    return model


def pictures(model, n, seed):
    """n random images (or clips) of the model's input size."""
    shape = tuple(model.input_signature[1].shape[1:])
    return (60 * np.random.RandomState(seed).randn(n, *shape)).astype(np.float32)


@pytest.mark.parametrize('which', ['image_model', 'video_model'])
def test_one_expression_at_a_time_is_bit_identical_and_counts_pictures(which, request):
    # Pictures 0 0 1 1 1 2 0: the cache holds the last picture only, so the return to 0
    # computes it again: 4 backbone runs for 7 expressions.
    model = request.getfixturevalue(which)
    ims = pictures(model, 3, seed=0)[[0, 0, 1, 1, 1, 2, 0]]
    words = words_of(7, seed=1)
    forward = OncePerPicture(model)
    for k in range(7):
        got, want = forward(words[k:k + 1], ims[k:k + 1]), model.forward(words[k:k + 1],
                                                                         ims[k:k + 1])
        assert sorted(got) == sorted(want)
        for key in want:  # the same ops on the same values, batch 1: equal bit for bit
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert forward.backbone_runs == 4


@pytest.mark.parametrize('which', ['image_model', 'video_model'])
def test_a_batch_of_expressions_on_few_pictures(which, request):
    # One call of 6 expressions on pictures 0 0 1 1 1 0 (the last one again after 1), then a
    # call starting on the previous call's last picture: 3 + 1 backbone runs.
    model = request.getfixturevalue(which)
    ims = pictures(model, 3, seed=3)
    rows = [0, 0, 1, 1, 1, 0, 0, 2]
    words = words_of(len(rows), seed=4)
    forward = OncePerPicture(model)
    first, second = forward(words[:6], ims[rows[:6]]), forward(words[6:], ims[rows[6:]])
    assert forward.backbone_runs == 4
    for k, row in enumerate(rows):
        got = {key: (first if k < 6 else second)[key][k if k < 6 else k - 6] for key in first}
        want = model.forward(words[k:k + 1], ims[row:row + 1])
        # Batched matrix products round differently from batch 1: float32 noise of O(1) logits.
        for key in ('up', 'sigm', 'up_c3', 'words_parse'):
            np.testing.assert_allclose(got[key], want[key][0], rtol=1e-5, atol=1e-5,
                                       err_msg='%s row %d' % (key, k))


def write_sample(folder, prefix, n, im, mask, words, image_id=None):
    arrays = batches.image_sample(words, im, mask, 'expression %d' % n, image_id)
    np.savez(batches.batch_path(folder, prefix, n), **arrays)


def test_picture_order_groups_files_by_image_id_or_by_bytes(tmp_path):
    # Files 0..6 show pictures A B A C B A C; files 0-3 carry image_id, 4-6 (the original's
    # layout) do not and are matched by their bytes; a broken file is its own picture.
    rng = np.random.RandomState(0)
    scenes = {name: scene(rng, 20, 24) for name in 'ABC'}
    shown = 'ABACBAC'
    for n, name in enumerate(shown):
        im, mask = scenes[name]
        write_sample(str(tmp_path), 'unc_val', n, im, mask, [0] * 19 + [n + 1],
                     image_id=name if n < 4 else None)
    # Files with image_id are grouped by it, files without by their image's bytes (a folder
    # of both, e.g. an old build resumed, may then compute a picture twice, never wrongly).
    assert picture_order(str(tmp_path), 'unc_val', 7) == [0, 2, 1, 3, 4, 5, 6]
    for n, name in enumerate(shown):  # now every file without an id: the original's layout
        im, mask = scenes[name]
        write_sample(str(tmp_path), 'unc_val', n, im, mask, [0] * 19 + [n + 1])
    assert picture_order(str(tmp_path), 'unc_val', 7) == [0, 2, 5, 1, 4, 3, 6]
    assert picture_order(str(tmp_path), 'unc_val', 4) == [0, 2, 1, 3]  # the first 4 files
    with open(batches.batch_path(str(tmp_path), 'unc_val', 2), 'wb') as f:
        f.write(b'not a zip')
    assert picture_order(str(tmp_path), 'unc_val', 7) == [0, 5, 1, 4, 2, 3, 6]


def test_test_mode_by_picture_equals_one_forward_per_expression(image_model, tmp_path):
    # 9 expressions on 3 images (sizes differ, files interleaved): test mode's loop with the
    # backbone once per picture and the samples read picture by picture gives the same
    # records in batch-number order, the same figures and 3 backbone runs.
    rng = np.random.RandomState(7)
    scenes = [scene(rng, 48, 80), scene(rng, 72, 56), scene(rng, 64, 64)]
    shown = [0, 1, 0, 2, 1, 1, 0, 2, 2]
    words = words_of(len(shown), seed=8)
    for n, k in enumerate(shown):
        write_sample(str(tmp_path), 'unc_val', n, *scenes[k], words[n])
    H, W = image_model.H, image_model.W
    num, samples = read_samples(str(tmp_path), 'unc_val', H, W)
    plain = evaluate(image_model.forward, samples, num, progress=False, dcrf=False)
    forward = OncePerPicture(image_model)
    num, samples = read_samples(str(tmp_path), 'unc_val', H, W, by_picture=True)
    seen = []
    shared = evaluate(forward, samples, num, progress=False,
                      on_output=lambda sample, out: seen.append(sample.index))
    assert seen == [0, 2, 6, 1, 4, 5, 3, 7, 8]
    assert forward.backbone_runs == 3
    assert shared.per_sample == plain.per_sample
    assert [r['batch_no'] for r in shared.per_sample] == list(range(9))
    assert shared.to_dict()['without_DenseCRF'] == plain.to_dict()['without_DenseCRF']
