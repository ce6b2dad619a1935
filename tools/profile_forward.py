"""Where the forward's time goes, layer by layer: TensorFlow's profiler against the FLOPs each
layer needs and what this CPU's convolutions reach (issue 23).

    python -m tools.profile_forward --config paper --ops 300 --out docs/profile_paper.json
    python -m tools.profile_forward --config paper --trace /tmp/trace   # keep the trace: open it
        in TensorBoard's Profile tab (the tensorboard-plugin-profile package)

The model (random weights, eval mode) is traced at a fixed batch so that every op's shapes are
known, and run --warmup times untimed, --repeats times timed (the wall time per forward), then
--profiled times under tf.profiler. Each op's time is read from the trace and given to its
part of the network by its name scope (the backbone's units res2a ... res5c, grouped by stage;
the CMPC parts: lateral_*, mutan_visual_*, words, mutan_*, reasoning_*, fusion_*, score_*,
exchange, exchange_2, convlstm, score). With --inter-op 1 (the default) ops run one at a time,
so each op's time is its own and the parts add up to the forward; the profiler itself adds a
little to each op, so the wall time of the untimed-by-the-profiler runs is printed beside.

The reference is what this CPU's convolutions reach: a 3 x 3 convolution of the backbone's
res4 shape (native dilated, as an eval-mode model runs it) and a 1 x 1 one of the
words part's shape (1600 positions, 1000 to 1000 channels at the paper size), each timed alone,
best of --repeats. A part's "at reference" is its FLOPs at the better of the two rates, and
"excess" its time beyond that: where the network spends more than its FLOPs justify.

FLOPs are tools/flops.py's (2 x multiply-accumulates of convolutions and matrix products); the
machine is named in the first line printed and in the JSON's "machine".
"""

import argparse
import collections
import glob
import json
import os
import re
import shutil
import statistics
import tempfile
import time

import numpy as np

from tools.flops import COUNTED_OPS, live_ops, op_flops
from tools.machine import describe_machine, device_info, machine_info
from util.cli import HelpFormatter
from util.pipeline.settings import PRESETS

BACKBONE_UNIT = re.compile(r'^(res\d)[a-z]')  # res4b12 -> res4


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=HelpFormatter)
    p.add_argument('--config', choices=sorted(PRESETS), default='paper',
                   help='model size (util/pipeline/settings.py PRESETS)')
    p.add_argument('--batch', type=int, default=1, help='batch size')
    p.add_argument('--repeats', type=int, default=5,
                   help='timed forwards without the profiler (median), and reference '
                        'convolution runs (best)')
    p.add_argument('--warmup', type=int, default=2, help='untimed forwards first')
    p.add_argument('--profiled', type=int, default=3,
                   help='forwards run under the profiler; op times are their mean')
    p.add_argument('--inter-op', type=int, default=1,
                   help="TensorFlow's inter-op threads: 1 runs one op at a time, so that op "
                        "times add up; 0 leaves TensorFlow's default (ops overlap)")
    p.add_argument('--fold', action='store_true',
                   help='fold the c3 lateral conv into MUTAN\'s visual heads at load time '
                        '(LSTM_model fold)')
    p.add_argument('--top', type=int, default=15, help='slowest ops listed')
    p.add_argument('--trace', default=None,
                   help='folder to keep the profiler trace in (default: a temporary one)')
    p.add_argument('--out', default=None, help='JSON file to write (default: none)')
    p.add_argument('--ops', type=int, default=None,
                   help='ops kept in the JSON, slowest first (default: all; the parts always '
                        'count every op)')
    p.add_argument('--seed', type=int, default=0, help='seed of the weights and inputs')
    args = p.parse_args(argv)
    for flag in ('batch', 'repeats', 'profiled'):
        if getattr(args, flag) < 1:
            p.error('--%s must be at least 1, got %d' % (flag, getattr(args, flag)))
    if args.warmup < 0 or args.inter_op < 0 or (args.ops is not None and args.ops < 0):
        p.error('--warmup, --inter-op and --ops must be at least 0')
    return args


def part_of(op_name):
    """The network part an op belongs to, from its name scope: 'res4b12/Conv2D' -> 'res4',
    'mutan_c3/mul_2' -> 'mutan_c3'; ops outside any scope -> 'other'."""
    if '/' not in op_name:
        return 'other'
    scope = op_name.split('/')[0]
    unit = BACKBONE_UNIT.match(scope)
    return unit.group(1) if unit else scope


