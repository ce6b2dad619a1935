"""trainval_model.py, the command line, run as the user runs it on generated batch folders:
one-step smoke tests of train and test, and training that survives a kill -9 at any point
(tests/fault_runner.py injects the faults) with the same losses and weights as a run that was
never interrupted."""

import json
import os
import shutil
import re
import sys

import numpy as np
import pytest

from helpers import TINY_FLAGS, run_main, run_script, write_batches

# Every test runs trainval_model.py (most in this process).
pytestmark = [pytest.mark.cli, pytest.mark.eager]


def run(args, cwd):
    return run_main(args, cwd).stdout


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp('smoke')
    write_batches(str(root / 'unc' / 'train_batch'), 'unc_train', 4, (64, 64), seed=1)
    # Test images keep their own sizes: resize-and-pad in, resize-and-crop out.
    write_batches(str(root / 'unc' / 'val_batch'), 'unc_val', 3, [(48, 80), (72, 56)], seed=2)
    # One block per ResNet stage: the full depth's names and shapes are test_cmpc_model.py's;
    # here the command, at a tenth of the tracing.
    out = run(['-m', 'train', '-d', 'unc', '-t', 'train', '-f', 'ckpts', '-i', '2', '-s', '1',
               '--random-backbone', '--seed', '0', '--log-every', '1', '--backbone-blocks',
               '1,1,1,1'] + TINY_FLAGS, cwd=root)
    return root, out


def test_train_writes_snapshots_and_logs(trained):
    root, out = trained
    assert re.search(r'iter = 0, loss \(cur\) = [\d.]+, loss \(avg\) = [\d.]+, lr = 0.000250', out)
    for n in (1, 2):
        prefix = root / 'ckpts' / ('unc_iter_%d.tfmodel' % n)
        assert os.path.isfile(str(prefix) + '.index')
        meta = json.load(open(str(prefix) + '.json'))
        assert meta['step'] == n and meta['model']['H'] == 64
        assert meta['model_name'] == 'CMPC_model'  # -n's default, recorded
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


