"""Train and test the video CMPC (CMPC_video_mm_tgraph_allvec) on A2D Sentences, with the
original's flags; test on J-HMDB Sentences with the A2D model.

The original's runs (CMPC_video/train_a2d_new.sh; batches from build_A2D_batches.py in
./a2d_sent_new/, GloVe in data/Gref_emb.npy, backbone in data/weights/deeplab_resnet_init.ckpt):

    python -u CMPC_video/trainval_video.py -m train -d a2d_sent_new -t train \
        -n CMPC_video_mm_tgraph_allvec -i 400000 -s 20000 -st 380000 -lrd 400000 -emb \
        -f ckpts/a2d_sent_new/deeplab_cmpc_video_mm_tgraph_allvec
    python -u CMPC_video/trainval_video.py -m test -d a2d_sent_new -t test \
        -n CMPC_video_mm_tgraph_allvec -i 360000 -c -emb \
        -f ckpts/a2d_sent_new/deeplab_cmpc_video_mm_tgraph_allvec
    python -u CMPC_video/trainval_video.py -m test -d jhmdb_sent -t test -i 360000 -c \
        --checkpoint-dataset a2d_sent_new -f ckpts/a2d_sent_new/deeplab_cmpc_video_mm_tgraph_allvec

Everything else is trainval_model.py's machinery (util/pipeline/runner.py): snapshots with their
settings beside them, exact resume, logs and TensorBoard, validation, several GPUs, the fast
paths, progress bars and results as JSON. Test prints precision at 0.5, 0.55, ..., 0.95, the
overall and mean IoU and mAP (the mean of the ten precisions), with DenseCRF too with -c, and
writes them with each sample's I and U as JSON; -v writes one set of PNGs per sample.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from util.pipeline.flags import build_parser, check_args  # noqa: E402
from util.pipeline.models import VIDEO_MODEL  # noqa: E402
from util.pipeline.runner import run_mode  # noqa: E402


def parse_args(argv=None):
    p = build_parser('clip', 'Train (-m train) or test (-m test) the video CMPC on batches built '
                     'by CMPC_video/build_A2D_batches.py.', ('train', 'test'), 'a2d_sent_new',
                     VIDEO_MODEL)
    p.add_argument('-finetune', '--finetune', dest='conv5', default=False, action='store_true',
                   help='train: also fine-tune the res3, res4 and res5 conv weights of the backbone')
    p.add_argument('--checkpoint-dataset', default=None,
                   help='test: the dataset name in the snapshot file names, when it is not -d '
                        '(e.g. -d jhmdb_sent with the a2d_sent_new model)')
    args = p.parse_args(argv)
    if args.tf_data:
        p.error('--tf-data reads image batches only; the video model reads its clips with '
                'DataReader')
    check_args(p, args)
    return args


def main(argv=None):
    run_mode(parse_args(argv), 'clip')


if __name__ == '__main__':
    main()
