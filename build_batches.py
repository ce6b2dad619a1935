"""Write one .npz per referring expression, in the original CMPC layout, from public files.

The command line of util/datasets/: refcoco.py and referit.py read the releases and yield the
samples, batches.py owns the format below and writes it (add a dataset there, not here).

Exact commands (the original's, run from the repository root with its default paths):
  python build_batches.py -d Gref -t train        # RefCOCOg, Google split (the paper)
  python build_batches.py -d Gref -t val
  python build_batches.py -d Gref_umd -t train    # RefCOCOg, UMD split: train/val/test
  python build_batches.py -d Gref_umd -t val
  python build_batches.py -d Gref_umd -t test
  python build_batches.py -d unc -t train         # RefCOCO: train/val/testA/testB
  python build_batches.py -d unc -t val
  python build_batches.py -d unc -t testA
  python build_batches.py -d unc -t testB
  python build_batches.py -d unc+ -t train        # RefCOCO+: train/val/testA/testB
  python build_batches.py -d unc+ -t val
  python build_batches.py -d unc+ -t testA
  python build_batches.py -d unc+ -t testB
  python build_batches.py -d referit -t trainval  # ReferIt: trainval/test
  python build_batches.py -d referit -t test
On the built-in synthetic dataset (python -m tools.make_synthetic_dataset), add
`--synthetic data/synthetic`, e.g.
  python build_batches.py -d unc -t train --synthetic data/synthetic
A vocabulary from a dataset's training expressions (same special tokens and tokenizer as
the original vocabularies):
  python build_batches.py -d unc -t train --build_vocab data/vocabulary_unc.txt

Inputs (defaults are the original's paths, relative to the working directory):
  unc, unc+, Gref, Gref_umd
    {refer_root}/{refcoco,refcoco+,refcocog}/refs({unc,google,umd}).p and instances.json
        (github:lichengunc/refer; default ./external/refer/data)
    {coco_root}/train2014/COCO_train2014_{image_id:012d}.jpg   (default ./data/coco/images)
    --vocab, default ./data/vocabulary_Gref.txt (one vocabulary for all COCO datasets)
  referit
    {query_dir}/referit_query_{setname}.json  {"<image id>_<n>": [sentence, ...], ...}
        (default ./data)
    {referit_root}/images/<image id>.jpg and {referit_root}/mask/<image id>_<n>.mat with
        segimg_t, the object where segimg_t == 0                   (default ./data/referit)
    --vocab, default ./data/vocabulary_referit.txt
  With --synthetic DIR these default to DIR/refer, DIR/coco/images, DIR,
  DIR/referit, DIR/vocabulary_synthetic.txt, and the output root to DIR.

Files written, one per expression n = 0, 1, ... (n counts the expressions in the
original's order: refs in refer.Refs order, i.e. refs(...).p file order, filtered by
split, then each ref's sentences; for referit the query json's key order, then its
sentences; so the original code and this one write the same file for the same n).
  {out}/{dataset}/{setname}_batch/{dataset}_{setname}_{n}.npz with
    text_batch  int64 [T]         word ids, left-padded with <pad> (T = 20)
    im_batch    uint8 [h, w, 3]   the RGB image; for setnames containing 'train',
                                  resized and zero-padded to [input_size, input_size, 3]
                                  (320), else at its full size; a grayscale image is tiled
                                  to 3 channels
    mask_batch  bool  [h, w]      the referred object (same h, w as im_batch): union of the
                                  COCO polygons, or segimg_t == 0; resized as float and
                                  then > 0 for 'train' setnames
    sent_batch  str   [1]         the expression as in the annotation ('<U{len}')
  np.savez_compressed by default (np.load reads both; --uncompressed for the original's
  np.savez). Each file is written under a hidden temporary name in the same folder and
  renamed when complete, so a killed build leaves no truncated file under a final name;
  rerunning the same command resumes (existing files are kept, stale temporaries
  removed). {out}/{dataset}/{setname}_batch/.build_batches.json records the settings of the
  build; a rerun with other settings is refused unless --overwrite.
  With --build_vocab PATH: only PATH is written, '<pad>', '<go>', '<eos>', '<unk>' (ids 0-3)
  then the tokenizer's words of the -d/-t expressions by falling count (ties alphabetical).

Differences from files the 2018 original wrote under Python 2 on another machine:
  * pixel values depend on the JPEG decoder (libjpeg) of the installed Pillow; images are
    read with skimage.io.imread as the original;
  * sent_batch is '<U' here; Python 2 stored '|S' where the refs pickle held byte strings;
  * numbering: Python 2 dicts iterate in hash order. For refer.Refs (int keys, a table
    larger than the largest id) that is ascending ref_id, the same as file order for
    pickles stored in id order (the synthetic ones are); for the ReferIt query dict (str
    keys) it was an arbitrary order, so a Python 2 run numbers the same referit files
    differently, while the original run under Python 3 follows the file, as here.
"""

