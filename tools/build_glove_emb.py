"""Build the word-embedding matrix `{out_dir}/{name}_emb.npy` for a vocabulary file.

Replaces the Baidu-drive download of Gref_emb.npy / referit_emb.npy. Exact commands:

  # the original vocabularies, from GloVe 840B (nlp.stanford.edu/data/glove.840B.300d.zip)
  python -m tools.build_glove_emb --vocab data/vocabulary_Gref.txt --name Gref \
      --glove data/glove.840B.300d.txt
  python -m tools.build_glove_emb --vocab data/vocabulary_referit.txt --name referit \
      --glove data/glove.840B.300d.txt
  # or from a spaCy package with GloVe Common Crawl vectors (pip install en_core_web_lg,
  # or a pipeline / vocab / vectors directory saved with to_disk)
  python -m tools.build_glove_emb --vocab data/vocabulary_Gref.txt --name Gref --spacy en_core_web_lg
  # check that an embedding fits a vocabulary (exit status 1 and a message otherwise)
  python -m tools.build_glove_emb --vocab data/vocabulary_Gref.txt --name Gref --check

Writes (atomically: temporary file, then rename):
  {out_dir}/{name}_emb.npy   float32 [vocab_size, dim]; row i is the word on line i of
                             --vocab. Rows not found: <pad> zeros, the others N(0, s^2) with
                             s the std of the vectors found (see util/glove.py).
and prints how many vocabulary words were found in the source.
"""

import argparse
import os
import sys

from util.glove import (EMB_DIM, build_embedding, check_embedding, read_glove_text,
                        read_spacy_vectors)
from util.io import save_npy_atomic
from util.text_processing import load_vocab_list
from util.cli import HelpFormatter

DEFAULT_OUT_DIR = 'data'
DEFAULT_SEED = 0


def build_parser():
    parser = argparse.ArgumentParser(
        description='Build data/{name}_emb.npy [vocab_size, dim] for a vocabulary from GloVe '
                    'or spaCy vectors.',
        formatter_class=HelpFormatter)
    parser.add_argument('--vocab', required=True,
                        help='vocabulary file, one word per line (e.g. data/vocabulary_Gref.txt)')
    parser.add_argument('--name', required=True,
                        help='embedding name: writes {out_dir}/{name}_emb.npy (the model reads '
                             'data/Gref_emb.npy for unc/unc+/Gref, data/referit_emb.npy for '
                             'referit)')
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument('--glove',
                     help='GloVe text file (glove.840B.300d.txt format: word then dim numbers '
                          'per line)')
    src.add_argument('--spacy',
                     help='spaCy pipeline directory or installed package name (e.g. '
                          'en_core_web_lg), or a vocab/vectors directory saved with to_disk')
    src.add_argument('--random', action='store_true',
                     help='no source: every row (but <pad>) from the documented random init')
    src.add_argument('--check', action='store_true',
                     help='only check that {out_dir}/{name}_emb.npy fits --vocab')
    parser.add_argument('--out_dir', default=DEFAULT_OUT_DIR,
                        help='folder of the output {name}_emb.npy')
    parser.add_argument('--dim', type=int, default=EMB_DIM,
                        help='vector size expected in the source (GloVe 840B and spaCy lg: 300)')
    parser.add_argument('--seed', type=int, default=DEFAULT_SEED,
                        help='seed of the random init of words not found')
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out_path = os.path.join(args.out_dir, '%s_emb.npy' % args.name)
    if args.check:
        try:
            vocab_size, dim = check_embedding(out_path, args.vocab)
        except (ValueError, FileNotFoundError) as e:
            print('error: %s' % e, file=sys.stderr)
            return 1
        print('%s fits %s: [%d, %d]' % (out_path, args.vocab, vocab_size, dim))
        return 0

    words = load_vocab_list(args.vocab)
    if args.glove:
        try:
            found = read_glove_text(args.glove, words, args.dim)
        except (ValueError, OSError) as e:  # another dimension, an unreadable file
            print('error: --glove %s' % e if args.glove not in str(e) else 'error: %s' % e,
                  file=sys.stderr)
            return 1
        source = args.glove
    elif args.spacy:
        found, dim = read_spacy_vectors(args.spacy, words)
        if dim != args.dim:
            raise SystemExit('error: %s has %d-d vectors, --dim is %d'
                             % (args.spacy, dim, args.dim))
        source = args.spacy
    else:
        found, source = {}, None
    emb = build_embedding(words, found, args.dim, args.seed)  # [V, dim]
    os.makedirs(args.out_dir or '.', exist_ok=True)
    save_npy_atomic(out_path, emb)
    if args.random:
        print('%s: float32 %s, random init (<pad> zeros)' % (out_path, list(emb.shape)))
        return 0
    n_found = sum(w in found for w in words)
    print('%s: float32 %s; %d of %d vocabulary words found in %s (%.1f%%), the rest '
          'initialised randomly (<pad> zeros)'
          % (out_path, list(emb.shape), n_found, len(words), source,
             100.0 * n_found / max(len(words), 1)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
