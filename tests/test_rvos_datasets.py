"""util/datasets/ref_youtube_vos.py (Ref-YouTube-VOS, Ref-DAVIS17) and mevis.py on the generated
releases of tests/rvos_fixtures.py: the training samples and the whole-video queries against
an expectation computed here from what the fixtures drew (the masks as numpy arrays, the frame
names), the clips at the ends of a video, the counted skips, MeViS's union of two objects and
its RLE round trip, the batches build_A2D_batches.py --rvos writes from them, and the one-line
errors naming the file for malformed releases."""

import json
import os
import pickle
import shutil
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

import rvos_fixtures
from util.datasets import mevis, ref_youtube_vos
from util.datasets.a2d import query_words

T = 20


@pytest.fixture(scope='module')
def releases(tmp_path_factory):
    """{name: (root, truth)} of the three generated releases, written once for the module."""
    base = tmp_path_factory.mktemp('rvos')
    out = {}
    for name, write in (('ytvos', rvos_fixtures.write_ref_youtube_vos),
                        ('davis', rvos_fixtures.write_ref_davis),
                        ('mevis', rvos_fixtures.write_mevis)):
        root = str(base / name)
        out[name] = (root, write(root))
    return out


def copy_of(releases, name, tmp_path):
    """A copy of a release to break."""
    root = str(tmp_path / name)
    shutil.copytree(releases[name][0], root)
    return root


def window(k, n):
    """The 1-based frame numbers of the clip of frame k of n, written out: 8 before, k, 7 after,
    each clamped to the video."""
    return [min(max(k + d, 1), n) for d in range(-8, 8)]


def expected_samples(root, split, videos, mask_of, image_dir):
    """(video, exp_id, frame_id, mask, paths) of every expected sample: videos and expressions
    in the fixture's order, frames sorted by name; mask_of(video, v, exp, name) -> bool mask
    or None."""
    out = []
    for video, v in videos.items():
        frames = sorted(v['listed'])
        for exp_id, exp in v['expressions'].items():
            for k, name in enumerate(frames, 1):
                mask = mask_of(video, v, exp, name)
                if mask is None or not mask.any():
                    continue
                paths = [os.path.join(image_dir, video, frames[i - 1] + '.jpg')
                         for i in window(k, len(frames))]
                out.append((video, exp_id, k, mask, paths))
    return out


def checked_samples(releases, name, read, mask_of):
    """(samples, counts) of read (a module's samples) on the train split of release `name`,
    each sample checked against expected_samples of what the fixture drew."""
    root, truth = releases[name]
    counts = Counter()
    got = list(read(root, 'train', T, counts))
    want = expected_samples(root, 'train', truth['train'], mask_of,
                            os.path.join(root, 'train', 'JPEGImages'))
    assert len(got) == len(want)
    for (s, entry), (video, exp_id, k, mask, paths) in zip(got, want):
        assert s == 'train'
        assert ('video %s expression %s' % (video, exp_id)) in entry.what
        assert entry.frame_id == k
        assert entry.mask.shape == mask.shape
        np.testing.assert_array_equal(entry.mask.astype(bool), mask)
        assert entry.frame_paths == paths
    return got, counts


# --------------------------------------------------------------------------- Ref-YouTube-VOS

def ytvos_mask(video, v, exp, name):
    sent, obj = exp
    if v['objects'] is None or obj not in v['objects'] or name not in v['labels']:
        return None
    return v['labels'][name] == obj


def test_ref_youtube_vos_samples_are_the_drawn_masks(releases):
    got, counts = checked_samples(releases, 'ytvos', ref_youtube_vos.samples, ytvos_mask)
    # 'skips': object 1 in the 18 annotated frames, object 2 in 10 of them (frames 0-11 but 3
    # and 10, which have no PNG); 'names': 5 frames.
    assert len(got) == 18 + 10 + 5
    assert counts == Counter({
        'listed frame without an annotation .png (skipped)': 2,         # skips 00015, 00050
        'all-zero mask (skipped)': 8,                                   # object 2, frames 12-19
        'expression of an object missing from meta.json (skipped)': 1,  # skips, object 3
        'video missing from meta.json (skipped)': 1,                    # unlisted
        'frames not listed in sorted order (sorted)': 1})               # names
    first = got[0][1]
    # the original's tokenisation: ', ' is one token, hence two spaces after the comma
    assert (first.sent, first.text) == ('the red ball, moving left.', 'the red ball ,  moving left')
    assert (first.sent, first.text) == query_words('The red ball, moving left.', T)


