"""Write one .npz per (query, annotated frame) of A2D Sentences, and of J-HMDB Sentences, in the
layout of the original CMPC_video/build_A2D_batches.py, from the public releases.

The command line of util/datasets/: a2d.py and jhmdb.py read the releases and yield the samples,
batches.py owns the format below (and the clip window) and writes it.

Commands (run from the repository root; paths default to the layout below):
  python CMPC_video/build_A2D_batches.py --extract-frames    # Release/clips320H/*.mp4 -> PNGs
  python CMPC_video/build_A2D_batches.py                     # a2d_sent_new/{train,test}_batch
  python CMPC_video/build_A2D_batches.py --jhmdb             # jhmdb_sent/test_batch
  python CMPC_video/build_A2D_batches.py --rvos mevis --release-root data/mevis --frame-stride 5
                                                             # mevis/train_batch
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
Ref-YouTube-VOS, Ref-DAVIS17, MeViS (--rvos NAME --release-root R; the releases as
util/datasets/ref_youtube_vos.py and mevis.py list them): the training split only, one sample
per expression and annotated frame (every --frame-stride-th) whose mask is not empty, in
{out}/{NAME}/train_batch/; their test runs on whole videos from the release
(CMPC_video/trainval_video.py -m test -d NAME --release-root R).

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
import itertools
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from util import text_processing  # noqa: E402
from util.cli import HelpFormatter  # noqa: E402
from util.datasets import a2d, batches, jhmdb, mevis, ref_youtube_vos  # noqa: E402
from util.io import file_sha1, write_json  # noqa: E402

T = batches.T
INPUT_SIZE = batches.INPUT_SIZE
CLIP = batches.CLIP_FRAMES  # frames per clip, [frame - 8, frame + 8)
A2D_NAME = a2d.NAME
JHMDB_NAME = jhmdb.NAME
# The whole-video benchmarks: their training samples (the train split)
RVOS = {ref_youtube_vos.NAME: ref_youtube_vos.samples,
        ref_youtube_vos.DAVIS_NAME: ref_youtube_vos.davis_samples,
        mevis.NAME: mevis.samples}


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
    p.add_argument('--rvos', choices=sorted(RVOS), default=None,
                   help='build the training batches of this benchmark from --release-root '
                        'instead of A2D (its test reads the release: trainval_video.py -m test)')
    p.add_argument('--release-root', default=None,
                   help='--rvos: the folder of the release (meta_expressions, JPEGImages, ...)')
    p.add_argument('--frame-stride', type=int, default=1,
                   help='--rvos: every N-th annotated frame of a video (frames 1, N + 1, ...; '
                        'MeViS annotates every frame)')
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
    if args.rvos and not args.release_root:
        p.error('--rvos %s: give --release-root, the folder of the release' % args.rvos)
    for flag in ('num_words', 'size', 'jhmdb_frames', 'frame_stride'):
        if getattr(args, flag) <= 0:
            p.error('--%s must be positive, got %d' % (flag.replace('_', '-'),
                                                       getattr(args, flag)))
    return args


def progress(iterable, args, **kw):
    from tqdm import tqdm
    return tqdm(iterable, disable=args.no_progress or None, dynamic_ncols=True, **kw)


# --------------------------------------------------------------------------- build

def build(args, dataset, module_samples, splits, vocab_dict, counts, settings, desc, unit='query',
          **kw):
    """Writes every sample of a video dataset module (its samples function, called with the
    keyword arguments kw) with the one writer; {split: writer}."""
    samples = module_samples(
        num_words=args.num_words, counts=counts, **kw,
        progress=lambda rows: progress(rows, args, desc='%s %ss' % (desc, unit), unit=unit))
    # The first sample reads the release's index files: a missing one is reported before any
    # output folder is made.
    first = next(samples, None)
    writers = {s: batches.SplitWriter(args.out, dataset, s, batches.VIDEO_MANIFEST,
                                      dict(settings, split=s), overwrite=args.overwrite,
                                      compressed=not args.original_layout)
               for s in splits}
    for split, entry in itertools.chain([first] if first else [], samples):
        batches.write_clip(writers[split], entry, vocab_dict, args.num_words,
                           train=split == 'train', size=args.size,
                           original_layout=args.original_layout)
    return writers


def build_a2d(args, vocab_dict, counts):
    settings = {'dataset': A2D_NAME, 'T': args.num_words, 'size': args.size,
                'vocab_sha1': file_sha1(args.vocab), 'original_layout': args.original_layout,
                'single_instance_any_id': args.single_instance_any_id}
    return build(args, A2D_NAME, a2d.samples, a2d.SPLITS, vocab_dict, counts, settings,
                 desc='A2D', root=args.a2d_root, any_id=args.single_instance_any_id)


def build_jhmdb(args, vocab_dict, counts):
    settings = {'dataset': JHMDB_NAME, 'T': args.num_words, 'vocab_sha1': file_sha1(args.vocab),
                'original_layout': args.original_layout, 'seed': args.seed,
                'frames_per_video': args.jhmdb_frames}
    chosen = {}
    writers = build(args, JHMDB_NAME, jhmdb.samples, jhmdb.SPLITS, vocab_dict, counts, settings,
                    desc='J-HMDB', root=args.jhmdb_root, frames_per_video=args.jhmdb_frames,
                    seed=args.seed, chosen=chosen)
    write_json(os.path.join(writers['test'].folder, 'annotated_frames.json'),
               {'seed': args.seed, 'frames_per_video': args.jhmdb_frames, 'frames': chosen})
    return writers


def build_rvos(args, vocab_dict, counts):
    settings = {'dataset': args.rvos, 'T': args.num_words, 'size': args.size,
                'vocab_sha1': file_sha1(args.vocab), 'original_layout': args.original_layout,
                'frame_stride': args.frame_stride}
    return build(args, args.rvos, RVOS[args.rvos], ('train',), vocab_dict, counts, settings,
                 desc=args.rvos, unit='video', root=args.release_root, split='train',
                 frame_stride=args.frame_stride)


def extract_frames(args):
    """Decodes every Release/clips320H/<video>.mp4 into Release/frames/<video>/<n:05d>.png."""
    done, found = a2d.extract_frames(
        args.a2d_root, args.overwrite,
        progress=lambda videos: progress(videos, args, desc='decoding', unit='video'))
    print('%s: %d videos decoded, %d already there'
          % (os.path.join(args.a2d_root, 'Release', 'clips320H'), done, found - done))


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
        build = build_rvos if args.rvos else build_jhmdb if args.jhmdb else build_a2d
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
