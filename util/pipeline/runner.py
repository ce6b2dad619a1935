"""Training and testing a CMPC model from batch files, shared by trainval_model.py (images)
and CMPC_video/trainval_video.py (video): snapshots with their settings, exact resume, logs and
TensorBoard, validation and the best snapshot, tf.distribute, the fast paths, progress bars and
results as JSON. A `Task` says what differs between the two models: the model class, its
settings, the batch files' keys and how a batch becomes the network's input.

    from util.pipeline.runner import IMAGE, train, test
    train(args, IMAGE)   # args: trainval_model.py's flags
"""

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from util.pipeline import run_log
from util.cli import HelpFormatter, InputError
from util.data_reader import REQUIRED_KEYS, VIDEO_REQUIRED_KEYS
from util.datasets.batches import train_input
from util.pipeline.evaluate import clip_test_sample, test_sample
from util.eval_tools import EVAL_IOU_THRESHOLDS, VIDEO_IOU_THRESHOLDS
from util.pipeline.settings import (PRESETS, ModelSettings, TrainSettings, VideoModelSettings,
                           resume_settings)
from util.pipeline.snapshots import (checkpoint_exists, list_snapshots, read_checkpoint_meta,
                            remove_old_snapshots, remove_partial_snapshots, snapshot_prefix)


@dataclass(frozen=True)
class Task:
    """What differs between the image and the video model in training and testing."""
    kind: str
    settings_cls: type          # ModelSettings or VideoModelSettings (and so the model class)
    required_keys: tuple        # of the batch files
    train_input: object         # (batch, H, W) -> (words, network input, mask bool [H, W])
    test_sample: object         # (batch, H, W) -> util.pipeline.evaluate.Sample
    metrics: dict = field(default_factory=dict)  # evaluate()'s thresholds and mAP

    def model_class(self):
        # Imported when needed: TensorFlow loads after the flags are checked.
        return self.settings_cls.model_class()


def _image_train_input(batch, H, W):
    return train_input(batch, H, W)


def _video_train_input(batch, H, W):
    return train_input(batch, H, W, clip=True)


IMAGE = Task('image', ModelSettings, REQUIRED_KEYS, _image_train_input, test_sample,
             {'thresholds': EVAL_IOU_THRESHOLDS})
# The A2D convention: precision at 0.5, 0.55, ..., 0.95 and their mean, mAP.
VIDEO = Task('video', VideoModelSettings, VIDEO_REQUIRED_KEYS, _video_train_input,
             clip_test_sample, {'thresholds': VIDEO_IOU_THRESHOLDS, 'report_map': True})


# ---------------------------------------------------------------------------------------------
# Flags

ITERS_PER_LOG = 100
DEFAULT_BACKBONE = './data/weights/deeplab_resnet_init.ckpt'


def iteration(text):
    """-i: a number of iterations, or 'best'."""
    if text == 'best':
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an integer or 'best', got %r" % text) from None


DATASETS = {'image': "'unc', 'unc+', 'Gref', 'Gref_umd', 'referit'",
            'video': "'a2d_sent_new' (A2D Sentences), 'jhmdb_sent' (J-HMDB Sentences, test "
                     'only, with the A2D model: --checkpoint-dataset a2d_sent_new)'}
SPLITS = {'image': "'train', 'trainval', 'val', 'test', 'testA', 'testB'",
          'video': "'train', 'test'"}


