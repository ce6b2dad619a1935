"""CMPC_video/build_A2D_batches.py on hand-made A2D Sentences and J-HMDB Sentences fixtures in
the releases' formats, each quirk of the real files included; arrays are checked against what
the fixture says they must be (window indices, transposed masks and word ids worked out by
hand), read back as every reader reads them (util/data_reader.load_batch); the frame store
(each frame once), the original's layout and the layout before the frame store, resume after
kill -9, and --extract-frames on a small .mp4 made here with PyAV.

    cd /work/main && .venv/bin/python -m pytest tests/test_build_a2d_batches.py -q
"""

import csv
import json
import os
import shutil
import zipfile

import h5py
import numpy as np
import pytest
import scipy.io
import skimage
from PIL import Image

from util import im_processing
from util.data_reader import VIDEO_REQUIRED_KEYS, load_batch
from util.datasets import batches

VOCAB = ['<pad>', '<go>', '<eos>', '<unk>', 'the', 'man', 'dog', 'jumping', 'running', 'left',
         'waving']
H, W = 12, 16  # the fixture videos' frames


def write_csv(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', newline='') as f:
        csv.writer(f).writerows(rows)


def write_frames(folder, n, seed):
    """n random RGB PNGs 00001.png .. and the arrays, index 0 = frame 1."""
    os.makedirs(folder, exist_ok=True)
    frames = np.random.RandomState(seed).randint(0, 256, (n, H, W, 3)).astype(np.uint8)
    for i, f in enumerate(frames, 1):
        Image.fromarray(f).save(os.path.join(folder, '%05d.png' % i))
    return frames


def box(y0, y1, x0, x1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def write_h5(path, ids, masks):
    """An annotation .h5 as the release stores it: masks transposed ([w, h], or [n, w, h])."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, 'w') as f:
        f['instance'] = np.asarray(ids, np.float64)
        f['reMask'] = masks[0].T if len(ids) == 1 else np.stack([m.T for m in masks])


@pytest.fixture(scope='module')
def a2d(tmp_path_factory):
    root = tmp_path_factory.mktemp('a2d')
    a2d = root / 'A2D-Sentences'
    with open(root / 'vocab.txt', 'w') as f:
        f.write('\n'.join(VOCAB) + '\n')
    write_csv(str(a2d / 'a2d_annotation.txt'), [
        ['video_id', 'instance_id', 'query'],
        ['vidA', '1', 'The man jumping.'],
        ['vidA', '2', 'the dog running left'],
        ['vidA', '1 (copy)', 'man'],          # quirk: an instance id that is not a number
        ['vidB', '0', 'the dog'],
        ['vidC', '0', 'the man'],             # quirk: vidC is not in videoset.csv
    ])
    write_csv(str(a2d / 'Release' / 'videoset.csv'),
              [['vidA', 'x', '320', '20', '0'], ['vidB', 'y', '320', '5', '1']])
    frames = {'vidA': write_frames(str(a2d / 'Release' / 'frames' / 'vidA'), 20, 1),
              'vidB': write_frames(str(a2d / 'Release' / 'frames' / 'vidB'), 5, 2)}
    anno = a2d / 'a2d_annotation_with_instances'
    man3, dog3, man18 = box(2, 8, 3, 9), box(5, 11, 8, 15), box(1, 4, 1, 6)
    write_h5(str(anno / 'vidA' / '00003.h5'), [1, 2], [man3, dog3])
    write_h5(str(anno / 'vidA' / '00010.h5'), [2], [box(3, 9, 2, 12)])  # quirk for instance 1
    write_h5(str(anno / 'vidA' / '00018.h5'), [1, 2], [man18, np.zeros((H, W), np.uint8)])
    write_h5(str(anno / 'vidB' / '00002.h5'), [0], [box(4, 10, 0, 7)])
    masks = {'man3': man3, 'dog3': dog3, 'man18': man18, 'dog10': box(3, 9, 2, 12),
             'b2': box(4, 10, 0, 7)}
    return root, frames, masks


def build(root, *extra):
    from CMPC_video.build_A2D_batches import main
    return main(['--a2d-root', str(root / 'A2D-Sentences'), '--vocab', str(root / 'vocab.txt'),
                 '--out', str(root / 'out'), '--size', '32', '--no-progress'] + list(extra))


def sample_path(root, split, n, name='a2d_sent_new'):
    return root / 'out' / name / ('%s_batch' % split) / ('%s_%s_%d.npz' % (name, split, n))


def raw(root, split, n, name='a2d_sent_new'):
    """The arrays the sample file holds."""
    with np.load(sample_path(root, split, n, name)) as f:
        return {k: f[k] for k in f.files}


def load(root, split, n, name='a2d_sent_new'):
    """The sample as every reader sees it: load_batch, the frames of the frame store read in."""
    return load_batch(str(sample_path(root, split, n, name)), VIDEO_REQUIRED_KEYS)


def window(frame, num_frames):
    """The clip's frame numbers, written out: [frame - 8, frame + 8) clamped to 1..num_frames."""
    return [min(max(f, 1), num_frames) for f in range(frame - 8, frame + 8)]


def files_under(folder):
    """{path relative to folder: bytes} of every file under it."""
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), 'rb').read()
            for d, _, names in os.walk(folder) for f in names}


