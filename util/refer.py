"""Python 3 reader for the refer datasets (RefCOCO, RefCOCO+, RefCOCOg; github:lichengunc/refer).

Files, under {data_root}/{dataset}/ (dataset: refcoco, refcoco+, refcocog, refclef):
  refs({split_by}).p  pickled list of refs, each a dict with ref_id, ann_id, image_id,
                      category_id, split ('train', 'val', 'test', 'testA', 'testB'),
                      file_name, sent_ids and sentences: [{sent, raw, tokens, sent_id}];
  instances.json      COCO style: images [{id, height, width, file_name}], annotations
                      [{id, image_id, category_id, bbox, area, segmentation}] with polygons
                      (list of [x0, y0, x1, y1, ...]) or RLE, and categories [{id, name}].

The pickles were written by Python 2. They are loaded with `load_plain_pickle`, an
unpickler that admits only plain containers and scalars and refuses every global, so a
hostile file cannot make the loader import or call anything (the usual
`pickle.load` would run whatever the file's __reduce__ names).

`Refer` indexes these files the way refer.REFER does (Refs, Anns, Imgs, Cats, Sents in
file order) for build_batches.py; `segmentation_mask` gives a referred object's mask as
the original build_batches did: pycocotools' frPyObjects + decode, then the union (max)
of the object's polygons.
"""

import io
import json
import os
import pickle
import warnings

import numpy as np

# (dataset, split_by) pairs published by the refer repository.
KNOWN_SPLITS = {
    'refcoco': ('unc', 'google'),
    'refcoco+': ('unc',),
    'refcocog': ('google', 'umd'),
    'refclef': ('unc', 'berkeley'),
}

_PLAIN_TYPES = (dict, list, tuple, str, bytes, int, float, bool, type(None))


class RefusedPickleError(pickle.UnpicklingError):
    """A pickle asked for something other than plain containers and scalars."""


class _PlainUnpickler(pickle.Unpickler):
    """Unpickler for data-only files: dict, list, tuple, str, bytes, int, float, bool, None.

    Those types have their own opcodes, so a plain data file never needs a global. Every
    way for a pickle to reach code (GLOBAL/STACK_GLOBAL/INST/OBJ and the copyreg
    extension codes) goes through find_class, which refuses; REDUCE, BUILD and NEWOBJ
    then have no callable to call. Persistent ids are refused as well.
    """

    def __init__(self, f, source):
        # Python 2 `str` objects are decoded as UTF-8 (ASCII in the published files).
        super().__init__(f, encoding='utf-8', errors='strict')
        self._source = source

    def find_class(self, module, name):
        raise RefusedPickleError(
            '%s: refusing to load global %s.%s; a refs pickle holds only dicts, lists, '
            'strings and numbers' % (self._source, module, name))

    def persistent_load(self, pid):
        raise RefusedPickleError('%s: refusing persistent id %r' % (self._source, pid))


def _check_plain(obj, source):
    """Walk obj iteratively and refuse any type outside _PLAIN_TYPES."""
    stack = [obj]
    while stack:
        x = stack.pop()
        if type(x) not in _PLAIN_TYPES:
            raise RefusedPickleError('%s: unexpected %s in pickle' % (source, type(x).__name__))
        if type(x) is dict:
            stack.extend(x.keys())
            stack.extend(x.values())
        elif type(x) in (list, tuple):
            stack.extend(x)


