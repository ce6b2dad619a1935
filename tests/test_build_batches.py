"""build_batches.py against an independent rewrite of the original's steps.

`original_build` below is the 2018 build_batches.py re-expressed from its source (refer
pickles loaded the stock way, refer.Refs order, frPyObjects + decode + max over axis 2,
the original tokenizer, resize_and_pad with scikit-image 0.13's resize semantics,
img_as_ubyte, grayscale tiling, np.savez of a python list / [sent]); it shares no code
with the project. Each of our files must equal its file of the same name: keys, dtypes,
shapes and values.
"""

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import scipy.io as sio
import skimage
import skimage.io
import skimage.transform

import build_batches
from helpers import ROOT
from tools import synthetic

SIZE = 64  # the train resize target in these tests (320 in real builds), for speed
SYN = dict(seed=2, train_images=5, val_images=3, testA_images=3, testB_images=3,
           refs_per_image=2, sents_per_ref=2, gray_fraction=0.3)
COCO = {'unc': ('refcoco', 'unc'), 'unc+': ('refcoco+', 'unc'), 'Gref': ('refcocog', 'google'),
        'Gref_umd': ('refcocog', 'umd')}


# --------------------------------------------------------------------------- the original

def orig_tokens(sentence, vocab, T):
    # Python 2 re: \W without re.UNICODE is ASCII
    words = [w.lower() for w in re.split(r'(\W+)', sentence.strip(), flags=re.ASCII)
             if len(w.strip()) > 0]
    if words[-1] == '.':
        words = words[:-1]
    ids = [vocab[w] if w in vocab else vocab['<unk>'] for w in words][:T]
    return [vocab['<pad>']] * (T - len(ids)) + ids


def orig_resize(im, h, w):
    # skimage 0.13 resize(im, [h, w]): img_as_float, bilinear, mode constant (cval 0), no
    # anti-aliasing, float64 output clipped to the input's range, pixels equal to cval kept
    # when cval is outside that range.
    src = skimage.img_as_float(im).astype(np.float64)
    out = skimage.transform.resize(src, (h, w) + src.shape[2:], order=1, mode='constant',
                                   cval=0, clip=False, anti_aliasing=False)
    lo, hi = src.min(), src.max()
    keep = None if lo <= 0 <= hi else (out == 0)
    out = np.clip(out, lo, hi)
    if keep is not None:
        out[keep] = 0
    return out


def orig_resize_and_pad(im, H, W):
    h, w = im.shape[:2]
    scale = min(H / h, W / w)
    rh, rw = int(np.round(h * scale)), int(np.round(w * scale))
    ph, pw = (H - rh) // 2, (W - rw) // 2
    new = np.zeros((H, W) + im.shape[2:], np.float64)
    new[ph:ph + rh, pw:pw + rw, ...] = orig_resize(im, rh, rw)
    return new


def _orig_save(folder, prefix, n, text, im, mask, sent):
    np.savez(file=os.path.join(folder, '%s_%d.npz' % (prefix, n)), text_batch=text,
             im_batch=im, mask_batch=(mask > 0), sent_batch=[sent])


def _orig_prepare(im, mask, setname):
    if 'train' in setname:
        im = skimage.img_as_ubyte(orig_resize_and_pad(im, SIZE, SIZE))
        mask = orig_resize_and_pad(mask, SIZE, SIZE)
    if im.ndim == 2:
        im = np.tile(im[:, :, np.newaxis], (1, 1, 3))
    return im, mask


