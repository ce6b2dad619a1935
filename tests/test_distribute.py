"""Data-parallel training (util/pipeline/distribute.py) against one replica at the same global batch.

Each replicated run is the real train command in its own process: logical CPU devices and the
multi-worker runtime must be set up before TensorFlow starts (the one-replica reference runs the
same command in this process, helpers.run_main). Three runs of 3 steps at global batch 4 from
the same seed: one replica; MirroredStrategy over 2 logical CPU devices (--cpu-replicas 2);
MultiWorkerMirroredStrategy with 2 worker processes on 127.0.0.1 (TF_CONFIG).

Tolerances. The replicas' mean gradient equals the global batch's up to float32 rounding, so the
losses agree to rtol 1e-5 and Adam's moments to 1e-3 of each tensor's largest entry. Weights are
compared loosely on purpose: Adam divides by sqrt(v), so a gradient that is zero in exact
arithmetic (the key biases of the graph reasoning: a softmax over keys ignores a bias shared by
all keys) turns its rounding noise into steps of size lr. All but 0.1 % of the weights agree to
1e-5, and every weight to 2 x lr per step (biases learn at 2 x lr).
"""

import json
import os
import shutil
import socket

import numpy as np
import pytest
import tensorflow as tf

from helpers import TINY_FLAGS, run_main, run_script, script_env, start_script, write_batches
from util.pipeline import distribute
from util.data_reader import DataReader

STEPS, GLOBAL_BATCH, LR = 3, 4, 0.001
FLAGS = ['-m', 'train', '-d', 'unc', '-t', 'train', '-i', str(STEPS), '-s', str(STEPS),
         '-bs', str(GLOBAL_BATCH), '-lr', str(LR), '--random-backbone', '--seed', '0',
         '--log-every', '1', '--backbone-blocks', '1,1,1,1'] + TINY_FLAGS


def train_args(folder, extra=()):
    return ['-f', folder] + FLAGS + list(extra)


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_workers(root, folder, extra=(), n=2):
    """The train command as n workers of one cluster on 127.0.0.1; their stdouts."""
    cluster = {'worker': ['127.0.0.1:%d' % p for p in free_ports(n)]}
    workers = [start_script(train_args(folder, extra), root, env=script_env(
        TF_CONFIG=json.dumps({'cluster': cluster, 'task': {'type': 'worker', 'index': i}})))
        for i in range(n)]
    try:
        results = [w.communicate(timeout=600) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:  # a worker waiting for a dead peer would wait for ever
                w.kill()
    for i, (w, (stdout, stderr)) in enumerate(zip(workers, results)):
        assert w.returncode == 0, 'worker %d failed:\n%s\n%s' % (i, stdout[-3000:],
                                                                  stderr[-3000:])
    return [stdout for stdout, _ in results]


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('dist')
    write_batches(str(root / 'unc' / 'train_batch'), 'unc_train', 10, (64, 64), seed=3)
    single = run_main(train_args('single'), root).stdout  # one replica: needs no process
    mirrored = run_script(train_args('mirrored', ['--cpu-replicas', '2']), root).stdout
    multiworker = run_workers(root, 'multiworker')
    return root, {'single': single, 'mirrored': mirrored, 'multiworker': multiworker}


def snapshot(root, folder, step=STEPS):
    reader = tf.train.load_checkpoint(str(root / folder / ('unc_iter_%d.tfmodel' % step)))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}


def losses(root, folder):
    return [json.loads(line) for line in open(root / folder / 'train_log.jsonl')]


# The runs of several replicas: 5 processes each importing TensorFlow and tracing (minutes on 2
# cores); CI runs them (.ci/run).
@pytest.mark.slow
@pytest.mark.cli
@pytest.mark.parametrize('folder', ['mirrored', 'multiworker'])
def test_losses_and_weights_equal_single_replica(runs, folder):
    root, _ = runs
    ref, got = snapshot(root, 'single'), snapshot(root, folder)
    assert sorted(ref) == sorted(got)
    for key in ('text_objseg/Variable_1', 'text_objseg/beta1_power', 'text_objseg/beta2_power'):
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-7, err_msg=key)
    assert float(got['text_objseg/Variable_1']) == STEPS

    ref_log, got_log = losses(root, 'single'), losses(root, folder)
    assert [r['iter'] for r in got_log] == list(range(STEPS))
    for a, b in zip(ref_log, got_log):
        for key in ('cls_loss', 'cls_loss_c3', 'cls_loss_c4', 'cls_loss_c5', 'reg_loss', 'cost',
                    'learning_rate'):
            np.testing.assert_allclose(b[key], a[key], rtol=1e-5, err_msg=key)
        np.testing.assert_allclose(b['accuracy'], a['accuracy'], atol=1e-6)

    close, total = 0, 0
    for name, value in ref.items():
        diff = np.abs(got[name].astype(np.float64) - value)
        if name.endswith(('/Adam', '/Adam_1')):
            floor = 1e-7 if name.endswith('/Adam') else 1e-12  # rounding noise of zero gradients
            assert diff.max() <= 1e-3 * np.abs(value).max() + floor, name
        elif name.startswith('text_objseg/') and value.dtype == np.float32 and value.ndim:
            assert diff.max() <= 2 * 2 * LR * STEPS, name
            close += int((diff <= 1e-5).sum())
            total += value.size
        else:  # the frozen backbone: calibrated from the same images, never trained
            np.testing.assert_array_equal(got[name], value, err_msg=name)
    assert close >= 0.999 * total, (close, total)


