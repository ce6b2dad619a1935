"""Embedding builder: GloVe text and spaCy sources, documented init, vocabulary checks."""

import re

import numpy as np
import pytest

from tools import build_glove_emb
from util.glove import UNKNOWN_STD, build_embedding, check_embedding, read_glove_text

VOCAB = ['<pad>', '<go>', '<eos>', '<unk>', 'red', 'circle', 'zebra']
DIM = 3


def _write_vocab(tmp_path, words=VOCAB, name='vocab.txt'):
    path = tmp_path / name
    path.write_text(''.join(w + '\n' for w in words), encoding='utf-8')
    return str(path)


def _write_glove(tmp_path):
    # 840B style: some 'words' hold spaces, so fields are counted from the right;
    # 'red' appears twice (the first wins); '. . .' must not be taken for '.'.
    lines = ['the 0.5 0.5 0.5',
             '. . . 9 9 9',
             'red 1 2 3',
             'circle -1.5 0 2.5',
             'red 7 7 7',
             'Zebra 4 4 4']
    path = tmp_path / 'glove.txt'
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return str(path)


def test_read_glove_text(tmp_path):
    found = read_glove_text(_write_glove(tmp_path), ['red', 'circle', '.', '. . .', 'zebra'], DIM)
    assert sorted(found) == ['. . .', 'circle', 'red']  # 'Zebra' is not 'zebra'
    np.testing.assert_array_equal(found['red'], [1, 2, 3])
    np.testing.assert_array_equal(found['circle'], [-1.5, 0, 2.5])
    np.testing.assert_array_equal(found['. . .'], [9, 9, 9])
    assert found['red'].dtype == np.float32


@pytest.mark.parametrize('dim', [2, 4])
def test_glove_of_another_dimension_is_refused(tmp_path, dim):
    with pytest.raises(ValueError, match=r'glove\.txt:1: expected a word and %d numbers' % dim):
        read_glove_text(_write_glove(tmp_path), ['red'], dim)


def test_build_embedding_init_contract():
    found = {'red': np.array([1, 2, 3], np.float32), 'circle': np.array([3, 2, 1], np.float32)}
    emb = build_embedding(VOCAB, found, DIM, seed=5)
    assert emb.shape == (7, 3) and emb.dtype == np.float32
    np.testing.assert_array_equal(emb[0], 0)  # <pad>
    np.testing.assert_array_equal(emb[4], [1, 2, 3])
    np.testing.assert_array_equal(emb[5], [3, 2, 1])
    # missing rows: N(0, s^2), s = std of the six found entries {1, 2, 3, 3, 2, 1} = sqrt(2/3),
    # drawn for the whole [7, 3] table from default_rng(5)
    z = np.random.default_rng(5).standard_normal((7, 3))
    s = np.sqrt(2.0 / 3.0)
    np.testing.assert_allclose(emb[[1, 2, 3, 6]], (z * s)[[1, 2, 3, 6]], rtol=1e-6)
    # nothing found: the documented default scale
    emb0 = build_embedding(VOCAB, {}, DIM, seed=5)
    np.testing.assert_allclose(emb0[6], z[6] * UNKNOWN_STD, rtol=1e-6)


def test_cli_from_glove(tmp_path, capsys):
    vocab = _write_vocab(tmp_path)
    rc = build_glove_emb.main(['--vocab', vocab, '--name', 'toy', '--glove', _write_glove(tmp_path),
                               '--dim', '3', '--out_dir', str(tmp_path / 'data')])
    assert rc == 0
    emb = np.load(tmp_path / 'data' / 'toy_emb.npy')
    assert emb.shape == (7, 3) and emb.dtype == np.float32
    np.testing.assert_array_equal(emb[4], [1, 2, 3])
    assert '2 of 7 vocabulary words found' in capsys.readouterr().out
    assert check_embedding(str(tmp_path / 'data' / 'toy_emb.npy'), vocab) == (7, 3)


def test_cli_glove_of_another_dimension_is_a_one_line_error(tmp_path, capsys):
    rc = build_glove_emb.main(['--vocab', _write_vocab(tmp_path), '--name', 'toy', '--glove',
                               _write_glove(tmp_path), '--dim', '4',
                               '--out_dir', str(tmp_path / 'data')])
    assert rc == 1
    err = capsys.readouterr().err
    assert re.fullmatch(r'error: .*glove\.txt:1: expected a word and 4 numbers.*\n', err), err
    assert not (tmp_path / 'data' / 'toy_emb.npy').exists()


def test_from_spacy_vectors_and_pipeline(tmp_path):
    spacy = pytest.importorskip('spacy')
    from spacy.strings import hash_string
    from spacy.vectors import Vectors

    table = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    vectors = Vectors(data=table, keys=[hash_string('circle'), hash_string('zebra')])
    vectors.to_disk(tmp_path / 'vectors')
    nlp = spacy.blank('en')
    nlp.vocab.vectors = vectors
    nlp.to_disk(tmp_path / 'pipeline')
    vocab = _write_vocab(tmp_path)
    for src in ('vectors', 'pipeline'):
        rc = build_glove_emb.main(['--vocab', vocab, '--name', src, '--spacy', str(tmp_path / src),
                                   '--dim', '3', '--out_dir', str(tmp_path)])
        assert rc == 0
        emb = np.load(tmp_path / ('%s_emb.npy' % src))
        np.testing.assert_array_equal(emb[5], [1, 2, 3])  # circle
        np.testing.assert_array_equal(emb[6], [4, 5, 6])  # zebra
        np.testing.assert_array_equal(emb[0], 0)
    with pytest.raises(SystemExit, match='3-d vectors, --dim is 300'):
        build_glove_emb.main(['--vocab', vocab, '--name', 'x', '--spacy', str(tmp_path / 'vectors'),
                              '--out_dir', str(tmp_path)])


def test_mismatched_vocabulary_and_embedding(tmp_path, capsys):
    vocab = _write_vocab(tmp_path, VOCAB + ['extra'], name='vocab_big.txt')
    emb_path = tmp_path / 'small_emb.npy'
    np.save(emb_path, np.zeros((7, 300), np.float32))
    with pytest.raises(ValueError) as err:
        check_embedding(str(emb_path), vocab)
    msg = str(err.value)
    assert 'small_emb.npy' in msg and 'vocab_big.txt' in msg
    assert '(7, 300)' in msg and '8 words' in msg
    rc = build_glove_emb.main(['--vocab', vocab, '--name', 'small', '--check',
                               '--out_dir', str(tmp_path)])
    assert rc == 1
    assert 'vocab_big.txt' in capsys.readouterr().err


def test_every_flag_has_help():
    for action in build_glove_emb.build_parser()._actions:
        assert action.help, action.option_strings
