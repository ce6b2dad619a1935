"""Train and test CMPC, with the original's flags.

The paper's runs (UNC; batches from build_batches.py under ./unc/, GloVe in data/Gref_emb.npy,
backbone in data/weights/deeplab_resnet_init.ckpt):

    python -u trainval_model.py -m train -d unc -t train -n CMPC_model -emb -f ckpts/unc/cmpc_model
    python -u trainval_model.py -m test -d unc -t val -n CMPC_model -i 700000 -c -emb \
        -f ckpts/unc/cmpc_model

A small model on a CPU (what main_job.sh runs: the synthetic dataset of
tools/make_synthetic_dataset.py --train_images 400, batches built by build_batches.py --synthetic
data/synthetic --input_size 96):

    python trainval_model.py -m train -d unc -t train -f ckpts/synthetic --data-root data/synthetic \
        --vocab data/synthetic/vocabulary_synthetic.txt --emb-file data/synthetic/synthetic_emb.npy \
        -emb --preset synthetic --random-backbone -lr 0.003 --lr-decay-step 4000 -bs 4 -i 4000 \
        -s 1000 --seed 0
    python trainval_model.py -m test -d unc -t val -f ckpts/synthetic --data-root data/synthetic \
        -i 4000 -c -v

Several GPUs (MirroredStrategy; -bs is the global batch), several machines (TF_CONFIG on each,
MultiWorkerMirroredStrategy), or 2 logical CPU devices (util/pipeline/distribute.py):

    python -u trainval_model.py -m train -d unc -t train -emb -f ckpts/unc -g 0,1,2,3 -bs 32
    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' \
        python -u trainval_model.py -m train -d unc -t train -emb -f /shared/ckpts/unc -bs 64
    python trainval_model.py -m train ... -bs 4 --cpu-replicas 2

Your own images and sentences (util/inference/predict.py lists what is written), and a SavedModel that
does the whole pipeline in the graph (util/inference/export.py):

    python trainval_model.py -m predict --checkpoint ckpts/synthetic/unc_iter_4000.tfmodel \
        --image photo.jpg --sentence "the red circle" --sentence "big star" --out-dir predictions
    python trainval_model.py -m export --checkpoint ckpts/synthetic/unc_iter_4000.tfmodel \
        --export-dir exported/cmpc

A model variant is a module of its own on the Python path (util/pipeline/models.py says what
it defines: LSTM_model, Settings, INPUT, WORD_TYPES), named with -n; its snapshots record it:

    PYTHONPATH=my_models python trainval_model.py -m train -n my_cmpc -d unc -t train -f ckpts/my
    PYTHONPATH=my_models python trainval_model.py -m test -d unc -t val -f ckpts/my -i 700000

Train writes `{-f}/{dataset}_iter_{N}.tfmodel` (a TF1 checkpoint: .index + .data, readable by the
original code) with its settings beside it (.json), keeps the newest 4, logs every 100 iterations
and resumes from the newest snapshot in `-f` (with optimizer state and step) unless --no-resume.
Test restores `{-f}/{dataset}_iter_{-i}.tfmodel` (its .json gives the model module and settings,
so neither -n nor a size flag needs repeating; a checkpoint of the original code, without .json,
is read with -n's module and the sizes of its tensors), prints precision@0.5..0.9, overall IoU
and mean IoU as the original did, with DenseCRF too with -c, and writes the figures as JSON.
"""

import argparse
import sys

from util.cli import InputError
from util.pipeline.flags import build_parser, check_args
from util.pipeline.models import IMAGE_MODEL
from util.pipeline.runner import run_mode
from util.pipeline.snapshots import snapshot_prefix


def parse_args(argv=None):
    p = build_parser('image', 'Train (-m train) or test (-m test) CMPC on batches built by '
                     'build_batches.py, predict on your own images and sentences (-m predict), '
                     'or export a SavedModel (-m export).',
                     ('train', 'test', 'predict', 'export'), 'referit', IMAGE_MODEL)
    p.add_argument('-conv5', '--conv5', default=False, action='store_true',
                   help='train: also fine-tune the res3, res4 and res5 conv weights of the backbone')

    q = p.add_argument_group('predict and export (added by the port)')
    q.add_argument('--checkpoint', type=str, default=None,
                   help='predict, export: checkpoint prefix (e.g. ckpts/unc/unc_iter_700000.tfmodel'
                        '), one of its files, or a folder (its newest snapshot); instead of -f/-i')
    q.add_argument('--image', type=str, action='append', default=None,
                   help='predict: image file, any size and mode (repeatable)')
    q.add_argument('--sentence', type=str, action='append', default=None,
                   help='predict: referring expression (repeatable; each is run on each image)')
    q.add_argument('--sentences-file', type=str, default=None,
                   help='predict: text file with one expression per line (blank lines skipped)')
    q.add_argument('--out-dir', type=str, default='predictions',
                   help='predict: output folder ({out-dir}/{image}/{k}_{sentence}/ per prediction)')
    q.add_argument('--explain', default=True, action=argparse.BooleanOptionalAction,
                   help='predict: draw explain.png (word types, c3/c4/c5 maps, mask)')
    q.add_argument('--export-dir', type=str, default=None,
                   help='export: folder of the SavedModel (replaced once the new one is complete)')

    args = p.parse_args(argv)
    check_args(p, args)
    if args.mode not in ('train', 'test'):
        if args.checkpoint is None and args.folder is None:
            p.error('-m %s needs the checkpoint: --checkpoint PATH, or -f FOLDER with -d and -i'
                    % args.mode)
    if args.mode == 'predict' and not args.image:
        p.error('-m predict needs --image PATH')
    if args.mode == 'predict' and not (args.sentence or args.sentences_file):
        p.error('-m predict needs --sentence TEXT or --sentences-file PATH')
    if args.mode == 'export' and not args.export_dir:
        p.error('-m export needs --export-dir PATH')
    return args


def checkpoint_arg(args):
    """(checkpoint path, the flags that named it) for predict and export."""
    if args.checkpoint is not None:
        return args.checkpoint, '--checkpoint'
    return snapshot_prefix(args.folder, args.dataset, args.iters), '-f/-d/-i'


def predict(args):
    from util.inference.predict import read_sentences, run_predict
    checkpoint, flag = checkpoint_arg(args)
    try:
        sentences = read_sentences(args.sentence, args.sentences_file)
        return run_predict(checkpoint, args.image, sentences, args.out_dir, vocab=args.vocab,
                           num_steps=args.num_steps, dcrf=args.dcrf, explain=args.explain,
                           checkpoint_flag=flag, model_name=args.model_name)
    except InputError as e:
        sys.exit('error: %s' % e)


def export(args):
    from util.inference.export import run_export
    checkpoint, flag = checkpoint_arg(args)
    try:
        return run_export(checkpoint, args.export_dir, vocab=args.vocab,
                          num_steps=args.num_steps, checkpoint_flag=flag,
                          model_name=args.model_name)
    except InputError as e:
        sys.exit('error: %s' % e)


def main(argv=None):
    run_mode(parse_args(argv), 'image', predict=predict, export=export)


if __name__ == '__main__':
    main()
