"""Generated data for the tests (batch folders in the original's .npz layout), and the
project's scripts run as the user runs them."""

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = dict(H=64, W=64, vf_h=8, vf_w=8, vocab_size=50, rnn_size=32, v_emb_dim=32, mlp_dim=16)
TINY_FLAGS = ['--size', '64', '--rnn-size', '32', '--mlp-dim', '16', '--vocab-size', '50']


def scene(rng, h, w):
    """An image with one bright rectangle on noise, the rectangle as the mask."""
    im = rng.randint(0, 90, size=(h, w, 3)).astype(np.uint8)
    y0, x0 = rng.randint(0, h // 2), rng.randint(0, w // 2)
    y1, x1 = y0 + rng.randint(h // 4, h // 2), x0 + rng.randint(w // 4, w // 2)
    im[y0:y1, x0:x1] = rng.randint(150, 255, size=3)
    mask = np.zeros((h, w), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return im, mask


def write_batches(folder, prefix, n, sizes, seed=0, T=20, vocab_size=50):
    """n expressions as {folder}/{prefix}_{k}.npz with the original's keys and dtypes.

    sizes: (h, w) of every image, or a list of them to cycle through.
    """
    rng = np.random.RandomState(seed)
    os.makedirs(folder, exist_ok=True)
    sizes = [sizes] if isinstance(sizes[0], int) else list(sizes)
    for k in range(n):
        h, w = sizes[k % len(sizes)]
        im, mask = scene(rng, h, w)
        length = rng.randint(1, T + 1)
        text = [0] * (T - length) + list(rng.randint(1, vocab_size, size=length))
        np.savez(os.path.join(folder, '%s_%d.npz' % (prefix, k)),
                 text_batch=np.array(text, dtype=np.int64), im_batch=im, mask_batch=mask,
                 sent_batch=np.array(['expression %d' % k]))


def script_env(**extra):
    """A script's environment: quiet TensorFlow, the repository importable, plus `extra`."""
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT, **extra)


def script_command(args, script='trainval_model.py'):
    return [sys.executable, os.path.join(ROOT, script)] + list(args)


def run_script(args, cwd, script='trainval_model.py', check=True, timeout=600, env=None):
    """Runs a script of the repository to its end; with check, asserts that it succeeded."""
    proc = subprocess.run(script_command(args, script), cwd=cwd, env=env or script_env(),
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, '%s %s failed:\n%s\n%s' % (
            script, ' '.join(args), proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def start_script(args, cwd, script='trainval_model.py', env=None):
    """Starts a script of the repository in the background (text pipes)."""
    return subprocess.Popen(script_command(args, script), cwd=cwd, env=env or script_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
