"""The batch format, once: what one stored sample holds, where it is written, how it is written,
and how a stored sample becomes a training input.

A split of a dataset is the folder {out}/{dataset}/{split}_batch/ of files
{dataset}_{split}_{n}.npz, n = 0, 1, ... without gaps (the original's layout; DataReader
counts them the original's way). One file is one referring expression (image) or one
(query, annotated frame) pair (video):

  image sample (IMAGE_KEYS)                  video sample (VIDEO_KEYS, + FRAME_ID)
    text_batch  int64 [T]  word ids,           text_batch  int64 [T]
                left-padded with <pad> (0)     mask_batch  bool  [h, w]  the annotated frame's
    im_batch    uint8 [h, w, 3] RGB            sent_batch  str   [1]
    mask_batch  bool  [h, w]                   frame_id    int64 []  annotated frame (from 1)
    sent_batch  str   [1]  the expression      frames      uint8 [CLIP_FRAMES, h, w, 3] RGB
    image_id    str   [1]  the picture's       image_id    str   [1]  the clip's: <video
                identity (added by the port)               folder>/<annotated frame file>
                                               im_batch    only in the original's layout:
                                                           frames[ANNOTATED_FRAME]
image_id, written by this port's builders, tells which files share a picture (test mode runs
the backbone once per picture, util/pipeline/evaluate.picture_order); the original's files,
without it, are grouped by their image's bytes.
Training splits (names containing 'train' for images, 'train' for video) are resized and
zero-padded to a square side (INPUT_SIZE, 320): the image or each frame as uint8
(img_as_ubyte of resize_and_pad), the mask as float then > 0; other splits keep the image's
size. A grey image is tiled to 3 channels.

The clip geometry: the clip of an annotated frame f (numbered from 1, as A2D's) is the frames
[f - 8, f + 8) clamped to the video (clip_window), so the annotated frame is at index
ANNOTATED_FRAME = 8 of the CLIP_FRAMES = 16.

Writing (SplitWriter): each file goes to a hidden temporary name in the folder and is renamed
when complete (util/io.save_npz_atomic), so a killed build leaves no truncated file under a final
name; a rerun resumes (existing files kept, stale temporaries removed). The folder's manifest
(a JSON file named by the builder) records the build's settings; a rerun with other settings is
refused unless overwrite (check_build_manifest).

Reading: util/data_reader.py loads and checks a file (SPECS); train_input turns it into what the
network trains on, through util/pipeline/contract.py (the network's numpy contract: BGR minus
the Caffe mean, resize-and-pad).
"""

import json
import multiprocessing
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import skimage
import skimage.io
from tqdm import tqdm

from util import im_processing, text_processing
from util.io import file_sha1, remove_stale_temps, save_npz_atomic, write_json
from util.pipeline import contract

# -- the keys, dtypes and shapes
TEXT, IMAGE, MASK, SENT = 'text_batch', 'im_batch', 'mask_batch', 'sent_batch'
FRAMES, FRAME_ID = 'frames', 'frame_id'
IMAGE_ID = 'image_id'  # optional: which files share a picture
IMAGE_KEYS = (TEXT, IMAGE, MASK, SENT)
# im_batch of a video sample is frames[ANNOTATED_FRAME] and may be left out (load_batch adds it).
VIDEO_KEYS = (TEXT, FRAMES, MASK, SENT)
# What a file must hold, as util/data_reader.py's error messages state it.
SPECS = {TEXT: 'integer [T]', IMAGE: 'uint8 [h, w, 3] or [h, w]',
         MASK: 'bool or numeric [h, w], the h, w of im_batch',
         SENT: 'str or bytes, non-empty (the sentence at [0])',
         FRAMES: 'uint8 [16, h, w, 3], the h, w of mask_batch',
         IMAGE_ID: 'str [1], the identity of the picture'}
T = 20            # words per expression
INPUT_SIZE = 320  # side of the training images and frames
# The settings manifests in a split folder (their names are the original builders').
IMAGE_MANIFEST = '.build_batches.json'
VIDEO_MANIFEST = '.build_a2d_batches.json'