def build_parser(task, description, modes, dataset_default):
    """The flags of trainval_model.py and CMPC_video/trainval_video.py (the original's, with
    long aliases, and the port's); each script adds its own (-n, -conv5 / -finetune, ...)."""
    p = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    p.add_argument('-g', '--gpu', type=str, default='0',
                   help='GPU id(s) to use (sets CUDA_VISIBLE_DEVICES); train: several ids, e.g. '
                        '0,1,2,3, train on all of them (MirroredStrategy); ignored on a CPU machine')
    p.add_argument('-i', '--iters', type=iteration, default=800000,
                   help="train: number of iterations (max_iter); test (and predict, export with "
                        "-f): iteration of the snapshot to restore, or 'best' for the snapshot "
                        'that did best in validation (--val-split)')
    p.add_argument('-s', '--snapshot', type=int, default=100000,
                   help='train: save a snapshot every this many iterations')
    p.add_argument('-st', '--stop-iter', type=int, default=700000,
                   help='train: stop (after saving) when this iteration is reached')
    p.add_argument('-m', '--mode', type=str, required=True, choices=list(modes),
                   help=', '.join(modes) + (' (masks and explanations for --image and --sentence)'
                                            if 'predict' in modes else ''))
    p.add_argument('-d', '--dataset', type=str, default=dataset_default,
                   help='dataset name: %s (batches are read from {data-root}/{dataset}/'
                        '{split}_batch/)' % DATASETS[task.kind])
    p.add_argument('-t', '--split', type=str, default=None,
                   help='split: %s' % SPLITS[task.kind])
    p.add_argument('-f', '--folder', type=str, default=None,
                   help='folder of the snapshots {dataset}_iter_{N}.tfmodel (required for train '
                        'and test; predict and export take it with -d and -i, or --checkpoint)')
    p.add_argument('-lr', '--lr', type=float, default=0.00025, help='start learning rate')
    p.add_argument('-bs', '--batch-size', type=int, default=1,
                   help='batch size (the paper used 1; every sample of a batch computes what it '
                        'would alone); with several replicas the global batch, split among them')
    p.add_argument('-v', '--visualize', default=False, action='store_true',
                   help='test: write image, ground-truth and prediction PNGs under --vis-dir')
    p.add_argument('-c', '--dcrf', default=False, action='store_true',
                   help='test: also evaluate with DenseCRF post-processing; predict: also write '
                        'the DenseCRF-refined mask')
    p.add_argument('-emb', '--emb', default=False, action='store_true',
                   help='train: initialise the word embedding from GloVe (--emb-file); random '
                        'otherwise')
    g = p.add_argument_group('paths (added by the port)')
    g.add_argument('--data-root', type=str, default='.',
                   help='folder holding {dataset}/{split}_batch/')
    g.add_argument('--vocab', type=str, default=None,
                   help='vocabulary file; train and test use only its size (default: 8803 words '
                        'for referit, 12112 otherwise, as the original); predict and export '
                        'look words up in it (default: the one the checkpoint records)')
    g.add_argument('--emb-file', type=str, default=None,
                   help='GloVe embedding .npy used with -emb (default: data/referit_emb.npy for '
                        'referit, data/Gref_emb.npy otherwise)')
    g.add_argument('--backbone-init', type=str, default=DEFAULT_BACKBONE,
                   help='train: TF1 checkpoint with the DeepLab-ResNet-101 weights')
    g.add_argument('--random-backbone', default=False, action='store_true',
                   help='train: start the backbone from random weights (batch-norm statistics '
                        'from 16 training images) instead of --backbone-init')
    g.add_argument('--resume', default=True, action=argparse.BooleanOptionalAction,
                   help='train: continue from the newest snapshot in -f, with optimizer state')
    g.add_argument('--vis-dir', type=str, default=None,
                   help='test: folder for -v (default {data-root}/{dataset}/visualization/{iter}/)')
    g.add_argument('--results', type=str, default=None,
                   help='test: JSON file for the figures (default '
                        '{-f}/{dataset}_{split}_iter_{N}_results.json)')
    g.add_argument('--log-every', type=int, default=ITERS_PER_LOG,
                   help='train: log every this many iterations')
    g.add_argument('--seed', type=int, default=None,
                   help='seed of the weight initialisation and of the batch order')
    g.add_argument('--tf-data', default=False, action='store_true',
                   help='read the batch files with the tf.data pipeline of util/pipeline/tf_input.py '
                        '(parallel reading and preprocessing, prefetch) instead of DataReader')
    g.add_argument('--max-test', type=int, default=None,
                   help='test: evaluate only the first N expressions of the split')
    g.add_argument('--deterministic', default=False, action='store_true',
                   help='train: tf.config.experimental.enable_op_determinism() (with the seed, '
                        'two runs on a GPU agree bit for bit). Costs speed on a GPU (slower '
                        'deterministic kernels, e.g. for the backbone convolutions and the '
                        'scatter-adds of the embedding gradient); an op without a deterministic '
                        'kernel raises an error instead of running. A CPU run is deterministic '
                        'without it')

    v = p.add_argument_group(
        'watching a run (added by the port)',
        'TensorBoard event files are written under {-f}/tensorboard/{train,val} (tensorboard '
        '--logdir {-f}/tensorboard): every loss term, the learning rate, pixel accuracy and '
        'speed every --log-every iterations; with --val-split, the validation figures, and '
        'images of up to --val-images expressions with the predicted (red) and ground-truth '
        '(green) masks. python -m tools.plot_training {-f} draws the JSON log as a PNG.')
    v.add_argument('--val-split', type=str, default=None,
                   help='train: evaluate on this split ({data-root}/{dataset}/{split}_batch/) '
                        'every --val-every iterations with test mode\'s loop, and keep the '
                        'snapshot with the best overall IoU as {-f}/{dataset}_best.tfmodel')
    v.add_argument('--val-every', type=int, default=10000,
                   help='train: iterations between validations (with --val-split)')
    v.add_argument('--val-max', type=int, default=None,
                   help='train: validate on the first N expressions of --val-split only')
    v.add_argument('--val-images', type=int, default=8,
                   help='train: expressions of --val-split drawn to TensorBoard at each '
                        'validation (the first N; 0 for none)')

    f = p.add_argument_group('fast paths (added by the port; off by default, the faithful path; '
                             'their fidelity is in the README)')
    f.add_argument('--precision', choices=['fp32', 'bf16', 'fp16'], default='fp32',
                   help='train, test: compute dtype; variables, losses, softmaxes, norms and the '
                        'LSTM stay float32 (fp16 training uses dynamic loss scaling)')
    f.add_argument('--xla', default=False, action='store_true',
                   help='train, test: compile the train step / forward pass with XLA')
    f.add_argument('--fold-bn', default=False, action='store_true',
                   help='test: fold the frozen batch norms into the backbone conv weights')

    d = p.add_argument_group(
        'distributed training (added by the port; util/pipeline/distribute.py)',
        'Several GPUs: -g 0,1,2,3 (MirroredStrategy). Several machines: set TF_CONFIG on each '
        '(MultiWorkerMirroredStrategy). -bs is the global batch, split equally among all '
        'replicas; the learning rate follows global steps; only the chief writes snapshots and '
        'logs, so -f must be a folder that every worker reads (to resume from the same snapshot).')
    d.add_argument('--cpu-replicas', type=int, default=1,
                   help='train: split the CPU into this many logical devices and train with '
                        'MirroredStrategy over them (multi-replica training without GPUs)')

    s = p.add_argument_group(
        "model size (util/pipeline/settings.py; --preset values, the paper's by default; a checkpoint "
        'records them, so test, predict and export need none of these)')
    s.add_argument('--preset', choices=sorted(PRESETS), default='paper',
                   help='named model size: paper (320, ResNet-101, LSTM 1000, MLP 500), tiny '
                        "(the tests' 64, LSTM 32, MLP 16), synthetic (main_job.sh's 96, one "
                        'block per ResNet stage, LSTM 64, MLP 32); the flags below override it')
    s.add_argument('--size', type=int, default=None,
                   help='input height and width H = W (the score map is size/8; default: the '
                        "preset's)")
    s.add_argument('--num-steps', type=int, default=None,
                   help="words per sentence T (default: the preset's, 20; predict, export: used "
                        'only for a checkpoint of the original code, which has no .json)')
    s.add_argument('--rnn-size', type=int, default=None,
                   help="LSTM size, also the visual embedding size v_emb_dim (default: the "
                        "preset's)")
    s.add_argument('--mlp-dim', type=int, default=None,
                   help="width of the fused features (default: the preset's)")
    s.add_argument('--backbone-blocks', type=str, default=None,
                   help='blocks of the 4 ResNet stages: 3,4,23,3 is ResNet-101 (the paper); '
                        "1,1,1,1 is a small backbone for CPU experiments (default: the preset's)")
    s.add_argument('-lrd', '--lr-decay-step', type=int, default=TrainSettings.lr_decay_step,
                   help='train: iterations of the polynomial decay from -lr to 1e-5')
    s.add_argument('--vocab-size', type=int, default=None,
                   help='vocabulary size (default: from --vocab, else the original value)')
    return p


