"""tools/synthetic_video.py (tools/make_synthetic_dataset.py --video) and tools/synthetic_baselines.py
--video: the files are in the A2D release's formats, the actions are what the queries say
(checked on the annotated masks' centroids), twins differ only in their action, and the
baselines are scored by query category.

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
    return out, synthetic_video.generate(out, train_videos=6, test_videos=4)


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
    assert checked == {'left', 'right', 'jumping', 'still'}


def test_motion_queries_have_a_twin_that_differs_only_in_its_action(dataset):
    out, summary = dataset
    samples = summary['test_samples']
    assert {s['category'] for s in samples} == {'motion', 'appearance'}
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
            assert bool(twins) == (s['category'] == 'motion'), s


def test_video_baselines_by_category(dataset, capsys):
    from tools import synthetic_baselines
    out, summary = dataset
    table = synthetic_baselines.main(['--video', out, '--out', os.path.join(out, 't.json')])
    samples = summary['test_samples']
    n = {c: sum(s['category'] == c for s in samples) for c in ('motion', 'appearance')}
    assert table['whole frame']['all']['n'] == len(samples)
    assert table['union of all objects']['motion']['n'] == n['motion']
    # a hand check of one sample: the union holds the target, so I = |target|
    s = samples[0]
    ids, masks = read_masks(out, s['video'], s['frame'])
    gt = masks[ids.index(s['instance'])]
    assert table['whole frame']['all']['cum_U'] == len(samples) * gt.size
    assert 'motion queries' in capsys.readouterr().out
    with open(os.path.join(out, 't.json')) as f:
        assert json.load(f) == table
