"""Small generated releases of Ref-YouTube-VOS, Ref-DAVIS17 (ReferFormer's converted layout) and
MeViS, written in their real formats, for tests/test_rvos_datasets.py. Each writer returns what
it drew (the truth: frame names, sizes, the label or mask arrays, the expressions) so that a test
can compute the expected samples on its own.

What they hold, for the cases the dataset modules must handle:
  Ref-YouTube-VOS  train: 'skips' (20 frames 00000, 00005, ..., 37x53; frames 3 and 10 have no
                   annotation PNG; object 2 leaves the frame from frame 12 on; an expression of
                   object 3, which meta.json does not know), 'names' (frames a0 b3 c1 d7 e2,
                   listed out of order, 31x40), 'unlisted' (in meta_expressions, not in
                   meta.json); valid: 'val' (7 frames, no Annotations).
  Ref-DAVIS17      train: 'dav' (18 frames, 2 objects, 4 expressions each, void 255 along the
                   top row); valid: 'davval' (6 frames, 1 object, with Annotations).
  MeViS            train: 'm1' (18 frames, 37x53; anno 10 in every frame, anno 11 leaves the
                   frame from frame 9 on; expressions of 10, of 10 and 11 overlapping, of 11),
                   'm2' (frames a0 b3 c1 d7 listed out of order, 29x35); valid_u: 'mu' (5 frames,
                   masks); valid: 'mv' (4 frames, no mask_dict.json).
"""

import json
import os

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

PALETTE = [0, 0, 0, 200, 0, 0, 0, 200, 0, 0, 0, 200] + [128] * (256 * 3 - 12)


def write_jpeg(path, size, seed):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.RandomState(seed)
    Image.fromarray(rng.randint(0, 255, size + (3,), dtype=np.uint8)).save(path, quality=90)


def write_palette_png(path, label):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    im = Image.fromarray(label.astype(np.uint8), mode='P')
    im.putpalette(PALETTE)
    im.save(path)


def box(size, top, left, height, width):
    """bool [h, w]: a rectangle, cut by the frame's edges (empty when wholly outside)."""
    m = np.zeros(size, bool)
    m[max(top, 0):max(top + height, 0), max(left, 0):max(left + width, 0)] = True
    return m


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f)


# -- the Ref-YouTube-VOS layout (Ref-DAVIS17 converted to it too)

def write_ytvos_layout(root, videos):
    """videos: {split: {video: {'listed': [names], 'size': (h, w), 'labels': {name: uint8
    [h, w]} or None (no Annotations), 'expressions': {exp_id: (sentence, obj_id)},
    'objects': [obj ids in meta.json] or None (not in meta.json)}}}; writes the release."""
    for split, vids in videos.items():
        meta_exp = {'videos': {}}
        meta = {'videos': {}}
        for k, (video, v) in enumerate(vids.items()):
            for j, name in enumerate(v['listed']):
                write_jpeg(os.path.join(root, split, 'JPEGImages', video, name + '.jpg'), v['size'],
                           seed=100 * k + j)
            for name, label in (v['labels'] or {}).items():
                write_palette_png(os.path.join(root, split, 'Annotations', video, name + '.png'),
                                  label)
            meta_exp['videos'][video] = {
                # the valid split of the release hides the objects: 'exp' only
                'expressions': {i: {'exp': s} if v['labels'] is None else
                                {'exp': s, 'obj_id': str(o)}
                                for i, (s, o) in v['expressions'].items()},
                'frames': list(v['listed'])}
            if v['objects'] is not None:
                meta['videos'][video] = {'objects': {str(o): {'category': 'thing',
                                                              'frames': list(v['listed'])}
                                                     for o in v['objects']}}
        write_json(os.path.join(root, 'meta_expressions', split, 'meta_expressions.json'), meta_exp)
        if any(v['labels'] is not None for v in vids.values()):
            write_json(os.path.join(root, split, 'meta.json'), meta)
    return videos


def moving_labels(names, size, objects, void=False):
    """{name: uint8 [h, w]}: object o a box moving right with the frame index; objects:
    {obj id: last frame index it is in view (None: always)}; void: 255 along the top row."""
    labels = {}
    for k, name in enumerate(names):
        label = np.zeros(size, np.uint8)
        for o, last in objects.items():
            if last is None or k <= last:
                label[box(size, 4 * o, k * 2 - 3 + o, 9, 11)] = o
        if void:
            label[0] = 255
        labels[name] = label
    return labels