def check_args(p, args):
    """Refuses flag values that make no sense before any work starts (p.error exits)."""
    if args.mode in ('train', 'test'):
        if args.folder is None:
            p.error('-f/--folder is required for -m %s' % args.mode)
        if args.split is None:
            p.error('-t/--split is required (e.g. train, val, testA)')
    if args.mode == 'train' and args.fold_bn:
        p.error('--fold-bn is for test: training may change the conv weights')
    if args.iters == 'best' and args.mode == 'train':
        p.error("-i best names a snapshot to test; -m train needs a number of iterations")
    for flag in ('iters', 'snapshot', 'stop_iter', 'batch_size', 'log_every', 'size',
                 'num_steps', 'rnn_size', 'mlp_dim', 'lr_decay_step', 'cpu_replicas',
                 'val_every'):
        value = getattr(args, flag)
        if isinstance(value, int) and value <= 0:
            p.error('--%s must be positive, got %d' % (flag.replace('_', '-'), value))
    if not args.lr > 0:
        p.error('-lr/--lr must be positive, got %r' % args.lr)
    if args.backbone_blocks is not None:
        try:
            args.backbone_blocks = [int(b) for b in args.backbone_blocks.split(',')]
            assert len(args.backbone_blocks) == 4 and min(args.backbone_blocks) >= 1
        except (ValueError, AssertionError):
            p.error('--backbone-blocks must be 4 positive integers like 3,4,23,3, got %r'
                    % args.backbone_blocks)
    if args.size is not None and args.size % 8:
        p.error('--size must be a multiple of 8 (output stride), got %d' % args.size)


