"""Peak memory of a forward or a train step, measured as the process's peak resident set size
(the basis of docs/speed.md's memory per batch; a GPU's own allocator frees tensors as TF's CPU
allocator does, so the growth per sample carries over as an estimate).

    python -m tools.peak_memory --config paper --mode train --batch 2
    for b in 1 2 4; do for m in forward train; do
        python -m tools.peak_memory --config paper --mode $m --batch $b; done; done

Prints one JSON line: the resident set after building the model (weights, optimizer slots for
train, the TensorFlow runtime), the peak after `--steps` calls at batch --batch (tracing
included: run --steps 2 or more so that the peak is a call's, not the trace's), and their
difference. One process per measurement: the peak resident set never goes down.
"""

import argparse
import json
import resource

import numpy as np

from util.pipeline.settings import PRESETS, TrainSettings


def rss_mb():
    """Peak resident set of this process, MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--config', choices=['tiny', 'paper'], default='paper',
                   help='model size (util/pipeline/settings.py PRESETS)')
    p.add_argument('--mode', choices=['forward', 'train'], default='forward',
                   help='the eval forward (model.forward_fn) or a train step (Trainer)')
    p.add_argument('--batch', type=int, default=1, help='batch size')
    p.add_argument('--steps', type=int, default=2, help='calls measured (the first traces)')
    args = p.parse_args(argv)

    import tensorflow as tf
    from CMPC_model import LSTM_model
    from util.pipeline.trainer import Trainer
    tf.random.set_seed(0)
    settings = PRESETS[args.config]
    model = LSTM_model.from_settings(settings, mode=args.mode.replace('forward', 'eval'),
                                     train_settings=TrainSettings())
    trainer = Trainer(model) if args.mode == 'train' else None
    rng = np.random.RandomState(0)
    B, s = args.batch, settings
    words = rng.randint(1, s.vocab_size, (B, s.num_steps)).astype(np.int32)
    im = (rng.randn(B, s.H, s.W, 3) * 50).astype(np.float32)
    mask = (rng.rand(B, s.H, s.W, 1) > 0.5).astype(np.float32)
    built = current_rss_mb()
    for _ in range(args.steps):
        if trainer is None:
            model.forward(words, im)
        else:
            trainer.train_step(words, im, mask)
    peak = rss_mb()
    print(json.dumps({'config': args.config, 'mode': args.mode, 'batch': B,
                      'rss_after_build_mb': round(built), 'peak_rss_mb': round(peak),
                      'peak_minus_build_mb': round(peak - built)}))


if __name__ == '__main__':
    main()
