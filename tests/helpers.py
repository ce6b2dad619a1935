"""Helpers of the tests (plain functions; the pytest fixtures are in conftest.py): generated data
(batch folders in the original's .npz layout, predict mode's workspace), the original graph's
variable lists, a tiny CMPC with random weights and its inputs (shared by test_cmpc_model.py and
test_trainer.py), the project's scripts run as the user runs them, and a tiny video model's
checkpoint with the original's test mode on a video's windows."""

import contextlib
import io
import os
import runpy
import subprocess
import sys

import numpy as np

from np_reference import SCOPE
from util.pipeline.settings import PRESETS, VideoModelSettings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The original graph's variables, vars_*.txt: shared/ lies beside the repository.
REFERENCE_DIR = os.path.join(os.path.dirname(ROOT), 'shared', 'reference')

# The tests' model (util/settings.PRESETS['tiny']): LSTM_model's keyword arguments and flags.
def model_kwargs(settings):
    """LSTM_model's keyword arguments for a ModelSettings (its JSON less the model's kind)."""
    return {k: v for k, v in settings.to_json().items() if k != 'kind'}


TINY = model_kwargs(PRESETS['tiny'])
TINY_FLAGS = ['--preset', 'tiny', '--vocab-size', '%d' % TINY['vocab_size']]
# The video model at the tiny size (and 16-frame clips).
VIDEO_TINY = model_kwargs(VideoModelSettings.of(PRESETS['tiny']))


# ---------------------------------------------------------------------------------------------
# batch folders

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


