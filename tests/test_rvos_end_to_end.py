"""Ref-YouTube-VOS, Ref-DAVIS17 and MeViS end to end on the generated releases of
tests/rvos_fixtures.py: build_A2D_batches.py --rvos NAME builds the training batches,
trainval_video.py trains 2 iterations on them and tests on whole videos of the release, writing
the J&F JSON and, for the two benchmarks with a server, the submission zip in its layout.
(test_evaluate_video.py holds the masks and the figures to an independent computation.)"""

import io
import json
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

import rvos_fixtures
from helpers import TINY, TINY_FLAGS, run_main, write_vocab

# slow: a build, 2 training iterations and a whole-video test per release (CI runs it)
pytestmark = [pytest.mark.cli, pytest.mark.eager, pytest.mark.slow]

BUILD = os.path.join('CMPC_video', 'build_A2D_batches.py')
SCRIPT = os.path.join('CMPC_video', 'trainval_video.py')
CASES = [  # dataset, fixture writer, test split, its server's layout (None: scored here only)
    ('ref_youtube_vos', rvos_fixtures.write_ref_youtube_vos, 'valid',
     'Annotations/{video}/{exp_id}/{frame}.png'),
    ('ref_davis17', rvos_fixtures.write_ref_davis, 'valid', None),
    ('mevis', rvos_fixtures.write_mevis, 'valid_u', '{video}/{exp_id}/{frame}.png'),
]


@pytest.mark.parametrize('dataset, write, split, layout', CASES, ids=[c[0] for c in CASES])
def test_build_train_and_test_on_whole_videos(tmp_path, dataset, write, split, layout):
    release = str(tmp_path / 'release')
    truth = write(release)
    vocab = write_vocab(str(tmp_path / 'vocab.txt'), TINY['vocab_size'])
    out = run_main(['--rvos', dataset, '--release-root', release, '--vocab', vocab, '--out',
                    str(tmp_path), '--size', '64', '--frame-stride', '2', '--no-progress'],
                   str(tmp_path), script=BUILD)
    assert out.returncode == 0, out.stderr
    batch_dir = tmp_path / dataset / 'train_batch'
    built = [n for n in os.listdir(batch_dir) if n.endswith('.npz')]
    assert built, out.stdout
    ckpt = str(tmp_path / 'ckpt')
    run_main(['-m', 'train', '-d', dataset, '-t', 'train', '--data-root', str(tmp_path),
              '--random-backbone', '-i', '2', '-s', '2', '--seed', '0', '--backbone-blocks',
              '1,1,1,1', '-f', ckpt, '--vocab', vocab] + TINY_FLAGS, str(tmp_path),
             script=SCRIPT)
    out = run_main(['-m', 'test', '-d', dataset, '-t', split, '--release-root', release,
                    '-f', ckpt, '-i', '2'], str(tmp_path), script=SCRIPT)
    results = json.load(open(os.path.join(ckpt, '%s_%s_iter_2_results.json' % (dataset, split))))
    videos = truth[split]
    n_expressions = sum(len(v['expressions']) for v in videos.values())
    assert results['expressions'] == n_expressions and results['videos'] == len(videos)
    if dataset == 'ref_youtube_vos':  # its valid split has no public masks
        assert 'without_DenseCRF' not in results
    else:
        jf = results['without_DenseCRF']['J&F']
        assert 0 <= jf['J'] <= 1 and 0 <= jf['F'] <= 1
        np.testing.assert_allclose(jf['J&F'], (jf['J'] + jf['F']) / 2)
        assert 'J&F = ' in out.stdout
    if layout is None:
        assert 'submission' not in results
        return
    expected = {layout.format(video=video, exp_id=exp_id, frame=name): v['size']
                for video, v in videos.items() for exp_id in v['expressions']
                for name in v['listed']}
    with zipfile.ZipFile(results['submission']) as z:
        assert sorted(z.namelist()) == sorted(expected)
        for path, (h, w) in expected.items():
            assert Image.open(io.BytesIO(z.read(path))).size == (w, h), path
