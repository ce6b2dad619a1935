"""Training and testing a CMPC model from batch files, shared by trainval_model.py (images)
and CMPC_video/trainval_video.py (video): snapshots with their settings, exact resume, logs and
TensorBoard, validation and the best snapshot, tf.distribute, the fast paths, progress bars and
results as JSON.

The model is the module -n names (util/pipeline/models.py); a `Task`, chosen by the module's
INPUT, says what differs between image and clip models here: the batch files' keys, how a
batch becomes the network's input, the test sample and the metrics.

    from util.pipeline.runner import train, test
    train(args, 'image')   # args: trainval_model.py's flags (util/pipeline/flags.py)

train() runs in named sections, in this order: resume and settings (`start_run`), weights
(`build_trainer`, `init_weights`), the batch iterator (`batch_iterator`), then per iteration the
step (`train_step`), the running figures (`RunningStats`), logging (`log_step`), validation
(`Validation`) and snapshots (`save_snapshot`).
"""

import json
import os
import sys
import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from util.cli import InputError
from util.data_reader import REQUIRED_KEYS, VIDEO_REQUIRED_KEYS
from util.datasets.batches import train_input
from util.eval_tools import EVAL_IOU_THRESHOLDS, VIDEO_IOU_THRESHOLDS
from util.pipeline import run_log
from util.pipeline.evaluate import clip_test_sample, test_sample
from util.pipeline.models import (check_input, checkpoint_model, fast_paths_of, load_model,
                                  module_name, restore_model)
from util.pipeline.settings import TrainSettings
from util.pipeline.snapshots import (checkpoint_exists, list_snapshots, remove_old_snapshots,
                                     remove_partial_snapshots, snapshot_prefix)


@dataclass(frozen=True)
class Task:
    """What differs between image and clip models in training and testing."""
    kind: str                   # 'image' or 'video', as the results JSON says
    required_keys: tuple        # of the batch files
    train_input: object         # (batch, H, W) -> (words, network input, mask bool [H, W])
    test_sample: object         # (batch, H, W) -> util.pipeline.evaluate.Sample
    metrics: dict = field(default_factory=dict)  # evaluate()'s thresholds and mAP


IMAGE = Task('image', REQUIRED_KEYS, train_input, test_sample,
             {'thresholds': EVAL_IOU_THRESHOLDS})
# The A2D convention: precision at 0.5, 0.55, ..., 0.95 and their mean, mAP.
VIDEO = Task('video', VIDEO_REQUIRED_KEYS, partial(train_input, clip=True), clip_test_sample,
             {'thresholds': VIDEO_IOU_THRESHOLDS, 'report_map': True})
TASKS = {'image': IMAGE, 'clip': VIDEO}  # by the model module's INPUT


# ---------------------------------------------------------------------------------------------
# Batches

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
# Train: devices, resume and settings

def setup_devices(args):
    """The devices and the distribution strategy (util/pipeline/distribute.py), set up before
    TensorFlow runs anything (logical devices, the multi-worker runtime)."""
    from util.pipeline import distribute
    try:
        dist = distribute.setup(args.gpu, args.cpu_replicas)
    except ValueError as e:
        sys.exit('error: %s' % e)
    if args.batch_size % dist.num_replicas:
        sys.exit('error: -bs %d (the global batch) must be a multiple of the number of '
                 'replicas, %d' % (args.batch_size, dist.num_replicas))
    print('Training on ' + dist.describe())
    return dist


@dataclass(frozen=True)
class Run:
    """What a training run starts from: the model module and its settings, the snapshot it
    resumes (None for a new run) with the state that snapshot carried beyond the weights, the
    seed, the last iteration, and -emb's GloVe rows (None: random)."""
    module: object              # the model module (util/pipeline/models.py)
    settings: object            # module.Settings
    train_settings: TrainSettings
    snapshot: object            # prefix, or None
    run_state: dict
    seed: int
    end_iter: int
    glove: object = None

    @property
    def task(self):
        return TASKS[self.module.INPUT]

    @property
    def model_name(self):
        return self.module.__name__


