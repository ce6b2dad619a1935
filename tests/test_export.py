"""Export mode (-m export, util/inference/export.py): a SavedModel that does predict mode in the graph.

The SavedModel is loaded with plain tf.saved_model.load in a fresh Python process whose path
holds nothing of this project (cwd elsewhere, no PYTHONPATH), run on predict mode's images
through both signatures, and compared with predict mode's files (the session fixtures
predict_workspace and predict_run of conftest.py, shared with test_predict.py).

Tolerance: a mask pixel may differ only where the network-resolution logit it derives from is
within LOGIT_EPS of the threshold 1e-9, and probabilities by at most PROB_EPS. Measured on this
machine: no pixel differs and probabilities are bit-identical (the in-graph resizes reproduce
scipy's arithmetic exactly and the network runs the same traced graph as `forward`).
"""

import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from helpers import (IMAGES, SENTENCES, original_postprocessing, result_dir, run_main,
                     shown_rgb, write_vocab)
from util import im_processing

LOGIT_EPS = 1e-4
PROB_EPS = 1e-5

FRESH_PROCESS = textwrap.dedent('''
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    # The project must not be importable here: the SavedModel has to stand alone.
    for name in ('CMPC_model', 'util', 'trainval_model', 'deeplab_resnet'):
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            sys.exit('project module %s importable in the fresh process' % name)
    job = json.load(open(sys.argv[1]))
    model = tf.saved_model.load(job['export_dir'])
    results = {}
    for key, (path, array_path, sentence) in job['cases'].items():
        enc = model.signatures['serving_default'](
            image_bytes=tf.constant(open(path, 'rb').read()), sentence=tf.constant(sentence))
        arr = model.signatures['serve_image'](
            image=tf.constant(np.load(array_path)), sentence=tf.constant(sentence))
        for sig, out in (('bytes', enc), ('array', arr)):
            for name, value in out.items():
                value = value.numpy()
                if value.dtype == object:  # tf.string: as unicode, so no pickle is needed
                    value = np.array([v.decode('utf-8') for v in value.ravel()])
                results['%s|%s|%s' % (key, sig, name)] = value
    errors = {}
    for name, (image, sentence) in {'empty sentence': (np.zeros((4, 4, 3), np.uint8), ' . '),
                                    'five channels': (np.zeros((4, 4, 5), np.uint8), 'a')}.items():
        try:
            model.signatures['serve_image'](image=tf.constant(image),
                                            sentence=tf.constant(sentence))
            errors[name] = 'no error'
        except tf.errors.InvalidArgumentError as e:
            errors[name] = e.message
    np.savez(job['out'], **results)
    json.dump(errors, open(job['out'] + '.errors.json', 'w'))
''')


