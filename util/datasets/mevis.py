"""MeViS: training samples (one per expression and frame whose mask is not empty) and the
whole-video queries of a split.

Release files (root: the MeViS release, github:henghuiding/MeViS):
  {train,valid_u,valid}/JPEGImages/<video>/<frame>.jpg
  {train,valid_u,valid}/meta_expressions.json
      {"videos": {video: {"expressions": {exp_id: {"exp": sentence, "obj_id": [..],
                                                   "anno_id": [..]}},
                          "frames": [frame names without extension]}}}
  {train,valid_u}/mask_dict.json     {anno_id: [COCO RLE ({"size": [h, w], "counts"}) or null,
                                     one per frame of the video, in the order "frames" lists
                                     them]}; null: the object is not in that frame
Splits: train, valid_u (with masks), valid (no public masks: its queries have none).

The ground truth of an expression in a frame is the union of the masks of its anno_ids (null
adds nothing), as MeViS's tools/eval_mevis.py and its loaders compute it (at 7c0620b9); obj_id
is not used. Every frame is annotated. Frames, clips, sentences, counts and errors are
Ref-YouTube-VOS's (ref_youtube_vos.py): frames in sorted order of their names (MeViS's loaders
sort them; its evaluation pairs mask_dict's k-th entry with the k-th listed name, so masks follow
the names, whatever the listed order). Also counted: an expression without anno_id (skipped);
errors: an anno_id missing from mask_dict.json, a mask list of another length than the frames,
an RLE of another size than its frame.
"""

import functools
import os

import numpy as np
from pycocotools import mask as coco_mask

from util.datasets.a2d import query_words
from util.datasets.batches import ClipEntry
from util.datasets.ref_youtube_vos import (FrameCache, VideoQuery, clip_paths, frame_paths,
                                           image_size, key, read_meta_expressions, sorted_frames)
from util.io import load_json

NAME = 'mevis'
SPLITS = ('train', 'valid_u', 'valid')
EXPRESSION_KEYS = ('exp', 'anno_id')


def split_files(root, split):
    """(meta_expressions.json, mask_dict.json, JPEGImages folder) of a split."""
    folder = os.path.join(root, split)
    return (os.path.join(folder, 'meta_expressions.json'), os.path.join(folder, 'mask_dict.json'),
            os.path.join(folder, 'JPEGImages'))


def read_mask_dict(path):
    if not os.path.isfile(path):
        raise FileNotFoundError('%s: mask_dict.json not found (the split has no masks?)' % path)
    masks = load_json(path)
    if not isinstance(masks, dict):
        raise ValueError('%s: expected {anno_id: [RLE or null per frame]}' % path)
    return masks


def anno_ids_of(e, masks, mask_path, meta, video, exp_id, num_frames):
    """The expression's anno_ids as mask_dict's keys (str), each checked: present, one entry per
    frame."""
    ids = key(e, 'anno_id', meta, 'video %s expression %s' % (video, exp_id))
    if not isinstance(ids, list):
        ids = [ids]
    ids = [str(a) for a in ids]
    for a in ids:
        if a not in masks:
            raise ValueError('%s: no anno_id %s (of video %s expression %s in %s)'
                             % (mask_path, a, video, exp_id, meta))
        if not isinstance(masks[a], list) or len(masks[a]) != num_frames:
            raise ValueError('%s: anno_id %s has %s masks, video %s has %d frames'
                             % (mask_path, a, len(masks[a]) if isinstance(masks[a], list)
                                else 'no list of', video, num_frames))
    return ids


def decode(rle, size, where):
    """One mask_dict entry as uint8 [h, w] (h, w = size, the frame's); None for null."""
    if not rle:
        return None
    try:
        h, w = rle['size']
        if isinstance(rle['counts'], list):  # uncompressed RLE
            rle = coco_mask.frPyObjects(rle, h, w)
        elif isinstance(rle['counts'], str):
            rle = {'size': [h, w], 'counts': rle['counts'].encode('ascii')}
        m = coco_mask.decode(rle)  # [h, w] uint8
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError('%s: not a COCO RLE (%s: %s)' % (where, type(e).__name__, e)) from None
    if m.shape != tuple(size):
        raise ValueError('%s: mask is %dx%d, the frame %dx%d'
                         % (where, m.shape[1], m.shape[0], size[1], size[0]))
    return m