import argparse
import os
import pickle
import sys

from util import text_processing
from util.cli import HelpFormatter
from util.datasets import batches, refcoco, referit
from util.io import save_str_list

COCO_DATASETS = refcoco.DATASETS  # dataset flag -> (refer dataset, split_by)
DATASETS = tuple(COCO_DATASETS) + (referit.NAME,)
DEFAULT_DATASET = 'referit'
DEFAULT_SETNAME = 'trainval'
T = batches.T
INPUT_SIZE = batches.INPUT_SIZE
DEFAULT_REFER_ROOT = './external/refer/data'
DEFAULT_COCO_ROOT = './data/coco/images'
COCO_IM_TYPE = refcoco.IM_TYPE
DEFAULT_REFERIT_ROOT = './data/referit'
DEFAULT_QUERY_DIR = './data'
DEFAULT_VOCAB = {'coco': './data/vocabulary_Gref.txt', 'referit': './data/vocabulary_referit.txt'}
DEFAULT_OUT = '.'
DEFAULT_WORKERS = min(os.cpu_count() or 1, 8)


def build_parser():
    parser = argparse.ArgumentParser(
        description='Build the per-expression .npz batches of CMPC (original layout and keys).',
        formatter_class=HelpFormatter)
    parser.add_argument('-d', '--dataset', default=DEFAULT_DATASET, choices=DATASETS,
                        help='unc (RefCOCO), unc+ (RefCOCO+), Gref (RefCOCOg Google split), '
                             'Gref_umd (RefCOCOg UMD split) or referit')
    parser.add_argument('-t', '--setname', default=DEFAULT_SETNAME,
                        help='split: train/val/testA/testB (unc, unc+), train/val (Gref), '
                             'train/val/test (Gref_umd), trainval/test (referit); names '
                             "containing 'train' are resized and padded to --input_size")
    parser.add_argument('--refer_root', default=None,
                        help='refer data folder holding refcoco/, refcoco+/, refcocog/ '
                             '[default: %s]' % DEFAULT_REFER_ROOT)
    parser.add_argument('--coco_root', default=None,
                        help='COCO image folder holding %s/ [default: %s]'
                             % (COCO_IM_TYPE, DEFAULT_COCO_ROOT))
    parser.add_argument('--referit_root', default=None,
                        help='ReferIt folder holding images/ and mask/ [default: %s]'
                             % DEFAULT_REFERIT_ROOT)
    parser.add_argument('--query_dir', default=None,
                        help='folder of referit_query_{setname}.json [default: %s]'
                             % DEFAULT_QUERY_DIR)
    parser.add_argument('--vocab', default=None,
                        help='vocabulary file [default: %s for COCO datasets, %s for referit]'
                             % (DEFAULT_VOCAB['coco'], DEFAULT_VOCAB['referit']))
    parser.add_argument('-o', '--out', default=None,
                        help='output root: writes {out}/{dataset}/{setname}_batch/ '
                             '[default: %s]' % DEFAULT_OUT)
    parser.add_argument('--synthetic', default=None, metavar='DIR',
                        help='use the synthetic dataset made by tools/make_synthetic_dataset.py in '
                             'DIR: sets the defaults of every path flag (and --out) to DIR')
    parser.add_argument('-T', '--num_words', type=int, default=T,
                        help='words per expression after truncation/padding')
    parser.add_argument('--input_size', type=int, default=INPUT_SIZE,
                        help="side of the square images of 'train' setnames")
    parser.add_argument('-j', '--workers', type=int, default=DEFAULT_WORKERS,
                        help='worker processes (0 or 1: build in this process); default '
                             'min(CPU count, 8)')
    parser.add_argument('--uncompressed', action='store_true',
                        help="write with np.savez like the original (default: "
                             "np.savez_compressed)")
    parser.add_argument('--overwrite', action='store_true',
                        help='rebuild every file instead of resuming (keeping existing ones)')
    parser.add_argument('--no_progress', action='store_true', help='hide the progress bar')
    parser.add_argument('--build_vocab', default=None, metavar='PATH',
                        help='instead of batches, write a vocabulary file built from the '
                             'expressions of -d/-t (use a training split)')
    parser.add_argument('--min_count', type=int, default=1,
                        help='with --build_vocab: keep words seen at least this often')
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)

    kind = 'referit' if args.dataset == 'referit' else 'coco'
    syn = args.synthetic
    if syn is not None and not os.path.isdir(syn):
        parser.error('--synthetic %s: no such folder (run tools/make_synthetic_dataset.py first)' % syn)
    defaults = {
        'refer_root': (os.path.join(syn, 'refer') if syn else DEFAULT_REFER_ROOT),
        'coco_root': (os.path.join(syn, 'coco', 'images') if syn else DEFAULT_COCO_ROOT),
        'referit_root': (os.path.join(syn, 'referit') if syn else DEFAULT_REFERIT_ROOT),
        'query_dir': (syn if syn else DEFAULT_QUERY_DIR),
        'vocab': (os.path.join(syn, 'vocabulary_synthetic.txt') if syn else DEFAULT_VOCAB[kind]),
        'out': (syn if syn else DEFAULT_OUT),
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.num_words <= 0:
        parser.error('-T/--num_words must be positive, got %d' % args.num_words)
    if args.input_size <= 0:
        parser.error('--input_size must be positive, got %d' % args.input_size)
    if args.min_count <= 0:
        parser.error('--min_count must be positive, got %d' % args.min_count)
    return args


# --------------------------------------------------------------------------- build

def entries(args):
    """The dataset module's entries of -d/-t (util/datasets/)."""
    if args.dataset == referit.NAME:
        return referit.entries(args.setname, args.query_dir, args.referit_root)
    return refcoco.entries(args.dataset, args.setname, args.refer_root, args.coco_root)


def build_batches(args):
    """Build (or resume) one dataset split; returns (written, kept, total)."""
    if not os.path.isfile(args.vocab):
        raise FileNotFoundError('%s: vocabulary not found (bring the original vocabulary file, '
                                'or make one with --build_vocab)' % args.vocab)
    return batches.build_image_split(
        args.out, args.dataset, args.setname, entries(args), args.vocab, args.num_words,
        args.input_size, overwrite=args.overwrite, compressed=not args.uncompressed,
        workers=args.workers, progress=not args.no_progress)


def build_vocab_file(args):
    """A vocabulary of all expressions of -d/-t, in build order."""
    words = text_processing.build_vocab([s for e in entries(args) for s in e.sents],
                                        args.min_count)
    folder = os.path.dirname(os.path.abspath(args.build_vocab))
    os.makedirs(folder, exist_ok=True)
    save_str_list(words, args.build_vocab)
    return words


def main(argv=None):
    args = parse_args(argv)
    try:
        return _run(args)
    except (ValueError, OSError, pickle.UnpicklingError) as e:
        # Bad inputs already name the file and what was expected: no traceback needed.
        print('error: %s' % e, file=sys.stderr)
        return 2


def _run(args):
    if args.build_vocab:
        words = build_vocab_file(args)
        print('%s: %d words (%d special tokens + %d words of %s %s)'
              % (args.build_vocab, len(words), len(text_processing.SPECIAL_TOKENS),
                 len(words) - len(text_processing.SPECIAL_TOKENS), args.dataset, args.setname))
        return 0
    written, kept, total = build_batches(args)
    folder = batches.split_folder(args.out, args.dataset, args.setname)
    print('%s: %d expressions (%d written, %d kept from an earlier run)'
          % (folder, total, written, kept))
    return 0


if __name__ == '__main__':
    sys.exit(main())