@pytest.fixture(scope='module')
def exported(predict_workspace, predict_run, tmp_path_factory):
    root, model, paths = predict_workspace
    export_dir = os.path.join(root, 'saved', 'cmpc')
    run_main(['-m', 'export', '--checkpoint', paths['checkpoint'], '--export-dir', export_dir],
             root)
    out_dir = predict_run.result()[0]

    # -- the fresh process
    job_dir = str(tmp_path_factory.mktemp('fresh'))
    cases = {}
    for name in IMAGES:
        array_path = os.path.join(job_dir, name + '.npy')
        np.save(array_path, shown_rgb(paths[name]))
        for k, sentence in enumerate(SENTENCES):
            cases['%s|%d' % (name, k)] = (paths[name], array_path, sentence)
    job = {'export_dir': export_dir, 'cases': cases, 'out': os.path.join(job_dir, 'results.npz')}
    with open(os.path.join(job_dir, 'job.json'), 'w') as f:
        json.dump(job, f)
    with open(os.path.join(job_dir, 'load.py'), 'w') as f:
        f.write(FRESH_PROCESS)
    clean_env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    clean_env['TF_CPP_MIN_LOG_LEVEL'] = '2'
    proc = subprocess.run([sys.executable, 'load.py', 'job.json'], cwd=job_dir, env=clean_env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = dict(np.load(job['out']))
    errors = json.load(open(job['out'] + '.errors.json'))
    return root, model, paths, export_dir, out_dir, results, errors


@pytest.mark.slow  # exports a SavedModel (about 90 s): in CI (.ci/run)
@pytest.mark.cli
def test_saved_model_reproduces_predict_mode(exported):
    root, model, paths, _, out_dir, results, _ = exported
    from util.text_processing import load_vocab_dict_from_file
    vocab = load_vocab_dict_from_file(paths['vocab'])
    worst = {'mask pixels': 0, 'prob': 0.0}
    for name, (_, _, shown) in IMAGES.items():
        image = shown_rgb(paths[name])
        for k, sentence in enumerate(SENTENCES):
            folder = result_dir(out_dir, name, k)
            mask = np.asarray(Image.open(os.path.join(folder, 'mask.png'))) > 0
            prob = np.load(os.path.join(folder, 'prob.npy'))
            # Where the mask may flip: pixels fed by a logit within LOGIT_EPS of the threshold.
            up = original_postprocessing(model, image, sentence, vocab)[2]['up']
            near = (np.abs(up[0, :, :, 0] - 1e-9) < LOGIT_EPS).astype(np.float32)
            may_flip = im_processing.resize_and_crop(near, *shown) > 0
            for sig in ('bytes', 'array'):
                key = '%s|%d|%s|' % (name, k, sig)
                got_mask = results[key + 'mask']
                got_prob = results[key + 'probability']
                assert got_mask.dtype == np.uint8 and got_mask.shape == shown
                assert got_prob.dtype == np.float32 and got_prob.shape == shown
                differ = got_mask.astype(bool) != mask
                assert not np.any(differ & ~may_flip), (name, sentence, sig)
                np.testing.assert_allclose(got_prob, prob, rtol=0, atol=PROB_EPS)
                worst['mask pixels'] = max(worst['mask pixels'], int(differ.sum()))
                worst['prob'] = max(worst['prob'], float(np.abs(got_prob - prob).max()))
                rec = json.load(open(os.path.join(folder, 'result.json')))
                assert results[key + 'word_ids'].tolist() == rec['word_ids']
                n = len(rec['tokens'])
                assert results[key + 'tokens'][-n:].tolist() == [t['word'] for t in rec['tokens']]
                assert not any(results[key + 'tokens'][:-n])  # padding
                np.testing.assert_allclose(results[key + 'word_types'][-n:].sum(1), 1, atol=1e-5)
    print('SavedModel vs predict mode: %(mask pixels)d mask pixels differ at most, '
          'max |prob diff| %(prob).3g' % worst)


@pytest.mark.slow  # exports a SavedModel (about 90 s): in CI (.ci/run)
@pytest.mark.cli
def test_saved_model_errors_and_info(exported):
    _, _, _, export_dir, _, _, errors = exported
    assert 'empty sentence' in errors['empty sentence']
    assert '1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels' in errors['five channels']
    info = json.load(open(os.path.join(export_dir, 'assets.extra', 'cmpc_export.json')))
    assert info['model']['H'] == 64 and info['model']['vocab_size'] == 50
    # the image model's four word types, named from the model rather than typed out
    assert info['signatures']['outputs']['word_types'] == (
        'float32 [T, 4] entity, attribute, relation, unnecessary')
    # The checkpoint's JSON records no model_name: its kind says CMPC_model.
    assert info['model_name'] == 'CMPC_model'
    assert not [f for f in os.listdir(os.path.dirname(export_dir)) if '.tmp' in f or '.old' in f]


@pytest.mark.slow  # exports a SavedModel (about 90 s): in CI (.ci/run)
@pytest.mark.cli
def test_export_of_mismatched_vocabulary_is_a_clear_error(exported, tmp_path):
    _, _, paths, _, _, _, _ = exported
    vocab = write_vocab(str(tmp_path / 'v7.txt'), 7)
    proc = run_main(['-m', 'export', '--checkpoint', paths['checkpoint'], '--vocab', vocab,
                     '--export-dir', str(tmp_path / 'never')], str(tmp_path), check=False)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert 'has 7 words but the checkpoint' in proc.stderr
    assert not os.path.exists(tmp_path / 'never')


# ---------------------------------------------------------------------------------------------
# The in-graph pieces against their numpy / Python / PIL counterparts

COMMON_SENTENCES = [
    'the red circle left of the big star.', 'The Man, on the LEFT .', '  red ball  ',
    "guy's hat", 'x-ray', 'half-eaten donut on plate . .', 'a , b', '1st_place winner!!', '...',
    '. man', 'man. ', 'left\u00a0man', '\u3000man\u2003', 'a\tb\nc', 'café au lait', 'über',
    'word ' * 30, 'man in blue shirt on right side of photo, holding a bat']


def test_tokenizer_agrees_with_python():
    import tensorflow as tf
    from util.inference import export
    from util.text_processing import preprocess_sentence, sentence2words
    vocab = {w: i for i, w in enumerate(
        ['<pad>', '<go>', '<eos>', '<unk>', 'the', 'man', 'on', 'left', 'red', 'ball', 'a', 'b',
         '.', ', ', 'x', 'ray', "'", 's', '!!', 'word', '. .', 'blue', 'of', 'photo'])}
    table = export.vocabulary_table(vocab)
    encode = tf.function(lambda s: export.encode_sentence(s, table, 20, 0))
    for sentence in COMMON_SENTENCES:
        ids, tokens = encode(tf.constant(sentence))
        assert ids.numpy().tolist() == preprocess_sentence(sentence, vocab, 20), sentence
        words = [t.decode() for t in tokens.numpy() if t]
        assert words == sentence2words(sentence)[:20], sentence
    for blank in ('', '   ', '\u00a0\t'):
        with pytest.raises(tf.errors.InvalidArgumentError, match='empty sentence'):
            encode(tf.constant(blank))
    # The documented difference: NUL marks token boundaries in the graph, so it reads as \x01.
    assert [t for t in encode(tf.constant('x\x00y'))[1].numpy() if t] == [b'x', b'\x01', b'y']


def test_resize_and_pad_and_crop_agree_bit_for_bit():
    import skimage
    import tensorflow as tf
    from util.inference import export
    pad = tf.function(lambda im, H, W: export.tf_img_as_ubyte(
        export.tf_resize_and_pad(export.tf_img_as_float(im), H, W)), reduce_retracing=True)
    crop = tf.function(export.tf_resize_and_crop, reduce_retracing=True)
    rng = np.random.RandomState(0)
    # Up, down, same size, odd ratios, and images whose darkest value is > 0 (0.13's clip
    # keeps exact zeros only then).
    sizes = [(64, 64), (32, 64), (128, 64), (220, 62), (1, 5), (3, 200), (97, 131), (480, 640)]
    for k, (h, w) in enumerate(sizes):
        lo = 0 if k % 2 else 60
        im = rng.randint(lo, 256, size=(h, w, 3)).astype(np.uint8)
        for H in (64, 96):
            expected = skimage.img_as_ubyte(im_processing.resize_and_pad(im, H, H))
            np.testing.assert_array_equal(pad(im, H, H).numpy(), expected, err_msg=str((h, w, H)))
            for m in ((rng.rand(H, H, 1) > 0.5).astype(np.float32),
                      (rng.rand(H, H, 1) * 0.9 + 0.05).astype(np.float32)):
                expected = im_processing.resize_and_crop(m, h, w)
                got = crop(m.astype(np.float64), tf.constant(h), tf.constant(w)).numpy()
                np.testing.assert_array_equal(got, expected, err_msg=str((h, w, H)))


def test_decode_applies_exif_orientation_like_pil(tmp_path):
    import tensorflow as tf
    from util.inference import export
    from util.inference.predict import load_image
    decode = tf.function(export.decode)
    rng = np.random.RandomState(2)
    pixels = rng.randint(0, 255, size=(12, 20, 3)).astype(np.uint8)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = str(tmp_path / ('o%d.jpg' % orientation))
        Image.fromarray(pixels).save(path, exif=exif, quality=95)
        expected, seen = load_image(path)
        assert seen == orientation
        got = decode(tf.constant(open(path, 'rb').read())).numpy()
        np.testing.assert_array_equal(got, expected, err_msg='orientation %d' % orientation)
    # PIL writes a JFIF segment, then big-endian EXIF; here a little-endian one, first.
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, 'JPEG', quality=95)
    tiff = (b'II*\x00\x08\x00\x00\x00' + b'\x01\x00'  # header, IFD0 at 8, one entry
            + b'\x12\x01\x03\x00\x01\x00\x00\x00\x08\x00\x00\x00'  # orientation SHORT 8
            + b'\x00\x00\x00\x00')
    app1 = b'Exif\x00\x00' + tiff
    jpeg = buf.getvalue()[:2] + b'\xff\xe1' + (len(app1) + 2).to_bytes(2, 'big') + app1 \
        + buf.getvalue()[2:]
    path = str(tmp_path / 'little.jpg')
    open(path, 'wb').write(jpeg)
    expected, seen = load_image(path)
    assert seen == 8 and expected.shape == (20, 12, 3)
    np.testing.assert_array_equal(decode(tf.constant(jpeg)).numpy(), expected)
    # No EXIF at all, and bytes that are no image.
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, 'PNG')
    np.testing.assert_array_equal(decode(tf.constant(buf.getvalue())).numpy(), pixels)
    with pytest.raises(tf.errors.InvalidArgumentError):
        decode(tf.constant(b'not an image'))
