"""Trivial baselines on the synthetic dataset, printed next to the model's test results.

    python synthetic_baselines.py --synthetic data/synthetic -t val \
        --results ckpts/synthetic/unc_val_iter_1500_results.json

Baselines, scored exactly as test mode scores the model (overall IoU = cum_I / cum_U at each
image's own resolution, mean IoU, precision@0.5):
- whole image: every pixel is the referred object;
- union of all objects: every annotated object of the image, i.e. a perfect detector of the
  shapes that ignores the sentence (a model must read the expression to beat it).
Writes the table also as JSON (--out).
"""

import argparse
import json
import os
import sys

import numpy as np

from util.cli import HelpFormatter
from util.eval_tools import SegEvaluator
from util.io import write_json
from util.refer import Refer, segmentation_mask


def baseline_scores(refer_root, split, dataset='refcoco', split_by='unc'):
    """{'whole image': SegEvaluator, 'union of all objects': SegEvaluator} over the split's
    expressions (each sentence of a ref counts once, as in the batches)."""
    refer = Refer(refer_root, dataset, split_by)
    anns_by_image = {}
    for ann in refer.Anns.values():
        anns_by_image.setdefault(ann['image_id'], []).append(ann)
    scores = {'whole image': SegEvaluator(), 'union of all objects': SegEvaluator()}
    refs = refer.refs_in_split(split)
    if not refs:
        raise ValueError('no refs in split %r of %s' % (split, refer.ref_file))
    for ref in refs:
        image = refer.Imgs[ref['image_id']]
        h, w = image['height'], image['width']
        gt = segmentation_mask(refer.Anns[ref['ann_id']]['segmentation'], h, w) > 0
        union = np.zeros((h, w), dtype=bool)
        for ann in anns_by_image[ref['image_id']]:
            union |= segmentation_mask(ann['segmentation'], h, w) > 0
        for _ in ref['sentences']:
            scores['whole image'].add_masks(np.ones((h, w), dtype=bool), gt)
            scores['union of all objects'].add_masks(union, gt)
    return scores


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=HelpFormatter)
    p.add_argument('--synthetic', default='data/synthetic',
                   help='folder written by make_synthetic_dataset.py')
    p.add_argument('-t', '--split', default='val', help='split of refs(unc).p to score')
    p.add_argument('--results', action='append', default=[],
                   help='results JSON of trainval_model.py -m test (repeatable)')
    p.add_argument('--out', default=None, help='write the table as JSON here')
    args = p.parse_args(argv)

    rows = []
    for name, ev in baseline_scores(os.path.join(args.synthetic, 'refer'), args.split).items():
        rows.append((name, ev.to_dict()))
    for path in args.results:
        if not os.path.isfile(path):
            sys.exit('error: --results %s: no such file' % path)
        with open(path) as f:
            res = json.load(f)
        for key in ('without_DenseCRF', 'with_DenseCRF'):
            if key in res:
                rows.append(('CMPC iter %d (%s)' % (res['iter'], key.replace('_', ' ')), res[key]))

    print('\n%-36s %12s %9s %14s' % ('synthetic %s' % args.split, 'overall IoU', 'mean IoU',
                                     'precision@0.5'))
    for name, r in rows:
        print('%-36s %12.4f %9.4f %14.4f' % (name, r['overall_iou'], r['mean_iou'],
                                             r['precision@0.5']))
    if args.out:
        write_json(args.out, {name: r for name, r in rows})
    return dict(rows)


if __name__ == '__main__':
    main()
