"""Benchmark of CMPC's fast paths (issue 5): speed, achieved FLOP/s and fidelity.

Exact commands:
    python -m tools.benchmark --quick --out docs/benchmark_cpu.json        # a CPU, a few minutes
    python -m tools.benchmark --out docs/benchmark_gpu.json                # the full grid (a GPU)
    python -m tools.benchmark --quick --configs small --batch-sizes 2 --precisions fp32 --xla off \
        --repeats 2 --max-samples 8 --out /tmp/b.json         # tests/test_benchmark.py, ~2 min
    python -m tools.benchmark --configs paper --batch-sizes 16,32 --precisions fp32,bf16 \
        --xla on --out docs/benchmark_h100.json                      # the H100 figures of issue 5

Rows (all in the JSON under "rows", printed as one table):
  forward         model forward (model.forward_fn) per sample, per config / batch / precision /
                  XLA / folded weights (--fold)
  train           one train step (Trainer(model).step_fn, util/pipeline/trainer.py) per sample
  input_pipeline  samples/s of the input alone (and per core of the machine): the Python
                  DataReader + batches.train_input, and util/pipeline/tf_input.train_dataset
                  (tf.data), at batch 8; and the video batches' Python reader (16-frame
                  clips, train_input(clip=True); tf.data has no video input) in the frame
                  store layout and in the original's, with the bytes stored per sample
  test_end_to_end test mode's loop (read, pad, forward, IoU; DenseCRF with "dcrf") on the
                  synthetic val split, samples/s, with the Python reader and with tf.data
  per_picture     test mode's loop (evaluate: pad, forward, IoU) on 7 expressions in memory,
                  per config: one plain forward per expression (the original's way), then
                  the backbone once per picture (OncePerPicture) with 1 and with 7
                  expressions per image; expressions/s
  predict         predict mode's computation (predict_one with OncePerPicture, the level maps
                  included) on one 320 x 240 image with 1 and with 5 sentences, per sentence
  video_predict   whole-video prediction of the video model (predict_frames) on 12 frames of
                  320 x 240, one sentence, per frame: the backbone once per frame, and one
                  plain forward per frame's window (5 backbone runs a frame)
  build_batches   the writer of build_batches.py (util/datasets: refcoco's entries,
                  batches.build_image_split) on a small synthetic split, expressions/s (one
                  worker)
  fidelity        each fast path against fp32 batch 1 on the synthetic val split, same weights:
                  overall IoU, its difference in points, max |up| difference
Every time is the median of --repeats runs after --warmup runs (the warm-up traces and, with
XLA, compiles). FLOPs are counted from the graph, not by hand: the model's step is traced at a
fixed batch of 1 (tf.function on fixed shapes) and 2 * MACs are summed over the ops listed in
COUNTED_OPS from their static shapes, among the ops a call runs (live_ops: the tape's unused
gradients of the frozen backbone are pruned at run time). Elementwise ops, softmax, resizes and
the Adam update are not counted: they are small next to the convolutions. Achieved FLOP/s =
per-sample FLOPs x samples/s.
Peaks: the H100 figures below where the GPU is one, on a CPU an estimate from /proc/cpuinfo
(cores x clock x FMA width) labelled as such.
Machine: the first line printed and the JSON's "machine" entry name the CPU (model, cores the
process may use, clock, and the ISA features of the fast paths: AVX2, FMA, AVX-512F, AVX-512
BF16 / FP16, AMX), or the GPUs (name, count) and their host CPU, with the software versions.

Data: a synthetic dataset (tools/synthetic.py) is generated and its batches built under --workdir
(a temporary folder unless given). Weights are random, with the backbone's batch norms
calibrated on a few synthetic training images (DeepLabResNetModel.calibrate) so that features
have unit scale, unless --checkpoint names a trained small-config checkpoint (the fidelity and
test rows then use it). A random model's IoU is low; the fidelity rows measure agreement with
the faithful path, not accuracy.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import types

import numpy as np

from tools.flops import COUNTED_OPS, model_flops
from tools.machine import describe_machine, device_info, machine_info, peak_flops
from util.cli import HelpFormatter
from util.datasets import batches, refcoco
from util.pipeline.evaluate import PLAIN
from util.pipeline.settings import PRESETS

# The tests' configuration and the paper's (util/pipeline/settings.py).
CONFIGS = {'small': PRESETS['tiny'], 'paper': PRESETS['paper']}
PIPELINE_BATCH = 8
SYNTHETIC = dict(train_images=8, val_images=6, testA_images=1, testB_images=1)
CALIBRATION_IMAGES = 8


def build_synthetic_unc(root, split, out, input_size, overwrite=False):
    """The batches of the synthetic dataset's unc split under out/unc/{split}_batch/, as
    `build_batches.py -d unc -t SPLIT --synthetic ROOT -o OUT --input_size N -j 1` writes them
    (the same dataset module and writer); returns (written, kept, total)."""
    entries = refcoco.entries('unc', split, os.path.join(root, 'refer'),
                              os.path.join(root, 'coco', 'images'))
    return batches.build_image_split(out, 'unc', split, entries,
                                     os.path.join(root, 'vocabulary_synthetic.txt'),
                                     input_size=input_size, overwrite=overwrite)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=HelpFormatter)
    p.add_argument('--quick', action='store_true',
                   help='a CPU run of a few minutes: 3 repeats, XLA and fold rows at the '
                        'largest batch only, paper config forward at batch 1 and 2 only, no '
                        'paper training')
    p.add_argument('--out', default='results.json', help='JSON file to write')
    p.add_argument('--configs', default='small,paper', help='comma list of small, paper')
    p.add_argument('--batch-sizes', default=None,
                   help='comma list; default 1,4,8 (1,4,8,16,32 on a GPU)')
    p.add_argument('--precisions', default=None,
                   help='comma list of fp32, bf16, fp16; default fp32,bf16 (and fp16 on a GPU)')
    p.add_argument('--xla', default='off,on', help='comma list of off, on')
    p.add_argument('--repeats', type=int, default=None,
                   help='timed runs per figure (median); default 5, 3 with --quick')
    p.add_argument('--warmup', type=int, default=1, help='untimed runs before timing')
    p.add_argument('--workdir', default=None,
                   help='folder for the synthetic data (kept); default a temporary folder')
    p.add_argument('--checkpoint', default=None,
                   help='trained checkpoint prefix (this port\'s, with its .json) for the test '
                        'and fidelity rows, built with the settings it records (default: '
                        'random weights of the small config, calibrated backbone)')
    p.add_argument('--val-batches', default=None,
                   help='val batch folder for the test and fidelity rows, e.g. '
                        'data/synthetic/unc/val_batch (default: the generated synthetic val '
                        'split); use the dataset the --checkpoint was trained on')
    p.add_argument('--skip', default='',
                   help='comma list of row kinds to leave out: forward, train, input_pipeline, '
                        'test_end_to_end, per_picture, predict, video_predict, build_batches, '
                        'fidelity')
    p.add_argument('--max-samples', type=int, default=None,
                   help='val expressions read by the test and fidelity rows (default: all)')
    p.add_argument('--seed', type=int, default=0, help='seed of weights, data and inputs')
    args = p.parse_args(argv)
    args.configs = _split(args.configs, CONFIGS, '--configs')
    args.xla = [x == 'on' for x in _split(args.xla, ('off', 'on'), '--xla')]
    args.skip = _split(args.skip, ('forward', 'train', 'input_pipeline', 'test_end_to_end',
                                   'per_picture', 'predict', 'video_predict', 'build_batches',
                                   'fidelity'), '--skip')
    if args.precisions is not None:
        args.precisions = _split(args.precisions, ('fp32', 'bf16', 'fp16'), '--precisions')
    if args.batch_sizes is not None:
        try:
            args.batch_sizes = [int(b) for b in args.batch_sizes.split(',')]
            assert min(args.batch_sizes) >= 1
        except (ValueError, AssertionError):
            p.error('--batch-sizes must be positive integers like 1,4,8, got %r'
                    % args.batch_sizes)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.repeats < 1 or args.warmup < 0:
        p.error('--repeats must be >= 1 and --warmup >= 0')
    return args


def _split(text, allowed, flag):
    items = [s.strip() for s in text.split(',') if s.strip()]
    bad = [s for s in items if s not in allowed]
    if bad:
        sys.exit('error: %s: unknown %s (choose from %s)' % (flag, bad, ', '.join(allowed)))
    return items


# ---------------------------------------------------------------------------------------------
# Timing

def median_time(fn, warmup, repeats):
    """Median seconds of fn() over `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def random_inputs(model, B, rng):
    import tensorflow as tf
    words = np.zeros((B, model.num_steps), np.int32)
    for b in range(B):  # left-padded sentences of 3..T words, as build_batches writes
        n = rng.randint(3, model.num_steps + 1)
        words[b, -n:] = rng.randint(1, model.vocab_size, n)
    im = (rng.randn(B, model.H, model.W, 3) * 50).astype(np.float32)  # mean-subtracted scale
    mask = (rng.rand(B, model.H, model.W, 1) > 0.5).astype(np.float32)
    return tf.constant(words), tf.constant(im), tf.constant(mask)


class Bench:
    def __init__(self, args):
        import tensorflow as tf
        self.tf = tf
        self.args = args
        self.dev = device_info()
        self.gpu = self.dev['kind'] == 'gpu'
        self.rows = []
        self.flops = {}
        self.batch_sizes = args.batch_sizes or ([1, 4, 8, 16, 32] if self.gpu else [1, 4, 8])
        self.precisions = args.precisions or (['fp32', 'bf16', 'fp16'] if self.gpu
                                              else ['fp32', 'bf16'])
        self._weights = {}

    def log(self, row):
        self.rows.append(row)
        print(format_row(row), flush=True)

    def add_rate(self, row, seconds_per_sample, flops_key=None, precision='fp32'):
        row['seconds_per_sample'] = seconds_per_sample
        row['samples_per_s'] = 1.0 / seconds_per_sample
        if row['kind'] == 'input_pipeline':
            cores = (self.dev.get('host') or self.dev).get('cores') or 1
            row['samples_per_s_per_core'] = row['samples_per_s'] / cores
        if flops_key is not None:
            fl = self.flops[flops_key]
            row['flops_per_sample'] = fl
            row['flops_per_s'] = fl / seconds_per_sample
            row['peak_flops_per_s'], row['peak_source'] = peak_flops(self.dev, precision)
        row['repeats'], row['warmup'] = self.args.repeats, self.args.warmup
        self.log(row)

    # -- models ---------------------------------------------------------------------------------

    def settings(self, config, real_words):
        """(model module, its settings) of the config; real_words: the synthetic dataset's
        vocabulary size instead of the config's, for rows that read its expressions
        (--checkpoint's own module and settings there for the small config, by the rule of
        util/pipeline/models.checkpoint_model)."""
        from util.pipeline.models import IMAGE_MODEL, checkpoint_model, load_model
        if self.args.checkpoint and config == 'small' and real_words:
            from util.cli import InputError
            try:
                module, settings, _ = checkpoint_model(self.args.checkpoint, IMAGE_MODEL)
            except InputError as e:
                sys.exit('error: --checkpoint: %s' % e)
            return module, settings
        settings = CONFIGS[config]
        return load_model(IMAGE_MODEL), (settings.replace(vocab_size=self.data['vocab_size'])
                                         if real_words else settings)

    def build(self, config, mode, real_words=False, **kw):
        """A model with calibrated random weights (or --checkpoint); kw: precision, xla,
        fold."""
        self.tf.random.set_seed(self.args.seed)
        module, settings = self.settings(config, real_words)
        model = module.LSTM_model.from_settings(settings, mode=mode, **kw)
        # Every model of a config restores the same weights (under fold, restore takes the
        # fold again from them).
        model.restore(self.weights(config, settings, real_words))
        return model

    def weights(self, config, settings, real_words):
        """Checkpoint prefix for this config: --checkpoint (small config on the synthetic
        vocabulary: the test and fidelity rows), or random weights with a calibrated backbone,
        made once and saved under --workdir."""
        from CMPC_model import LSTM_model
        from util.data_reader import DataReader
        from util.pipeline.trainer import calibrate_backbone
        if self.args.checkpoint and config == 'small' and real_words:
            return self.args.checkpoint
        key = (config, settings.vocab_size)
        if key not in self._weights:
            self.tf.random.set_seed(self.args.seed)
            model = LSTM_model.from_settings(settings, mode='eval')
            with DataReader(*self.data['train'], shuffle=False) as reader:
                calibrate_backbone(model, reader, CALIBRATION_IMAGES)
            prefix = os.path.join(self.workdir, 'weights', '%s_vocab%s' % key)
            model.save(prefix)
            self._weights[key] = prefix
        return self._weights[key]

    def count(self, config, mode, model, trainer=None):
        key = (config, mode)
        if key not in self.flops:
            self.flops[key], by_type = model_flops(model, mode, trainer)
            print('FLOPs per sample, %s %s: %.3g (%s)' % (config, mode, self.flops[key], ', '.join(
                '%s %.3g' % kv for kv in sorted(by_type.items()))), flush=True)
        return key

    def plan(self, config, mode):
        """[(precision, xla, fold, batch sizes)] to time. --quick keeps the CPU run to a few
        minutes: XLA compiles once per batch size (on this CPU 15-35 s for the small forward,
        85 s for the small train step), so its rows and fold's use the largest batch only,
        fp32 only on a CPU; at the paper size the faithful fp32 forward at batch 1 and 2 and
        fold at batch 2 (XLA is slower than plain TF on a CPU), and no training."""
        bs, quick = self.batch_sizes, self.args.quick
        if config == 'paper' and quick:
            if mode == 'train':
                return []
            return [('fp32', False, False, [1, 2]), ('fp32', False, True, [2])]
        plan = []
        for prec in self.precisions:
            for xla in self.args.xla:
                for fold in ((False, True) if mode == 'forward' else (False,)):
                    if quick and prec != 'fp32' and (fold or (xla and not self.gpu)):
                        continue
                    plan.append((prec, xla, fold, bs[-1:] if quick and (xla or fold) else bs))
        return plan

    # -- rows ---------------------------------------------------------------------------------

    def model_rows(self, config, mode):
        from util.pipeline.trainer import Trainer  # TensorFlow: imported when a row needs it
        rng = np.random.RandomState(self.args.seed)
        plan = self.plan(config, mode)
        if not plan:
            self.log({'kind': mode, 'config': config, 'skipped': True,
                      'note': 'skipped with --quick (paper-size training on a CPU: minutes per '
                              'figure); run without --quick'})
            return
        for prec, xla, fold, sizes in plan:
            model = self.build(config, 'train' if mode == 'train' else 'eval', precision=prec,
                               xla=xla, fold=fold)
            # The default TrainSettings; precision and XLA are the model's.
            trainer = Trainer(model) if mode == 'train' else None
            key = self.count(config, mode, model, trainer)
            for B in sizes:
                words, im, mask = random_inputs(model, B, rng)
                if mode == 'train':
                    def step():
                        float(trainer.step_fn(words, im, mask)['cost'])
                else:
                    def step():
                        model.forward_fn(words, im)['up'].numpy()
                t = median_time(step, self.args.warmup, self.args.repeats)
                row = {'kind': mode, 'config': config, 'batch': B, 'precision': prec, 'xla': xla}
                if mode == 'forward':
                    row['fold'] = fold
                self.add_rate(row, t / B, key, prec)
            del model, trainer

    def input_rows(self, config):
        from util.data_reader import DataReader
        from util.pipeline.tf_input import train_dataset
        H = W = CONFIGS[config].H
        folder, prefix = self.data['train_' + config]
        B, T = PIPELINE_BATCH, batches.T
        reader = DataReader(folder, prefix, seed=self.args.seed)
        words = np.zeros((B, T), np.int32)
        ims = np.zeros((B, H, W, 3), np.float32)
        masks = np.zeros((B, H, W, 1), np.float32)

        def python_batch():  # the input section of trainval_model.py's train loop
            for n in range(B):
                batch = reader.read_batch(is_log=False)
                words[n], ims[n], masks[n, :, :, 0] = batches.train_input(batch, H, W)
        t = median_time(python_batch, self.args.warmup, self.args.repeats)
        reader.close()
        self.add_rate({'kind': 'input_pipeline', 'config': config, 'batch': B,
                       'pipeline': 'python DataReader'}, t / B)
        it = iter(train_dataset(folder, prefix, H, W, B, seed=self.args.seed))
        # One warm-up batch fills the prefetch buffer, as a training loop's first step would.
        t = median_time(lambda: next(it), self.args.warmup + 1, self.args.repeats)
        self.add_rate({'kind': 'input_pipeline', 'config': config, 'batch': B,
                       'pipeline': 'tf.data'}, t / B)
        self.video_input_row(config, folder, prefix, H, W)

    def video_input_row(self, config, folder, prefix, H, W, n=16):
        """The Python reader on n video samples whose 16 frames are one training image shifted
        a few pixels a frame, at batch 8, written by the builder's writer (batches.ClipWriter)
        in its two layouts: each frame once in the frame store (the default), and the
        original's (16 frames and im_batch in every sample)."""
        from util.data_reader import VIDEO_REQUIRED_KEYS, DataReader, count_batches, load_batch
        samples = []
        for k in range(min(n, count_batches(folder, prefix))):
            sample = load_batch(batches.batch_path(folder, prefix, k))
            frames = np.stack([np.roll(sample[batches.IMAGE], 3 * t, axis=1)
                               for t in range(batches.CLIP_FRAMES)])  # [16, h, w, 3]
            samples.append((sample, frames))
        B = PIPELINE_BATCH
        for layout in (batches.FRAMES_ONCE, batches.ORIGINAL):
            writer = batches.ClipWriter(self.workdir, 'video_' + config, 'train', {}, layout,
                                        overwrite=True)
            for k, (sample, frames) in enumerate(samples):
                clip = {'frames': frames, 'original_layout': layout == batches.ORIGINAL}
                if writer.frames:
                    names = ['%s/video%d/%05d.npz' % (batches.FRAME_STORE, k, t + 1)
                             for t in range(batches.CLIP_FRAMES)]
                    for name in writer.frames.missing(names):
                        writer.frames.save(name, frames[names.index(name)])
                    clip = {'frame_files': names}
                writer.save(k, batches.clip_sample(sample[batches.TEXT], sample[batches.MASK],
                                                   'clip %d' % k, 9, 'video%d/00009.png' % k,
                                                   **clip))
            stored = sum(os.path.getsize(os.path.join(d, f))
                         for d, _, names in os.walk(writer.folder) for f in names
                         if f.endswith('.npz'))
            reader = DataReader(writer.folder, writer.prefix, seed=self.args.seed,
                                required_keys=VIDEO_REQUIRED_KEYS)

            def python_batch():
                for _ in range(B):
                    batches.train_input(reader.read_batch(is_log=False), H, W, clip=True)
            t = median_time(python_batch, self.args.warmup, self.args.repeats)
            reader.close()
            self.add_rate({'kind': 'input_pipeline', 'config': config + ' video', 'batch': B,
                           'pipeline': 'python DataReader, ' + layout,
                           'bytes_per_sample': stored / len(samples)}, t / B)

    def run_test(self, model, B, dcrf, pipeline='python DataReader', keep_up=False):
        """Test mode's loop (util/pipeline/evaluate.py: read, resize-and-pad, batched forward,
        resize-and-crop, IoU; DenseCRF with dcrf) on the synthetic val split: (seconds,
        samples, {name: SegEvaluator}, [up maps] with keep_up)."""
        from util.pipeline.evaluate import evaluate, read_samples
        ups = []
        start = time.perf_counter()
        num, samples = read_samples(*self.data['val'], model.H, model.W,
                                    max_samples=self.args.max_samples,
                                    tf_data=pipeline == 'tf.data')
        keep = (lambda sample, out: ups.append(out['up'][:, :, 0])) if keep_up else None
        result = evaluate(model.forward, samples, num, batch_size=B, dcrf=dcrf, on_output=keep,
                          progress=False)
        return time.perf_counter() - start, num, result.evaluators, ups

    def test_rows(self):
        B = PIPELINE_BATCH
        model = self.build('small', 'eval', real_words=True)
        key = self.count('small', 'forward', model)
        for pipeline in ('python DataReader', 'tf.data'):
            for dcrf in (False, True):
                counts = []

                def once():
                    seconds, n, _, _ = self.run_test(model, B, dcrf, pipeline)
                    counts.append(n)
                # The warm-up traces the forward at batch B and at the last partial batch.
                t = median_time(once, self.args.warmup, self.args.repeats)
                self.add_rate({'kind': 'test_end_to_end', 'config': 'small', 'batch': B,
                               'pipeline': pipeline, 'dcrf': dcrf, 'samples': counts[-1],
                               'precision': 'fp32', 'xla': False}, t / counts[-1], key)

    def per_picture_rows(self, config, expressions=7):
        """Test mode's loop on `expressions` in-memory samples of the config's size: one
        plain forward each, then OncePerPicture with 1 and with `expressions` per image."""
        from util.pipeline import contract
        from util.pipeline.evaluate import Sample, evaluate
        from util.pipeline.once_per_picture import OncePerPicture
        model = self.build(config, 'eval')
        rng = np.random.RandomState(self.args.seed)
        words = random_inputs(model, expressions, rng)[0].numpy()
        images = rng.randint(0, 255, (expressions, 240, 320, 3)).astype(np.uint8)
        mask = rng.rand(240, 320) > 0.5

        def samples(per_image):
            out = []
            for k in range(expressions):
                image = images[k // per_image]
                proc_im, net_im = contract.network_input(image, model.H, model.W)
                out.append(Sample(words=words[k], image=image, proc_im=proc_im, net_im=net_im,
                                  mask=mask, sent='expression %d' % k))
            return out
        for name, per_image, forward in (('plain forward', 1, lambda: model.forward),
                                         ('once per picture', 1, lambda: OncePerPicture(model)),
                                         ('once per picture', expressions,
                                          lambda: OncePerPicture(model))):
            made = samples(per_image)
            t = median_time(lambda: evaluate(forward(), iter(made), len(made), progress=False),
                            self.args.warmup, self.args.repeats)
            self.add_rate({'kind': 'per_picture', 'config': config, 'pipeline': name,
                           'expressions_per_image': per_image, 'batch': 1,
                           'precision': 'fp32', 'xla': False}, t / expressions)

    def predict_rows(self, config, sentences=(1, 5)):
        """Predict mode's computation on one 320 x 240 image (util/inference/predict.predict_one
        with the Predictor's OncePerPicture, the c3 / c4 / c5 maps included, no DenseCRF) with
        1 and with 5 sentences; per sentence."""
        from util.inference.predict import predict_one
        from util.pipeline.once_per_picture import OncePerPicture
        model = self.build(config, 'eval')
        rng = np.random.RandomState(self.args.seed)
        words = random_inputs(model, max(sentences), rng)[0].numpy()
        image = rng.randint(0, 255, (240, 320, 3)).astype(np.uint8)
        for n in sentences:
            def run():
                forward = OncePerPicture(model)
                for k in range(n):
                    predict_one(model, image, words[k], forward=forward)
            t = median_time(run, self.args.warmup, self.args.repeats)
            self.add_rate({'kind': 'predict', 'config': config, 'pipeline': 'predict_one',
                           'sentences_per_image': n, 'batch': 1, 'precision': 'fp32',
                           'xla': False}, t / n)

    def video_predict_rows(self, config, frames=12):
        """Whole-video prediction (util/inference/predict_video.predict_frames) of the video
        model on a 320 x 240 video of `frames` frames, one sentence, per frame: the backbone
        once per frame (FrameFeatures), and one plain forward of each frame's window (the
        backbone on 5 frames per frame). Random weights: the time does not depend on them."""
        from CMPC_video.CMPC_video_mm_tgraph_allvec import LSTM_model as VideoModel
        from util.datasets.batches import clip_window
        from util.inference.predict import predict_clip
        from util.inference.predict_video import predict_frames
        from util.pipeline.once_per_picture import FrameFeatures
        from util.pipeline.settings import VideoModelSettings
        self.tf.random.set_seed(self.args.seed)
        model = VideoModel.from_settings(VideoModelSettings.of(CONFIGS[config]), mode='eval')
        rng = np.random.RandomState(self.args.seed)
        words = random_inputs(model, 1, rng)[0].numpy()
        video = rng.randint(0, 255, (frames, 240, 320, 3)).astype(np.uint8)

        source = types.SimpleNamespace(n=frames, frames=lambda: iter(video))  # a VideoSource

        def once_per_frame():
            list(predict_frames(model, FrameFeatures(model), source, list(range(1, frames + 1)),
                                words, progress=False))

        def window_by_window():
            for f in range(1, frames + 1):
                predict_clip(model, [video[i - 1] for i in clip_window(f, frames)], words[0],
                             levels=False)
        for name, run in (('backbone once per frame', once_per_frame),
                          ('a forward per window', window_by_window)):
            t = median_time(run, self.args.warmup, self.args.repeats)
            self.add_rate({'kind': 'video_predict', 'config': config, 'pipeline': name,
                           'sentences_per_image': 1, 'batch': 1, 'precision': 'fp32',
                           'xla': False}, t / frames)

    def build_rows(self):
        for split, size in (('val', batches.INPUT_SIZE), ('train', 64)):
            counts = []

            def once():  # what build_batches.py -d unc --synthetic ... -j 1 --overwrite does
                out = os.path.join(self.workdir, 'build_timing')
                counts.append(build_synthetic_unc(self.data['root'], split, out, size,
                                                  overwrite=True)[2])
            t = median_time(once, self.args.warmup, self.args.repeats)
            self.add_rate({'kind': 'build_batches', 'split': split, 'samples': counts[-1],
                           'workers': 1, 'note': 'expressions/s = samples_per_s'},
                          t / counts[-1])

    def fidelity_rows(self):
        checkpoint = (self.args.checkpoint or 'random weights, backbone calibrated on %d '
                      'synthetic train images' % CALIBRATION_IMAGES)
        ref_model = self.build('small', 'eval', real_words=True)
        _, n, ref_ev, ref_up = self.run_test(ref_model, 1, False, keep_up=True)
        ref_iou = ref_ev[PLAIN].overall_iou()
        # The paths follow --xla and --precisions (given); fp16 is measured on a CPU too.
        precisions = [p for p in (self.args.precisions or ['bf16', 'fp16']) if p != 'fp32']
        paths = [('batch %d' % PIPELINE_BATCH, PIPELINE_BATCH, {}),
                 ('fold', 1, dict(fold=True))]
        if True in self.args.xla:
            paths.append(('xla', 1, dict(xla=True)))
        paths += [(p, 1, dict(precision=p)) for p in precisions]
        # All fast paths together (XLA left out with --quick on a CPU: one more compile).
        combo, name = dict(fold=True), 'fold'
        if 'bf16' in precisions:
            combo['precision'], name = 'bf16', 'bf16 + ' + name
        if True in self.args.xla and (not self.args.quick or self.gpu):
            combo['xla'], name = True, name + ' + xla'
        paths += [('%s, batch %d' % (name, PIPELINE_BATCH), PIPELINE_BATCH, combo)]
        self.log({'kind': 'fidelity', 'path': 'fp32 batch 1 (reference)', 'samples': n,
                  'overall_iou': ref_iou, 'iou_diff_points': 0.0, 'max_abs_up_diff': 0.0,
                  'checkpoint': checkpoint})
        for name, B, kw in paths:
            model = self.build('small', 'eval', real_words=True, **kw)
            _, n, ev, up = self.run_test(model, B, False, keep_up=True)
            iou = ev[PLAIN].overall_iou()
            self.log({'kind': 'fidelity', 'path': name, 'samples': n, 'overall_iou': iou,
                      'iou_diff_points': 100 * (iou - ref_iou),
                      'max_abs_up_diff': float(max(np.abs(a - b).max()
                                                   for a, b in zip(up, ref_up))),
                      'checkpoint': checkpoint})

    # -- data ---------------------------------------------------------------------------------

    def make_data(self):
        """A small synthetic dataset and its batches: val at full image size, train at each
        config's input size."""
        from tools import synthetic
        self.workdir = self.args.workdir or tempfile.mkdtemp(prefix='cmpc_bench_')
        root = os.path.join(self.workdir, 'synthetic')
        summary = synthetic.load_summary(root)
        if summary is None:
            summary = synthetic.generate(root, **dict(SYNTHETIC, seed=self.args.seed))
        self.data = {'root': root, 'vocab_size': summary['vocab_size']}
        for name, split, size in (('val', 'val', 320), ('train_small', 'train', 64),
                                  ('train_paper', 'train', 320)):
            if name == 'train_paper' and 'paper' not in self.args.configs:
                continue
            out = os.path.join(self.workdir, name)
            build_synthetic_unc(root, split, out, size)
            self.data[name] = (os.path.join(out, 'unc', split + '_batch'), 'unc_' + split)
        self.data['train'] = self.data['train_small']
        if self.args.val_batches:
            folder = os.path.normpath(self.args.val_batches)
            base, dataset = os.path.basename(folder), os.path.basename(os.path.dirname(folder))
            split = base[:-len('_batch')]
            if not os.path.isdir(folder) or not base.endswith('_batch') or not split:
                sys.exit('error: --val-batches %s: expected a folder {dataset}/{split}_batch '
                         'written by build_batches.py' % self.args.val_batches)
            self.data['val'] = (folder, '%s_%s' % (dataset, split))

    def run(self):
        a = self.args
        print('Machine: %s' % describe_machine(self.dev), flush=True)
        self.make_data()
        for config in a.configs:
            for mode in ('forward', 'train'):
                if mode not in a.skip:
                    self.model_rows(config, mode)
            if 'input_pipeline' not in a.skip:
                self.input_rows(config)
            if 'per_picture' not in a.skip:
                self.per_picture_rows(config)
            if 'predict' not in a.skip:
                self.predict_rows(config)
            if 'video_predict' not in a.skip:
                self.video_predict_rows(config)
        for kind, rows in (('test_end_to_end', self.test_rows), ('build_batches', self.build_rows),
                           ('fidelity', self.fidelity_rows)):
            if kind not in a.skip:
                rows()


# ---------------------------------------------------------------------------------------------
# Output

def _fmt(x, unit=''):
    if x is None:
        return '-'
    for div, prefix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
        if abs(x) >= div:
            return '%.3g %s%s' % (x / div, prefix, unit)
    return '%.3g %s' % (x, unit) if unit else '%.3g' % x


def describe(row):
    parts = [row.get('config', ''), row.get('split', ''), row.get('pipeline', '')]
    if 'expressions_per_image' in row:
        parts.append('%d expr/image' % row['expressions_per_image'])
    if 'sentences_per_image' in row:
        parts.append('%d sentence%s' % (row['sentences_per_image'],
                                        's' if row['sentences_per_image'] > 1 else ''))
    if 'batch' in row:
        parts.append('bs %d' % row['batch'])
    if 'precision' in row:
        parts.append(row['precision'])
    if 'xla' in row:
        parts.append('XLA' if row['xla'] else 'no XLA')
    if row.get('fold'):
        parts.append('fold')
    if 'dcrf' in row:
        parts.append('DenseCRF' if row['dcrf'] else 'no DenseCRF')
    return ', '.join(p for p in parts if p)


def format_row(row):
    if row.get('skipped'):
        return '| %-15s | %-44s | %s |' % (row['kind'], row['config'], row['note'])
    if row['kind'] == 'fidelity':
        return ('| %-15s | %-44s | overall IoU %.4f (%+.2f points), max |up| diff %.3g, '
                '%d samples |' % ('fidelity', row['path'], row['overall_iou'],
                                  row['iou_diff_points'], row['max_abs_up_diff'],
                                  row['samples']))
    peak = row.get('peak_flops_per_s')
    flops = ''
    if 'flops_per_s' in row:
        flops = '%s (peak %s)' % (_fmt(row['flops_per_s'], 'FLOP/s'), _fmt(peak, 'FLOP/s'))
    elif 'samples_per_s_per_core' in row:
        flops = '%.1f samples/s per core' % row['samples_per_s_per_core']
    return '| %-15s | %-44s | %9.2f ms | %8.2f /s | %s |' % (
        row['kind'], describe(row), 1e3 * row['seconds_per_sample'], row['samples_per_s'], flops)


TABLE_HEAD = ('| kind            | setting                                      | per sample  | '
              'samples/s   | achieved FLOP/s (peak) |\n|---|---|---|---|---|')


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    started = time.time()
    bench = Bench(args)
    try:
        bench.run()
    finally:
        if args.workdir is None and getattr(bench, 'workdir', None):
            shutil.rmtree(bench.workdir, ignore_errors=True)  # a paper checkpoint is 100s of MB
    result = {'command': 'python -m tools.benchmark ' + ' '.join(sys.argv[1:] if argv is None
                                                            else argv),
              'machine': machine_info(bench.dev), 'device': bench.dev,
              'counted_ops': list(COUNTED_OPS),
              'flops_per_sample': {'%s/%s' % k: v for k, v in bench.flops.items()},
              'seconds': time.time() - started, 'rows': bench.rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=1)
    print('\n' + TABLE_HEAD)
    for row in bench.rows:
        print(format_row(row))
    print('\nFLOPs counted from the graph (ops: %s) of a batch-1 trace; peak of a CPU is an '
          'estimate. %d rows written to %s in %.0f s.'
          % (', '.join(COUNTED_OPS), len(bench.rows), args.out, time.time() - started))
    return 0


if __name__ == '__main__':
    sys.exit(main())
