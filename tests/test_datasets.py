"""util/datasets/: the clip geometry, the training input of a stored sample, the manifest, and
the "add a dataset" recipe of util/datasets/__init__.py run end to end (a new module, the one
writer, then trainval_model.py trains and tests on it). The builders' files against the
original's are tested in test_build_batches.py and test_build_a2d_batches.py."""

import importlib.util
import json
import os

import numpy as np
import pytest
from PIL import Image

from helpers import TINY_FLAGS, run_main, write_batches, write_video_batches, write_vocab
from util.data_reader import VIDEO_REQUIRED_KEYS, load_batch
from util.datasets import batches

pytestmark = pytest.mark.eager  # tf.functions run eagerly (conftest.py)

MU = np.array((104.00698793, 116.66876762, 122.67891434))  # the Caffe BGR mean, written out


# --------------------------------------------------------------------------- clip geometry

def test_clip_window_is_16_frames_around_the_annotated_one_clamped():
    assert batches.clip_window(10, 30) == list(range(2, 18))  # [10 - 8, 10 + 8)
    # frame 2 of a 5-frame video: [-6, 10) clamped to 1..5
    assert batches.clip_window(2, 5) == [1] * 8 + [2, 3, 4, 5] + [5] * 4
    assert batches.clip_window(30, 30) == list(range(22, 31)) + [30] * 7
    for f, n in ((1, 1), (2, 5), (9, 9), (17, 40)):
        window = batches.clip_window(f, n)
        assert len(window) == batches.CLIP_FRAMES and window[batches.ANNOTATED_FRAME] == f


# --------------------------------------------------------------------------- training input

def test_train_input_of_an_image_sample(tmp_path):
    write_batches(str(tmp_path), 's', 2, [(64, 64), (40, 70)], seed=3)
    batch = load_batch(str(tmp_path / 's_0.npz'))
    words, im, mask = batches.train_input(batch, 64, 64)
    assert words.dtype == np.int32 and list(words) == list(batch['text_batch'])
    # Already at 64 x 64: only RGB -> BGR minus the mean.
    assert im.dtype == np.float32 and im.shape == (64, 64, 3)
    np.testing.assert_allclose(im, batch['im_batch'][:, :, ::-1].astype(np.float64) - MU,
                               rtol=0, atol=1e-4)
    np.testing.assert_array_equal(mask, batch['mask_batch'])
    # Another size: resized and padded to 64 x 64 (as the builder does for a train split).
    words, im, mask = batches.train_input(load_batch(str(tmp_path / 's_1.npz')), 64, 64)
    assert im.shape == (64, 64, 3) and mask.shape == (64, 64) and mask.dtype == bool
    # 40 x 70 -> 37 x 64 in the middle: rows 13 and 50 are padding (zero image, BGR - MU).
    np.testing.assert_allclose(im[:13], np.broadcast_to(-MU, (13, 64, 3)), atol=1e-4)
    assert not mask[:13].any() and not mask[50:].any()


def test_train_input_of_a_clip_and_of_its_annotated_frame(tmp_path):
    write_video_batches(str(tmp_path), 'v', 1, (32, 32), seed=4)
    batch = load_batch(str(tmp_path / 'v_0.npz'), VIDEO_REQUIRED_KEYS)
    words, clip, mask = batches.train_input(batch, 32, 32, clip=True)
    assert clip.shape == (16, 32, 32, 3) and clip.dtype == np.float32
    for k in (0, 8, 15):
        np.testing.assert_allclose(clip[k], batch['frames'][k][:, :, ::-1] - MU, atol=1e-4)
    np.testing.assert_array_equal(mask, batch['mask_batch'])
    # The image model reads a video sample as the image of its annotated frame.
    _, im, _ = batches.train_input(batch, 32, 32)
    np.testing.assert_array_equal(im, clip[batches.ANNOTATED_FRAME])


# --------------------------------------------------------------------------- the manifest

def test_manifest_refuses_other_settings_unless_overwrite(tmp_path):
    path = str(tmp_path / 'split' / '.build.json')
    batches.check_build_manifest(path, {'T': 20, 'size': 64}, overwrite=False)
    batches.check_build_manifest(path, {'T': 20, 'size': 64}, overwrite=False)  # same: resumes
    with pytest.raises(ValueError, match=r'split was built with other settings \(size: \[64\], '
                                         r'now \[32\]\); rerun with --overwrite'):
        batches.check_build_manifest(path, {'T': 20, 'size': 32}, overwrite=False)
    batches.check_build_manifest(path, {'T': 20, 'size': 32}, overwrite=True)
    assert json.load(open(path)) == {'T': 20, 'size': 32}


# --------------------------------------------------------------------------- a new dataset

