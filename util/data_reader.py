"""Prefetching reader of the per-expression batch files written by build_batches.py.

Each file `{folder}/{prefix}_{n}.npz`, n = 0 .. num_batch - 1, holds one referring
expression: text_batch, im_batch, mask_batch, sent_batch. A daemon thread loads files
ahead into a bounded queue, reshuffling the order at the start of every epoch.

Files written by the original (Python 2 numpy) store the sentence as a bytes ('S')
array; read_batch returns it decoded to str ('U'), UTF-8 first and Latin-1 if that
fails, so Python 3 callers always get text. Files are loaded with allow_pickle=False:
object arrays are refused with an error naming the file.
"""

import os
import queue
import threading

import numpy as np

REQUIRED_KEYS = ('text_batch', 'im_batch', 'mask_batch', 'sent_batch')


def _decode_bytes(arr):
    """'S' array -> same-shape 'U' array; other arrays are returned unchanged."""
    if arr.dtype.kind != 'S':
        return arr

    def dec(b):
        try:
            return b.decode('utf-8')
        except UnicodeDecodeError:
            return b.decode('latin-1')
    return np.array([dec(b) for b in arr.ravel()], dtype=str).reshape(arr.shape)


def load_batch(path, required_keys=REQUIRED_KEYS):
    """Load one batch file into a dict of arrays (bytes sentences decoded to str)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            batch = {k: npz[k] for k in npz.files}
    except ValueError as e:  # numpy's message for object arrays under allow_pickle=False
        raise ValueError('%s: cannot be read without pickle (object arrays are not '
                         'supported): %s' % (path, e)) from e
    missing = [k for k in required_keys if k not in batch]
    if missing:
        raise KeyError('%s: missing keys %s (has %s)' % (path, missing, sorted(batch)))
    if 'sent_batch' in batch:
        batch['sent_batch'] = _decode_bytes(batch['sent_batch'])
    return batch


class _LoadError:
    """Carries an exception from the prefetch thread to read_batch()."""

    def __init__(self, exc):
        self.exc = exc


class DataReader:
    """Endless, optionally shuffled stream of batch dicts from `{folder}/{prefix}_{n}.npz`.

    Attributes: num_batch (files found), n_batch (position in the current epoch),
    n_epoch (completed epochs). `seed` fixes the shuffle order (the original used numpy's
    global RNG). Call close() (or use `with`) to stop the prefetch thread early.

    Sharding, for data-parallel training on several workers: the file stream is cut into global
    batches of `global_batch` files, and shard k of `num_shards` reads only the k-th equal part
    of each, so that the workers (same seed) together read every global batch once.

    `start`: the position in the stream (over epochs, all shards' files counted) to begin at,
    e.g. step x global batch for a resumed run: the stream goes on exactly as a reader begun at
    0 with the same seed would have gone on (the skipped epochs' orders are drawn, not read).
    """

    def __init__(self, folder_name, prefix, shuffle=True, prefetch_num=8, seed=None,
                 required_keys=REQUIRED_KEYS, shard=0, num_shards=1, global_batch=1, start=0):
        self.folder_name = folder_name
        self.prefix = prefix
        self.shuffle = shuffle
        self.prefetch_num = prefetch_num
        self.required_keys = tuple(required_keys)
        self.start = int(start)
        self.n_batch = 0
        self.n_epoch = 0
        self._error = None

        if not os.path.isdir(folder_name):
            raise FileNotFoundError('data reader: folder %s does not exist (prefix "%s")'
                                    % (folder_name, prefix))
        if not isinstance(prefetch_num, int) or prefetch_num < 1:
            raise ValueError('data reader: prefetch_num must be an int >= 1, got %r'
                             % (prefetch_num,))
        if not 0 <= shard < num_shards or global_batch % num_shards:
            raise ValueError('data reader: shard %d of %d needs 0 <= shard < num_shards and a '
                             'global_batch (%d) divisible by num_shards'
                             % (shard, num_shards, global_batch))
        per_shard = global_batch // num_shards
        self._shard_positions = range(shard * per_shard, (shard + 1) * per_shard)
        self.global_batch = global_batch
        # Batches are numbered consecutively from 0; counting stops at the first gap,
        # as in the original.
        files = set(os.listdir(folder_name))
        num_batch = 0
        while '%s_%d.npz' % (prefix, num_batch) in files:
            num_batch += 1
        if num_batch == 0:
            raise RuntimeError('data reader: no batches under %s with prefix "%s" '
                               '(expected files %s_0.npz, %s_1.npz, ...)'
                               % (folder_name, prefix, prefix, prefix))
        print('found %d batches under %s with prefix "%s"' % (num_batch, folder_name, prefix))
        self.num_batch = num_batch

        self._rng = np.random.default_rng(seed)
        self._queue = queue.Queue(maxsize=prefetch_num)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._prefetch, name='DataReader-prefetch',
                                        daemon=True)
        self._thread.start()

    def batch_path(self, batch_id):
        return os.path.join(self.folder_name, '%s_%d.npz' % (self.prefix, batch_id))

    def _put(self, item):
        # Blocking put that still notices close(); returns False once stopped.
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _prefetch(self):
        position = 0  # in the stream of all shards' files, over epochs
        while not self._stop.is_set():
            # A new order for every epoch, so each file is read exactly once per epoch.
            order = (self._rng.permutation(self.num_batch) if self.shuffle
                     else np.arange(self.num_batch))
            if position + self.num_batch <= self.start:  # an epoch before `start`: drawn only
                position += self.num_batch
                continue
            for batch_id in order:
                position += 1
                if position <= self.start:
                    continue
                if (position - 1) % self.global_batch not in self._shard_positions:
                    continue  # another shard's file
                try:
                    item = load_batch(self.batch_path(batch_id), self.required_keys)
                except Exception as e:  # surfaced in read_batch, naming the file
                    item = _LoadError(e)
                if not self._put((position, item)) or isinstance(item, _LoadError):
                    return

    def read_batch(self, is_log=True):
        """Next batch dict; advances n_batch and, at the end of an epoch, n_epoch."""
        if self._stop.is_set():
            raise RuntimeError('data reader: read_batch() after close() (%s, prefix "%s")'
                               % (self.folder_name, self.prefix))
        if self._error is not None:  # the prefetch thread has stopped on this error
            raise self._error
        if is_log:
            print('data reader: epoch = %d, batch = %d / %d'
                  % (self.n_epoch, self.n_batch, self.num_batch))
        if self._queue.empty():
            print('data reader: waiting for file input (IO is slow)...')
        position, item = self._queue.get(block=True)
        if isinstance(item, _LoadError):
            self._error = item.exc
            raise item.exc
        self.n_batch = position % self.num_batch
        self.n_epoch = position // self.num_batch
        return item

    def close(self):
        """Stop the prefetch thread and drop prefetched batches."""
        self._stop.set()
        while True:  # free space so a blocked put wakes up promptly
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
