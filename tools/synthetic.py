"""A small synthetic referring-segmentation dataset, written in the real datasets' formats.

Each scene is a JPEG (96-128 px by default) holding 3-5 shapes -- circle, square,
triangle, diamond, star, cross -- in a few colours and two sizes, drawn over a noisy
gradient with clutter (lines and dots in the same colours, never annotated). Later shapes
may partly cover earlier ones; annotations are the *visible* regions, as in COCO.
Each scene draws its kinds and colours from small pools, so most objects have a
distractor of the same kind or the same colour, and a referred object gets expressions
that need what CMPC models:
  entity words     "circle", "star" (and "shape"/"object" when the kind is not needed),
  attribute words  "red", "small"/"little", "big"/"large",
  relation words   "left of", "above", "next to", "on top of", "behind", ... between two
                   objects, and "on the left", "top", ... within the image.
An expression is emitted only if it identifies its object among all objects of the scene
(a relation also only if no other object matching the description is even loosely in that
relation to the anchor), and descriptions are minimal, so the distractors force reading
the entity, the attribute and the relation words together.

Layout written under `out` (every file atomically):
  refer/refcoco/{instances.json, refs(unc).p}        train / val / testA / testB
  refer/refcoco+/{instances.json, refs(unc).p}       same objects, no location words
  refer/refcocog/{instances.json, refs(google).p, refs(umd).p}
                                                     longer sentences; google: train/val,
                                                     umd: train/val/test
  coco/images/train2014/COCO_train2014_{image_id:012d}.jpg
  referit/images/{image_id}.jpg, referit/mask/{image_id}_{k}.mat (segimg_t uint8, 0 = object)
  referit_query_trainval.json, referit_query_test.json   {"{image_id}_{k}": [sentence, ...]}
  vocabulary_synthetic.txt    <pad> <go> <eos> <unk> + words of all training expressions
  synthetic_emb.npy           float32 [vocab size, emb_dim], util.glove's random init
  synthetic.json              the generation settings and counts, written last
Refs pickles use protocol 2 like the originals, with the refer fields (ref_id, ann_id,
image_id, category_id, split, file_name, sent_ids, sentences [{sent, raw, tokens,
sent_id}]); refs are stored in ref_id order (the Python 2 original iterated refer.Refs
by ascending id, Python 3 by file order: both agree), the ids given in a shuffled order so
that splits interleave. testA targets are circles, squares and
triangles, testB targets the other kinds (RefCOCO's testA/testB split people from objects).

Everything is a function of the settings: image i uses the generator seeded with
(seed, i) for its scene and (seed, i, object, style) for each style's sentences, so the
same settings give byte-identical files.
"""

import io
import json
import os
import shutil

import numpy as np
import scipy.ndimage as ndi
from PIL import Image, ImageDraw

from util.glove import build_embedding
from util.refer import decode_rle
from util.io import (atomic_open, save_mat_atomic, save_npy_atomic, save_pickle_atomic,
                     save_str_list, write_json)
from util.text_processing import build_vocab, sentence2words

KINDS = ('circle', 'square', 'triangle', 'diamond', 'star', 'cross')
TESTA_KINDS = ('circle', 'square', 'triangle')
COLOURS = {
    'red': (210, 40, 35),
    'green': (40, 160, 60),
    'blue': (45, 85, 220),
    'yellow': (230, 205, 40),
    'purple': (140, 60, 180),
    'white': (235, 235, 235),
}
# radius as a fraction of the image's shorter side
SIZE_RANGES = {'small': (0.075, 0.095), 'big': (0.15, 0.185)}
SIZE_WORDS = {'small': ('small', 'little'), 'big': ('big', 'large')}
GENERIC_NOUNS = ('shape', 'object')
ATTR_SETS = ((), ('kind',), ('colour',), ('size',), ('colour', 'kind'), ('size', 'kind'),
             ('size', 'colour'), ('size', 'colour', 'kind'))
STYLES = ('unc', 'unc+', 'gref', 'referit')
DIRECTIONAL = ('left_of', 'right_of', 'above', 'below')

