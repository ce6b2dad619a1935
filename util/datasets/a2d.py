"""A2D Sentences: one sample per (query, annotated frame whose mask is not empty).

Release files (root: the A2D Sentences release):
  a2d_annotation.txt                 CSV with a header: video id, instance id, query
  Release/videoset.csv               no header: video id first, 0 train / 1 test last
  a2d_annotation_with_instances/<video>/<frame:05d>.h5
                                     `instance` (ids) and `reMask` (masks stored transposed:
                                     [w, h] for one instance, [n, w, h] for several)
  Release/frames/<video>/<frame:05d>.png   1-based; decoded by extract_frames from
  Release/clips320H/<video>.mp4
Splits: train, test (from videoset.csv).

Samples come in the query file's order, then frame order, as the original numbered them; the
clip of a sample is batches.clip_window of its frame. Quirks of the real files are counted in
`counts` (a Counter) instead of a crash: a query row whose instance id is not a number ('1
(copy)': its leading number is used), a video missing from videoset.csv (its queries skipped),
an annotated frame whose .h5 holds one instance with another id than the query's (skipped, or
used with any_id as the original silently did), all-zero masks (skipped, as the original), an
annotated frame past the video's last frame (skipped: the original failed reading it; clamping
its clip would pair the mask with another frame's pixels).

The synthetic video dataset (tools/synthetic_video.py) is written in this release's format, so
this module reads it too.
"""

import csv
import os
import re

import numpy as np
from PIL import Image

from util.datasets.batches import ClipEntry, clip_window
from util.io import atomic_open, load_a2d_masks, remove_stale_temps, video_frames, write_json

NAME = 'a2d_sent_new'
SPLITS = ('train', 'test')
EXTRACTED = '.extracted'  # written in a frame folder once all its frames are there
SENTENCE_SPLIT_REGEX = re.compile(r'(\W+)')


def query_words(query, num_words):
    """(sent, n_sent): the lower-case query as sent_batch holds it, and the original's
    cleaned sentence that is tokenised (split at non-word characters, final '.' dropped, at
    most num_words words)."""
    sent = query.lower()
    words = [w for w in SENTENCE_SPLIT_REGEX.split(sent.strip()) if len(w.strip()) > 0]
    if words and words[-1] == '.':
        words = words[:-1]
    return sent, ' '.join(words[:num_words])


def read_csv_rows(path, what, columns):
    """The rows after the header of a CSV file, each with at least `columns` fields."""
    if not os.path.isfile(path):
        raise FileNotFoundError('%s: %s not found' % (path, what))
    with open(path, newline='', encoding='utf-8') as f:
        rows = list(csv.reader(f))
    body = [r for r in rows[1:] if r]
    for k, r in enumerate(body, 2):
        if len(r) < columns:
            raise ValueError('%s, line %d: expected %d columns, got %r' % (path, k, columns, r))
    return body


def read_videoset(path):
    """{video id: 0 train / 1 test} of Release/videoset.csv (no header; split last)."""
    if not os.path.isfile(path):
        raise FileNotFoundError('%s: Release/videoset.csv not found' % path)
    with open(path, newline='', encoding='utf-8') as f:
        return {r[0]: int(r[-1]) for r in csv.reader(f) if r}


def instance_id_of(text, counts):
    """The query row's instance id; a row like '1 (copy)' gives 1 with a counted warning."""
    try:
        return int(text)
    except ValueError:
        m = re.match(r'\s*(\d+)', text)
        if not m:
            raise ValueError('instance id %r is not a number' % text) from None
        counts['instance id not a number (its leading number used)'] += 1
        return int(m.group(1))


def instance_mask(path, instance_id, any_id, counts):
    """The [h, w] mask of `instance_id` in one annotation .h5 (None when skipped): reMask is
    stored transposed; several matching instances are summed, as the original."""
    ids, masks = load_a2d_masks(path)  # [n], [n, h, w]
    if len(ids) == 1:
        if ids[0] != instance_id:
            counts['one-instance .h5 of another id (%s)'
                   % ('used, --single-instance-any-id' if any_id else 'skipped')] += 1
            if not any_id:
                return None
        return masks[0]
    index = np.flatnonzero(ids == instance_id)
    return masks[index].sum(axis=0) if index.size != 1 else masks[index[0]]


