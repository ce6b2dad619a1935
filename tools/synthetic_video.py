"""A small synthetic A2D Sentences, written in the release's formats, for the video model.

Each video (`size` 96 x 96 by default, make_synthetic_dataset.py --video_size; 24 frames) holds
2-3 shapes (tools/synthetic.py's kinds and colours; a radius of `radius`, 0.1, of the side,
+-10 %) over a noisy gradient, each in its own horizontal band and doing one action:
  moving left, moving right   2 px per frame along its band (at 96 px; scaled with the size),
  jumping                     hops of 10 px (scaled), a hop every 8 frames,
  standing still,
  changing colour             standing still, white in every frame but the annotated ones.
A video is of one of three kinds, and each of its queries gets that kind's category:
  changes     (share `changes_share`, 0.5) twins, two shapes of the same kind, colour and
              outline, both standing still; one is changing colour ("the red square changing
              colour" beside "the red square standing still"). In the annotated frames the two
              are pixel for pixel the same (noise included); in every other frame the one
              changing colour is white, so every frame the video model samples besides the
              annotated one (f-8, f-4, f+4, f+7, clamped to the video) shows which twin is meant.
  motion      (`motion_share`, 0.25) twins that differ only in their motion ("the red square
              moving left" beside "the red square moving right", "the blue circle jumping"
              beside "the blue circle standing still"); the hard case: the temporal graph pools
              each frame into one node, and the twins look alike in every frame.
  appearance  (the rest) 2-3 shapes, no two of the same kind and colour: the action words
              are redundant with kind and colour.
Twin videos may hold one more shape, whose queries are 'appearance'. Only the action words
tell twins apart, and the annotated frame alone does not show the action. Shapes sit on whole
pixels and are drawn from one mask each, with one noise pattern per frame relative to each
shape's centre, so that twins are the same pixels. Frames 6, 12 and 18 are annotated.

Layout written under `out` (the real release's, util.io's atomic writes):
  A2D-Sentences/a2d_annotation.txt      CSV with header: video_id, instance_id, query
  A2D-Sentences/Release/videoset.csv    no header: video_id, ..., 0 train / 1 test
  A2D-Sentences/Release/clips320H/<video>.mp4          the video (PyAV, MPEG-4)
  A2D-Sentences/a2d_annotation_with_instances/<video>/<frame:05d>.h5
                                        `instance` ids and `reMask` (transposed), one instance
                                        in a video of one shape is stored as [w, h]
  vocabulary.txt, synthetic_emb.npy     <pad> <go> <eos> <unk> + the queries' words, and
                                        util.glove's random init of their vectors
  synthetic_video.json                  the settings and, for the test split, each sample as
                                        build_A2D_batches.py numbers it: video, instance,
                                        frame, query, category (appearance / changes /
                                        motion), lookalikes (the instances of the query's
                                        kind and colour, itself included) (written last)
The frames are not stored as PNGs, as in the release: build_A2D_batches.py --extract-frames
decodes them. The same settings give the same files.
"""

import os

import numpy as np
from PIL import Image, ImageDraw

from util.glove import build_embedding
from util.io import atomic_open, save_npy_atomic, save_str_list, write_json
from tools.synthetic import COLOURS, shape_polygon
from util.text_processing import build_vocab

DEFAULTS = dict(seed=0, train_videos=120, test_videos=30, size=96, frames=24, emb_dim=50,
                changes_share=0.5, motion_share=0.25, radius=0.1)
ANNOTATED_FRAMES = (6, 12, 18)
KINDS = ('circle', 'square', 'triangle', 'star')
VIDEO_COLOURS = ('red', 'green', 'blue', 'yellow')
TWIN_ACTIONS = (('moving left', 'moving right'), ('jumping', 'standing still'))
CHANGE_ACTIONS = ('changing colour', 'standing still')
ACTIONS = ('moving left', 'moving right', 'jumping', 'standing still')  # of the other shapes
ACTION_WORDS = {w for a in ACTIONS + CHANGE_ACTIONS for w in a.split()}
CHANGE_COLOUR = 'white'  # the changing twin's colour in every frame but the annotated ones
CATEGORIES = ('appearance', 'changes', 'motion')
SPEED = 2.0  # px per frame at size 96 (scaled with the size)
HOP, HOP_FRAMES = 10.0, 8  # px at size 96 (scaled), frames per hop
NOISE = 5.0  # the shapes' pixel noise (the background's is 6)


