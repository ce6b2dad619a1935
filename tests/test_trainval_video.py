"""CMPC_video/trainval_video.py run as a user runs it (in this process: helpers.run_main), on
generated video batches in build_A2D_batches.py's layouts (train: the frame store; test: the
original's, with im_batch; J-HMDB: frames in every sample, the layout before the frame store):
train 2 iterations of the tiny video model, resume, test with the A2D metrics and
DenseCRF, J-HMDB-style testing with the A2D snapshot, and the refusals (an image snapshot,
--tf-data, a missing frame file).

    cd /work/main && .venv/bin/python -m pytest tests/test_trainval_video.py -q
"""

import json
import os
import shutil

import numpy as np
import pytest

from helpers import TINY_FLAGS, run_main, write_batches, write_video_batches

pytestmark = [pytest.mark.cli, pytest.mark.eager]
SCRIPT = os.path.join('CMPC_video', 'trainval_video.py')
TRAIN = ['-m', 'train', '-d', 'a2d_sent_new', '-t', 'train', '--random-backbone', '-i', '2',
         '-s', '2', '--seed', '0', '--log-every', '1', '--backbone-blocks', '1,1,1,1'] + TINY_FLAGS


@pytest.fixture(scope='module')
def video_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('video')
    data = root / 'a2d_sent_new'
    write_video_batches(str(data / 'train_batch'), 'a2d_sent_new_train', 4, (64, 64), seed=1,
                        frame_store=True)
    write_video_batches(str(data / 'test_batch'), 'a2d_sent_new_test', 3, (48, 80), seed=2,
                        original=True)
    write_video_batches(str(root / 'jhmdb_sent' / 'test_batch'), 'jhmdb_sent_test', 2, (40, 56),
                        seed=3)
    ckpt = str(root / 'ckpt')
    out = run_main(TRAIN + ['-bs', '2', '-f', ckpt, '--data-root', str(root)], cwd=str(root),
                   script=SCRIPT)
    return root, ckpt, out


def test_train_writes_a_video_snapshot(video_run):
    root, ckpt, out = video_run
    assert 'snapshot saved to' in out.stdout
    with open(os.path.join(ckpt, 'a2d_sent_new_iter_2.tfmodel.json')) as f:
        meta = json.load(f)
    assert meta['model']['kind'] == 'video' and meta['model']['frames'] == 16
    assert meta['model_name'] == 'CMPC_video.CMPC_video_mm_tgraph_allvec'  # -n's default
    with open(os.path.join(ckpt, 'train_log.jsonl')) as f:
        rows = [json.loads(line) for line in f]
    assert [r['iter'] for r in rows] == [0, 1]
    assert all(np.isfinite(r['cls_loss']) and r['cls_loss'] > 0 for r in rows)


def test_test_prints_the_a2d_metrics_with_and_without_dcrf(video_run):
    root, ckpt, _ = video_run
    out = run_main(['-m', 'test', '-d', 'a2d_sent_new', '-t', 'test', '-i', '2', '-c', '-v',
                    '-f', ckpt, '--data-root', str(root)], cwd=str(root), script=SCRIPT)
    for line in ['precision@%s = ' % t for t in ('0.5', '0.55', '0.9', '0.95')] + [
            'overall IoU = ', 'mAP = ', 'Segmentation evaluation (with DenseCRF):']:
        assert line in out.stdout, line
    with open(os.path.join(ckpt, 'a2d_sent_new_test_iter_2_results.json')) as f:
        results = json.load(f)
    plain = results['without_DenseCRF']
    precisions = [plain['precision@%s' % t] for t in (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8,
                                                         0.85, 0.9, 0.95)]
    assert plain['mAP'] == pytest.approx(np.mean(precisions))
    assert results['expressions'] == 3
    assert all({'I', 'U', 'I_dcrf', 'U_dcrf'} <= set(r) for r in results['per_sample'])
    # each sample its own pictures: the masks at the test image's size (48 x 80)
    vis = os.path.join(root, 'a2d_sent_new', 'visualization', '2')
    assert len(os.listdir(vis)) == 3


def test_jhmdb_is_tested_with_the_a2d_snapshot(video_run):
    root, ckpt, _ = video_run
    out = run_main(['-m', 'test', '-d', 'jhmdb_sent', '-t', 'test', '-i', '2', '-f', ckpt,
                    '--checkpoint-dataset', 'a2d_sent_new', '--data-root', str(root)],
                   cwd=str(root), script=SCRIPT)
    assert 'mAP = ' in out.stdout
    assert os.path.isfile(os.path.join(ckpt, 'jhmdb_sent_test_iter_2_results.json'))


