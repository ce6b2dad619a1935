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

from util.pipeline.flags import (add_inference_flags, build_parser, check_args,
                                  check_inference_args, checkpoint_arg)
from util.pipeline.models import IMAGE_MODEL, fast_paths_of
from util.pipeline.runner import run_mode


def parse_args(argv=None):
    p = build_parser('image', 'Train (-m train) or test (-m test) CMPC on batches built by '
                     'build_batches.py, predict on your own images and sentences (-m predict), '
                     'or export a SavedModel (-m export).',
                     ('train', 'test', 'predict', 'export'), 'referit', IMAGE_MODEL)
    p.add_argument('-conv5', '--conv5', default=False, action='store_true',
                   help='train: also fine-tune the res3, res4 and res5 conv weights of the backbone')
    add_inference_flags(p, 'image')
    args = p.parse_args(argv)
    check_args(p, args)
    check_inference_args(p, args)
    return args


def predict(args):
    from util.inference.predict import read_sentences, run_predict
    checkpoint, flag = checkpoint_arg(args)
    sentences = read_sentences(args.sentence, args.sentences_file)
    return run_predict(checkpoint, args.image, sentences, args.out_dir, vocab=args.vocab,
                       num_steps=args.num_steps, dcrf=args.dcrf, explain=args.explain,
                       checkpoint_flag=flag, model_name=args.model_name,
                       fast_paths=fast_paths_of(args))


def main(argv=None):
    run_mode(parse_args(argv), 'image', predict=predict)


if __name__ == '__main__':
    main()
