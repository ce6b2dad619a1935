"""One-step smoke tests of the real train and test commands on a generated batch folder."""

import json
import os
import re

import numpy as np
import pytest

from fixtures import TINY_FLAGS, run_script, write_batches


def run(args, cwd):
    return run_script(args, cwd).stdout


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp('smoke')
    write_batches(str(root / 'unc' / 'train_batch'), 'unc_train', 4, (64, 64), seed=1)
    # Test images keep their own sizes: resize-and-pad in, resize-and-crop out.
    write_batches(str(root / 'unc' / 'val_batch'), 'unc_val', 3, [(48, 80), (72, 56)], seed=2)
    out = run(['-m', 'train', '-d', 'unc', '-t', 'train', '-f', 'ckpts', '-i', '2', '-s', '1',
               '--random-backbone', '--seed', '0', '--log-every', '1'] + TINY_FLAGS, cwd=root)
    return root, out


def test_train_writes_snapshots_and_logs(trained):
    root, out = trained
    assert re.search(r'iter = 0, loss \(cur\) = [\d.]+, loss \(avg\) = [\d.]+, lr = 0.000250', out)
    for n in (1, 2):
        prefix = root / 'ckpts' / ('unc_iter_%d.tfmodel' % n)
        assert os.path.isfile(str(prefix) + '.index')
        meta = json.load(open(str(prefix) + '.json'))
        assert meta['step'] == n and meta['model']['H'] == 64
    log = [json.loads(l) for l in open(root / 'ckpts' / 'train_log.jsonl')]
    assert [r['iter'] for r in log] == [0, 1]
    assert all(np.isfinite(r['cost']) and r['learning_rate'] > 0 for r in log)


def test_test_restores_snapshot_and_prints_metrics(trained):
    root, _ = trained
    out = run(['-m', 'test', '-d', 'unc', '-t', 'val', '-f', 'ckpts', '-i', '2', '-c', '-v',
               '--vis-dir', 'vis'], cwd=root)
    assert 'Segmentation evaluation (without DenseCRF):' in out
    assert 'Segmentation evaluation (with DenseCRF):' in out
    m = re.findall(r'overall IoU = ([\d.]+); mean IoU = ([\d.]+)', out)
    assert len(m) == 2
    res = json.load(open(root / 'ckpts' / 'unc_val_iter_2_results.json'))
    assert res['expressions'] == 3 and len(res['per_sample']) == 3
    ev = res['without_DenseCRF']
    # The printed figure is the JSON's, and it is cum_I / cum_U of the per-sample counts.
    cum_I = sum(r['I'] for r in res['per_sample'])
    cum_U = sum(r['U'] for r in res['per_sample'])
    assert ev['overall_iou'] == pytest.approx(cum_I / cum_U)
    assert float(m[0][0]) == pytest.approx(cum_I / cum_U, abs=1e-6)
    assert os.path.isdir(root / 'vis') and len(os.listdir(root / 'vis')) == 3


def test_resume_continues_from_newest_snapshot(trained):
    root, _ = trained
    out = run(['-m', 'train', '-d', 'unc', '-t', 'train', '-f', 'ckpts', '-i', '3', '-s', '1',
               '--random-backbone', '--log-every', '1'] + TINY_FLAGS, cwd=root)
    assert 'Resuming from ckpts/unc_iter_2.tfmodel' in out
    assert 'iter = 2,' in out and 'iter = 0,' not in out
    assert os.path.isfile(root / 'ckpts' / 'unc_iter_3.tfmodel.index')


def test_missing_backbone_is_a_clear_error(tmp_path):
    write_batches(str(tmp_path / 'unc' / 'train_batch'), 'unc_train', 1, (64, 64))
    proc = run_script(['-m', 'train', '-d', 'unc', '-t', 'train', '-f', 'ck', '-i', '1']
                      + TINY_FLAGS, tmp_path, check=False, timeout=300)
    assert proc.returncode != 0
    assert 'deeplab_resnet_init.ckpt' in proc.stderr and '--random-backbone' in proc.stderr
    assert 'Traceback' not in proc.stderr


BATCHED_TEST = ['-m', 'test', '-d', 'unc', '-t', 'val', '-f', 'ckpts', '-i', '2', '-bs', '2']


@pytest.fixture(scope='module')
def batched_results(trained):
    """Test mode at batch 2 on the plain path, the reference of the next two tests."""
    root, _ = trained
    run(BATCHED_TEST + ['--results', 'python.json'], cwd=root)
    return json.load(open(root / 'python.json'))


def test_tf_data_flag_gives_the_same_test_results(trained, batched_results):
    root, _ = trained
    run(BATCHED_TEST + ['--tf-data', '--results', 'tfdata.json'], cwd=root)
    tfdata = json.load(open(root / 'tfdata.json'))
    # same I, U and sentence for every expression
    assert batched_results['per_sample'] == tfdata['per_sample']


def test_tf_data_flag_trains(tmp_path):
    write_batches(str(tmp_path / 'unc' / 'train_batch'), 'unc_train', 3, [(64, 64), (50, 70)])
    out = run(['-m', 'train', '-d', 'unc', '-t', 'train', '-f', 'ckpts', '-i', '2', '-s', '2',
               '-bs', '2', '--tf-data', '--random-backbone', '--seed', '0', '--log-every', '1']
              + TINY_FLAGS, cwd=tmp_path)
    assert re.search(r'iter = 1, loss \(cur\) = [\d.]+', out)
    assert os.path.isfile(tmp_path / 'ckpts' / 'unc_iter_2.tfmodel.index')


def test_fast_path_flags_in_test_mode(trained, batched_results):
    """--fold-bn computes the same sums as the plain path (up to rounding: the same per-sample
    counts within 1 % of the union); --precision bf16 runs and both are recorded in the JSON."""
    root, _ = trained
    run(BATCHED_TEST + ['--fold-bn', '--results', 'fold.json'], cwd=root)
    run(BATCHED_TEST + ['--precision', 'bf16', '--results', 'bf16.json'], cwd=root)
    plain = batched_results
    fold, bf16 = (json.load(open(root / n)) for n in ('fold.json', 'bf16.json'))
    assert (fold['fold_bn'], fold['precision'], bf16['precision']) == (True, 'fp32', 'bf16')
    for a, b in zip(plain['per_sample'], fold['per_sample']):
        assert abs(a['I'] - b['I']) <= 0.01 * a['U'] and abs(a['U'] - b['U']) <= 0.01 * a['U']
    assert len(bf16['per_sample']) == 3


def test_fold_bn_is_refused_in_training(tmp_path):
    proc = run_script(['-m', 'train', '-d', 'unc', '-t', 'train', '-f', 'ck', '--fold-bn'],
                      tmp_path, check=False, timeout=300)
    assert proc.returncode == 2 and '--fold-bn is for test' in proc.stderr
