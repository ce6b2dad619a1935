"""The main job end to end (main_job.sh): CMPC trained on the synthetic dataset against the
trivial baselines on the val split (about 15 minutes on 2 cores), and a short run of
`main_job.sh video` (a few minutes)."""

import json
import os
import subprocess

import pytest

from helpers import ROOT

pytestmark = pytest.mark.cli  # runs main_job.sh

MARGIN = 0.05


@pytest.mark.slow
def test_main_job_learns(tmp_path):
    env = dict(os.environ, SYN=str(tmp_path / 'synthetic'), OUT=str(tmp_path / 'ckpts'))
    proc = subprocess.run(['bash', os.path.join(ROOT, 'main_job.sh')], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'union of all objects' in proc.stdout and 'Main job took' in proc.stdout
    table = json.load(open(tmp_path / 'ckpts' / 'table.json'))
    whole = table['whole image']['overall_iou']
    union = table['union of all objects']['overall_iou']
    model = [r for name, r in table.items() if 'without DenseCRF' in name][0]
    # The baselines are what they should be on these scenes: objects cover a few percent of an
    # image, and 3-5 objects share it.
    assert 0.01 < whole < 0.1 and 0.15 < union < 0.4
    # Overall IoU: above segmenting the whole image, and above the union of all objects (a
    # perfect detector that ignores the sentence), so the model reads the expressions.
    assert model['overall_iou'] > whole + MARGIN, table
    assert model['overall_iou'] > union + MARGIN, table
    # The union of all objects rarely singles out the referred one (precision@0.5); the model
    # does, for a clear share of the expressions.
    union_p5 = table['union of all objects']['precision@0.5']
    assert model['precision@0.5'] > union_p5 + MARGIN, table
    assert os.listdir(tmp_path / 'ckpts' / 'visualization')


@pytest.mark.slow
def test_video_main_job_runs_end_to_end(tmp_path):
    # A short run (the README's table is the full one): the pipeline from the .mp4 videos to
    # the table, and the baselines it prints, which depend on the data only.
    env = dict(os.environ, SYN=str(tmp_path / 'synthetic_video'), OUT=str(tmp_path / 'ckpts'),
               ITERS='10', TRAIN_VIDEOS='4', TEST_VIDEOS='4')
    proc = subprocess.run(['bash', os.path.join(ROOT, 'main_job.sh'), 'video'], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'changes' in proc.stdout and 'Video main job took' in proc.stdout
    table = json.load(open(tmp_path / 'ckpts' / 'table.json'))
    assert sorted(table) == ['both twins', 'image CMPC iter 10', 'twin at random',
                             'union of all objects', 'video CMPC iter 10', 'whole frame']
    # Shapes of radius ~0.1 of the frame's side: a few percent of the frame each.
    assert 0.01 < table['whole frame']['all']['overall_iou'] < 0.1
    n = table['whole frame']['all']['n']
    assert all(r['all']['n'] == n for r in table.values())
    # The look-alike baselines: perfect without a twin; with twins (the same outline, not
    # overlapping), guessing is right for one query of each pair and both twins are IoU 0.5.
    for row in ('twin at random', 'both twins'):
        if 'appearance' in table[row]:
            assert table[row]['appearance']['overall_iou'] == 1
    for category in ('changes', 'motion'):
        if category in table['twin at random']:
            assert table['twin at random'][category]['precision@0.5'] == 0.5
            assert table['both twins'][category]['overall_iou'] == pytest.approx(0.5, abs=0.02)
    assert os.listdir(tmp_path / 'ckpts' / 'video' / 'visualization')
