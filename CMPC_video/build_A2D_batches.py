"""Write one .npz per (query, annotated frame) of A2D Sentences, and of J-HMDB Sentences, in the
layout of the original CMPC_video/build_A2D_batches.py, from the public releases.

Commands (run from the repository root; paths default to the layout below):
  python CMPC_video/build_A2D_batches.py --extract-frames    # Release/clips320H/*.mp4 -> PNGs
  python CMPC_video/build_A2D_batches.py                     # a2d_sent_new/{train,test}_batch
  python CMPC_video/build_A2D_batches.py --jhmdb             # jhmdb_sent/test_batch
  python CMPC_video/build_A2D_batches.py --a2d-root data/synthetic_video/A2D-Sentences \
      --vocab data/synthetic_video/vocabulary.txt --out data/synthetic_video --size 96

Inputs, A2D Sentences (--a2d-root, default ./data/A2D-Sentences; the original hard-coded a
cluster path):
  a2d_annotation.txt                 CSV with a header: video id, instance id, query
  Release/videoset.csv               no header: video id first, 0 train / 1 test last
  a2d_annotation_with_instances/<video>/<frame:05d>.h5
                                     `instance` (ids) and `reMask` (masks stored transposed:
                                     [w, h] for one instance, [n, w, h] for several)
  Release/frames/<video>/<frame:05d>.png   1-based; made by --extract-frames from
  Release/clips320H/<video>.mp4            (decoded with PyAV; resumable)
J-HMDB Sentences (--jhmdb-root, default ./data/J-HMDB-Sentences):
  jhmdb_annotation.txt               CSV with a header: video id, query
  Rename_Images/<action>/<video>/<frame:05d>.png
  puppet_mask/<action>/<video>/puppet_mask.mat   part_mask [h, w, frames]
  Each video's annotated frames: --jhmdb-frames (3) drawn without replacement by a generator
  seeded with --seed, recorded in {out}/jhmdb_sent/test_batch/annotated_frames.json.

One sample per (query, annotated frame whose mask is not empty), numbered per split in the
query file's order, then frame order, as the original. The clip is the 16 frames
[frame - 8, frame + 8) clamped to the video, so its index 8 is the annotated frame. Sentences
are tokenised as the original (lower case, split at non-word characters, a final '.' dropped,
at most T words) into ids of --vocab (default data/vocabulary_Gref.txt). Training samples are
resized and zero-padded to --size (320); test samples keep the video's resolution.

Files: {out}/a2d_sent_new/{train,test}_batch/a2d_sent_new_{split}_{n}.npz (J-HMDB:
{out}/jhmdb_sent/test_batch/jhmdb_sent_test_{n}.npz) with
  text_batch  int64 [T]            word ids, left-padded with 0
  mask_batch  bool  [h, w]         the queried actor in the annotated frame
  sent_batch  str   [1]            the query, lower case
  frame_id    int64 []             the annotated frame (1-based)
  frames      uint8 [16, h, w, 3]  the clip, RGB
  im_batch    uint8 [h, w, 3]      the annotated frame: only with --original-layout, which
                                   also writes uncompressed (np.savez) as the original did;
                                   by default files are compressed and im_batch, which is
                                   frames[8], is left out (readers take frames[8]).
Files are written under a temporary name and renamed when complete; rerunning resumes, and a
folder built with other settings is refused unless --overwrite.

Quirks of the real files, each counted and reported at the end instead of a crash: a query
row whose instance id is not a number ('1 (copy)': its leading number is used), a video
missing from videoset.csv (its queries are skipped), an annotated frame whose .h5 holds one
instance with another id than the query's (skipped by default; --single-instance-any-id uses
that mask as the original silently did), all-zero masks (skipped, as the original).
"""

