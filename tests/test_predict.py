"""Predict mode (-m predict, util/predict.py) on generated images of several modes and sizes.

The CLI runs once on four images (RGB, grey, RGBA, an EXIF-rotated JPEG) and two sentences; its
masks are checked against `forward` of the same weights plus the original post-processing,
written out here independently of util/predict.py. Bad inputs run the CLI and must end with a
one-line error, no traceback.
"""

import json
import os

import numpy as np
import pytest
import skimage
from PIL import Image, ImageOps

from fixtures import TINY, run_script, start_script
from util import im_processing
from util.text_processing import SPECIAL_TOKENS, preprocess_sentence, load_vocab_dict_from_file

MU = np.array((104.00698793, 116.66876762, 122.67891434))  # trainval_model.MU, written out
SENTENCES = ['The red circle LEFT of the big star.', 'blorp zzzt']  # the 2nd: no known word
IMAGES = {  # name: (PIL mode, stored size (h, w), shown size (h, w))
    'rgb.png': ('RGB', (90, 130), (90, 130)),
    'grey.png': ('L', (70, 50), (70, 50)),
    'rgba.png': ('RGBA', (64, 100), (64, 100)),
    'rotated.jpg': ('RGB', (40, 72), (72, 40)),  # EXIF orientation 6: shown turned 90 degrees
}
WORDS = ['the', 'red', 'blue', 'green', 'circle', 'square', 'star', 'left', 'right', 'of',
         'on', 'above', 'below', 'big', 'small', '.']


def write_vocab(path, size):
    """<pad> <go> <eos> <unk> (the original vocabularies' head: <unk> is id 3) + words."""
    words = list(SPECIAL_TOKENS) + WORDS
    words += ['filler%d' % k for k in range(size - len(words))]
    with open(path, 'w') as f:
        f.write('\n'.join(words[:size]) + '\n')
    return path


