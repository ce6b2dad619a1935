"""Draws a training run's JSON log as a PNG: the loss against iterations and, where the run
validated (trainval_model.py --val-split), overall and mean IoU.

    python -m tools.plot_training ckpts/synthetic                 # writes ckpts/synthetic/training.png
    python -m tools.plot_training ckpts/synthetic/train_log.jsonl --out curve.png
"""

import argparse
import os
import sys

from util.pipeline import run_log
from util.cli import HelpFormatter


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=HelpFormatter)
    p.add_argument('log', help='a run folder (-f of trainval_model.py) or its train_log.jsonl')
    p.add_argument('--out', default=None,
                   help='PNG to write (default: training.png beside the log)')
    p.add_argument('--title', default=None, help='figure title (default: the run folder)')
    args = p.parse_args(argv)
    path = os.path.join(args.log, 'train_log.jsonl') if os.path.isdir(args.log) else args.log
    if not os.path.isfile(path):
        sys.exit('error: %s: no such file (expected a run folder holding train_log.jsonl, or '
                 'the log itself)' % path)
    rows = run_log.read_rows(path)
    if not any('cls_loss' in r for r in rows):
        sys.exit('error: %s: no training rows (is it a train_log.jsonl of trainval_model.py?)'
                 % path)
    out = args.out or os.path.join(os.path.dirname(path), 'training.png')
    run_log.plot(rows, out, title=args.title or os.path.dirname(os.path.abspath(path)))
    print('Wrote %s (%d training rows, %d validations)'
          % (out, sum('cls_loss' in r for r in rows), sum('overall_iou' in r for r in rows)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
