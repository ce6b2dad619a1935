"""tools/benchmark.py --quick, made tiny (small config, 1 batch size, 2 repeats, 8 val expressions),
writes every row kind with positive figures. Timings never decide pass or fail."""

import json

import pytest

from helpers import ROOT, TINY_FLAGS, run_main, run_script, write_batches


@pytest.mark.slow
@pytest.mark.cli
def test_quick_benchmark_writes_every_row(tmp_path):
    out = tmp_path / 'bench.json'
    proc = run_script(['--quick', '--configs', 'small', '--batch-sizes', '2', '--precisions',
                       'fp32', '--xla', 'off', '--repeats', '2', '--max-samples', '8',
                       '--workdir', str(tmp_path / 'work'), '--out', str(out)], ROOT,
                      script='tools/benchmark.py')
    result = json.loads(out.read_text())
    rows = result['rows']
    kinds = {r['kind'] for r in rows}
    assert kinds == {'forward', 'train', 'input_pipeline', 'test_end_to_end', 'per_picture',
                     'predict', 'video_predict', 'build_batches', 'fidelity'}
    for r in rows:
        if r['kind'] == 'fidelity':
            assert 0 <= r['overall_iou'] <= 1 and r['max_abs_up_diff'] >= 0 and r['samples'] > 0
            continue
        assert r['seconds_per_sample'] > 0 and r['samples_per_s'] > 0, r
        if r['kind'] in ('forward', 'train', 'test_end_to_end'):
            assert r['flops_per_sample'] > 0 and r['flops_per_s'] > 0, r
    # Both forward settings of fold, both pipelines, with and without DenseCRF.
    assert {r['fold'] for r in rows if r['kind'] == 'forward'} == {False, True}
    assert {(r['config'], r['pipeline']) for r in rows if r['kind'] == 'input_pipeline'} == {
        ('small', 'python DataReader'), ('small', 'tf.data'),
        ('small video', 'python DataReader, frames once'),
        ('small video', 'python DataReader, original')}
    assert all(r['samples_per_s_per_core'] > 0 for r in rows if r['kind'] == 'input_pipeline')
    assert {r['dcrf'] for r in rows if r['kind'] == 'test_end_to_end'} == {False, True}
    # The original's way, then the backbone once per picture with 1 and 7 expressions each.
    assert [(r['pipeline'], r['expressions_per_image']) for r in rows
            if r['kind'] == 'per_picture'] == [('plain forward', 1), ('once per picture', 1),
                                               ('once per picture', 7)]
    assert [r['sentences_per_image'] for r in rows if r['kind'] == 'predict'] == [1, 5]
    assert [r['pipeline'] for r in rows if r['kind'] == 'video_predict'] == [
        'backbone once per frame', 'a forward per window']
    # Counted from the graph: the train step (forward + backward of the head) costs more than
    # the forward, and the forward is dominated by the backbone's convolutions.
    fl = result['flops_per_sample']
    assert fl['small/train'] > fl['small/forward'] > 1e9
    assert '| forward' in proc.stdout and 'fidelity' in proc.stdout


@pytest.mark.slow  # a training run, a test and the benchmark (minutes on 2 cores); CI runs it
@pytest.mark.cli
def test_fidelity_rows_from_a_trained_checkpoint(tmp_path):
    """--checkpoint and --val-batches: the fidelity reference (fp32, batch 1) scores the
    checkpoint, with the settings it records, as test mode does on the same batches."""
    write_batches(str(tmp_path / 'unc' / 'train_batch'), 'unc_train', 4, (64, 64), seed=1)
    write_batches(str(tmp_path / 'unc' / 'val_batch'), 'unc_val', 5, [(48, 80), (72, 56)], seed=2)
    run_main(['-m', 'train', '-d', 'unc', '-t', 'train', '-f', 'ck', '-i', '2',
              '--random-backbone', '--seed', '0', '--backbone-blocks', '1,1,1,1'] + TINY_FLAGS,
             tmp_path)
    run_main(['-m', 'test', '-d', 'unc', '-t', 'val', '-f', 'ck', '-i', '2', '--results',
              'test.json'], tmp_path)
    run_main(['--quick', '--configs', 'small', '--skip', 'forward,train,input_pipeline,'
              'test_end_to_end,per_picture,predict,video_predict,build_batches',
              '--precisions', 'bf16', '--xla', 'off',
              '--checkpoint', 'ck/unc_iter_2.tfmodel', '--val-batches', 'unc/val_batch',
              '--workdir', 'work', '--out', 'bench.json'], tmp_path, script='tools/benchmark.py')
    test = json.load(open(tmp_path / 'test.json'))['without_DenseCRF']
    rows = json.load(open(tmp_path / 'bench.json'))['rows']
    ref = [r for r in rows if r['path'] == 'fp32 batch 1 (reference)'][0]
    assert ref['samples'] == 5 and ref['checkpoint'] == 'ck/unc_iter_2.tfmodel'
    assert ref['overall_iou'] == pytest.approx(test['overall_iou'], abs=1e-9)
    assert ref['overall_iou'] > 0  # (0.118 when written): a figure, not an empty prediction
    assert {r['path'] for r in rows} >= {'batch 8', 'fold', 'bf16'}


CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
cpu family\t: {family}
model name\t: {name}
cpu MHz\t\t: {mhz}
flags\t\t: fpu sse sse2 avx {flags}

processor\t: 1
model name\t: {name}
cpu MHz\t\t: 1500.000
flags\t\t: fpu sse sse2 avx {flags}
"""


def test_parse_cpuinfo_records_the_isa_of_the_fast_paths():
    """The machine entry's CPU from /proc/cpuinfo's text: first processor's model and clock, the
    ISA flags as booleans (AVX-512 BF16 / FP16 and AMX told apart from AVX2 / AVX-512F)."""
    from tools.machine import ISA_FLAGS, describe_cpu, parse_cpuinfo, peak_flops
    zen4 = parse_cpuinfo(CPUINFO.format(
        vendor='AuthenticAMD', family=25, name='AMD EPYC 9R14', mhz='3700.000',
        flags='fma avx2 avx512f avx512dq avx512_bf16 avx512_vnni avx512_vbmi2'))
    assert zen4 == {'name': 'AMD EPYC 9R14', 'mhz': 3700.0, 'vendor': 'AuthenticAMD',
                    'family': 25, 'avx2': True, 'fma': True,
                    'avx512f': True, 'avx512_bf16': True, 'avx512_fp16': False,
                    'amx_bf16': False, 'amx_tile': False, 'amx_int8': False}
    spr = parse_cpuinfo(CPUINFO.format(
        vendor='GenuineIntel', family=6, name='Intel(R) Xeon(R) Platinum 8488C', mhz='2400.000',
        flags='fma avx2 avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8'))
    assert all(spr[f] for f in ISA_FLAGS)
    avx2 = parse_cpuinfo(CPUINFO.format(vendor='AuthenticAMD', family=25, name='AMD EPYC',
                                        mhz='2445.404',
                                        flags='fma avx2 avx512_bf16x amx_bf16_'))
    assert avx2 == {'name': 'AMD EPYC', 'mhz': 2445.404, 'vendor': 'AuthenticAMD', 'family': 25,
                    'avx2': True, 'fma': True,
                    'avx512f': False, 'avx512_bf16': False, 'avx512_fp16': False,
                    'amx_bf16': False, 'amx_tile': False, 'amx_int8': False}
    assert parse_cpuinfo('') == dict({'name': None, 'mhz': None, 'vendor': None, 'family': None},
                                     **{f: False for f in ISA_FLAGS})
    # The printed line and the CPU peak estimate work from the same dict.
    cpu = dict(zen4, kind='cpu', cores=2)
    assert describe_cpu(cpu) == ('AMD EPYC 9R14, 2 cores, 3.7 GHz; avx2 fma avx512f avx512_bf16 '
                                 '(no avx512_fp16, amx)')
    assert describe_cpu(dict(spr, kind='cpu', cores=4)).endswith(
        'avx2 fma avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8')
    assert describe_cpu(dict(avx2, kind='cpu', cores=2)) == (
        'AMD EPYC, 2 cores, 2.4 GHz; avx2 fma (no avx512f, avx512_bf16, avx512_fp16, amx)')
    # Zen 4 runs a 512-bit FMA as two 256-bit halves: 32 fp32 FLOP per cycle, as AVX2's;
    # Sapphire Rapids' two 512-bit FMA units: 64.
    peak, source = peak_flops(cpu, 'bf16')
    assert peak == 2 * 3700e6 * 32 and 'avx512_bf16' in source
    assert peak_flops(dict(spr, kind='cpu', cores=4), 'fp32')[0] == 4 * 2400e6 * 64
    assert peak_flops(dict(avx2, kind='cpu', cores=2), 'fp32')[0] == 2 * 2445.404e6 * 32