def write_images(folder):
    rng = np.random.RandomState(0)
    paths = {}
    for name, (mode, (h, w), _) in IMAGES.items():
        # A bright block on noise, so that the maps have some structure.
        im = rng.randint(0, 120, size=(h, w, 4)).astype(np.uint8)
        im[h // 4:h // 2, w // 3:2 * w // 3] = (230, 40, 40, 255)
        path = os.path.join(folder, name)
        if mode == 'L':
            Image.fromarray(im[:, :, 0]).save(path)
        elif mode == 'RGBA':
            Image.fromarray(im).save(path)
        else:
            exif = Image.Exif()
            if name.endswith('.jpg'):
                exif[0x0112] = 6
            Image.fromarray(im[:, :, :3]).save(path, exif=exif, quality=92)
        paths[name] = path
    return paths


def make_workspace(root):
    """A tiny checkpoint recording its vocabulary, the vocabulary and the images in root.
    Returns (model, dict of paths)."""
    import tensorflow as tf
    from CMPC_model import LSTM_model
    tf.random.set_seed(3)
    model = LSTM_model(mode='eval', **TINY)
    vocab = write_vocab(os.path.join(root, 'vocab.txt'), TINY['vocab_size'])
    prefix = os.path.join(root, 'ckpt', 'unc_iter_5.tfmodel')
    model.save(prefix, {'vocab': vocab})
    paths = write_images(root)
    paths.update(vocab=vocab, checkpoint=prefix)
    return model, paths


def shown_rgb(path):
    """The image as it is shown, read independently of util/predict.py."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert('RGB'))


def original_postprocessing(model, image, sentence, vocab_dict):
    """trainval_model.py test mode on one image: returns (mask, prob, out, proc_im)."""
    words = np.array(preprocess_sentence(sentence, vocab_dict, model.num_steps), np.int32)
    proc_im = skimage.img_as_ubyte(im_processing.resize_and_pad(image, model.H, model.W))
    im = proc_im.astype(np.float32)[:, :, ::-1] - MU
    out = model.forward(words[None], im[None])
    pred_raw = (out['up'][0, :, :, 0] >= 1e-9).astype(np.float32)
    h, w = image.shape[:2]
    mask = im_processing.resize_and_crop(pred_raw, h, w) > 0
    prob = im_processing.resize_and_crop(out['sigm'][0, :, :, 0], h, w)
    return mask, prob, out, proc_im


def result_dir(out_dir, image_name, k):
    folder = os.path.join(out_dir, os.path.splitext(image_name)[0])
    name = [d for d in sorted(os.listdir(folder)) if d.startswith('%02d_' % k)][0]
    return os.path.join(folder, name)


# Built once per session and shared with test_export.py (which imports these): the
# checkpoint, and predict mode's outputs on every image and sentence.
_SHARED = {}


def shared_workspace(tmp_path_factory):
    """(root, model that wrote the checkpoint, paths)."""
    if 'workspace' not in _SHARED:
        root = str(tmp_path_factory.mktemp('predict'))
        model, paths = make_workspace(root)
        _SHARED['workspace'] = root, model, paths
    return _SHARED['workspace']


def start_predict(tmp_path_factory):
    """Starts the predict CLI on every image and sentence (-c), or returns None when its
    results are already there; finish with finish_predict."""
    if 'predicted' in _SHARED:
        return None
    root, _, paths = shared_workspace(tmp_path_factory)
    args = ['-m', 'predict', '--checkpoint', paths['checkpoint'], '--out-dir', 'out', '-c']
    for name in IMAGES:
        args += ['--image', paths[name]]
    for s in SENTENCES:
        args += ['--sentence', s]
    return start_script(args, root)


def finish_predict(tmp_path_factory, proc):
    """(out dir, stdout, stderr) of the predict CLI."""
    if proc is not None:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
        root = shared_workspace(tmp_path_factory)[0]
        _SHARED['predicted'] = os.path.join(root, 'out'), stdout, stderr
    return _SHARED['predicted']


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    return shared_workspace(tmp_path_factory)


@pytest.fixture(scope='module')
def predicted(workspace, tmp_path_factory):
    return finish_predict(tmp_path_factory, start_predict(tmp_path_factory))


def test_masks_match_forward_and_original_postprocessing(workspace, predicted):
    root, model, paths = workspace
    out_dir = predicted[0]
    vocab_dict = load_vocab_dict_from_file(paths['vocab'])
    from util.dcrf import dense_crf
    for name, (_, _, shown) in IMAGES.items():
        image = shown_rgb(paths[name])
        assert image.shape[:2] == shown
        for k, sentence in enumerate(SENTENCES):
            folder = result_dir(out_dir, name, k)
            mask = np.asarray(Image.open(os.path.join(folder, 'mask.png')))
            assert mask.shape == shown and set(np.unique(mask)) <= {0, 255}
            expected, prob, out, proc_im = original_postprocessing(model, image, sentence,
                                                                   vocab_dict)
            np.testing.assert_array_equal(mask > 0, expected, err_msg='%s %r' % (name, sentence))
            saved_prob = np.load(os.path.join(folder, 'prob.npy'))
            assert saved_prob.dtype == np.float32 and saved_prob.shape == shown
            np.testing.assert_array_equal(saved_prob, prob.astype(np.float32))
            crf = im_processing.resize_and_crop(dense_crf(proc_im, out['sigm'][0, :, :, 0]),
                                                *shown) > 0
            mask_dcrf = np.asarray(Image.open(os.path.join(folder, 'mask_dcrf.png'))) > 0
            np.testing.assert_array_equal(mask_dcrf, crf)
            overlay = np.asarray(Image.open(os.path.join(folder, 'overlay.png')))
            assert overlay.shape == shown + (3,)
            # Outside the mask the overlay is the image itself.
            np.testing.assert_array_equal(overlay[mask == 0], image[mask == 0])


def test_json_records_and_explanation(workspace, predicted):
    out_dir = predicted[0]
    records = json.load(open(os.path.join(out_dir, 'predictions.json')))
    assert len(records) == len(IMAGES) * len(SENTENCES)
    for name, (_, _, shown) in IMAGES.items():
        for k, sentence in enumerate(SENTENCES):
            folder = result_dir(out_dir, name, k)
            rec = json.load(open(os.path.join(folder, 'result.json')))
            assert rec['sentence'] == sentence and rec['image_size'] == list(shown)
            assert rec['exif_orientation'] == (6 if name.endswith('.jpg') else 1)
            # Tokens as the vocabulary saw them: lower-cased, trailing '.' dropped.
            words = [t['word'] for t in rec['tokens']]
            if k == 0:
                assert words == ['the', 'red', 'circle', 'left', 'of', 'the', 'big', 'star']
                assert not any(t['unknown'] for t in rec['tokens']) and not rec['all_unknown']
            else:
                assert words == ['blorp', 'zzzt'] and rec['all_unknown']
                assert all(t['unknown'] and t['id'] == 3 for t in rec['tokens'])
            assert rec['word_ids'][-len(words):] == [t['id'] for t in rec['tokens']]
            assert rec['word_ids'][:-len(words)] == [0] * (20 - len(words))
            # The word types of each of the sentence's words sum to 1.
            types = np.array([[t['types'][c] for c in ('entity', 'attribute', 'relation',
                                                       'unnecessary')] for t in rec['tokens']])
            np.testing.assert_allclose(types.sum(1), 1, atol=1e-5)
            mask = np.asarray(Image.open(os.path.join(folder, 'mask.png'))) > 0
            assert rec['mask']['area'] == mask.sum()
            if mask.any():
                ys, xs = np.nonzero(mask)
                assert rec['mask']['bbox_xywh'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                                    ys.max() - ys.min() + 1]
            else:
                assert rec['mask']['bbox_xywh'] is None
            assert set(rec['levels']) == {'c3', 'c4', 'c5'}
            explain = Image.open(os.path.join(folder, 'explain.png'))
            assert explain.format == 'PNG' and explain.size[0] > 800
            # Nothing half-written is left behind.
            assert not [f for f in os.listdir(folder) if '.tmp' in f]


def test_all_unknown_sentence_runs_with_a_warning(predicted):
    _, _, stderr = predicted
    assert "'blorp zzzt': every word is unknown to the vocabulary" in stderr
    assert 'Traceback' not in stderr


def test_load_image_modes(tmp_path):
    from util.predict import load_image
    rng = np.random.RandomState(1)
    grey16 = rng.randint(0, 65536, size=(5, 7)).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / 'g16.png')
    im, orientation = load_image(str(tmp_path / 'g16.png'))
    assert orientation == 1 and im.dtype == np.uint8 and im.shape == (5, 7, 3)
    np.testing.assert_array_equal(im[:, :, 1], grey16 >> 8)  # TF's decoder keeps the high byte
    pal = Image.fromarray(rng.randint(0, 255, size=(6, 4, 3)).astype(np.uint8)).convert('P')
    pal.save(tmp_path / 'p.png')
    np.testing.assert_array_equal(load_image(str(tmp_path / 'p.png'))[0],
                                  np.asarray(pal.convert('RGB')))
    la = Image.fromarray(rng.randint(0, 255, size=(3, 5, 2)).astype(np.uint8), 'LA')
    la.save(tmp_path / 'la.png')
    np.testing.assert_array_equal(load_image(str(tmp_path / 'la.png'))[0],
                                  np.repeat(np.asarray(la)[:, :, :1], 3, axis=2))


BAD_INPUTS = {
    'missing image': (['--image', 'nope.png', '--sentence', 'the red circle'],
                      '--image nope.png: no such file'),
    'unreadable file': (['--image', 'not_an_image.png', '--sentence', 'the red circle'],
                        '--image not_an_image.png: cannot read it as an image'),
    'empty sentence': (['--image', 'rgb.png', '--sentence', '  '],
                       "--sentence '  ': empty sentence"),
    'vocabulary of another size': (['--image', 'rgb.png', '--sentence', 'the red circle',
                                    '--vocab', 'vocab12.txt'],
                                   'has 12 words but the checkpoint'),
    'checkpoint of another vocabulary size': (
        ['--image', 'rgb.png', '--sentence', 'the red circle', '--checkpoint', 'orig/model.ckpt',
         '--vocab', 'vocab12.txt'], 'trained with a vocabulary of 50 words'),
    'missing checkpoint': (['--image', 'rgb.png', '--sentence', 'x', '--checkpoint', 'ckpt/no'],
                           '--checkpoint ckpt/no: no checkpoint (expected the file ckpt/no.index)'),
    'missing sentences file': (['--image', 'rgb.png', '--sentences-file', 'nope.txt'],
                               '--sentences-file nope.txt: no such file'),
    'no sentence': (['--image', 'rgb.png'], '-m predict needs --sentence'),
}


@pytest.mark.parametrize('case', list(BAD_INPUTS))
def test_bad_inputs_give_clear_errors(workspace, case):
    root, _, paths = workspace
    if not os.path.exists(os.path.join(root, 'not_an_image.png')):
        with open(os.path.join(root, 'not_an_image.png'), 'w') as f:
            f.write('this is text\n')
        write_vocab(os.path.join(root, 'vocab12.txt'), 12)
        # A checkpoint as the original code left it, without the .json: the settings are read
        # off the tensors' shapes (hard links, not copies).
        os.makedirs(os.path.join(root, 'orig'))
        for ext in ('.index', '.data-00000-of-00001'):
            os.link(paths['checkpoint'] + ext, os.path.join(root, 'orig', 'model.ckpt' + ext))
    args, message = BAD_INPUTS[case]
    if '--checkpoint' not in args:
        args = args + ['--checkpoint', paths['checkpoint']]
    proc = run_script(['-m', 'predict', '--out-dir', 'bad_out'] + args, root, check=False)
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert not os.path.exists(os.path.join(root, 'bad_out'))


def test_every_flag_has_help(capsys, monkeypatch):
    import argparse
    import trainval_model
    with pytest.raises(SystemExit):
        trainval_model.parse_args(['--help'])
    text = capsys.readouterr().out
    for flag in ('--checkpoint', '--image', '--sentence', '--sentences-file', '--out-dir',
                 '--explain', '--export-dir', '--vocab'):
        assert flag in text
    # Every action of the parser (not only ours) carries a help text.
    actions = []
    parse = argparse.ArgumentParser.parse_args

    def grab(parser, *args, **kwargs):
        actions.extend(parser._actions)
        return parse(parser, *args, **kwargs)
    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', grab)
    trainval_model.parse_args(['-m', 'export', '--checkpoint', 'c', '--export-dir', 'e'])
    assert actions and all(a.help for a in actions), [a.dest for a in actions if not a.help]
