"""Test mode over whole videos (CMPC_video/trainval_video.py -m test -d mevis | ref_youtube_vos |
ref_davis17, util/pipeline/evaluate_video.py) on the generated releases of tests/rvos_fixtures.py,
with a tiny random video model.

Every frame's mask must be the one the original's test mode computes for that frame's window
(helpers.window_mask, written from the definitions); J and F per frame are recomputed here from
those masks and the fixtures' own ground truth (J by its formula, F by util/video_metrics, which
tests/test_video_metrics.py holds against the DAVIS 2017 code), then averaged as each benchmark
does: per expression over its frames, over the expressions; Ref-DAVIS17 per annotator, then
over the four.
"""

import io
import json
import os
import shutil
import zipfile
from collections import Counter

import numpy as np
import pytest
from PIL import Image

import rvos_fixtures
from helpers import make_video_checkpoint, run_main, window_mask
from util import video_metrics
from util.datasets import ref_youtube_vos
from util.datasets.a2d import query_words
from util.text_processing import load_vocab_dict_from_file, preprocess_sentence

pytestmark = pytest.mark.cli  # runs the script's test mode

SCRIPT = 'CMPC_video/trainval_video.py'


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp('evaluate_video')
    model, prefix, vocab = make_video_checkpoint(str(root), 3, 4)
    truth = {'mevis': rvos_fixtures.write_mevis(str(root / 'mevis')),
             'ref_youtube_vos': rvos_fixtures.write_ref_youtube_vos(str(root / 'ytvos')),
             'ref_davis17': rvos_fixtures.write_ref_davis(str(root / 'davis'))}
    releases = {'mevis': root / 'mevis', 'ref_youtube_vos': root / 'ytvos',
                'ref_davis17': root / 'davis'}
    return dict(root=root, model=model, vocab=load_vocab_dict_from_file(vocab), truth=truth,
                releases=releases, checkpoint=prefix)


def run_test(ws, dataset, split, *extra):
    proc = run_main(['-m', 'test', '-d', dataset, '-t', split, '--release-root',
                     str(ws['releases'][dataset]), '-f', 'ckpt', '-i', '5',
                     '--checkpoint-dataset', 'a2d_sent_new'] + list(extra),
                    str(ws['root']), script=SCRIPT)
    run = ws['root'] / 'ckpt' / ('%s_%s_iter_5' % (dataset, split))
    return proc, json.load(open(str(run) + '_results.json')), run


def frames_of(release, split, video, names):
    folder = os.path.join(str(release), split, 'JPEGImages', video)
    return np.stack([np.asarray(Image.open(os.path.join(folder, n + '.jpg')).convert('RGB'))
                     for n in names])


def expected_masks(ws, frames, sentence):
    """{frame index: the original test mode's mask} of one expression over a video."""
    words = np.array(preprocess_sentence(query_words(sentence, ws['model'].num_steps)[1],
                                         ws['vocab'], ws['model'].num_steps), np.int32)
    return [window_mask(ws['model'], frames, f, words)[0] for f in range(1, len(frames) + 1)]


def read_mask(run, video, exp_id, name):
    m = np.asarray(Image.open(os.path.join(str(run) + '_videos', video, 'masks', exp_id,
                                           name + '.png')))
    assert set(np.unique(m)) <= {0, 255}
    return m > 0


def jaccard(pred, gt):
    union = np.logical_or(pred, gt).sum()
    return 1.0 if union == 0 else np.logical_and(pred, gt).sum() / union