def test_clip_windows_at_the_ends_of_a_video(releases):
    root, truth = releases['ytvos']
    got = [e for _, e in ref_youtube_vos.samples(root, 'train', T, Counter())
           if 'video skips expression 0' in e.what]
    folder = os.path.join(root, 'train', 'JPEGImages', 'skips')
    names = [os.path.relpath(p, folder) for p in got[0].frame_paths]
    # the first frame: 8 copies of itself, then frames 2-8
    assert got[0].frame_id == 1
    assert names == ['00000.jpg'] * 9 + ['%05d.jpg' % (5 * k) for k in range(1, 8)]
    # the last (20th) frame: frames 12-20, then 7 copies of the last
    assert got[-1].frame_id == 20
    assert [os.path.relpath(p, folder) for p in got[-1].frame_paths] == (
        ['%05d.jpg' % (5 * k) for k in range(11, 20)] + ['00095.jpg'] * 7)
    # frames without annotation (4th, 11th) are not samples, but are in the clips
    assert [e.frame_id for e in got] == [k for k in range(1, 21) if k not in (4, 11)]
    assert os.path.join(folder, '00015.jpg') in got[1].frame_paths


def test_frames_named_out_of_order_are_sorted_and_keep_their_names(releases):
    root, truth = releases['ytvos']
    counts = Counter()
    queries = ref_youtube_vos.queries(root, 'train', T, counts)
    q = [q for q in queries if q.video == 'names'][0]
    assert q.frames == ['a0', 'b3', 'c1', 'd7', 'e2']
    assert [os.path.basename(p) for p in q.frame_paths] == [f + '.jpg' for f in q.frames]
    assert counts['frames not listed in sorted order (sorted)'] == 1
    for k, name in enumerate(q.frames):
        np.testing.assert_array_equal(q.mask(k), truth['train']['names']['labels'][name] == 1)
        assert q.mask(k).shape == (31, 40)


def test_ref_youtube_vos_queries_with_and_without_masks(releases):
    root, truth = releases['ytvos']
    train = ref_youtube_vos.queries(root, 'train', T, Counter())
    assert [(q.video, q.exp_id) for q in train] == [
        (v, e) for v, video in truth['train'].items() for e in video['expressions']]
    copy = pickle.loads(pickle.dumps(train[0]))  # module functions: fit for worker processes
    np.testing.assert_array_equal(copy.mask(5), train[0].mask(5))
    skips = truth['train']['skips']
    for q in train[:2]:
        obj = skips['expressions'][q.exp_id][1]
        assert q.has_masks and q.annotator is None
        for k, name in enumerate(q.frames):
            if name in skips['labels']:
                np.testing.assert_array_equal(q.mask(k), skips['labels'][name] == obj)
            else:  # no annotation PNG: no ground truth for this frame
                assert q.mask(k) is None
    valid = ref_youtube_vos.queries(root, 'valid', T, Counter())
    assert [(q.video, q.exp_id, q.sent) for q in valid] == [
        ('val', '0', 'the person on the left'), ('val', '1', 'a horse')]
    for q in valid:
        assert not q.has_masks and q.mask(0) is None and q.mask(6) is None and q.void(0) is None
        assert q.frames == ['%05d' % k for k in range(7)]
        assert all(os.path.isfile(p) for p in q.frame_paths)


# --------------------------------------------------------------------------- Ref-DAVIS17

def test_ref_davis_samples_leave_void_out_and_queries_carry_their_annotator(releases):
    root, truth = releases['davis']
    got, counts = checked_samples(releases, 'davis', ref_youtube_vos.davis_samples, ytvos_mask)
    # 4 expressions of object 1 in 18 frames, 4 of object 2 in 9 (it leaves after frame 9)
    assert len(got) == 4 * 18 + 4 * 9 and counts == Counter({'all-zero mask (skipped)': 4 * 9})
    assert not any(e.mask[0].any() for _, e in got)  # the void row (255) is no object
    assert got[0][1].what.endswith('(annotator 1, first frame)')
    train = ref_youtube_vos.davis_queries(root, 'train', T, Counter())
    assert [q.annotator for q in train] == [0, 1, 2, 3] * 2
    assert [ref_youtube_vos.ANNOTATORS[q.annotator] for q in train[:2]] == [
        'annotator 1, first frame', 'annotator 1, full video']
    valid = ref_youtube_vos.davis_queries(root, 'valid', T, Counter())
    labels = truth['valid']['davval']['labels']
    assert [q.annotator for q in valid] == [0, 1, 2, 3]
    for q in valid:
        assert q.has_masks and q.frames == sorted(labels)
        for k, name in enumerate(q.frames):
            np.testing.assert_array_equal(q.mask(k), labels[name] == 1)
            np.testing.assert_array_equal(q.void(k), labels[name] == 255)
            assert q.void(k)[0].all() and not q.void(k)[1:].any()  # the fixture's top row


