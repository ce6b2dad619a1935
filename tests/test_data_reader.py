"""Tests for util/data_reader.py on generated batch files in tmp_path."""

import os
import zipfile

import numpy as np
import pytest

from util.data_reader import BatchFileError, DataReader, count_batches, load_batch

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
    # Another prefix, a zero-padded number and a temporary of build_batches.py are ignored.
    np.savez(os.path.join(str(tmp_path), 'unc_val_0.npz'), x=np.zeros(1))
    np.savez(os.path.join(str(tmp_path), '%s_07.npz' % PREFIX), x=np.zeros(1))
    open(os.path.join(str(tmp_path), '.%s_5.npz.x1y2.tmp' % PREFIX), 'w').close()
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
    with pytest.raises(BatchFileError) as err:
        DataReader(str(tmp_path), 'referit_test')
    assert str(tmp_path) in str(err.value) and 'referit_test' in str(err.value)
    with pytest.raises(BatchFileError, match='does not exist'):
        DataReader(str(tmp_path / 'nowhere'), 'referit_test')


def test_a_gap_followed_by_higher_numbers_names_the_first_missing_file(batch_dir):
    # The original stopped counting at the first gap and silently left the rest out.
    for n in (NUM + 1, NUM + 3):
        _write_batch(batch_dir, n)
    with pytest.raises(BatchFileError) as err:
        DataReader(batch_dir, PREFIX)
    assert str(err.value) == (
        'data reader: %s is missing but unc_train_6.npz .. unc_train_8.npz (2 files) exist; '
        'batch files are numbered 0, 1, ... without gaps (rerun build_batches.py: it writes '
        'the missing files and keeps the others)' % os.path.join(batch_dir, 'unc_train_5.npz'))
    os.remove(os.path.join(batch_dir, '%s_0.npz' % PREFIX))
    with pytest.raises(BatchFileError, match='unc_train_0.npz is missing but unc_train_1.npz'):
        count_batches(batch_dir, PREFIX)


def _good_arrays(**changes):
    arrays = dict(text_batch=np.array([3, 0, 0], np.int64), im_batch=np.zeros((4, 6, 3), np.uint8),
                  mask_batch=np.eye(4, 6, dtype=bool), sent_batch=np.array(['a sentence']))
    arrays.update(changes)
    return arrays


def _truncated(path):
    np.savez(path, **_good_arrays())
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])


def _corrupt(path):  # the last byte of im_batch's data flipped: its CRC no longer matches
    np.savez(path, **_good_arrays())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo('im_batch.npy')
    # local header: 30 bytes, the name, the extra field (its length at bytes 28-29)
    with open(path, 'rb') as f:
        data = bytearray(f.read())
    extra = int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], 'little')
    end = info.header_offset + 30 + len(info.filename) + extra + info.compress_size
    data[end - 1] ^= 0xff
    with open(path, 'wb') as f:
        f.write(bytes(data))


def _write(**arrays):
    return lambda path: np.savez(path, **arrays)


def _zip_of_text(path):
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('notes.txt', 'not a batch')


def _text_file(path):
    with open(path, 'w') as f:
        f.write('hello\n')


def _npy(path):
    with open(path, 'wb') as f:
        np.save(f, np.zeros(3))


