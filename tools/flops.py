"""FLOPs of a traced TensorFlow graph, counted from its ops' static shapes: 2 x the
multiply-accumulates of the ops in COUNTED_OPS (convolutions, their two backprops, matrix
products), among the ops a call runs. Elementwise ops, softmaxes, resizes and optimizer updates
are not counted: next to the convolutions they are small in FLOPs (not always in time, which
tools/profile_forward.py shows). Used by tools/benchmark.py and tools/profile_forward.py."""

import numpy as np

COUNTED_OPS = ('Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'MatMul',
               'BatchMatMulV2', 'BatchMatMulV3', 'DepthwiseConv2dNative')


def _dims(shape, what, op):
    dims = shape.as_list()
    if None in dims:
        raise ValueError('FLOP count: %s of %s (%s) has an unknown dimension %s; trace on '
                         'fixed shapes' % (what, op.name, op.type, dims))
    return dims


def live_ops(graph):
    """The ops a call of the function runs: those its outputs and control outputs (the variable
    updates) depend on. The tape also writes gradient ops for the frozen backbone (every
    variable read under it is watched), which nothing consumes and the runtime prunes: counting
    them would triple a frozen-backbone train step's FLOPs."""
    stack = [t.op for t in graph.outputs] + list(graph.control_outputs)
    live = set()
    while stack:
        op = stack.pop()
        if op in live:
            continue
        live.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return live


def graph_flops(graph):
    """(total FLOPs, {op type: FLOPs}) = 2 x multiply-accumulates of the COUNTED_OPS among the
    live ops of `graph`, from static shapes. The model's graph has no control flow (its loops
    are unrolled in Python), so every op is in graph.get_operations()."""
    by_type = {}
    live = live_ops(graph)
    for op in graph.get_operations():
        if op.type in COUNTED_OPS and op in live:
            by_type[op.type] = by_type.get(op.type, 0) + op_flops(op)
    return sum(by_type.values()), by_type


def op_flops(op):
    """2 x the multiply-accumulates of one op of COUNTED_OPS, from its static shapes."""
    if op.type in ('Conv2D', 'DepthwiseConv2dNative'):
        out = _dims(op.outputs[0].shape, 'output', op)  # [B, oh, ow, cout]
        kh, kw, cin, mult = _dims(op.inputs[1].shape, 'filter', op)
        # Every output value is kh * kw * cin MACs (depthwise: kh * kw).
        macs = np.prod(out) * kh * kw * (1 if op.type == 'DepthwiseConv2dNative' else cin)
    elif op.type == 'Conv2DBackpropInput':  # (input_sizes, filter, out_backprop)
        kh, kw, cin, _ = _dims(op.inputs[1].shape, 'filter', op)
        macs = np.prod(_dims(op.inputs[2].shape, 'out_backprop', op)) * kh * kw * cin
    elif op.type == 'Conv2DBackpropFilter':  # (input, filter_sizes, out_backprop)
        kh, kw, cin, _ = _dims(op.outputs[0].shape, 'filter grad', op)
        macs = np.prod(_dims(op.inputs[2].shape, 'out_backprop', op)) * kh * kw * cin
    elif op.type == 'MatMul':
        a = _dims(op.inputs[0].shape, 'a', op)
        k = a[0] if op.get_attr('transpose_a') else a[1]
        macs = np.prod(_dims(op.outputs[0].shape, 'output', op)) * k
    elif op.type in ('BatchMatMulV2', 'BatchMatMulV3'):  # [..., m, k] x [..., k, n]
        a = _dims(op.inputs[0].shape, 'x', op)
        k = a[-2] if op.get_attr('adj_x') else a[-1]
        macs = np.prod(_dims(op.outputs[0].shape, 'output', op)) * k
    else:
        raise ValueError('FLOP count: %s is not one of COUNTED_OPS' % op.type)
    return 2 * int(macs)


def model_flops(model, mode, trainer=None):
    """Per-sample FLOPs of the forward ('forward') or train step ('train', of `trainer`): the
    model's own step function traced again with tf.function on fixed batch-1 shapes (the
    model's traces have a None batch, which a count cannot multiply)."""
    import tensorflow as tf
    specs = [tf.TensorSpec([1, model.num_steps], tf.int32),
             tf.TensorSpec([1, model.H, model.W, 3], tf.float32)]
    if mode == 'train':
        fn = trainer.step_fn
        specs = specs + [tf.TensorSpec([1, model.H, model.W, 1], tf.float32)]
    else:
        fn = model.forward_fn
    # Tracing only: nothing runs, so no variable (Adam state, step) changes.
    graph = tf.function(fn.python_function).get_concrete_function(*specs).graph
    return graph_flops(graph)

