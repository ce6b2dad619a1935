"""ReferIt (ReferItGame on the IAPR TC-12 images), in the layout of the original's data/.

Release files:
  {query_dir}/referit_query_{split}.json   {"<image id>_<n>": [sentence, ...], ...}
  {referit_root}/images/<image id>.jpg
  {referit_root}/mask/<image id>_<n>.mat   segimg_t; the object is where segimg_t == 0
Splits: trainval, test.

One entry per query key, in the json's key order, with its sentences in order (the original's
numbering under Python 3). The synthetic image dataset (tools/synthetic.py) writes this layout
too (DIR/referit_query_*.json, DIR/referit/).
"""

import functools
import os

from util.datasets.batches import ImageEntry, read_image
from util.io import load_json, load_referit_gt_mask

NAME = 'referit'


def query_file(query_dir, split):
    return os.path.join(query_dir, 'referit_query_%s.json' % split)


def load(image, mask_path, what):
    """(im uint8 [h, w(, 3)], mask bool [h, w]) of one query entry."""
    im = read_image(image, what)
    try:
        mask = load_referit_gt_mask(mask_path)
        if mask.shape != im.shape[:2]:
            raise ValueError('mask %s does not match image %s of shape %s'
                             % (mask.shape, image, im.shape))
    except (ValueError, TypeError) as e:
        raise ValueError('%s: bad mask (%s)' % (what, e)) from None
    return im, mask


def entries(split, query_dir, referit_root):
    """The ImageEntry of each key of referit_query_{split}.json."""
    path = query_file(query_dir, split)
    if not os.path.isfile(path):
        raise FileNotFoundError('%s not found: -t %s needs referit_query_%s.json in --query_dir'
                                % (path, split, split))
    query_dict = load_json(path)
    if not isinstance(query_dict, dict):
        raise ValueError('%s: expected {"<image id>_<n>": [sentence, ...]}' % path)
    out = []
    for name, sents in query_dict.items():
        if not isinstance(sents, list) or not all(isinstance(s, str) for s in sents):
            raise ValueError('%s: entry %r must be a list of sentences' % (path, name))
        what = '%s entry %s' % (path, name)
        image = os.path.join(referit_root, 'images', name.split('_', 1)[0] + '.jpg')
        mask = os.path.join(referit_root, 'mask', name + '.mat')
        out.append(ImageEntry(sents=sents, what=what, image_id=os.path.basename(image),
                              load=functools.partial(load, image, mask, what)))
    return out
