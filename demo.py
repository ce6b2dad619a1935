"""A local web page for CMPC: drop an image, type sentences, see the masks (util/inference/demo.py).

    python demo.py --checkpoint ckpts/synthetic            # the main job's model (newest snapshot)
    python demo.py --saved-model exported/cmpc             # a SavedModel of `-m export`
    python demo.py --checkpoint ckpts/synthetic_video/video  # the video model: a video in
    # then open http://127.0.0.1:7860

The page serves on 127.0.0.1 only (--host 0.0.0.0 to open it to your network); it never makes a
public share link. The model is loaded once, before the server starts. Its masks are predict
mode's (`trainval_model.py -m predict`), pixel for pixel.
"""

import argparse
import os
import sys

from util.cli import HelpFormatter, InputError
from util.inference.demo import DEFAULT_MAX_PIXELS, MAX_SENTENCES


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=HelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--checkpoint', type=str,
                     help='a checkpoint of the image or the video model: a prefix '
                          '(ckpts/unc/unc_iter_700000.tfmodel), one of its files, or a folder '
                          '(its newest snapshot); with the video model the page takes a video')
    src.add_argument('--saved-model', type=str,
                     help='a SavedModel folder written by `trainval_model.py -m export` (no '
                          'c3/c4/c5 maps and no DenseCRF: it exports neither)')
    p.add_argument('--vocab', type=str, default=None,
                   help='--checkpoint: the vocabulary it was trained with, if its .json does not '
                        'record one')
    p.add_argument('--num-steps', type=int, default=None,
                   help="--checkpoint: T, the words per sentence, for a checkpoint of the "
                        "original code (which has no .json); default the original's 20")
    p.add_argument('-n', '--model-name', type=str, default=None,
                   help='--checkpoint: the model module of a checkpoint of the original code '
                        '(which has no .json; util/pipeline/models.py); default CMPC_model or '
                        'the video model, as its word parser says. A checkpoint of this port '
                        'records its own')
    p.add_argument('--fold', action='store_true',
                   help='--checkpoint: fold the c3 lateral conv into MUTAN\'s visual heads at '
                        'load time (as trainval_model.py --fold; the same sums up to rounding, '
                        'fewer of them at the paper size)')
    p.add_argument('--host', type=str, default='127.0.0.1',
                   help='address to serve on; 0.0.0.0 opens the page to other machines')
    p.add_argument('--port', type=int, default=7860, help='port to serve on')
    p.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_PIXELS,
                   help='larger images (video frames) are refused with a message in the page')
    p.add_argument('--max-upload-mb', type=int, default=50,
                   help='larger uploads are refused by the server')
    p.add_argument('--max-sentences', type=int, default=MAX_SENTENCES,
                   help='sentences per request (the page has this many result panels)')
    p.add_argument('--synthetic-examples', type=str, default='data/synthetic',
                   help='the synthetic dataset of tools/make_synthetic_dataset.py whose val images '
                        'and expressions are offered as examples (skipped if absent)')
    p.add_argument('--synthetic-video-examples', type=str, default='data/synthetic_video',
                   help='with the video model: the synthetic A2D Sentences of '
                        'tools/make_synthetic_dataset.py --video whose test videos and queries are '
                        'offered as examples (skipped if absent)')
    args = p.parse_args(argv)
    if not 0 < args.port < 65536:
        p.error('--port: expected 1..65535, got %d' % args.port)
    for flag in ('max_pixels', 'max_upload_mb', 'max_sentences'):
        if getattr(args, flag) < 1:
            p.error('--%s: expected a positive number, got %d'
                    % (flag.replace('_', '-'), getattr(args, flag)))
    if args.saved_model and (args.vocab or args.num_steps or args.model_name or args.fold):
        p.error('--vocab, --num-steps, -n and --fold go with --checkpoint; a SavedModel holds '
                'its vocabulary and its weights and records its model')
    return args


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    from util.inference.demo import Demo, skimage_examples, synthetic_examples, synthetic_video_examples
    try:
        if args.checkpoint:
            from util.inference.predict import Predictor
            predictor = Predictor(args.checkpoint, args.vocab, args.num_steps,
                                  kinds=('image', 'video'), model_name=args.model_name,
                                  fast_paths={'fold': args.fold})
        else:
            from util.inference.export import SavedModelPredictor
            predictor = SavedModelPredictor(args.saved_model)
        predictor.load()
    except InputError as e:
        sys.exit('error: %s' % e)
    if predictor.video:
        examples = synthetic_video_examples(args.synthetic_video_examples)
    else:
        examples = synthetic_examples(args.synthetic_examples) + skimage_examples()
    demo = Demo(predictor, max_pixels=args.max_pixels, max_sentences=args.max_sentences,
                examples=examples)
    demo.serve(args.host, args.port, args.max_upload_mb)


if __name__ == '__main__':
    main()
