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

Your own videos (util/inference/predict_video.py lists what is written: a mask per frame, an
overlay video, JSON), and a SavedModel that takes 16 frames and a sentence
(util/inference/export.py):

    python CMPC_video/trainval_video.py -m predict --checkpoint ckpts/a2d_sent_new/cmpc_video \
        --video clip.mp4 --sentence "the man jumping" --sentence "the dog running" \
        --out-dir predictions [--frames 1:200:2] [-c]
    python CMPC_video/trainval_video.py -m export --checkpoint ckpts/a2d_sent_new/cmpc_video \
        --export-dir exported/cmpc_video

Ref-YouTube-VOS, Ref-DAVIS17 and MeViS are tested on whole videos from their releases (every
frame of every expression; J, F and J&F; the server's submission zip;
util/pipeline/evaluate_video.py):

    python CMPC_video/trainval_video.py -m test -d ref_youtube_vos -t valid \
        --release-root data/ref-youtube-vos -f ckpts/ref_youtube_vos -i 100000

Everything else is trainval_model.py's machinery (util/pipeline/runner.py): snapshots with their
settings beside them, exact resume, logs and TensorBoard, validation, several GPUs, the fast
paths, progress bars and results as JSON. Test prints precision at 0.5, 0.55, ..., 0.95, the
overall and mean IoU and mAP (the mean of the ten precisions), with DenseCRF too with -c, and
writes them with each sample's I and U as JSON; -v writes one set of PNGs per sample.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from util.pipeline.evaluate_video import RELEASES, run_test_videos  # noqa: E402
from util.pipeline.flags import (add_inference_flags, add_whole_video_flags,  # noqa: E402
                                 build_parser, check_args, check_inference_args,
                                 check_whole_video_args, checkpoint_arg)
from util.pipeline.models import VIDEO_MODEL, fast_paths_of  # noqa: E402
from util.pipeline.runner import run_mode  # noqa: E402


def parse_args(argv=None):
    p = build_parser('clip', 'Train (-m train) or test (-m test) the video CMPC on batches built '
                     'by CMPC_video/build_A2D_batches.py, predict every frame of your own video '
                     '(-m predict), or export a SavedModel (-m export).',
                     ('train', 'test', 'predict', 'export'), 'a2d_sent_new', VIDEO_MODEL)
    p.add_argument('-finetune', '--finetune', dest='conv5', default=False, action='store_true',
                   help='train: also fine-tune the res3, res4 and res5 conv weights of the backbone')
    p.add_argument('--checkpoint-dataset', default=None,
                   help='test: the dataset name in the snapshot file names, when it is not -d '
                        '(e.g. -d jhmdb_sent with the a2d_sent_new model)')
    add_inference_flags(p, 'clip')
    add_whole_video_flags(p)
    args = p.parse_args(argv)
    check_whole_video_args(p, args)
    if args.tf_data:
        p.error('--tf-data reads image batches only; the video model reads its clips with '
                'DataReader')
    check_args(p, args)
    check_inference_args(p, args)
    return args


def predict(args):
    from util.inference.predict import read_sentences
    from util.inference.predict_video import run_predict_video
    checkpoint, flag = checkpoint_arg(args)
    sentences = read_sentences(args.sentence, args.sentences_file)
    return run_predict_video(checkpoint, args.video, sentences, args.out_dir, frames=args.frames,
                             fps=args.fps, vocab=args.vocab, num_steps=args.num_steps,
                             dcrf=args.dcrf, checkpoint_flag=flag, model_name=args.model_name,
                             fast_paths=fast_paths_of(args))


def main(argv=None):
    args = parse_args(argv)
    whole_videos = {'test': run_test_videos} if args.dataset in RELEASES else {}
    return run_mode(args, 'clip', predict=predict, **whole_videos)


if __name__ == '__main__':
    main()