def test_a2d_samples_quirks_and_arrays(a2d, capsys):
    root, frames, masks = a2d
    assert build(root) == 0
    out = capsys.readouterr().out
    # train: query 1 at frames 3 and 18 (10 is another id's one-instance file), query 2 at
    # 3 and 10 (its mask at 18 is all zero), query 3 ('1 (copy)' = man) at 3 and 18.
    assert 'train_batch: 6 samples (6 written, 0 kept' in out
    assert 'test_batch: 1 samples (1 written' in out
    for line in ('1 x all-zero mask (skipped)', '1 x instance id not a number',
                 '1 x query of a video missing from videoset.csv',
                 '2 x one-instance .h5 of another id (skipped)'):
        assert 'warning: ' + line in out, line

    assert sorted(raw(root, 'test', 0)) == ['frame_files', 'frame_id', 'image_id', 'mask_batch',
                                            'sent_batch', 'text_batch']
    test = load(root, 'test', 0)
    assert test['image_id'].tolist() == ['vidB/00002.png']  # the clip: its annotated frame
    # frame 2 of a 5-frame video: [2 - 8, 2 + 8) clamped to 1..5
    clip = [1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 5, 5, 5]
    assert test['frame_files'].tolist() == ['frames/vidB/%05d.npz' % i for i in clip]
    np.testing.assert_array_equal(test['frames'], frames['vidB'][np.array(clip) - 1])
    np.testing.assert_array_equal(test['im_batch'], frames['vidB'][1])
    np.testing.assert_array_equal(test['mask_batch'], masks['b2'] > 0)
    assert test['frame_id'] == 2 and test['sent_batch'][0] == 'the dog'
    np.testing.assert_array_equal(test['text_batch'], [0] * 18 + [4, 6])  # the dog

    first = load(root, 'train', 0)  # "The man jumping." at frame 3
    np.testing.assert_array_equal(first['text_batch'], [0] * 17 + [4, 5, 7])
    assert first['sent_batch'][0] == 'the man jumping.' and first['frame_id'] == 3
    assert first['frames'].shape == (16, 32, 32, 3) and first['mask_batch'].shape == (32, 32)
    clip = [1] * 6 + list(range(1, 11))  # [-5, 11) clamped
    for k, i in enumerate(clip):
        want = skimage.img_as_ubyte(im_processing.resize_and_pad(frames['vidA'][i - 1], 32, 32))
        np.testing.assert_array_equal(first['frames'][k], want)
    np.testing.assert_array_equal(
        first['mask_batch'], im_processing.resize_and_pad(masks['man3'].astype(np.float32),
                                                          32, 32) > 0)
    ids = [(load(root, 'train', n)['frame_id'], load(root, 'train', n)['sent_batch'][0])
           for n in range(6)]
    assert ids == [(3, 'the man jumping.'), (18, 'the man jumping.'),
                   (3, 'the dog running left'), (10, 'the dog running left'),
                   (3, 'man'), (18, 'man')]
    dog10 = im_processing.resize_and_pad(masks['dog10'].astype(np.float32), 32, 32) > 0
    np.testing.assert_array_equal(load(root, 'train', 3)['mask_batch'], dog10)
    # Each frame stored once: one file per (video, frame) some clip shows. Train: vidA's
    # clips of frames 3, 18 and 10 (20 frames) show frames 1..20; test: vidB's of 2, 1..5.
    for split, video, annotated, num_frames in (('train', 'vidA', (3, 18, 10), 20),
                                                ('test', 'vidB', (2,), 5)):
        shown = sorted({f for a in annotated for f in window(a, num_frames)})
        store = root / 'out' / 'a2d_sent_new' / ('%s_batch' % split) / 'frames'
        assert os.listdir(store) == [video]
        assert sorted(os.listdir(store / video)) == ['%05d.npz' % f for f in shown]
    assert 'train_batch: 6 samples (6 written, 0 kept from an earlier run), 20 frame files ' \
        '(20 written, 0 kept)' in out