def test_mevis_every_frame_scored_as_the_original_window_and_averaged_per_expression(workspace):
    ws = workspace
    proc, results, run = run_test(ws, 'mevis', 'train')
    assert proc.returncode == 0, proc.stderr
    truth = ws['truth']['mevis']['train']
    per_expression, ious = [], []
    for video, v in truth.items():
        names = sorted(v['listed'])  # the frames in name order
        frames = frames_of(ws['releases']['mevis'], 'train', video, names)
        for exp_id, (sentence, anno_ids) in v['expressions'].items():
            preds = expected_masks(ws, frames, sentence)
            gts = [np.any([v['masks'][a][n] if v['masks'][a][n] is not None
                           else np.zeros(v['size'], bool) for a in anno_ids], axis=0)
                   for n in names]  # the union of the expression's objects
            for k, n in enumerate(names):  # the masks written, one per frame
                np.testing.assert_array_equal(read_mask(run, video, exp_id, n), preds[k],
                                              err_msg='%s %s %s' % (video, exp_id, n))
            j = [jaccard(p, g) for p, g in zip(preds, gts)]
            f = [video_metrics.boundary_f(p, g) for p, g in zip(preds, gts)]
            scored = results['without_DenseCRF']['J&F']['videos'][video][exp_id]
            assert scored['n_frames'] == len(names)
            np.testing.assert_allclose(scored['J'], np.mean(j), rtol=1e-12)
            np.testing.assert_allclose(scored['F'], np.mean(f), rtol=1e-12)
            per_expression.append((np.mean(j), np.mean(f)))
            ious += [(np.logical_and(p, g).sum(), np.logical_or(p, g).sum())
                     for p, g in zip(preds, gts)]
    jf = results['without_DenseCRF']['J&F']
    J, F = np.mean(per_expression, axis=0)
    np.testing.assert_allclose([jf['J'], jf['F'], jf['J&F']], [J, F, (J + F) / 2], rtol=1e-12)
    iou = results['without_DenseCRF']['IoU']
    I, U = np.sum(ious, axis=0)
    assert (iou['cum_I'], iou['cum_U'], iou['n']) == (I, U, len(ious))
    # Started again, every video is found done: nothing runs, the same figures.
    proc, again, _ = run_test(ws, 'mevis', 'train')
    assert again['videos_run'] == 0 and results['videos_run'] == len(truth)
    assert again['without_DenseCRF'] == results['without_DenseCRF']


@pytest.mark.slow  # CI runs it
@pytest.mark.parametrize('dataset, split, layout', [
    ('mevis', 'valid', '{video}/{exp_id}/{frame}.png'),
    ('ref_youtube_vos', 'valid', 'Annotations/{video}/{exp_id}/{frame}.png')])
def test_submission_zip_in_the_servers_layout(workspace, dataset, split, layout):
    ws = workspace
    proc, results, run = run_test(ws, dataset, split)
    assert proc.returncode == 0, proc.stderr
    assert 'without_DenseCRF' not in results  # no masks in the split: nothing scored
    truth = ws['truth'][dataset][split]
    expected = {}
    for video, v in truth.items():
        names = sorted(v['listed'])
        frames = frames_of(ws['releases'][dataset], split, video, names)
        for exp_id, (sentence, _) in v['expressions'].items():
            # The masks themselves once (the MeViS test checks them all), then those written
            masks = (expected_masks(ws, frames, sentence) if dataset == 'mevis' else
                     [read_mask(run, video, exp_id, n) for n in names])
            for name, mask in zip(names, masks):
                assert mask.shape == frames.shape[1:3]
                expected[layout.format(video=video, exp_id=exp_id, frame=name)] = mask
    with zipfile.ZipFile(str(run) + '_submission.zip') as z:
        assert sorted(z.namelist()) == sorted(expected)
        for path, mask in expected.items():
            im = Image.open(io.BytesIO(z.read(path)))
            assert im.mode == 'L' and im.size == (mask.shape[1], mask.shape[0])
            np.testing.assert_array_equal(np.asarray(im) > 0, mask, err_msg=path)