# ---------------------------------------------------------------------------------------------
# Predict and export (util/inference/predict.py, util/inference/export.py)



# ---------------------------------------------------------------------------------------------
# Settings and batches

def flag_model_settings(args, task):
    """The architecture the flags ask for (util/pipeline/settings.py); exits with the message when
    --vocab names no file."""
    try:
        return task.settings_cls.from_flags(args)
    except ValueError as e:
        sys.exit('error: %s' % e)


def batch_error_message(e):
    """The one line that names the bad batch file: a BatchFileError's message, or the one
    tf.data carried over from the numpy function that read the file."""
    text = getattr(e, 'message', None) or str(e)
    for line in text.splitlines():
        if 'BatchFileError' in line or '.npz' in line:
            return line.split('BatchFileError: ')[-1].strip()
    return text.splitlines()[0] if text else type(e).__name__


def batch_folder(args, split=None):
    """(folder, file prefix) of the batches of -t SPLIT (or `split`)."""
    split = split or args.split
    folder = os.path.join(args.data_root, args.dataset, split + '_batch')
    return folder, args.dataset + '_' + split


# ---------------------------------------------------------------------------------------------
# Train

def run_seed(args, dist, run_state):
    """The seed of the weights' initialisation and of the batch order: a resumed run's own,
    else --seed, else 0 on several workers (they must draw the same order to read their
    shares of it), else a fresh one, recorded in the snapshots."""
    if 'seed' in run_state:
        if args.seed is not None and args.seed != run_state['seed']:
            print('--seed %d ignored: the run being resumed was started with seed %d'
                  % (args.seed, run_state['seed']))
        return run_state['seed']
    if args.seed is not None:
        return args.seed
    if dist.num_workers > 1:
        print('--seed not given: seed 0 for all %d workers' % dist.num_workers)
        return 0
    seed = int(np.random.SeedSequence().entropy % 2 ** 31)
    print('--seed not given: seed %d (recorded in the snapshots)' % seed)
    return seed


