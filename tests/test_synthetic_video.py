"""tools/synthetic_video.py (tools/make_synthetic_dataset.py --video) and tools/synthetic_baselines.py
--video: the files are in the A2D release's formats, the actions are what the queries say
(checked on the annotated masks' centroids), twins differ only in their action, are pixel for
pixel the same in the annotated frames and differ in the others, and the baselines are scored
by query category (worked by hand on a small case).

    cd /work/main && .venv/bin/python -m pytest tests/test_synthetic_video.py -q
"""

import csv
import json
import os

import h5py
import numpy as np
import pytest

from tools import synthetic_video


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('synv'))
    return out, synthetic_video.generate(out, train_videos=6, test_videos=6)


def read_masks(out, video, frame):
    with h5py.File(os.path.join(out, 'A2D-Sentences', 'a2d_annotation_with_instances', video,
                                '%05d.h5' % frame), 'r') as f:
        ids = [int(i) for i in np.asarray(f['instance'][:]).ravel()]
        masks = np.asarray(f['reMask'][:]).reshape((len(ids),) + f['reMask'].shape[-2:])
    return ids, masks.transpose(0, 2, 1) > 0  # stored transposed, as the release


def test_queries_say_what_the_masks_do(dataset):
    out, summary = dataset
    with open(os.path.join(out, 'A2D-Sentences', 'a2d_annotation.txt')) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['video_id', 'instance_id', 'query'] and len(rows) - 1 == summary['queries']
    checked = set()
    for video, instance, query in rows[1:]:
        ids, m6 = read_masks(out, video, 6)
        _, m18 = read_masks(out, video, 18)
        k = ids.index(int(instance))
        (y6, x6), (y18, x18) = (np.argwhere(m[k]).mean(0) for m in (m6, m18))
        # 12 frames apart: 2 px per frame sideways. A jumper's height is 10 |sin(pi t / 8)| px
        # above its rest (t = frame - 1): 9.2 px at frame 6, 3.8 px at frame 18.
        if 'moving right' in query:
            assert x18 - x6 == pytest.approx(24, abs=1.5)
        elif 'moving left' in query:
            assert x6 - x18 == pytest.approx(24, abs=1.5)
        else:
            assert abs(x18 - x6) < 0.5
            if 'jumping' in query:
                assert y18 - y6 == pytest.approx(10 * (np.sin(5 * np.pi / 8)
                                                       - np.sin(np.pi / 8)), abs=1.0)
            else:
                assert y18 == y6
        checked.add(query.lower().rstrip('.').split()[-1])
    assert checked == {'left', 'right', 'jumping', 'still', 'colour'}


def test_motion_queries_have_a_twin_that_differs_only_in_its_action(dataset):
    out, summary = dataset
    samples = summary['test_samples']
    assert {s['category'] for s in samples} == {'motion', 'changes', 'appearance'}
    assert len(samples) == 3 * len({(s['video'], s['instance']) for s in samples})
    by_video = {}
    for s in samples:
        by_video.setdefault(s['video'], {})[s['instance']] = s
    for video in by_video.values():
        for s in video.values():
            words = set(s['query'].lower().rstrip('.').split()) - {'the', 'that', 'is'}
            twins = [t for t in video.values() if t is not s and
                     {w for w in words if w not in synthetic_video.ACTION_WORDS} ==
                     {w for w in set(t['query'].lower().rstrip('.').split()) - {'the', 'that', 'is'}
                      if w not in synthetic_video.ACTION_WORDS}]
            assert bool(twins) == (s['category'] in ('motion', 'changes')), s
            assert sorted(s['lookalikes']) == sorted([s['instance']] +
                                                     [t['instance'] for t in twins])
            changing = any('colour' in t['query'] for t in twins + [s])
            assert (s['category'] == 'changes') == (bool(twins) and changing), s


WHITE = (235, 235, 235)  # tools/synthetic.py's 'white', the changing twin's other colour
RGB = {'red': (210, 40, 35), 'green': (40, 160, 60), 'blue': (45, 85, 220),
       'yellow': (230, 205, 40)}