def test_ref_davis_needs_four_expressions_per_object(releases, tmp_path):
    root = copy_of(releases, 'davis', tmp_path)
    path = os.path.join(root, 'meta_expressions', 'valid', 'meta_expressions.json')
    with open(path) as f:
        meta = json.load(f)
    del meta['videos']['davval']['expressions']['3']
    with open(path, 'w') as f:
        json.dump(meta, f)
    with pytest.raises(ValueError) as e:
        ref_youtube_vos.davis_queries(root, 'valid', T, Counter())
    assert one_line(e).startswith(path + ': video davval has 3 expressions')
    # Ref-YouTube-VOS's reading of the same file does not group them
    assert len(ref_youtube_vos.queries(root, 'valid', T, Counter())) == 3


# --------------------------------------------------------------------------- MeViS

def mevis_mask(video, v, exp, name):
    """The union of the expression's anno_ids' drawn masks (None: null)."""
    masks = [v['masks'][a][name] for a in exp[1] if v['masks'][a][name] is not None]
    return np.logical_or.reduce(masks) if masks else None


def test_mevis_samples_are_the_union_of_the_expression_objects(releases):
    truth = releases['mevis'][1]
    got, counts = checked_samples(releases, 'mevis', mevis.samples, mevis_mask)
    # m1: anno 10 in 18 frames; 10 and 11 in 18; 11 in frames 0-8 but 4 (empty RLE); m2: 4
    assert len(got) == 18 + 18 + 8 + 4
    assert counts == Counter({'all-zero mask (skipped)': 10,
                              'frames not listed in sorted order (sorted)': 1})
    m1 = truth['train']['m1']['masks']
    two = [e for _, e in got if 'video m1 expression 1' in e.what]
    for e in two[:9]:  # both objects in view, overlapping in some frames
        name = '%05d' % (e.frame_id - 1)
        np.testing.assert_array_equal(e.mask, m1['10'][name] | m1['11'][name])
    assert any((m1['10'][n] & m1['11'][n]).any() for n in m1['10'] if m1['11'][n] is not None)
    assert [e.frame_id for e in two] == list(range(1, 19))


def test_mevis_masks_follow_the_frame_names_when_listed_out_of_order(releases):
    root, truth = releases['mevis']
    q = [q for q in mevis.queries(root, 'train', T, Counter()) if q.video == 'm2'][0]
    assert q.frames == ['a0', 'b3', 'c1', 'd7']
    for k, name in enumerate(q.frames):
        np.testing.assert_array_equal(q.mask(k), truth['train']['m2']['masks']['20'][name])


def test_mevis_queries_with_and_without_masks(releases):
    root, truth = releases['mevis']
    valid_u = mevis.queries(root, 'valid_u', T, Counter())
    (q,) = valid_u
    assert (q.video, q.exp_id, q.sent, q.annotator) == ('mu', '0', 'the moving cow', None)
    for k, name in enumerate(q.frames):
        np.testing.assert_array_equal(q.mask(k), truth['valid_u']['mu']['masks']['30'][name])
    (q,) = mevis.queries(root, 'valid', T, Counter())
    assert not q.has_masks and q.mask(0) is None and q.frames == ['%05d' % k for k in range(4)]
    train = mevis.queries(root, 'train', T, Counter())
    m1 = truth['train']['m1']['masks']
    assert train[2].mask(4).shape == (37, 53) and not train[2].mask(4).any()  # empty RLE
    assert not train[2].mask(12).any()  # null
    np.testing.assert_array_equal(train[1].mask(0), m1['10']['00000'] | m1['11']['00000'])


