"""Predict on a whole video: every frame's mask for one or more sentences, with the video CMPC.

    python CMPC_video/trainval_video.py -m predict --checkpoint ckpts/synthetic_video/video \
        --video clip.mp4 --sentence "the red square moving left" --out-dir predictions [-c]

--video is a video file (decoded with PyAV) or a folder of frames (the image files in it,
sorted by name, all of one size); --frames A:B[:STEP] predicts frames A to B (numbered from 1,
both included) every STEP-th, all of them by default. Each frame f is segmented as test mode
segments an annotated frame: the network sees the 16 frames around it (batches.clip_window,
clamped to the video), of which it reads 5 (f - 8, f - 4, f, f + 4, f + 7), and the mask is f's,
post-processed as test mode does (util/pipeline/evaluate.image_masks; -c: DenseCRF too).

The backbone runs once per frame: a frame's features (LSTM_model.frame_features) serve every
window that reads it (util/pipeline/once_per_picture.FrameFeatures), and the sentences of a
window are decoded together in one batch. Frames stream through: the decoder runs at most 7
frames ahead of the frame being predicted, and only the features of frames a later window reads
are kept (at most 16 frames; about 115 MB a frame at the paper size, 320 x 320, fp32).

Written under {out-dir}/{video name}/ (made under a temporary name and renamed when complete,
so a folder that exists is a whole prediction):
  {k}_{sentence}/masks/{f:05d}.png       the mask of frame f at the video's size (0 / 255)
  {k}_{sentence}/masks_dcrf/{f:05d}.png  with -c: the DenseCRF-refined mask
  {k}_{sentence}/overlay.mp4             the predicted frames with the mask in red, at the
                                         video's frame rate (--fps for a folder of frames)
  {k}_{sentence}/preview.png             8 of them, evenly spaced, with their numbers
  {k}_{sentence}/result.json             the sentence as the vocabulary saw it (tokens, word
                                         types), and per frame: its number, its source (the
                                         file, for a folder), the mask's area and box
  predictions.json                       every sentence's record
Bad input (not a video, a folder without frames or with frames of several sizes, an empty
sentence, a frame range outside the video) is a one-line error before anything is written.
"""

import contextlib
import os
import shutil
import sys
from fractions import Fraction

import numpy as np
from PIL import Image
from tqdm import tqdm

from util.cli import InputError
from util.datasets.batches import ANNOTATED_FRAME, clip_window
from util.inference.explain import PREVIEW_FRAMES, frames_figure
from util.inference.predict import (Predictor, load_image, mask_summary, postprocess, save_png,
                                    slug, unique_names, word_records)
from util.io import VideoWriter, atomic_open, video_frames, write_json
from util.pipeline import contract
from util.pipeline.models import fast_paths_of
from util.visualize import overlay

FRAME_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp', '.tif', '.tiff')
DEFAULT_FPS = 24  # the overlay's frame rate for a folder of frames


# ---------------------------------------------------------------------------------------------
# The video

class VideoSource:
    """A video file or a folder of frames: its frame count `n`, frame size (h, w), frame rate,
    a name per frame, and its frames in order (`frames()`, RGB uint8 [h, w, 3]). The
    constructor reads the whole source once to check it (a file is decoded to count its
    frames; a folder's image headers give their sizes): InputError naming it otherwise.

    Or a list of frame files in order (a dataset's listed frames), taken as it is (its dataset
    module checked them): names their names, flag what errors call the video; no size or frame
    rate (None)."""

    def __init__(self, path, fps=None, flag='--video', names=None):
        if isinstance(path, (list, tuple)):
            self.path, self.label, self.size, self.fps = None, flag, None, None
            self.files, self.names, self.n = list(path), list(names), len(path)
            self.file_labels = ['%s: %s' % (flag, p) for p in self.files]
            return
        self.path, self.label = path, '%s %s' % (flag, path)
        if fps is not None and not fps > 0:
            raise InputError('--fps %s: expected a positive frame rate' % fps)
        if os.path.isdir(path):
            self.files = sorted(f for f in os.listdir(path)
                                if f.lower().endswith(FRAME_EXTENSIONS) and not f.startswith('.'))
            if not self.files:
                raise InputError('%s: no frames in the folder (expected image files: %s)'
                                 % (self.label, ', '.join(FRAME_EXTENSIONS)))
            sizes = {f: shown_size(os.path.join(path, f), self.label) for f in self.files}
            self.size = sizes[self.files[0]]
            for f in self.files:
                if sizes[f] != self.size:
                    raise InputError('%s: frames of several sizes (%s is %dx%d, %s is %dx%d); '
                                     'a video has one' % (self.label, self.files[0], self.size[1],
                                                          self.size[0], f, sizes[f][1],
                                                          sizes[f][0]))
            self.names = list(self.files)
            self.files = [os.path.join(path, f) for f in self.names]
            self.file_labels = ['%s/%s' % (self.label, f) for f in self.names]
            self.fps = Fraction(fps or DEFAULT_FPS).limit_denominator(1001)
        elif os.path.isfile(path):
            self.files = None
            n, self.size, rate = 0, None, None
            try:
                for n, frame in enumerate(video_frames(path), 1):
                    self.size = self.size or frame.shape[:2]
                    if frame.shape[:2] != self.size:
                        raise InputError('%s: frame %d is %dx%d, the first %dx%d; a video of one '
                                         'frame size is expected' % (self.label, n, frame.shape[1],
                                                                     frame.shape[0], self.size[1],
                                                                     self.size[0]))
                rate = video_rate(path)
            except ValueError as e:
                raise InputError('%s: %s' % (flag, e)) from None
            self.names = ['frame %d' % (k + 1) for k in range(n)]
            self.fps = Fraction(fps).limit_denominator(1001) if fps else rate
        else:
            raise InputError('%s: no such file or folder' % self.label)
        self.n = len(self.names)

    def frames(self):
        if self.files is None:
            yield from video_frames(self.path)
        else:
            for path, label in zip(self.files, self.file_labels):
                yield load_image(path, label)[0]


