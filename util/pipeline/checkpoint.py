"""TF1 name-based checkpoints for a TF2 model.

The original code saved with `tf.train.Saver`, whose checkpoints map each variable's graph name
(`conv1/weights`, `text_objseg/c5_lateral/DW`, ...) to a tensor. The port keeps those names as the
variables' own names, so reading and writing a checkpoint is a by-name copy:

- `VariableStore` creates `tf.Variable`s under their TF1 names, like `tf.get_variable` did;
- `save_checkpoint` writes the same V2 bundle (`prefix.index` + `prefix.data-00000-of-00001`) that a
  TF1 `Saver` writes, so the original code can restore it;
- `restore_checkpoint` reads any such bundle, asserting for every tensor that its name exists and
  its shape matches, and reports what was left unmatched.
"""

import os
import uuid

import numpy as np
import tensorflow as tf

from util.io import write_json
from util.pipeline.snapshots import checkpoint_exists, checkpoint_files


class VariableStore:
    """An ordered name -> tf.Variable map that plays the role of TF1's variable scopes."""

    def __init__(self):
        self.variables = {}

    def get(self, name, shape, initializer, trainable=True, dtype=tf.float32):
        """Creates the variable `name` once; asks again for the same name return it (TF1 reuse)."""
        shape = [int(s) for s in shape]
        if name in self.variables:
            var = self.variables[name]
            if var.shape.as_list() != shape:
                raise ValueError('variable %s exists with shape %s, asked for %s'
                                 % (name, var.shape.as_list(), shape))
            return var
        value = initializer(shape)
        var = tf.Variable(tf.cast(value, dtype), trainable=trainable, name=name)
        self.variables[name] = var
        return var

    def __getitem__(self, name):
        return self.variables[name]

    def __contains__(self, name):
        return name in self.variables

    def names(self):
        return list(self.variables)


# Initialisers, with the fan computation of TF1's `xavier_initializer` / `glorot_uniform`.

def _fans(shape):
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_uniform(shape):
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return tf.random.uniform(shape, -limit, limit)


def he_normal(shape):
    fan_in, _ = _fans(shape)
    return tf.random.normal(shape, stddev=np.sqrt(2.0 / fan_in))


def zeros(shape):
    return tf.zeros(shape)


def ones(shape):
    return tf.ones(shape)


def constant(value):
    def init(shape):
        value_np = np.asarray(value, dtype=np.float32)
        if list(value_np.shape) != list(shape):
            raise ValueError('initial value has shape %s, expected %s'
                             % (list(value_np.shape), list(shape)))
        return value_np
    return init


def save_checkpoint(prefix, tensors, meta=None):
    """Writes `tensors` (name -> tensor or array) as a TF1-compatible V2 checkpoint at `prefix`.

    The bundle is written under a temporary prefix and renamed into place, data first and the
    index last: a checkpoint whose `.index` exists is complete. `meta`, if given, is written as
    `prefix.json` (the settings that the checkpoint was made with). A write that fails (a full
    disk) removes what it wrote and raises; other checkpoints in the folder are untouched. One
    killed half-way leaves files that util.pipeline.snapshots.remove_partial_snapshots recognises.
    """
    folder = os.path.dirname(prefix) or '.'
    os.makedirs(folder, exist_ok=True)
    names = sorted(tensors)
    tmp_prefix = '%s.tmp-%s' % (prefix, uuid.uuid4().hex[:8])
    placed = []
    try:
        tf.raw_ops.SaveV2(prefix=tmp_prefix, tensor_names=names,
                          shape_and_slices=[''] * len(names),
                          tensors=[tf.convert_to_tensor(tensors[n]) for n in names])
        tmp_files = checkpoint_files(tmp_prefix)
        data_files = [f for f in tmp_files if '.data-' in f]
        for f in data_files:
            placed.append(prefix + f[len(tmp_prefix):])
            os.replace(f, placed[-1])
        if meta is not None:
            placed.append(prefix + '.json')
            write_json(prefix + '.json', meta, sort_keys=True)
        os.replace(tmp_prefix + '.index', prefix + '.index')
    except BaseException:
        for f in placed:  # the data and JSON of a checkpoint that never got its .index
            if os.path.exists(f):
                os.remove(f)
        raise
    finally:
        for f in checkpoint_files(tmp_prefix):
            os.remove(f)
    return prefix


def checkpoint_shapes(prefix):
    """name -> shape of every tensor in the checkpoint at `prefix`."""
    if not checkpoint_exists(prefix):
        raise FileNotFoundError('no checkpoint at %s (expected the file %s.index)' % (prefix, prefix))
    return tf.train.load_checkpoint(prefix).get_variable_to_shape_map()


def restore_checkpoint(prefix, variables, required=None, name_map=None):
    """Assigns checkpoint tensors to `variables` (name -> tf.Variable) by name.

    `required`: names that must be in the checkpoint (default: all of `variables`); the others are
    restored when present. Every restored tensor must have the variable's shape. `name_map` maps a
    variable name to the name it has in the checkpoint, where the two differ.
    Returns (restored names, names missing from the checkpoint, checkpoint names not used).
    """
    shapes = checkpoint_shapes(prefix)
    reader = tf.train.load_checkpoint(prefix)
    name_map = name_map or {}
    required = set(variables if required is None else required)
    restored, missing, errors = [], [], []
    for name, var in variables.items():
        key = name_map.get(name, name)
        if key not in shapes:
            missing.append(name)
            continue
        if list(shapes[key]) != var.shape.as_list():
            errors.append('%s: checkpoint shape %s, model shape %s'
                          % (key, list(shapes[key]), var.shape.as_list()))
            continue
        restored.append(name)
    missing_required = [n for n in missing if n in required]
    if errors or missing_required:
        lines = ['cannot restore %s:' % prefix]
        lines += ['  shape mismatch ' + e for e in errors]
        lines += ['  not in checkpoint: %s' % name_map.get(n, n) for n in missing_required[:20]]
        if len(missing_required) > 20:
            lines.append('  ... and %d more not in checkpoint' % (len(missing_required) - 20))
        raise ValueError('\n'.join(lines))
    for name in restored:
        var = variables[name]
        var.assign(reader.get_tensor(name_map.get(name, name)).astype(var.dtype.as_numpy_dtype))
    used = {name_map.get(n, n) for n in restored}
    unused = sorted(k for k in shapes if k not in used)
    return restored, missing, unused
