"""Prefetching reader of the per-expression batch files written by build_batches.py.

Each file `{folder}/{prefix}_{n}.npz`, n = 0 .. num_batch - 1, holds one sample in the format
of util/datasets/batches.py: text_batch, im_batch, mask_batch, sent_batch; a video sample
also frames, the clip, and im_batch may be left out: it is the annotated frame,
frames[ANNOTATED_FRAME], which load_batch then adds (so the image model reads video
batches as images of their annotated frames). A video sample of the frame store layout names
its frames (frame_files, relative to its folder) instead of holding them: load_batch reads
them into frames, so every reader sees the three layouts as one. A daemon thread loads files
ahead into a bounded queue, reshuffling the order at the start of every epoch.

Files written by the original (Python 2 numpy) store the sentence as a bytes ('S')
array; read_batch returns it decoded to str ('U'), UTF-8 first and Latin-1 if that
fails, so Python 3 callers always get text.

Anything wrong with the folder or a file raises BatchFileError with one line that names the
file and what was expected: a missing folder, no files, a gap in the numbering followed by
higher-numbered files (the original stopped counting at the first gap and silently left the
rest out), an empty, truncated or non-npz file, object arrays (files are loaded with
allow_pickle=False), missing keys, and arrays of the wrong dtype or shape (SPECS); the same
for a frame file of the frame store, and one that is missing.
"""

import os
import queue
import re
import threading
import zipfile
import zlib

import numpy as np

from util.datasets.batches import (ANNOTATED_FRAME, FRAME, FRAME_FILES, FRAMES, IMAGE, IMAGE_ID,
                                   IMAGE_KEYS, MASK, SENT, SPECS, TEXT, VIDEO_KEYS)

# The keys a file must hold (the format is util/datasets/batches.py's): an image sample's, or a
# video sample's, whose im_batch, the annotated frame, may be left out (load_batch adds it).
REQUIRED_KEYS = IMAGE_KEYS
VIDEO_REQUIRED_KEYS = VIDEO_KEYS
EXPECTED = 'an .npz with %s as build_batches.py writes' % ', '.join(REQUIRED_KEYS)
FRAME_EXPECTED = 'an .npz with frame, uint8 [h, w, 3], as CMPC_video/build_A2D_batches.py writes'
# What np.load and reading a member raise on a file that is not a whole .npz archive.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)


class BatchFileError(ValueError):
    """A batch folder or file that cannot be read, or does not hold what build_batches.py
    writes; the message (one line) names the file and what was expected."""


def _one_line(e):
    return '%s: %s' % (type(e).__name__, ' '.join(str(e).split()))


def _describe(arr):
    return '%s %s' % (arr.dtype, list(arr.shape))


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


def _read_arrays(path, expected=EXPECTED):
    """{key: array} of the .npz at path; BatchFileError for a file that is not one (the message
    ends with `expected`)."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise BatchFileError('%s: cannot be read (%s); expected %s'
                             % (path, _one_line(e), expected)) from e
    if size == 0:
        raise BatchFileError('%s: empty file (0 bytes); expected %s' % (path, expected))
    try:
        npz = np.load(path, allow_pickle=False)
    except _READ_ERRORS as e:
        # BadZipFile: a truncated archive (its directory is at the end); ValueError: no zip
        # and no numpy header (numpy's message then is about pickle, which would mislead).
        why = 'no numpy header' if isinstance(e, ValueError) else _one_line(e)
        raise BatchFileError('%s: not a readable .npz archive, truncated or another kind of '
                             'file (%s); expected %s' % (path, why, expected)) from e
    if not isinstance(npz, np.lib.npyio.NpzFile):  # a bare .npy array
        raise BatchFileError('%s: a single .npy array %s, not an archive; expected %s'
                             % (path, _describe(npz), expected))
    batch = {}
    with npz:
        for k in npz.files:
            try:
                batch[k] = npz[k]
            except ValueError as e:
                if 'allow_pickle' not in str(e):
                    raise BatchFileError('%s: %s cannot be read, the file is truncated or '
                                         'corrupt (%s); expected %s'
                                         % (path, k, _one_line(e), expected)) from e
                raise BatchFileError('%s: %s is an object array, which needs pickle (refused: '
                                     'files are loaded with allow_pickle=False); expected %s %s'
                                     % (path, k, k, SPECS.get(k, 'a plain array'))) from e
            except _READ_ERRORS as e:
                raise BatchFileError('%s: %s cannot be read, the file is truncated or corrupt '
                                     '(%s); expected %s' % (path, k, _one_line(e), expected)) from e
    return batch


def _check_arrays(path, batch):
    """BatchFileError unless the arrays present have SPECS' dtypes and shapes."""
    def refuse(k, expected=None):
        raise BatchFileError('%s: %s is %s; expected %s'
                             % (path, k, _describe(batch[k]), expected or SPECS[k]))
    text, im = batch.get(TEXT), batch.get(IMAGE)
    mask, sent = batch.get(MASK), batch.get(SENT)
    if text is not None and not (text.ndim == 1 and text.size and text.dtype.kind in 'iu'):
        refuse(TEXT)
    if im is not None and not (im.dtype == np.uint8 and min(im.shape, default=0) > 0 and (
            im.ndim == 2 or (im.ndim == 3 and im.shape[2] == 3))):
        refuse(IMAGE)
    if mask is not None and not (mask.ndim == 2 and mask.dtype.kind in 'biuf' and (
            mask.shape == im.shape[:2] if im is not None else min(mask.shape) > 0)):
        refuse(MASK, None if im is None else
               'bool or numeric %s, the h, w of im_batch' % list(im.shape[:2]))
    if sent is not None and not (sent.size and sent.dtype.kind in 'US'):
        refuse(SENT)
    image_id = batch.get(IMAGE_ID)
    if image_id is not None and not (image_id.size == 1 and image_id.dtype.kind in 'US'):
        refuse(IMAGE_ID)
    frames = batch.get(FRAMES)
    if frames is not None and not (
            frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[0] > ANNOTATED_FRAME
            and frames.shape[3] == 3 and min(frames.shape) > 0
            and (mask is None or frames.shape[1:3] == mask.shape)):
        refuse(FRAMES, None if mask is None else
               'uint8 [16, %d, %d, 3], the h, w of mask_batch' % mask.shape)