def test_empty_expressions_and_expressions_without_objects_are_counted(releases, tmp_path):
    root = copy_of(releases, 'mevis', tmp_path)

    def change(d):
        d['videos']['m1']['expressions']['0']['exp'] = ' '
        d['videos']['m1']['expressions']['2']['anno_id'] = []
    edit_json(os.path.join(root, 'train', 'meta_expressions.json'), change)
    counts = Counter()
    got = list(mevis.samples(root, 'train', T, counts))
    assert len(got) == 18 + 4  # expression 1 of m1 and m2's
    assert counts == Counter({'empty expression (skipped)': 1,
                              'expression without anno_id (skipped)': 1,
                              'frames not listed in sorted order (sorted)': 1})
    assert len(list(mevis.samples(root, 'valid_u', T, Counter()))) == 5
    root = copy_of(releases, 'ytvos', tmp_path)
    edit_json(os.path.join(root, 'meta_expressions', 'train', 'meta_expressions.json'),
              lambda d: d['videos']['names']['expressions']['5'].__setitem__('exp', ''))
    counts = Counter()
    assert len(list(ref_youtube_vos.samples(root, 'train', T, counts))) == 18 + 10
    assert counts['empty expression (skipped)'] == 1


def test_rle_round_trip_through_pycocotools():
    rng = np.random.RandomState(0)
    mask = rng.rand(37, 53) > 0.6
    stored = json.loads(json.dumps(rvos_fixtures.rle(mask)))  # as mask_dict.json holds it
    assert isinstance(stored['counts'], str) and stored['size'] == [37, 53]
    np.testing.assert_array_equal(mevis.decode(stored, (37, 53), 'here'), mask)
    np.testing.assert_array_equal(coco_mask.decode(
        {'size': stored['size'], 'counts': stored['counts'].encode()}), mask)
    # an uncompressed RLE (counts a list of run lengths, column-major) decodes the same
    runs, flat, k = [], mask.flatten(order='F'), 0
    for v in (False, True) * flat.size:
        n = 0
        while k < flat.size and flat[k] == v:
            n, k = n + 1, k + 1
        runs.append(n)
        if k == flat.size:
            break
    np.testing.assert_array_equal(mevis.decode({'size': [37, 53], 'counts': runs}, (37, 53),
                                               'here'), mask)
    assert mevis.decode(None, (37, 53), 'here') is None


# --------------------------------------------------------------------------- whole-video reads

def read_as_test_mode(queries):
    """{(video, exp_id, frame name): (mask, void)} read as whole-video test mode reads them
    (evaluate_video.test_video): a video at a time, frame after frame, each expression's mask
    then its void, then the video's queries forgotten."""
    videos, out = {}, {}
    for q in queries:
        videos.setdefault(q.video, []).append(q)
    for qs in videos.values():
        for k, name in enumerate(qs[0].frames):
            for q in qs:
                out[q.video, q.exp_id, name] = q.mask(k), q.void(k)
        for q in qs:
            q.forget()
    return out


def drawn_truth(name, v, exp, frame):
    """(mask, void) of an expression in a frame as the queries give them, from what the fixture
    drew (queries keep the expressions that samples skip)."""
    if name == 'mevis':
        drawn = [v['masks'][a][frame] for a in exp[1] if v['masks'][a][frame] is not None]
        return np.logical_or.reduce(drawn + [np.zeros(v['size'], bool)]), None
    if frame not in v['labels']:
        return None, None
    label = v['labels'][frame]
    return label == exp[1], (label == ref_youtube_vos.VOID if name == 'davis' else None)


@pytest.mark.parametrize('name, read_queries', [
    ('ytvos', ref_youtube_vos.queries), ('davis', ref_youtube_vos.davis_queries),
    ('mevis', mevis.queries)])
def test_whole_video_test_reads_each_annotation_once_per_frame(releases, monkeypatch, name,
                                                               read_queries):
    root, truth = releases[name]
    reads = Counter()  # what was read: an annotation PNG, or an anno_id's RLE in a frame

    def counted(module, function, what):
        original = getattr(module, function)

        def wrapper(*args):
            reads[what(*args)] += 1
            return original(*args)
        monkeypatch.setattr(module, function, wrapper)

    if name == 'mevis':
        counted(mevis, 'decode', lambda rle, size, where: where)
        counted(mevis, 'image_size', lambda path: path)
        mask_path = os.path.join(root, 'train', 'mask_dict.json')
        want = ['%s, frame %s, anno_id %s' % (mask_path, frame, a)
                for v in truth['train'].values()
                for a in sorted({a for _, ids in v['expressions'].values() for a in ids})
                for frame in v['listed']]
        want += [os.path.join(root, 'train', 'JPEGImages', video, frame + '.jpg')
                 for video, v in truth['train'].items() for frame in v['listed']]
    else:
        counted(ref_youtube_vos, 'read_label', lambda path, frame_path: path)
        want = [os.path.join(root, 'train', 'Annotations', video, frame + '.png')
                for video, v in truth['train'].items() for frame in v['labels']]
    queries = read_queries(root, 'train', T, Counter())
    got = read_as_test_mode(queries)
    assert reads == Counter(want)  # each once, for all the expressions of its video
    for (video, exp_id, frame), (mask, void) in got.items():
        v = truth['train'][video]
        want_mask, want_void = drawn_truth(name, v, v['expressions'][exp_id], frame)
        for a, b in ((mask, want_mask), (void, want_void)):
            assert (a is None) == (b is None), (video, exp_id, frame)
            if b is not None:
                np.testing.assert_array_equal(a, b, err_msg='%s %s %s' % (video, exp_id, frame))
    assert len(got) == sum(len(v['listed']) * len(v['expressions'])
                           for v in truth['train'].values())
    assert all(not q.cache.items for q in queries)  # forgotten: no frame held after the video