import argparse
import csv
import os
import re
import sys
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from util import im_processing, text_processing  # noqa: E402
from util.cli import HelpFormatter  # noqa: E402
from util.pipeline.contract import clip_window  # noqa: E402
from util.data_reader import CLIP_FRAMES  # noqa: E402
from util.io import (atomic_open, check_build_manifest, file_sha1,  # noqa: E402
                     load_a2d_masks, remove_stale_temps, save_npz_atomic, video_frames,
                     write_json)

T = 20
INPUT_SIZE = 320
CLIP = CLIP_FRAMES  # frames per clip, [frame - 8, frame + 8)
A2D_NAME = 'a2d_sent_new'
JHMDB_NAME = 'jhmdb_sent'
MANIFEST = '.build_a2d_batches.json'
EXTRACTED = '.extracted'  # written in a frame folder once all its frames are there
SENTENCE_SPLIT_REGEX = re.compile(r'(\W+)')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=HelpFormatter)
    p.add_argument('--a2d-root', default='./data/A2D-Sentences',
                   help='the A2D Sentences release (a2d_annotation.txt, Release/, '
                        'a2d_annotation_with_instances/)')
    p.add_argument('--jhmdb', action='store_true',
                   help='build J-HMDB Sentences test batches instead of A2D')
    p.add_argument('--jhmdb-root', default='./data/J-HMDB-Sentences',
                   help='the J-HMDB Sentences files (jhmdb_annotation.txt, Rename_Images/, '
                        'puppet_mask/)')
    p.add_argument('--jhmdb-frames', type=int, default=3,
                   help='annotated frames drawn per J-HMDB video')
    p.add_argument('--seed', type=int, default=0, help='seed of the J-HMDB frame draw')
    p.add_argument('--vocab', default='./data/vocabulary_Gref.txt', help='vocabulary file')
    p.add_argument('-o', '--out', default='.', help='output root')
    p.add_argument('-T', '--num-words', type=int, default=T, help='words per query')
    p.add_argument('--size', type=int, default=INPUT_SIZE,
                   help='side of the resized-and-padded training frames')
    p.add_argument('--extract-frames', action='store_true',
                   help='decode Release/clips320H/<video>.mp4 into Release/frames/<video>/'
                        '<frame:05d>.png (resumable) instead of building batches')
    p.add_argument('--single-instance-any-id', action='store_true',
                   help="use a one-instance .h5 mask whatever its id, as the original did "
                        "(default: skip it when the id is not the query's)")
    p.add_argument('--original-layout', action='store_true',
                   help='also write im_batch, uncompressed (np.savez), as the original')
    p.add_argument('--overwrite', action='store_true',
                   help='rebuild every file instead of resuming')
    p.add_argument('--no-progress', action='store_true', help='hide the progress bars')
    args = p.parse_args(argv)
    for flag in ('num_words', 'size', 'jhmdb_frames'):
        if getattr(args, flag) <= 0:
            p.error('--%s must be positive, got %d' % (flag.replace('_', '-'),
                                                       getattr(args, flag)))
    return args


def progress(iterable, args, **kw):
    from tqdm import tqdm
    return tqdm(iterable, disable=args.no_progress or None, dynamic_ncols=True, **kw)


# --------------------------------------------------------------------------- queries and masks

def query_words(query, T):
    """(sent, n_sent): the lower-case query as sent_batch holds it, and the original's
    cleaned sentence that is tokenised (split at non-word characters, final '.' dropped, at
    most T words)."""
    sent = query.lower()
    words = [w for w in SENTENCE_SPLIT_REGEX.split(sent.strip()) if len(w.strip()) > 0]
    if words and words[-1] == '.':
        words = words[:-1]
    return sent, ' '.join(words[:T])


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


# --------------------------------------------------------------------------- samples