def test_a_snapshot_without_its_weights_is_a_one_line_error(trained, tmp_path):
    # Its index and .json are there, so the snapshot is found and the model built; restoring
    # it fails, and the command line says so in one line, without a traceback.
    root, _ = trained
    (tmp_path / 'unc').symlink_to(root / 'unc')
    (tmp_path / 'ckpts').mkdir()
    for suffix in ('.index', '.json'):
        shutil.copy(str(root / 'ckpts' / ('unc_iter_2.tfmodel' + suffix)), str(tmp_path / 'ckpts'))
    proc = run_main(['-m', 'test', '-d', 'unc', '-t', 'val', '-f', 'ckpts', '-i', '2'],
                    tmp_path, check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.startswith('error: ') and proc.stderr.count('\n') == 1, proc.stderr


def test_resume_continues_from_newest_snapshot(trained):
    root, _ = trained
    out = run(['-m', 'train', '-d', 'unc', '-t', 'train', '-f', 'ckpts', '-i', '3', '-s', '1',
               '--random-backbone', '--log-every', '1', '--backbone-blocks', '1,1,1,1']
              + TINY_FLAGS, cwd=root)
    assert 'Resuming from ckpts/unc_iter_2.tfmodel' in out
    assert 'iter = 2,' in out and 'iter = 0,' not in out
    assert os.path.isfile(root / 'ckpts' / 'unc_iter_3.tfmodel.index')


def test_missing_backbone_is_a_clear_error(tmp_path):
    write_batches(str(tmp_path / 'unc' / 'train_batch'), 'unc_train', 1, (64, 64))
    proc = run_main(['-m', 'train', '-d', 'unc', '-t', 'train', '-f', 'ck', '-i', '1']
                    + TINY_FLAGS, tmp_path, check=False)
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


@pytest.mark.slow  # a training run of its own (minutes on 2 cores); CI runs it (.ci/run)
def test_tf_data_flag_trains(tmp_path):
    write_batches(str(tmp_path / 'unc' / 'train_batch'), 'unc_train', 3, [(64, 64), (50, 70)])
    out = run(['-m', 'train', '-d', 'unc', '-t', 'train', '-f', 'ckpts', '-i', '2', '-s', '2',
               '-bs', '2', '--tf-data', '--random-backbone', '--seed', '0', '--log-every', '1',
               '--backbone-blocks', '1,1,1,1'] + TINY_FLAGS, cwd=tmp_path)
    assert re.search(r'iter = 1, loss \(cur\) = [\d.]+', out)
    assert os.path.isfile(tmp_path / 'ckpts' / 'unc_iter_2.tfmodel.index')


def test_fast_path_flags_in_test_mode(trained, batched_results):
    """--fold and --precision bf16 reach the model and are recorded in the JSON. At this size
    nothing folds (MUTAN is narrower than res3; the fold itself: test_cmpc_model.py), so the
    per-sample counts are the plain path's."""
    root, _ = trained
    run(BATCHED_TEST + ['--fold', '--results', 'fold.json'], cwd=root)
    run(BATCHED_TEST + ['--precision', 'bf16', '--results', 'bf16.json'], cwd=root)
    plain = batched_results
    fold, bf16 = (json.load(open(root / n)) for n in ('fold.json', 'bf16.json'))
    assert (fold['fold'], fold['precision'], bf16['precision']) == (True, 'fp32', 'bf16')
    assert fold['per_sample'] == plain['per_sample']
    assert len(bf16['per_sample']) == 3


# ---------------------------------------------------------------------------------------------
# A model variant: a new module, named with -n (util/pipeline/models.py)

MY_CMPC = '''"""A CMPC variant: the image model that says when it is built, as a researcher's own
module beside the repository."""
import CMPC_model
from util.pipeline.settings import ModelSettings as Settings  # noqa: F401

INPUT = 'image'


class LSTM_model(CMPC_model.LSTM_model):
    def _build(self, *args, **kwargs):
        super()._build(*args, **kwargs)
        print('my_cmpc: built in %s mode' % self.mode)


WORD_TYPES = LSTM_model.WORD_TYPES
'''


def test_a_model_variant_is_one_module_named_with_n(tmp_path, monkeypatch):
    """The recipe "add a model variant": write the module, put its folder on the Python path,
    train with -n; the snapshot records the module, and test mode rebuilds it without -n."""
    models = tmp_path / 'my_models'
    models.mkdir()
    (models / 'my_cmpc.py').write_text(MY_CMPC)
    monkeypatch.syspath_prepend(str(models))  # as PYTHONPATH would
    monkeypatch.delitem(sys.modules, 'my_cmpc', raising=False)
    write_batches(str(tmp_path / 'unc' / 'train_batch'), 'unc_train', 2, (64, 64), seed=1)
    write_batches(str(tmp_path / 'unc' / 'val_batch'), 'unc_val', 2, (64, 64), seed=2)
    out = run_main(['-m', 'train', '-d', 'unc', '-t', 'train', '-f', 'ck', '-i', '2', '-s', '2',
                    '-n', 'my_cmpc', '--random-backbone', '--seed', '0', '--backbone-blocks',
                    '1,1,1,1'] + TINY_FLAGS, tmp_path).stdout
    assert 'my_cmpc: built in train mode' in out and 'model_name: my_cmpc' in out
    meta = json.load(open(tmp_path / 'ck' / 'unc_iter_2.tfmodel.json'))
    assert meta['model_name'] == 'my_cmpc' and meta['model']['kind'] == 'image'
    out = run_main(['-m', 'test', '-d', 'unc', '-t', 'val', '-f', 'ck', '-i', '2'],
                   tmp_path).stdout
    assert 'my_cmpc: built in eval mode' in out and 'Model my_cmpc, settings from' in out
    assert json.load(open(tmp_path / 'ck' / 'unc_val_iter_2_results.json'))['model_name'] == \
        'my_cmpc'


def test_fold_is_refused_in_training(tmp_path):
    proc = run_script(['-m', 'train', '-d', 'unc', '-t', 'train', '-f', 'ck', '--fold'],
                      tmp_path, check=False, timeout=300)
    assert proc.returncode == 2 and '--fold is for test' in proc.stderr


# ---------------------------------------------------------------------------------------------
# Exact resume after kill -9, at several points

RESUME_FLAGS = ['-m', 'train', '-d', 'unc', '-t', 'train', '--preset', 'tiny', '--vocab-size',
                '50', '--backbone-blocks', '1,1,1,1', '--random-backbone', '-i', '12', '-s', '4',
                '-bs', '2', '--seed', '0', '--log-every', '1']
COMPARED = ('cls_loss', 'cls_loss_c3', 'cls_loss_c4', 'cls_loss_c5', 'cls_loss_all', 'reg_loss',
            'cost', 'learning_rate', 'cls_loss_avg', 'accuracy')


@pytest.fixture(scope='module')
def resume_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('resume')
    # 7 expressions: with batch 2, global batches span epoch ends.
    write_batches(str(root / 'unc' / 'train_batch'), 'unc_train', 7, (64, 64), seed=4)
    return root


def train_with_fault(root, folder, fault, n, extra=()):
    """The training command with `fault` at its n-th occurrence: it must die of SIGKILL."""
    proc = run_script([fault, str(n), '--'] + RESUME_FLAGS + ['-f', folder] + list(extra), root,
                      script=os.path.join('tests', 'fault_runner.py'), check=False)
    assert proc.returncode == -9, proc.stderr[-3000:]


def log_rows(folder):
    with open(os.path.join(folder, 'train_log.jsonl')) as f:
        return [json.loads(line) for line in f]


def final_weights(folder):
    import tensorflow as tf
    reader = tf.train.load_checkpoint(os.path.join(folder, 'unc_iter_12.tfmodel'))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}


