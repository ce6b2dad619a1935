"""Ref-YouTube-VOS, and Ref-DAVIS17 in the same layout: training samples (one per expression and
annotated frame whose mask is not empty) and the whole-video queries of a split.

Release files (root: the Ref-YouTube-VOS release, as the competition distributes it):
  meta_expressions/{train,valid}/meta_expressions.json
      {"videos": {video: {"expressions": {exp_id: {"exp": sentence, "obj_id": "1"}},
                          "frames": [frame names without extension]}}}
  train/meta.json                    {"videos": {video: {"objects": {obj_id: {"category",
                                     "frames"}}}}}: an expression whose object is not in it is
                                     skipped
  {train,valid}/JPEGImages/<video>/<frame>.jpg
  train/Annotations/<video>/<frame>.png   palette PNG, pixel value = object id; only the listed
                                     frames (every 5th frame of the video) are annotated, and a
                                     listed frame without its PNG has no ground truth
Splits: train, valid (no public masks: its queries have none).

Ref-DAVIS17 (davis_samples, davis_queries; root: the converted release) is read in the layout
ReferFormer's tools/data/convert_davis_to_ytvos.py (github:wjn922/ReferFormer at 06fc218f)
converts DAVIS 2017 and the text annotations of Khoreva et al. to: the same files, with
{train,valid}/meta.json, {train,valid}/Annotations from DAVIS's Annotations_unsupervised/480p
(every frame annotated; 255 is void, never an object: VideoQuery.void) and the frames 00000,
00001, ... Each object has four expressions, listed in turn: annotator 1 first-frame, annotator 1
full-video, annotator 2 first-frame, annotator 2 full-video (exp_ids "0", "1", ...). The
annotator of an expression is its position in the video's list modulo 4 (ANNOTATORS), as
ReferFormer's inference_davis.py groups them (`obj_id * 4 + anno_id`, one result folder
anno_{k} each).

Frames are taken in sorted order of their names, as ReferFormer sorts each video's frame list;
the names are kept (a submission names its masks after them). A frame's frame_id is its 1-based
position in that order, and its clip is batches.clip_window of it over the video's frames.
Sentences are tokenised as A2D's (a2d.query_words). Quirks of the files are counted in `counts`
(a Counter), not a crash: frames not listed in sorted order (sorted), an expression whose object
or video is not in meta.json, a listed frame without its annotation PNG, an empty expression,
all-zero masks (the object is out of view). Malformed files are one-line errors naming the file:
a missing JSON key, a listed frame without its image, an annotation PNG that is not a palette or
grey image, or of another size than its frame.
"""

import functools
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from util.datasets.a2d import query_words
from util.datasets.batches import ClipEntry, clip_window
from util.io import load_json

NAME = 'ref_youtube_vos'
DAVIS_NAME = 'ref_davis17'
SPLITS = ('train', 'valid')
# Ref-DAVIS17's expression sets, in the order the converted meta_expressions lists them per object.
ANNOTATORS = ('annotator 1, first frame', 'annotator 1, full video',
              'annotator 2, first frame', 'annotator 2, full video')
EXPRESSION_KEYS = ('exp', 'obj_id')
VOID = 255  # DAVIS's void pixels: scored as neither object nor background (video_metrics)


class FrameCache:
    """What the queries of one video read of a frame's ground truth (an annotation PNG, a
    decoded RLE, the frame's size), kept while that frame is asked for: scored frame after
    frame, each file is read once for all the video's expressions, and only one frame's worth
    is held (a cache per video, not of the dataset)."""

    def __init__(self):
        self.frame, self.items = None, {}

    def get(self, frame, key, read):
        """read() the first time `key` of `frame` is asked for, its result after that."""
        if frame != self.frame:
            self.frame, self.items = frame, {}
        if key not in self.items:
            self.items[key] = read()
        return self.items[key]

    def clear(self):
        self.frame, self.items = None, {}


