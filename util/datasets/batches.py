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
    sent_batch  str   [1]  the expression      image_id    str   [1]  the clip's: <video
    image_id    str   [1]  the picture's                   folder>/<annotated frame file>
                identity (added by the port)   and the clip, in one of three layouts (LAYOUTS):
  FRAMES_ONCE (the default)  frame_files str [16]  the clip's frames, files of the split's frame
                             store, relative to the split folder: frames/<video folder>/<frame
                             file>.npz, each holding frame uint8 [h, w, 3] (RGB), written once
                             for all the samples whose clips show it
  IN_SAMPLE (this port's default before the frame store, read only)
                             frames uint8 [CLIP_FRAMES, h, w, 3] RGB, compressed
  ORIGINAL (the original's)  frames, and im_batch uint8 [h, w, 3] = frames[ANNOTATED_FRAME];
                             no image_id; uncompressed (np.savez)
util/data_reader.load_batch reads all three as one: frames [16, h, w, 3] (from the frame store
when the file names its frames) and im_batch = frames[ANNOTATED_FRAME].
image_id, written by this port's builders, tells which files share a picture (test mode runs
the backbone once per picture, util/pipeline/evaluate.picture_order); the original's files,
without it, are grouped by their image's bytes.
Training splits (names containing 'train' for images, 'train' for video) are resized and
zero-padded to a square side (INPUT_SIZE, 320): the image or each frame as uint8
(img_as_ubyte of resize_and_pad), the mask as float then > 0; other splits keep the image's
size. A grey image is tiled to 3 channels. A frame is stored the same whichever sample shows it
(stored_frame), so a frame store holds exactly the arrays the clips held.

The clip geometry: the clip of an annotated frame f (numbered from 1, as A2D's) is the frames
[f - 8, f + 8) clamped to the video (clip_window), so the annotated frame is at index
ANNOTATED_FRAME = 8 of the CLIP_FRAMES = 16.

Writing (SplitWriter): each file goes to a hidden temporary name in the folder and is renamed
when complete (util/io.save_npz_atomic), so a killed build leaves no truncated file under a final
name; a rerun resumes (existing files kept, stale temporaries removed). The folder's manifest
(a JSON file named by the builder) records the build's settings; a rerun with other settings is
refused unless overwrite (check_build_manifest); a video folder's manifest records its layout.
A frame file is written the same way, before the samples that name it, and a rerun writes the
frame files that are missing, a kept sample's too (FrameStore).

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
from PIL import Image
from tqdm import tqdm

from util import im_processing, text_processing
from util.io import file_sha1, remove_stale_temps, save_npz_atomic, write_json
from util.pipeline import contract

# -- the keys, dtypes and shapes
TEXT, IMAGE, MASK, SENT = 'text_batch', 'im_batch', 'mask_batch', 'sent_batch'
FRAMES, FRAME_ID = 'frames', 'frame_id'
IMAGE_ID = 'image_id'  # optional: which files share a picture
FRAME_FILES = 'frame_files'  # a video sample's frames in the frame store (FRAMES_ONCE)
FRAME = 'frame'              # the array of a frame file
IMAGE_KEYS = (TEXT, IMAGE, MASK, SENT)
# im_batch of a video sample is frames[ANNOTATED_FRAME] and may be left out, and frames may be
# named by frame_files instead: load_batch adds both.
VIDEO_KEYS = (TEXT, FRAMES, MASK, SENT)
# What a file must hold, as util/data_reader.py's error messages state it.
SPECS = {TEXT: 'integer [T]', IMAGE: 'uint8 [h, w, 3] or [h, w]',
         MASK: 'bool or numeric [h, w], the h, w of im_batch',
         SENT: 'str or bytes, non-empty (the sentence at [0])',
         FRAMES: 'uint8 [16, h, w, 3], the h, w of mask_batch',
         IMAGE_ID: 'str [1], the identity of the picture',
         FRAME_FILES: 'str [16], files of the frame store relative to the split folder',
         FRAME: 'uint8 [h, w, 3], the size of the clip\'s other frames'}
T = 20            # words per expression
INPUT_SIZE = 320  # side of the training images and frames
# The settings manifests in a split folder (their names are the original builders').
IMAGE_MANIFEST = '.build_batches.json'
VIDEO_MANIFEST = '.build_a2d_batches.json'

# -- the layouts of a video split (the `layout` of its manifest)
LAYOUT = 'layout'
FRAMES_ONCE = 'frames once'          # frame_files, each frame in the frame store once
IN_SAMPLE = 'frames in each sample'  # frames in every sample file (read only)
ORIGINAL = 'original'                # frames and im_batch in every sample, uncompressed
LAYOUTS = (FRAMES_ONCE, IN_SAMPLE, ORIGINAL)
FRAME_STORE = 'frames'               # the frame store's folder in a split folder

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


def stored_mask(mask, train, size):
    """A mask [h, w] as a sample stores it: bool, resized and padded to size x size (as float,
    then > 0) for a training split."""
    mask = mask.astype(np.float32)  # [h, w]
    if train:
        mask = im_processing.resize_and_pad(mask, size, size)  # [size, size] float
    return mask > 0


def stored_image(im, mask, train, size):
    """(im uint8 [h, w, 3], mask bool [h, w]) as an image sample stores them: resized and padded
    to size x size for a training split, grey tiled to RGB."""
    if train:
        im = skimage.img_as_ubyte(im_processing.resize_and_pad(im, size, size))  # [size, size(, 3)]
    return im_processing.as_rgb(im), stored_mask(mask, train, size)  # [h, w, 3], [h, w]


def stored_frame(im, train, size):
    """A video frame [h, w(, 3)] as a video sample stores it, whichever sample shows it: uint8
    [h, w, 3] RGB, resized and padded to size x size for a training split."""
    im = im_processing.as_rgb(im)
    if train:
        im = skimage.img_as_ubyte(im_processing.resize_and_pad(im, size, size))
    return im.astype(np.uint8)  # [h, w, 3]


def image_sample(words, im, mask, sent, image_id=None):
    """The arrays of one image sample file (IMAGE_KEYS, and image_id when known), from
    stored_image's im and mask."""
    arrays = {TEXT: np.asarray(words, np.int64), IMAGE: im, MASK: mask, SENT: [sent]}
    if image_id is not None:
        arrays[IMAGE_ID] = [str(image_id)]
    return arrays


def clip_sample(words, mask, sent, frame_id, image_id, frames=None, frame_files=None,
                original_layout=False):
    """The arrays of one video sample file: the clip as frame_files (FRAMES_ONCE) or as frames
    uint8 [16, h, w, 3] (IN_SAMPLE); original_layout (ORIGINAL, with frames) leaves out image_id
    and adds im_batch, the annotated frame, as the original wrote it."""
    arrays = {TEXT: np.asarray(words, np.int64), MASK: mask, SENT: [sent],
              FRAME_ID: np.int64(frame_id)}
    if frame_files is not None:
        arrays[FRAME_FILES] = np.asarray(frame_files, str)
    else:
        arrays[FRAMES] = frames
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
        if 'original_layout' in old:  # a video manifest from before the frame store
            old.setdefault(LAYOUT, ORIGINAL if old['original_layout'] else IN_SAMPLE)
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
    frame_paths the CLIP_FRAMES frame images of clip_window, <video folder>/<frame file> (the
    video folders' names unique in a split: they name the frame store's folders); errors name
    `what`."""
    sent: str
    text: str
    frame_id: int
    mask: np.ndarray
    frame_paths: list
    what: str


def source_name(frame_path):
    """'<video folder>/<frame file>' of a frame image: a clip's image_id (its annotated frame's)
    and, as .npz, its name in the frame store."""
    return '/'.join(os.path.normpath(frame_path).split(os.sep)[-2:])


def frame_file(frame_path):
    """A frame image's file in its split's frame store, relative to the split folder (what
    frame_files holds): frames/<video folder>/<frame file>.npz."""
    return '%s/%s.npz' % (FRAME_STORE, os.path.splitext(source_name(frame_path))[0])


def frame_size(path):
    """(h, w) of a frame image, from its header."""
    if not os.path.isfile(path):
        raise FileNotFoundError('%s: frame not found' % path)
    with Image.open(path) as im:
        return im.size[::-1]


def read_frame(path, size):
    """A frame image as the original read it (skimage.io.imread), [h, w(, 3)]; ValueError
    unless it is (h, w) `size`, the clip's annotated frame's."""
    if not os.path.isfile(path):
        raise FileNotFoundError('%s: frame not found' % path)
    im = skimage.io.imread(path)
    if im.shape[:2] != tuple(size):
        raise ValueError('%s: frame is %s, the annotated frame of its clip %s'
                         % (path, list(im.shape[:2]), list(size)))
    return im


class FrameStore:
    """The frame store of a split folder (FRAMES_ONCE): frames/<video folder>/<frame>.npz, each
    written once (atomically, compressed; key `frame`, stored_frame's array) for all the samples
    that show it. A frame file that exists is kept unless overwrite, which rewrites each frame
    once. `written` counts the files written, `kept` those found."""

    def __init__(self, folder, overwrite=False):
        self.folder, self.overwrite = folder, overwrite
        self.done = set()     # names written or found in this run
        self.videos = set()   # video folders made and cleaned of stale temporaries
        self.written = self.kept = 0

    def path(self, name):
        return os.path.join(self.folder, *name.split('/'))

    def missing(self, names):
        """The names, without repeats, whose files are to be written in this run."""
        todo = []
        for name in dict.fromkeys(names):
            if name in self.done:
                continue
            video = os.path.dirname(self.path(name))
            if video not in self.videos:
                os.makedirs(video, exist_ok=True)
                remove_stale_temps(video)
                self.videos.add(video)
            if not self.overwrite and os.path.isfile(self.path(name)):
                self.done.add(name)
                self.kept += 1
            else:
                todo.append(name)
        return todo

    def save(self, name, frame):
        save_npz_atomic(self.path(name), **{FRAME: frame})
        self.done.add(name)
        self.written += 1


class ClipWriter(SplitWriter):
    """The writer of a video split in one of LAYOUTS but IN_SAMPLE (no longer written): its
    manifest records the layout; `frames` is the FrameStore with FRAMES_ONCE, else None."""

    def __init__(self, out, dataset, split, settings, layout=FRAMES_ONCE, overwrite=False):
        if layout not in (FRAMES_ONCE, ORIGINAL):
            raise ValueError('layout must be %r or %r, got %r' % (FRAMES_ONCE, ORIGINAL, layout))
        super().__init__(out, dataset, split, VIDEO_MANIFEST, dict(settings, **{LAYOUT: layout}),
                         overwrite=overwrite, compressed=layout != ORIGINAL)
        self.layout = layout
        self.frames = FrameStore(self.folder, overwrite) if layout == FRAMES_ONCE else None


def write_clip(writer, entry, vocab_dict, num_words, train, size):
    """Write the next sample of a video split (numbered as they come) unless it exists, in the
    ClipWriter's layout. With the frame store, its frames are written first, each once, and
    also for a kept sample: a rerun restores a missing frame file."""
    n, writer.n = writer.n, writer.n + 1
    todo = writer.todo(n)
    names = [frame_file(p) for p in entry.frame_paths] if writer.frames else None
    new = writer.frames.missing(names) if writer.frames else []
    if not todo and not new:
        return
    size_hw = frame_size(entry.frame_paths[ANNOTATED_FRAME])
    if todo:
        if entry.mask.shape != size_hw:
            raise ValueError('%s: mask of frame %d is %s, the frames are %s'
                             % (entry.frame_paths[ANNOTATED_FRAME], entry.frame_id,
                                list(entry.mask.shape), list(size_hw)))
        try:
            words = encode(entry.text, vocab_dict, num_words)
        except ValueError as e:
            raise ValueError('%s: %s' % (entry.what, e)) from None
    if writer.frames:
        path_of = dict(zip(names, entry.frame_paths))
        for name in new:
            writer.frames.save(name, stored_frame(read_frame(path_of[name], size_hw), train, size))
        clip = {'frame_files': names}
    else:
        stored = {p: stored_frame(read_frame(p, size_hw), train, size)
                  for p in dict.fromkeys(entry.frame_paths)}  # a clamped clip repeats frames
        clip = {'frames': np.stack([stored[p] for p in entry.frame_paths]),  # [16, h, w, 3]
                'original_layout': writer.layout == ORIGINAL}
    if todo:
        writer.save(n, clip_sample(words, stored_mask(entry.mask, train, size), entry.sent,
                                   entry.frame_id, source_name(entry.frame_paths[ANNOTATED_FRAME]),
                                   **clip))
        writer.written += 1
