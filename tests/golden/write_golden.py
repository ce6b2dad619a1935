"""Writes tests/golden/pre_refactor.npz and pre_refactor_snapshot.json: what the tiny CMPC computed
before the restructuring of issue 10, for tests/test_golden.py to compare against.

Written from commit fe55de4 (the last commit before the restructuring) with:

    git checkout fe55de4 -- CMPC_model.py deeplab_resnet util   # the pre-change code
    .venv/bin/python tests/golden/write_golden.py
    git checkout HEAD -- CMPC_model.py deeplab_resnet util

It uses only what both versions have: LSTM_model(**the original's keyword arguments), its
`forward`, `train_step` and `save`, and the variables by TF1 name (`model.store.variables`).
Weights are set from a numpy generator seeded by each variable's name, so the values do not
depend on the order in which a version creates its variables.
"""

import json
import os
import sys
import tempfile
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

# The tiny model of the tests with the smallest backbone, and a train-mode configuration
# that exercises every training setting that differs from the defaults.
ARCH = dict(H=64, W=64, vf_h=8, vf_w=8, vocab_size=50, rnn_size=32, v_emb_dim=32, mlp_dim=16,
            backbone_blocks=(1, 1, 1, 1))
TRAIN = dict(start_lr=0.003, lr_decay_step=40, weight_decay=0.0005)
T = 20
# Variables compared after the train step: every trainable tensor at these many indices.
SAMPLES_PER_VARIABLE = 16


def name_seed(name):
    return zlib.crc32(name.encode('utf-8'))


def set_weights(variables):
    """Every variable from a generator seeded by its name: moving variances in [0.5, 1.5],
    1-d tensors N(0, 0.1), the others N(0, 1/fan_in)."""
    for name in sorted(variables):
        var = variables[name]
        shape = var.shape.as_list()
        rng = np.random.RandomState(name_seed(name))
        if name.endswith('moving_variance'):
            value = rng.uniform(0.5, 1.5, size=shape)
        elif len(shape) <= 1:
            value = rng.normal(0.0, 0.1, size=shape)
        else:
            fan_in = int(np.prod(shape[:-1]))
            value = rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=shape)
        var.assign(value.astype(np.float32))


def inputs():
    """Two samples: sentences of 3 and 9 words, random images, rectangle masks."""
    rng = np.random.RandomState(0)
    words = np.zeros((2, T), np.int32)
    words[0, -3:] = [5, 7, 11]
    words[1, -9:] = rng.randint(1, ARCH['vocab_size'], size=9)
    im = rng.normal(0.0, 50.0, size=(2, ARCH['H'], ARCH['W'], 3)).astype(np.float32)
    mask = np.zeros((2, ARCH['H'], ARCH['W'], 1), np.float32)
    mask[0, 8:40, 16:48] = 1
    mask[1, 30:60, 4:30] = 1
    return words, im, mask


def sample_indices(name, size):
    rng = np.random.RandomState(name_seed(name) + 1)
    return np.sort(rng.choice(size, size=min(size, SAMPLES_PER_VARIABLE), replace=False))


def main():
    import tensorflow as tf
    from CMPC_model import LSTM_model
    words, im, mask = inputs()
    out = {}

    model = LSTM_model(mode='eval', **ARCH)
    set_weights(model.store.variables)
    for k, v in model.forward(words, im).items():
        out['forward/' + k] = v

    train = LSTM_model(mode='train', **ARCH, **TRAIN)
    set_weights({n: v for n, v in train.store.variables.items() if v.trainable
                 or not n.startswith('text_objseg/')})
    for k, v in train.train_step(words, im, mask).items():
        out['train/' + k] = np.asarray(v)
    for name, var in train.store.variables.items():
        if var.trainable and name.startswith('text_objseg/'):
            idx = sample_indices(name, int(np.prod(var.shape)))
            out['weights/' + name] = var.numpy().reshape(-1)[idx]
            m = train.store.variables['text_objseg/' + name + '/Adam']
            out['adam_m/' + name] = m.numpy().reshape(-1)[idx]
    np.savez_compressed(os.path.join(HERE, 'pre_refactor.npz'), **out)

    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, 'unc_iter_1.tfmodel')
        train.save(prefix, {'dataset': 'unc', 'split': 'train'})
        with open(prefix + '.json') as f:
            meta = json.load(f)
    with open(os.path.join(HERE, 'pre_refactor_snapshot.json'), 'w') as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    print('wrote %d arrays; tf %s' % (len(out), tf.__version__))


if __name__ == '__main__':
    main()