@pytest.fixture(scope='module')
def uninterrupted(resume_root):
    """{variant: (log rows, final weights)} of runs never interrupted, made on demand."""
    runs = {}

    def get(extra=()):
        key = tuple(extra)
        if key not in runs:
            folder = str(resume_root / ('whole' + '_'.join(key)))
            run_script(RESUME_FLAGS + ['-f', folder] + list(extra), resume_root)
            runs[key] = log_rows(folder), final_weights(folder)
        return runs[key]
    return get


@pytest.mark.slow
@pytest.mark.parametrize('fault, n, extra', [
    ('after-step', 6, ()),        # killed between two snapshots: resumes from iteration 4
    ('in-snapshot', 2, ()),       # killed inside the write of snapshot 8: resumes from 4
    ('in-log', 10, ()),           # killed in the middle of iteration 9's log row: from 8
    ('after-step', 7, ('--tf-data',)),
    ('after-step', 3, ('--cpu-replicas', '2')),
])
def test_killed_run_resumes_as_if_never_interrupted(resume_root, uninterrupted, fault, n, extra):
    whole_rows, whole_weights = uninterrupted(extra)
    folder = str(resume_root / ('%s_%d%s' % (fault, n, '_'.join(extra))))
    train_with_fault(resume_root, folder, fault, n, extra)
    run_script(RESUME_FLAGS + ['-f', folder] + list(extra), resume_root)  # the same command
    rows = log_rows(folder)
    assert [r['iter'] for r in rows] == list(range(12))  # one row per iteration
    # Bit for bit, except with two replicas on one CPU: their ops run concurrently in one
    # thread pool, and a reduction may then round differently (seen once in CI: 2 of the 128
    # elements of one Adam moment 1 float32 ulp apart, 8e-8 relative). A resume that went
    # wrong (another step, another batch, a lost moment) differs by far more than 1e-6.
    rtol = 1e-6 if '--cpu-replicas' in extra else 0
    for row, whole in zip(rows, whole_rows):
        for k in COMPARED:
            np.testing.assert_allclose(row[k], whole[k], rtol=rtol, atol=0,
                                       err_msg='%s at %d' % (k, row['iter']))
    weights = final_weights(folder)
    assert sorted(weights) == sorted(whole_weights)
    for name, value in whole_weights.items():
        np.testing.assert_allclose(weights[name], value, rtol=rtol, atol=0, err_msg=name)
    leftovers = [f for f in os.listdir(folder) if '.tmp' in f]
    assert not leftovers