def start_run(args, dist, model_input):
    """Resume and settings. The newest snapshot in -f (unless --no-resume) gives the model
    module and architecture (util/pipeline/models.checkpoint_model: the weights have its
    shapes); a new run takes -n and the flags. The training settings always come from the
    flags: the resume rule."""
    if dist.is_chief:
        for path in remove_partial_snapshots(args.folder, args.dataset):
            print('Removed %s (left by an interrupted snapshot write)' % path)
    snapshots = list_snapshots(args.folder, args.dataset) if args.resume else []
    end_iter = min(args.iters, args.stop_iter)
    if snapshots and snapshots[-1][0] > end_iter:
        sys.exit('error: the newest snapshot %s is past -i %d / -st %d: raise them to go on, or '
                 'start afresh with --no-resume' % (snapshots[-1][1], args.iters, args.stop_iter))
    snapshot = snapshots[-1][1] if snapshots else None
    try:
        if snapshot is not None:
            module, settings, meta = checkpoint_model(snapshot, args.model_name, args.num_steps)
            if module.__name__ != module_name(args.model_name):
                print('-n %s ignored: the run being resumed trains %s'
                      % (args.model_name, module.__name__))
            where, from_checkpoint = snapshot + ('.json' if meta is not None else ''), True
        else:
            module, meta = load_model(args.model_name), None
            settings = module.Settings.from_flags(args)
            where, from_checkpoint = '-n ' + args.model_name, False
        check_input(module, model_input, where, checkpoint=from_checkpoint)
        train_settings = TrainSettings.from_flags(args)
    except (InputError, ValueError) as e:
        sys.exit('error: %s' % e)
    glove = None
    if args.emb and snapshot is None:
        glove, settings = read_glove(args, settings)
    # The run's state beyond the weights (batch order seed, running averages, loss scale): a
    # resumed run goes on exactly as the uninterrupted run would have.
    run_state = (meta or {}).get('run_state', {})
    return Run(module, settings, train_settings, snapshot, run_state,
               run_seed(args, dist, run_state), end_iter, glove)


def read_glove(args, settings):
    """-emb: the GloVe rows of the vocabulary's words (--emb-file), and the settings with
    their width."""
    emb_file = args.emb_file or 'data/%s_emb.npy' % settings.emb_name
    if not os.path.isfile(emb_file):
        sys.exit('error: -emb: embedding file %s not found (build it with tools/build_glove_emb.py '
                 'or pass --emb-file)' % emb_file)
    glove = np.load(emb_file)
    if glove.ndim != 2 or glove.shape[0] != settings.vocab_size:
        sys.exit('error: embedding %s has shape %s but the vocabulary has %d words '
                 '(--vocab / --vocab-size)' % (emb_file, list(glove.shape), settings.vocab_size))
    print('Use pretrained Embeddings: %s' % emb_file)
    return glove, settings.replace(glove_dim=int(glove.shape[1]))


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


# ---------------------------------------------------------------------------------------------
# Train: the model and its Trainer (util/pipeline/trainer.py: the loss, the optimizer, the step)

def build_trainer(run, args, dist):
    """The run's model and its Trainer (the run's seed, --deterministic), their variables
    under the distribution strategy. The Trainer is built before any restore: its optimizer
    variables join the model's store, so that a snapshot restores them too."""
    import tensorflow as tf
    from util.pipeline.trainer import Trainer
    tf.random.set_seed(run.seed)
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()
    try:
        with dist.strategy.scope():
            model = run.module.LSTM_model.from_settings(
                run.settings, mode='train', train_settings=run.train_settings, glove=run.glove,
                precision=args.precision, xla=args.xla)
            return Trainer(model, run.train_settings)
    except ValueError as e:  # e.g. --xla with several replicas
        sys.exit('error: %s' % e)


def restore_run(trainer, prefix, run_state):
    """The snapshot's weights, optimizer state and loss scale; returns its step."""
    trainer.model.restore(prefix)
    if trainer.loss_scaler is not None and 'loss_scale' in run_state:
        trainer.loss_scaler.load_state(run_state)
    return trainer.step


def train_step(trainer, batch, n_iter, args):
    """One step on (words, visual, mask); exits, naming the term, on a loss that is not finite
    (the weights after such a step are not saved)."""
    out = trainer.train_step(*batch)
    bad = [k for k in trainer.logged_terms if not np.isfinite(out[k])]
    if bad:
        last = list_snapshots(args.folder, args.dataset)
        sys.exit('error: iteration %d: the loss %s is %s; training stopped (the weights after '
                 'this step are not saved; the last good snapshot is %s)'
                 % (n_iter, bad[0], float(out[bad[0]]), last[-1][1] if last else 'none'))
    return out


# ---------------------------------------------------------------------------------------------
# Train: weights

