"""The synthetic dataset: real formats, determinism, and expressions that need their words."""

import filecmp
import json
import os
import pickle
import re

import numpy as np
import pytest
import scipy.io as sio
from PIL import Image

from tools import make_synthetic_dataset
from tools import synthetic
from util.glove import check_embedding

SMALL = dict(seed=3, train_images=6, val_images=3, testA_images=3, testB_images=3,
             gray_fraction=0.2)
KIND_WORDS = set(synthetic.KINDS) | set(synthetic.GENERIC_NOUNS)
RELATION_WORDS = {'of', 'above', 'below', 'beneath', 'next', 'beside', 'near', 'top', 'covering',
                  'front', 'behind', 'under', 'covered'}
LOCATION_WORDS = {'left', 'right', 'top', 'bottom', 'upper', 'lower', 'leftmost', 'rightmost',
                  'highest', 'lowest', 'furthest'}


@pytest.fixture(scope='module')
def syn(tmp_path_factory):
    out = tmp_path_factory.mktemp('syn')
    synthetic.generate(str(out), **SMALL)
    return out


def _all_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


def _pfx(path):
    with open(path, 'rb') as f:
        return f.read(2)


def test_layout_and_formats(syn):
    files = _all_files(syn)
    for name in ['refer/refcoco/instances.json', 'refer/refcoco/refs(unc).p',
                 'refer/refcoco+/refs(unc).p', 'refer/refcocog/refs(google).p',
                 'refer/refcocog/refs(umd).p', 'referit_query_trainval.json',
                 'referit_query_test.json', 'vocabulary_synthetic.txt', 'synthetic_emb.npy',
                 'synthetic.json']:
        assert name in files
    assert not [f for f in files if f.endswith('.tmp')]
    # refs pickles are protocol 2 (PROTO opcode 0x80, 2), loadable by the stock unpickler
    assert _pfx(syn / 'refer/refcoco/refs(unc).p') == b'\x80\x02'
    with open(syn / 'refer/refcoco/refs(unc).p', 'rb') as f:
        refs = pickle.load(f)
    assert {r['split'] for r in refs} == {'train', 'val', 'testA', 'testB'}
    with open(syn / 'refer/refcocog/refs(umd).p', 'rb') as f:
        assert {r['split'] for r in pickle.load(f)} == {'train', 'val', 'test'}
    with open(syn / 'refer/refcocog/refs(google).p', 'rb') as f:
        assert {r['split'] for r in pickle.load(f)} == {'train', 'val'}
    # stored in ref_id order (Python 2 and 3 iterate refer.Refs alike), splits interleaved
    ids = [r['ref_id'] for r in refs]
    assert ids == sorted(ids)
    splits = [r['split'] for r in refs]
    assert splits != sorted(splits, key=['train', 'val', 'testA', 'testB'].index)
    instances = json.loads((syn / 'refer/refcoco/instances.json').read_text())
    images = {im['id']: im for im in instances['images']}
    anns = {a['id']: a for a in instances['annotations']}
    for r in refs:
        assert set(r) >= {'ref_id', 'ann_id', 'image_id', 'category_id', 'split', 'file_name',
                          'sent_ids', 'sentences'}
        assert r['sent_ids'] == [s['sent_id'] for s in r['sentences']]
        for s in r['sentences']:
            assert s['sent'] == ' '.join(s['tokens']) and s['sent'] == s['sent'].lower()
        im = images[r['image_id']]
        path = syn / 'coco/images/train2014' / ('COCO_train2014_%012d.jpg' % r['image_id'])
        with Image.open(path) as pil:
            assert pil.format == 'JPEG' and pil.size == (im['width'], im['height'])
        seg = anns[r['ann_id']]['segmentation']
        assert isinstance(seg, list) and all(len(p) >= 6 and len(p) % 2 == 0 for p in seg)
    sizes = [(im['height'], im['width']) for im in images.values()]
    assert all(96 <= h <= 128 and 96 <= w <= 128 for h, w in sizes)


def test_referit_masks_match_the_coco_polygons(syn):
    from util.refer import segmentation_mask
    instances = json.loads((syn / 'refer/refcoco/instances.json').read_text())
    anns = {a['id']: a for a in instances['annotations']}
    images = {im['id']: im for im in instances['images']}
    query = json.loads((syn / 'referit_query_trainval.json').read_text())
    assert list(query) != sorted(query)  # shuffled key order
    for key, sents in query.items():
        image_id, k = (int(v) for v in key.split('_'))
        assert sents and all(isinstance(s, str) for s in sents)
        segimg = sio.loadmat(str(syn / 'referit/mask' / (key + '.mat')))['segimg_t']
        obj = segimg == 0
        im = images[image_id]
        assert obj.shape == (im['height'], im['width'])
        poly = segmentation_mask(anns[image_id * 10 + k]['segmentation'], *obj.shape) > 0
        iou = (obj & poly).sum() / (obj | poly).sum()
        assert iou > 0.85, (key, iou)
        assert os.path.isfile(syn / 'referit/images' / ('%d.jpg' % image_id))


