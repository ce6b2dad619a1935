"""Trivial baselines on the synthetic dataset, printed next to the model's test results.

    python -m tools.synthetic_baselines --synthetic data/synthetic -t val \
        --results ckpts/synthetic/unc_val_iter_1500_results.json
    python -m tools.synthetic_baselines --video data/synthetic_video \
        --results ckpts/synthetic_video/a2d_sent_new_test_iter_2000_results.json \
        --results ckpts/synthetic_video_image/a2d_sent_new_test_iter_2000_results.json

With --video (the synthetic A2D Sentences of tools/synthetic_video.py, test split) the columns
are the query categories: 'appearance' queries have no twin (kind and colour say which object),
'changes' and 'motion' queries have a twin of the same kind and colour, pixel for pixel the
same in the annotated frame, that only the action words tell apart (a colour change in the
other frames, a motion). The baselines, of the annotated frame: the whole frame, the union of
all objects, 'twin at random' (one of the query's look-alikes: the expected score of a model
that reads kind and colour and guesses between twins) and 'both twins' (all its look-alikes).

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
from util.eval_tools import SegEvaluator, compute_mask_IU
from util.io import load_a2d_masks, write_json
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


def video_samples(video_dir):
    """The test samples of the synthetic video dataset, in build_A2D_batches.py's order."""
    with open(os.path.join(video_dir, 'synthetic_video.json')) as f:
        return json.load(f)['test_samples']


CATEGORIES = ('all', 'appearance', 'changes', 'motion')


def video_baseline_masks(video_dir, sample):
    """{'ground truth', 'whole frame', 'union of all objects', 'twin at random', 'both twins'}
    [h, w] bool of one test sample's annotated frame. The look-alikes are the objects of the query's kind and
    colour (the object alone when it has no twin); 'twin at random' is the first of them (the
    lowest instance id): both twins of a pair are queried, so it is right for one and wrong
    for the other, which is the expected score of guessing."""
    ids, masks = load_a2d_masks(os.path.join(
        video_dir, 'A2D-Sentences', 'a2d_annotation_with_instances', sample['video'],
        '%05d.h5' % sample['frame']))
    masks = masks > 0
    ids = list(ids)
    lookalikes = sample.get('lookalikes', [sample['instance']])
    return {'ground truth': masks[ids.index(sample['instance'])],
            'whole frame': np.ones(masks.shape[1:], bool),
            'union of all objects': masks.any(axis=0),
            'twin at random': masks[ids.index(min(lookalikes))],
            'both twins': masks[[ids.index(i) for i in lookalikes]].any(axis=0)}


def by_category(samples, records):
    """{'all', 'appearance', 'changes', 'motion': SegEvaluator} of per-sample (I, U) records,
    in the samples' order."""
    if len(records) != len(samples):
        raise ValueError('%d results for %d test samples' % (len(records), len(samples)))
    scores = {k: SegEvaluator() for k in CATEGORIES}
    for sample, (I, U) in zip(samples, records):
        scores['all'].add(I, U)
        scores[sample['category']].add(I, U)
    return scores


def video_table(args):
    samples = video_samples(args.video)
    baselines = ('whole frame', 'union of all objects', 'twin at random', 'both twins')
    records = {name: [] for name in baselines}
    for s in samples:
        masks = video_baseline_masks(args.video, s)
        for name in baselines:
            records[name].append(compute_mask_IU(masks[name], masks['ground truth']))
    rows = [(name, by_category(samples, records[name])) for name in baselines]
    for path in args.results:
        if not os.path.isfile(path):
            sys.exit('error: --results %s: no such file' % path)
        with open(path) as f:
            res = json.load(f)
        model = 'video CMPC' if res.get('model', 'image') == 'video' else 'image CMPC'
        got = [(r['I'], r['U']) for r in res['per_sample']]
        rows.append(('%s iter %s' % (model, res['iter']), by_category(samples, got)))
    print('\n%-28s' % 'synthetic video test' + ''.join('%20s' % c for c in CATEGORIES))
    print('%-28s' % '(overall IoU / P@0.5)' + ''.join(
        '%20s' % ('%d samples' % ev.n) for ev in rows[0][1].values()))
    for name, scores in rows:
        print('%-28s' % name + ''.join(
            '%13.4f /%6.3f' % (ev.overall_iou(), ev.precision()[0.5]) if ev.n else '%20s' % '-'
            for ev in scores.values()))
    table = {name: {k: ev.to_dict() for k, ev in scores.items() if ev.n} for name, scores in rows}
    if args.out:
        write_json(args.out, table)
    return table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=HelpFormatter)
    p.add_argument('--synthetic', default='data/synthetic',
                   help='folder written by tools/make_synthetic_dataset.py')
    p.add_argument('-t', '--split', default='val', help='split of refs(unc).p to score')
    p.add_argument('--results', action='append', default=[],
                   help='results JSON of trainval_model.py -m test (repeatable)')
    p.add_argument('--out', default=None, help='write the table as JSON here')
    p.add_argument('--video', default=None, metavar='DIR',
                   help='score the synthetic video dataset in DIR (tools/synthetic_video.py) '
                        'instead, by query category')
    args = p.parse_args(argv)
    if args.video:
        return video_table(args)

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