def crop(frame, mask):
    """The pixels of the mask's bounding box, and the mask's own there."""
    ys, xs = np.nonzero(mask)
    box = np.s_[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    return frame[box], mask[box]


@pytest.mark.parametrize('size', [96, 64])
def test_twins_are_identical_in_the_annotated_frames_only(size):
    cfg = dict(synthetic_video.DEFAULTS, size=size)
    seen = set()
    for i in range(12):
        offsets = set()
        actors, video, masks, category = synthetic_video.make_video(
            np.random.default_rng([0, i]), cfg)
        if category == 'appearance':
            continue
        seen.add(category)
        a, b = actors[0], actors[1]
        assert (a.kind, a.colour) == (b.kind, b.colour) and a.action != b.action
        for f in range(24):
            ma, mb = a.mask(f, size), b.mask(f, size)
            (pa, sa), (pb, sb) = crop(video[f], ma), crop(video[f], mb)
            same = sa.shape == sb.shape and (sa == sb).all() and (pa[sa] == pb[sb]).all()
            if f + 1 in (6, 12, 18):
                # the look-alikes: the same outline and the same pixels (noise included) ...
                assert same, (i, f + 1)
                assert (masks[f + 1][0] == ma).all() and (masks[f + 1][1] == mb).all()
                assert not (ma & mb).any()
            elif category == 'changes':
                # ... and in every other frame the changing one is white, the other keeps its
                # colour (pixel noise of sd 5 about the colour)
                assert sa.shape == sb.shape and (sa == sb).all()  # neither moves
                changing, staying = (pa, pb) if a.action == 'changing colour' else (pb, pa)
                changing, staying = changing[sa], staying[sa]
                assert np.abs(changing.mean(0) - WHITE).max() < 3, (i, f + 1)
                assert np.abs(staying.mean(0) - RGB[a.colour]).max() < 3, (i, f + 1)
            if category == 'motion':
                (ya, xa), (yb, xb) = np.argwhere(ma).mean(0), np.argwhere(mb).mean(0)
                offsets.add((round(yb - ya), round(xb - xa)))
        # motion twins look the same in every frame: only where one is from the other changes
        assert len(offsets) > 1 or category == 'changes'
    assert seen == {'changes', 'motion'}


def test_video_baselines_by_category(dataset, capsys):
    from tools import synthetic_baselines
    out, summary = dataset
    table = synthetic_baselines.main(['--video', out, '--out', os.path.join(out, 't.json')])
    samples = summary['test_samples']
    n = {c: sum(s['category'] == c for s in samples) for c in ('motion', 'changes', 'appearance')}
    assert table['whole frame']['all']['n'] == len(samples)
    for c in n:
        assert table['union of all objects'][c]['n'] == n[c]
    # the look-alike baselines are perfect on queries without a twin
    for row in ('twin at random', 'both twins'):
        assert table[row]['appearance']['overall_iou'] == 1
    # both twins of every pair are queried: guessing is right for half of them
    assert table['twin at random']['changes']['precision@0.5'] == 0.5
    # a hand check of one sample: the union holds the target, so I = |target|
    s = samples[0]
    ids, masks = read_masks(out, s['video'], s['frame'])
    gt = masks[ids.index(s['instance'])]
    assert table['whole frame']['all']['cum_U'] == len(samples) * gt.size
    assert 'changes' in capsys.readouterr().out
    with open(os.path.join(out, 't.json')) as f:
        assert json.load(f) == table


def test_video_baselines_worked_by_hand(tmp_path, capsys):
    # An 8 x 8 frame: twins A (instance 1) and B (2) of 2 x 2 px each, C (3) a row of 4 px.
    from tools import synthetic_baselines
    masks = np.zeros((3, 8, 8), bool)
    masks[0, 0:2, 0:2] = True  # A
    masks[1, 5:7, 5:7] = True  # B
    masks[2, 7, 0:4] = True  # C
    synthetic_video.write_h5(str(tmp_path / 'A2D-Sentences' / 'a2d_annotation_with_instances'
                                 / 'v' / '00006.h5'), [1, 2, 3], masks)
    samples = [dict(video='v', frame=6, instance=i, query='q%d' % i, category=c, lookalikes=l)
               for i, c, l in ((1, 'changes', [1, 2]), (2, 'changes', [1, 2]),
                               (3, 'appearance', [3]))]
    with open(tmp_path / 'synthetic_video.json', 'w') as f:
        json.dump({'test_samples': samples}, f)
    # a model that finds A for every query: (I, U) = (4, 4), (0, 8), (0, 8)
    with open(tmp_path / 'results.json', 'w') as f:
        json.dump({'model': 'video', 'iter': 7,
                   'per_sample': [{'I': 4, 'U': 4}, {'I': 0, 'U': 8}, {'I': 0, 'U': 8}]}, f)
    table = synthetic_baselines.main(['--video', str(tmp_path), '--results',
                                      str(tmp_path / 'results.json')])
    assert sorted(table) == ['both twins', 'twin at random', 'union of all objects',
                             'video CMPC iter 7', 'whole frame']

    def check(row, category, I, U, mean, p5):
        r = table[row][category]
        assert (r['cum_I'], r['cum_U']) == (I, U), (row, category, r)
        assert r['overall_iou'] == pytest.approx(I / U)
        assert r['mean_iou'] == pytest.approx(mean) and r['precision@0.5'] == pytest.approx(p5)

    # whole frame: I = 4 of U = 64 for each query
    check('whole frame', 'all', 12, 192, 4 / 64, 0)
    # union of all objects (12 px): I = 4 of U = 12 for each
    check('union of all objects', 'changes', 8, 24, 1 / 3, 0)
    check('union of all objects', 'appearance', 4, 12, 1 / 3, 0)
    # twin at random, A for both twins: A right (4 / 4), B wrong (0 / 8); C alone is right
    check('twin at random', 'changes', 4, 12, 0.5, 0.5)
    check('twin at random', 'appearance', 4, 4, 1, 1)
    check('twin at random', 'all', 8, 16, 2 / 3, 2 / 3)
    # both twins: 4 / 8 for A and B (IoU 0.5 passes precision@0.5), C alone
    check('both twins', 'changes', 8, 16, 0.5, 1)
    check('both twins', 'appearance', 4, 4, 1, 1)
    check('video CMPC iter 7', 'all', 4, 20, 1 / 3, 1 / 3)
    assert 'motion' not in table['whole frame']  # no motion queries here
    out = capsys.readouterr().out
    assert 'twin at random' in out and 'changes' in out