@pytest.mark.slow
def test_a_failed_snapshot_write_stops_cleanly_and_keeps_the_last_one(resume_root):
    folder = str(resume_root / 'enospc')
    proc = run_script(['enospc-snapshot', '2', '--'] + RESUME_FLAGS + ['-f', folder],
                      resume_root, script=os.path.join('tests', 'fault_runner.py'), check=False)
    assert proc.returncode == 1
    assert re.search(r'error: cannot write the snapshot \S*unc_iter_8\.tfmodel \(\[Errno 28\] '
                     r'No space left on device.*the last snapshot is \S*unc_iter_4\.tfmodel',
                     proc.stderr), proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
    assert sorted(f for f in os.listdir(folder) if 'unc_iter' in f) == [
        'unc_iter_4.tfmodel.data-00000-of-00001', 'unc_iter_4.tfmodel.index',
        'unc_iter_4.tfmodel.json']
    import tensorflow as tf
    assert tf.train.load_checkpoint(os.path.join(folder, 'unc_iter_4.tfmodel')).get_tensor(
        'text_objseg/Variable_1') == 4.0


def test_a_non_finite_loss_stops_training_naming_the_iteration_and_term(resume_root):
    folder = str(resume_root / 'nan')
    # A learning rate of 1e30 sends the weights to ~1e30 in one Adam step: the next forward
    # overflows.
    flags = [f for f in RESUME_FLAGS] + ['-f', folder, '-lr', '1e30', '-s', '1']
    proc = run_main(flags, resume_root, check=False)
    assert proc.returncode == 1
    m = re.search(r'error: iteration (\d+): the loss (\w+) is (nan|inf|-inf); training stopped '
                  r'.*the last good snapshot is \S*unc_iter_(\d+)\.tfmodel', proc.stderr)
    assert m, proc.stderr[-2000:]
    stopped, last = int(m.group(1)), int(m.group(4))
    assert stopped >= 1 and last == stopped  # snapshot N holds the weights before step N
    snapshots = sorted(int(f.split('_')[2].split('.')[0]) for f in os.listdir(folder)
                       if f.endswith('.index'))
    assert snapshots[-1] == stopped


def test_a_snapshot_past_the_stop_iteration_is_refused_before_training(tmp_path):
    folder = tmp_path / 'ckpts'
    folder.mkdir()
    (folder / 'unc_iter_10.tfmodel.index').write_text('')
    proc = run_main(RESUME_FLAGS[:-4] + ['-i', '5', '-f', str(folder)], tmp_path, check=False)
    assert proc.returncode == 1
    assert re.search(r'error: the newest snapshot \S*unc_iter_10\.tfmodel is past -i 5', proc.stderr)


# ---------------------------------------------------------------------------------------------
# Watching a run: TensorBoard event files, validation during training, the best snapshot

WATCH_FLAGS = RESUME_FLAGS + ['-i', '6', '-s', '3']  # the last -i and -s count
VALIDATE = ['--val-split', 'val', '--val-every', '2', '--val-images', '2']
TRAIN_TAGS = ('cls_loss', 'cls_loss_c3', 'cls_loss_c4', 'cls_loss_c5', 'cls_loss_all',
              'reg_loss', 'cost', 'learning_rate', 'cls_loss_avg', 'accuracy/all',
              'accuracy/pos', 'accuracy/neg', 'seconds_per_step', 'samples_per_second')
VAL_TAGS = ('overall_iou', 'mean_iou', 'precision@0.5', 'precision@0.6', 'precision@0.7',
            'precision@0.8', 'precision@0.9')


@pytest.fixture(scope='module')
def watch_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('watch')
    write_batches(str(root / 'unc' / 'train_batch'), 'unc_train', 7, (64, 64), seed=4)
    write_batches(str(root / 'unc' / 'val_batch'), 'unc_val', 5, [(48, 80), (64, 64)], seed=5)
    return root