class Writer:
    """Numbers, resumes and writes the samples of one split folder."""

    def __init__(self, args, name, split, settings):
        self.args, self.split = args, split
        self.folder = os.path.join(args.out, name, split + '_batch')
        self.prefix = '%s_%s' % (name, split)
        os.makedirs(self.folder, exist_ok=True)
        check_build_manifest(os.path.join(self.folder, MANIFEST), dict(settings, split=split),
                             args.overwrite)
        remove_stale_temps(self.folder, self.prefix + '_')
        self.n = self.written = 0
        self.train = split == 'train'

    def path(self, n):
        return os.path.join(self.folder, '%s_%d.npz' % (self.prefix, n))

    def add(self, text, sent, frame_id, mask, frame_paths):
        """Writes sample n (unless it exists); frame_paths are the clip's 16 PNGs."""
        path, self.n = self.path(self.n), self.n + 1
        if os.path.exists(path) and not self.args.overwrite:
            return
        import skimage
        import skimage.io
        frames = []
        for fp in frame_paths:
            if not os.path.isfile(fp):
                raise FileNotFoundError('%s: frame not found' % fp)
            frames.append(im_processing.as_rgb(skimage.io.imread(fp)))
        mask = mask.astype(np.float32)
        if mask.shape != frames[0].shape[:2]:
            raise ValueError('%s: mask of frame %d is %s, the frames are %s'
                             % (frame_paths[CLIP // 2], frame_id, list(mask.shape),
                                list(frames[0].shape[:2])))
        if self.train:
            size = self.args.size
            frames = [skimage.img_as_ubyte(im_processing.resize_and_pad(f, size, size))
                      for f in frames]
            mask = im_processing.resize_and_pad(mask, size, size)
        arrays = dict(text_batch=np.asarray(text, np.int64), mask_batch=mask > 0,
                      sent_batch=[sent], frame_id=np.int64(frame_id),
                      frames=np.stack(frames).astype(np.uint8))
        if self.args.original_layout:
            arrays['im_batch'] = arrays['frames'][CLIP // 2]
        save_npz_atomic(path, compressed=not self.args.original_layout, **arrays)
        self.written += 1


def build_a2d(args, vocab_dict, counts):
    root = args.a2d_root
    queries = read_csv_rows(os.path.join(root, 'a2d_annotation.txt'), 'A2D query file', 3)
    split_of = read_videoset(os.path.join(root, 'Release', 'videoset.csv'))
    settings = {'dataset': A2D_NAME, 'T': args.num_words, 'size': args.size,
                'vocab_sha1': file_sha1(args.vocab), 'original_layout': args.original_layout,
                'single_instance_any_id': args.single_instance_any_id}
    writers = {s: Writer(args, A2D_NAME, s, settings) for s in ('train', 'test')}
    anno_dir = os.path.join(root, 'a2d_annotation_with_instances')
    frame_dir = os.path.join(root, 'Release', 'frames')
    for row in progress(queries, args, desc='A2D queries', unit='query'):
        video = row[0]
        if video not in split_of:
            counts['query of a video missing from videoset.csv (skipped)'] += 1
            continue
        writer = writers['test' if split_of[video] == 1 else 'train']
        instance = instance_id_of(row[1], counts)
        sent, n_sent = query_words(row[2], args.num_words)
        try:
            text = text_processing.preprocess_sentence(n_sent, vocab_dict, args.num_words)
        except ValueError as e:
            raise ValueError('a2d_annotation.txt, video %s instance %s: %s' % (video, row[1], e))
        folder = os.path.join(anno_dir, video)
        if not os.path.isdir(folder):
            raise FileNotFoundError('%s: annotation folder not found' % folder)
        num_frames = None
        for name in sorted(os.listdir(folder)):
            if not name.endswith('.h5'):
                continue
            frame_id = int(name[:-3])
            mask = instance_mask(os.path.join(folder, name), instance, args.single_instance_any_id,
                                 counts)
            if mask is None:
                continue
            if not mask.any():
                counts['all-zero mask (skipped)'] += 1
                continue
            if num_frames is None:
                num_frames = frame_count(os.path.join(frame_dir, video))
            paths = [os.path.join(frame_dir, video, '%05d.png' % i)
                     for i in clip_window(frame_id, num_frames)]
            writer.add(text, sent, frame_id, mask, paths)
    return writers


def jhmdb_videos(root):
    """{video: action} of Rename_Images/<action>/<video>/."""
    images = os.path.join(root, 'Rename_Images')
    if not os.path.isdir(images):
        raise FileNotFoundError('%s: J-HMDB Rename_Images folder not found' % images)
    return {v: a for a in sorted(os.listdir(images)) if os.path.isdir(os.path.join(images, a))
            for v in sorted(os.listdir(os.path.join(images, a)))}


def build_jhmdb(args, vocab_dict, counts):
    import scipy.io
    root = args.jhmdb_root
    queries = read_csv_rows(os.path.join(root, 'jhmdb_annotation.txt'), 'J-HMDB query file', 2)
    action_of = jhmdb_videos(root)
    settings = {'dataset': JHMDB_NAME, 'T': args.num_words, 'vocab_sha1': file_sha1(args.vocab),
                'original_layout': args.original_layout, 'seed': args.seed,
                'frames_per_video': args.jhmdb_frames}
    writer = Writer(args, JHMDB_NAME, 'test', settings)
    rng = np.random.RandomState(args.seed)
    chosen = {}
    for row in progress(queries, args, desc='J-HMDB queries', unit='query'):
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
        picks = sorted(int(i) + 1 for i in rng.choice(num_frames, min(args.jhmdb_frames,
                                                                      num_frames), replace=False))
        chosen[video] = picks
        sent, n_sent = query_words(row[1], args.num_words)
        text = text_processing.preprocess_sentence(n_sent, vocab_dict, args.num_words)
        for frame_id in picks:
            mask = part_mask[:, :, frame_id - 1]
            if not mask.any():
                counts['all-zero mask (skipped)'] += 1
                continue
            paths = [os.path.join(folder, '%05d.png' % i) for i in clip_window(frame_id, num_frames)]
            writer.add(text, sent, frame_id, mask, paths)
    write_json(os.path.join(writer.folder, 'annotated_frames.json'),
               {'seed': args.seed, 'frames_per_video': args.jhmdb_frames, 'frames': chosen})
    return {'test': writer}


# --------------------------------------------------------------------------- frames

def extract_frames(args):
    """Decodes every Release/clips320H/<video>.mp4 into Release/frames/<video>/<n:05d>.png
    (n from 1); a video whose folder holds the .extracted marker is skipped."""
    from PIL import Image
    clips = os.path.join(args.a2d_root, 'Release', 'clips320H')
    if not os.path.isdir(clips):
        raise FileNotFoundError('%s: folder of the .mp4 videos not found' % clips)
    videos = sorted(n[:-4] for n in os.listdir(clips) if n.endswith('.mp4'))
    done = 0
    for video in progress(videos, args, desc='decoding', unit='video'):
        folder = os.path.join(args.a2d_root, 'Release', 'frames', video)
        if os.path.isfile(os.path.join(folder, EXTRACTED)) and not args.overwrite:
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
    print('%s: %d videos decoded, %d already there' % (clips, done, len(videos) - done))


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.extract_frames:
            extract_frames(args)
            return 0
        if not os.path.isfile(args.vocab):
            raise FileNotFoundError('%s: vocabulary not found' % args.vocab)
        vocab_dict = text_processing.load_vocab_dict_from_file(args.vocab)
        counts = Counter()
        build = build_jhmdb if args.jhmdb else build_a2d
        writers = build(args, vocab_dict, counts)
    except (ValueError, OSError, KeyError) as e:
        print('error: %s' % e, file=sys.stderr)
        return 2
    for split, w in writers.items():
        print('%s: %d samples (%d written, %d kept from an earlier run)'
              % (w.folder, w.n, w.written, w.n - w.written))
    for what, n in sorted(counts.items()):
        print('warning: %d x %s' % (n, what))
    return 0


if __name__ == '__main__':
    sys.exit(main())