def write_ref_youtube_vos(root):
    size = (37, 53)
    skips = ['%05d' % (5 * k) for k in range(20)]
    labels = moving_labels(skips, size, {1: None, 2: 11})
    for k in (3, 10):
        del labels[skips[k]]
    names = ['c1', 'a0', 'e2', 'b3', 'd7']
    return write_ytvos_layout(root, {
        'train': {
            'skips': {'listed': skips, 'size': size, 'labels': labels, 'objects': [1, 2],
                      'expressions': {'0': ('The red ball, moving left.', 1),
                                      '1': ('a dog running', 2),
                                      '2': ('the unknown thing', 3)}},
            'names': {'listed': names, 'size': (31, 40), 'objects': [1],
                      'labels': moving_labels(sorted(names), (31, 40), {1: None}),
                      'expressions': {'5': ('A Cat jumping', 1)}},
            'unlisted': {'listed': ['00000', '00005'], 'size': size, 'objects': None,
                         'labels': moving_labels(['00000', '00005'], size, {1: None}),
                         'expressions': {'0': ('a bird', 1)}}},
        'valid': {
            'val': {'listed': ['%05d' % k for k in range(7)], 'size': size, 'labels': None,
                    'objects': None, 'expressions': {'0': ('the person on the left', 1),
                                                     '1': ('a horse', 2)}}}})


def write_ref_davis(root):
    size = (37, 53)
    frames = ['%05d' % k for k in range(18)]
    val = ['%05d' % k for k in range(6)]
    sents = ('%s, first frame of annotator 1', '%s in the whole video, annotator 1',
             '%s, first frame of annotator 2', '%s in the whole video, annotator 2')
    return write_ytvos_layout(root, {
        'train': {'dav': {'listed': frames, 'size': size, 'objects': [1, 2],
                          'labels': moving_labels(frames, size, {1: None, 2: 8}, void=True),
                          'expressions': {str(4 * (o - 1) + a): (sents[a] % ('object %d' % o), o)
                                          for o in (1, 2) for a in range(4)}}},
        'valid': {'davval': {'listed': val, 'size': size, 'objects': [1],
                             'labels': moving_labels(val, size, {1: None}, void=True),
                             'expressions': {str(a): (sents[a] % 'the swan', 1)
                                             for a in range(4)}}}})


# -- MeViS

def rle(mask):
    """A COCO RLE as mask_dict.json stores it (counts a str)."""
    r = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': [int(s) for s in r['size']], 'counts': r['counts'].decode('ascii')}


def write_mevis_split(root, split, videos, with_masks):
    """videos: {video: {'listed', 'size', 'masks': {anno_id: {name: bool [h, w] or None}},
    'expressions': {exp_id: (sentence, [anno_ids])}}}."""
    meta = {'videos': {}}
    mask_dict = {}
    for k, (video, v) in enumerate(videos.items()):
        for j, name in enumerate(v['listed']):
            write_jpeg(os.path.join(root, split, 'JPEGImages', video, name + '.jpg'), v['size'],
                       seed=100 * k + j)
        meta['videos'][video] = {
            # the valid split of the release hides the objects: 'exp' only
            'expressions': {i: {'exp': s, 'obj_id': [int(a) - 10 for a in ids], 'anno_id': ids}
                            if with_masks else {'exp': s}
                            for i, (s, ids) in v['expressions'].items()},
            'frames': list(v['listed'])}
        for a, per_frame in v['masks'].items():
            # one entry per frame, in the listed order (as MeViS's eval pairs them)
            mask_dict[a] = [None if per_frame[n] is None else rle(per_frame[n])
                            for n in v['listed']]
    write_json(os.path.join(root, split, 'meta_expressions.json'), meta)
    if with_masks:
        write_json(os.path.join(root, split, 'mask_dict.json'), mask_dict)
    return videos


def write_mevis(root):
    size = (37, 53)
    m1 = ['%05d' % k for k in range(18)]
    m1_masks = {'10': {n: box(size, 3, 2 * k, 10, 12) for k, n in enumerate(m1)},
                '11': {n: box(size, 8, 40 - 2 * k, 10, 9) if k < 9 else None
                       for k, n in enumerate(m1)}}
    m1_masks['11'][m1[4]] = np.zeros(size, bool)  # an RLE of an empty mask, not null
    m2 = ['c1', 'a0', 'd7', 'b3']
    m2_masks = {'20': {n: box((29, 35), k, k, 6, 7) for k, n in enumerate(m2)}}
    mu = ['%05d' % k for k in range(5)]
    mu_masks = {'30': {n: box(size, 5, 3 * k, 8, 8) for k, n in enumerate(mu)}}
    mv = ['%05d' % k for k in range(4)]
    return {
        'train': write_mevis_split(root, 'train', {
            'm1': {'listed': m1, 'size': size, 'masks': m1_masks,
                   'expressions': {'0': ('the left car', ['10']),
                                   '1': ('Two cars passing each other.', ['10', '11']),
                                   '2': ('the car driving away', ['11'])}},
            'm2': {'listed': m2, 'size': (29, 35), 'masks': m2_masks,
                   'expressions': {'0': ('a fish', ['20'])}}}, True),
        'valid_u': write_mevis_split(root, 'valid_u', {
            'mu': {'listed': mu, 'size': size, 'masks': mu_masks,
                   'expressions': {'0': ('the moving cow', ['30'])}}}, True),
        'valid': write_mevis_split(root, 'valid', {
            'mv': {'listed': mv, 'size': size, 'masks': {},
                   'expressions': {'0': ('the bird flying away', [])}}}, False)}
