"""Write one .npz per referring expression, in the original CMPC layout, from public files.

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
import multiprocessing
import os
import pickle
import sys

import numpy as np
import skimage
import skimage.io
from tqdm import tqdm

from util import im_processing, text_processing
from util.io import (check_build_manifest, file_sha1, load_json, load_referit_gt_mask,
                     remove_stale_temps, save_npz_atomic, save_str_list)
from util.refer import Refer, segmentation_mask
from util.cli import HelpFormatter

# dataset flag -> (refer dataset, split_by)
COCO_DATASETS = {
    'unc': ('refcoco', 'unc'),
    'unc+': ('refcoco+', 'unc'),
    'Gref': ('refcocog', 'google'),
    'Gref_umd': ('refcocog', 'umd'),
}
DATASETS = tuple(COCO_DATASETS) + ('referit',)
DEFAULT_DATASET = 'referit'
DEFAULT_SETNAME = 'trainval'
T = 20
INPUT_SIZE = 320
DEFAULT_REFER_ROOT = './external/refer/data'
DEFAULT_COCO_ROOT = './data/coco/images'
COCO_IM_TYPE = 'train2014'
DEFAULT_REFERIT_ROOT = './data/referit'
DEFAULT_QUERY_DIR = './data'
DEFAULT_VOCAB = {'coco': './data/vocabulary_Gref.txt', 'referit': './data/vocabulary_referit.txt'}
DEFAULT_OUT = '.'
DEFAULT_WORKERS = min(os.cpu_count() or 1, 8)
MANIFEST = '.build_batches.json'


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


# --------------------------------------------------------------------------- samples

def collect_coco_tasks(args):
    """One task per ref of the split, in refer.Refs order; n0 numbers its first sentence."""
    dataset, split_by = COCO_DATASETS[args.dataset]
    refer = Refer(args.refer_root, dataset=dataset, split_by=split_by)
    refs = refer.refs_in_split(args.setname)
    if not refs:
        raise ValueError('-t %s: %s holds no ref of that split; splits present: %s'
                         % (args.setname, refer.ref_file, ', '.join(refer.splits())))
    tasks, n0 = [], 0
    for ref in refs:
        im_name = 'COCO_%s_%012d.jpg' % (COCO_IM_TYPE, ref['image_id'])
        sents = [s['sent'] for s in ref['sentences']]
        tasks.append({'n0': n0, 'sents': sents,
                      'image': os.path.join(args.coco_root, COCO_IM_TYPE, im_name),
                      'coco_seg': refer.segmentation(ref),
                      'what': '%s ref %s (ann %s)' % (refer.ref_file, ref['ref_id'],
                                                      ref['ann_id'])})
        n0 += len(sents)
    return tasks


def referit_query_file(args):
    return os.path.join(args.query_dir, 'referit_query_%s.json' % args.setname)


def collect_referit_tasks(args):
    """One task per query key, in the json's key order (the original's samples order)."""
    query_file = referit_query_file(args)
    if not os.path.isfile(query_file):
        raise FileNotFoundError('%s not found: -t %s needs referit_query_%s.json in --query_dir'
                                % (query_file, args.setname, args.setname))
    query_dict = load_json(query_file)
    if not isinstance(query_dict, dict):
        raise ValueError('%s: expected {"<image id>_<n>": [sentence, ...]}' % query_file)
    tasks, n0 = [], 0
    for name, sents in query_dict.items():
        if not isinstance(sents, list) or not all(isinstance(s, str) for s in sents):
            raise ValueError('%s: entry %r must be a list of sentences' % (query_file, name))
        im_name = name.split('_', 1)[0] + '.jpg'
        tasks.append({'n0': n0, 'sents': sents,
                      'image': os.path.join(args.referit_root, 'images', im_name),
                      'referit_mask': os.path.join(args.referit_root, 'mask', name + '.mat'),
                      'what': '%s entry %s' % (query_file, name)})
        n0 += len(sents)
    return tasks


# --------------------------------------------------------------------------- writing

_CFG = {}


def _init_worker(cfg):
    _CFG.clear()
    _CFG.update(cfg)


def batch_path(folder, prefix, n):
    return os.path.join(folder, '%s_%d.npz' % (prefix, n))


def _read_image(path, what):
    if not os.path.isfile(path):
        raise FileNotFoundError('%s: image of %s not found' % (path, what))
    return skimage.io.imread(path)


def write_task(task):
    """Write the missing files of one ref / query entry; returns how many were written."""
    cfg = _CFG
    todo = [(n, sent) for n, sent in enumerate(task['sents'], task['n0'])
            if cfg['overwrite'] or not os.path.exists(batch_path(cfg['folder'], cfg['prefix'], n))]
    if not todo:
        return 0
    im = _read_image(task['image'], task['what'])  # uint8 [H, W(, 3)]
    try:
        if 'coco_seg' in task:
            mask = segmentation_mask(task['coco_seg'], im.shape[0], im.shape[1])
        else:
            mask = load_referit_gt_mask(task['referit_mask'])
            if mask.shape != im.shape[:2]:
                raise ValueError('mask %s does not match image %s of shape %s'
                                 % (mask.shape, task['image'], im.shape))
    except (ValueError, TypeError) as e:
        raise ValueError('%s: bad mask (%s)' % (task['what'], e)) from None
    mask = mask.astype(np.float32)  # [H, W]

    if cfg['train']:
        h = w = cfg['input_size']
        im = skimage.img_as_ubyte(im_processing.resize_and_pad(im, h, w))  # [h, w(, 3)]
        mask = im_processing.resize_and_pad(mask, h, w)  # [h, w] float
    im = im_processing.as_rgb(im)  # [h, w, 3]

    for n, sent in todo:
        try:
            text = text_processing.preprocess_sentence(sent, cfg['vocab_dict'], cfg['T'])
        except ValueError as e:
            raise ValueError('%s, sentence %d: %s' % (task['what'], n - task['n0'], e)) from None
        save_npz_atomic(batch_path(cfg['folder'], cfg['prefix'], n),
                        compressed=cfg['compressed'],
                        text_batch=np.asarray(text, dtype=np.int64),  # [T]
                        im_batch=im,                                  # [h, w, 3] uint8
                        mask_batch=(mask > 0),                        # [h, w] bool
                        sent_batch=[sent])                            # [1] str
    return len(todo)


def build_batches(args):
    """Build (or resume) one dataset split; returns (written, kept, total)."""
    if not os.path.isfile(args.vocab):
        raise FileNotFoundError('%s: vocabulary not found (bring the original vocabulary file, '
                                'or make one with --build_vocab)' % args.vocab)
    vocab_dict = text_processing.load_vocab_dict_from_file(args.vocab)
    tasks = (collect_referit_tasks(args) if args.dataset == 'referit'
             else collect_coco_tasks(args))
    total = sum(len(t['sents']) for t in tasks)

    folder = os.path.join(args.out, args.dataset, args.setname + '_batch')
    prefix = '%s_%s' % (args.dataset, args.setname)
    os.makedirs(folder, exist_ok=True)
    settings = {'dataset': args.dataset, 'setname': args.setname, 'T': args.num_words,
                'input_size': args.input_size, 'vocab_sha1': file_sha1(args.vocab),
                'expressions': total}
    check_build_manifest(os.path.join(folder, MANIFEST), settings, args.overwrite)
    remove_stale_temps(folder, prefix + '_')

    existing = set() if args.overwrite else set(os.listdir(folder))
    pending = [t for t in tasks
               if any('%s_%d.npz' % (prefix, n) not in existing
                      for n in range(t['n0'], t['n0'] + len(t['sents'])))]
    kept = sum(('%s_%d.npz' % (prefix, n)) in existing for n in range(total))
    cfg = {'folder': folder, 'prefix': prefix, 'vocab_dict': vocab_dict, 'T': args.num_words,
           'input_size': args.input_size, 'train': 'train' in args.setname,
           'compressed': not args.uncompressed, 'overwrite': args.overwrite}

    written = 0
    with tqdm(total=total, initial=kept, unit='expr', desc=prefix, dynamic_ncols=True,
              disable=args.no_progress) as bar:
        if args.workers <= 1 or len(pending) <= 1:
            _init_worker(cfg)
            for task in pending:
                k = write_task(task)
                written += k
                bar.update(k)
        else:
            with multiprocessing.Pool(args.workers, initializer=_init_worker,
                                      initargs=(cfg,)) as pool:
                for k in pool.imap_unordered(write_task, pending, chunksize=1):
                    written += k
                    bar.update(k)
    missing = [n for n in range(total) if not os.path.isfile(batch_path(folder, prefix, n))]
    if missing:
        raise RuntimeError('%s: %d expression files missing after the build (first: %s)'
                           % (folder, len(missing), batch_path(folder, prefix, missing[0])))
    return written, kept, total


# --------------------------------------------------------------------------- vocabulary

def split_sentences(args):
    """All expressions of -d/-t in build order."""
    tasks = (collect_referit_tasks(args) if args.dataset == 'referit'
             else collect_coco_tasks(args))
    return [s for t in tasks for s in t['sents']]


def build_vocab_file(args):
    words = text_processing.build_vocab(split_sentences(args), args.min_count)
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
    folder = os.path.join(args.out, args.dataset, args.setname + '_batch')
    print('%s: %d expressions (%d written, %d kept from an earlier run)'
          % (folder, total, written, kept))
    return 0


if __name__ == '__main__':
    sys.exit(main())