# Every way a batch file can be broken, and the end of its one-line message: the message starts
# with the file's path.
BAD_FILES = {
    'truncated': (_truncated, ': not a readable .npz archive, truncated or another kind of file '
                  '(BadZipFile: File is not a zip file); expected an .npz with text_batch, '
                  'im_batch, mask_batch, sent_batch as build_batches.py writes'),
    'empty': (lambda path: open(path, 'wb').close(),
              ': empty file (0 bytes); expected an .npz with text_batch, im_batch, mask_batch, '
              'sent_batch as build_batches.py writes'),
    'text file': (_text_file,
                  ': not a readable .npz archive, truncated or another kind of file (no numpy '
                  'header); expected an .npz with text_batch, im_batch, mask_batch, sent_batch as '
                  'build_batches.py writes'),
    'npy': (_npy, ': a single .npy array float64 [3], not an archive; expected an .npz with '
            'text_batch, im_batch, mask_batch, sent_batch as build_batches.py writes'),
    'corrupt member': (_corrupt, ": im_batch cannot be read, the file is truncated or corrupt "
                       "(BadZipFile: Bad CRC-32 for file 'im_batch.npy'); expected an .npz "
                       "with text_batch, im_batch, mask_batch, sent_batch as build_batches.py "
                       "writes"),
    'object array': (_write(**_good_arrays(sent_batch=np.array([{'a': 1}], dtype=object))),
                     ': sent_batch is an object array, which needs pickle (refused: files are '
                     'loaded with allow_pickle=False); expected sent_batch str or bytes, '
                     'non-empty (the sentence at [0])'),
    'missing keys': (_write(text_batch=np.zeros(3, np.int64), sent_batch=np.array(['s'])),
                     ': missing im_batch, mask_batch (has sent_batch, text_batch); expected an '
                     '.npz with text_batch, im_batch, mask_batch, sent_batch as build_batches.py '
                     'writes'),
    'zip of other files': (_zip_of_text, ': missing text_batch, im_batch, mask_batch, sent_batch '
                           '(has notes.txt); expected an .npz with text_batch, im_batch, '
                           'mask_batch, sent_batch as build_batches.py writes'),
    'float words': (_write(**_good_arrays(text_batch=np.zeros(3))),
                    ': text_batch is float64 [3]; expected integer [T]'),
    '2-D words': (_write(**_good_arrays(text_batch=np.zeros((1, 3), np.int32))),
                  ': text_batch is int32 [1, 3]; expected integer [T]'),
    'float image': (_write(**_good_arrays(im_batch=np.zeros((4, 6, 3), np.float32))),
                    ': im_batch is float32 [4, 6, 3]; expected uint8 [h, w, 3] or [h, w]'),
    'RGBA image': (_write(**_good_arrays(im_batch=np.zeros((4, 6, 4), np.uint8))),
                   ': im_batch is uint8 [4, 6, 4]; expected uint8 [h, w, 3] or [h, w]'),
    'batched image': (_write(**_good_arrays(im_batch=np.zeros((1, 4, 6, 3), np.uint8))),
                      ': im_batch is uint8 [1, 4, 6, 3]; expected uint8 [h, w, 3] or [h, w]'),
    'mask of another size': (_write(**_good_arrays(mask_batch=np.zeros((6, 4), bool))),
                             ': mask_batch is bool [6, 4]; expected bool or numeric [4, 6], the '
                             'h, w of im_batch'),
    'mask with channels': (_write(**_good_arrays(mask_batch=np.zeros((4, 6, 1), bool))),
                           ': mask_batch is bool [4, 6, 1]; expected bool or numeric [4, 6], '
                           'the h, w of im_batch'),
    'empty sentence array': (_write(**_good_arrays(sent_batch=np.array([], dtype=str))),
                             ': sent_batch is <U1 [0]; expected str or bytes, non-empty (the '
                             'sentence at [0])'),
    'numeric image id': (_write(**_good_arrays(image_id=np.array([7]))),
                         ': image_id is int64 [1]; expected str [1], the identity of the picture'),
}


@pytest.mark.parametrize('kind', sorted(BAD_FILES))
def test_a_broken_file_is_one_line_naming_it_and_what_was_expected(tmp_path, kind):
    write, message = BAD_FILES[kind]
    path = str(tmp_path / ('%s_0.npz' % PREFIX))
    write(path)
    with pytest.raises(BatchFileError) as err:
        load_batch(path)
    assert str(err.value) == path + message
    assert '\n' not in str(err.value)


def test_accepted_variants_of_the_layout(tmp_path):
    """What build_batches.py and the original wrote: grey [h, w] images, masks as bool, uint8
    or float, int32 or int64 words, str or bytes sentences."""
    path = str(tmp_path / 'b.npz')
    for changes in (dict(im_batch=np.zeros((4, 6), np.uint8)),
                    dict(mask_batch=np.ones((4, 6), np.float32)),
                    dict(mask_batch=np.ones((4, 6), np.uint8), text_batch=np.zeros(20, np.int32)),
                    dict(sent_batch=np.array([b'bytes'], dtype='S'))):
        np.savez(path, **_good_arrays(**changes))
        load_batch(path)


def test_bad_file_is_reported_by_read_batch(tmp_path):
    _write_batch(str(tmp_path), 0)
    _write_batch(str(tmp_path), 1, sent=np.array([{'a': 1}], dtype=object))
    reader = DataReader(str(tmp_path), PREFIX, shuffle=False)
    reader.read_batch(is_log=False)
    with pytest.raises(BatchFileError, match='%s_1.npz: sent_batch is an object array' % PREFIX):
        reader.read_batch(is_log=False)
    with pytest.raises(BatchFileError):  # the reader stays stopped on it
        reader.read_batch(is_log=False)
    reader.close()


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


