"""Generate the built-in synthetic referring dataset in the real datasets' formats.

Exact commands:
  python -m tools.make_synthetic_dataset                      # data/synthetic, seed 0, ~5 s on 2 cores
  python -m tools.make_synthetic_dataset --video --out data/synthetic_video   # A2D Sentences format
  python -m tools.make_synthetic_dataset --out /tmp/syn --seed 3 --train_images 400
  # then, for each format (see build_batches.py):
  python build_batches.py -d unc -t train --synthetic data/synthetic
  python build_batches.py -d unc -t val --synthetic data/synthetic
  python build_batches.py -d unc+ -t testA --synthetic data/synthetic
  python build_batches.py -d Gref -t val --synthetic data/synthetic
  python build_batches.py -d Gref_umd -t test --synthetic data/synthetic
  python build_batches.py -d referit -t trainval --synthetic data/synthetic

Writes under --out (layout and formats in tools/synthetic.py): refer/refcoco{,+,g}/ with
instances.json and refs(unc|google|umd).p, coco/images/train2014/*.jpg, referit/{images,
mask}/, referit_query_{trainval,test}.json, vocabulary_synthetic.txt, synthetic_emb.npy
(float32 [vocab size, --emb_dim]) and synthetic.json (settings and expression counts).
The same settings always give the same bytes; a folder already generated with the same
settings is left as is (--force regenerates).

With --video: a synthetic A2D Sentences for the video model (tools/synthetic_video.py: moving
shapes, queries that need the action words), built into batches by
CMPC_video/build_A2D_batches.py (--extract-frames first: the videos are .mp4 files).
"""

import argparse
import json
import os
import sys

from tools import synthetic, synthetic_video
from util.cli import HelpFormatter

DEFAULT_OUT = 'data/synthetic'

_HELP = {
    'seed': 'random seed; the dataset is a function of the settings',
    'train_images': 'scenes in the train split',
    'val_images': 'scenes in the val split',
    'testA_images': 'scenes in testA (targets: circles, squares, triangles)',
    'testB_images': 'scenes in testB (targets: diamonds, stars, crosses)',
    'min_size': 'smallest image side in pixels',
    'max_size': 'largest image side in pixels',
    'min_objects': 'fewest shapes per scene',
    'max_objects': 'most shapes per scene',
    'refs_per_image': 'most referred objects per scene',
    'sents_per_ref': 'expressions per referred object (fewer when fewer identify it)',
    'gray_fraction': 'fraction of grayscale images (their expressions use no colour)',
    'overlap_prob': 'chance that a shape may partly cover earlier ones',
    'emb_dim': 'size of the word vectors in synthetic_emb.npy',
}


def build_parser():
    parser = argparse.ArgumentParser(
        description='Generate the synthetic referring-segmentation dataset (COCO/refer and '
                    'ReferIt formats).',
        formatter_class=HelpFormatter)
    parser.add_argument('-o', '--out', default=DEFAULT_OUT, help='output folder')
    for key, default in synthetic.DEFAULTS.items():
        parser.add_argument('--' + key, type=type(default), default=default, help=_HELP[key])
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if --out already holds this dataset')
    v = parser.add_argument_group('video (tools/synthetic_video.py)')
    v.add_argument('--video', action='store_true',
                   help='write the synthetic A2D Sentences (videos) instead; uses --seed, '
                        '--emb_dim and the flags below')
    v.add_argument('--train_videos', type=int, default=synthetic_video.DEFAULTS['train_videos'],
                   help='videos in the train split')
    v.add_argument('--test_videos', type=int, default=synthetic_video.DEFAULTS['test_videos'],
                   help='videos in the test split')
    v.add_argument('--video_size', type=int, default=synthetic_video.DEFAULTS['size'],
                   help='side of the square videos, in pixels (even, >= 32)')
    v.add_argument('--changes_share', type=float,
                   default=synthetic_video.DEFAULTS['changes_share'],
                   help="share of the videos with twins told apart by a colour change "
                        "('changes' queries)")
    v.add_argument('--motion_share', type=float, default=synthetic_video.DEFAULTS['motion_share'],
                   help="share of the videos with twins told apart by their motion ('motion' "
                        'queries); the rest hold no twins')
    v.add_argument('--radius', type=float, default=synthetic_video.DEFAULTS['radius'],
                   help="the shapes' radius as a fraction of the video's side (+-10 %%)")
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def make_video(args):
    settings = {'seed': args.seed, 'emb_dim': args.emb_dim, 'train_videos': args.train_videos,
                'test_videos': args.test_videos, 'size': args.video_size,
                'changes_share': args.changes_share, 'motion_share': args.motion_share,
                'radius': args.radius}
    path = os.path.join(args.out, 'synthetic_video.json')
    if os.path.isfile(path) and not args.force:
        with open(path) as f:
            summary = json.load(f)
        if all(summary['settings'].get(k) == v for k, v in settings.items()):
            print('%s already holds the synthetic video dataset with these settings (--force to '
                  'regenerate)' % args.out)
            return summary
    return synthetic_video.generate(args.out, **settings)


def main(argv=None):
    args = parse_args(argv)
    if args.video:
        try:
            summary = make_video(args)
        except ValueError as e:
            print('error: %s' % e, file=sys.stderr)
            return 2
        print('%s: %d queries, %d test samples, vocabulary of %d words'
              % (args.out, summary['queries'], len(summary['test_samples']),
                 summary['vocabulary']))
        return 0
    settings = {k: getattr(args, k) for k in synthetic.DEFAULTS}
    done = synthetic.load_summary(args.out)
    if done is not None and done.get('settings') == settings and not args.force:
        print('%s already holds the synthetic dataset with these settings (--force to '
              'regenerate)' % args.out)
        summary = done
    else:
        if done is not None:
            synthetic.clear(args.out)  # other settings: no file of the old set may remain
        try:
            summary = synthetic.generate(args.out, **settings)
        except ValueError as e:
            print('error: %s' % e, file=sys.stderr)
            return 2
    print('%s: %d images, %d objects, vocabulary of %d words; expressions per split:'
          % (args.out, summary['images'], summary['objects'], summary['vocab_size']))
    print(json.dumps(summary['expressions'], sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