def test_a2d_resumes_and_refuses_other_settings(a2d, capsys):
    root, _, _ = a2d
    assert build(root) == 0
    folder = root / 'out' / 'a2d_sent_new' / 'train_batch'
    whole = files_under(folder)
    os.remove(folder / 'a2d_sent_new_train_4.npz')
    os.remove(folder / 'frames' / 'vidA' / '00007.npz')  # a lost frame file of a kept sample
    (folder / '.a2d_sent_new_train_5.npz.tmp').write_bytes(b'half')  # killed writes
    (folder / 'frames' / 'vidA' / '.00020.npz.x1.tmp').write_bytes(b'half')
    capsys.readouterr()
    assert build(root) == 0
    assert ('train_batch: 6 samples (1 written, 5 kept from an earlier run), 20 frame files '
            '(1 written, 19 kept)') in capsys.readouterr().out
    assert files_under(folder) == whole  # the same files, byte for byte, no temporaries
    assert build(root, '--single-instance-any-id') == 2
    assert 'was built with other settings (single_instance_any_id' in capsys.readouterr().err


def test_a2d_original_layout_and_any_id(a2d, capsys):
    root, _, masks = a2d
    assert build(root, '--original-layout', '--single-instance-any-id', '--overwrite') == 0
    out = capsys.readouterr().out
    assert 'train_batch: 8 samples' in out and '2 x one-instance .h5 of another id (used' in out
    first = raw(root, 'train', 0)
    assert sorted(first) == ['frame_id', 'frames', 'im_batch', 'mask_batch', 'sent_batch',
                             'text_batch']
    np.testing.assert_array_equal(first['im_batch'], first['frames'][8])
    path = root / 'out' / 'a2d_sent_new' / 'train_batch' / 'a2d_sent_new_train_1.npz'
    with zipfile.ZipFile(path) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
    # Frame 10's mask (instance 2) now serves query 1 too, as the original did.
    dog10 = im_processing.resize_and_pad(masks['dog10'].astype(np.float32), 32, 32) > 0
    np.testing.assert_array_equal(load(root, 'train', 1)['mask_batch'], dog10)


def test_bad_inputs_name_the_file(tmp_path, capsys):
    from CMPC_video.build_A2D_batches import main
    (tmp_path / 'vocab.txt').write_text('\n'.join(VOCAB))
    assert main(['--a2d-root', str(tmp_path / 'none'), '--vocab', str(tmp_path / 'vocab.txt'),
                 '--no-progress']) == 2
    assert 'a2d_annotation.txt: A2D query file not found' in capsys.readouterr().err
    assert main(['--vocab', str(tmp_path / 'missing.txt')]) == 2
    assert 'missing.txt: vocabulary not found' in capsys.readouterr().err


def test_jhmdb_frames_are_seeded_and_recorded(tmp_path, capsys):
    from CMPC_video.build_A2D_batches import main
    root = tmp_path / 'J-HMDB-Sentences'
    (tmp_path / 'vocab.txt').write_text('\n'.join(VOCAB) + '\n')
    write_csv(str(root / 'jhmdb_annotation.txt'), [['video_id', 'query'],
                                                   ['v1', 'The man waving']])
    frames = write_frames(str(root / 'Rename_Images' / 'wave' / 'v1'), 10, 3)
    part = np.zeros((H, W, 10), np.uint8)
    for t in range(10):
        part[t % H, :, t] = 1  # a different row each frame
    os.makedirs(root / 'puppet_mask' / 'wave' / 'v1')
    scipy.io.savemat(str(root / 'puppet_mask' / 'wave' / 'v1' / 'puppet_mask.mat'),
                     {'part_mask': part})
    args = ['--jhmdb', '--jhmdb-root', str(root), '--vocab', str(tmp_path / 'vocab.txt'),
            '--out', str(tmp_path / 'out'), '--seed', '5', '--no-progress']
    assert main(args) == 0
    assert 'test_batch: 3 samples (3 written' in capsys.readouterr().out
    picks = sorted(int(i) + 1 for i in np.random.RandomState(5).choice(10, 3, replace=False))
    with open(tmp_path / 'out' / 'jhmdb_sent' / 'test_batch' / 'annotated_frames.json') as f:
        assert json.load(f) == {'seed': 5, 'frames_per_video': 3, 'frames': {'v1': picks}}
    for n, frame_id in enumerate(picks):
        b = load(tmp_path, 'test', n, name='jhmdb_sent')
        assert b['frame_id'] == frame_id and b['sent_batch'][0] == 'the man waving'
        np.testing.assert_array_equal(b['mask_batch'], part[:, :, frame_id - 1] > 0)
        np.testing.assert_array_equal(b['frames'][8], frames[frame_id - 1])
        np.testing.assert_array_equal(b['text_batch'], [0] * 17 + [4, 5, 10])