@dataclass
class VideoQuery:
    """One expression of a video as whole-video test mode reads it: sent (lower case, as
    sent_batch) and text (tokenised); frames, the frame names in order (the names of the
    submission's masks), and frame_paths their images; annotator, the index in ANNOTATORS
    (Ref-DAVIS17 only); load_mask(frame name) -> bool [h, w] or None (frame not annotated), None
    when the split has no masks; load_void likewise, the void pixels (Ref-DAVIS17 only); cache,
    the FrameCache the loaders of the video's queries share (forget() empties it). Errors name
    `what`."""
    video: str
    exp_id: str
    sent: str
    text: str
    frames: list
    frame_paths: list
    what: str
    annotator: int = None
    load_mask: Callable = None
    load_void: Callable = None
    cache: FrameCache = None

    @property
    def has_masks(self):
        return self.load_mask is not None

    def mask(self, k):
        """The ground truth of frames[k] (bool [h, w]), or None: no masks in the split, or this
        frame is not annotated."""
        return None if self.load_mask is None else self.load_mask(self.frames[k])

    def void(self, k):
        """The void pixels of frames[k] (bool [h, w], Ref-DAVIS17), or None."""
        return None if self.load_void is None else self.load_void(self.frames[k])

    def forget(self):
        """Drops the frame the video's cache holds (the video is done)."""
        if self.cache is not None:
            self.cache.clear()


# -- the files shared with MeViS (one JSON layout, frames as JPEGImages/<video>/<frame>.jpg)

def key(d, name, path, where):
    """d[name], or a one-line ValueError naming the file and where in it the key is missing."""
    if not isinstance(d, dict) or name not in d:
        raise ValueError('%s: %s has no "%s" key' % (path, where, name))
    return d[name]


def read_meta_expressions(path, expression_keys=EXPRESSION_KEYS):
    """{video: {"expressions": {exp_id: {...}}, "frames": [...]}} of a meta_expressions.json, in
    the file's order, every key checked (each expression has expression_keys)."""
    if not os.path.isfile(path):
        raise FileNotFoundError('%s: meta_expressions.json not found' % path)
    videos = key(load_json(path), 'videos', path, 'the file')
    if not isinstance(videos, dict):
        raise ValueError('%s: "videos" is a %s, expected {video: {...}}'
                         % (path, type(videos).__name__))
    for video, entry in videos.items():
        where = 'video %s' % video
        expressions = key(entry, 'expressions', path, where)
        frames = key(entry, 'frames', path, where)
        if not isinstance(frames, list) or not all(isinstance(f, str) for f in frames):
            raise ValueError('%s: %s: "frames" is not a list of frame names' % (path, where))
        if not isinstance(expressions, dict):
            raise ValueError('%s: %s: "expressions" is not {exp_id: {...}}' % (path, where))
        for exp_id, e in expressions.items():
            for k in expression_keys:
                key(e, k, path, '%s expression %s' % (where, exp_id))
    return videos


def sorted_frames(listed, path, video, counts):
    """The frame names in sorted order (ReferFormer's: sorted(vid_data['frames'])); a list not
    in that order is counted, a name listed twice is an error."""
    frames = sorted(listed)
    for a, b in zip(frames, frames[1:]):
        if a == b:
            raise ValueError('%s: video %s lists frame %s twice' % (path, video, a))
    if frames != list(listed):
        counts['frames not listed in sorted order (sorted)'] += 1
    return frames


def frame_paths(image_dir, video, frames, listed_in):
    """JPEGImages/<video>/<frame>.jpg of each frame; FileNotFoundError naming the first missing
    one (listed_in: the file that lists them)."""
    folder = os.path.join(image_dir, video)
    present = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    paths = [os.path.join(folder, f + '.jpg') for f in frames]
    for f, p in zip(frames, paths):
        if f + '.jpg' not in present:
            raise FileNotFoundError('%s: frame %s of video %s (listed in %s) not found'
                                    % (p, f, video, listed_in))
    return paths


def clip_paths(paths, frame_id):
    """The CLIP_FRAMES image paths of the clip of frame frame_id (1-based) of a video."""
    return [paths[i - 1] for i in clip_window(frame_id, len(paths))]