def write_video_batches(folder, prefix, n, size, seed=0, T=20, vocab_size=50, original=False,
                        frame_store=False):
    """n video samples as CMPC_video/build_A2D_batches.py writes them: 16-frame clips
    [16, h, w, 3] of a rectangle drifting on noise, the mask of frame 8, the frames in every
    sample (the layout before the frame store); with original, also im_batch = frames[8] (the
    original's layout); with frame_store, the frames in frames/clip<k>/<t:05d>.npz (key frame)
    named by frame_files instead (the frame store)."""
    rng = np.random.RandomState(seed)
    os.makedirs(folder, exist_ok=True)
    h, w = size
    for k in range(n):
        frames = rng.randint(0, 90, size=(16, h, w, 3)).astype(np.uint8)
        y, x, dx = rng.randint(0, h // 2), rng.randint(0, w // 4), rng.choice([-1, 1])
        for t in range(16):
            x0 = max(0, x + dx * (t - 8) + w // 4)
            frames[t, y:y + h // 3, x0:x0 + w // 3] = 230
        mask = np.zeros((h, w), bool)
        mask[y:y + h // 3, x + w // 4:x + w // 4 + w // 3] = True
        length = rng.randint(1, T + 1)
        text = [0] * (T - length) + list(rng.randint(1, vocab_size, size=length))
        arrays = dict(text_batch=np.array(text, dtype=np.int64), mask_batch=mask,
                      sent_batch=np.array(['clip %d' % k]), frame_id=np.int64(9), frames=frames)
        if original:
            arrays['im_batch'] = frames[8]
        if frame_store:
            names = ['frames/clip%d/%05d.npz' % (k, t + 1) for t in range(16)]
            for name, frame in zip(names, arrays.pop('frames')):
                os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
                np.savez_compressed(os.path.join(folder, name), frame=frame)
            arrays['frame_files'] = np.array(names)
        np.savez(os.path.join(folder, '%s_%d.npz' % (prefix, k)), **arrays)


# ---------------------------------------------------------------------------------------------
# the original graph's variables

def read_reference_variables(filename):
    """name -> shape of REFERENCE_DIR/filename, lines `name<TAB>[d0, d1, ...]` (scalars `[]`)."""
    out = {}
    with open(os.path.join(REFERENCE_DIR, filename)) as fh:
        for line in fh:
            name, shape = line.rstrip('\n').split('\t')
            out[name] = [int(s) for s in shape.strip('[]').split(',') if s.strip()]
    return out


def assert_same_variables(store, reference):
    """The variables of `store` are those of `reference` (name -> shape), name for name and
    shape for shape."""
    got = {n: v.shape.as_list() for n, v in store.variables.items()}
    missing = sorted(set(reference) - set(got))
    extra = sorted(set(got) - set(reference))
    wrong = sorted('%s: %s != %s' % (n, got[n], reference[n])
                   for n in set(got) & set(reference) if got[n] != reference[n])
    assert not missing, 'missing: %s' % missing[:10]
    assert not extra, 'extra: %s' % extra[:10]
    assert not wrong, 'wrong shapes: %s' % wrong[:10]
    assert len(got) == len(reference)


# ---------------------------------------------------------------------------------------------
# a tiny CMPC with random weights, and its inputs (test_cmpc_model.py and test_trainer.py; the
# fast paths' calibrated checkpoint is the fixture fast_path_setup of conftest.py)

# TensorFlow and the project are imported inside these functions, as in the workspace's below:
# conftest.py imports this module in every run, and most tests need no TensorFlow.

NUM_STEPS = 20  # num_steps, the original's default
ENDPOINTS = ('res3b3_relu', 'res4b22_relu', 'res5c_relu')


def left_pad(words):
    """Left-pad a list of ids with 0 to NUM_STEPS steps, as text_processing does."""
    return np.array([0] * (NUM_STEPS - len(words)) + list(words), dtype=np.int32)


ID_SENTENCES = {  # word ids of TINY's vocabulary (50 ids)
    'short': left_pad([5, 7]),                                       # 2 words, 18 pads
    'long': np.array([4, 9, 17, 23, 8, 31, 42, 11, 6, 19, 27, 33, 14, 45, 22, 13, 38, 29, 10, 48],
                     dtype=np.int32),                                # 20 words, no pad
    'unknown': left_pad([3, 12, 3, 49, 1, 2]),                       # <unk> (3), the last id, <go>, <eos>
    'inner_zero': left_pad([8, 0, 9, 10, 11]),                       # a 0 after the first word
    'all_pad': left_pad([]),                                         # valid_idx 0: every step kept
}


def random_images(n, seed):
    """n images [n, H, W, 3] of TINY's size: BGR minus the mean, roughly zero-centred, tens of
    units."""
    return (60 * np.random.RandomState(seed).randn(n, TINY['H'], TINY['W'], 3)).astype(np.float32)


def randomise(model, seed):
    """Random biases, layer-norm betas/gammas and peepholes, so that no zero- or one-initialised
    parameter can hide a bug (a missing bias, beta on the wrong axis, ...)."""
    rng = np.random.RandomState(seed)
    for name, var in model.store.variables.items():
        if not name.startswith(SCOPE):
            continue
        shape = var.shape.as_list()
        last = name.rsplit('/', 1)[1]
        if last in ('biases', 'bias', 'beta'):
            var.assign(0.3 * rng.randn(*shape).astype(np.float32))
        elif last == 'gamma':
            var.assign((1 + 0.3 * rng.randn(*shape)).astype(np.float32))
        elif last in ('W_ci', 'W_cf', 'W_co'):
            var.assign(0.5 * rng.randn(*shape).astype(np.float32))


def model_params(model):
    """The text_objseg weights, by their TF1 names without the scope, as float64."""
    return {n[len(SCOPE):]: v.numpy().astype(np.float64)
            for n, v in model.store.variables.items()
            if n.startswith(SCOPE) and n in model.model_variables}


def features(model, im):
    """The port's backbone endpoints for ONE image im [H, W, 3], float64 [h, w, C]."""
    import tensorflow as tf
    layers = model.backbone(tf.constant(im[None], tf.float32))
    return {k: layers[k].numpy()[0].astype(np.float64) for k in ENDPOINTS}


def build_restored(prefix, **kw):
    """A TINY LSTM_model (settings overridden by kw) restored from the checkpoint `prefix`."""
    from CMPC_model import LSTM_model
    model = LSTM_model(**dict(TINY, **kw))
    model.restore(prefix)
    return model


def build_trainer(prefix=None, **kw):
    """A Trainer (util/pipeline/trainer.py) of a TINY train-mode LSTM_model (keywords overridden
    by kw, training ones included), built before restoring `prefix` when given, so that a train
    snapshot's optimizer state and step are restored too."""
    from CMPC_model import LSTM_model
    from util.pipeline.trainer import Trainer
    model = LSTM_model(**dict(TINY, mode='train', **kw))
    trainer = Trainer(model, model.train_settings)
    if prefix is not None:
        model.restore(prefix)
    return trainer


# ---------------------------------------------------------------------------------------------
# the repository's scripts

def script_env(**extra):
    """A script's environment: quiet TensorFlow, the repository importable, plus `extra`."""
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT, **extra)


def script_command(args, script='trainval_model.py'):
    """The command that runs `script` (a path from the root) as a user runs it: the tools as
    `python -m tools.NAME`, the other scripts by their path."""
    if script.startswith('tools' + os.sep) or script.startswith('tools/'):
        module = script[:-len('.py')].replace(os.sep, '.').replace('/', '.')
        return [sys.executable, '-m', module] + list(args)
    return [sys.executable, os.path.join(ROOT, script)] + list(args)


def run_script(args, cwd, script='trainval_model.py', check=True, timeout=600, env=None):
    """Runs a script of the repository to its end; with check, asserts that it succeeded."""
    proc = subprocess.run(script_command(args, script), cwd=cwd, env=env or script_env(),
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, '%s %s failed:\n%s\n%s' % (
            script, ' '.join(args), proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def run_main(args, cwd, script='trainval_model.py', check=True):
    """Runs a script of the repository as run_script does, but in this process (no start-up,
    no TensorFlow import: seconds per run): sys.argv, the working folder cwd and `__main__` as
    `python SCRIPT ARGS` (or `python -m tools.NAME ARGS`) sets them. Returns a
    subprocess.CompletedProcess with what the process would have shown: Python's exit status
    (SystemExit(None) 0, an int itself, a message 1, printed on stderr) and the text printed
    on sys.stdout / sys.stderr. An uncaught exception propagates (the test fails with it).

    For what needs no process of its own. Keep run_script for what only a process shows
    (kill -9, --cpu-replicas and TF_CONFIG: devices set before TensorFlow starts, a server).
    What the script changes in the process is put back: sys.argv, sys.path, the working
    folder, os.environ (e.g. -g's CUDA_VISIBLE_DEVICES), TensorFlow's global seed (--seed)
    and op determinism (--deterministic)."""
    saved = sys.argv[:], sys.path[:], os.getcwd(), dict(os.environ), _tf_global_state()
    out, err = io.StringIO(), io.StringIO()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                if script.startswith('tools' + os.sep) or script.startswith('tools/'):
                    sys.argv = [None] + list(args)  # [0]: the module's path, set by runpy
                    module = script[:-len('.py')].replace(os.sep, '.').replace('/', '.')
                    imported = sys.modules.pop(module, None)  # a test's import of it: runpy
                    try:  # would warn that __main__ reruns an imported module
                        runpy.run_module(module, run_name='__main__', alter_sys=True)
                    finally:
                        if imported is not None:
                            sys.modules[module] = imported
                else:
                    sys.argv = [os.path.join(ROOT, script)] + list(args)
                    runpy.run_path(sys.argv[0], run_name='__main__')
                returncode = 0
            except SystemExit as e:  # as Python's own exit handling reports it
                returncode = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
                if not isinstance(e.code, (int, type(None))):
                    print(e.code, file=sys.stderr)
    finally:
        sys.argv[:], sys.path[:] = saved[0], saved[1]
        os.chdir(saved[2])
        for name in set(os.environ) - set(saved[3]):
            del os.environ[name]
        os.environ.update(saved[3])
        _restore_tf_global_state(saved[4])
    proc = subprocess.CompletedProcess([script] + list(args), returncode, out.getvalue(),
                                       err.getvalue())
    if check:
        assert proc.returncode == 0, '%s %s failed:\n%s\n%s' % (
            script, ' '.join(args), proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def _tf_global_state():
    """(global seed, op determinism) of TensorFlow, or None before TensorFlow is imported."""
    if 'tensorflow' not in sys.modules:
        return None
    from tensorflow.python.eager import context
    from tensorflow.python.framework import config
    return context.global_seed(), config.is_op_determinism_enabled()


def _restore_tf_global_state(state):
    if 'tensorflow' not in sys.modules:
        return
    import tensorflow as tf
    from tensorflow.python.framework import config
    seed, deterministic = state or (None, False)
    tf.random.set_seed(seed)
    if config.is_op_determinism_enabled() != deterministic:
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        else:
            config.disable_op_determinism()


def start_script(args, cwd, script='trainval_model.py', env=None):
    """Starts a script of the repository in the background (text pipes)."""
    return subprocess.Popen(script_command(args, script), cwd=cwd, env=env or script_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ---------------------------------------------------------------------------------------------
# predict mode's workspace (the session fixtures predict_workspace and predicted of conftest.py,
# used by test_predict.py and test_export.py)

MU = np.array((104.00698793, 116.66876762, 122.67891434))  # trainval_model.MU, written out
SENTENCES = ['The red circle LEFT of the big star.', 'blorp zzzt']  # the 2nd: no known word
IMAGES = {  # name: (PIL mode, stored size (h, w), shown size (h, w))
    'rgb.png': ('RGB', (90, 130), (90, 130)),
    'grey.png': ('L', (70, 50), (70, 50)),
    'rgba.png': ('RGBA', (64, 100), (64, 100)),
    'rotated.jpg': ('RGB', (40, 72), (72, 40)),  # EXIF orientation 6: shown turned 90 degrees
}
WORDS = ['the', 'red', 'blue', 'green', 'circle', 'square', 'star', 'left', 'right', 'of',
         'on', 'above', 'below', 'big', 'small', '.']

# The project's modules (and TensorFlow) are imported inside the functions below, for start-up
# speed: conftest.py imports this module in every run, and most tests need no TensorFlow.


def write_vocab(path, size):
    """<pad> <go> <eos> <unk> (the original vocabularies' head: <unk> is id 3) + words."""
    from util.text_processing import SPECIAL_TOKENS
    words = list(SPECIAL_TOKENS) + WORDS
    words += ['filler%d' % k for k in range(size - len(words))]
    with open(path, 'w') as f:
        f.write('\n'.join(words[:size]) + '\n')
    return path


def write_images(folder):
    from PIL import Image
    rng = np.random.RandomState(0)
    paths = {}
    for name, (mode, (h, w), _) in IMAGES.items():
        # A bright block on noise, so that the maps have some structure.
        im = rng.randint(0, 120, size=(h, w, 4)).astype(np.uint8)
        im[h // 4:h // 2, w // 3:2 * w // 3] = (230, 40, 40, 255)
        path = os.path.join(folder, name)
        if mode == 'L':
            Image.fromarray(im[:, :, 0]).save(path)
        elif mode == 'RGBA':
            Image.fromarray(im).save(path)
        else:
            exif = Image.Exif()
            if name.endswith('.jpg'):
                exif[0x0112] = 6
            Image.fromarray(im[:, :, :3]).save(path, exif=exif, quality=92)
        paths[name] = path
    return paths


def make_workspace(root):
    """A tiny checkpoint recording its vocabulary, the vocabulary and the images in root.
    Returns (model, dict of paths)."""
    import tensorflow as tf
    from CMPC_model import LSTM_model
    tf.random.set_seed(3)
    model = LSTM_model(mode='eval', **TINY)
    vocab = write_vocab(os.path.join(root, 'vocab.txt'), TINY['vocab_size'])
    prefix = os.path.join(root, 'ckpt', 'unc_iter_5.tfmodel')
    model.save(prefix, {'vocab': vocab})
    paths = write_images(root)
    paths.update(vocab=vocab, checkpoint=prefix)
    return model, paths


class PredictRun:
    """Predict mode's CLI on every image and sentence (-c) of a workspace, run in this process
    (run_main) when first asked for: result() returns (out dir, stdout, stderr), the same each
    time."""

    def __init__(self, root, paths):
        self.root = root
        self.out_dir = os.path.join(root, 'out')
        self.args = ['-m', 'predict', '--checkpoint', paths['checkpoint'], '--out-dir', 'out',
                     '-c']
        for name in IMAGES:
            self.args += ['--image', paths[name]]
        for s in SENTENCES:
            self.args += ['--sentence', s]
        self._result = None

    def result(self):
        if self._result is None:
            proc = run_main(self.args, self.root)
            self._result = self.out_dir, proc.stdout, proc.stderr
        return self._result

    def stop(self):
        """Nothing to stop: the run is in this process (kept for conftest.py's fixture)."""


def shown_rgb(path):
    """The image as it is shown, read independently of util/inference/predict.py."""
    from PIL import Image, ImageOps
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert('RGB'))


def original_postprocessing(model, image, sentence, vocab_dict):
    """trainval_model.py test mode on one image: returns (mask, prob, out, proc_im)."""
    import skimage
    from util import im_processing
    from util.text_processing import preprocess_sentence
    words = np.array(preprocess_sentence(sentence, vocab_dict, model.num_steps), np.int32)
    proc_im = skimage.img_as_ubyte(im_processing.resize_and_pad(image, model.H, model.W))
    im = proc_im.astype(np.float32)[:, :, ::-1] - MU
    out = model.forward(words[None], im[None])
    pred_raw = (out['up'][0, :, :, 0] >= 1e-9).astype(np.float32)
    h, w = image.shape[:2]
    mask = im_processing.resize_and_crop(pred_raw, h, w) > 0
    prob = im_processing.resize_and_crop(out['sigm'][0, :, :, 0], h, w)
    return mask, prob, out, proc_im


def result_dir(out_dir, image_name, k):
    folder = os.path.join(out_dir, os.path.splitext(image_name)[0])
    name = [d for d in sorted(os.listdir(folder)) if d.startswith('%02d_' % k)][0]
    return os.path.join(folder, name)


# ---------------------------------------------------------------------------------------------
# a tiny video model's checkpoint (test_predict_video.py, test_evaluate_video.py), and video
# frames as the original's test mode reads them

def make_video_checkpoint(root, seed, weights_seed, calibrate=None):
    """A tiny video model with random weights (tf seed `seed`, randomise(weights_seed)) and one
    block per ResNet stage (the tests' plain forwards run 5 backbones per window), saved as
    root/ckpt/a2d_sent_new_iter_5.tfmodel recording the vocabulary root/vocab.txt. calibrate:
    network inputs [n, H, W, 3] that set the backbone's batch-norm statistics (unit-scale
    features that differ from frame to frame). Returns (model, checkpoint prefix, vocab path)."""
    import tensorflow as tf
    from CMPC_video.CMPC_video_mm_tgraph_allvec import LSTM_model
    tf.random.set_seed(seed)
    model = LSTM_model(mode='eval', **dict(VIDEO_TINY, backbone_blocks=(1, 1, 1, 1)))
    randomise(model, weights_seed)
    if calibrate is not None:
        model.backbone.calibrate(calibrate)
    vocab = write_vocab(os.path.join(root, 'vocab.txt'), VIDEO_TINY['vocab_size'])
    prefix = os.path.join(root, 'ckpt', 'a2d_sent_new_iter_5.tfmodel')
    model.save(prefix, {'vocab': vocab})
    return model, prefix, vocab


def network_input(frame, H, W):
    """(proc_im, the network's input) of one video frame as the original's test mode prepares
    it."""
    import skimage
    from util import im_processing
    proc_im = skimage.img_as_ubyte(im_processing.resize_and_pad(frame, H, W))
    return proc_im, (proc_im.astype(np.float32)[:, :, ::-1] - MU).astype(np.float32)


def window_mask(model, frames, f, words):
    """The mask of frame f (from 1) of frames [n, h, w, 3] as the original's test mode computes
    it for its window (words [T] int32), and the forward's outputs."""
    from util import im_processing
    n = len(frames)
    window = [min(max(i, 1), n) for i in range(f - 8, f + 8)]  # the original's clip
    clip = np.stack([network_input(frames[i - 1], model.H, model.W)[1] for i in window])
    out = model.forward(words[None], clip[None])
    pred_raw = (out['up'][0, :, :, 0] >= 1e-9).astype(np.float32)
    h, w = frames.shape[1:3]
    return im_processing.resize_and_crop(pred_raw, h, w) > 0, out