def union_mask(masks, anno_ids, index, size, where, cached=None):
    """bool [h, w]: the union of the anno_ids' masks at position `index` of mask_dict's lists;
    cached(anno_id, read), when given, stands for read() (the decoding), e.g. a FrameCache's."""
    out = np.zeros(size, bool)
    for a in anno_ids:
        read = functools.partial(decode, masks[a][index], size, '%s, anno_id %s' % (where, a))
        m = read() if cached is None else cached(a, read)
        if m is not None:
            out |= m > 0
    return out


def frame_mask(cache, masks, anno_ids, index_of, frame_dir, mask_path, frame):
    """VideoQuery.load_mask of MeViS: the union mask of `frame` (a name). The frame's size and
    each anno_id's RLE are read once per frame for the whole video (cache): the video's
    expressions share objects."""
    where = '%s, frame %s' % (mask_path, frame)
    size = cache.get(frame, 'size', lambda: image_size(os.path.join(frame_dir, frame + '.jpg')))
    return union_mask(masks, anno_ids, index_of[frame], size, where,
                      lambda a, read: cache.get(frame, ('anno_id', a), read))


def samples(root, split, num_words, counts, progress=iter, frame_stride=1):
    """(split, ClipEntry) of every sample of a split with masks (train, valid_u): videos and
    expressions in the file's order, then frames in order; progress wraps the videos;
    frame_stride N keeps frames 1, N + 1, 2N + 1, ... of each video (every frame of MeViS is
    annotated: one sample per expression and frame is millions on its train split)."""
    meta, mask_path, image_dir = split_files(root, split)
    masks = read_mask_dict(mask_path)
    videos = read_meta_expressions(meta, EXPRESSION_KEYS)
    for video in progress(list(videos)):
        listed = videos[video]['frames']
        frames = sorted_frames(listed, meta, video, counts)
        paths = frame_paths(image_dir, video, frames, meta)
        index_of = {f: i for i, f in enumerate(listed)}  # mask_dict's lists follow the listing
        sizes = [image_size(p) for p in paths]
        for exp_id, e in videos[video]['expressions'].items():
            ids = anno_ids_of(e, masks, mask_path, meta, video, exp_id, len(listed))
            if not ids:
                counts['expression without anno_id (skipped)'] += 1
                continue
            sent, text = query_words(e['exp'], num_words)
            if not text:
                counts['empty expression (skipped)'] += 1
                continue
            for frame_id, (frame, size) in enumerate(zip(frames, sizes), 1):
                if (frame_id - 1) % frame_stride:
                    continue
                mask = union_mask(masks, ids, index_of[frame], size,
                                  '%s, frame %s' % (mask_path, frame))  # [h, w]
                if not mask.any():
                    counts['all-zero mask (skipped)'] += 1
                    continue
                yield split, ClipEntry(
                    sent=sent, text=text, frame_id=frame_id, mask=mask,
                    frame_paths=clip_paths(paths, frame_id),
                    what='%s, video %s expression %s' % (meta, video, exp_id))


def queries(root, split, num_words, counts):
    """[VideoQuery] of every expression of a split, in the file's order; with masks when the
    split has a mask_dict.json (train, valid_u), without (valid)."""
    meta, mask_path, image_dir = split_files(root, split)
    videos = read_meta_expressions(meta, ('exp',))
    masks = read_mask_dict(mask_path) if os.path.isfile(mask_path) else None
    out = []
    for video, entry in videos.items():
        listed = entry['frames']
        frames = sorted_frames(listed, meta, video, counts)
        paths = frame_paths(image_dir, video, frames, meta)
        index_of = {f: i for i, f in enumerate(listed)}
        cache = FrameCache() if masks is not None else None  # shared by the video's expressions
        for exp_id, e in entry['expressions'].items():
            sent, text = query_words(e['exp'], num_words)
            load = None
            if masks is not None:
                ids = anno_ids_of(e, masks, mask_path, meta, video, exp_id, len(listed))
                load = functools.partial(frame_mask, cache, masks, ids, index_of,
                                         os.path.join(image_dir, video), mask_path)
            out.append(VideoQuery(video=video, exp_id=exp_id, sent=sent, text=text,
                                  frames=frames, frame_paths=paths, load_mask=load, cache=cache,
                                  what='%s, video %s expression %s' % (meta, video, exp_id)))
    return out
