"""Predict on a whole video (CMPC_video/trainval_video.py -m predict, util/inference/predict_video.py)
and the video SavedModel (-m export), on a generated 40-frame video of a tiny random model.

Each frame's mask must be the one test mode computes for that frame's window: the 16 frames
[f - 8, f + 8) clamped to the video, each resized and padded, one plain `forward`, the
original's post-processing; written out here from those definitions, independently of the
code under test.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import (ROOT, make_video_checkpoint, network_input, run_main, script_env,
                     window_mask)
from util import im_processing

pytestmark = pytest.mark.cli  # every test runs the script's predict or export

N_FRAMES = 40
SIZE = (45, 70)  # odd height: overlay.mp4 gets one more row
SENTENCES = ['the red square moving left', 'the blue circle']
SCRIPT = 'CMPC_video/trainval_video.py'


def make_frames(n, h, w, seed=0):
    """A red block crossing a noisy background, and a blue one that stays."""
    rng = np.random.RandomState(seed)
    frames = rng.randint(0, 90, size=(n, h, w, 3)).astype(np.uint8)
    for t in range(n):
        x = int(t * (w - 12) / (n - 1))
        frames[t, 10:24, x:x + 12] = (220, 40, 40)
        frames[t, 28:40, 50:62] = (40, 40, 220)
    return frames


def decode(path):
    import av
    with av.open(path) as container:
        return np.stack([f.to_ndarray(format='rgb24') for f in container.decode(video=0)])


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    from util.text_processing import load_vocab_dict_from_file, preprocess_sentence
    root = tmp_path_factory.mktemp('predict_video')
    frames = make_frames(N_FRAMES, *SIZE)
    # Unit-scale features that differ from frame to frame (random batch-norm statistics would
    # leave the frames alike).
    model, prefix, vocab = make_video_checkpoint(
        str(root), 5, 2, calibrate=np.stack([network_input(f, 64, 64)[1] for f in frames[::8]]))
    folder = root / 'frames'
    folder.mkdir()
    for t, frame in enumerate(frames):  # names that sort in frame order, not plain numbers
        Image.fromarray(frame).save(folder / ('shot_%03d.png' % (t * 5)))
    vocab_dict = load_vocab_dict_from_file(vocab)
    words = [np.array(preprocess_sentence(s, vocab_dict, model.num_steps), np.int32)
             for s in SENTENCES]
    return dict(root=root, model=model, frames=frames, vocab=vocab, checkpoint=prefix,
                folder=str(folder), words=words)


@pytest.fixture(scope='module')
def video_predicted(workspace):
    """The CLI on the folder of frames, every frame, both sentences; the frames given to the
    backbone are counted."""
    from util.pipeline import once_per_picture
    added = []
    original_add = once_per_picture.FrameFeatures.add

    def counted(self, number, net_im):
        added.append(number)
        return original_add(self, number, net_im)
    once_per_picture.FrameFeatures.add = counted
    try:
        proc = run_main(['-m', 'predict', '--checkpoint', workspace['checkpoint'],
                         '--video', workspace['folder'], '--sentence', SENTENCES[0],
                         '--sentence', SENTENCES[1], '--out-dir', 'out'],
                        str(workspace['root']), script=SCRIPT)
    finally:
        once_per_picture.FrameFeatures.add = original_add
    return str(workspace['root'] / 'out' / 'frames'), added, proc


def sentence_dirs(video_dir):
    return [os.path.join(video_dir, d) for d in sorted(os.listdir(video_dir))
            if os.path.isdir(os.path.join(video_dir, d))]


def read_mask(path):
    m = np.asarray(Image.open(path))
    assert set(np.unique(m)) <= {0, 255}
    return m > 0


def test_every_frame_equals_test_mode_and_the_backbone_runs_once_per_frame(workspace,
                                                                          video_predicted):
    video_dir, added, _ = video_predicted
    assert sorted(added) == list(range(1, N_FRAMES + 1))  # each frame once, none twice
    dirs = sentence_dirs(video_dir)
    assert len(dirs) == len(SENTENCES)
    model, frames = workspace['model'], workspace['frames']
    foreground = 0
    for k, folder in enumerate(dirs):
        masks = sorted(os.listdir(os.path.join(folder, 'masks')))
        assert masks == ['%05d.png' % f for f in range(1, N_FRAMES + 1)]
        for f in range(1, N_FRAMES + 1):
            mask = read_mask(os.path.join(folder, 'masks', '%05d.png' % f))
            expected, _ = window_mask(model, frames, f, workspace['words'][k])
            assert mask.shape == SIZE
            np.testing.assert_array_equal(mask, expected, err_msg='sentence %d frame %d' % (k, f))
            foreground += expected.sum()
    # Neither all empty nor all full: the comparison saw masks with both values.
    assert 0 < foreground < 2 * N_FRAMES * SIZE[0] * SIZE[1]


def test_overlay_video_and_json(workspace, video_predicted):
    video_dir, _, proc = video_predicted
    records = json.load(open(os.path.join(video_dir, 'predictions.json')))
    assert [r['sentence'] for r in records] == SENTENCES
    for folder, record in zip(sentence_dirs(video_dir), records):
        assert json.load(open(os.path.join(folder, 'result.json'))) == record
        assert record['video_frames'] == N_FRAMES and record['video_size'] == list(SIZE)
        assert record['backbone_runs'] == N_FRAMES
        frames = record['per_frame']
        assert [r['frame'] for r in frames] == list(range(1, N_FRAMES + 1))
        assert frames[0]['source'] == 'shot_000.png' and frames[-1]['source'] == 'shot_195.png'
        for r in frames:
            mask = read_mask(os.path.join(folder, 'masks', '%05d.png' % r['frame']))
            assert r['mask']['area'] == mask.sum()
            if mask.any():
                ys, xs = np.nonzero(mask)
                assert r['mask']['bbox_xywh'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                                  ys.max() - ys.min() + 1]
        with Image.open(os.path.join(folder, 'preview.png')) as preview:
            assert preview.format == 'PNG' and preview.size[0] > 400
        video = decode(os.path.join(folder, 'overlay.mp4'))
        assert video.shape == (N_FRAMES, SIZE[0] + 1, SIZE[1], 3)  # 45 rows -> 46 (H.264)
    assert 'backbone runs: %d' % N_FRAMES in proc.stdout


@pytest.mark.slow  # CI runs it
def test_video_file_with_a_frame_range_and_dcrf(workspace, tmp_path):
    from util.dcrf import dense_crf
    from util.io import VideoWriter
    frames = workspace['frames'][:, :44]  # an even size
    path = str(tmp_path / 'clip.mp4')
    with VideoWriter(path, fps=12) as out:
        for frame in frames:
            out.write(frame)
    decoded = decode(path)  # what the video holds after compression
    assert decoded.shape == frames.shape
    run_main(['-m', 'predict', '--checkpoint', workspace['checkpoint'], '--video', path,
              '--sentence', SENTENCES[0], '--frames', '3:38:5', '-c', '--out-dir', 'out'],
             str(tmp_path), script=SCRIPT)
    folder = sentence_dirs(str(tmp_path / 'out' / 'clip'))[0]
    targets = list(range(3, 39, 5))
    assert sorted(os.listdir(os.path.join(folder, 'masks'))) == ['%05d.png' % f for f in targets]
    model = workspace['model']
    for f in targets:
        expected, out = window_mask(model, decoded, f, workspace['words'][0])
        np.testing.assert_array_equal(read_mask(os.path.join(folder, 'masks', '%05d.png' % f)),
                                      expected)
        proc_im = network_input(decoded[f - 1], model.H, model.W)[0]
        crf = im_processing.resize_and_crop(dense_crf(proc_im, out['sigm'][0, :, :, 0]),
                                            *frames.shape[1:3]) > 0
        np.testing.assert_array_equal(
            read_mask(os.path.join(folder, 'masks_dcrf', '%05d.png' % f)), crf)
    record = json.load(open(os.path.join(folder, 'result.json')))
    assert record['fps'] == 12 and record['frames'] == '3:38:5'
    assert decode(os.path.join(folder, 'overlay.mp4')).shape[0] == len(targets)
    # Only the frames the 8 windows read went through the backbone.
    read = {min(max(f + d, 1), N_FRAMES) for f in targets for d in (-8, -4, 0, 4, 7)}
    assert record['backbone_runs'] == len(read)


@pytest.mark.slow  # CI runs it
def test_checkpoint_of_the_original_without_json(workspace, video_predicted, tmp_path):
    # The original's video snapshot: the .index and .data files only (-n defaults to the
    # video model; the sizes come from the tensors). Same weights, same masks.
    prefix = workspace['checkpoint']
    folder = tmp_path / 'original'
    folder.mkdir()
    for name in os.listdir(os.path.dirname(prefix)):
        if name.startswith(os.path.basename(prefix)) and not name.endswith('.json'):
            shutil.copy(os.path.join(os.path.dirname(prefix), name), folder / name)
    run_main(['-m', 'predict', '--checkpoint', str(folder / os.path.basename(prefix)),
              '--vocab', workspace['vocab'], '--video', workspace['folder'],
              '--sentence', SENTENCES[0], '--frames', '1:6', '--out-dir', 'out'],
             str(tmp_path), script=SCRIPT)
    ours = sentence_dirs(str(tmp_path / 'out' / 'frames'))[0]
    theirs = sentence_dirs(video_predicted[0])[0]
    for f in range(1, 7):
        name = os.path.join('masks', '%05d.png' % f)
        np.testing.assert_array_equal(read_mask(os.path.join(ours, name)),
                                      read_mask(os.path.join(theirs, name)))


@pytest.mark.parametrize('case, expected', [
    ('not_a_video', 'cannot be decoded as a video'),
    ('empty_folder', 'no frames in the folder'),
    ('two_sizes', 'frames of several sizes'),
    ('empty_sentence', 'empty sentence'),
    ('frames_outside', '--frames 30:41: the video has frames 1 to 40'),
    ('frames_reversed', '--frames 9:3: the video has frames 1 to 40'),
    ('frames_syntax', '--frames 5: expected A:B or A:B:STEP'),
    ('missing', 'no such file or folder'),
])
def test_bad_input_is_a_one_line_error_and_writes_nothing(workspace, tmp_path, case, expected):
    video, sentence, extra = workspace['folder'], 'the red square', []
    if case == 'not_a_video':
        video = str(tmp_path / 'notes.mp4')
        open(video, 'w').write('not a video\n')
    elif case == 'empty_folder':
        video = str(tmp_path / 'empty')
        os.mkdir(video)
    elif case == 'two_sizes':
        video = str(tmp_path / 'mixed')
        os.mkdir(video)
        Image.fromarray(workspace['frames'][0]).save(os.path.join(video, 'a.png'))
        Image.fromarray(workspace['frames'][1][:40]).save(os.path.join(video, 'b.png'))
    elif case == 'empty_sentence':
        sentence = '  '
    elif case == 'missing':
        video = str(tmp_path / 'nowhere.mp4')
    else:
        extra = ['--frames', {'frames_outside': '30:41', 'frames_reversed': '9:3',
                              'frames_syntax': '5'}[case]]
    proc = run_main(['-m', 'predict', '--checkpoint', workspace['checkpoint'], '--video', video,
                     '--sentence', sentence, '--out-dir', 'out'] + extra, str(tmp_path),
                    script=SCRIPT, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and expected in lines[0], lines
    assert not os.path.exists(tmp_path / 'out')


def test_a_list_of_frame_files_is_read_as_the_folder_of_them(tmp_path):
    # Whole-video test mode's source: a dataset's listed frames, in the list's order, named
    # by the dataset; the errors name the video as the caller does, then the file.
    from util.cli import InputError
    from util.inference.predict_video import VideoSource
    frames = make_frames(3, 12, 16)
    paths = [str(tmp_path / ('%d.png' % t)) for t in range(3)]
    for frame, path in zip(frames, paths):
        Image.fromarray(frame).save(path)
    folder = VideoSource(str(tmp_path))
    listed = VideoSource(paths, flag='video v expression 0', names=['a', 'b', 'c'])
    assert (listed.n, listed.names, listed.size, listed.fps) == (3, ['a', 'b', 'c'], None, None)
    np.testing.assert_array_equal(np.stack(list(listed.frames())), frames)
    np.testing.assert_array_equal(np.stack(list(folder.frames())), frames)
    os.remove(paths[1])
    with pytest.raises(InputError) as e:
        list(listed.frames())
    assert str(e.value) == 'video v expression 0: %s: no such file' % paths[1]
    with pytest.raises(InputError) as e:
        list(folder.frames())
    assert str(e.value) == '--video %s/1.png: no such file' % tmp_path


# ---------------------------------------------------------------------------------------------
# the video SavedModel

LOAD_AND_RUN = '''
import sys
import numpy as np
import tensorflow as tf
from PIL import Image
export_dir, folder, out, sentence = sys.argv[1:5]
frames = [np.asarray(Image.open(folder + '/' + f)) for f in sorted(__import__('os').listdir(folder))]
m = tf.saved_model.load(export_dir)
n, results = len(frames), {}
for f in (1, 2, 20, 37, 40):
    clip = np.stack([frames[min(max(i, 1), n) - 1] for i in range(f - 8, f + 8)])
    r = m.signatures['serving_default'](clip=tf.constant(clip), sentence=tf.constant(sentence))
    results['mask_%d' % f] = r['mask'].numpy()
    results['prob_%d' % f] = r['probability'].numpy()
np.savez(out, **results)
'''


@pytest.mark.slow  # a SavedModel written, then loaded in a process of its own
def test_video_saved_model_gives_predicts_masks_in_a_fresh_process(workspace, video_predicted,
                                                                   tmp_path):
    export_dir = str(tmp_path / 'exported')
    run_main(['-m', 'export', '--checkpoint', workspace['checkpoint'], '--export-dir',
              export_dir], str(tmp_path), script=SCRIPT)
    info = json.load(open(os.path.join(export_dir, 'assets.extra', 'cmpc_export.json')))
    assert info['model']['kind'] == 'video'
    assert sorted(info['signatures']) == ['outputs', 'serving_default']
    out = str(tmp_path / 'saved_model_masks.npz')
    subprocess.run([sys.executable, '-c', LOAD_AND_RUN, export_dir, workspace['folder'], out,
                    SENTENCES[1]], check=True, cwd=ROOT, env=script_env(),
                   capture_output=True, timeout=600)
    results = np.load(out)
    folder = sentence_dirs(video_predicted[0])[1]
    model, frames = workspace['model'], workspace['frames']
    for f in (1, 2, 20, 37, 40):
        mask = results['mask_%d' % f]
        assert mask.dtype == np.uint8 and mask.shape == SIZE
        np.testing.assert_array_equal(mask > 0, read_mask(os.path.join(
            folder, 'masks', '%05d.png' % f)), err_msg='frame %d' % f)
        # The probability: the same sigmoid, resized and cropped as test mode's.
        _, fwd = window_mask(model, frames, f, workspace['words'][1])
        prob = im_processing.resize_and_crop(fwd['sigm'][0, :, :, 0], *SIZE)
        np.testing.assert_allclose(results['prob_%d' % f], prob, atol=1e-5)