def frame_count(folder):
    """Frames of a video folder: the largest <frame:05d>.png number."""
    if not os.path.isdir(folder):
        raise FileNotFoundError('%s: frame folder not found (run with --extract-frames to decode '
                                'the videos)' % folder)
    ids = [int(n[:-4]) for n in os.listdir(folder) if n.endswith('.png') and n[:-4].isdigit()]
    if not ids:
        raise FileNotFoundError('%s: no <frame:05d>.png frames' % folder)
    return max(ids)


def samples(root, num_words, counts, any_id=False, progress=iter):
    """(split, ClipEntry) of every sample, in the original's order; progress wraps the query
    rows (e.g. a tqdm)."""
    queries = read_csv_rows(os.path.join(root, 'a2d_annotation.txt'), 'A2D query file', 3)
    split_of = read_videoset(os.path.join(root, 'Release', 'videoset.csv'))
    anno_dir = os.path.join(root, 'a2d_annotation_with_instances')
    frame_dir = os.path.join(root, 'Release', 'frames')
    for row in progress(queries):
        video = row[0]
        if video not in split_of:
            counts['query of a video missing from videoset.csv (skipped)'] += 1
            continue
        split = 'test' if split_of[video] == 1 else 'train'
        instance = instance_id_of(row[1], counts)
        sent, text = query_words(row[2], num_words)
        folder = os.path.join(anno_dir, video)
        if not os.path.isdir(folder):
            raise FileNotFoundError('%s: annotation folder not found' % folder)
        num_frames = None
        for name in sorted(os.listdir(folder)):
            if not name.endswith('.h5'):
                continue
            frame_id = int(name[:-3])
            mask = instance_mask(os.path.join(folder, name), instance, any_id, counts)
            if mask is None:
                continue
            if not mask.any():
                counts['all-zero mask (skipped)'] += 1
                continue
            if num_frames is None:
                num_frames = frame_count(os.path.join(frame_dir, video))
            if frame_id > num_frames:  # its clip would show another frame's pixels
                counts["annotated frame past the video's last frame (skipped)"] += 1
                continue
            paths = [os.path.join(frame_dir, video, '%05d.png' % i)
                     for i in clip_window(frame_id, num_frames)]
            yield split, ClipEntry(
                sent=sent, text=text, frame_id=frame_id, mask=mask, frame_paths=paths,
                what='a2d_annotation.txt, video %s instance %s' % (video, row[1]))


def extract_frames(root, overwrite=False, progress=iter):
    """Decodes every Release/clips320H/<video>.mp4 into Release/frames/<video>/<n:05d>.png
    (n from 1); a video whose folder holds the .extracted marker is skipped unless overwrite.
    Returns (videos decoded, videos found)."""
    clips = os.path.join(root, 'Release', 'clips320H')
    if not os.path.isdir(clips):
        raise FileNotFoundError('%s: folder of the .mp4 videos not found' % clips)
    videos = sorted(n[:-4] for n in os.listdir(clips) if n.endswith('.mp4'))
    done = 0
    for video in progress(videos):
        folder = os.path.join(root, 'Release', 'frames', video)
        if os.path.isfile(os.path.join(folder, EXTRACTED)) and not overwrite:
            continue
        os.makedirs(folder, exist_ok=True)
        remove_stale_temps(folder)
        path = os.path.join(clips, video + '.mp4')
        n = 0
        for n, frame in enumerate(video_frames(path), 1):
            with atomic_open(os.path.join(folder, '%05d.png' % n), 'wb', fsync=False) as f:
                Image.fromarray(frame).save(f, format='PNG')
        write_json(os.path.join(folder, EXTRACTED), {'frames': n})
        done += 1
    return done, len(videos)