class Validation:
    """Validation during training on --val-split with test mode's loop (util/pipeline/evaluate.py),
    and the best snapshot by overall IoU ({-f}/{dataset}_best.tfmodel)."""

    def __init__(self, args, task, trainer, run_state):
        self.args, self.task, self.trainer, self.model = args, task, trainer, trainer.model
        self.folder, self.prefix = batch_folder(args, args.val_split)
        self.best_iou = run_state.get('best_overall_iou', -1.0)
        self.best_iter = run_state.get('best_iter')

    def state(self):
        return {'best_overall_iou': self.best_iou, 'best_iter': self.best_iter}

    def run(self, step, summaries):
        """Evaluates the current weights; logs the figures and images at `step`; returns the
        JSON log's row."""
        from util.pipeline.evaluate import PLAIN, evaluate, image_masks, read_samples
        args, model = self.args, self.model
        num, samples = read_samples(self.folder, self.prefix, model.H, model.W,
                                    max_samples=args.val_max, make_sample=self.task.test_sample,
                                    required_keys=self.task.required_keys)
        drawn = []

        def keep(sample, out):
            if len(drawn) < args.val_images:
                h, w = sample.mask.shape
                pred = image_masks(out['up'][:, :, 0], out['sigm'][:, :, 0], sample.proc_im,
                                   h, w)[PLAIN]
                drawn.append((run_log.side_by_side(sample.image, pred, sample.mask),
                              sample.sent))
        result = evaluate(model.forward, samples, num, batch_size=args.batch_size,
                          on_output=keep, progress=False, **self.task.metrics)
        figures = result.to_dict()[PLAIN.replace(' ', '_')]
        best = figures['overall_iou'] > self.best_iou
        if best:
            self.best_iou, self.best_iter = figures['overall_iou'], step
        summaries.scalars('val', step, {k: v for k, v in figures.items()
                                        if k.startswith(('precision@', 'overall', 'mean'))})
        if drawn:
            summaries.images('val', step, 'prediction_red_ground_truth_green',
                             [d[0] for d in drawn], [d[1] for d in drawn])
        from tqdm import tqdm
        tqdm.write('validation at iter %d on %s (%d expressions): overall IoU = %f, mean IoU = %f%s'
                   % (step, args.val_split, num, figures['overall_iou'], figures['mean_iou'],
                      ' (best so far)' if best else ''))
        return {'iter': step, 'val_split': args.val_split, 'expressions': num,
                'overall_iou': figures['overall_iou'], 'mean_iou': figures['mean_iou'],
                'precision': {k[len('precision@'):]: v for k, v in figures.items()
                              if k.startswith('precision@')},
                'best': best}

    def save_best(self, step, meta):
        from util.pipeline.snapshots import remove_snapshot
        prefix = snapshot_prefix(self.args.folder, self.args.dataset, 'best')
        remove_snapshot(prefix)  # the new one is complete when its .index is renamed in
        self.trainer.save(prefix, dict(meta, best={'iter': step, 'overall_iou': self.best_iou,
                                                   'split': self.args.val_split}))


