"""J-HMDB Sentences: the test set of the A2D-trained video model, one sample per (query, drawn
annotated frame whose mask is not empty).

Release files (root):
  jhmdb_annotation.txt               CSV with a header: video id, query
  Rename_Images/<action>/<video>/<frame:05d>.png
  puppet_mask/<action>/<video>/puppet_mask.mat   part_mask [h, w, frames]
Split: test.

J-HMDB has no annotated frames of its own: frames_per_video frames of each video are drawn
without replacement, in query order, by one generator seeded with `seed` (the same seed gives
the same frames); the draw is returned in `chosen` for the builder to record. Queries are
tokenised as A2D's (a2d.query_words).
"""

import os

import numpy as np
import scipy.io

from util.datasets.a2d import frame_count, query_words, read_csv_rows
from util.datasets.batches import ClipEntry, clip_window

NAME = 'jhmdb_sent'
SPLITS = ('test',)


def videos(root):
    """{video: action} of Rename_Images/<action>/<video>/."""
    images = os.path.join(root, 'Rename_Images')
    if not os.path.isdir(images):
        raise FileNotFoundError('%s: J-HMDB Rename_Images folder not found' % images)
    return {v: a for a in sorted(os.listdir(images)) if os.path.isdir(os.path.join(images, a))
            for v in sorted(os.listdir(os.path.join(images, a)))}


def samples(root, num_words, counts, frames_per_video=3, seed=0, chosen=None, progress=iter):
    """('test', ClipEntry) of every sample in query order, then frame order; chosen (a dict, if
    given) gets {video: [drawn frames]}."""
    queries = read_csv_rows(os.path.join(root, 'jhmdb_annotation.txt'), 'J-HMDB query file', 2)
    action_of = videos(root)
    rng = np.random.RandomState(seed)
    chosen = {} if chosen is None else chosen
    for row in progress(queries):
        video = row[0]
        if video not in action_of:
            raise FileNotFoundError('%s: video %s of jhmdb_annotation.txt has no frame folder'
                                    % (os.path.join(root, 'Rename_Images', '*', video), video))
        action = action_of[video]
        mat = os.path.join(root, 'puppet_mask', action, video, 'puppet_mask.mat')
        if not os.path.isfile(mat):
            raise FileNotFoundError('%s: puppet mask not found' % mat)
        part_mask = scipy.io.loadmat(mat)['part_mask']  # [h, w, frames]
        folder = os.path.join(root, 'Rename_Images', action, video)
        num_frames = min(part_mask.shape[2], frame_count(folder))
        # Drawn in query order from one generator: the same seed gives the same frames.
        picks = sorted(int(i) + 1 for i in rng.choice(num_frames, min(frames_per_video,
                                                                      num_frames), replace=False))
        chosen[video] = picks
        sent, text = query_words(row[1], num_words)
        for frame_id in picks:
            mask = part_mask[:, :, frame_id - 1]  # [h, w]
            if not mask.any():
                counts['all-zero mask (skipped)'] += 1
                continue
            paths = [os.path.join(folder, '%05d.png' % i)
                     for i in clip_window(frame_id, num_frames)]
            yield 'test', ClipEntry(sent=sent, text=text, frame_id=frame_id, mask=mask,
                                    frame_paths=paths,
                                    what='jhmdb_annotation.txt, video %s' % video)