def test_a_missing_frame_file_is_one_line_naming_it(video_run, tmp_path):
    root, ckpt, _ = video_run
    shutil.copytree(root / 'a2d_sent_new' / 'train_batch',
                    tmp_path / 'a2d_sent_new' / 'train_batch')
    frame = tmp_path / 'a2d_sent_new' / 'train_batch' / 'frames' / 'clip2' / '00005.npz'
    os.remove(frame)
    out = run_main(['-m', 'test', '-d', 'a2d_sent_new', '-t', 'train', '-i', '2', '-f', ckpt,
                    '--data-root', str(tmp_path)], cwd=str(tmp_path), script=SCRIPT, check=False)
    assert out.returncode == 1 and 'Traceback' not in out.stderr, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1] == (
        'error: %s: frame file not found (a frame of %s; rerun CMPC_video/build_A2D_batches.py: '
        'it writes the missing frames)'
        % (frame, tmp_path / 'a2d_sent_new' / 'train_batch' / 'a2d_sent_new_train_2.npz'))


@pytest.mark.slow  # half a minute or more: in CI (.ci/run)
def test_resume_continues_the_video_run(video_run):
    root, ckpt, _ = video_run
    out = run_main(TRAIN[:TRAIN.index('-i')] + ['-i', '3', '-s', '1', '-bs', '2', '-f', ckpt,
                                                 '--data-root', str(root)] + TRAIN[TRAIN.index('-s') + 2:],
                   cwd=str(root), script=SCRIPT)
    assert 'Resuming from' in out.stdout and 'a2d_sent_new_iter_3.tfmodel' in out.stdout


@pytest.mark.slow  # half a minute or more: in CI (.ci/run)
def test_image_snapshots_and_image_flags_are_refused(video_run, tmp_path):
    root, _, _ = video_run
    # an image model's snapshot in the folder the video script resumes from
    write_batches(str(tmp_path / 'a2d_sent_new' / 'train_batch'), 'a2d_sent_new_train', 2,
                  (64, 64))
    img = str(tmp_path / 'img')
    run_main(['-m', 'train', '-d', 'a2d_sent_new', '-t', 'train', '--random-backbone', '-i',
              '1', '-s', '1', '--backbone-blocks', '1,1,1,1', '-f', img,
              '--data-root', str(tmp_path)] + TINY_FLAGS, cwd=str(tmp_path))
    out = run_main(['-m', 'test', '-d', 'a2d_sent_new', '-t', 'train', '-i', '1', '-f', img,
                    '--data-root', str(tmp_path)], cwd=str(tmp_path), script=SCRIPT,
                   check=False)
    assert out.returncode != 0
    assert 'a checkpoint of the image model, not the video model (use trainval_model.py)' in \
        out.stderr
    out = run_main(TRAIN + ['-f', str(tmp_path / 'x'), '--tf-data'], cwd=str(root),
                   script=SCRIPT, check=False)
    assert out.returncode == 2 and '--tf-data reads image batches only' in out.stderr
    # image batch files (no frames) given to the video model: one line naming the file
    out = run_main(TRAIN + ['-f', str(tmp_path / 'y'), '--data-root', str(tmp_path)],
                   cwd=str(tmp_path), script=SCRIPT, check=False)
    assert out.returncode != 0 and 'a2d_sent_new_train_' in out.stderr
    assert 'missing frames' in out.stderr and 'Traceback' not in out.stderr


def test_a_text_batch_of_another_length_is_one_line_naming_the_file(tmp_path):
    # Batches built with -T 12 trained by a model of T = 20: the first batch's file is named.
    data = tmp_path / 'a2d_sent_new'
    write_video_batches(str(data / 'train_batch'), 'a2d_sent_new_train', 2, (48, 48), seed=4,
                        T=12)
    proc = run_main(TRAIN + ['-f', str(tmp_path / 'ck'), '--data-root', str(tmp_path)],
                    cwd=str(tmp_path), script=SCRIPT, check=False)
    path = str(data / 'train_batch' / 'a2d_sent_new_train_%d.npz')
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert last in ['error: iteration 0: %s: text_batch has 12 words, the model takes 20 '
                    '(--num-steps, or rebuild the batches with -T 20)' % (path % n)
                    for n in (0, 1)]  # the first file of the seeded shuffle
