"""tools/profile_forward.py: the forward's time part by part from TensorFlow's profiler. On the
tiny config, in this process: every part of the network is named in the forward's order, the
FLOPs of a part equal the ones worked out by hand from its shapes, and the shares add up.
Timings never decide pass or fail: only that what was measured is there."""

import json

import pytest

from helpers import ROOT, run_main
from tools.profile_forward import part_of
from util.pipeline.settings import PRESETS

IMAGE_PARTS = ['conv1', 'res2', 'res3', 'res4', 'res5', 'lateral_c5', 'lateral_c4', 'lateral_c3',
               'mutan_visual_c5', 'mutan_visual_c4', 'mutan_visual_c3', 'word_encoder',
               'sentence', 'mutan_c5', 'reasoning_c5', 'fusion_c5', 'mutan_c4', 'reasoning_c4',
               'fusion_c4', 'mutan_c3', 'reasoning_c3', 'fusion_c3', 'score_c5', 'score_c4',
               'score_c3', 'exchange', 'exchange_2', 'convlstm', 'score']


@pytest.mark.parametrize('name, part', [
    ('res4b12/Conv2D_1', 'res4'), ('res5c/BatchToSpaceND', 'res5'), ('conv1/MaxPool', 'conv1'),
    ('mutan_c3/mul_2', 'mutan_c3'), ('exchange_2/l2_normalize/Sum', 'exchange_2'),
    ('Cast', 'other'), ('strided_slice_3', 'other')])
def test_part_of_reads_the_name_scope(name, part):
    assert part_of(name) == part


def test_tiny_profile(tmp_path):
    out = tmp_path / 'profile.json'
    proc = run_main(['--config', 'tiny', '--repeats', '1', '--warmup', '1', '--profiled', '1',
                     '--out', str(out)], ROOT, script='tools/profile_forward.py')
    assert 'Machine: ' in proc.stdout and '| part |' in proc.stdout
    result = json.loads(out.read_text())
    assert result['machine']['summary'] and result['config'] == 'tiny'
    parts = {r['part']: r for r in result['parts']}
    assert [p for p in parts if p != 'other'] == IMAGE_PARTS

    # FLOPs by hand (2 x multiply-accumulates), tiny config: 64 x 64 image, 8 x 8 features.
    s = PRESETS['tiny']
    hw = s.vf_h * s.vf_w
    assert parts['lateral_c5']['flops'] == 2 * hw * 2048 * s.v_emb_dim
    assert parts['mutan_visual_c4']['flops'] == 5 * 2 * hw * (s.v_emb_dim + 8) * s.v_emb_dim
    # [MUTAN, graph, spatial] through the fusion conv, and the sentence's rows once.
    assert parts['fusion_c3']['flops'] == (2 * hw * (2 * s.v_emb_dim + 8) * s.mlp_dim
                                           + 2 * s.rnn_size * s.mlp_dim)
    assert parts['score']['flops'] == 2 * hw * 9 * s.mlp_dim  # 3 x 3 taps, one channel
    # ConvLSTM: the first step without h's rows, then [x, h] to 4 gates twice.
    assert parts['convlstm']['flops'] == 2 * hw * 4 * s.mlp_dim * (s.mlp_dim + 2 * 2 * s.mlp_dim)
    assert sum(r['flops'] for r in result['parts']) == result['flops']

    assert all(r['ms'] > 0 for r in result['parts'] if r['flops'])
    assert sum(r['share'] for r in result['parts']) == pytest.approx(1, rel=1e-3)
    # Every op is kept (no --ops), its time rounded to 4 significant digits.
    assert sum(r['ms'] for r in result['ops']) == pytest.approx(result['op_ms_sum'], rel=1e-3)
    for r in result['parts']:
        # The three are each rounded to 4 significant digits, at most half a unit of the 4th
        # digit: 5e-4 of each (6e-4 of the rounded values). A tolerance on the difference
        # alone failed once (-34.92 against -34.96, the terms being larger).
        slack = 6e-4 * (abs(r['ms']) + abs(r['ms_at_reference']) + abs(r['excess_ms']))
        assert abs(r['excess_ms'] - (r['ms'] - r['ms_at_reference'])) <= slack
    assert len(result['reference_flop_per_s']) == 2
    assert all(rate > 0 for rate in result['reference_flop_per_s'].values())


def test_bad_flag_is_named():
    proc = run_main(['--batch', '0'], ROOT, script='tools/profile_forward.py', check=False)
    assert proc.returncode == 2 and '--batch must be at least 1, got 0' in proc.stderr