@pytest.mark.slow  # CI runs it
def test_ref_davis_averages_the_four_annotators_and_skips_void(workspace, monkeypatch):
    ws = workspace
    reads = Counter()
    read_label = ref_youtube_vos.read_label

    def counted(path, frame_path):
        reads[os.path.basename(path)] += 1
        return read_label(path, frame_path)
    monkeypatch.setattr(ref_youtube_vos, 'read_label', counted)
    proc, results, run = run_test(ws, 'ref_davis17', 'train', '--fold')
    assert proc.returncode == 0, proc.stderr
    assert (results['fold'], results['precision']) == (True, 'fp32')  # the model built so
    v = ws['truth']['ref_davis17']['train']['dav']
    names = sorted(v['listed'])
    # Each annotation PNG read once, for the masks and void of the video's 8 expressions
    assert reads == Counter(n + '.png' for n in names)
    by_annotator = {}
    for exp_id, (sentence, obj) in v['expressions'].items():
        # The masks written (the MeViS test holds them to the original's windows)
        preds = [read_mask(run, 'dav', exp_id, n) for n in names]
        labels = [v['labels'][n] for n in names]
        gts, void = [lab == obj for lab in labels], [lab == 255 for lab in labels]
        # J over the pixels that are not void
        j = [jaccard(p & ~x, g) for p, g, x in zip(preds, gts, void)]
        f = [video_metrics.boundary_f(p, g, x) for p, g, x in zip(preds, gts, void)]
        by_annotator.setdefault(int(exp_id) % 4, []).append((np.mean(j), np.mean(f)))
    jf = results['without_DenseCRF']['J&F']
    assert len(jf['annotators']) == 4
    J, F = np.mean([np.mean(s, axis=0) for s in by_annotator.values()], axis=0)
    np.testing.assert_allclose([jf['J'], jf['F']], [J, F], rtol=1e-12)
    assert 'submission' not in results  # no server for Ref-DAVIS17


def test_bad_release_root_is_a_one_line_error(workspace, tmp_path):
    proc = run_main(['-m', 'test', '-d', 'mevis', '-t', 'valid_u', '--release-root',
                     str(tmp_path / 'nowhere'), '-f', 'ckpt', '-i', '5', '--checkpoint-dataset',
                     'a2d_sent_new'], str(workspace['root']), script=SCRIPT, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'nowhere' in lines[0], lines
    proc = run_main(['-m', 'test', '-d', 'mevis', '-t', 'valid_u', '-f', 'ckpt', '-i', '5',
                     '--checkpoint-dataset', 'a2d_sent_new'], str(workspace['root']),
                    script=SCRIPT, check=False)
    assert proc.returncode == 1 and '--release-root' in proc.stderr


def test_a_model_that_fails_to_load_leaves_nothing_behind(workspace, tmp_path):
    # The checkpoint's index and settings without its weights: the release is read, then
    # restoring the model fails with a one-line error; no {run}_videos/ (nor anything else) is
    # left in -f.
    prefix = workspace['checkpoint']
    folder = tmp_path / 'ckpt'
    folder.mkdir()
    for suffix in ('.index', '.json'):
        shutil.copy(prefix + suffix, str(folder))
    kept = sorted(os.listdir(folder))
    proc = run_main(['-m', 'test', '-d', 'mevis', '-t', 'valid', '--release-root',
                     str(workspace['releases']['mevis']), '-f', str(folder), '-i', '5',
                     '--checkpoint-dataset', 'a2d_sent_new'], str(tmp_path), script=SCRIPT,
                    check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.startswith('error: ') and proc.stderr.count('\n') == 1, proc.stderr
    assert sorted(os.listdir(folder)) == kept


def test_max_videos_below_one_is_refused(tmp_path):
    proc = run_main(['-m', 'test', '-d', 'mevis', '-t', 'valid_u', '--release-root',
                     str(tmp_path), '-f', 'ckpt', '-i', '5', '--max-videos', '0'],
                    str(tmp_path), script=SCRIPT, check=False)
    assert proc.returncode == 2  # argparse's usage error, before anything is read
    assert proc.stderr.strip().splitlines()[-1].endswith(
        'error: --max-videos 0: expected at least 1'), proc.stderr