def train(args, task):
    """Trains task's model as the flags say (trainval_model.py's and trainval_video.py's -m
    train)."""
    from util.pipeline import distribute
    try:  # before TensorFlow runs anything (logical devices, the multi-worker runtime)
        dist = distribute.setup(args.gpu, args.cpu_replicas)
    except ValueError as e:
        sys.exit('error: %s' % e)
    import tensorflow as tf
    from tqdm import tqdm
    from util.data_reader import BatchFileError, DataReader
    from util.functions import MovingAverage
    from util.pipeline.loss import LOGGED_TERMS
    from util.processing_tools import compute_accuracy
    from util.pipeline.trainer import Trainer, calibrate_backbone

    if args.batch_size % dist.num_replicas:
        sys.exit('error: -bs %d (the global batch) must be a multiple of the number of '
                 'replicas, %d' % (args.batch_size, dist.num_replicas))
    print('Training on ' + dist.describe())
    chief = dist.is_chief
    os.makedirs(args.folder, exist_ok=True)
    if chief:
        for path in remove_partial_snapshots(args.folder, args.dataset):
            print('Removed %s (left by an interrupted snapshot write)' % path)
    snapshots = list_snapshots(args.folder, args.dataset) if args.resume else []
    end_iter = min(args.iters, args.stop_iter)
    if snapshots and snapshots[-1][0] > end_iter:
        sys.exit('error: the newest snapshot %s is past -i %d / -st %d: raise them to go on, or '
                 'start afresh with --no-resume' % (snapshots[-1][1], args.iters, args.stop_iter))
    try:
        meta = read_checkpoint_meta(snapshots[-1][1]) if snapshots else None
    except InputError as e:
        sys.exit('error: %s' % e)
    # The run's state beyond the weights (batch order seed, running averages, loss scale): a
    # resumed run goes on exactly as the uninterrupted run would have.
    run_state = (meta or {}).get('run_state', {})
    seed = run_seed(args, dist, run_state)
    tf.random.set_seed(seed)
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()
    try:
        if meta is not None:
            settings, train_settings = resume_settings(meta, args, task.settings_cls)
        else:  # a new run, or a snapshot of the original code: the flags say
            settings = flag_model_settings(args, task)
            train_settings = TrainSettings.from_flags(args)
    except ValueError as e:
        sys.exit('error: %s' % e)

    glove = None
    if args.emb and not snapshots:
        emb_file = args.emb_file or 'data/%s_emb.npy' % settings.emb_name
        if not os.path.isfile(emb_file):
            sys.exit('error: -emb: embedding file %s not found (build it with tools/build_glove_emb.py '
                     'or pass --emb-file)' % emb_file)
        glove = np.load(emb_file)
        if glove.ndim != 2 or glove.shape[0] != settings.vocab_size:
            sys.exit('error: embedding %s has shape %s but the vocabulary has %d words '
                     '(--vocab / --vocab-size)' % (emb_file, list(glove.shape),
                                                   settings.vocab_size))
        settings = settings.replace(glove_dim=int(glove.shape[1]))
        print('Use pretrained Embeddings: %s' % emb_file)

    try:
        with dist.strategy.scope():
            model = task.model_class().from_settings(
                settings, mode='train', train_settings=train_settings, glove=glove,
                precision=args.precision, xla=args.xla)
            # before any restore: its optimizer variables join the model's store
            trainer = Trainer(model, train_settings)
    except ValueError as e:  # e.g. --xla with several replicas
        sys.exit('error: %s' % e)
    if snapshots:
        start_iter, prefix = snapshots[-1]
        print('Resuming from %s' % prefix)
        model.restore(prefix)
        start_iter = trainer.step
        if trainer.loss_scaler is not None and 'loss_scale' in run_state:
            trainer.loss_scaler.load_state(run_state)
    else:
        start_iter = 0
        if args.random_backbone:
            print('Backbone: random initialisation (--random-backbone)')
        elif not os.path.isfile(args.backbone_init + '.index'):
            sys.exit('error: backbone weights %s not found (expected %s.index); pass '
                     '--backbone-init PATH or --random-backbone'
                     % (args.backbone_init, args.backbone_init))
        else:
            print('Loading pretrained weights from {}'.format(args.backbone_init))
            model.restore_backbone(args.backbone_init)
    if not distribute.all_workers_agree(dist, start_iter):
        sys.exit('error: the workers start from different iterations (this one from %d): '
                 'every worker must see the same snapshots in -f %s' % (start_iter, args.folder))

    folder, prefix = batch_folder(args)
    # This worker's share of each global batch (all of it on one worker).
    shard = dict(shard=dist.worker_index, num_shards=dist.num_workers)
    bs = args.batch_size // dist.num_workers
    try:  # a missing folder, a gap in the numbering, a broken file: one line that names it
        if args.random_backbone and not snapshots:
            with DataReader(folder, prefix, seed=seed,
                            required_keys=task.required_keys) as calibration:
                calibrate_backbone(model, calibration)
        if args.tf_data:
            from util.pipeline.tf_input import train_dataset
            reader = None
            batches = iter(train_dataset(folder, prefix, model.H, model.W, args.batch_size,
                                         seed=seed, start=start_iter * args.batch_size, **shard))
        else:
            reader = DataReader(folder, prefix, seed=seed, global_batch=args.batch_size,
                                start=start_iter * args.batch_size,
                                required_keys=task.required_keys, **shard)
            batches = None
    except BatchFileError as e:
        sys.exit('error: %s' % e)
    meta = {'flags': vars(args), 'dataset': args.dataset, 'split': args.split,
            'replicas': dist.num_replicas, 'workers': dist.num_workers,
            # predict and export look words up in it, from any working directory
            'vocab': os.path.abspath(args.vocab) if args.vocab else None}
    log_path = os.path.join(args.folder, 'train_log.jsonl')
    if chief:
        run_log.keep_rows_before(log_path, start_iter)
    summaries = run_log.Summaries(args.folder, start_iter, enabled=chief)
    summaries.text('train', start_iter, 'settings', '```\n%s\n```' % json.dumps(
        {'flags': vars(args), 'model': model.settings.to_json(),
         'training': trainer.settings.to_json()}, indent=1, default=str))
    validation = Validation(args, task, trainer, run_state) if args.val_split and chief else None

    H, W, T = model.H, model.W, model.num_steps
    text_batch = np.zeros((bs, T), dtype=np.int32)
    # [bs, H, W, 3] images, or [bs, frames, H, W, 3] clips
    visual_batch = np.zeros([bs] + model.input_signature[1].shape[1:].as_list(), np.float32)
    mask_batch = np.zeros((bs, H, W, 1), dtype=np.float32)
    decay = 0.99
    cls_loss_avg = run_state.get('cls_loss_avg', 0.0)
    avg_acc = np.array(run_state.get('avg_acc', np.zeros(3)))
    skipped_steps = run_state.get('skipped_steps', 0)

    def state_of_run():
        """What a snapshot holds beyond the weights, for an exact resume."""
        state = {'seed': seed, 'cls_loss_avg': cls_loss_avg, 'avg_acc': avg_acc.tolist(),
                 'skipped_steps': skipped_steps}
        if trainer.loss_scaler is not None:
            state.update(trainer.loss_scaler.state())
        if validation is not None:
            state.update(validation.state())
        return state
    time_avg = MovingAverage()
    last_time = time.time()
    bar = tqdm(total=end_iter, initial=start_iter, desc='train', unit='it', dynamic_ncols=True,
               disable=None if chief else True)
    for n_iter in range(start_iter, end_iter):
        # -- input
        try:
            if batches is not None:  # the same arrays, read and preprocessed ahead in tf.data
                text_batch, visual_batch, mask_batch = (t.numpy() for t in next(batches))
            else:
                for n in range(bs):
                    batch = reader.read_batch(is_log=(n == 0 and n_iter % args.log_every == 0))
                    words, visual, mask = task.train_input(batch, H, W)
                    text_batch[n] = words
                    visual_batch[n] = visual
                    mask_batch[n, :, :, 0] = mask
        except (BatchFileError, tf.errors.OpError) as e:
            sys.exit('error: iteration %d: %s' % (n_iter, batch_error_message(e)))

        # -- step
        out = trainer.train_step(text_batch, visual_batch, mask_batch)
        bad = [k for k in LOGGED_TERMS if not np.isfinite(out[k])]
        if bad:
            last = list_snapshots(args.folder, args.dataset)
            sys.exit('error: iteration %d: the loss %s is %s; training stopped (the weights after '
                     'this step are not saved; the last good snapshot is %s)'
                     % (n_iter, bad[0], float(out[bad[0]]), last[-1][1] if last else 'none'))
        skipped_steps += int(out.get('step_skipped', 0))
        cls_loss = float(out['cls_loss'])
        cls_loss_avg = decay * cls_loss_avg + (1 - decay) * cls_loss
        acc = np.array(compute_accuracy(out['pred'], out['target']))
        avg_acc = decay * avg_acc + (1 - decay) * acc
        now = time.time()
        elapsed, last_time = now - last_time, now
        bar.update(1)

        # -- log (the chief's; losses and accuracy are the global batch's)
        if chief and n_iter % args.log_every == 0:
            time_avg.add(elapsed)
            lr = float(out['learning_rate'])
            for line in ('iter = %d, loss (cur) = %f, loss (avg) = %f, lr = %f'
                         % (n_iter, cls_loss, cls_loss_avg, lr),
                         'iter = %d, accuracy (cur) = %f (all), %f (pos), %f (neg)'
                         % ((n_iter,) + tuple(acc)),
                         'iter = %d, accuracy (avg) = %f (all), %f (pos), %f (neg)'
                         % ((n_iter,) + tuple(avg_acc)),
                         'iter = %d, cur time = %.5f, avg time = %.5f, model_name: %s'
                         % (n_iter, elapsed, time_avg.get_avg(), args.model_name)):
                tqdm.write(line)
            record = {'iter': n_iter, 'time': now, 'step_time': elapsed,
                      'learning_rate': lr, 'cls_loss_avg': cls_loss_avg,
                      'accuracy': acc.tolist()}
            record.update({k: float(out[k]) for k in LOGGED_TERMS})
            if 'loss_scale' in out:  # fp16: overflowed steps are skipped, not errors
                record.update(loss_scale=float(out['loss_scale']), skipped_steps=skipped_steps)
            run_log.append_row(log_path, record)
            scalars = {k: record[k] for k in LOGGED_TERMS + ('learning_rate', 'cls_loss_avg')}
            scalars.update({'accuracy/' + k: a for k, a in zip(('all', 'pos', 'neg'), acc)})
            scalars.update(seconds_per_step=elapsed, samples_per_second=args.batch_size / elapsed)
            if 'loss_scale' in out:
                scalars.update(loss_scale=record['loss_scale'], skipped_steps=skipped_steps)
            summaries.scalars('train', n_iter, scalars)

        # -- validation (the chief's; it reads and changes nothing the training uses)
        if validation is not None and (n_iter + 1) % args.val_every == 0:
            row = validation.run(n_iter + 1, summaries)
            run_log.append_row(log_path, row)
            if row['best']:
                validation.save_best(n_iter + 1, dict(meta, run_state=state_of_run()))

        # -- snapshot
        if chief and ((n_iter + 1) % args.snapshot == 0 or (n_iter + 1) >= end_iter):
            path = snapshot_prefix(args.folder, args.dataset, n_iter + 1)
            summaries.flush()
            try:
                trainer.save(path, dict(meta, run_state=state_of_run()))
            except OSError as e:  # e.g. disk full: save_checkpoint left the older ones intact
                last = list_snapshots(args.folder, args.dataset)
                sys.exit('error: cannot write the snapshot %s (%s); training stopped, the last '
                         'snapshot is %s' % (path, e, last[-1][1] if last else 'none'))
            remove_old_snapshots(args.folder, args.dataset)
            tqdm.write('snapshot saved to ' + path)
        if (n_iter + 1) >= args.stop_iter:
            tqdm.write('stop training at iter ' + str(args.stop_iter))
            break
    bar.close()
    summaries.close()
    if reader is not None:
        reader.close()
    print('Optimization done.')