def _read_frames(path, names):
    """frames uint8 [16, h, w, 3] of the sample at path from the frame files it names (each
    read once); BatchFileError naming a missing, unreadable or misshapen frame file."""
    names = _decode_bytes(names)
    if not (names.ndim == 1 and names.shape[0] > ANNOTATED_FRAME and names.dtype.kind == 'U'):
        raise BatchFileError('%s: %s is %s; expected %s'
                             % (path, FRAME_FILES, _describe(names), SPECS[FRAME_FILES]))
    folder, frames = os.path.dirname(path), {}
    for name in dict.fromkeys(names.tolist()):
        parts = name.split('/')
        if name.startswith('/') or '..' in parts or '\\' in name:
            raise BatchFileError('%s: %s names %r, outside its folder; expected %s'
                                 % (path, FRAME_FILES, name, SPECS[FRAME_FILES]))
        frame_path = os.path.join(folder, *parts)
        if not os.path.isfile(frame_path):
            raise BatchFileError('%s: frame file not found (a frame of %s; rerun '
                                 'CMPC_video/build_A2D_batches.py: it writes the missing frames)'
                                 % (frame_path, path))
        arrays = _read_arrays(frame_path, FRAME_EXPECTED)
        if FRAME not in arrays:
            raise BatchFileError('%s: missing frame (has %s); expected %s'
                                 % (frame_path, ', '.join(sorted(arrays)) or 'nothing',
                                    FRAME_EXPECTED))
        frame = arrays[FRAME]
        if not (frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
                and min(frame.shape) > 0
                and frame.shape == next(iter(frames.values()), frame).shape):
            raise BatchFileError('%s: frame is %s; expected %s'
                                 % (frame_path, _describe(frame), SPECS[FRAME]))
        frames[name] = frame
    return np.stack([frames[n] for n in names.tolist()])  # [16, h, w, 3]


def load_batch(path, required_keys=REQUIRED_KEYS):
    """Load one batch file into a dict of arrays (bytes sentences decoded to str), checked
    against SPECS, the frames of a frame store sample read in; BatchFileError, naming the file,
    for anything else."""
    batch = _read_arrays(path)
    if FRAME_FILES in batch and FRAMES not in batch:  # a sample of the frame store layout
        batch[FRAMES] = _read_frames(path, batch[FRAME_FILES])
    if FRAMES in batch and IMAGE not in batch:  # a video sample: its annotated frame
        frames = batch[FRAMES]
        if frames.ndim == 4 and frames.shape[0] > ANNOTATED_FRAME:
            batch[IMAGE] = frames[ANNOTATED_FRAME]
    missing = [k for k in required_keys if k not in batch]
    if missing:
        expected = (EXPECTED if tuple(required_keys) == REQUIRED_KEYS else
                    'an .npz with %s as CMPC_video/build_A2D_batches.py writes'
                    % ', '.join(required_keys))
        raise BatchFileError('%s: missing %s (has %s); expected %s'
                             % (path, ', '.join(missing), ', '.join(sorted(batch)) or 'nothing',
                                expected))
    _check_arrays(path, batch)
    if SENT in batch:
        batch[SENT] = _decode_bytes(batch[SENT])
    return batch