DEFAULTS = dict(seed=0, train_images=80, val_images=16, testA_images=10, testB_images=10,
                min_size=96, max_size=128, min_objects=3, max_objects=5, refs_per_image=3,
                sents_per_ref=2, gray_fraction=0.03, overlap_prob=0.35, emb_dim=300)
FIRST_IMAGE_ID = 100000
JPEG_QUALITY = 90


# --------------------------------------------------------------------------- geometry

def _rot(points, angle):
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def shape_polygon(kind, cx, cy, r, rng):
    """[N, 2] polygon (x, y) of a shape of 'radius' r centred at (cx, cy)."""
    small_tilt = rng.uniform(-0.17, 0.17)  # +-10 degrees: squares stay squares, not diamonds
    if kind == 'circle':
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1) * r
    elif kind == 'square':
        s = 0.85 * r
        pts = _rot(np.array([[-s, -s], [s, -s], [s, s], [-s, s]]), small_tilt)
    elif kind == 'diamond':
        pts = _rot(np.array([[0, -1.2], [0.75, 0], [0, 1.2], [-0.75, 0]]) * r, small_tilt)
    elif kind == 'triangle':
        t = np.pi / 2 + np.arange(3) * 2 * np.pi / 3 + rng.uniform(0, 2 * np.pi)
        pts = np.stack([np.cos(t), np.sin(t)], 1) * 1.1 * r
    elif kind == 'star':
        t = np.arange(10) * np.pi / 5 + rng.uniform(0, 2 * np.pi)
        rad = np.where(np.arange(10) % 2 == 0, 1.2, 0.5) * r
        pts = np.stack([np.cos(t) * rad, np.sin(t) * rad], 1)
    elif kind == 'cross':
        a, w = 1.05, 0.36
        unit = np.array([[-w, -a], [w, -a], [w, -w], [a, -w], [a, w], [w, w], [w, a],
                         [-w, a], [-w, w], [-a, w], [-a, -w], [-w, -w]])
        pts = _rot(unit * r, small_tilt)
    else:
        raise ValueError('unknown kind %r' % kind)
    return pts + np.array([cx, cy])


def rasterize(polygons, h, w):
    """bool [h, w] union of COCO polygons (flat [x0, y0, ...] lists), as pycocotools draws."""
    from pycocotools import mask as cocomask
    rle = cocomask.frPyObjects([list(map(float, p)) for p in polygons], h, w)
    return decode_rle(rle).max(axis=2).astype(bool)


def mask_to_polygons(mask, min_area=4.0):
    """COCO polygons (flat lists) tracing the components of a hole-free bool mask."""
    from skimage.measure import approximate_polygon, find_contours
    polys = []
    # Padding closes contours at the border; a padded index i is COCO coordinate i - 0.5
    # (pixel j covers [j, j + 1], and level 0.5 runs halfway between pixel centres).
    for contour in find_contours(np.pad(mask.astype(np.float64), 1), 0.5):
        contour = approximate_polygon(contour, tolerance=0.3)[:-1]  # drop repeated first point
        if len(contour) < 3:
            continue
        ys, xs = contour[:, 0] - 0.5, contour[:, 1] - 0.5
        area = 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))
        if area < min_area:
            continue
        polys.append([round(float(v), 2) for xy in zip(xs, ys) for v in xy])
    return polys


# --------------------------------------------------------------------------- scenes

class Obj:
    def __init__(self, order, kind, colour, size, cx, cy, r, full):
        self.order, self.kind, self.colour, self.size = order, kind, colour, size
        self.cx, self.cy, self.r, self.full = cx, cy, r, full
        self.vis = None       # visible bool mask, shrunk as later objects cover it
        self.polygons = None  # COCO polygons of the visible region