# ---------------------------------------------------------------------------------------------
# Test

def test(args, task):
    """Tests a snapshot of task's model as the flags say (-m test); returns the results."""
    from util.data_reader import BatchFileError
    from util.pipeline.evaluate import evaluate, read_samples
    from util.io import write_json

    # The snapshots' dataset name: -d's, or another's (J-HMDB tested with the A2D model).
    trained_on = getattr(args, 'checkpoint_dataset', None) or args.dataset
    weights = snapshot_prefix(args.folder, trained_on, args.iters)
    if not checkpoint_exists(weights):
        found = [n for n, _ in list_snapshots(args.folder, trained_on)]
        sys.exit('error: no snapshot %s (expected %s.index); snapshots in %s: %s'
                 % (weights, weights, args.folder, found or 'none'))
    print('Loading trained weights from {}'.format(weights))
    try:
        meta = read_checkpoint_meta(weights)
        if meta is not None:
            settings = task.settings_cls.from_json(meta, weights + '.json')
            print('Model settings from %s.json' % weights)
        else:
            settings = flag_model_settings(args, task)  # a checkpoint of the original code
    except (InputError, ValueError) as e:
        sys.exit('error: %s' % e)
    model = task.model_class().from_settings(settings, mode='eval', precision=args.precision,
                                             xla=args.xla, fold_bn=args.fold_bn)
    model.restore(weights)

    vis_dir = None
    if args.visualize:
        vis_dir = args.vis_dir or os.path.join(args.data_root, args.dataset, 'visualization',
                                               str(args.iters))
    try:
        num, samples = read_samples(*batch_folder(args), model.H, model.W,
                                    max_samples=args.max_test, tf_data=args.tf_data,
                                    make_sample=task.test_sample,
                                    required_keys=task.required_keys)
        result = evaluate(model.forward, samples, num, batch_size=args.batch_size,
                          dcrf=args.dcrf, vis_dir=vis_dir, **task.metrics)
    except BatchFileError as e:
        sys.exit('error: %s' % e)
    except Exception as e:  # tf.errors.OpError from the tf.data pipeline
        if not type(e).__module__.startswith('tensorflow'):
            raise
        sys.exit('error: %s' % batch_error_message(e))

    results = {'model': task.kind, 'dataset': args.dataset, 'split': args.split,
               'iter': args.iters,
               'checkpoint': weights, 'batch_size': args.batch_size,
               'precision': args.precision, 'xla': args.xla, 'fold_bn': args.fold_bn}
    results.update(result.to_dict())
    print(result.format())
    path = args.results or os.path.join(
        args.folder, '%s_%s_iter_%s_results.json' % (args.dataset, args.split, args.iters))
    write_json(path, results)
    print('Results written to %s (%.1f s, %.1f expressions/s)'
          % (path, result.seconds, num / result.seconds))
    return results