def init_weights(trainer, run, args, dist):
    """The weights a run starts from: the resumed snapshot's (with optimizer state and step),
    else the backbone's, --backbone-init or random with the batch-norm statistics of training
    images. Returns the first iteration."""
    from util.pipeline import distribute
    model = trainer.model
    if run.snapshot is not None:
        print('Resuming from %s' % run.snapshot)
        start_iter = restore_run(trainer, run.snapshot, run.run_state)
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
    if args.random_backbone and run.snapshot is None:
        from util.data_reader import BatchFileError, DataReader
        from util.pipeline.trainer import calibrate_backbone
        try:
            with DataReader(*batch_folder(args), seed=run.seed,
                            required_keys=run.task.required_keys) as calibration:
                calibrate_backbone(model, calibration)
        except BatchFileError as e:
            sys.exit('error: %s' % e)
    return start_iter


# ---------------------------------------------------------------------------------------------
# Train: the batch iterator

def batch_iterator(args, task, model, dist, batch_size, seed, start_iter):
    """(words int32 [bs, T], visual float32 [bs, H, W, 3] or [bs, frames, H, W, 3], mask
    float32 [bs, H, W, 1]) for each iteration from start_iter: this worker's share bs of the
    global batch `batch_size`, the stream going on where the run stopped. --tf-data reads and
    preprocesses ahead in tf.data (util/pipeline/tf_input.py), else DataReader reads sample by
    sample through task.train_input. A bad batch file exits with one line naming it."""
    from util.data_reader import BatchFileError, DataReader
    folder, prefix = batch_folder(args)
    shard = dict(shard=dist.worker_index, num_shards=dist.num_workers)
    try:
        if args.tf_data:
            from util.pipeline.tf_input import train_dataset
            source = iter(train_dataset(folder, prefix, model.H, model.W, batch_size, seed=seed,
                                        start=start_iter * batch_size, **shard))
        else:
            source = DataReader(folder, prefix, seed=seed, global_batch=batch_size,
                                start=start_iter * batch_size,
                                required_keys=task.required_keys, **shard)
    except BatchFileError as e:
        sys.exit('error: %s' % e)
    return _read_batches(source, args, task, model, batch_size // dist.num_workers, start_iter)


def _read_batches(source, args, task, model, bs, n_iter):
    import tensorflow as tf
    from util.data_reader import BatchFileError, DataReader
    H, W = model.H, model.W
    words = np.zeros((bs, model.num_steps), dtype=np.int32)  # [bs, T]
    # [bs, H, W, 3] images, or [bs, frames, H, W, 3] clips
    visual = np.zeros([bs] + model.input_signature[1].shape[1:].as_list(), np.float32)
    mask = np.zeros((bs, H, W, 1), dtype=np.float32)  # [bs, H, W, 1]
    try:
        while True:
            try:
                if not isinstance(source, DataReader):  # the same arrays, from tf.data
                    batch = tuple(t.numpy() for t in next(source))
                else:
                    for n in range(bs):
                        sample = source.read_batch(
                            is_log=(n == 0 and n_iter % args.log_every == 0))
                        sample_words, visual[n], mask[n, :, :, 0] = task.train_input(sample, H,
                                                                                     W)
                        if len(sample_words) != model.num_steps:
                            sys.exit('error: iteration %d: %s: text_batch has %d words, the '
                                     'model takes %d (--num-steps, or rebuild the batches '
                                     'with -T %d)' % (n_iter, source.last_path,
                                                      len(sample_words), model.num_steps,
                                                      model.num_steps))
                        words[n] = sample_words
                    batch = (words, visual, mask)
            except (BatchFileError, tf.errors.OpError) as e:
                sys.exit('error: iteration %d: %s' % (n_iter, batch_error_message(e)))
            yield batch
            n_iter += 1
    finally:
        if isinstance(source, DataReader):
            source.close()


# ---------------------------------------------------------------------------------------------
# Train: logging

class RunningStats:
    """The log's running figures (decay 0.99, as the original) and the count of fp16 steps
    skipped, carried in the snapshots for an exact resume."""
    DECAY = 0.99

    def __init__(self, run_state):
        self.cls_loss_avg = run_state.get('cls_loss_avg', 0.0)
        self.avg_acc = np.array(run_state.get('avg_acc', np.zeros(3)))
        self.skipped_steps = run_state.get('skipped_steps', 0)

    def add(self, out):
        from util.processing_tools import compute_accuracy
        d = self.DECAY
        self.skipped_steps += int(out.get('step_skipped', 0))
        self.cls_loss = float(out['cls_loss'])
        self.cls_loss_avg = d * self.cls_loss_avg + (1 - d) * self.cls_loss
        self.acc = np.array(compute_accuracy(out['pred'], out['target']))  # all, pos, neg
        self.avg_acc = d * self.avg_acc + (1 - d) * self.acc

    def state(self):
        return {'cls_loss_avg': self.cls_loss_avg, 'avg_acc': self.avg_acc.tolist(),
                'skipped_steps': self.skipped_steps}


class TrainLog:
    """The chief's log: the original's lines, {-f}/train_log.jsonl and TensorBoard. A resumed
    run drops the rows past its snapshot, so that the curves go on without duplicates."""

    def __init__(self, args, run, start_iter, chief, logged_terms):
        from util.functions import MovingAverage
        from util.pipeline.settings import run_record
        self.args, self.model_name, self.batch_size = args, run.model_name, \
            run.train_settings.batch_size
        self.path = os.path.join(args.folder, 'train_log.jsonl')
        if chief:
            run_log.keep_rows_before(self.path, start_iter)
        self.summaries = run_log.Summaries(args.folder, start_iter, enabled=chief)
        self.summaries.text('train', start_iter, 'settings', '```\n%s\n```' % json.dumps(
            run_record(run.settings, run.train_settings, start_iter, flags=vars(args),
                       model_name=run.model_name), indent=1, default=str))
        self.time_avg = MovingAverage()
        self.logged_terms = tuple(logged_terms)  # the loss table's (Trainer.logged_terms)

    def step(self, n_iter, out, stats, elapsed, now):
        from tqdm import tqdm
        self.time_avg.add(elapsed)
        lr = float(out['learning_rate'])
        for line in ('iter = %d, loss (cur) = %f, loss (avg) = %f, lr = %f'
                     % (n_iter, stats.cls_loss, stats.cls_loss_avg, lr),
                     'iter = %d, accuracy (cur) = %f (all), %f (pos), %f (neg)'
                     % ((n_iter,) + tuple(stats.acc)),
                     'iter = %d, accuracy (avg) = %f (all), %f (pos), %f (neg)'
                     % ((n_iter,) + tuple(stats.avg_acc)),
                     'iter = %d, cur time = %.5f, avg time = %.5f, model_name: %s'
                     % (n_iter, elapsed, self.time_avg.get_avg(), self.model_name)):
            tqdm.write(line)
        record = {'iter': n_iter, 'time': now, 'step_time': elapsed, 'learning_rate': lr,
                  'cls_loss_avg': stats.cls_loss_avg, 'accuracy': stats.acc.tolist()}
        record.update({k: float(out[k]) for k in self.logged_terms})
        if 'loss_scale' in out:  # fp16: overflowed steps are skipped, not errors
            record.update(loss_scale=float(out['loss_scale']), skipped_steps=stats.skipped_steps)
        self.row(record)
        scalars = {k: record[k] for k in self.logged_terms + ('learning_rate', 'cls_loss_avg')}
        scalars.update({'accuracy/' + k: a for k, a in zip(('all', 'pos', 'neg'), stats.acc)})
        scalars.update(seconds_per_step=elapsed, samples_per_second=self.batch_size / elapsed)
        if 'loss_scale' in out:
            scalars.update(loss_scale=record['loss_scale'], skipped_steps=stats.skipped_steps)
        self.summaries.scalars('train', n_iter, scalars)

    def row(self, record):
        run_log.append_row(self.path, record)

    def close(self):
        self.summaries.close()


# ---------------------------------------------------------------------------------------------
# Train: validation

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
        from util.pipeline.once_per_picture import OncePerPicture
        args, model = self.args, self.model
        num, samples = read_samples(self.folder, self.prefix, model.H, model.W,
                                    max_samples=args.val_max, make_sample=self.task.test_sample,
                                    required_keys=self.task.required_keys, by_picture=True)
        drawn = []

        def keep(sample, out):  # the first val_images files
            if sample.index < args.val_images:
                h, w = sample.mask.shape
                pred = image_masks(out['up'][:, :, 0], out['sigm'][:, :, 0], sample.proc_im,
                                   h, w)[PLAIN]
                drawn.append((sample.index, run_log.side_by_side(sample.image, pred,
                                                                 sample.mask), sample.sent))
        # A new OncePerPicture each time: the weights have changed since the last.
        result = evaluate(OncePerPicture(model), samples, num, batch_size=args.batch_size,
                          on_output=keep, progress=False, **self.task.metrics)
        drawn = [d[1:] for d in sorted(drawn, key=lambda d: d[0])]
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

    def best(self):
        """The best snapshot's record of its validation (in its JSON)."""
        return {'iter': self.best_iter, 'overall_iou': self.best_iou,
                'split': self.args.val_split}

    def save_best(self, info):
        from util.pipeline.snapshots import remove_snapshot
        prefix = snapshot_prefix(self.args.folder, self.args.dataset, 'best')
        remove_snapshot(prefix)  # the new one is complete when its .index is renamed in
        self.trainer.save(prefix, info)


# ---------------------------------------------------------------------------------------------
# Train: snapshots

def snapshot_info(args, dist, run, trainer, stats, validation, best=None):
    """What a snapshot's JSON holds beside its settings and step (written by
    util/pipeline/settings.run_record, through Trainer.save): the flags and data it was trained
    with, its model module, and the run's state for an exact resume."""
    state = dict(stats.state(), seed=run.seed)
    if trainer.loss_scaler is not None:
        state.update(trainer.loss_scaler.state())
    if validation is not None:
        state.update(validation.state())
    info = {'flags': vars(args), 'dataset': args.dataset, 'split': args.split,
            'replicas': dist.num_replicas, 'workers': dist.num_workers,
            # predict and export look words up in it, from any working directory
            'vocab': os.path.abspath(args.vocab) if args.vocab else None,
            'model_name': run.model_name, 'run_state': state}
    if best is not None:
        info['best'] = best
    return info


def save_snapshot(trainer, args, step, info, log):
    """{-f}/{dataset}_iter_{step}.tfmodel, then the older ones beyond the newest 4 removed."""
    from tqdm import tqdm
    path = snapshot_prefix(args.folder, args.dataset, step)
    log.summaries.flush()
    try:
        trainer.save(path, info)
    except OSError as e:  # e.g. disk full: save_checkpoint left the older ones intact
        last = list_snapshots(args.folder, args.dataset)
        sys.exit('error: cannot write the snapshot %s (%s); training stopped, the last '
                 'snapshot is %s' % (path, e, last[-1][1] if last else 'none'))
    remove_old_snapshots(args.folder, args.dataset)
    tqdm.write('snapshot saved to ' + path)


# ---------------------------------------------------------------------------------------------
# Train: the loop

def train(args, model_input):
    """Trains the model module -n names (a resumed run: the one its snapshot records) as the
    flags say: trainval_model.py's and trainval_video.py's -m train. model_input: what the
    script's batches hold, 'image' or 'clip'."""
    dist = setup_devices(args)
    from tqdm import tqdm
    chief = dist.is_chief
    os.makedirs(args.folder, exist_ok=True)
    run = start_run(args, dist, model_input)
    trainer = build_trainer(run, args, dist)
    start_iter = init_weights(trainer, run, args, dist)
    batches = batch_iterator(args, run.task, trainer.model, dist, run.train_settings.batch_size,
                             run.seed, start_iter)
    log = TrainLog(args, run, start_iter, chief, trainer.logged_terms)
    stats = RunningStats(run.run_state)
    validation = Validation(args, run.task, trainer, run.run_state) \
        if args.val_split and chief else None

    def info(best=None):
        return snapshot_info(args, dist, run, trainer, stats, validation, best)
    bar = tqdm(total=run.end_iter, initial=start_iter, desc='train', unit='it',
               dynamic_ncols=True, disable=None if chief else True)
    last_time = time.time()
    for n_iter in range(start_iter, run.end_iter):
        out = train_step(trainer, next(batches), n_iter, args)
        stats.add(out)
        now = time.time()
        elapsed, last_time = now - last_time, now
        bar.update(1)
        if chief and n_iter % args.log_every == 0:  # losses, accuracy: the global batch's
            log.step(n_iter, out, stats, elapsed, now)
        # Validation: the chief's; it reads and changes nothing the training uses.
        if validation is not None and (n_iter + 1) % args.val_every == 0:
            row = validation.run(n_iter + 1, log.summaries)
            log.row(row)
            if row['best']:
                validation.save_best(info(best=validation.best()))
        if chief and ((n_iter + 1) % args.snapshot == 0 or (n_iter + 1) >= run.end_iter):
            save_snapshot(trainer, args, n_iter + 1, info(), log)
        if (n_iter + 1) >= args.stop_iter:
            tqdm.write('stop training at iter ' + str(args.stop_iter))
            break
    bar.close()
    log.close()
    batches.close()
    print('Optimization done.')


# ---------------------------------------------------------------------------------------------
# Test

def test_model(args, model_input):
    """The snapshot -f/-d/-i names, built as the model module and settings it records
    (util/pipeline/models.checkpoint_model) in eval mode with the fast paths asked for:
    (module, model, checkpoint prefix). model_input: what the script's batches hold."""
    # The snapshots' dataset name: -d's, or another's (J-HMDB tested with the A2D model).
    trained_on = getattr(args, 'checkpoint_dataset', None) or args.dataset
    weights = snapshot_prefix(args.folder, trained_on, args.iters)
    if not checkpoint_exists(weights):
        found = [n for n, _ in list_snapshots(args.folder, trained_on)]
        sys.exit('error: no snapshot %s (expected %s.index); snapshots in %s: %s'
                 % (weights, weights, args.folder, found or 'none'))
    print('Loading trained weights from {}'.format(weights))
    module, settings, meta = checkpoint_model(weights, args.model_name, args.num_steps)
    check_input(module, model_input, weights + ('.json' if meta is not None else ''))
    print('Model %s, settings from %s' % (module.__name__, weights + '.json' if meta is not None
                                           else 'its tensor shapes (no .json)'))
    model = restore_model(weights, module, settings, **fast_paths_of(args))
    return module, model, weights


def test(args, model_input):
    """Tests a snapshot as the flags say (-m test); returns the results (also written as
    JSON). model_input: what the script's batches hold, 'image' or 'clip'."""
    from util.data_reader import BatchFileError
    from util.pipeline.evaluate import evaluate, read_samples
    from util.pipeline.once_per_picture import OncePerPicture
    from util.io import write_json

    module, model, weights = test_model(args, model_input)
    task = TASKS[module.INPUT]
    vis_dir = None
    if args.visualize:
        vis_dir = args.vis_dir or os.path.join(args.data_root, args.dataset, 'visualization',
                                               str(args.iters))
    try:
        num, samples = read_samples(*batch_folder(args), model.H, model.W,
                                    max_samples=args.max_test, tf_data=args.tf_data,
                                    make_sample=task.test_sample,
                                    required_keys=task.required_keys, by_picture=True)
        result = evaluate(OncePerPicture(model), samples, num, batch_size=args.batch_size,
                          dcrf=args.dcrf, vis_dir=vis_dir, **task.metrics)
    except BatchFileError as e:
        sys.exit('error: %s' % e)
    except Exception as e:  # tf.errors.OpError from the tf.data pipeline
        if not type(e).__module__.startswith('tensorflow'):
            raise
        sys.exit('error: %s' % batch_error_message(e))

    results = {'model': task.kind, 'model_name': module.__name__, 'dataset': args.dataset,
               'split': args.split, 'iter': args.iters, 'checkpoint': weights,
               'batch_size': args.batch_size, **fast_paths_of(model)}
    results.update(result.to_dict())
    print(result.format())
    path = args.results or os.path.join(
        args.folder, '%s_%s_iter_%s_results.json' % (args.dataset, args.split, args.iters))
    write_json(path, results)
    print('Results written to %s (%.1f s, %.1f expressions/s)'
          % (path, result.seconds, num / result.seconds))
    return results


# ---------------------------------------------------------------------------------------------
# The scripts' -m

def export(args, model_input):
    """-m export: a SavedModel of --checkpoint (or -f/-i) in --export-dir
    (util/inference/export.py), of the image model or, for clips, the video model."""
    from util.inference.export import run_export
    from util.pipeline.flags import checkpoint_arg
    checkpoint, flag = checkpoint_arg(args)
    return run_export(checkpoint, args.export_dir, vocab=args.vocab, num_steps=args.num_steps,
                      checkpoint_flag=flag, model_name=args.model_name,
                      kinds=('image',) if model_input == 'image' else ('video',))


def run_mode(args, model_input, **other_modes):
    """Runs the mode -m names: train, test and export here, the script's other modes
    (predict: a function of args) as it gives them, its own test in place of this one's if it
    gives one (the video script's whole-video datasets). model_input: 'image' or 'clip'."""
    os.environ.setdefault('CUDA_VISIBLE_DEVICES', args.gpu)
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    modes = dict(train=lambda a: train(a, model_input), test=lambda a: test(a, model_input),
                 export=lambda a: export(a, model_input))
    modes.update(other_modes)
    try:
        return modes[args.mode](args)
    except InputError as e:  # bad input found on the way: one line, no traceback
        sys.exit('error: %s' % e)