def trace_op_times(logdir, runs):
    """{op name: (op type, ms per run)} from the newest profiler trace under logdir: the
    executor's op events (named 'name:type') on the tf_Compute threads, summed per op."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    paths = sorted(glob.glob(os.path.join(logdir, 'plugins', 'profile', '*', '*.xplane.pb')))
    if not paths:
        raise RuntimeError('the profiler wrote no trace under %s' % logdir)
    space = xplane_pb2.XSpace()
    with open(paths[-1], 'rb') as f:
        space.ParseFromString(f.read())
    times = {}
    for plane in space.planes:
        meta = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith('tf_Compute'):
                continue
            for event in line.events:
                name = meta[event.metadata_id].name
                if ':' not in name or name.startswith(('Threadpool', 'Executor')):
                    continue
                op, kind = name.rsplit(':', 1)
                ms = times.get(op, (kind, 0.0))[1] + event.duration_ps / 1e9 / runs
                times[op] = (kind, ms)
    return times


def best_time(fn, runs):
    fn()
    best = float('inf')
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def reference_rates(settings, batch, runs):
    """{name: FLOP/s} of two convolutions timed alone: the backbone's res4 3 x 3 (dilation 2,
    run as an eval-mode model runs it: TensorFlow's native dilated conv) and the words part's
    1 x 1."""
    import tensorflow as tf
    h, w, c = settings.vf_h, settings.vf_w, settings.v_emb_dim
    rng = np.random.RandomState(0)
    cases = {
        'res4 3x3 conv, dilation 2 (256 to 256)': (
            [batch, h, w, 256], [3, 3, 256, 256],
            lambda x, k: tf.nn.conv2d(x, k, 1, 'SAME', dilations=2),
            2 * batch * h * w * 9 * 256 * 256),
        '1x1 conv (%d to %d)' % (c, c): (
            [batch, h, w, c], [1, 1, c, c], lambda x, k: tf.nn.conv2d(x, k, 1, 'SAME'),
            2 * batch * h * w * c * c),
    }
    rates = {}
    for name, (xs, ks, conv, flops) in cases.items():
        x = tf.constant(rng.randn(*xs).astype(np.float32))
        k = tf.constant((rng.randn(*ks) / np.sqrt(np.prod(ks[:3]))).astype(np.float32))
        fn = tf.function(conv)
        rates[name] = flops / best_time(lambda: fn(x, k).numpy(), runs)
    return rates


def profile(args):
    import tensorflow as tf
    from CMPC_model import LSTM_model
    tf.random.set_seed(args.seed)
    settings = PRESETS[args.config]
    model = LSTM_model.from_settings(settings, mode='eval', fold=args.fold)
    rng = np.random.RandomState(args.seed)
    B, T = args.batch, settings.num_steps
    words = np.zeros((B, T), np.int32)
    words[:, -5:] = rng.randint(1, settings.vocab_size, (B, 5))  # 5 words, left-padded
    im = (rng.randn(B, settings.H, settings.W, 3) * 50).astype(np.float32)
    fn = tf.function(model.build_graph).get_concrete_function(
        tf.TensorSpec([B, T], tf.int32), tf.TensorSpec([B, settings.H, settings.W, 3], tf.float32))
    words, im = tf.constant(words), tf.constant(im)

    def forward():
        fn(words, im)['up'].numpy()

    for _ in range(args.warmup):
        forward()
    wall = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        forward()
        wall.append(time.perf_counter() - t)

    logdir = args.trace or tempfile.mkdtemp(prefix='profile_forward_')
    try:
        tf.profiler.experimental.start(logdir)
        started = time.perf_counter()
        try:
            for _ in range(args.profiled):
                forward()
        finally:
            profiled_ms = (time.perf_counter() - started) * 1e3 / args.profiled
            tf.profiler.experimental.stop()
        times = trace_op_times(logdir, args.profiled)
    finally:
        if args.trace is None:
            shutil.rmtree(logdir, ignore_errors=True)

    graph_ops = fn.graph.get_operations()  # in the order the forward built them
    live = live_ops(fn.graph)
    flops = {op.name: op_flops(op) for op in graph_ops if op.type in COUNTED_OPS and op in live}
    shapes = {op.name: op.outputs[0].shape.as_list() for op in graph_ops if op.outputs}
    order = list(dict.fromkeys(part_of(op.name) for op in graph_ops))
    rates = reference_rates(settings, B, args.repeats)
    return dict(settings=settings, wall=wall, profiled_ms=profiled_ms, times=times, flops=flops,
                shapes=shapes, rates=rates, order=order)


def summarise(prof):
    """(parts, ops, total ms, fused): JSON-ready rows, the parts in the forward's order, the ops
    slowest first. A part's FLOPs are those of all its counted ops, also of those that
    Grappler fused into another op (e.g. a MatMul and its bias add into one _FusedMatMul named
    after the add), whose time is that op's: `fused` lists them."""
    ref = max(prof['rates'].values())
    parts = {part: {'part': part, 'ms': 0.0, 'flops': 0, 'ops': 0} for part in prof['order']}
    for name, flops in prof['flops'].items():
        parts[part_of(name)]['flops'] += flops
    ops = []
    for name, (kind, ms) in prof['times'].items():
        part = part_of(name)
        row = parts.setdefault(part, {'part': part, 'ms': 0.0, 'flops': 0, 'ops': 0})
        row['ms'] += ms
        row['ops'] += 1
        ops.append({'op': name, 'type': kind, 'part': part, 'ms': ms,
                    'flops': prof['flops'].get(name, 0), 'shape': prof['shapes'].get(name)})
    parts = [r for r in parts.values() if r['ops'] or r['flops']]
    total_ms = sum(r['ms'] for r in parts)
    for row in parts + ops:
        row['gflop_per_s'] = row['flops'] / row['ms'] / 1e6 if row['ms'] and row['flops'] else None
        row['ms_at_reference'] = row['flops'] / ref * 1e3
        row['excess_ms'] = row['ms'] - row['ms_at_reference']
    for row in parts:
        row['share'] = row['ms'] / total_ms
    fused = sorted(set(prof['flops']) - set(prof['times']))
    return parts, sorted(ops, key=lambda r: -r['ms']), total_ms, fused


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf
    inter_op = 'TensorFlow default'
    if args.inter_op:
        try:
            tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
            inter_op = args.inter_op
        except RuntimeError:  # the runtime already started (e.g. called in a test process)
            inter_op = 'TensorFlow default (already initialised)'
    dev = device_info()
    print('Machine: %s' % describe_machine(dev), flush=True)
    prof = profile(args)
    parts, ops, total_ms, fused = summarise(prof)
    ref = max(prof['rates'].values())
    wall_ms = statistics.median(prof['wall']) * 1e3
    total_flops = sum(prof['flops'].values())

    print('%s config, batch %d, fp32%s, inter-op threads: %s' % (
        args.config, args.batch, ', fold' if args.fold else '', inter_op))
    print('forward: %.0f ms (median of %d), %.1f GFLOP, %.1f GFLOP/s; under the profiler '
          '%.0f ms, op times sum to %.0f ms' % (wall_ms, args.repeats, total_flops / 1e9,
                                                total_flops / wall_ms / 1e6, prof['profiled_ms'],
                                                total_ms))
    for name, rate in prof['rates'].items():
        print('reference: %s alone, %.1f GFLOP/s' % (name, rate / 1e9))
    print()
    print('| part | ms | share | GFLOP | GFLOP/s | ms at %.0f GFLOP/s | excess ms |' % (ref / 1e9))
    print('|---|---|---|---|---|---|---|')
    for r in parts:
        print('| %s | %.1f | %.1f %% | %.2f | %s | %.1f | %.1f |' % (
            r['part'], r['ms'], 100 * r['share'], r['flops'] / 1e9,
            '%.1f' % r['gflop_per_s'] if r['gflop_per_s'] else '-', r['ms_at_reference'],
            r['excess_ms']))
    by_type = collections.Counter()
    for r in ops:
        by_type[r['type']] += r['ms']
    print('\nby op type: ' + ', '.join('%s %.1f ms' % kv for kv in by_type.most_common(10)))
    print('\nslowest ops:')
    for r in ops[:args.top]:
        print('  %-45s %-14s %-22s %8.2f ms %s' % (
            r['op'][:45], r['type'], r['shape'], r['ms'],
            '%.1f GFLOP/s' % r['gflop_per_s'] if r['gflop_per_s'] else ''))
    if fused:
        print('\n%d counted ops ran fused into others (their time is in those): %s%s' % (
            len(fused), ', '.join(fused[:5]), ', ...' if len(fused) > 5 else ''))
    if args.trace:
        print('\ntrace kept in %s (TensorBoard --logdir %s, Profile tab)' % (args.trace,
                                                                            args.trace))
    if args.out:
        result = {'machine': machine_info(dev), 'config': args.config, 'batch': args.batch,
                  'fold': args.fold, 'inter_op_threads': inter_op,
                  'forward_ms': wall_ms, 'forward_ms_runs': [t * 1e3 for t in prof['wall']],
                  'profiled_forward_ms': prof['profiled_ms'], 'op_ms_sum': total_ms,
                  'flops': total_flops,
                  'reference_flop_per_s': prof['rates'], 'parts': parts,
                  'ops': ops[:args.ops] if args.ops is not None else ops,
                  'fused_ops': fused}
        write_json(result, args.out)
        print('wrote %s' % args.out)


def rounded(x, digits=4):
    """x with its floats to `digits` significant digits (timings are not more precise)."""
    if isinstance(x, float):
        return float('%.*g' % (digits, x))
    if isinstance(x, dict):
        return {k: rounded(v, digits) for k, v in x.items()}
    if isinstance(x, list):
        return [rounded(v, digits) for v in x]
    return x


def write_json(result, path):
    """The result as JSON, an op a line (a paper-size forward has some 3,500), written whole or
    not at all."""
    result = rounded(result)
    ops = result.pop('ops')
    text = json.dumps(result, indent=1)[:-2]  # without the closing '\n}'
    text += ',\n "ops": [\n%s\n ]\n}\n' % ',\n'.join('  ' + json.dumps(r) for r in ops)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.replace(path + '.tmp', path)


if __name__ == '__main__':
    main()