def write_test_video(clips, name='v'):
    """A 7-frame 32 x 48 .mp4 of a white bar moving right; returns the frames."""
    import av
    os.makedirs(clips, exist_ok=True)
    video = np.zeros((7, 32, 48, 3), np.uint8)
    for t in range(7):
        video[t, :, 6 * t:6 * t + 8] = 255
    with av.open(str(clips / (name + '.mp4')), 'w') as out:
        stream = out.add_stream('mpeg4', rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, 'yuv420p'
        for f in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format='rgb24')):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return video


# Kills the process (SIGKILL, as kill -9) at the N-th PNG written by --extract-frames.
KILL_AT_PNG = """
import os, signal, sys
sys.path.insert(0, {root!r})
from PIL import Image
save, seen = Image.Image.save, [0]
def killing_save(self, fp, *a, **kw):
    seen[0] += 1
    if seen[0] == {n}:
        fp.write(b'half a png')
        os.kill(os.getpid(), signal.SIGKILL)
    return save(self, fp, *a, **kw)
Image.Image.save = killing_save
from CMPC_video.build_A2D_batches import main
main(['--extract-frames', '--a2d-root', {a2d!r}, '--no-progress'])
"""


def test_extract_frames_killed_and_rerun_gives_the_same_frames(tmp_path):
    import subprocess
    import sys
    from helpers import ROOT
    from CMPC_video.build_A2D_batches import main
    for run in ('whole', 'killed'):
        write_test_video(tmp_path / run / 'Release' / 'clips320H')
    assert main(['--extract-frames', '--a2d-root', str(tmp_path / 'whole'), '--no-progress']) == 0
    code = KILL_AT_PNG.format(root=ROOT, n=4, a2d=str(tmp_path / 'killed'))
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == -9, out.stderr
    folder = tmp_path / 'killed' / 'Release' / 'frames' / 'v'
    names = sorted(os.listdir(folder))
    assert [n for n in names if n.endswith('.png')] == ['00001.png', '00002.png', '00003.png']
    assert not os.path.exists(folder / '.extracted')  # the half-written 4th is a temporary
    assert main(['--extract-frames', '--a2d-root', str(tmp_path / 'killed'), '--no-progress']) == 0
    whole = tmp_path / 'whole' / 'Release' / 'frames' / 'v'
    assert sorted(os.listdir(folder)) == sorted(os.listdir(whole))
    for name in os.listdir(whole):
        if name.endswith('.png'):
            np.testing.assert_array_equal(np.asarray(Image.open(folder / name)),
                                          np.asarray(Image.open(whole / name)))


def test_extract_frames_decodes_and_resumes(tmp_path, capsys):
    from CMPC_video.build_A2D_batches import main
    clips = tmp_path / 'Release' / 'clips320H'
    video = write_test_video(clips)
    args = ['--extract-frames', '--a2d-root', str(tmp_path), '--no-progress']
    assert main(args) == 0
    folder = tmp_path / 'Release' / 'frames' / 'v'
    names = sorted(n for n in os.listdir(folder) if n.endswith('.png'))
    assert names == ['%05d.png' % i for i in range(1, 8)]
    for t, name in enumerate(names):
        got = np.asarray(Image.open(folder / name)).astype(int)
        assert got.shape == (32, 48, 3)
        assert np.abs(got - video[t]).mean() < 20  # lossy codec: close, not equal
    assert 'v.mp4' not in capsys.readouterr().err
    assert main(args) == 0
    assert '0 videos decoded, 1 already there' in capsys.readouterr().out
    os.remove(folder / '.extracted')
    os.remove(folder / '00004.png')
    assert main(args) == 0
    assert os.path.isfile(folder / '00004.png')
    (clips / 'bad.mp4').write_bytes(b'not a video')
    assert main(args) == 2
    assert 'bad.mp4: cannot be decoded' in capsys.readouterr().err


