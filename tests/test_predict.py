"""Predict mode (-m predict, util/inference/predict.py) on generated images of several modes and sizes.

The CLI runs once on four images (RGB, grey, RGBA, an EXIF-rotated JPEG) and two sentences; its
masks are checked against `forward` of the same weights plus the original post-processing,
written out here independently of util/inference/predict.py. Bad inputs run the CLI and must end with a
one-line error, no traceback.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from helpers import (IMAGES, SENTENCES, original_postprocessing, result_dir, run_main,
                     shown_rgb, write_vocab)
from util import im_processing
from util.text_processing import load_vocab_dict_from_file

# The workspace (tiny checkpoint, vocabulary, images) and predict mode's run on it are the
# session fixtures predict_workspace and predicted of conftest.py, shared with test_export.py.


@pytest.mark.cli
def test_masks_match_forward_and_original_postprocessing(predict_workspace, predicted):
    root, model, paths = predict_workspace
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


def test_the_backbone_runs_once_per_image_for_several_sentences(predict_workspace, tmp_path,
                                                                 monkeypatch):
    # 2 images x 3 sentences: 6 predictions, 2 backbone runs (counted by the Predictor's
    # OncePerPicture); the masks are test_masks_match_forward_and_original_postprocessing's.
    from util.inference import predict
    from util.pipeline import once_per_picture
    root, _, paths = predict_workspace
    made = []

    class Counted(once_per_picture.OncePerPicture):
        def __init__(self, model):
            super().__init__(model)
            made.append(self)
    monkeypatch.setattr(once_per_picture, 'OncePerPicture', Counted)
    records = predict.run_predict(paths['checkpoint'], [paths['rgb.png'], paths['grey.png']],
                                  SENTENCES + ['the blue square'], str(tmp_path), explain=False,
                                  log=lambda msg: None)
    assert len(records) == 6 and len(made) == 1 and made[0].backbone_runs == 2


def test_fast_paths_build_the_model_and_are_recorded(predict_workspace, predicted, tmp_path):
    """--fold reaches predict's model (the record says what the model was built with). At this
    size nothing folds (MUTAN is narrower than res3; the fold itself: test_cmpc_model.py), so
    the masks are the plain path's."""
    from util.inference import predict
    _, _, paths = predict_workspace
    name = 'rgb.png'
    records = predict.run_predict(paths['checkpoint'], [paths[name]], SENTENCES, str(tmp_path),
                                  explain=False, log=lambda msg: None, fast_paths={'fold': True})
    for k, rec in enumerate(records):
        folders = [result_dir(out, name, k) for out in (str(tmp_path), predicted[0])]
        plain = json.load(open(os.path.join(folders[1], 'result.json')))
        assert (rec['precision'], rec['xla'], rec['fold']) == ('fp32', False, True)
        assert (plain['precision'], plain['xla'], plain['fold']) == ('fp32', False, False)
        folded, unfolded = (np.asarray(Image.open(os.path.join(f, 'mask.png'))) for f in folders)
        np.testing.assert_array_equal(folded, unfolded)


@pytest.mark.cli
def test_json_records_and_explanation(predicted):
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


@pytest.mark.cli
def test_all_unknown_sentence_runs_with_a_warning(predicted):
    _, _, stderr = predicted
    assert "'blorp zzzt': every word is unknown to the vocabulary" in stderr
    assert 'Traceback' not in stderr


def test_load_image_modes(tmp_path):
    from util.inference.predict import load_image
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


@pytest.fixture(scope='module')
def bad_input_files(predict_workspace):
    """The files that BAD_INPUTS name, beside the workspace's: (root, paths)."""
    root, _, paths = predict_workspace
    with open(os.path.join(root, 'not_an_image.png'), 'w') as f:
        f.write('this is text\n')
    write_vocab(os.path.join(root, 'vocab12.txt'), 12)
    # A checkpoint as the original code left it, without the .json: the settings are read
    # off the tensors' shapes (hard links, not copies).
    os.makedirs(os.path.join(root, 'orig'))
    for ext in ('.index', '.data-00000-of-00001'):
        os.link(paths['checkpoint'] + ext, os.path.join(root, 'orig', 'model.ckpt' + ext))
    return root, paths


@pytest.mark.cli
@pytest.mark.parametrize('case', list(BAD_INPUTS))
def test_bad_inputs_give_clear_errors(bad_input_files, case):
    root, paths = bad_input_files
    args, message = BAD_INPUTS[case]
    if '--checkpoint' not in args:
        args = args + ['--checkpoint', paths['checkpoint']]
    proc = run_main(['-m', 'predict', '--out-dir', 'bad_out'] + args, root, check=False)
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
