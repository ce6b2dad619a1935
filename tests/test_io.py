"""util/io: atomic writes (never a half-written final file) and the ReferIt mask loader."""

import os
import stat

import numpy as np
import pytest
import scipy.io as sio

from util.io import (atomic_open, load_json, load_referit_gt_mask, remove_stale_temps,
                     save_mat_atomic, save_npz_atomic, write_json)


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / 'a.txt'
    path.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_open(str(path), 'w', encoding='utf-8') as f:
            f.write('half of the new')
            raise RuntimeError('killed mid-way')
    assert path.read_text() == 'old'
    assert os.listdir(tmp_path) == ['a.txt']


def test_final_file_has_umask_permissions(tmp_path):
    save_npz_atomic(str(tmp_path / 'x.npz'), a=np.arange(3))
    umask = os.umask(0)
    os.umask(umask)
    # mkstemp makes 0600 files; a final file must get 0666 & ~umask like any other file
    # (0644 under the usual umask 022)
    assert stat.S_IMODE(os.stat(tmp_path / 'x.npz').st_mode) == 0o666 & ~umask
    with np.load(tmp_path / 'x.npz') as z:
        np.testing.assert_array_equal(z['a'], [0, 1, 2])


def test_npz_name_must_end_in_npz(tmp_path):
    with pytest.raises(ValueError, match='must end with .npz'):
        save_npz_atomic(str(tmp_path / 'x'), a=np.zeros(1))


def test_remove_stale_temps_only_touches_its_prefix(tmp_path):
    for name in ['.unc_train_3.npz.ab12.tmp', '.unc_val_1.npz.cd34.tmp', 'unc_train_3.npz',
                 '.unc_train_notes']:
        (tmp_path / name).write_bytes(b'x')
    assert remove_stale_temps(str(tmp_path), 'unc_train_') == 1
    assert sorted(os.listdir(tmp_path)) == ['.unc_train_notes', '.unc_val_1.npz.cd34.tmp',
                                            'unc_train_3.npz']


def test_referit_mask_is_segimg_t_equal_zero(tmp_path):
    segimg = np.array([[0, 1, 2], [-1, 0, 0]], np.int16)
    save_mat_atomic(str(tmp_path / 'm.mat'), {'segimg_t': segimg}, description='fixed header')
    mask = load_referit_gt_mask(str(tmp_path / 'm.mat'))
    np.testing.assert_array_equal(mask, [[True, False, False], [False, True, True]])
    assert mask.dtype == bool
    # the fixed description replaces the timestamped header: same content, same bytes
    first = (tmp_path / 'm.mat').read_bytes()
    save_mat_atomic(str(tmp_path / 'm.mat'), {'segimg_t': segimg}, description='fixed header')
    assert (tmp_path / 'm.mat').read_bytes() == first and first.startswith(b'fixed header  ')


def test_referit_mask_errors_name_the_file(tmp_path):
    sio.savemat(str(tmp_path / 'wrong.mat'), {'mask': np.zeros((2, 2))})
    with pytest.raises(ValueError, match=r'wrong\.mat.*segimg_t.*\[\'mask\'\]'):
        load_referit_gt_mask(str(tmp_path / 'wrong.mat'))
    with pytest.raises(FileNotFoundError, match=r'absent\.mat'):
        load_referit_gt_mask(str(tmp_path / 'absent.mat'))


def test_json_round_trip_and_bad_json(tmp_path):
    write_json(str(tmp_path / 'q.json'), {'b': [1, 2], 'a': 'x'})
    assert list(load_json(str(tmp_path / 'q.json'))) == ['b', 'a']  # key order kept
    (tmp_path / 'bad.json').write_text('{"a": ')
    with pytest.raises(ValueError, match=r'bad\.json: not valid JSON'):
        load_json(str(tmp_path / 'bad.json'))