def test_an_annotated_frame_past_the_video_is_skipped_and_broken_h5_named(a2d, tmp_path,
                                                                          capsys):
    # A copy of the release: vidB (5 frames) gets an annotation at frame 7, whose clip would
    # show frame 5's pixels: counted and skipped, the test split keeps its one sample.
    root = tmp_path / 'copy'
    shutil.copytree(a2d[0] / 'A2D-Sentences', root / 'A2D-Sentences')
    shutil.copy(a2d[0] / 'vocab.txt', root / 'vocab.txt')
    anno = root / 'A2D-Sentences' / 'a2d_annotation_with_instances'
    write_h5(str(anno / 'vidB' / '00007.h5'), [0], [box(4, 10, 0, 7)])
    assert build(root) == 0
    out = capsys.readouterr().out
    assert "warning: 1 x annotated frame past the video's last frame (skipped)" in out
    assert 'test_batch: 1 samples' in out
    # A frame of the clip not the size of the annotated frame: one line naming it.
    frame = root / 'A2D-Sentences' / 'Release' / 'frames' / 'vidB' / '00004.png'
    data = frame.read_bytes()
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(frame)
    assert build(root, '--overwrite') == 2
    assert capsys.readouterr().err == ('error: %s: frame is [6, 8], the annotated frame of its '
                                       'clip [12, 16]\n' % frame)
    frame.write_bytes(data)
    # A truncated .h5 and one without reMask: one line naming the file.
    path = anno / 'vidB' / '00007.h5'
    with h5py.File(path, 'w') as f:
        f['instance'] = np.zeros(1)
    assert build(root, '--overwrite') == 2
    assert capsys.readouterr().err.strip() == (
        'error: %s: no reMask in this annotation .h5 (has instance); expected instance and '
        'reMask' % path)
    data = (anno / 'vidB' / '00002.h5').read_bytes()
    path = anno / 'vidB' / '00002.h5'
    path.write_bytes(data[:len(data) // 2])
    assert build(root, '--overwrite') == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: %s: not a readable annotation .h5, truncated or another '
                          'kind of file (' % path) and '\n' not in err


def test_the_three_layouts_read_back_as_the_same_arrays(a2d, tmp_path, capsys):
    """The frame store, the original's layout, and the layout before the frame store (frames
    in every sample, no im_batch: made here from the original's files as the old builder wrote
    them) give load_batch the same arrays; a folder of the old layout is refused as another
    layout, the original's old manifest is not."""
    root = tmp_path
    shutil.copytree(a2d[0] / 'A2D-Sentences', root / 'A2D-Sentences')
    shutil.copy(a2d[0] / 'vocab.txt', root / 'vocab.txt')
    assert build(root) == 0
    once = {(s, n): load(root, s, n) for s, k in (('train', 6), ('test', 1)) for n in range(k)}
    shutil.move(root / 'out', root / 'once')
    assert build(root, '--original-layout') == 0
    for (split, n), want in once.items():
        got = load(root, split, n)
        assert sorted(got) == sorted(set(want) - {'frame_files', 'image_id'})
        for k in got:
            assert got[k].dtype == want[k].dtype, k
            np.testing.assert_array_equal(got[k], want[k])
        # the layout before the frame store: the original's minus im_batch, plus image_id
        arrays = raw(root, split, n)
        del arrays['im_batch']
        arrays['image_id'] = want['image_id']
        np.savez_compressed(sample_path(root, split, n), **arrays)
        got = load(root, split, n)
        assert sorted(got) == sorted(set(want) - {'frame_files'})
        for k in got:
            np.testing.assert_array_equal(got[k], want[k])
    capsys.readouterr()
    for split in ('train', 'test'):  # the manifests as the builder wrote them then
        path = root / 'out' / 'a2d_sent_new' / ('%s_batch' % split) / batches.VIDEO_MANIFEST
        manifest = json.loads(path.read_text())
        assert manifest.pop('layout') == 'original'
        path.write_text(json.dumps(dict(manifest, original_layout=False)))
    assert build(root) == 2
    err = capsys.readouterr().err
    assert err == ('error: %s was built with other settings (layout: [\'frames in each sample\'], '
                   'now [\'frames once\']); rerun with --overwrite to rebuild it\n'
                   % (root / 'out' / 'a2d_sent_new' / 'train_batch'))
    path.write_text(json.dumps(dict(manifest, original_layout=True)))  # test: the original's
    assert build(root, '--original-layout', '--no-progress') == 2  # train still the old layout
    assert build(root, '--overwrite') == 0
    assert 'train_batch: 6 samples (6 written, 0 kept' in capsys.readouterr().out
    for key, want in once.items():
        got = load(root, *key)
        assert sorted(got) == sorted(want)
        for k in got:
            np.testing.assert_array_equal(got[k], want[k])


def test_the_original_layouts_old_manifest_resumes(a2d, tmp_path, capsys):
    root = tmp_path
    shutil.copytree(a2d[0] / 'A2D-Sentences', root / 'A2D-Sentences')
    shutil.copy(a2d[0] / 'vocab.txt', root / 'vocab.txt')
    assert build(root, '--original-layout') == 0
    folder = root / 'out' / 'a2d_sent_new' / 'train_batch'
    path = folder / batches.VIDEO_MANIFEST
    manifest = json.loads(path.read_text())
    del manifest['layout']
    path.write_text(json.dumps(dict(manifest, original_layout=True)))  # as the old builder
    os.remove(folder / 'a2d_sent_new_train_2.npz')
    capsys.readouterr()
    assert build(root, '--original-layout') == 0
    assert 'train_batch: 6 samples (1 written, 5 kept' in capsys.readouterr().out


# Kills the build (SIGKILL, as kill -9) halfway through writing its N-th .npz (frame files and
# samples are both written with np.savez_compressed).
KILL_AT_NPZ = """
import io, os, signal, sys
sys.path.insert(0, {root!r})
import numpy as np
real, seen = np.savez_compressed, [0]
def killing_savez(file, **arrays):
    seen[0] += 1
    if seen[0] == {n}:
        buf = io.BytesIO()
        real(buf, **arrays)
        file.write(buf.getvalue()[:len(buf.getvalue()) // 2])
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real(file, **arrays)
np.savez_compressed = killing_savez
from CMPC_video.build_A2D_batches import main
main({args!r})
"""


@pytest.mark.cli
@pytest.mark.parametrize('kill_at', [5, 11])  # a frame file of sample 0; sample 0 itself
def test_a_killed_build_rerun_ends_with_the_same_files(a2d, tmp_path, kill_at):
    """kill -9 in the middle of a write, then the same command again: the same files as a
    build never interrupted, byte for byte, and no temporary left. Sample 0 (frame 3 of vidA)
    shows frames 1..10, written first (np.savez_compressed calls 1..10), then its file (11)."""
    import subprocess
    import sys
    from helpers import ROOT
    shutil.copytree(a2d[0] / 'A2D-Sentences', tmp_path / 'A2D-Sentences')
    shutil.copy(a2d[0] / 'vocab.txt', tmp_path / 'vocab.txt')
    args = ['--a2d-root', str(tmp_path / 'A2D-Sentences'), '--vocab', str(tmp_path / 'vocab.txt'),
            '--size', '32', '--no-progress']
    from CMPC_video.build_A2D_batches import main
    assert main(args + ['--out', str(tmp_path / 'whole')]) == 0
    killed = args + ['--out', str(tmp_path / 'killed')]
    proc = subprocess.run([sys.executable, '-c', KILL_AT_NPZ.format(root=ROOT, n=kill_at,
                                                                    args=killed)],
                          capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    folder = tmp_path / 'killed' / 'a2d_sent_new' / 'train_batch'
    files = files_under(folder)
    temps = [f for f in files if f.endswith('.tmp')]
    assert len(temps) == 1 and files[temps[0]]  # the half-written file, under a temporary name
    assert not any(f.endswith('_0.npz') for f in files)
    stored = [f for f in files if f.startswith('frames') and f.endswith('.npz')]
    assert len(stored) == min(kill_at - 1, 10)
    assert main(killed) == 0
    for split in ('train', 'test'):
        sub = os.path.join('a2d_sent_new', '%s_batch' % split)
        assert files_under(tmp_path / 'killed' / sub) == files_under(tmp_path / 'whole' / sub)