# A new dataset, written the way util/datasets/__init__.py says: one module that yields samples.
NEW_DATASET = '''"""mydata: {root}/{split}.json {key: [sentence, ...]}, {root}/images/{key}.png and
{root}/masks/{key}.npy (the object's mask)."""
import functools
import json
import os

import numpy as np

from util.datasets.batches import ImageEntry, read_image


def load(image, mask_path, what):
    return read_image(image, what), np.load(mask_path)


def entries(split, root):
    index = os.path.join(root, split + '.json')
    with open(index) as f:
        queries = json.load(f)
    return [ImageEntry(sents=sents, what='%s entry %s' % (index, key),
                       load=functools.partial(load, os.path.join(root, 'images', key + '.png'),
                                              os.path.join(root, 'masks', key + '.npy'), key))
            for key, sents in queries.items()]
'''
SENTENCES = {'a': ['the red circle', 'left of the star'], 'b': ['big square .'],
             'c': ['the small star', 'above the circle', 'the blue square']}


def write_release(root, split, names, sizes, seed):
    """A tiny release of mydata; returns {key: (image, mask)}."""
    rng = np.random.RandomState(seed)
    os.makedirs(os.path.join(root, 'images'), exist_ok=True)
    os.makedirs(os.path.join(root, 'masks'), exist_ok=True)
    arrays = {}
    for key, (h, w) in zip(names, sizes):
        im = rng.randint(0, 90, (h, w, 3)).astype(np.uint8)
        mask = np.zeros((h, w), bool)
        mask[h // 4:h // 2, w // 3:2 * w // 3] = True
        im[mask] = 230
        Image.fromarray(im).save(os.path.join(root, 'images', key + '.png'))
        np.save(os.path.join(root, 'masks', key + '.npy'), mask)
        arrays[key] = (im, mask)
    with open(os.path.join(root, split + '.json'), 'w') as f:
        json.dump({k: SENTENCES[k] for k in names}, f)
    return arrays


def import_module_file(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.cli  # runs trainval_model.py twice
def test_a_new_dataset_is_one_module_then_train_and_test(tmp_path):
    (tmp_path / 'mydata.py').write_text(NEW_DATASET)
    mydata = import_module_file(str(tmp_path / 'mydata.py'), 'mydata')
    release, out = str(tmp_path / 'release'), str(tmp_path / 'batches')
    write_release(release, 'train', ['a', 'b'], [(64, 64), (48, 80)], seed=1)
    val = write_release(release, 'val', ['c'], [(40, 56)], seed=2)
    vocab = write_vocab(str(tmp_path / 'vocab.txt'), 50)

    for split in ('train', 'val'):
        written, kept, total = batches.build_image_split(
            out, 'mydata', split, mydata.entries(split, release), vocab, input_size=64)
        assert written == total == 3 and kept == 0
    # The one writer's files: the format's keys, a train split at 64 x 64, a val split as is.
    folder = os.path.join(out, 'mydata', 'val_batch')
    assert sorted(f for f in os.listdir(folder) if f.endswith('.npz')) == [
        'mydata_val_%d.npz' % n for n in range(3)]
    words = [w.strip() for w in open(vocab)]
    for n, sent in enumerate(SENTENCES['c']):
        with np.load(os.path.join(folder, 'mydata_val_%d.npz' % n)) as z:
            assert sorted(z.files) == sorted(batches.IMAGE_KEYS)
            np.testing.assert_array_equal(z['im_batch'], val['c'][0])
            np.testing.assert_array_equal(z['mask_batch'], val['c'][1])
            assert z['sent_batch'][0] == sent
            ids = [words.index(w) for w in sent.split()]
            assert list(z['text_batch']) == [0] * (20 - len(ids)) + ids
    with np.load(os.path.join(out, 'mydata', 'train_batch', 'mydata_train_2.npz')) as z:
        assert z['im_batch'].shape == (64, 64, 3) and z['sent_batch'][0] == 'big square .'
    # A rerun resumes: nothing to write.
    assert batches.build_image_split(out, 'mydata', 'val', mydata.entries('val', release),
                                     vocab, input_size=64)[:2] == (0, 3)

    # One block per ResNet stage: the full backbone's tracing is tested elsewhere.
    run_main(['-m', 'train', '-d', 'mydata', '-t', 'train', '-f', 'ckpts', '-i', '1', '-s', '1',
              '--data-root', out, '--random-backbone', '--seed', '0', '--backbone-blocks',
              '1,1,1,1'] + TINY_FLAGS, tmp_path)
    assert os.path.isfile(tmp_path / 'ckpts' / 'mydata_iter_1.tfmodel.index')
    run_main(['-m', 'test', '-d', 'mydata', '-t', 'val', '-f', 'ckpts', '-i', '1',
              '--data-root', out], tmp_path)
    res = json.load(open(tmp_path / 'ckpts' / 'mydata_val_iter_1_results.json'))
    assert res['expressions'] == 3 and len(res['per_sample']) == 3
