"""util/pipeline/snapshots.py: naming, listing, pruning and resolving snapshots, without TensorFlow."""

import os

import pytest

from util.cli import InputError
from util.pipeline.snapshots import (list_snapshots, read_checkpoint_meta, remove_old_snapshots,
                            remove_partial_snapshots, resolve_checkpoint, snapshot_prefix)

DATA = '.data-00000-of-00001'


def touch(folder, *names):
    for name in names:
        (folder / name).write_text('{}' if name.endswith('.json') else 'x')


def snapshot(folder, n, dataset='unc'):
    base = '%s_iter_%d.tfmodel' % (dataset, n)
    touch(folder, base + '.index', base + DATA, base + '.json')


def test_list_only_complete_snapshots_of_the_dataset_in_order(tmp_path):
    for n in (100, 20, 3):
        snapshot(tmp_path, n)
    snapshot(tmp_path, 50, dataset='unc+')
    touch(tmp_path, 'unc_iter_7.tfmodel' + DATA)  # no .index: not complete
    assert list_snapshots(str(tmp_path), 'unc') == [
        (n, snapshot_prefix(str(tmp_path), 'unc', n)) for n in (3, 20, 100)]


def test_remove_old_keeps_the_newest(tmp_path):
    for n in range(1, 7):
        snapshot(tmp_path, n)
    remove_old_snapshots(str(tmp_path), 'unc', keep=4)
    assert [n for n, _ in list_snapshots(str(tmp_path), 'unc')] == [3, 4, 5, 6]
    assert not any(name.startswith(('unc_iter_1.', 'unc_iter_2.')) for name in os.listdir(tmp_path))


def test_partial_writes_are_removed_and_complete_snapshots_kept(tmp_path):
    snapshot(tmp_path, 20)
    # A write killed after its data and JSON were renamed but before its .index, and the
    # temporary bundle of another.
    touch(tmp_path, 'unc_iter_40.tfmodel' + DATA, 'unc_iter_40.tfmodel.json',
          'unc_iter_60.tfmodel.tmp-0a1b2c3d.index', 'unc_iter_60.tfmodel.tmp-0a1b2c3d' + DATA,
          'train_log.jsonl', 'unc+_iter_40.tfmodel' + DATA)
    removed = remove_partial_snapshots(str(tmp_path), 'unc')
    assert len(removed) == 4
    assert sorted(os.listdir(tmp_path)) == sorted(
        ['unc_iter_20.tfmodel.index', 'unc_iter_20.tfmodel' + DATA, 'unc_iter_20.tfmodel.json',
         'train_log.jsonl', 'unc+_iter_40.tfmodel' + DATA])


def test_resolve_a_prefix_a_file_or_a_folder(tmp_path):
    snapshot(tmp_path, 5)
    snapshot(tmp_path, 40)
    prefix = snapshot_prefix(str(tmp_path), 'unc', 5)
    for given in (prefix, prefix + '.index', prefix + '.json', prefix + DATA):
        assert resolve_checkpoint(given) == prefix
    assert resolve_checkpoint(str(tmp_path)) == snapshot_prefix(str(tmp_path), 'unc', 40)
    with pytest.raises(InputError, match='--checkpoint .*nothing: no checkpoint'):
        resolve_checkpoint(str(tmp_path / 'nothing'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(InputError, match='-f/-d/-i .*empty: folder holds no checkpoint'):
        resolve_checkpoint(str(tmp_path / 'empty'), '-f/-d/-i')


def test_meta_is_read_and_bad_json_named(tmp_path):
    prefix = str(tmp_path / 'a.tfmodel')
    assert read_checkpoint_meta(prefix) is None  # a checkpoint of the original code
    (tmp_path / 'a.tfmodel.json').write_text('{"step": 3}')
    assert read_checkpoint_meta(prefix) == {'step': 3}
    (tmp_path / 'a.tfmodel.json').write_text('{"step": ')
    with pytest.raises(InputError, match=r'a\.tfmodel\.json: not valid JSON'):
        read_checkpoint_meta(prefix)