def shown_size(path, label):
    """(h, w) of an image file as load_image shows it (EXIF orientation applied), from its
    header."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except Exception as e:  # PIL raises many types for unreadable files
        raise InputError('%s/%s: cannot read it as an image (%s: %s)'
                         % (label, os.path.basename(path), type(e).__name__, e)) from None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def video_rate(path):
    """The frame rate of a video file's first video stream (24 when it records none)."""
    import av
    with av.open(path) as container:
        rate = container.streams.video[0].average_rate
    return Fraction(rate) if rate else Fraction(DEFAULT_FPS)


def frame_range(spec, n, flag='--frames'):
    """The frame numbers (from 1) of --frames 'A:B[:STEP]' (A to B included; A or B empty: the
    first or last frame) in a video of n frames; None: all of them."""
    if spec is None:
        return list(range(1, n + 1))
    parts = spec.split(':')
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        a = int(parts[0]) if parts[0] else 1
        b = int(parts[1]) if parts[1] else n
        step = int(parts[2]) if len(parts) == 3 and parts[2] else 1
    except ValueError:
        raise InputError("%s %s: expected A:B or A:B:STEP (frame numbers from 1, both "
                         "included; e.g. 1:100:5)" % (flag, spec)) from None
    if step < 1:
        raise InputError('%s %s: STEP must be at least 1' % (flag, spec))
    if not 1 <= a <= b <= n:
        raise InputError('%s %s: the video has frames 1 to %d' % (flag, spec, n))
    return list(range(a, b + 1, step))


def sampled_frames(model, frame, n):
    """The frame numbers the model reads for frame `frame` of n: clip_window's frames at the
    model's SAMPLED_FRAMES."""
    window = clip_window(frame, n)
    return [window[i] for i in model.SAMPLED_FRAMES]


def describe_window(model, n):
    offsets = ['f%+d' % (i - ANNOTATED_FRAME) if i != ANNOTATED_FRAME else 'f'
               for i in model.SAMPLED_FRAMES]
    return 'the network reads frames %s of frame f, clamped to 1..%d' % (', '.join(offsets), n)


# ---------------------------------------------------------------------------------------------
# The prediction

def predict_frames(model, features, source, targets, ids, dcrf=False, progress=True):
    """Yields (frame number, frame RGB, [one postprocess result per sentence]) for each target
    frame, in order: ids [S, T] the sentences' word ids; features a FrameFeatures of the model
    (util/pipeline/once_per_picture.py), which runs the backbone once per frame read. The
    source is decoded once, at most 7 frames ahead of the frame predicted."""
    S = len(ids)
    windows = {f: sampled_frames(model, f, source.n) for f in targets}
    last_use = {}  # frame number -> the last target frame whose window reads it
    for f in targets:
        for k in windows[f]:
            last_use[k] = f
    kept = {}  # target frame number -> (RGB, network-resolution image) until predicted
    decoded = iter(source.frames())
    read = 0  # frames decoded so far
    bar = tqdm(targets, desc='frames', unit='frame', disable=not progress, file=sys.stderr)
    for f in bar:
        while read < max(windows[f]):
            rgb = next(decoded)
            read += 1
            if read in last_use or read in windows:
                proc_im, net_im = contract.network_input(rgb, model.H, model.W)
                if read in last_use:
                    features.add(read, net_im)
                if read in windows:
                    kept[read] = (rgb, proc_im)
        out = model.forward_words(ids, features.window(windows[f], repeat=S))
        rgb, proc_im = kept.pop(f)
        results = [postprocess({key: v[k] for key, v in out.items()}, rgb, proc_im, dcrf,
                               levels=False) for k in range(S)]
        features.forget([k for k in features.frames if last_use[k] <= f])
        yield f, rgb, results
    bar.close()


def frame_record(number, name, mask, mask_dcrf=None):
    record = {'frame': number, 'source': name, 'mask': mask_summary(mask)}
    if mask_dcrf is not None:
        record['mask_dcrf'] = mask_summary(mask_dcrf)
    return record