class Actor:
    """A shape in its own band doing one action. Its centre is on whole pixels in every frame
    and it is drawn from one mask (`template`), so that two actors of the same kind, colour and
    radius are pixel for pixel the same shape wherever they are."""

    def __init__(self, instance, kind, colour, action, band, rng, size, frames, radius=0.1,
                 r=None, shape=None):
        self.instance, self.kind, self.colour, self.action = instance, kind, colour, action
        self.scale = size / 96.0
        self.r = size * radius * rng.uniform(0.9, 1.1) if r is None else r
        hop = HOP * self.scale
        self.cy = round((band + 0.5) * size / 3 + (hop / 2 if action == 'jumping' else 0))
        travel = SPEED * self.scale * frames
        lo, hi = self.r + 1, size - self.r - 1
        if action == 'moving right':
            self.x0 = rng.uniform(lo, max(lo, hi - travel))
        elif action == 'moving left':
            self.x0 = rng.uniform(min(hi, lo + travel), hi)
        else:
            self.x0 = rng.uniform(lo, hi)
        self.shape = (shape_polygon(kind, 0.0, 0.0, self.r, rng) if shape is None
                      else shape)  # [N, 2] about the centre
        self.half = int(np.ceil(self.r)) + 1
        m = Image.new('L', (2 * self.half + 1,) * 2)
        ImageDraw.Draw(m).polygon([(float(px + self.half), float(py + self.half))
                                   for px, py in self.shape], fill=1)
        self.template = np.asarray(m).astype(bool)  # [2 half + 1, 2 half + 1]

    def centre(self, t):
        """(x, y) in frame t (0-based), whole pixels."""
        s = self.scale
        dx = {'moving left': -SPEED * s, 'moving right': SPEED * s}.get(self.action, 0.0) * t
        dy = (-HOP * s * abs(np.sin(np.pi * t / HOP_FRAMES)) if self.action == 'jumping'
              else 0.0)
        return int(round(self.x0 + dx)), int(round(self.cy + dy))

    def colour_at(self, t):
        """The colour name in frame t (0-based): a changing shape is CHANGE_COLOUR in every
        frame but the annotated ones."""
        if self.action == 'changing colour' and t + 1 not in ANNOTATED_FRAMES:
            return CHANGE_COLOUR
        return self.colour

    def mask(self, t, size):
        """[size, size] bool in frame t (0-based)."""
        x, y = self.centre(t)
        m = np.zeros((size + 2 * self.half,) * 2, bool)  # padded: a shape may touch the border
        m[y:y + 2 * self.half + 1, x:x + 2 * self.half + 1] = self.template
        return m[self.half:self.half + size, self.half:self.half + size]

    def query(self, rng):
        template = rng.integers(3)
        if template == 0:
            return 'the %s %s %s' % (self.colour, self.kind, self.action)
        if template == 1:
            return '%s %s that is %s' % (self.colour, self.kind, self.action)
        return 'The %s %s %s.' % (self.colour, self.kind, self.action)


def video_category(rng, cfg):
    """'changes', 'motion' (twins) or 'appearance' (no twins), by the settings' shares."""
    u = rng.random()
    if u < cfg['changes_share']:
        return 'changes'
    return 'motion' if u < cfg['changes_share'] + cfg['motion_share'] else 'appearance'


