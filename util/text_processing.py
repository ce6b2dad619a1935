"""Tokenizer and vocabulary of the original CMPC code, ported to Python 3.

A sentence becomes T word ids exactly as the 2018 code did:
  1. strip, split with the regex `(\\W+)` keeping the separators as tokens;
  2. drop tokens that are blank after strip, lower-case the rest (a kept separator keeps
     its inner spaces: "a, b" gives ['a', ', ', 'b'], and ', ' is then <unk>);
  3. drop one trailing '.' token;
  4. map to ids (<unk> for words not in the vocabulary), keep the first T ids and pad on
     the left with <pad> up to T.

The original ran under Python 2 where `\\W` without re.UNICODE is ASCII-only, so the regex
is compiled with re.ASCII: 'café' splits into 'caf', 'é' as it did then.
The one change: an empty (or blank) sentence raises ValueError instead of the original's
IndexError on `words[-1]`.
"""

import re

UNK_IDENTIFIER = '<unk>'  # <unk> is the word used to identify unknown words
PAD_IDENTIFIER = '<pad>'
GO_IDENTIFIER = '<go>'
EOS_IDENTIFIER = '<eos>'
# The special tokens heading both original vocabularies (vocabulary_Gref.txt and
# vocabulary_referit.txt), in this order: <pad> is id 0 and <unk> id 3.
SPECIAL_TOKENS = (PAD_IDENTIFIER, GO_IDENTIFIER, EOS_IDENTIFIER, UNK_IDENTIFIER)

SENTENCE_SPLIT_REGEX = re.compile(r'(\W+)', re.ASCII)


def load_vocab_dict_from_file(dict_file):
    """{word: line index} of a vocabulary file with one word per line.

    As the original: lines are stripped, and a word listed twice maps to its last line.
    Raises ValueError naming the file when <pad> or <unk> is missing, since every
    sentence needs one of them.
    """
    with open(dict_file, encoding='utf-8') as f:
        words = [w.strip() for w in f.readlines()]
    vocab_dict = {words[n]: n for n in range(len(words))}
    missing = [w for w in (PAD_IDENTIFIER, UNK_IDENTIFIER) if w not in vocab_dict]
    if missing:
        raise ValueError('%s: vocabulary file has no %s line; expected one word per line '
                         'starting with %s' % (dict_file, ' or '.join(missing),
                                               ' '.join(SPECIAL_TOKENS)))
    return vocab_dict


def load_vocab_list(dict_file):
    """The words of a vocabulary file in line order (its length is the vocabulary size)."""
    with open(dict_file, encoding='utf-8') as f:
        return [w.strip() for w in f.readlines()]


def sentence2words(sentence):
    """The original's tokens of a sentence: regex split, lower-case, trailing '.' dropped."""
    words = SENTENCE_SPLIT_REGEX.split(sentence.strip())
    words = [w.lower() for w in words if len(w.strip()) > 0]
    if not words:
        # The original crashed here with IndexError on words[-1].
        raise ValueError('empty sentence %r: a referring expression needs at least one '
                         'word' % (sentence,))
    # remove .
    if words[-1] == '.':
        words = words[:-1]
    return words


def sentence2vocab_indices(sentence, vocab_dict):
    """List of vocabulary ids of the sentence's words, <unk> for unknown words."""
    words = sentence2words(sentence)
    unk = vocab_dict[UNK_IDENTIFIER]
    return [vocab_dict.get(w, unk) for w in words]


def preprocess_sentence(sentence, vocab_dict, T):
    """List of exactly T python ints: the first T word ids, left-padded with <pad>."""
    vocab_indices = sentence2vocab_indices(sentence, vocab_dict)
    # Truncate long sentences
    if len(vocab_indices) > T:
        vocab_indices = vocab_indices[:T]
    # Pad short sentences at the beginning with the special symbol '<pad>'
    if len(vocab_indices) < T:
        vocab_indices = [vocab_dict[PAD_IDENTIFIER]] * (T - len(vocab_indices)) + vocab_indices
    return vocab_indices


def build_vocab(sentences, min_count=1):
    """Vocabulary word list from sentences: SPECIAL_TOKENS, then words by falling count.

    Words are the tokenizer's (sentence2words), so every word of a training expression
    maps to its own id; ties are broken alphabetically so the file is deterministic.
    Tokens holding whitespace (kept separators such as ', ') are left out: a vocabulary
    line is stripped when read, so they could never be looked up and are <unk> anyway.
    """
    counts = {}
    for sent in sentences:
        for w in sentence2words(sent):
            if w.split() != [w]:
                continue
            counts[w] = counts.get(w, 0) + 1
    words = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS),
                   key=lambda w: (-counts[w], w))
    return list(SPECIAL_TOKENS) + words