@pytest.mark.slow
@pytest.mark.cli
def test_only_the_chief_writes(runs):
    root, out = runs
    log = losses(root, 'multiworker')
    assert len(log) == STEPS  # one writer: the chief's lines only
    assert 'MultiWorkerMirroredStrategy: 2 replicas, 2 worker(s), this is worker 0 (chief)' in \
        out['multiworker'][0]
    assert 'this is worker 1, ' in out['multiworker'][1]
    assert 'snapshot saved' in out['multiworker'][0]
    assert 'snapshot saved' not in out['multiworker'][1]
    assert 'MirroredStrategy: 2 replicas, 1 worker(s)' in out['mirrored']


@pytest.mark.slow
@pytest.mark.cli
def test_resume_continues_on_every_worker(runs):
    """Both workers restore the chief's snapshot (shared folder) and agree on the step."""
    root, _ = runs
    # A copy: the other tests read the multi-worker run as it was.
    shutil.copytree(root / 'multiworker', root / 'resumed')
    outs = run_workers(root, 'resumed', ['-i', str(STEPS + 1)])
    for out in outs:
        assert 'Resuming from' in out and ('unc_iter_%d.tfmodel' % STEPS) in out
    log = losses(root, 'resumed')
    assert [r['iter'] for r in log] == list(range(STEPS + 1))
    assert float(snapshot(root, 'resumed', STEPS + 1)['text_objseg/Variable_1']) == STEPS + 1


# -- the pieces, without processes --------------------------------------------------------------

def test_reader_shards_partition_each_global_batch(tmp_path):
    """Two shards (same seed) read disjoint halves of each global batch of the one-shard stream,
    across an epoch end (10 files, global batch 4)."""
    write_batches(str(tmp_path), 'unc_train', 10, (8, 8), seed=0)
    sents = lambda r, n: [str(r.read_batch(is_log=False)['sent_batch'][0]) for _ in range(n)]
    with DataReader(str(tmp_path), 'unc_train', seed=5) as whole:
        stream = sents(whole, 12)
        assert (whole.n_epoch, whole.n_batch) == (1, 2)
    halves = []
    for k in range(2):
        with DataReader(str(tmp_path), 'unc_train', seed=5, shard=k, num_shards=2,
                        global_batch=4) as part:
            halves.append(sents(part, 6))
            assert (part.n_epoch, part.n_batch) == (1, 2 if k else 0)
    for b in range(3):
        assert stream[4 * b:4 * b + 2] == halves[0][2 * b:2 * b + 2]
        assert stream[4 * b + 2:4 * b + 4] == halves[1][2 * b:2 * b + 2]
    with pytest.raises(ValueError, match='divisible by num_shards'):
        DataReader(str(tmp_path), 'unc_train', shard=0, num_shards=3, global_batch=4)


def test_tf_data_shards_partition_each_global_batch(tmp_path):
    from util.pipeline.tf_input import train_dataset
    write_batches(str(tmp_path), 'unc_train', 10, (16, 16), seed=0)
    take = lambda ds: np.concatenate([w.numpy() for w, _, _ in ds.take(3)])
    whole = take(train_dataset(str(tmp_path), 'unc_train', 16, 16, 4, seed=5))
    parts = [take(train_dataset(str(tmp_path), 'unc_train', 16, 16, 4, seed=5, shard=k,
                                num_shards=2)) for k in range(2)]
    for b in range(3):
        np.testing.assert_array_equal(whole[4 * b:4 * b + 2], parts[0][2 * b:2 * b + 2])
        np.testing.assert_array_equal(whole[4 * b + 2:4 * b + 4], parts[1][2 * b:2 * b + 2])


def test_tf_config_parsing():
    cluster = {'chief': ['a:1'], 'worker': ['b:1', 'c:1']}

    def parse(task):
        return distribute.read_tf_config({'TF_CONFIG': json.dumps(
            {'cluster': cluster, 'task': task})})
    assert distribute.read_tf_config({}) == (1, 0, True)
    assert parse({'type': 'chief', 'index': 0}) == (3, 0, True)
    assert parse({'type': 'worker', 'index': 1}) == (3, 2, False)
    with pytest.raises(ValueError, match='task index 2, but the cluster has 2 worker'):
        parse({'type': 'worker', 'index': 2})
    with pytest.raises(ValueError, match="task type must be 'chief' or 'worker'"):
        parse({'type': 'ps', 'index': 0})
    with pytest.raises(ValueError, match='TF_CONFIG: expected JSON'):
        distribute.read_tf_config({'TF_CONFIG': '{not json'})


@pytest.mark.cli
def test_bad_batch_for_replicas_is_a_clear_error(tmp_path):
    write_batches(str(tmp_path / 'unc' / 'train_batch'), 'unc_train', 2, (64, 64), seed=0)
    proc = run_script(train_args('x', ['--cpu-replicas', '3']), tmp_path, check=False)
    assert proc.returncode != 0
    assert 'error: -bs 4 (the global batch) must be a multiple of the number of replicas, 3' \
        in proc.stderr
    assert not os.path.exists(tmp_path / 'x' / 'train_log.jsonl')