def count_batches(folder, prefix):
    """n of the files {prefix}_0.npz .. {prefix}_{n-1}.npz in folder. BatchFileError for a
    missing folder, no such files, or a gap followed by higher-numbered files (counting
    stopped at the first gap in the original, silently leaving those out)."""
    if not os.path.isdir(folder):
        raise BatchFileError('data reader: folder %s does not exist (prefix "%s")'
                             % (folder, prefix))
    names = set(os.listdir(folder))
    pattern = re.compile(r'%s_(\d+)\.npz' % re.escape(prefix))
    numbers = sorted({n for n in (int(m.group(1)) for m in map(pattern.fullmatch, names) if m)
                      if '%s_%d.npz' % (prefix, n) in names})  # not unc_train_05.npz
    num_batch = 0
    while num_batch < len(numbers) and numbers[num_batch] == num_batch:
        num_batch += 1
    if num_batch < len(numbers):
        later = ['%s_%d.npz' % (prefix, n) for n in numbers[num_batch:]]
        raise BatchFileError(
            'data reader: %s is missing but %s; batch files are numbered 0, 1, ... without gaps '
            '(rerun build_batches.py: it writes the missing files and keeps the others)'
            % (os.path.join(folder, '%s_%d.npz' % (prefix, num_batch)),
               '%s exists' % later[0] if len(later) == 1 else
               '%s .. %s (%d files) exist' % (later[0], later[-1], len(later))))
    if num_batch == 0:
        raise BatchFileError('data reader: no batches under %s with prefix "%s" (expected '
                             'files %s_0.npz, %s_1.npz, ...)' % (folder, prefix, prefix, prefix))
    return num_batch


class _LoadError:
    """Carries an exception from the prefetch thread to read_batch()."""

    def __init__(self, exc):
        self.exc = exc


class DataReader:
    """Endless, optionally shuffled stream of batch dicts from `{folder}/{prefix}_{n}.npz`.

    Attributes: num_batch (files found), n_batch (position in the current epoch),
    n_epoch (completed epochs). `seed` fixes the shuffle order (the original used numpy's
    global RNG). Call close() (or use `with`) to stop the prefetch thread early. BatchFileError:
    from the constructor for the folder (count_batches), from read_batch for a file
    (load_batch); after one, read_batch raises it again.

    Sharding, for data-parallel training on several workers: the file stream is cut into global
    batches of `global_batch` files, and shard k of `num_shards` reads only the k-th equal part
    of each, so that the workers (same seed) together read every global batch once.

    `start`: the position in the stream (over epochs, all shards' files counted) to begin at,
    e.g. step x global batch for a resumed run: the stream goes on exactly as a reader begun at
    0 with the same seed would have gone on (the skipped epochs' orders are drawn, not read).

    `order` (without shuffle): the file numbers of an epoch in the order to read them (test
    mode's picture by picture, picture_order); default 0, 1, ..., num_batch - 1.
    """

    def __init__(self, folder_name, prefix, shuffle=True, prefetch_num=8, seed=None,
                 required_keys=REQUIRED_KEYS, shard=0, num_shards=1, global_batch=1, start=0,
                 order=None):
        self.folder_name = folder_name
        self.prefix = prefix
        self.shuffle = shuffle
        self.prefetch_num = prefetch_num
        self.required_keys = tuple(required_keys)
        self.start = int(start)
        self.n_batch = 0
        self.n_epoch = 0
        self.last_path = None  # the file of the batch read_batch returned last
        self._error = None

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
        num_batch = count_batches(folder_name, prefix)
        print('found %d batches under %s with prefix "%s"' % (num_batch, folder_name, prefix))
        self.num_batch = num_batch
        if order is not None and (shuffle or sorted(order) != list(range(num_batch))):
            raise ValueError('data reader: order must be a permutation of the %d files, '
                             'without shuffle' % num_batch)
        self.order = np.arange(num_batch) if order is None else np.asarray(order)

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
            order = self._rng.permutation(self.num_batch) if self.shuffle else self.order
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
                if not self._put((position, batch_id, item)) or isinstance(item, _LoadError):
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
        position, batch_id, item = self._queue.get(block=True)
        self.last_path = self.batch_path(batch_id)
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