def make_scene(rng, cfg):
    """(image uint8 [H, W, 3] or [H, W], objects, is_gray) of one scene."""
    h, w = (int(v) for v in rng.integers(cfg['min_size'], cfg['max_size'] + 1, size=2))
    side = min(h, w)
    n_obj = int(rng.integers(cfg['min_objects'], cfg['max_objects'] + 1))
    kind_pool = list(rng.choice(KINDS, size=int(rng.integers(2, 4)), replace=False))
    colour_pool = list(rng.choice(list(COLOURS), size=int(rng.integers(2, 4)), replace=False))

    objs = []
    for _ in range(n_obj):
        kind = str(rng.choice(kind_pool))
        colour = str(rng.choice(colour_pool))
        size = 'small' if rng.random() < 0.55 else 'big'
        may_overlap = rng.random() < cfg['overlap_prob']
        for _attempt in range(60):
            r = rng.uniform(*SIZE_RANGES[size]) * side
            cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
            pts = shape_polygon(kind, cx, cy, r, rng)
            full = rasterize([pts.ravel()], h, w)
            if _placement_ok(full, objs, may_overlap):
                for o in objs:  # the new object is drawn on top of all earlier ones
                    o.vis = o.vis & ~full
                obj = Obj(len(objs), kind, colour, size, cx, cy, r, full)
                obj.vis = full.copy()
                objs.append(obj)
                break
    for o in objs:
        o.polygons = mask_to_polygons(o.vis)

    im = _paint(rng, h, w, objs)
    is_gray = bool(rng.random() < cfg['gray_fraction'])
    if is_gray:
        im = np.asarray(Image.fromarray(im).convert('L'))
    # keep only objects whose visible region survived as polygons
    objs = [o for o in objs if o.polygons]
    return im, objs, is_gray


def _placement_ok(full, objs, may_overlap):
    """May a new top-most object with mask full join objs (whose .vis are current)?"""
    if not full.any():
        return False
    near = ndi.binary_dilation(full, iterations=2)
    for o in objs:
        if not (full & o.vis).any():
            if not may_overlap and (near & o.full).any():
                return False
            continue
        if not may_overlap:
            return False
        # The covered object keeps most of itself, in pieces of reasonable size and
        # without holes (COCO polygons are unions and cannot describe a hole).
        left = o.vis & ~full
        if left.sum() < 0.6 * o.full.sum():
            return False
        if (ndi.binary_fill_holes(left) != left).any():
            return False
        labels, n = ndi.label(left)
        if n > 1 and np.bincount(labels.ravel())[1:].min() < 12:
            return False
    return True