def original_build(syn, dataset, setname, out, T=20):
    """The original's files of a split, written to out; returns each file's picture (the
    referit image file, the COCO image id), what our builder stores as image_id."""
    from pycocotools import mask as cocomask
    vocab_words = [w.strip() for w in open(syn / 'vocabulary_synthetic.txt').readlines()]
    vocab = {vocab_words[n]: n for n in range(len(vocab_words))}
    folder = out / dataset / (setname + '_batch')
    folder.mkdir(parents=True)
    prefix = dataset + '_' + setname
    n, ids = 0, []
    if dataset == 'referit':
        query = json.load(open(syn / ('referit_query_%s.json' % setname)))
        for name in query.keys():
            for sent in query[name]:
                im = skimage.io.imread(syn / 'referit/images' / (name.split('_', 1)[0] + '.jpg'))
                mask = (sio.loadmat(syn / 'referit/mask' / (name + '.mat'))['segimg_t'] == 0)
                im, mask = _orig_prepare(im, mask.astype(np.float32), setname)
                _orig_save(folder, prefix, n, orig_tokens(sent, vocab, T), im, mask, sent)
                ids.append(name.split('_', 1)[0] + '.jpg')
                n += 1
        return ids
    name, split_by = COCO[dataset]
    with open(syn / 'refer' / name / ('refs(%s).p' % split_by), 'rb') as f:
        refs_list = pickle.load(f)  # our own fixture: the stock loader, as refer.py did
    instances = json.load(open(syn / 'refer' / name / 'instances.json'))
    anns = {a['id']: a for a in instances['annotations']}
    Refs = {}
    for ref in refs_list:
        Refs[ref['ref_id']] = ref
    refs = [Refs[ref_id] for ref_id in Refs if Refs[ref_id]['split'] == setname]
    for ref in refs:
        im = skimage.io.imread(syn / 'coco/images/train2014' /
                               ('COCO_train2014_' + str(ref['image_id']).zfill(12) + '.jpg'))
        rle = cocomask.frPyObjects(anns[ref['ann_id']]['segmentation'], im.shape[0], im.shape[1])
        mask = np.max(cocomask.decode(rle), axis=2).astype(np.float32)
        im, mask = _orig_prepare(im, mask, setname)
        for sentence in ref['sentences']:
            _orig_save(folder, prefix, n, orig_tokens(sentence['sent'], vocab, T), im, mask,
                       sentence['sent'])
            ids.append(ref['image_id'])
            n += 1
    return ids


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope='module')
def syn(tmp_path_factory):
    out = tmp_path_factory.mktemp('syn')
    summary = synthetic.generate(str(out), **SYN)
    for dataset, splits in summary['expressions'].items():
        assert all(v > 0 for v in splits.values()), (dataset, splits)
    return out


def run(syn, dataset, setname, out, *extra):
    args = ['-d', dataset, '-t', setname, '--synthetic', str(syn), '--out', str(out),
            '--input_size', str(SIZE), '-j', '0', '--no_progress'] + list(extra)
    return build_batches.main(args)


def assert_same_batches(ours, ref, dataset, setname, image_ids):
    """Our files equal the original's array for array, with image_id added (image_ids: each
    file's, original_build's)."""
    folder = os.path.join(ours, dataset, setname + '_batch')
    ref_folder = os.path.join(ref, dataset, setname + '_batch')
    names = sorted(f for f in os.listdir(ref_folder))
    assert len(names) == len(image_ids) > 0
    assert sorted(f for f in os.listdir(folder) if not f.startswith('.')) == names
    gray_seen = False
    for name in names:
        with np.load(os.path.join(folder, name)) as a, np.load(os.path.join(ref_folder, name)) as b:
            assert sorted(b.files) == ['im_batch', 'mask_batch', 'sent_batch', 'text_batch']
            assert sorted(a.files) == sorted(b.files + ['image_id'])
            n = int(name[len(dataset) + len(setname) + 2:-len('.npz')])
            assert a['image_id'].tolist() == [str(image_ids[n])], name
            for key in b.files:
                assert a[key].dtype == b[key].dtype, (name, key)
                assert a[key].shape == b[key].shape, (name, key)
                np.testing.assert_array_equal(a[key], b[key], err_msg='%s %s' % (name, key))
            assert a['text_batch'].dtype == np.int64 and a['text_batch'].shape == (20,)
            assert a['im_batch'].dtype == np.uint8 and a['im_batch'].shape[2] == 3
            assert a['mask_batch'].dtype == bool and a['mask_batch'].any()
            assert a['sent_batch'].dtype.kind == 'U' and a['sent_batch'].shape == (1,)
            if 'train' in setname:
                assert a['im_batch'].shape == (SIZE, SIZE, 3)
            im = a['im_batch']
            gray_seen |= bool((im[..., 0] == im[..., 1]).all() and (im[..., 1] == im[..., 2]).all())
    return gray_seen


# --------------------------------------------------------------------------- equality

@pytest.mark.parametrize('dataset, setname', [
    ('unc', 'train'), ('unc', 'testA'), ('unc+', 'val'), ('unc+', 'testB'), ('Gref', 'train'),
    ('Gref', 'val'), ('Gref_umd', 'test'), ('referit', 'trainval'), ('referit', 'test')])
def test_same_files_as_the_original(syn, tmp_path, dataset, setname):
    ids = original_build(syn, dataset, setname, tmp_path / 'orig')
    assert run(syn, dataset, setname, tmp_path / 'ours') == 0
    assert_same_batches(tmp_path / 'ours', tmp_path / 'orig', dataset, setname, ids)