def image_size(path):
    """(h, w) of an image, from its header."""
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except (OSError, UnidentifiedImageError) as e:
        raise ValueError('%s: not a readable image (%s)' % (path, e)) from None


# -- Ref-YouTube-VOS / Ref-DAVIS17

def meta_expressions_path(root, split):
    return os.path.join(root, 'meta_expressions', split, 'meta_expressions.json')


def read_label(path, frame_path):
    """The object ids uint8 [h, w] of an annotation PNG (its palette indices), checked against
    the size of its frame's image."""
    try:
        with Image.open(path) as im:
            if im.mode not in ('P', 'L'):
                raise ValueError('%s: annotation PNG in mode %s; expected a palette (P) or grey '
                                 'PNG whose values are object ids' % (path, im.mode))
            label = np.array(im)  # [h, w] uint8
    except (OSError, UnidentifiedImageError) as e:
        raise ValueError('%s: not a readable annotation PNG (%s)' % (path, e)) from None
    size = image_size(frame_path)
    if label.shape != size:
        raise ValueError('%s: annotation is %dx%d, its frame %s is %dx%d'
                         % (path, label.shape[1], label.shape[0], frame_path, size[1], size[0]))
    return label


def frame_label(anno_dir, image_dir, frame):
    """The object ids uint8 [h, w] of `frame` (read_label), None without a PNG."""
    png = os.path.join(anno_dir, frame + '.png')
    if not os.path.isfile(png):
        return None
    return read_label(png, os.path.join(image_dir, frame + '.jpg'))


def label_mask(cache, anno_dir, image_dir, value, frame):
    """bool [h, w]: where the annotation PNG of `frame` holds `value` (an object id, or VOID);
    None without a PNG. The PNG is read once per frame for the whole video (cache)."""
    label = cache.get(frame, 'label', lambda: frame_label(anno_dir, image_dir, frame))
    return None if label is None else label == value


def object_id(e, path, video, exp_id):
    obj = key(e, 'obj_id', path, 'video %s expression %s' % (video, exp_id))
    try:
        return int(obj)
    except (TypeError, ValueError):
        raise ValueError('%s: video %s expression %s: obj_id %r is not a number'
                         % (path, video, exp_id, obj)) from None


def annotators_of(expressions, path, video):
    """Ref-DAVIS17: the annotator (index in ANNOTATORS) of each exp_id, its position in the list
    modulo 4; the list must hold 4 expressions per object, each 4 of one object."""
    ids = list(expressions)
    if len(ids) % len(ANNOTATORS):
        raise ValueError('%s: video %s has %d expressions; Ref-DAVIS17 has %d per object (%s)'
                         % (path, video, len(ids), len(ANNOTATORS), '; '.join(ANNOTATORS)))
    for k in range(0, len(ids), len(ANNOTATORS)):
        objs = {str(object_id(expressions[i], path, video, i))
                for i in ids[k:k + len(ANNOTATORS)]}
        if len(objs) != 1:
            raise ValueError('%s: video %s expressions %s should refer to one object (one per '
                             'annotator), not %s' % (path, video, ', '.join(ids[k:k + 4]),
                                                     ', '.join(sorted(objs))))
    return {i: k % len(ANNOTATORS) for k, i in enumerate(ids)}


def read_objects(path):
    """{video: set of object ids} of a meta.json."""
    if not os.path.isfile(path):
        raise FileNotFoundError('%s: meta.json not found' % path)
    videos = key(load_json(path), 'videos', path, 'the file')
    return {v: set(key(entry, 'objects', path, 'video %s' % v)) for v, entry in videos.items()}


