"""The RefCOCO family: unc (RefCOCO), unc+ (RefCOCO+), Gref (RefCOCOg, Google split) and Gref_umd
(RefCOCOg, UMD split), from the refer release (github:lichengunc/refer) and COCO train2014.

Release files:
  {refer_root}/{refcoco,refcoco+,refcocog}/refs({unc,google,umd}).p and instances.json
  {coco_root}/train2014/COCO_train2014_{image_id:012d}.jpg
Splits: train/val/testA/testB (unc, unc+), train/val (Gref), train/val/test (Gref_umd).

One entry per ref of the split, in refer.Refs order (the refs pickle's file order), with the
ref's sentences in order: the numbering of the original build_batches.py. The object's mask is
the union of its COCO polygons (util/refer.py).

The synthetic image dataset (tools/synthetic.py, python -m tools.make_synthetic_dataset) is
written in this release's format (DIR/refer, DIR/coco/images), so this module reads it too.
"""

import functools
import os

from util.datasets.batches import ImageEntry, read_image
from util.refer import Refer, segmentation_mask

# dataset name -> (refer dataset, split_by)
DATASETS = {
    'unc': ('refcoco', 'unc'),
    'unc+': ('refcoco+', 'unc'),
    'Gref': ('refcocog', 'google'),
    'Gref_umd': ('refcocog', 'umd'),
}
IM_TYPE = 'train2014'


def image_path(coco_root, image_id):
    return os.path.join(coco_root, IM_TYPE, 'COCO_%s_%012d.jpg' % (IM_TYPE, image_id))


def load(image, seg, what):
    """(im uint8 [h, w(, 3)], mask uint8 [h, w]) of one ref."""
    im = read_image(image, what)
    try:
        mask = segmentation_mask(seg, im.shape[0], im.shape[1])
    except (ValueError, TypeError) as e:
        raise ValueError('%s: bad mask (%s)' % (what, e)) from None
    return im, mask


def entries(name, split, refer_root, coco_root):
    """The ImageEntry of each ref of `split` of dataset `name` (a key of DATASETS)."""
    dataset, split_by = DATASETS[name]
    refer = Refer(refer_root, dataset=dataset, split_by=split_by)
    refs = refer.refs_in_split(split)
    if not refs:
        raise ValueError('-t %s: %s holds no ref of that split; splits present: %s'
                         % (split, refer.ref_file, ', '.join(refer.splits())))
    out = []
    for ref in refs:
        what = '%s ref %s (ann %s)' % (refer.ref_file, ref['ref_id'], ref['ann_id'])
        out.append(ImageEntry(
            sents=[s['sent'] for s in ref['sentences']], what=what, image_id=ref['image_id'],
            load=functools.partial(load, image_path(coco_root, ref['image_id']),
                                   refer.segmentation(ref), what)))
    return out
