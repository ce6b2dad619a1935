"""A training run's logs: the JSON log (`{-f}/train_log.jsonl`, one row per logged iteration and
one per validation) and TensorBoard event files (`{-f}/tensorboard/train`, `.../val`).

A resumed run goes on from its snapshot's iteration: everything logged at or after it by the run
that was interrupted is dropped first (`keep_rows_before`, `trim_event_files`), so that both logs
hold each step once.

    tensorboard --logdir ckpts/synthetic/tensorboard
"""

import glob
import json
import os

import numpy as np

from util.io import atomic_open
from util.visualize import GREEN, RED, overlay

EVENTS_GLOB = 'events.out.tfevents.*'


def keep_rows_before(path, n_iter):
    """Rewrites the JSON log with only its rows of iterations before n_iter (those of a run
    killed after its last snapshot, and a half-written last line, go)."""
    if not os.path.isfile(path):
        return
    rows = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            try:
                if json.loads(line)['iter'] < n_iter:
                    rows.append(line if line.endswith('\n') else line + '\n')
            except (ValueError, KeyError, TypeError):
                pass  # a line cut short by a kill
    with atomic_open(path, 'w', encoding='utf-8') as f:
        f.writelines(rows)


def append_row(path, row):
    with open(path, 'a', encoding='utf-8') as f:
        f.write(json.dumps(row) + '\n')


def read_rows(path):
    """The JSON log's rows (a half-written last line is skipped)."""
    rows = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows


def trim_event_files(logdir, n_iter):
    """Keeps only the events of steps before n_iter in the event files under `logdir` (and the
    files' own header events), each file rewritten to a temporary name and renamed over it."""
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2
    for path in sorted(glob.glob(os.path.join(glob.escape(logdir), EVENTS_GLOB))):
        if path.endswith('.tmp'):
            os.remove(path)  # a rewrite interrupted before its rename
            continue
        kept, dropped, truncated = [], 0, False
        try:
            for record in tf.data.TFRecordDataset(path):
                event = event_pb2.Event.FromString(record.numpy())
                if event.HasField('summary') and event.step >= n_iter:
                    dropped += 1
                else:
                    kept.append(record.numpy())
        except tf.errors.DataLossError:
            truncated = True  # a record cut short by a kill: what came before it is kept
        if not dropped and not truncated:
            continue
        with tf.io.TFRecordWriter(path + '.tmp') as writer:
            for record in kept:
                writer.write(record)
        os.replace(path + '.tmp', path)


class Summaries:
    """TensorBoard writers of one run: `train` (scalars) and `val` (validation scalars, images
    and sentences); a no-op where `enabled` is False (not the chief)."""

    def __init__(self, folder, start_iter, enabled=True):
        self.enabled = enabled
        if not enabled:
            return
        import tensorflow as tf
        self.tf = tf
        self.writers = {}
        for name in ('train', 'val'):
            logdir = os.path.join(folder, 'tensorboard', name)
            os.makedirs(logdir, exist_ok=True)
            trim_event_files(logdir, start_iter)
            self.writers[name] = tf.summary.create_file_writer(logdir)

    def scalars(self, writer, step, values):
        if not self.enabled:
            return
        with self.writers[writer].as_default(step=step):
            for tag, value in values.items():
                self.tf.summary.scalar(tag, float(value))

    def text(self, writer, step, tag, text):
        if not self.enabled:
            return
        with self.writers[writer].as_default(step=step):
            self.tf.summary.text(tag, text)

    def images(self, writer, step, tag, images, descriptions):
        """images: uint8 [h, w, 3] each (any sizes), one summary per image, with its text."""
        if not self.enabled:
            return
        with self.writers[writer].as_default(step=step):
            for k, (image, text) in enumerate(zip(images, descriptions)):
                self.tf.summary.image('%s/%d' % (tag, k), image[None], step=step)
                self.tf.summary.text('%s/%d/sentence' % (tag, k), text, step=step)

    def flush(self):
        if self.enabled:
            for writer in self.writers.values():
                writer.flush()

    def close(self):
        if self.enabled:
            for writer in self.writers.values():
                writer.close()


def side_by_side(image, pred, gt):
    """uint8 [h, 2w, 3]: the image with the predicted mask in red, then with the ground truth
    in green."""
    return np.concatenate([overlay(image, pred > 0, RED), overlay(image, gt > 0, GREEN)], axis=1)


def plot(rows, path, title=None):
    """A PNG of the JSON log's rows: the training loss (cls_loss and its running average) and,
    where the run validated, overall and mean IoU, against iterations."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    train = [r for r in rows if 'cls_loss' in r]
    val = [r for r in rows if 'overall_iou' in r]
    fig = Figure(figsize=(10, 4) if val else (6, 4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if val else 1, squeeze=False)[0]
    ax = axes[0]
    ax.plot([r['iter'] for r in train], [r['cls_loss'] for r in train], lw=0.8, alpha=0.5,
            label='cls_loss (logged iterations)')
    ax.plot([r['iter'] for r in train], [r['cls_loss_avg'] for r in train], lw=1.5,
            label='running average (decay 0.99)')
    ax.set_xlabel('iteration')
    ax.set_ylabel('loss (per-image sum over pixels)')
    ax.set_yscale('log')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if val:
        ax = axes[1]
        its = [r['iter'] for r in val]
        ax.plot(its, [r['overall_iou'] for r in val], 'o-', label='overall IoU')
        ax.plot(its, [r['mean_iou'] for r in val], 's--', label='mean IoU')
        best = max(val, key=lambda r: r['overall_iou'])
        ax.axvline(best['iter'], color='grey', lw=0.8, ls=':')
        last = best['iter'] == its[-1]  # write the label on the side with room
        ax.annotate('best: %.3f at %d' % (best['overall_iou'], best['iter']),
                    (best['iter'], best['overall_iou']), fontsize=8, textcoords='offset points',
                    xytext=(-4 if last else 4, -14), ha='right' if last else 'left')
        ax.set_xlabel('iteration')
        ax.set_ylabel('IoU on %s' % val[0].get('val_split', 'validation'))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with atomic_open(path, 'wb', fsync=False) as f:
        fig.savefig(f, format='png')
    return path