def load_plain_pickle(path_or_bytes, source=None):
    """Unpickle a data-only pickle (a path, or bytes) without running any code from it."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        source = source or '<bytes>'
        f = io.BytesIO(path_or_bytes)
    else:
        source = source or str(path_or_bytes)
        f = open(path_or_bytes, 'rb')
    with f:
        try:
            obj = _PlainUnpickler(f, source).load()
        except RefusedPickleError:
            raise
        except (pickle.UnpicklingError, EOFError, UnicodeDecodeError, ValueError) as e:
            raise ValueError('%s: not a readable refs pickle (%s: %s)'
                             % (source, type(e).__name__, e)) from None
    _check_plain(obj, source)
    return obj


_REF_KEYS = ('ref_id', 'ann_id', 'image_id', 'split', 'sentences')


class Refer:
    """Index of one refer dataset: refs({split_by}).p + instances.json.

    Attributes follow refer.REFER: refs (the pickle's list, in file order), Refs
    {ref_id: ref} (insertion order = file order, which is the order the original
    build_batches iterated), Anns {ann_id: ann}, Imgs {image_id: image},
    Cats {category_id: name}, Sents {sent_id: sentence}.
    """

    def __init__(self, data_root, dataset='refcoco', split_by='unc'):
        self.dataset = dataset
        self.split_by = split_by
        self.data_dir = os.path.join(data_root, dataset)
        self.ref_file = os.path.join(self.data_dir, 'refs(%s).p' % split_by)
        self.instances_file = os.path.join(self.data_dir, 'instances.json')
        for path in (self.ref_file, self.instances_file):
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    '%s not found: expected the refer files of %s (split by %s) under %s, '
                    'as published by github:lichengunc/refer (refs(%s).p and instances.json)'
                    % (path, dataset, split_by, self.data_dir, split_by))

        refs = load_plain_pickle(self.ref_file)
        if not isinstance(refs, list):
            raise ValueError('%s: expected a list of refs, got %s'
                             % (self.ref_file, type(refs).__name__))
        for i, ref in enumerate(refs):
            if not isinstance(ref, dict) or any(k not in ref for k in _REF_KEYS):
                raise ValueError('%s: ref #%d is not a dict with keys %s'
                                 % (self.ref_file, i, ', '.join(_REF_KEYS)))
        with open(self.instances_file, encoding='utf-8') as f:
            try:
                instances = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError('%s: not valid JSON (%s)' % (self.instances_file, e)) from None
        for key in ('images', 'annotations', 'categories'):
            if key not in instances:
                raise ValueError('%s: expected COCO-style keys images, annotations, '
                                 'categories; "%s" is missing' % (self.instances_file, key))

        self.refs = refs
        self.Anns = {ann['id']: ann for ann in instances['annotations']}
        self.Imgs = {img['id']: img for img in instances['images']}
        self.Cats = {cat['id']: cat['name'] for cat in instances['categories']}
        self.Refs, self.Sents = {}, {}
        for ref in refs:
            if ref['ann_id'] not in self.Anns:
                raise ValueError('%s: ref %s points to annotation %s, which %s does not hold'
                                 % (self.ref_file, ref['ref_id'], ref['ann_id'],
                                    self.instances_file))
            self.Refs[ref['ref_id']] = ref
            for sent in ref['sentences']:
                self.Sents[sent['sent_id']] = sent

    def splits(self):
        """The split names present, in order of first appearance."""
        return list(dict.fromkeys(ref['split'] for ref in self.Refs.values()))

    def refs_in_split(self, split):
        """Refs of split in the original build_batches order (refer.Refs iteration order)."""
        return [ref for ref in self.Refs.values() if ref['split'] == split]

    def segmentation(self, ref):
        return self.Anns[ref['ann_id']]['segmentation']


def decode_rle(rle):
    """pycocotools' decode, without its numpy-2 DeprecationWarning on every call."""
    from pycocotools import mask as cocomask

    with warnings.catch_warnings():
        # pycocotools 2.0.x passes copy=False to np.array: harmless, but noisy under numpy 2.
        warnings.filterwarnings('ignore', category=DeprecationWarning,
                                message='__array__ implementation')
        return cocomask.decode(rle)


def segmentation_mask(segmentation, height, width):
    """uint8 [height, width] mask of a COCO segmentation: the union of its parts.

    Polygons (a list of [x0, y0, ...]) go through frPyObjects + decode + max over the
    parts, as the original build_batches. RLE (uncompressed counts list or compressed
    string), which the original did not meet in RefCOCO, is decoded the same way.
    """
    from pycocotools import mask as cocomask  # imported here: only mask building needs it

    if isinstance(segmentation, list):
        if not segmentation:
            raise ValueError('empty polygon list')
        rle = cocomask.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation, dict) and 'counts' in segmentation:
        if isinstance(segmentation['counts'], list):
            rle = cocomask.frPyObjects(segmentation, height, width)
        else:
            rle = dict(segmentation)
            if isinstance(rle['counts'], str):
                rle['counts'] = rle['counts'].encode('ascii')
        if list(rle['size']) != [height, width]:
            raise ValueError('RLE of size %s for an image of %dx%d'
                             % (rle['size'], height, width))
    else:
        raise ValueError('unknown segmentation %r: expected polygons or RLE'
                         % (type(segmentation).__name__,))
    m = decode_rle(rle)  # [H, W, parts] for a list, [H, W] for one RLE
    if m.ndim == 3:
        m = np.max(m, axis=2)
    return m
