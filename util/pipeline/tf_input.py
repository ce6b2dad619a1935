"""tf.data input pipelines for the per-expression batch folders of build_batches.py.

The Python path (util/data_reader.DataReader + util/datasets/batches.train_input) reads one .npz
at a time on one thread; here the files are read and decoded in parallel (np.load inside
tf.numpy_function, num_parallel_calls=AUTOTUNE) and prefetched, so that reading overlaps with
the training or test step. The arrays are exactly those of the Python path (tested in
tests/test_tf_input.py): the preprocessing is batches.train_input itself, run in numpy.

    from util.pipeline.tf_input import train_dataset, test_dataset
    ds = train_dataset('work/synthetic/unc/train_batch', 'unc_train', 64, 64, batch_size=8,
                       seed=0)
    for words, im, mask in ds:   # int32 [B, T], float32 [B, H, W, 3], float32 [B, H, W, 1]
        trainer.train_step(words, im, mask)   # a util/pipeline/trainer.Trainer
    for sample in test_dataset('work/synthetic/unc/val_batch', 'unc_val', 64, 64):
        ...                      # one dict per expression, in file order (see test_dataset)
"""

import os

import numpy as np
import tensorflow as tf

from util.data_reader import count_batches, load_batch
from util.datasets.batches import TEXT, train_input
from util.pipeline.evaluate import test_sample

AUTOTUNE = tf.data.AUTOTUNE


def list_batch_files(folder, prefix):
    """`{folder}/{prefix}_{n}.npz` for n = 0 .. num - 1, counted as DataReader counts them
    (BatchFileError for a missing folder, no batches, or a gap followed by later files)."""
    return [os.path.join(folder, '%s_%d.npz' % (prefix, n))
            for n in range(count_batches(folder, prefix))]


def _num_words(path):
    """T of the text_batch in one file: the datasets need static shapes."""
    words = load_batch(path)[TEXT]
    if words.ndim != 1:
        raise ValueError('%s: text_batch must be [T], got shape %s' % (path, list(words.shape)))
    return int(words.shape[0])


def _path_str(path):
    # numpy_function hands tf.string scalars over as bytes.
    return path.decode() if isinstance(path, bytes) else str(path)


def _words(batch, path, T):
    words = np.asarray(batch[TEXT])
    if words.shape != (T,):
        raise ValueError('%s: text_batch has shape %s, expected [%d] like the first file'
                         % (path, list(words.shape), T))
    return words.astype(np.int32)


def load_train_sample(path, H, W, T):
    """One training sample as the Python path builds it (batches.train_input), the mask as
    float32 [H, W, 1]. Returns (words int32 [T], im float32 [H, W, 3], mask)."""
    path = _path_str(path)
    batch = load_batch(path)
    _, im, mask = train_input(batch, H, W)
    return _words(batch, path, T), im, np.asarray(mask, dtype=np.float32)[:, :, None]


def load_test_sample(path, H, W, T):
    """One test sample as util.pipeline.evaluate.test_sample builds it, as a tuple: (words, proc_im,
    im, the stored image RGB uint8, the mask at the image's own size, the sentence)."""
    path = _path_str(path)
    batch = load_batch(path)
    s = test_sample(batch, H, W)
    return (_words(batch, path, T), s.proc_im, s.net_im, s.image.astype(np.uint8), s.mask,
            s.sent.encode('utf-8'))  # tf.string takes bytes


def train_dataset(folder, prefix, H, W, batch_size, seed=None, epochs=None, shuffle=True,
                  num_parallel_calls=AUTOTUNE, prefetch=AUTOTUNE, shard=0, num_shards=1, start=0):
    """Batches (words int32 [B, T], im float32 [B, H, W, 3], mask float32 [B, H, W, 1]).

    Each epoch visits every file once in a new order (a seeded shuffle of the whole file list,
    reshuffled per epoch as DataReader does); epochs=None repeats forever. drop_remainder keeps
    the batch shape static, so the train step never retraces (batches span epoch ends, as the
    Python loop's do). Reading order is deterministic for a given seed despite the parallel
    map (tf.data keeps the order unless told otherwise).

    With num_shards > 1, batch_size is the global batch and this shard reads only its
    (shard-th of num_shards) equal part of each, as DataReader's shards do. `start` skips that
    many file names of the (global) stream first, as DataReader's `start` does: a resumed run
    passes step x global batch."""
    if batch_size < 1:
        raise ValueError('tf_input: batch_size must be >= 1, got %r' % (batch_size,))
    if not 0 <= shard < num_shards or batch_size % num_shards:
        raise ValueError('tf_input: shard %d of %d needs 0 <= shard < num_shards and a '
                         'batch_size (%d) divisible by num_shards' % (shard, num_shards, batch_size))
    files = list_batch_files(folder, prefix)
    T = _num_words(files[0])
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.repeat(epochs)
    if start:
        ds = ds.skip(start)  # names only: nothing is read for the skipped files
    if num_shards > 1:  # the file names of whole global batches, then this shard's part
        batch_size //= num_shards
        lo = shard * batch_size
        ds = ds.batch(batch_size * num_shards, drop_remainder=True)
        ds = ds.map(lambda names: names[lo:lo + batch_size]).unbatch()

    def load(path):
        words, im, mask = tf.numpy_function(
            lambda p: load_train_sample(p, H, W, T), [path],
            (tf.int32, tf.float32, tf.float32), stateful=False)
        # numpy_function forgets shapes; batching with static shapes needs them back.
        words.set_shape([T])  # [T]
        im.set_shape([H, W, 3])  # [H, W, 3]
        mask.set_shape([H, W, 1])  # [H, W, 1]
        return words, im, mask

    ds = ds.map(load, num_parallel_calls=num_parallel_calls)
    ds = ds.batch(batch_size, drop_remainder=True)
    return ds.prefetch(prefetch)


def test_dataset(folder, prefix, H, W, max_samples=None, num_parallel_calls=AUTOTUNE,
                 prefetch=AUTOTUNE, order=None):
    """One dict per expression, in file order (0, 1, ...) or the file numbers `order`, once:
        words int32 [T], proc_im uint8 [H, W, 3], im float32 [H, W, 3] (the network input),
        raw_im uint8 [h, w, 3] (the stored image, RGB), mask float32 [h, w],
        sent tf.string (UTF-8 bytes).
    Unbatched because h, w vary per image; test mode stacks words and im into batches."""
    files = list_batch_files(folder, prefix)
    if order is not None:
        files = [files[n] for n in order]
    if max_samples is not None:
        files = files[:max_samples]
    T = _num_words(files[0])
    ds = tf.data.Dataset.from_tensor_slices(files)

    def load(path):
        words, proc_im, im, raw_im, mask, sent = tf.numpy_function(
            lambda p: load_test_sample(p, H, W, T), [path],
            (tf.int32, tf.uint8, tf.float32, tf.uint8, tf.float32, tf.string), stateful=False)
        words.set_shape([T])
        proc_im.set_shape([H, W, 3])
        im.set_shape([H, W, 3])
        raw_im.set_shape([None, None, 3])
        mask.set_shape([None, None])
        sent.set_shape([])
        return {'words': words, 'proc_im': proc_im, 'im': im, 'raw_im': raw_im, 'mask': mask,
                'sent': sent}

    return ds.map(load, num_parallel_calls=num_parallel_calls).prefetch(prefetch)