def test_deterministic_from_the_seed(syn, tmp_path):
    again = tmp_path / 'again'
    synthetic.generate(str(again), **SMALL)
    files = _all_files(syn)
    assert files == _all_files(again)
    match, mismatch, errors = filecmp.cmpfiles(syn, again, files, shallow=False)
    assert not mismatch and not errors
    other = tmp_path / 'other'
    synthetic.generate(str(other), **dict(SMALL, seed=4))
    assert (other / 'referit_query_trainval.json').read_bytes() != \
        (syn / 'referit_query_trainval.json').read_bytes()


def _scene_objects(syn):
    """{image_id: [(ann_id, kind)]} and {ann_id: colour name} read from the files."""
    instances = json.loads((syn / 'refer/refcoco/instances.json').read_text())
    cats = {c['id']: c['name'] for c in instances['categories']}
    per_image = {}
    for a in instances['annotations']:
        per_image.setdefault(a['image_id'], []).append((a['id'], cats[a['category_id']]))
    return per_image


def test_expressions_need_entity_attribute_and_relation_words(tmp_path):
    out = tmp_path / 'default'
    summary = synthetic.generate(str(out), seed=0, train_images=40, val_images=0,
                                 testA_images=0, testB_images=0)
    with open(out / 'refer/refcoco/refs(unc).p', 'rb') as f:
        refs = pickle.load(f)
    per_image = _scene_objects(out)
    sents = [s['tokens'] for r in refs for s in r['sentences']]
    colours = set(synthetic.COLOURS)
    sizes = {w for ws in synthetic.SIZE_WORDS.values() for w in ws}
    # every expression names an entity (a kind, or 'shape'/'object')
    assert all(KIND_WORDS & set(t) for t in sents)
    frac = lambda words: np.mean([bool(words & set(t)) for t in sents])  # noqa: E731
    assert frac(colours) > 0.3 and frac(sizes) > 0.3
    assert frac({'of', 'next', 'above', 'below', 'beneath', 'behind', 'covering', 'beside',
                 'near', 'under'}) > 0.1
    assert frac(LOCATION_WORDS) > 0.1
    # distractors: most referred objects share their kind with another object of the scene
    same_kind = []
    for r in refs:
        kinds = [k for a, k in per_image[r['image_id']]]
        mine = dict(per_image[r['image_id']])[r['ann_id']]
        same_kind.append(kinds.count(mine) > 1)
    assert np.mean(same_kind) > 0.5
    # then a bare kind word cannot be the whole expression for them
    for r, shared in zip(refs, same_kind):
        if shared:
            for s in r['sentences']:
                assert len(s['tokens']) > 1, s['raw']
    assert summary['expressions']['unc']['train'] >= 200  # a few hundred by default


def test_refcoco_plus_has_no_location_words(syn):
    with open(syn / 'refer/refcoco+/refs(unc).p', 'rb') as f:
        refs = pickle.load(f)
    assert refs
    for r in refs:
        for s in r['sentences']:
            assert not (LOCATION_WORDS - {'top'}) & set(s['tokens']), s['raw']
            # 'top' only inside the relation 'on top of'
            if 'top' in s['tokens']:
                assert 'on top of' in s['sent']


def test_vocabulary_and_embedding(syn):
    words = (syn / 'vocabulary_synthetic.txt').read_text().split('\n')[:-1]
    assert words[:4] == ['<pad>', '<go>', '<eos>', '<unk>']
    assert len(set(words)) == len(words)
    # every token of a train expression is in the vocabulary
    with open(syn / 'refer/refcoco/refs(unc).p', 'rb') as f:
        train = [t for r in pickle.load(f) if r['split'] == 'train'
                 for s in r['sentences'] for t in s['tokens']]
    assert set(train) <= set(words)
    assert check_embedding(str(syn / 'synthetic_emb.npy'),
                           str(syn / 'vocabulary_synthetic.txt')) == (len(words), 300)
    emb = np.load(syn / 'synthetic_emb.npy')
    assert emb.dtype == np.float32 and not emb[0].any() and emb[4].any()


def test_some_images_are_grayscale_and_their_expressions_have_no_colour(syn):
    with open(syn / 'refer/refcoco/refs(unc).p', 'rb') as f:
        refs = pickle.load(f)
    gray = set()
    for path in (syn / 'coco/images/train2014').iterdir():
        with Image.open(path) as pil:
            if pil.mode == 'L':
                gray.add(int(re.findall(r'\d+', path.name)[-1]))
    assert gray, 'the fixture should hold a grayscale image'
    for r in refs:
        if r['image_id'] in gray:
            for s in r['sentences']:
                assert not set(synthetic.COLOURS) & set(s['tokens'])


def test_cli_skips_a_finished_dataset_and_reports_bad_flags(tmp_path, capsys):
    out = str(tmp_path / 'cli')
    args = ['--out', out, '--train_images', '2', '--val_images', '1', '--testA_images', '1',
            '--testB_images', '1']
    assert make_synthetic_dataset.main(args) == 0
    stamp = os.stat(os.path.join(out, 'synthetic.json')).st_mtime_ns
    assert make_synthetic_dataset.main(args) == 0
    assert 'already holds' in capsys.readouterr().out
    assert os.stat(os.path.join(out, 'synthetic.json')).st_mtime_ns == stamp
    assert make_synthetic_dataset.main(args + ['--min_size', '200']) == 2
    assert '--min_size' in capsys.readouterr().err
    for action in make_synthetic_dataset.build_parser()._actions:
        assert action.help, action.option_strings
