"""The refer reader: the restricted unpickler (hostile pickles refused, no side effect),
Python 2 pickles, file-order indexing, and COCO masks as the original computed them."""

import builtins
import json
import os
import pickle

import numpy as np
import pytest

from util.refer import (Refer, RefusedPickleError, load_plain_pickle, segmentation_mask)


class _OpensAFile:
    """Unpickling this calls open(path, 'w'): creates the file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (builtins.open, (self.path, 'w'))


class _RunsAShellCommand:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, ('touch %s' % self.path,))


def _refs_like():
    return [{'ref_id': 7, 'ann_id': 70, 'image_id': 1, 'category_id': 1, 'split': 'train',
             'file_name': 'x.jpg', 'sent_ids': [0],
             'sentences': [{'sent': 'red one', 'raw': 'Red one.', 'tokens': ['red', 'one'],
                            'sent_id': 0}]}]


@pytest.mark.parametrize('protocol', [0, 2, pickle.HIGHEST_PROTOCOL])
def test_plain_pickles_load(protocol):
    data = _refs_like() + [(1, 2.5, None, True, b'raw bytes')]
    if protocol < 3:
        data = data[:-1] + [(1, 2.5, None, True)]  # py3 bytes under protocol < 3 need a global
    assert load_plain_pickle(pickle.dumps(data, protocol=protocol)) == data


def test_python2_pickle_strings_become_str():
    # Hand-assembled protocol 2 pickle as Python 2 cPickle writes ['abc', u'def', 5]:
    # PROTO 2, EMPTY_LIST, MARK, SHORT_BINSTRING 'abc' (a py2 str), BINUNICODE 'def',
    # BININT1 5, APPENDS, STOP.
    raw = b'\x80\x02](U\x03abcX\x03\x00\x00\x00defK\x05e.'
    assert load_plain_pickle(raw) == ['abc', 'def', 5]


@pytest.mark.parametrize('payload_cls', [_OpensAFile, _RunsAShellCommand])
def test_hostile_pickle_is_refused_without_side_effect(tmp_path, payload_cls):
    marker = tmp_path / 'pwned'
    hostile = pickle.dumps(_refs_like() + [payload_cls(str(marker))], protocol=2)
    with pytest.raises(RefusedPickleError, match='refusing'):
        load_plain_pickle(hostile)
    assert not marker.exists()


def test_hostile_payload_is_real(tmp_path):
    # The same bytes through the ordinary loader do create the file: the test above
    # would catch a loader that runs them.
    marker = tmp_path / 'created'
    pickle.loads(pickle.dumps(_OpensAFile(str(marker)), protocol=2)).close()
    assert marker.exists()


def _write_refer(root, refs, anns, refs_bytes=None):
    folder = root / 'refcoco'
    folder.mkdir(parents=True)
    (folder / 'refs(unc).p').write_bytes(refs_bytes or pickle.dumps(refs, protocol=2))
    (folder / 'instances.json').write_text(json.dumps(
        {'images': [{'id': 1, 'height': 8, 'width': 8, 'file_name': 'a.jpg'}],
         'annotations': anns, 'categories': [{'id': 1, 'name': 'circle'}]}))


def test_hostile_refs_file_refused_by_refer(tmp_path):
    marker = tmp_path / 'pwned'
    _write_refer(tmp_path, None, [], pickle.dumps([_OpensAFile(str(marker))], protocol=2))
    with pytest.raises(RefusedPickleError, match=r'refs\(unc\)\.p'):
        Refer(str(tmp_path), 'refcoco', 'unc')
    assert not marker.exists()


def test_refer_index_keeps_file_order(tmp_path):
    refs = []
    for ref_id, split in [(5, 'val'), (2, 'train'), (9, 'train'), (1, 'testA'), (3, 'train')]:
        refs.append({'ref_id': ref_id, 'ann_id': 100 + ref_id, 'image_id': 1, 'category_id': 1,
                     'split': split, 'sentences': [{'sent': 's%d' % ref_id, 'sent_id': ref_id}]})
    anns = [{'id': 100 + r['ref_id'], 'image_id': 1, 'category_id': 1,
             'segmentation': [[0, 0, 4, 0, 4, 4]]} for r in refs]
    _write_refer(tmp_path, refs, anns)
    refer = Refer(str(tmp_path), 'refcoco', 'unc')
    # file order, not sorted by id
    assert [r['ref_id'] for r in refer.refs_in_split('train')] == [2, 9, 3]
    assert refer.splits() == ['val', 'train', 'testA']
    assert refer.segmentation(refs[1]) == [[0, 0, 4, 0, 4, 4]]


def test_missing_files_and_dangling_ann_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'refs\(umd\)\.p'):
        Refer(str(tmp_path), 'refcocog', 'umd')
    refs = [{'ref_id': 1, 'ann_id': 42, 'image_id': 1, 'split': 'train', 'sentences': []}]
    _write_refer(tmp_path, refs, [])
    with pytest.raises(ValueError, match='annotation 42'):
        Refer(str(tmp_path), 'refcoco', 'unc')


def test_polygon_mask_by_hand():
    # COCO pixel j covers [j, j + 1]: a square with corners 1 and 4 covers pixels 1, 2, 3.
    m = segmentation_mask([[1, 1, 4, 1, 4, 4, 1, 4]], 6, 6)
    expected = np.zeros((6, 6), np.uint8)
    expected[1:4, 1:4] = 1
    np.testing.assert_array_equal(m, expected)


def test_union_of_polygons_is_max_not_sum():
    # two overlapping squares: pixels 0..2 and 2..4 along both axes; union, values 1
    m = segmentation_mask([[0, 0, 3, 0, 3, 3, 0, 3], [2, 2, 5, 2, 5, 5, 2, 5]], 6, 6)
    expected = np.zeros((6, 6), np.uint8)
    expected[0:3, 0:3] = 1
    expected[2:5, 2:5] = 1
    np.testing.assert_array_equal(m, expected)


def test_rle_segmentations():
    from pycocotools import mask as cocomask
    truth = np.zeros((5, 7), np.uint8)
    truth[1:3, 2:6] = 1
    rle = cocomask.encode(np.asfortranarray(truth))
    rle_str = {'size': rle['size'], 'counts': rle['counts'].decode('ascii')}  # as in json
    np.testing.assert_array_equal(segmentation_mask(rle_str, 5, 7), truth)
    # uncompressed RLE (column-major run lengths, starting with zeros), worked out by hand:
    # columns 0-1 empty (10 zeros), then columns 2..5 each: 1 zero, 2 ones, 2 zeros
    counts = [11, 2, 3, 2, 3, 2, 3, 2, 2 + 5]
    np.testing.assert_array_equal(
        segmentation_mask({'size': [5, 7], 'counts': counts}, 5, 7), truth)
    with pytest.raises(ValueError, match='RLE of size'):
        segmentation_mask(rle_str, 6, 7)