def test_video_sample_gets_its_annotated_frame_and_shapes_are_checked(tmp_path):
    from util.data_reader import VIDEO_REQUIRED_KEYS
    frames = np.arange(16, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 6, 3), np.uint8)
    good = dict(text_batch=np.arange(20), mask_batch=np.zeros((4, 6), bool),
                sent_batch=np.array(['the dog']), frames=frames)
    np.savez(tmp_path / 'v_0.npz', **good)
    batch = load_batch(str(tmp_path / 'v_0.npz'), VIDEO_REQUIRED_KEYS)
    np.testing.assert_array_equal(batch['im_batch'], frames[8])  # clip index 8
    # the image model reads the same file as an image of its annotated frame
    assert load_batch(str(tmp_path / 'v_0.npz'))['im_batch'].shape == (4, 6, 3)
    np.savez(tmp_path / 'v_1.npz', **dict(good, mask_batch=np.zeros((5, 6), bool)))
    with pytest.raises(BatchFileError, match=r'v_1.npz: mask_batch is bool \[5, 6\]; expected '
                                             r'bool or numeric \[4, 6\]'):
        load_batch(str(tmp_path / 'v_1.npz'), VIDEO_REQUIRED_KEYS)
    np.savez(tmp_path / 'v_3.npz', **dict(good, frames=frames[:8]))  # a clip of 8 frames
    with pytest.raises(BatchFileError, match=r'v_3.npz: frames is uint8 \[8, 4, 6, 3\]; expected '
                                             r'uint8 \[16, 4, 6, 3\], the h, w of mask_batch'):
        load_batch(str(tmp_path / 'v_3.npz'), VIDEO_REQUIRED_KEYS)
    np.savez(tmp_path / 'v_2.npz', **{k: v for k, v in good.items() if k != 'frames'})
    with pytest.raises(BatchFileError, match='v_2.npz: missing frames .*expected an .npz with '
                                             'text_batch, frames, mask_batch, sent_batch'):
        load_batch(str(tmp_path / 'v_2.npz'), VIDEO_REQUIRED_KEYS)


def test_frame_store_samples_read_as_the_frames_they_name_and_bad_frame_files_are_named(
        tmp_path):
    """A frame store sample (frame_files) reads as the same arrays as the sample holding its
    frames; a missing, truncated, misshapen or keyless frame file, and a name outside the
    folder, are one line naming the file."""
    from helpers import write_video_batches
    from util.data_reader import VIDEO_REQUIRED_KEYS
    write_video_batches(str(tmp_path / 'in'), 'v', 2, (6, 10), seed=5)
    write_video_batches(str(tmp_path / 'store'), 'v', 2, (6, 10), seed=5, frame_store=True)
    for n in range(2):
        want = load_batch(str(tmp_path / 'in' / ('v_%d.npz' % n)), VIDEO_REQUIRED_KEYS)
        got = load_batch(str(tmp_path / 'store' / ('v_%d.npz' % n)), VIDEO_REQUIRED_KEYS)
        assert sorted(got) == sorted(list(want) + ['frame_files'])
        for k in want:
            assert got[k].dtype == want[k].dtype
            np.testing.assert_array_equal(got[k], want[k])
    sample = str(tmp_path / 'store' / 'v_1.npz')
    frame = tmp_path / 'store' / 'frames' / 'clip1' / '00004.npz'

    def error():
        with pytest.raises(BatchFileError) as err:
            load_batch(sample, VIDEO_REQUIRED_KEYS)
        assert '\n' not in str(err.value)
        return str(err.value)
    data = frame.read_bytes()
    frame.write_bytes(data[:len(data) // 2])
    assert error().startswith('%s: not a readable .npz archive, truncated or another kind of '
                              'file (BadZipFile' % frame)
    assert error().endswith('; expected an .npz with frame, uint8 [h, w, 3], as '
                            'CMPC_video/build_A2D_batches.py writes')
    os.remove(frame)
    assert error() == ('%s: frame file not found (a frame of %s; rerun '
                       'CMPC_video/build_A2D_batches.py: it writes the missing frames)'
                       % (frame, sample))
    np.savez_compressed(frame, frame=np.zeros((6, 9, 3), np.uint8))  # another size
    assert error() == ("%s: frame is uint8 [6, 9, 3]; expected uint8 [h, w, 3], the size of the "
                       "clip's other frames" % frame)
    np.savez_compressed(frame, image=np.zeros((6, 10, 3), np.uint8))
    assert error() == ('%s: missing frame (has image); expected an .npz with frame, uint8 [h, w, '
                       '3], as CMPC_video/build_A2D_batches.py writes' % frame)
    with np.load(sample) as z:
        arrays = dict(z)
    np.savez(sample, **dict(arrays, frame_files=np.array(['../x.npz'] * 16)))
    assert error() == ("%s: frame_files names '../x.npz', outside its folder; expected str [16], "
                       "files of the frame store relative to the split folder" % sample)