def run_predict_video(checkpoint, video, sentences, out_dir, frames=None, fps=None, vocab=None,
                      num_steps=None, dcrf=False, log=print, warn=None,
                      checkpoint_flag='--checkpoint', model_name=None, progress=True,
                      fast_paths=None):
    """Predict mode of the video model; returns the records written. InputError for bad input,
    raised before the model is built and before anything is written."""
    warn = warn or (lambda msg: print('warning: ' + msg, file=sys.stderr))
    if not video:
        raise InputError('no video: give --video PATH (a video file or a folder of frames)')
    predictor = Predictor(checkpoint, vocab, num_steps, checkpoint_flag, kinds=('video',),
                          model_name=model_name, fast_paths=fast_paths)
    encoded = [predictor.encode(s) for s in sentences]  # InputError for an empty one
    source = VideoSource(video, fps)
    targets = frame_range(frames, source.n)
    predictor.check_image(np.zeros(source.size + (3,), np.uint8), '--video ' + video)

    name = unique_names([video.rstrip(os.sep)])[0]
    final = os.path.join(out_dir, name)
    tmp = os.path.join(out_dir, '.%s.tmp-%d' % (name, os.getpid()))
    folders = [os.path.join(tmp, '%02d_%s' % (k, slug(s))) for k, s in enumerate(sentences)]
    predictor.load(log)
    log('%s: %d frames of %dx%d at %.3g frames/s; predicting %d of them for %d sentence(s)'
        % (video, source.n, source.size[1], source.size[0], float(source.fps), len(targets),
           len(sentences)))
    from util.pipeline.once_per_picture import FrameFeatures  # imports TensorFlow
    features = FrameFeatures(predictor.model)
    ids = np.stack([e[0] for e in encoded])  # [S, T]
    per_frame = [[] for _ in sentences]
    word_types = [None] * len(sentences)
    shown = set(np.asarray(targets)[np.linspace(0, len(targets) - 1, min(PREVIEW_FRAMES,
                                                                       len(targets))).round()
                                    .astype(int)].tolist())  # frames of preview.png
    previews = [[] for _ in sentences]
    try:
        for folder in folders:
            os.makedirs(os.path.join(folder, 'masks'))
            if dcrf:
                os.makedirs(os.path.join(folder, 'masks_dcrf'))
        with contextlib.ExitStack() as stack:  # an error discards every overlay.mp4
            writers = [stack.enter_context(VideoWriter(os.path.join(folder, 'overlay.mp4'),
                                                       source.fps)) for folder in folders]
            for f, rgb, results in predict_frames(predictor.model, features, source, targets,
                                                  ids, dcrf, progress):
                for k, res in enumerate(results):
                    png = '%05d.png' % f
                    save_png(os.path.join(folders[k], 'masks', png),
                             res['mask'].astype(np.uint8) * 255)
                    if dcrf:
                        save_png(os.path.join(folders[k], 'masks_dcrf', png),
                                 res['mask_dcrf'].astype(np.uint8) * 255)
                    drawn = overlay(rgb, res['mask'])
                    writers[k].write(drawn)
                    if f in shown:
                        previews[k].append((f, drawn, res['mask'].mean()))
                    per_frame[k].append(frame_record(f, source.names[f - 1], res['mask'],
                                                     res['mask_dcrf']))
                    word_types[k] = res['word_types']

        records = []
        for k, (sentence, (ids, kept, unknown, dropped)) in enumerate(zip(sentences, encoded)):
            if all(unknown):
                warn('%r: every word is unknown to the vocabulary; the model sees only <unk>'
                     % sentence)
            if dropped:
                warn('%r: %d words past the first %d dropped: %s'
                     % (sentence, len(dropped), predictor.num_steps, ' '.join(dropped)))
            folder = os.path.join(final, os.path.basename(folders[k]))
            record = {
                'video': video, 'video_size': list(source.size), 'video_frames': source.n,
                'fps': float(source.fps), 'frames': frames or '1:%d' % source.n,
                'sentence': sentence, 'sentence_index': k, 'checkpoint': predictor.prefix,
                **fast_paths_of(predictor.model),
                'vocab': predictor.vocab_path, 'num_steps': predictor.num_steps,
                'word_ids': ids.tolist(), 'dropped_words': dropped, 'all_unknown': all(unknown),
                'tokens': word_records(kept, unknown, ids, word_types[k],
                                       predictor.word_types()),
                'window': describe_window(predictor.model, source.n),
                'backbone_runs': features.backbone_runs,
                'per_frame': per_frame[k],
                'files': {'masks': os.path.join(folder, 'masks'),
                          'overlay': os.path.join(folder, 'overlay.mp4')}}
            if dcrf:
                record['files']['masks_dcrf'] = os.path.join(folder, 'masks_dcrf')
            record['files']['preview'] = os.path.join(folder, 'preview.png')
            with atomic_open(os.path.join(folders[k], 'preview.png'), 'wb', fsync=False) as png:
                frames_figure(png, sentence, previews[k])
            write_json(os.path.join(folders[k], 'result.json'), record)
            records.append(record)
        write_json(os.path.join(tmp, 'predictions.json'), records)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log('Wrote %d frames x %d sentence(s) under %s (backbone runs: %d)'
        % (len(targets), len(sentences), final, features.backbone_runs))
    return records
