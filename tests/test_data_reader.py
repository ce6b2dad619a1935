"""Tests for util/data_reader.py on generated batch files in tmp_path."""

import os

import numpy as np
import pytest

from util.data_reader import DataReader, load_batch

PREFIX = 'unc_train'
NUM = 5


def _write_batch(folder, n, sent=None, **extra):
    # One generated expression, numbered by the value of text_batch[0].
    arrays = dict(text_batch=np.array([n, 0, 0], np.int32),
                  im_batch=np.full((4, 6, 3), n, np.uint8),
                  mask_batch=np.eye(4, 6, dtype=bool),
                  sent_batch=np.array(['sentence %d' % n] if sent is None else sent))
    arrays.update(extra)
    np.savez(os.path.join(folder, '%s_%d.npz' % (PREFIX, n)), **arrays)


@pytest.fixture
def batch_dir(tmp_path):
    for n in range(NUM):
        _write_batch(str(tmp_path), n)
    # A file after a gap (no _5) is not part of the set: counting stops at the gap.
    _write_batch(str(tmp_path), NUM + 1)
    # Another prefix in the same folder is ignored.
    np.savez(os.path.join(str(tmp_path), 'unc_val_0.npz'), x=np.zeros(1))
    return str(tmp_path)


def test_counts_keys_and_contents(batch_dir):
    with DataReader(batch_dir, PREFIX, shuffle=False) as reader:
        assert reader.num_batch == NUM
        batch = reader.read_batch(is_log=False)
        assert set(batch) == {'text_batch', 'im_batch', 'mask_batch', 'sent_batch'}
        assert batch['text_batch'][0] == 0
        assert batch['im_batch'].dtype == np.uint8 and batch['im_batch'].shape == (4, 6, 3)
        assert batch['mask_batch'].dtype == bool
        assert batch['sent_batch'][0] == 'sentence 0'


def test_unshuffled_order_and_epoch_counters(batch_dir):
    with DataReader(batch_dir, PREFIX, shuffle=False) as reader:
        ids = [int(reader.read_batch(is_log=False)['text_batch'][0]) for _ in range(NUM + 2)]
        assert ids == [0, 1, 2, 3, 4, 0, 1]
        assert (reader.n_epoch, reader.n_batch) == (1, 2)


def test_shuffle_covers_every_file_once_per_epoch(batch_dir):
    with DataReader(batch_dir, PREFIX, shuffle=True, prefetch_num=2, seed=3) as reader:
        epochs = [[int(reader.read_batch(is_log=False)['text_batch'][0]) for _ in range(NUM)]
                  for _ in range(4)]
        assert reader.n_epoch == 4 and reader.n_batch == 0
    for ids in epochs:
        assert sorted(ids) == list(range(NUM))
    # Reshuffled per epoch: with 5! = 120 orders, 4 identical epochs would be a bug.
    assert len({tuple(ids) for ids in epochs}) > 1
    # Same seed, same order.
    with DataReader(batch_dir, PREFIX, shuffle=True, seed=3) as again:
        assert [int(again.read_batch(is_log=False)['text_batch'][0])
                for _ in range(NUM)] == epochs[0]


def test_python2_bytes_sentence_is_decoded(tmp_path):
    # Python 2 numpy saved a str sentence as an 'S' (bytes) array.
    _write_batch(str(tmp_path), 0, sent=np.array([b'man on the left'], dtype='S'))
    _write_batch(str(tmp_path), 1, sent=np.array(['caf\xe9'.encode('latin-1')], dtype='S'))
    batch = load_batch(os.path.join(str(tmp_path), '%s_0.npz' % PREFIX))
    assert batch['sent_batch'].dtype.kind == 'U'
    assert batch['sent_batch'][0] == 'man on the left'
    # Not valid UTF-8 -> Latin-1 fallback.
    assert load_batch(os.path.join(str(tmp_path), '%s_1.npz' % PREFIX))['sent_batch'][0] \
        == 'caf\xe9'


def test_no_batches_error_names_folder_and_prefix(tmp_path):
    with pytest.raises(RuntimeError) as err:
        DataReader(str(tmp_path), 'referit_test')
    assert str(tmp_path) in str(err.value) and 'referit_test' in str(err.value)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        DataReader(str(tmp_path / 'nowhere'), 'referit_test')


def test_bad_file_is_reported_by_read_batch(tmp_path):
    _write_batch(str(tmp_path), 0, sent=np.array([{'a': 1}], dtype=object))
    reader = DataReader(str(tmp_path), PREFIX, shuffle=False)
    with pytest.raises(ValueError, match='%s_0.npz' % PREFIX):
        reader.read_batch(is_log=False)
    reader.close()


def test_missing_key_is_reported(tmp_path):
    np.savez(os.path.join(str(tmp_path), '%s_0.npz' % PREFIX), text_batch=np.zeros(3))
    with DataReader(str(tmp_path), PREFIX) as reader:
        with pytest.raises(KeyError, match='im_batch'):
            reader.read_batch(is_log=False)


def test_close_stops_daemon_thread(batch_dir):
    reader = DataReader(batch_dir, PREFIX, prefetch_num=1)
    assert reader._thread.daemon
    reader.read_batch(is_log=False)
    reader.close()
    assert not reader._thread.is_alive()
    with pytest.raises(RuntimeError, match='after close'):
        reader.read_batch(is_log=False)


@pytest.mark.parametrize('shuffle, global_batch, shard, num_shards, start',
                         [(True, 1, 0, 1, 7), (True, 1, 0, 1, 10), (False, 1, 0, 1, 3),
                          (True, 4, 1, 2, 8), (True, 2, 0, 2, 14)])
def test_start_continues_the_stream_of_a_reader_begun_at_0(batch_dir, shuffle, global_batch,
                                                           shard, num_shards, start):
    """A reader started at `start` (a resumed run: step x global batch) reads what a reader
    begun at 0 with the same seed reads after its first start / num_shards files."""
    kw = dict(shuffle=shuffle, seed=3, global_batch=global_batch, shard=shard,
              num_shards=num_shards)
    with DataReader(batch_dir, PREFIX, **kw) as reader:
        ids = [int(reader.read_batch(is_log=False)['text_batch'][0]) for _ in range(20)]
    skipped = start // num_shards  # this shard's share of the first `start` files
    with DataReader(batch_dir, PREFIX, start=start, **kw) as reader:
        resumed = [int(reader.read_batch(is_log=False)['text_batch'][0])
                   for _ in range(20 - skipped)]
    assert resumed == ids[skipped:]
