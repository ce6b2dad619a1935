"""benchmark.py --quick, made tiny (small config, 1 batch size, 2 repeats, 8 val expressions),
writes every row kind with positive figures. Timings never decide pass or fail."""

import json

import pytest

from fixtures import ROOT, TINY_FLAGS, run_script, write_batches


@pytest.mark.slow
def test_quick_benchmark_writes_every_row(tmp_path):
    out = tmp_path / 'bench.json'
    proc = run_script(['--quick', '--configs', 'small', '--batch-sizes', '2', '--precisions',
                       'fp32', '--xla', 'off', '--repeats', '2', '--max-samples', '8',
                       '--workdir', str(tmp_path / 'work'), '--out', str(out)], ROOT,
                      script='benchmark.py')
    result = json.loads(out.read_text())
    rows = result['rows']
    kinds = {r['kind'] for r in rows}
    assert kinds == {'forward', 'train', 'input_pipeline', 'test_end_to_end', 'build_batches',
                     'fidelity'}
    for r in rows:
        if r['kind'] == 'fidelity':
            assert 0 <= r['overall_iou'] <= 1 and r['max_abs_up_diff'] >= 0 and r['samples'] > 0
            continue
        assert r['seconds_per_sample'] > 0 and r['samples_per_s'] > 0, r
        if r['kind'] in ('forward', 'train', 'test_end_to_end'):
            assert r['flops_per_sample'] > 0 and r['flops_per_s'] > 0, r
    # Both forward settings of fold_bn, both pipelines, with and without DenseCRF.
    assert {r['fold_bn'] for r in rows if r['kind'] == 'forward'} == {False, True}
    assert {r['pipeline'] for r in rows if r['kind'] == 'input_pipeline'} == {
        'python DataReader', 'tf.data'}
    assert {r['dcrf'] for r in rows if r['kind'] == 'test_end_to_end'} == {False, True}
    # Counted from the graph: the train step (forward + backward of the head) costs more than
    # the forward, and the forward is dominated by the backbone's convolutions.
    fl = result['flops_per_sample']
    assert fl['small/train'] > fl['small/forward'] > 1e9
    assert '| forward' in proc.stdout and 'fidelity' in proc.stdout


def test_fidelity_rows_from_a_trained_checkpoint(tmp_path):
    """--checkpoint and --val-batches: the fidelity reference (fp32, batch 1) scores the
    checkpoint, with the settings it records, as test mode does on the same batches."""
    write_batches(str(tmp_path / 'unc' / 'train_batch'), 'unc_train', 4, (64, 64), seed=1)
    write_batches(str(tmp_path / 'unc' / 'val_batch'), 'unc_val', 5, [(48, 80), (72, 56)], seed=2)
    run_script(['-m', 'train', '-d', 'unc', '-t', 'train', '-f', 'ck', '-i', '2',
                '--random-backbone', '--seed', '0', '--backbone-blocks', '1,1,1,1'] + TINY_FLAGS,
               tmp_path)
    run_script(['-m', 'test', '-d', 'unc', '-t', 'val', '-f', 'ck', '-i', '2', '--results',
                'test.json'], tmp_path)
    run_script(['--quick', '--configs', 'small', '--skip', 'forward,train,input_pipeline,'
                'test_end_to_end,build_batches', '--precisions', 'bf16', '--xla', 'off',
                '--checkpoint', 'ck/unc_iter_2.tfmodel', '--val-batches', 'unc/val_batch',
                '--workdir', 'work', '--out', 'bench.json'], tmp_path, script='benchmark.py')
    test = json.load(open(tmp_path / 'test.json'))['without_DenseCRF']
    rows = json.load(open(tmp_path / 'bench.json'))['rows']
    ref = [r for r in rows if r['path'] == 'fp32 batch 1 (reference)'][0]
    assert ref['samples'] == 5 and ref['checkpoint'] == 'ck/unc_iter_2.tfmodel'
    assert ref['overall_iou'] == pytest.approx(test['overall_iou'], abs=1e-9)
    assert ref['overall_iou'] > 0  # (0.118 when written): a figure, not an empty prediction
    assert {r['path'] for r in rows} >= {'batch 8', 'fold_bn', 'bf16'}