def test_numbering_follows_the_refs_file_order(syn, tmp_path):
    # A copy of the dataset whose refs(unc).p lists the refs in reverse: the numbering must
    # follow refer.Refs (file) order, not the ids.
    import shutil
    copy = tmp_path / 'syn'
    shutil.copytree(syn, copy, ignore=shutil.ignore_patterns('unc', 'unc+', 'Gref*', 'referit'))
    shutil.copytree(syn / 'referit', copy / 'referit')
    with open(syn / 'refer/refcoco/refs(unc).p', 'rb') as f:
        refs = pickle.load(f)
    with open(copy / 'refer/refcoco/refs(unc).p', 'wb') as f:
        pickle.dump(refs[::-1], f, protocol=2)
    ids = original_build(copy, 'unc', 'val', tmp_path / 'orig')
    assert run(copy, 'unc', 'val', tmp_path / 'ours') == 0
    assert_same_batches(tmp_path / 'ours', tmp_path / 'orig', 'unc', 'val', ids)
    with np.load(tmp_path / 'ours/unc/val_batch/unc_val_0.npz') as z:
        last_val = [r for r in refs if r['split'] == 'val'][-1]
        assert z['sent_batch'][0] == last_val['sentences'][0]['sent']


@pytest.mark.cli  # -j 2: a pool of worker processes
def test_parallel_workers_and_grayscale(syn, tmp_path):
    ids = original_build(syn, 'Gref_umd', 'train', tmp_path / 'orig')
    assert run(syn, 'Gref_umd', 'train', tmp_path / 'ours', '-j', '2') == 0
    gray = assert_same_batches(tmp_path / 'ours', tmp_path / 'orig', 'Gref_umd', 'train', ids)
    assert gray, 'the fixture should contain a grayscale image (tiled to 3 channels)'


def test_uncompressed_flag_stores_the_same_arrays(syn, tmp_path):
    assert run(syn, 'unc', 'val', tmp_path / 'c') == 0
    assert run(syn, 'unc', 'val', tmp_path / 'u', '--uncompressed') == 0
    folder_c, folder_u = tmp_path / 'c/unc/val_batch', tmp_path / 'u/unc/val_batch'
    names = sorted(f for f in os.listdir(folder_u) if f.endswith('.npz'))
    for name in names:
        with zipfile.ZipFile(folder_u / name) as z:
            assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
        with zipfile.ZipFile(folder_c / name) as z:
            assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
        with np.load(folder_u / name) as a, np.load(folder_c / name) as b:
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])
    size = lambda d: sum(os.path.getsize(d / f) for f in names)  # noqa: E731
    assert size(folder_c) < size(folder_u)


# --------------------------------------------------------------------------- resume

STALLING_BUILD = r'''
import io, sys, time
import numpy as np
real = np.savez_compressed
calls = []

def stalling_savez_compressed(file, **arrays):
    # The third file: write its first half, then stall; a SIGKILL now leaves a partial
    # temporary file, as a crash or a power cut in the middle of a write would.
    calls.append(1)
    if len(calls) < 3:
        return real(file, **arrays)
    buf = io.BytesIO()
    real(buf, **arrays)
    data = buf.getvalue()
    file.write(data[:len(data) // 2])
    file.flush()
    time.sleep(120)

np.savez_compressed = stalling_savez_compressed
import build_batches
sys.exit(build_batches.main(sys.argv[1:]))
'''


def _partial_temps(folder):
    sizes = []
    for f in os.listdir(folder):
        if f.endswith('.tmp'):
            try:
                sizes.append(os.path.getsize(folder / f))
            except FileNotFoundError:  # renamed meanwhile
                pass
    return [s for s in sizes if s > 0]