# --------------------------------------------------------------------------- the writer's contract

@pytest.mark.parametrize('name, dataset, mask_of', [
    ('ytvos', 'ref_youtube_vos', ytvos_mask), ('davis', 'ref_davis17', ytvos_mask),
    ('mevis', 'mevis', mevis_mask)])
def test_the_builder_writes_the_drawn_samples(releases, tmp_path, name, dataset, mask_of):
    """build_A2D_batches.py --rvos: every training sample read back (data_reader.load_batch)
    is the drawn mask and the 16 frames of its window, each resized and zero-padded to --size
    as the original's training samples (im_processing.resize_and_pad), every 2nd frame."""
    import skimage
    from helpers import run_main, write_vocab
    from util import im_processing
    from util.data_reader import load_batch
    root, truth = releases[name]
    vocab = write_vocab(str(tmp_path / 'vocab.txt'), 50)
    size = 24
    out = run_main(['--rvos', dataset, '--release-root', root, '--vocab', vocab, '--out',
                    str(tmp_path), '--size', str(size), '--frame-stride', '2', '--no-progress'],
                   str(tmp_path), script=os.path.join('CMPC_video', 'build_A2D_batches.py'))
    assert out.returncode == 0, out.stderr
    want = [w for w in expected_samples(root, 'train', truth['train'], mask_of,
                                        os.path.join(root, 'train', 'JPEGImages'))
            if w[2] % 2 == 1]  # frames 1, 3, 5, ...
    folder = tmp_path / dataset / 'train_batch'
    assert len([f for f in os.listdir(folder) if f.endswith('.npz')]) == len(want)

    def stored(im):
        return skimage.img_as_ubyte(im_processing.resize_and_pad(im, size, size))

    for n, (video, exp_id, k, mask, paths) in enumerate(want):
        batch = load_batch(str(folder / ('%s_train_%d.npz' % (dataset, n))))
        assert int(batch['frame_id']) == k
        np.testing.assert_array_equal(
            batch['mask_batch'], im_processing.resize_and_pad(mask.astype(np.float32), size,
                                                              size) > 0)
        frames = np.stack([stored(np.asarray(Image.open(p).convert('RGB'))) for p in paths])
        np.testing.assert_array_equal(batch['frames'], frames, err_msg='%s %s' % (video, k))


# --------------------------------------------------------------------------- malformed files

def one_line(excinfo):
    message = str(excinfo.value)
    assert '\n' not in message
    return message


def edit_json(path, change):
    with open(path) as f:
        data = json.load(f)
    change(data)
    with open(path, 'w') as f:
        json.dump(data, f)