# -- the clip geometry
CLIP_FRAMES = 16     # frames of a video sample, [annotated - 8, annotated + 8)
ANNOTATED_FRAME = 8  # the annotated frame's index in them


def clip_window(frame_id, num_frames):
    """The clip of an annotated frame (numbered from 1, as A2D's): frame numbers
    [frame - 8, frame + 8) clamped to 1 .. num_frames; the annotated frame is at ANNOTATED_FRAME."""
    return [min(max(i, 1), num_frames)
            for i in range(frame_id - ANNOTATED_FRAME, frame_id + CLIP_FRAMES - ANNOTATED_FRAME)]


# -- names

def split_folder(out, dataset, split):
    return os.path.join(out, dataset, split + '_batch')


def split_prefix(dataset, split):
    return '%s_%s' % (dataset, split)


def batch_path(folder, prefix, n):
    return os.path.join(folder, '%s_%d.npz' % (prefix, n))


# -- one sample's arrays

def encode(text, vocab_dict, num_words):
    """text_batch of a sentence: int64 [T] ids, left-padded (the original's tokenizer)."""
    return np.asarray(text_processing.preprocess_sentence(text, vocab_dict, num_words), np.int64)


def stored_image(im, mask, train, size):
    """(im uint8 [h, w, 3], mask bool [h, w]) as an image sample stores them: resized and padded
    to size x size for a training split, grey tiled to RGB."""
    mask = mask.astype(np.float32)  # [h, w]
    if train:
        im = skimage.img_as_ubyte(im_processing.resize_and_pad(im, size, size))  # [size, size(, 3)]
        mask = im_processing.resize_and_pad(mask, size, size)  # [size, size] float
    return im_processing.as_rgb(im), mask > 0  # [h, w, 3], [h, w]


def stored_clip(frames, mask, train, size):
    """(frames uint8 [16, h, w, 3], mask bool [h, w]) as a video sample stores them; each frame
    as stored_image's."""
    frames = [im_processing.as_rgb(f) for f in frames]
    mask = mask.astype(np.float32)  # [h, w]
    if train:
        frames = [skimage.img_as_ubyte(im_processing.resize_and_pad(f, size, size)) for f in frames]
        mask = im_processing.resize_and_pad(mask, size, size)
    return np.stack(frames).astype(np.uint8), mask > 0  # [16, h, w, 3], [h, w]


def image_sample(words, im, mask, sent, image_id=None):
    """The arrays of one image sample file (IMAGE_KEYS, and image_id when known), from
    stored_image's im and mask."""
    arrays = {TEXT: np.asarray(words, np.int64), IMAGE: im, MASK: mask, SENT: [sent]}
    if image_id is not None:
        arrays[IMAGE_ID] = [str(image_id)]
    return arrays


def clip_sample(words, frames, mask, sent, frame_id, image_id, original_layout=False):
    """The arrays of one video sample file; original_layout leaves out image_id and adds
    im_batch, the annotated frame, as the original wrote it."""
    arrays = {TEXT: np.asarray(words, np.int64), MASK: mask, SENT: [sent],
              FRAME_ID: np.int64(frame_id), FRAMES: frames}
    if original_layout:
        arrays[IMAGE] = frames[ANNOTATED_FRAME]
    else:
        arrays[IMAGE_ID] = [image_id]
    return arrays


# -- a stored sample as the network trains on it

def train_input(batch, H, W, clip=False):
    """A stored sample (util.data_reader.load_batch's dict) as a training input: (words int32
    [T], visual float32 [H, W, 3] -- or the clip [16, H, W, 3] with clip -- BGR minus the mean,
    mask bool [H, W]). A sample stored at another size is resized and padded as it was built.
    The runner's Python and tf.data inputs, the backbone calibration and the benchmark all call
    this one function, so they train on the same arrays."""
    if clip:
        visual, mask = contract.train_clip(batch[FRAMES], batch[MASK], H, W)
    else:
        visual, mask = contract.train_sample(batch[IMAGE], batch[MASK], H, W)
    # float64 - MU in contract; the step takes float32 (the same values the training batch
    # array stored before).
    return np.asarray(batch[TEXT], np.int32), visual.astype(np.float32), mask