def make_video(rng, cfg):
    """(actors, frames uint8 [F, s, s, 3], masks {frame (1-based): [n, s, s] bool} of the
    annotated frames, in the actors' order, category of the video's twins or 'appearance')."""
    size, frames = cfg['size'], cfg['frames']
    category = video_category(rng, cfg)
    twins = category != 'appearance'
    bands = list(rng.permutation(3))
    actors = []
    if twins:
        kind, colour = str(rng.choice(KINDS)), str(rng.choice(VIDEO_COLOURS))
        pair = (CHANGE_ACTIONS if category == 'changes'
                else TWIN_ACTIONS[rng.integers(len(TWIN_ACTIONS))])
        if category == 'changes' and rng.random() < 0.5:
            pair = pair[::-1]  # which twin (first or second instance) changes
        for action in pair:
            actors.append((kind, colour, action))
    n_more = int(rng.integers(0 if twins else 2, 2 if twins else 4))
    while len(actors) < (2 if twins else 0) + n_more:
        kind, colour = str(rng.choice(KINDS)), str(rng.choice(VIDEO_COLOURS))
        if any(k == kind and c == colour for k, c, _ in actors):
            continue  # only the twins share kind and colour
        actors.append((kind, colour, str(rng.choice(ACTIONS))))
    built = []
    for i, (k, c, a) in enumerate(actors):
        twin = built[0] if twins and i == 1 else None  # the same radius and outline
        built.append(Actor(i + 1, k, c, a, bands[i], rng, size, frames, cfg['radius'],
                           r=None if twin is None else twin.r,
                           shape=None if twin is None else twin.shape))
    actors = built

    c0, c1 = rng.uniform(40, 150, size=(2, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    angle = rng.uniform(0, 2 * np.pi)
    t = np.cos(angle) * xx / size + np.sin(angle) * yy / size
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    background = c0 + t[..., None] * (c1 - c0)
    video = np.zeros((frames, size, size, 3), np.uint8)
    masks = {}
    for f in range(frames):
        arr = background + rng.normal(0, 6, size=background.shape)
        # One noise pattern per frame, relative to each shape's centre, so twins stay identical
        noise = rng.normal(0, NOISE, size=(2 * max(a.half for a in actors) + 1,) * 2 + (3,))
        own = []
        for a in actors:
            m = a.mask(f, size)
            x, y = a.centre(f)
            ys, xs = np.nonzero(m)
            arr[m] = np.array(COLOURS[a.colour_at(f)]) + noise[ys - y + a.half, xs - x + a.half]
            own.append(m)
        video[f] = np.clip(arr, 0, 255).astype(np.uint8)
        if f + 1 in ANNOTATED_FRAMES:
            masks[f + 1] = np.stack(own)
    return actors, video, masks, category


def _atomic(path, mode='wb'):
    """util.io.atomic_open in a folder made if missing."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return atomic_open(path, mode, fsync=False, encoding=None if 'b' in mode else 'utf-8')


def write_mp4(path, video, fps=24):
    import av
    with _atomic(path) as f:
        with av.open(f, 'w', format='mp4') as out:
            stream = out.add_stream('mpeg4', rate=fps)
            stream.width, stream.height = video.shape[2], video.shape[1]
            stream.pix_fmt = 'yuv420p'
            stream.bit_rate = 4_000_000
            for frame in video:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)


def write_h5(path, ids, masks):
    """An annotation .h5 as the release: masks transposed, [w, h] for one instance."""
    import h5py
    with _atomic(path) as f:
        with h5py.File(f, 'w') as h5:
            h5['instance'] = np.asarray(ids, np.float64)
            h5['reMask'] = (masks[0].T if len(ids) == 1
                            else np.stack([m.T for m in masks])).astype(np.uint8)


def generate(out, **settings):
    """Writes the dataset under `out`; returns its summary (also synthetic_video.json)."""
    cfg = dict(DEFAULTS, **settings)
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ValueError('unknown settings %s' % unknown)
    if cfg['frames'] < max(ANNOTATED_FRAMES) or cfg['size'] < 32 or cfg['size'] % 2:
        raise ValueError('need frames >= %d and an even size >= 32' % max(ANNOTATED_FRAMES))
    if not (0 <= cfg['changes_share'] and 0 <= cfg['motion_share']
            and cfg['changes_share'] + cfg['motion_share'] <= 1):
        raise ValueError('need changes_share, motion_share >= 0 with a sum <= 1')
    root = os.path.join(out, 'A2D-Sentences')
    rows, videoset, test_samples, sentences = [], [], [], []
    n_videos = cfg['train_videos'] + cfg['test_videos']
    for i in range(n_videos):
        rng = np.random.default_rng([cfg['seed'], i])
        video_id = 'syn%05d' % i
        split = 0 if i < cfg['train_videos'] else 1
        actors, video, masks, category = make_video(rng, cfg)
        write_mp4(os.path.join(root, 'Release', 'clips320H', video_id + '.mp4'), video)
        ids = [a.instance for a in actors]
        for frame_id, m in masks.items():
            write_h5(os.path.join(root, 'a2d_annotation_with_instances', video_id,
                                  '%05d.h5' % frame_id), ids, m)
        videoset.append('%s,synthetic,%d,%d,%d' % (video_id, cfg['size'], cfg['frames'], split))
        for a in actors:
            query = a.query(rng)
            lookalikes = [b.instance for b in actors if b.kind == a.kind and b.colour == a.colour]
            rows.append('%s,%d,%s' % (video_id, a.instance, query))
            if split == 0:
                sentences.append(query)
            else:
                # the video's category for its twins; a shape without a twin: 'appearance'
                test_samples += [{'video': video_id, 'instance': a.instance, 'frame': f,
                                  'query': query,
                                  'category': category if len(lookalikes) > 1 else 'appearance',
                                  'lookalikes': lookalikes}
                                 for f in sorted(masks)]
    with _atomic(os.path.join(root, 'a2d_annotation.txt'), 'w') as f:
        f.write('video_id,instance_id,query\n' + '\n'.join(rows) + '\n')
    with _atomic(os.path.join(root, 'Release', 'videoset.csv'), 'w') as f:
        f.write('\n'.join(videoset) + '\n')
    words = build_vocab(sentences)
    save_str_list(words, os.path.join(out, 'vocabulary.txt'))
    save_npy_atomic(os.path.join(out, 'synthetic_emb.npy'),
                    build_embedding(words, {}, dim=cfg['emb_dim'], seed=cfg['seed']))
    summary = {'settings': cfg, 'queries': len(rows), 'vocabulary': len(words),
               'test_samples': test_samples}
    write_json(os.path.join(out, 'synthetic_video.json'), summary)
    return summary
