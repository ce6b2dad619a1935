"""Word-embedding matrices for a vocabulary: `data/{name}_emb.npy`, float32 [vocab_size, dim].

CMPC initialises its (trainable) word-embedding table from this matrix; row i is the
vector of line i of the vocabulary file. The released `Gref_emb.npy`/`referit_emb.npy`
came from GloVe 300-d vectors; here the matrix is built from public sources:
  * a GloVe text file (glove.840B.300d.txt format: a word, then `dim` floats, separated by
    single spaces; some 840B words contain spaces, so a line is split from the right);
  * a spaCy pipeline, vocab or vectors directory (or an installed package name), whose
    vectors (en_core_web_lg, en_vectors_web_lg) are GloVe Common Crawl vectors.

Words are looked up exactly as written in the vocabulary (the tokenizer lower-cases, and
both sources hold lower-case forms of common words).

Initialisation of the rows not found (documented contract, tested):
  * `<pad>` is all zeros: it only fills the left padding of a sentence;
  * every other missing row (`<go>`, `<eos>`, `<unk>` and words absent from the source)
    is drawn from N(0, s^2), s = the standard deviation of all entries of the vectors
    found (UNKNOWN_STD when none is found), from a generator seeded with `seed`. The
    normal draws are made for the whole [vocab_size, dim] table up front, so a word's
    initial vector depends only on (seed, its row, s), not on which other words exist.
"""

import os

import numpy as np

from util.text_processing import PAD_IDENTIFIER, load_vocab_list

EMB_DIM = 300
UNKNOWN_STD = 0.3  # about the per-entry std of GloVe 840B vectors


def read_glove_text(glove_path, wanted, dim=EMB_DIM):
    """{word: float32 [dim]} for the words of `wanted` present in a GloVe text file.

    The first occurrence of a word wins (840B lists a few words twice). A word2vec-style
    header line ("count dim") is skipped. The first line, and every line that is parsed
    (its word is wanted or contains spaces), must hold a word and exactly dim numbers,
    else ValueError names the file and the line.
    """
    wanted = set(wanted)
    found = {}
    first_vector_line = True
    with open(glove_path, encoding='utf-8', errors='replace') as f:
        for line_no, line in enumerate(f, 1):
            # Most of the 2.2M lines are not in a 10k-word vocabulary: skip them on their
            # first field without splitting 300 floats. A line with more than dim spaces
            # has a word containing spaces, so it is always parsed.
            if not first_vector_line and line[:line.find(' ')] not in wanted \
                    and line.count(' ') <= dim:
                continue
            parts = line.rstrip('\r\n').rstrip(' ').rsplit(' ', dim)
            if line_no == 1 and len(parts) == 2:
                continue  # word2vec header "count dim"
            # The first vector line is held to exactly dim + 1 fields, so that a file of
            # another dimension is caught rather than read with numbers in the word.
            if len(parts) != dim + 1 or (first_vector_line and ' ' in parts[0]):
                raise ValueError('%s:%d: expected a word and %d numbers, found %d fields '
                                 '(is --dim right?)' % (glove_path, line_no, dim,
                                                        len(line.split(' '))))
            first_vector_line = False
            word = parts[0]
            try:
                vec = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise ValueError('%s:%d: expected a word and %d numbers, found non-numeric '
                                 'fields (is --dim right?)' % (glove_path, line_no, dim)) from None
            if word in wanted and word not in found:
                found[word] = vec
    return found


def _load_spacy_vectors(spacy_path):
    import spacy
    from spacy.vectors import Vectors

    if os.path.isdir(spacy_path) and not os.path.isfile(os.path.join(spacy_path, 'config.cfg')):
        # A vocab/ or vectors directory written by Vocab.to_disk / Vectors.to_disk.
        if not os.path.isfile(os.path.join(spacy_path, 'key2row')) and \
                os.path.isdir(os.path.join(spacy_path, 'vocab')):
            spacy_path = os.path.join(spacy_path, 'vocab')
        if not os.path.isfile(os.path.join(spacy_path, 'key2row')):
            raise ValueError('%s: expected a spaCy pipeline (config.cfg), vocab or vectors '
                             'directory (vectors, key2row)' % spacy_path)
        return Vectors().from_disk(spacy_path)
    try:
        return spacy.load(spacy_path).vocab.vectors
    except OSError as e:
        raise ValueError('%s: not a spaCy pipeline directory or installed package (%s)'
                         % (spacy_path, e)) from None


def read_spacy_vectors(spacy_path, wanted):
    """{word: float32 [dim]} for the words of `wanted` that the spaCy vectors hold."""
    from spacy.strings import hash_string

    vectors = _load_spacy_vectors(spacy_path)
    if vectors.mode != 'default':
        raise ValueError('%s: spaCy vectors in %r mode are not supported; use a table of '
                         'word vectors (mode "default")' % (spacy_path, vectors.mode))
    table = np.asarray(vectors.data)
    found = {}
    for word in wanted:
        row = vectors.find(key=hash_string(word))
        if row >= 0:
            found[word] = table[row].astype(np.float32)
    return found, table.shape[1]


def build_embedding(vocab_words, found, dim=EMB_DIM, seed=0):
    """float32 [len(vocab_words), dim]: found vectors, the module's init for the rest."""
    for word, vec in found.items():
        if vec.shape != (dim,):
            raise ValueError('vector of %r has shape %s, expected (%d,)' % (word, vec.shape, dim))
    rows = [i for i, w in enumerate(vocab_words) if w in found]
    std = (float(np.std(np.stack([found[vocab_words[i]] for i in rows])))
           if rows else UNKNOWN_STD)
    rng = np.random.default_rng(seed)
    emb = (rng.standard_normal((len(vocab_words), dim)) * std).astype(np.float32)  # [V, dim]
    for i in rows:
        emb[i] = found[vocab_words[i]]
    for i, w in enumerate(vocab_words):
        if w == PAD_IDENTIFIER:
            emb[i] = 0
    return emb


def check_embedding(emb_path, vocab_path):
    """Raise ValueError unless emb_path holds a [vocab size, dim] matrix for vocab_path.

    Returns (vocab_size, dim). The vocabulary size is its number of lines, as the
    original model's vocab_size (12112 for vocabulary_Gref.txt).
    """
    vocab_size = len(load_vocab_list(vocab_path))
    try:
        emb = np.load(emb_path, mmap_mode='r', allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError('%s: embedding not found (expected a [%d, %d] .npy for %s)'
                                % (emb_path, vocab_size, EMB_DIM, vocab_path)) from None
    if emb.ndim != 2 or emb.shape[0] != vocab_size:
        raise ValueError('embedding %s has shape %s but vocabulary %s has %d words: it needs '
                         'one row per vocabulary line (rebuild it with tools/build_glove_emb.py)'
                         % (emb_path, tuple(emb.shape), vocab_path, vocab_size))
    return vocab_size, emb.shape[1]