# -- writing a split

def check_build_manifest(path, settings, overwrite):
    """A batch builder's record of its settings (JSON at `path`): a folder built with other
    settings is refused (its files would mix) unless overwrite; then `settings` is written."""
    if os.path.isfile(path) and not overwrite:
        with open(path, encoding='utf-8') as f:
            old = json.load(f)
        diff = sorted(k for k in settings if old.get(k) != settings[k])
        if diff:
            raise ValueError('%s was built with other settings (%s: %s, now %s); rerun with '
                             '--overwrite to rebuild it'
                             % (os.path.dirname(path), ', '.join(diff), [old.get(k) for k in diff],
                                [settings[k] for k in diff]))
    write_json(path, settings, sort_keys=True)


class SplitWriter:
    """The one writer of a split folder: checks its manifest, removes stale temporaries, and
    writes sample n atomically unless it exists (resume) or overwrite. `written` counts the
    files written, `n` the samples numbered so far when they are numbered as they come (video)."""

    def __init__(self, out, dataset, split, manifest, settings, overwrite=False, compressed=True):
        self.folder = split_folder(out, dataset, split)
        self.prefix = split_prefix(dataset, split)
        self.overwrite, self.compressed = overwrite, compressed
        os.makedirs(self.folder, exist_ok=True)
        check_build_manifest(os.path.join(self.folder, manifest), settings, overwrite)
        remove_stale_temps(self.folder, self.prefix + '_')
        self.n = self.written = 0

    def path(self, n):
        return batch_path(self.folder, self.prefix, n)

    def todo(self, n):
        """Whether sample n is to be written (missing, or overwrite)."""
        return self.overwrite or not os.path.exists(self.path(n))

    def save(self, n, arrays):
        save_npz_atomic(self.path(n), compressed=self.compressed, **arrays)

    def missing(self, total):
        return [n for n in range(total) if not os.path.isfile(self.path(n))]


# -- image datasets: entries written in parallel

@dataclass
class ImageEntry:
    """What an image dataset module yields: one image and referred object with its expressions,
    numbered consecutively in the order yielded. load() -> (im uint8 [h, w(, 3)], mask [h, w])
    reads the release's files (a module-level function or functools.partial of one: entries go
    to worker processes); errors name `what`. Each sentence is stored as given (sent_batch) and
    tokenised into text_batch. image_id: the picture's identity (stored as image_id)."""
    sents: list
    load: Callable
    what: str
    image_id: str = None


_CFG = {}


def _init_worker(cfg):
    _CFG.clear()
    _CFG.update(cfg)


def _write_entry(job):
    """Write the missing files of one entry; returns how many were written."""
    n0, entry = job
    cfg, writer = _CFG, _CFG['writer']
    todo = [n for n in range(n0, n0 + len(entry.sents)) if writer.todo(n)]
    if not todo:
        return 0
    im, mask = stored_image(*entry.load(), cfg['train'], cfg['size'])
    for n in todo:
        try:
            words = encode(entry.sents[n - n0], cfg['vocab_dict'], cfg['num_words'])
        except ValueError as e:
            raise ValueError('%s, sentence %d: %s' % (entry.what, n - n0, e)) from None
        writer.save(n, image_sample(words, im, mask, entry.sents[n - n0], entry.image_id))
    return len(todo)