@pytest.mark.cli
def test_killed_build_resumes_without_truncated_files(syn, tmp_path):
    ids = original_build(syn, 'unc', 'train', tmp_path / 'orig')
    out = tmp_path / 'ours'
    folder = out / 'unc' / 'train_batch'
    args = ['-d', 'unc', '-t', 'train', '--synthetic', str(syn), '--out', str(out),
            '--input_size', str(SIZE), '-j', '0', '--no_progress']
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, '-c', STALLING_BUILD] + args, cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        # the stalled state: two finished files and the third one's partial temp file
        while not (folder.is_dir() and _partial_temps(folder)
                   and len([f for f in os.listdir(folder) if f.endswith('.npz')]) == 2):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, 'the build never reached its third file'
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # no cleanup code runs
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()

    names = os.listdir(folder)
    finals = sorted(f for f in names if f.endswith('.npz'))
    assert len(finals) == 2 < len(ids), 'killed while writing the third file'
    assert _partial_temps(folder), 'a partial temporary file is left'
    for f in finals:  # nothing truncated under a final name
        with np.load(folder / f) as z:
            assert sorted(z.files) == ['im_batch', 'image_id', 'mask_batch', 'sent_batch',
                                       'text_batch']
            assert z['im_batch'].size and z['mask_batch'].size  # decompresses fully
    # a stray temp from some other crash as well
    (folder / '.unc_train_0.npz.crashed.tmp').write_bytes(b'PK\x03\x04 truncated')
    stamps = {f: os.stat(folder / f).st_mtime_ns for f in finals}

    assert build_batches.main(args) == 0
    names = os.listdir(folder)
    assert not [f for f in names if f.endswith('.tmp')]
    assert {f: os.stat(folder / f).st_mtime_ns for f in finals} == stamps  # kept, not redone
    assert_same_batches(out, tmp_path / 'orig', 'unc', 'train', ids)


def test_rerun_with_other_settings_is_refused(syn, tmp_path, capsys):
    assert run(syn, 'unc', 'testB', tmp_path) == 0
    assert run(syn, 'unc', 'testB', tmp_path, '-T', '10') == 2
    assert re.search(r'testB_batch was built with other settings \(T: \[20\], now \[10\]\).*'
                     r'--overwrite', capsys.readouterr().err)
    assert run(syn, 'unc', 'testB', tmp_path, '-T', '10', '--overwrite') == 0
    with np.load(tmp_path / 'unc/testB_batch/unc_testB_0.npz') as z:
        assert z['text_batch'].shape == (10,)


# --------------------------------------------------------------------------- errors, vocab

def test_bad_inputs_are_named(syn, tmp_path, capsys):
    assert run(syn, 'Gref', 'testA', tmp_path) == 2
    err = capsys.readouterr().err
    assert 'refs(google).p' in err and 'testA' in err
    assert re.search(r'splits present: (train, val|val, train)$', err.strip())

    bad = tmp_path / 'bad'
    bad.mkdir()
    query = json.load(open(syn / 'referit_query_test.json'))
    key = next(iter(query))
    query[key] = query[key] + ['  ']
    (bad / 'referit_query_test.json').write_text(json.dumps(query))
    rc = build_batches.main(['-d', 'referit', '-t', 'test', '--synthetic', str(syn),
                             '--query_dir', str(bad), '--out', str(tmp_path), '-j', '0',
                             '--no_progress'])
    assert rc == 2
    err = capsys.readouterr().err
    assert 'referit_query_test.json' in err and key in err and 'empty sentence' in err

    rc = build_batches.main(['-d', 'unc', '-t', 'val', '--synthetic', str(syn),
                             '--vocab', str(tmp_path / 'nope.txt'), '--out', str(tmp_path)])
    assert rc == 2 and 'nope.txt' in capsys.readouterr().err


def test_build_vocab_from_training_expressions(syn, tmp_path):
    path = tmp_path / 'vocab.txt'
    assert build_batches.main(['-d', 'unc', '-t', 'train', '--synthetic', str(syn),
                               '--build_vocab', str(path)]) == 0
    words = path.read_text().split('\n')[:-1]
    assert words[:4] == ['<pad>', '<go>', '<eos>', '<unk>']
    with open(syn / 'refer/refcoco/refs(unc).p', 'rb') as f:
        sents = [s['sent'] for r in pickle.load(f) if r['split'] == 'train'
                 for s in r['sentences']]
    counts = {}
    for s in sents:
        for w in s.split():
            counts[w] = counts.get(w, 0) + 1
    assert sorted(words[4:]) == sorted(counts)
    assert [counts[w] for w in words[4:]] == sorted(counts.values(), reverse=True)
    vocab = {w: i for i, w in enumerate(words)}
    assert all(3 not in orig_tokens(s, vocab, 20) for s in sents)  # no <unk> in train


def test_every_flag_has_help():
    for action in build_batches.build_parser()._actions:
        assert action.help, action.option_strings


def test_docstring_lists_commands_and_arrays():
    doc = build_batches.__doc__
    for needle in ['python build_batches.py -d unc -t train', '-d Gref_umd -t test',
                   '-d referit -t trainval', 'text_batch  int64 [T]', 'im_batch    uint8',
                   'mask_batch  bool', 'sent_batch  str', '{dataset}_{setname}_{n}.npz']:
        assert needle in doc