def test_malformed_ref_youtube_vos_files_are_one_line_errors_naming_the_file(releases, tmp_path):
    root = copy_of(releases, 'ytvos', tmp_path)
    meta = os.path.join(root, 'meta_expressions', 'train', 'meta_expressions.json')

    def fails(error, start):
        with pytest.raises(error) as e:
            list(ref_youtube_vos.samples(root, 'train', T, Counter()))
        assert one_line(e).startswith(start), str(e.value)

    def query_fails(video, k, start):  # whole-video test mode's read of the same file
        q = [q for q in ref_youtube_vos.queries(root, 'train', T, Counter()) if q.video == video]
        with pytest.raises(ValueError) as e:
            q[0].mask(k)
        assert one_line(e).startswith(start), str(e.value)

    shutil.copy(meta, meta + '.good')
    edit_json(meta, lambda d: d['videos']['names'].pop('frames'))
    fails(ValueError, meta + ': video names has no "frames" key')
    shutil.copy(meta + '.good', meta)
    edit_json(meta, lambda d: d['videos']['skips']['expressions']['1'].pop('exp'))
    fails(ValueError, meta + ': video skips expression 1 has no "exp" key')
    shutil.copy(meta + '.good', meta)
    edit_json(meta, lambda d: d.pop('videos'))
    fails(ValueError, meta + ': the file has no "videos" key')
    shutil.copy(meta + '.good', meta)
    with open(meta, 'w') as f:
        f.write('{"videos": ')
    fails(ValueError, meta + ': not valid JSON')
    shutil.copy(meta + '.good', meta)

    image = os.path.join(root, 'train', 'JPEGImages', 'names', 'c1.jpg')
    os.remove(image)
    fails(FileNotFoundError, image + ': frame c1 of video names (listed in %s) not found' % meta)
    rvos_fixtures.write_jpeg(image, (31, 40), 0)

    png = os.path.join(root, 'train', 'Annotations', 'skips', '00020.png')
    rvos_fixtures.write_palette_png(png, np.zeros((36, 53), np.uint8))
    wrong_size = png + ': annotation is 53x36, its frame %s is 53x37' % os.path.join(
        root, 'train', 'JPEGImages', 'skips', '00020.jpg')
    fails(ValueError, wrong_size)
    query_fails('skips', 4, wrong_size)  # frame 00020
    Image.new('RGB', (53, 37)).save(png)
    fails(ValueError, png + ': annotation PNG in mode RGB')
    with open(png, 'wb') as f:
        f.write(b'not a png')
    fails(ValueError, png + ': not a readable annotation PNG')
    os.remove(png)

    os.remove(os.path.join(root, 'train', 'meta.json'))
    fails(FileNotFoundError, os.path.join(root, 'train', 'meta.json') + ': meta.json not found')
    with pytest.raises(FileNotFoundError) as e:
        ref_youtube_vos.queries(root, 'test', T, Counter())
    assert one_line(e) == '%s: meta_expressions.json not found' % os.path.join(
        root, 'meta_expressions', 'test', 'meta_expressions.json')


def test_malformed_mevis_files_are_one_line_errors_naming_the_file(releases, tmp_path):
    root = copy_of(releases, 'mevis', tmp_path)
    masks = os.path.join(root, 'train', 'mask_dict.json')
    meta = os.path.join(root, 'train', 'meta_expressions.json')

    def fails(error, start):
        with pytest.raises(error) as e:
            list(mevis.samples(root, 'train', T, Counter()))
        assert one_line(e).startswith(start), str(e.value)

    shutil.copy(masks, masks + '.good')
    edit_json(masks, lambda d: d.pop('11'))
    fails(ValueError, masks + ': no anno_id 11 (of video m1 expression 1 in %s)' % meta)
    shutil.copy(masks + '.good', masks)
    edit_json(masks, lambda d: d['11'].pop())
    fails(ValueError, masks + ': anno_id 11 has 17 masks, video m1 has 18 frames')
    shutil.copy(masks + '.good', masks)
    edit_json(masks, lambda d: d['10'].__setitem__(2, rvos_fixtures.rle(np.ones((37, 52), bool))))
    fails(ValueError, masks + ', frame 00002, anno_id 10: mask is 52x37, the frame 53x37')
    q = mevis.queries(root, 'train', T, Counter())[0]  # whole-video test mode's read
    with pytest.raises(ValueError) as e:
        q.mask(2)
    assert one_line(e).startswith(masks + ', frame 00002, anno_id 10: mask is 52x37, the '
                                  'frame 53x37')
    shutil.copy(masks + '.good', masks)
    edit_json(masks, lambda d: d['10'].__setitem__(2, {'counts': 'abc'}))
    fails(ValueError, masks + ', frame 00002, anno_id 10: not a COCO RLE')
    shutil.copy(masks + '.good', masks)
    edit_json(meta, lambda d: d['videos']['m1']['expressions']['0'].pop('anno_id'))
    fails(ValueError, meta + ': video m1 expression 0 has no "anno_id" key')
    edit_json(meta, lambda d: d['videos']['m1']['expressions']['0'].__setitem__('anno_id', ['10']))
    os.remove(masks)
    fails(FileNotFoundError, masks + ': mask_dict.json not found')
    with pytest.raises(FileNotFoundError) as e:
        list(mevis.samples(root, 'valid', T, Counter()))
    assert one_line(e).startswith(os.path.join(root, 'valid', 'mask_dict.json'))