def write_image_split(writer, entries, vocab_dict, num_words, train, size, workers=1,
                      progress=True):
    """Write (or resume) an image split from a dataset module's entries; returns (written, kept,
    total). Sample n is the n-th sentence over the entries in order; workers > 1 writes entries
    in that many processes."""
    jobs, n0 = [], 0
    for entry in entries:
        jobs.append((n0, entry))
        n0 += len(entry.sents)
    total = n0
    existing = set() if writer.overwrite else set(os.listdir(writer.folder))
    names = ['%s_%d.npz' % (writer.prefix, n) for n in range(total)]
    pending = [(n0, e) for n0, e in jobs
               if any(names[n] not in existing for n in range(n0, n0 + len(e.sents)))]
    kept = sum(name in existing for name in names)
    cfg = {'writer': writer, 'vocab_dict': vocab_dict, 'num_words': num_words, 'train': train,
           'size': size}
    written = 0
    with tqdm(total=total, initial=kept, unit='expr', desc=writer.prefix, dynamic_ncols=True,
              disable=not progress) as bar:
        if workers <= 1 or len(pending) <= 1:
            _init_worker(cfg)
            for job in pending:
                k = _write_entry(job)
                written += k
                bar.update(k)
        else:
            with multiprocessing.Pool(workers, initializer=_init_worker, initargs=(cfg,)) as pool:
                for k in pool.imap_unordered(_write_entry, pending, chunksize=1):
                    written += k
                    bar.update(k)
    writer.written += written  # counted here: workers write through copies of the writer
    missing = writer.missing(total)
    if missing:
        raise RuntimeError('%s: %d expression files missing after the build (first: %s)'
                           % (writer.folder, len(missing), writer.path(missing[0])))
    return written, kept, total


def build_image_split(out, dataset, split, entries, vocab, num_words=T, input_size=INPUT_SIZE,
                      overwrite=False, compressed=True, workers=1, progress=False):
    """Write (or resume) {out}/{dataset}/{split}_batch/ from an image dataset module's entries,
    with the words of the vocabulary file `vocab`; returns (written, kept, total). Splits whose
    name contains 'train' are resized and padded to input_size. The manifest holds dataset,
    setname, T, input_size, vocab_sha1 and the number of expressions."""
    entries = list(entries)
    settings = {'dataset': dataset, 'setname': split, 'T': num_words, 'input_size': input_size,
                'vocab_sha1': file_sha1(vocab), 'expressions': sum(len(e.sents) for e in entries)}
    writer = SplitWriter(out, dataset, split, IMAGE_MANIFEST, settings, overwrite=overwrite,
                         compressed=compressed)
    vocab_dict = text_processing.load_vocab_dict_from_file(vocab)
    return write_image_split(writer, entries, vocab_dict, num_words, train='train' in split,
                             size=input_size, workers=workers, progress=progress)


def read_image(path, what):
    """An image of a release as the original read it (skimage.io.imread): uint8 [h, w(, 3)]."""
    if not os.path.isfile(path):
        raise FileNotFoundError('%s: image of %s not found' % (path, what))
    return skimage.io.imread(path)


# -- video datasets: samples written as they come

@dataclass
class ClipEntry:
    """What a video dataset module yields: one (query, annotated frame) sample. sent is stored
    in sent_batch, text tokenised into text_batch; mask [h, w] is the annotated frame's;
    frame_paths the CLIP_FRAMES frame images of clip_window; errors name `what`."""
    sent: str
    text: str
    frame_id: int
    mask: np.ndarray
    frame_paths: list
    what: str


def write_clip(writer, entry, vocab_dict, num_words, train, size, original_layout=False):
    """Write the next sample of a video split (numbered as they come) unless it exists."""
    n, writer.n = writer.n, writer.n + 1
    if not writer.todo(n):
        return
    try:
        words = encode(entry.text, vocab_dict, num_words)
    except ValueError as e:
        raise ValueError('%s: %s' % (entry.what, e)) from None
    ims = []
    for fp in entry.frame_paths:
        if not os.path.isfile(fp):
            raise FileNotFoundError('%s: frame not found' % fp)
        ims.append(skimage.io.imread(fp))
    if entry.mask.shape != ims[0].shape[:2]:
        raise ValueError('%s: mask of frame %d is %s, the frames are %s'
                         % (entry.frame_paths[ANNOTATED_FRAME], entry.frame_id,
                            list(entry.mask.shape), list(ims[0].shape[:2])))
    frames, mask = stored_clip(ims, entry.mask, train, size)
    # The clip is the annotated frame's window: '<video folder>/<annotated frame file>' names it.
    image_id = '/'.join(os.path.normpath(entry.frame_paths[ANNOTATED_FRAME]).split(os.sep)[-2:])
    writer.save(n, clip_sample(words, frames, mask, entry.sent, entry.frame_id, image_id,
                               original_layout))
    writer.written += 1