def events(folder, writer):
    """{tag: [steps]} of the event files of one writer, read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing import event_accumulator
    acc = event_accumulator.EventAccumulator(os.path.join(folder, 'tensorboard', writer),
                                             size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    return {tag: [e.step for e in acc.Tensors(tag)] for tag in acc.Tags()['tensors']}


@pytest.mark.slow  # two training runs and a test (minutes on 2 cores); CI runs it (.ci/run)
def test_tensorboard_validation_and_best_snapshot(watch_root):
    watched, plain = str(watch_root / 'watched'), str(watch_root / 'plain')
    run_main(WATCH_FLAGS + VALIDATE + ['-f', watched], watch_root)
    run_main(WATCH_FLAGS + ['-f', plain], watch_root)
    rows = log_rows(watched)
    train_rows = [r for r in rows if 'cls_loss' in r]
    val_rows = [r for r in rows if 'overall_iou' in r]
    # Validation changes nothing in the training run.
    assert [{k: r[k] for k in COMPARED} for r in train_rows] == [
        {k: r[k] for k in COMPARED} for r in log_rows(plain)]
    assert [r['iter'] for r in val_rows] == [2, 4, 6]

    train = events(watched, 'train')
    for tag in TRAIN_TAGS:
        assert train.get(tag) == list(range(6)), tag  # one value per logged step
    assert 'settings' in train
    val = events(watched, 'val')
    for tag in VAL_TAGS:
        assert val.get(tag) == [2, 4, 6], tag
    for k in (0, 1):
        assert val.get('prediction_red_ground_truth_green/%d' % k) == [2, 4, 6]
        assert val.get('prediction_red_ground_truth_green/%d/sentence' % k) == [2, 4, 6]
    assert 'prediction_red_ground_truth_green/2' not in val  # --val-images 2

    # The best snapshot is the iteration with the best logged overall IoU (the first of ties).
    best = max(val_rows, key=lambda r: (r['overall_iou'], -r['iter']))
    meta = json.load(open(os.path.join(watched, 'unc_best.tfmodel.json')))
    assert meta['best']['iter'] == best['iter'] and meta['step'] == best['iter']
    assert meta['best']['overall_iou'] == best['overall_iou']
    # -m test -i best tests it, with the same batches as the validation: the same figure.
    run_main(['-m', 'test', '-d', 'unc', '-t', 'val', '-f', watched, '-i', 'best', '-bs', '2'],
             watch_root)
    results = json.load(open(os.path.join(watched, 'unc_val_iter_best_results.json')))
    assert results['without_DenseCRF']['overall_iou'] == best['overall_iou']

    # The curve without TensorBoard.
    out = run_main([watched], watch_root, script=os.path.join('tools', 'plot_training.py'))
    assert 'Wrote' in out.stdout and os.path.getsize(os.path.join(watched, 'training.png')) > 0


@pytest.mark.slow
def test_resumed_run_continues_the_same_curves_without_duplicated_steps(watch_root):
    folder = str(watch_root / 'resumed')
    # Killed after the step of iteration 4 returned: snapshot 3 and validation 4 were written.
    train_with_fault(watch_root, folder, 'after-step', 5, WATCH_FLAGS[-4:] + VALIDATE)
    run_script(WATCH_FLAGS + VALIDATE + ['-f', folder], watch_root)
    train, val = events(folder, 'train'), events(folder, 'val')
    for tag in TRAIN_TAGS:
        assert train[tag] == list(range(6)), tag
    for tag in VAL_TAGS:
        assert val[tag] == [2, 4, 6], tag
    rows = log_rows(folder)
    assert [r['iter'] for r in rows if 'cls_loss' in r] == list(range(6))
    assert [r['iter'] for r in rows if 'overall_iou' in r] == [2, 4, 6]


# ---------------------------------------------------------------------------------------------
# Bad input: one line that names the file or flag, no traceback, before any work is lost.
# The commands fail before their first step (no tracing); they run in this process, a second
# or two each (as processes, ~10 s of CPU each, most of it importing TensorFlow). The refused
# flags run as processes: argparse's exit status 2 before TensorFlow is imported, under a second.

TINY_TRAIN = ['-m', 'train', '-d', 'unc', '-t', 'train', '--preset', 'tiny', '--vocab-size', '50',
              '--backbone-blocks', '1,1,1,1', '--random-backbone', '--seed', '0']
EXPECTED_NPZ = ('expected an .npz with text_batch, im_batch, mask_batch, sent_batch as '
                'build_batches.py writes')


def break_batch_file(path, kind):
    """Breaks the batch file at path as `kind`; returns the end of its message (after the path)."""
    if kind == 'gap':
        os.remove(path)
        n = int(path[:-len('.npz')].rsplit('_', 1)[1])
        return (' is missing but %s_%d.npz exists; batch files are numbered 0, 1, ... without gaps '
                '(rerun build_batches.py: it writes the missing files and keeps the others)'
                % (os.path.basename(path).rsplit('_', 1)[0], n + 1))
    if kind == 'truncated':  # as a copy cut short by a full disk
        with open(path, 'rb') as f:
            data = f.read()
        with open(path, 'wb') as f:
            f.write(data[:len(data) // 2])
        return (': not a readable .npz archive, truncated or another kind of file (BadZipFile: '
                'File is not a zip file); ' + EXPECTED_NPZ)
    if kind == 'empty':
        open(path, 'wb').close()
        return ': empty file (0 bytes); ' + EXPECTED_NPZ
    if kind == 'not_npz':
        with open(path, 'w') as f:
            f.write('id,sentence\n0,the man on the left\n')
        return (': not a readable .npz archive, truncated or another kind of file (no numpy '
                'header); ' + EXPECTED_NPZ)
    assert kind == 'wrong_shape'  # the mask at half the image's height
    with np.load(path) as npz:
        arrays = dict(npz)
    h, w = arrays['mask_batch'].shape
    arrays['mask_batch'] = arrays['mask_batch'][::2]
    np.savez(path, **arrays)
    return (': mask_batch is bool [%d, %d]; expected bool or numeric [%d, %d], the h, w of '
            'im_batch' % ((h + 1) // 2, w, h, w))


def broken_data(root, split, kind, bad):
    """A --data-root `kind` in root: 3 expressions of split, the bad-th broken as `kind`.
    Returns the message that names it."""
    folder = os.path.join(kind, 'unc', split + '_batch')
    sizes = (64, 64) if split == 'train' else [(48, 80), (72, 56)]
    write_batches(os.path.join(str(root), folder), 'unc_' + split, 3, sizes, seed=5)
    path = os.path.join(folder, 'unc_%s_%d.npz' % (split, bad))
    tail = break_batch_file(os.path.join(str(root), path), kind)
    return ('data reader: ' if kind == 'gap' else '') + path + tail


def link_snapshot(src_folder, n, dst_folder):
    """Snapshot n of src_folder in dst_folder, as hard links (snapshots are replaced, never
    written in place)."""
    os.makedirs(dst_folder)
    for name in os.listdir(src_folder):
        if name.startswith('unc_iter_%d.tfmodel' % n):
            os.link(os.path.join(src_folder, name), os.path.join(dst_folder, name))


def run_failing(commands, cwd):
    """Runs the commands (argument lists) in this process; returns (exit status, stderr) of
    each, in order."""
    results = []
    for args in commands:
        proc = run_main(args, cwd, check=False)
        results.append((proc.returncode, proc.stderr))
    return results


def assert_one_line_error(result, line):
    """The command exited with status 1, no traceback, its last line on stderr `line`."""
    returncode, stderr = result
    assert returncode == 1 and 'Traceback' not in stderr, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == line


KINDS = ('truncated', 'empty', 'not_npz', 'gap', 'wrong_shape')


@pytest.mark.parametrize('reader', ['python', 'tf-data'])
def test_broken_batch_files_in_test_mode(trained, tmp_path, reader):
    """-bs 2: the second file (the broken one) is read before the first forward pass. With
    --tf-data, the first file is read eagerly (its T) and the others inside tf.data: an empty
    first file takes the first way, the others the second (tf.errors carry the message)."""
    root, _ = trained
    link_snapshot(str(root / 'ckpts'), 2, str(tmp_path / 'ck'))
    commands, lines = [], []
    for kind in KINDS:
        bad = 0 if (reader, kind) == ('tf-data', 'empty') else 1
        lines.append('error: ' + broken_data(tmp_path, 'val', kind, bad))
        commands.append(['-m', 'test', '-d', 'unc', '-t', 'val', '-f', 'ck', '-i', '2', '-bs',
                         '2', '--data-root', kind] + (['--tf-data'] if reader == 'tf-data' else []))
    for result, line in zip(run_failing(commands, tmp_path), lines):
        assert_one_line_error(result, line)


@pytest.mark.parametrize('reader', ['python', 'tf-data'])
def test_broken_batch_files_in_training(trained, tmp_path, reader):
    """A new run with a random backbone reads its first files for the batch-norm statistics
    (calibration); a resumed run (snapshot 2 of `trained`) reads them in the loop, -bs 3 taking
    all 3 files in its first batch: `error: iteration 2: ...`, before the step."""
    root, _ = trained
    resumed = KINDS if reader == 'tf-data' else ('not_npz', 'wrong_shape')
    commands, lines = [], []
    for kind in KINDS:
        bad = 0 if (reader, kind) == ('tf-data', 'empty') else 1
        # A gap is found when the files are counted, an empty first file when tf.data reads
        # its T: before the loop.
        where = 'iteration 2: ' if kind in resumed and kind not in ('gap', 'empty') else ''
        lines.append('error: ' + where + broken_data(tmp_path, 'train', kind, bad))
        folder = os.path.join(str(tmp_path), 'ck_' + kind)
        if kind in resumed:
            link_snapshot(str(root / 'ckpts'), 2, folder)
            args = ['-m', 'train', '-d', 'unc', '-t', 'train', '-i', '3', '-bs', '3']
        else:
            args = TINY_TRAIN + ['-i', '1']
        commands.append(args + ['-f', folder, '--data-root', kind]
                        + (['--tf-data'] if reader == 'tf-data' else []))
    for result, line in zip(run_failing(commands, tmp_path), lines):
        assert_one_line_error(result, line)
    for kind in KINDS:  # no snapshot written or removed, no log row
        names = os.listdir(tmp_path / ('ck_' + kind))
        assert 'train_log.jsonl' not in names
        assert sorted(f for f in names if f.startswith('unc_iter')) == (
            ['unc_iter_2.tfmodel' + ext for ext in ('.data-00000-of-00001', '.index', '.json')]
            if kind in resumed else [])


REFUSED_FLAGS = {  # flags: the error line (argparse's; exit status 2, nothing started)
    '-lr 0': '-lr/--lr must be positive, got 0.0',
    '-lr -1': '-lr/--lr must be positive, got -1.0',
    '-s 0': '--snapshot must be positive, got 0',
    '--size 60': '--size must be a multiple of 8 (output stride), got 60',
    '--backbone-blocks 1,1,1': '--backbone-blocks must be 4 positive integers like 3,4,23,3, '
                               'got [1, 1, 1]',
    '-n no_such_model': '-n/--model-name no_such_model: no module no_such_model on the Python '
                        'path (a model module such as CMPC_model or '
                        'CMPC_video.CMPC_video_mm_tgraph_allvec, or your own defining LSTM_model, '
                        'Settings, INPUT, WORD_TYPES)',
    '--model-name=': '-n/--model-name: name a model module, e.g. CMPC_model',
}


@pytest.mark.parametrize('flags', list(REFUSED_FLAGS))
def test_flags_that_make_no_sense_are_refused_before_any_work(tmp_path, flags):
    proc = run_script(['-m', 'train', '-d', 'unc', '-t', 'train', '-f', 'ck'] + flags.split(),
                      tmp_path, check=False, timeout=120)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    last_line = proc.stderr.strip().splitlines()[-1]
    assert last_line == 'trainval_model.py: error: ' + REFUSED_FLAGS[flags]
    assert not os.path.exists(tmp_path / 'ck')


def test_missing_snapshot_or_folder_and_embedding_of_another_size(trained, tmp_path):
    """Test mode at an iteration with no snapshot, or on a batch folder that does not exist;
    -emb with an embedding whose rows are not the vocabulary's words."""
    root, _ = trained
    link_snapshot(str(root / 'ckpts'), 2, str(tmp_path / 'ck'))
    np.save(tmp_path / 'emb7.npy', np.zeros((7, 300), np.float32))
    test = ['-m', 'test', '-d', 'unc', '-t', 'val', '-f', 'ck']
    commands = [test + ['-i', '7'], test + ['-i', '2', '--data-root', 'nowhere'],
                TINY_TRAIN + ['-f', 'new', '-emb', '--emb-file', 'emb7.npy']]
    lines = ['error: no snapshot ck/unc_iter_7.tfmodel (expected ck/unc_iter_7.tfmodel.index); '
             'snapshots in ck: [2]',
             'error: data reader: folder nowhere/unc/val_batch does not exist (prefix "unc_val")',
             'error: embedding emb7.npy has shape [7, 300] but the vocabulary has 50 words '
             '(--vocab / --vocab-size)']
    for result, line in zip(run_failing(commands, tmp_path), lines):
        assert_one_line_error(result, line)
    assert not os.path.exists(tmp_path / 'new' / 'train_log.jsonl')