def _paint(rng, h, w, objs):
    """uint8 [h, w, 3]: gradient + noise background, clutter, then objects in order."""
    c0, c1 = rng.uniform(40, 150, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    t = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    bg = c0 + t[..., None] * (c1 - c0)  # [h, w, 3]
    bg += rng.normal(0, 6, size=bg.shape)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    colour_list = list(COLOURS.values())
    for _ in range(int(rng.integers(3, 9))):
        col = tuple(int(v) for v in np.clip(np.array(colour_list[rng.integers(len(colour_list))])
                                            + rng.integers(-25, 26, 3), 0, 255))
        if rng.random() < 0.5:
            x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
            ang, ln = rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.35) * min(h, w)
            draw.line([(x0, y0), (x0 + ln * np.cos(ang), y0 + ln * np.sin(ang))], fill=col,
                      width=1)
        else:
            x0, y0, rad = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.8, 2.0)
            draw.ellipse([x0 - rad, y0 - rad, x0 + rad, y0 + rad], fill=col)
    arr = np.asarray(img).astype(np.float64)
    for o in objs:
        base = np.array(COLOURS[o.colour], np.float64) + rng.integers(-12, 13, 3)
        shade = 1.0 + 0.12 * ((yy - o.cy) / max(o.r, 1.0))[..., None] * rng.uniform(-1, 1)
        paint = base * np.clip(shade, 0.8, 1.2) + rng.normal(0, 5, size=arr.shape)
        arr[o.full] = paint[o.full]
    return np.clip(arr, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- expressions

def _matches(o, t, attrs):
    return all(getattr(o, a) == getattr(t, a) for a in attrs)


def _unique(t, objs, attrs):
    return [o for o in objs if _matches(o, t, attrs)] == [t]


def _overlap(a, b):
    return int((a.full & b.full).sum())


def _relation(t, a, rel, side, loose=False):
    """Is t in relation rel to anchor a? loose=True is the wide test used for distractors."""
    dx, dy = t.cx - a.cx, t.cy - a.cy
    m = 0.0 if loose else 0.08 * side
    if rel in DIRECTIONAL:
        along, across = (dx, dy) if rel in ('left_of', 'right_of') else (dy, dx)
        sign = -1 if rel in ('left_of', 'above') else 1
        if loose:
            return sign * along > 0
        return sign * along > m and abs(along) > abs(across)
    if rel == 'next_to':
        gap = np.hypot(dx, dy) - (t.r + a.r)
        if loose:
            return gap < 0.2 * side
        return gap < 0.08 * side and _overlap(t, a) == 0
    if rel in ('on_top_of', 'behind'):
        ov = _overlap(t, a)
        above = t.order > a.order
        want_above = rel == 'on_top_of'
        return above == want_above and ov >= (1 if loose else 8)
    raise ValueError(rel)


RELATIONS = ('left_of', 'right_of', 'above', 'below', 'next_to', 'on_top_of', 'behind')
REL_WORDS = {
    'left_of': ('left of', 'to the left of'),
    'right_of': ('right of', 'to the right of'),
    'above': ('above',),
    'below': ('below', 'beneath'),
    'next_to': ('next to', 'beside', 'near'),
    'on_top_of': ('on top of', 'covering', 'in front of'),
    'behind': ('behind', 'under', 'covered by'),
}
LOCATIONS = ('left', 'right', 'top', 'bottom')


def _candidates(t, objs, side, style, gray):
    """Expression plans identifying t: ('attr', S), ('loc', S, where), ('rel', S, rel, a, Sa)."""
    attr_sets = [s for s in ATTR_SETS if not (gray and 'colour' in s)]
    uniques = [s for s in attr_sets if _unique(t, objs, s)]
    minimal = [s for s in uniques if not any(set(u) < set(s) for u in uniques)]
    plans = [('attr', s) for s in minimal if s]
    full = ('size', 'kind') if gray else ('size', 'colour', 'kind')
    if len(plans) == 1 and plans[0][1] != full:
        plans.append(('attr', full))  # a redundant but natural longer form

    if style != 'unc+':  # RefCOCO+ has no location words
        for s in attr_sets:
            group = [o for o in objs if _matches(o, t, s)]
            if len(group) < 2:
                continue
            others = [o for o in group if o is not t]
            m = 0.1 * side
            tests = {'left': t.cx + m < min(o.cx for o in others),
                     'right': t.cx - m > max(o.cx for o in others),
                     'top': t.cy + m < min(o.cy for o in others),
                     'bottom': t.cy - m > max(o.cy for o in others)}
            plans += [('loc', s, where) for where in LOCATIONS if tests[where]]

    for a in objs:
        if a is t:
            continue
        anchor_sets = [s for s in attr_sets if 'kind' in s and _unique(a, objs, s)]
        if not anchor_sets:
            continue
        sa = min(anchor_sets, key=len)
        for rel in RELATIONS:
            if style == 'unc+' and rel in DIRECTIONAL:
                continue
            if not _relation(t, a, rel, side):
                continue
            for s in attr_sets:
                if 'kind' not in s or _unique(t, objs, s):
                    continue  # the relation must be needed to pick t out
                group = [o for o in objs if o is not a and _matches(o, t, s)]
                if all(not _relation(o, a, rel, side, loose=True) for o in group if o is not t):
                    plans.append(('rel', s, rel, a, sa))
                    break
    return plans


def _noun_phrase(o, attrs, rng):
    words = []
    if 'size' in attrs:
        words.append(str(rng.choice(SIZE_WORDS[o.size])))
    if 'colour' in attrs:
        words.append(o.colour)
    words.append(o.kind if 'kind' in attrs else str(rng.choice(GENERIC_NOUNS)))
    return ' '.join(words)


_LOC_TEMPLATES = {
    'unc': {'left': ('{d} on the left', 'left {d}', 'leftmost {d}'),
            'right': ('{d} on the right', 'right {d}', 'rightmost {d}'),
            'top': ('{d} at the top', 'top {d}', 'upper {d}'),
            'bottom': ('{d} at the bottom', 'bottom {d}', 'lower {d}')},
    'gref': {'left': ('the {d} on the left side of the picture', 'the {d} that is furthest left'),
             'right': ('the {d} on the right side of the picture',
                       'the {d} that is furthest right'),
             'top': ('the {d} at the top of the image', 'the {d} that is highest up'),
             'bottom': ('the {d} at the bottom of the image', 'the {d} that is lowest down')},
    'referit': {'left': ('{d} left', 'left {d}', '{d} on left'),
                'right': ('{d} right', 'right {d}', '{d} on right'),
                'top': ('top {d}', '{d} top'),
                'bottom': ('bottom {d}', '{d} bottom')},
}


def _realize(plan, t, style, rng):
    """Surface string of a plan in a dataset's style (lower case; raw casing added later)."""
    kind = plan[0]
    key = 'unc' if style == 'unc+' else style
    d = _noun_phrase(t, plan[1], rng)
    if kind == 'attr':
        if style == 'gref':
            if 'colour' in plan[1] and 'kind' in plan[1] and rng.random() < 0.5:
                rest = [a for a in plan[1] if a != 'colour']
                return 'a %s that is %s' % (_noun_phrase(t, rest, rng), t.colour)
            return 'the %s in the picture' % d if rng.random() < 0.5 else 'the %s' % d
        return d if style == 'referit' or rng.random() < 0.6 else 'the ' + d
    if kind == 'loc':
        return str(rng.choice(_LOC_TEMPLATES[key][plan[2]])).format(d=d)
    _, _, rel, a, sa = plan
    rel_words = str(rng.choice(REL_WORDS[rel]))
    da = _noun_phrase(a, sa, rng)
    if style == 'gref':
        return 'the %s that is %s the %s' % (d, rel_words, da)
    if style == 'referit':
        return '%s %s %s' % (d, rel_words, da)
    return '%s %s %s%s' % (d, rel_words, 'the ' if rng.random() < 0.5 else '', da)


def _raw(sent, rng):
    """Annotator-like raw text: sometimes capitalised, sometimes with a final period."""
    if rng.random() < 0.4:
        sent = sent[0].upper() + sent[1:]
    if rng.random() < 0.3:
        sent += '.'
    return sent


def expressions_for(t, objs, side, style, gray, n_sents, rng):
    """Up to n_sents distinct raw expressions for t, mixing plan types."""
    plans = _candidates(t, objs, side, style, gray)
    by_type = {}
    for p in plans:
        by_type.setdefault(p[0], []).append(p)
    for ps in by_type.values():
        rng.shuffle(ps)
    types = list(by_type)
    rng.shuffle(types)
    chosen, seen = [], set()
    while len(chosen) < n_sents and any(by_type.values()):
        for ty in types:
            if by_type[ty] and len(chosen) < n_sents:
                sent = _realize(by_type[ty].pop(), t, style, rng)
                if sent not in seen:
                    seen.add(sent)
                    chosen.append(_raw(sent, rng))
    return chosen


# --------------------------------------------------------------------------- dataset

def _split_of(i, cfg):
    bounds = np.cumsum([cfg['train_images'], cfg['val_images'], cfg['testA_images'],
                        cfg['testB_images']])
    return ('train', 'val', 'testA', 'testB')[int(np.searchsorted(bounds, i, side='right'))]


def _jpeg_bytes(im):
    buf = io.BytesIO()
    Image.fromarray(im).save(buf, format='JPEG', quality=JPEG_QUALITY)
    return buf.getvalue()


def _write_bytes(path, data):
    with atomic_open(path, 'wb') as f:
        f.write(data)


def _check_cfg(cfg):
    for key in ('train_images', 'val_images', 'testA_images', 'testB_images'):
        if cfg[key] < 0:
            raise ValueError('--%s must be >= 0, got %d' % (key, cfg[key]))
    if cfg['train_images'] < 1:
        raise ValueError('--train_images must be >= 1 (the vocabulary comes from train)')
    if not 16 <= cfg['min_size'] <= cfg['max_size']:
        raise ValueError('--min_size/--max_size: need 16 <= min_size <= max_size, got %d, %d'
                         % (cfg['min_size'], cfg['max_size']))
    if not 2 <= cfg['min_objects'] <= cfg['max_objects']:
        raise ValueError('--min_objects/--max_objects: need 2 <= min <= max, got %d, %d'
                         % (cfg['min_objects'], cfg['max_objects']))
    for key in ('refs_per_image', 'sents_per_ref', 'emb_dim'):
        if cfg[key] < 1:
            raise ValueError('--%s must be >= 1, got %d' % (key, cfg[key]))
    for key in ('gray_fraction', 'overlap_prob'):
        if not 0 <= cfg[key] <= 1:
            raise ValueError('--%s must be in [0, 1], got %g' % (key, cfg[key]))


def generate(out, **settings):
    """Write the synthetic dataset under out; returns the summary dict (also synthetic.json)."""
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise TypeError('unknown settings: %s' % ', '.join(sorted(unknown)))
    cfg = dict(DEFAULTS, **settings)
    _check_cfg(cfg)
    n_images = cfg['train_images'] + cfg['val_images'] + cfg['testA_images'] + cfg['testB_images']

    coco_dir = os.path.join(out, 'coco', 'images', 'train2014')
    referit_im_dir = os.path.join(out, 'referit', 'images')
    referit_mask_dir = os.path.join(out, 'referit', 'mask')
    for d in (coco_dir, referit_im_dir, referit_mask_dir):
        os.makedirs(d, exist_ok=True)

    images, annotations = [], []
    refs = {'unc': [], 'unc+': [], 'gref': []}
    queries = {'trainval': [], 'test': []}
    for i in range(n_images):
        split = _split_of(i, cfg)
        rng = np.random.default_rng([cfg['seed'], i])
        im, objs, gray = make_scene(rng, cfg)
        h, w = im.shape[:2]
        image_id = FIRST_IMAGE_ID + i
        file_name = 'COCO_train2014_%012d.jpg' % image_id
        jpeg = _jpeg_bytes(im)
        _write_bytes(os.path.join(coco_dir, file_name), jpeg)
        _write_bytes(os.path.join(referit_im_dir, '%d.jpg' % image_id), jpeg)
        images.append({'id': image_id, 'file_name': file_name, 'height': h, 'width': w})

        for k, o in enumerate(objs, 1):
            o.ann_id = image_id * 10 + k
            o.key = '%d_%d' % (image_id, k)
            m = rasterize(o.polygons, h, w)
            ys, xs = np.nonzero(m)
            bbox = ([float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
                     float(ys.max() - ys.min() + 1)] if len(xs) else [0.0, 0.0, 0.0, 0.0])
            annotations.append({'id': o.ann_id, 'image_id': image_id,
                                'category_id': KINDS.index(o.kind) + 1,
                                'segmentation': o.polygons, 'area': float(m.sum()),
                                'bbox': bbox, 'iscrowd': 0})

        targets = [o for o in objs
                   if split not in ('testA', 'testB')
                   or (o.kind in TESTA_KINDS) == (split == 'testA')]
        rng.shuffle(targets)
        side = min(h, w)
        n_refs = 0
        for t in targets:
            if n_refs == cfg['refs_per_image']:
                break
            sents = {}
            for style in STYLES:
                srng = np.random.default_rng([cfg['seed'], i, t.order, STYLES.index(style)])
                sents[style] = expressions_for(t, objs, side, style, gray,
                                               cfg['sents_per_ref'], srng)
            if not sents['unc']:
                continue  # t cannot be singled out
            n_refs += 1
            for style in ('unc', 'unc+', 'gref'):
                if sents[style]:
                    refs[style].append((split, image_id, t, sents[style]))
            if sents['referit']:
                queries['trainval' if split in ('train', 'val') else 'test'].append(
                    (t.key, sents['referit']))
                save_mat_atomic(os.path.join(referit_mask_dir, t.key + '.mat'),
                                {'segimg_t': np.where(t.vis, 0, 1).astype(np.uint8)},
                                description='MATLAB 5.0 MAT-file, CMPC synthetic dataset')

    instances = {'info': {'description': 'CMPC synthetic referring dataset',
                          'seed': cfg['seed']},
                 'images': images, 'annotations': annotations,
                 'categories': [{'id': n + 1, 'name': k, 'supercategory': 'shape'}
                                for n, k in enumerate(KINDS)]}
    order_rng = np.random.default_rng([cfg['seed'], n_images, 99])
    counts = {}
    train_sents = []
    for style, dataset, split_maps in (
            ('unc', 'refcoco', {'unc': None}),
            ('unc+', 'refcoco+', {'unc': None}),
            ('gref', 'refcocog', {'google': {'testA': 'val', 'testB': 'val'},
                                  'umd': {'testA': 'test', 'testB': 'test'}})):
        folder = os.path.join(out, 'refer', dataset)
        os.makedirs(folder, exist_ok=True)
        write_json(os.path.join(folder, 'instances.json'), instances, indent=None,
                   separators=(',', ':'))
        # Ids follow a shuffled order so that splits interleave, and the list is stored in
        # id order: then the Python 2 original's refer.Refs order (ascending int keys) and
        # Python 3's (file order) agree, and build_batches numbers expressions as both.
        perm = order_rng.permutation(len(refs[style]))
        ref_list, sent_id = [], 0
        for ref_id, (split, image_id, t, sents) in enumerate(refs[style][p] for p in perm):
            sentences = []
            for raw in sents:
                tokens = [w for w in sentence2words(raw) if w.isalnum()]
                sentences.append({'tokens': tokens, 'raw': raw, 'sent_id': sent_id,
                                  'sent': ' '.join(tokens)})
                sent_id += 1
            ref_list.append({'ref_id': ref_id, 'ann_id': t.ann_id, 'image_id': image_id,
                             'category_id': KINDS.index(t.kind) + 1, 'split': split,
                             'file_name': 'COCO_train2014_%012d_%d.jpg' % (image_id, t.ann_id),
                             'sent_ids': [s['sent_id'] for s in sentences],
                             'sentences': sentences})
        for split_by, mapping in split_maps.items():
            out_refs = [dict(r, split=(mapping or {}).get(r['split'], r['split']))
                        for r in ref_list]
            save_pickle_atomic(out_refs, os.path.join(folder, 'refs(%s).p' % split_by))
            name = {'refcoco': 'unc', 'refcoco+': 'unc+'}.get(dataset) or \
                ('Gref' if split_by == 'google' else 'Gref_umd')
            counts[name] = {}
            for r in out_refs:
                counts[name][r['split']] = counts[name].get(r['split'], 0) + len(r['sentences'])
        train_sents += [s['sent'] for r in ref_list if r['split'] == 'train'
                        for s in r['sentences']]

    counts['referit'] = {}
    for setname, entries in queries.items():
        perm = order_rng.permutation(len(entries))
        query = {entries[p][0]: entries[p][1] for p in perm}
        # the original's layout
        write_json(os.path.join(out, 'referit_query_%s.json' % setname), query, indent=None,
                   separators=(',\n', ':\n'))
        counts['referit'][setname] = sum(len(v) for v in query.values())
        if setname == 'trainval':
            train_sents += [s for v in query.values() for s in v]

    vocab = build_vocab(train_sents)
    save_str_list(vocab, os.path.join(out, 'vocabulary_synthetic.txt'))
    emb = build_embedding(vocab, {}, dim=cfg['emb_dim'], seed=cfg['seed'])  # [V, emb_dim]
    save_npy_atomic(os.path.join(out, 'synthetic_emb.npy'), emb)

    summary = {'settings': cfg, 'images': n_images, 'objects': len(annotations),
               'vocab_size': len(vocab), 'expressions': counts}
    write_json(os.path.join(out, 'synthetic.json'), summary, indent=None, separators=(',', ': '))
    return summary


def load_summary(out):
    """The synthetic.json of a finished generation in out, or None."""
    path = os.path.join(out, 'synthetic.json')
    if not os.path.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def clear(out):
    """Remove what generate() writes under out (before regenerating with other settings)."""
    for sub in ('refer', 'coco', 'referit'):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    for name in ('referit_query_trainval.json', 'referit_query_test.json',
                 'vocabulary_synthetic.txt', 'synthetic_emb.npy', 'synthetic.json'):
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))
