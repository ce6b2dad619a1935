"""Tokenizer and vocabulary: hand-worked cases of the original's rules.

The original (util/text_processing.py, 2018): strip; re.split(r'(\\W+)') keeping the
separators; drop blank tokens; lower-case; drop one trailing '.'; unknown -> <unk>;
keep the first T ids; left-pad with <pad>. Under Python 2, \\W was ASCII-only.
"""

import pytest

from util import text_processing as tp

# ids chosen by hand; <pad> 0 and <unk> 3 as in the original vocabularies
VOCAB = {'<pad>': 0, '<go>': 1, '<eos>': 2, '<unk>': 3, 'the': 4, 'red': 5, 'circle': 6,
         'left': 7, ',': 8, "'": 9, 's': 10}


@pytest.mark.parametrize('sentence, T, expected', [
    # "The red circle." -> the red circle (trailing '.' dropped, 'The' lower-cased)
    ('The red circle.', 5, [0, 0, 4, 5, 6]),
    # no spaces around ',': the separator token is exactly ',' (id 8)
    ('  red,circle  ', 4, [0, 5, 8, 6]),
    # ', ' keeps its space, is not ',' -> <unk>
    ('red, circle', 4, [0, 5, 3, 6]),
    # man ' s hat . -> man(unk) '(9) s(10) hat(unk); the lone ' ' separator is dropped
    ("man's hat.", 5, [0, 3, 9, 10, 3]),
    # '..' is not '.', so it stays (unknown)
    ('circle..', 3, [0, 6, 3]),
    # a lone '.' is dropped, leaving nothing: all padding (the original did not crash)
    ('.', 3, [0, 0, 0]),
    # upper case is lowered
    ('LEFT', 2, [0, 7]),
    # 7 words, T = 5: the first five are kept, no padding
    ('the red circle the red circle left', 5, [4, 5, 6, 4, 5]),
    # exactly T words: unchanged
    ('red circle', 2, [5, 6]),
    # ASCII \W: 'Café' -> 'caf', 'é' (two unknown tokens), as Python 2 split it
    ('Café', 3, [0, 3, 3]),
])
def test_preprocess_sentence_hand_cases(sentence, T, expected):
    out = tp.preprocess_sentence(sentence, VOCAB, T)
    assert out == expected
    assert all(type(i) is int for i in out)


def test_sentence2words_keeps_separators_like_the_original():
    assert tp.sentence2words("Man's hat, left.") == ['man', "'", 's', 'hat', ', ', 'left']


@pytest.mark.parametrize('sentence', ['', '   ', '\t\n'])
def test_empty_sentence_is_a_clear_error(sentence):
    with pytest.raises(ValueError, match='empty sentence'):
        tp.preprocess_sentence(sentence, VOCAB, 20)


def test_load_vocab_dict_line_numbers_and_duplicates(tmp_path):
    path = tmp_path / 'vocab.txt'
    path.write_text('<pad>\n<go>\n<eos>\n<unk>\n red \nblue\nred\n', encoding='utf-8')
    vocab = tp.load_vocab_dict_from_file(str(path))
    # lines are stripped; 'red' is on lines 4 and 6: the last one wins, as the original
    assert vocab == {'<pad>': 0, '<go>': 1, '<eos>': 2, '<unk>': 3, 'red': 6, 'blue': 5}
    assert tp.load_vocab_list(str(path))[4] == 'red'
    assert len(tp.load_vocab_list(str(path))) == 7


def test_vocab_without_unk_names_the_file(tmp_path):
    path = tmp_path / 'broken_vocab.txt'
    path.write_text('<pad>\nred\n', encoding='utf-8')
    with pytest.raises(ValueError, match='broken_vocab.txt.*<unk>'):
        tp.load_vocab_dict_from_file(str(path))


def test_build_vocab_order_and_specials():
    sents = ['Red circle.', 'red square', 'the circle, red', 'blue square']
    # counts: red 3, circle 2, square 2, blue 1, the 1; ', ' holds a space -> left out
    words = tp.build_vocab(sents)
    assert words == ['<pad>', '<go>', '<eos>', '<unk>', 'red', 'circle', 'square', 'blue', 'the']
    assert tp.build_vocab(sents, min_count=2) == ['<pad>', '<go>', '<eos>', '<unk>', 'red',
                                                  'circle', 'square']