def _samples(root, split, num_words, counts, davis, progress, frame_stride):
    meta = meta_expressions_path(root, split)
    videos = read_meta_expressions(meta)
    objects = read_objects(os.path.join(root, split, 'meta.json'))
    image_dir = os.path.join(root, split, 'JPEGImages')
    for video in progress(list(videos)):
        expressions = videos[video]['expressions']
        annotator = annotators_of(expressions, meta, video) if davis else {}
        if video not in objects:
            counts['video missing from meta.json (skipped)'] += 1
            continue
        frames = sorted_frames(videos[video]['frames'], meta, video, counts)
        paths = frame_paths(image_dir, video, frames, meta)
        anno_dir = os.path.join(root, split, 'Annotations', video)
        labels = {}  # frame_id -> object ids [h, w], each PNG read once for all expressions
        for k, (frame, path) in enumerate(zip(frames, paths), 1):
            if (k - 1) % frame_stride:
                continue
            png = os.path.join(anno_dir, frame + '.png')
            if os.path.isfile(png):
                labels[k] = read_label(png, path)
            else:
                counts['listed frame without an annotation .png (skipped)'] += 1
        for exp_id, e in expressions.items():
            obj = object_id(e, meta, video, exp_id)
            if str(e['obj_id']) not in objects[video]:
                counts['expression of an object missing from meta.json (skipped)'] += 1
                continue
            sent, text = query_words(e['exp'], num_words)
            what = '%s, video %s expression %s' % (meta, video, exp_id)
            if exp_id in annotator:
                what += ' (%s)' % ANNOTATORS[annotator[exp_id]]
            if not text:
                counts['empty expression (skipped)'] += 1
                continue
            for frame_id, label in labels.items():
                mask = label == obj  # [h, w]
                if not mask.any():
                    counts['all-zero mask (skipped)'] += 1
                    continue
                yield split, ClipEntry(
                    sent=sent, text=text, frame_id=frame_id, mask=mask,
                    frame_paths=clip_paths(paths, frame_id), what=what)


def _queries(root, split, num_words, counts, davis):
    meta = meta_expressions_path(root, split)
    videos = read_meta_expressions(meta, ('exp',))  # valid's expressions hide their obj_id
    image_dir = os.path.join(root, split, 'JPEGImages')
    has_masks = os.path.isdir(os.path.join(root, split, 'Annotations'))
    out = []
    for video, entry in videos.items():
        expressions = entry['expressions']
        annotator = annotators_of(expressions, meta, video) if davis else {}
        frames = sorted_frames(entry['frames'], meta, video, counts)
        paths = frame_paths(image_dir, video, frames, meta)
        anno_dir = os.path.join(root, split, 'Annotations', video)
        cache = FrameCache() if has_masks else None  # shared by the video's expressions
        for exp_id, e in expressions.items():
            sent, text = query_words(e['exp'], num_words)
            load = void = None
            if has_masks:
                load = functools.partial(label_mask, cache, anno_dir,
                                         os.path.join(image_dir, video),
                                         object_id(e, meta, video, exp_id))
                if davis:
                    void = functools.partial(label_mask, cache, anno_dir,
                                             os.path.join(image_dir, video), VOID)
            out.append(VideoQuery(video=video, exp_id=exp_id, sent=sent, text=text,
                                  frames=frames, frame_paths=paths, annotator=annotator.get(exp_id),
                                  load_mask=load, load_void=void, cache=cache,
                                  what='%s, video %s expression %s' % (meta, video, exp_id)))
    return out


def samples(root, split, num_words, counts, progress=iter, frame_stride=1):
    """(split, ClipEntry) of every Ref-YouTube-VOS training sample: videos and expressions in
    the file's order, then frames in order; progress wraps the videos (e.g. a tqdm);
    frame_stride N keeps frames 1, N + 1, 2N + 1, ... of each video."""
    return _samples(root, split, num_words, counts, False, progress, frame_stride)


def queries(root, split, num_words, counts):
    """[VideoQuery] of every expression of a Ref-YouTube-VOS split, in the file's order; with
    masks when {split}/Annotations exists (train), without (valid)."""
    return _queries(root, split, num_words, counts, davis=False)


def davis_samples(root, split, num_words, counts, progress=iter, frame_stride=1):
    """samples of Ref-DAVIS17 in ReferFormer's converted layout (4 expressions per object;
    `what` names the annotator)."""
    return _samples(root, split, num_words, counts, True, progress, frame_stride)


def davis_queries(root, split, num_words, counts):
    """queries of Ref-DAVIS17, each with its annotator (index in ANNOTATORS)."""
    return _queries(root, split, num_words, counts, davis=True)
