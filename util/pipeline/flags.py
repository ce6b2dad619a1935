"""The flags of trainval_model.py and CMPC_video/trainval_video.py: the original's (with long
aliases) and the port's, each with help=, checked before any work starts (and before
TensorFlow loads). Each script adds its own (-conv5 / -finetune, predict's, ...).

    p = build_parser('image', 'Train or test CMPC.', ('train', 'test'), 'referit', 'CMPC_model')
    args = p.parse_args(); check_args(p, args)
"""

import argparse

from util.cli import HelpFormatter, InputError
from util.pipeline.models import module_name
from util.pipeline.snapshots import snapshot_prefix
from util.pipeline.settings import PRESETS, TrainSettings

ITERS_PER_LOG = 100
DEFAULT_BACKBONE = './data/weights/deeplab_resnet_init.ckpt'


def iteration(text):
    """-i: a number of iterations, or 'best'."""
    if text == 'best':
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an integer or 'best', got %r" % text) from None


# By the model's INPUT (util/pipeline/models.py).
DATASETS = {'image': "'unc', 'unc+', 'Gref', 'Gref_umd', 'referit'",
            'clip': "'a2d_sent_new' (A2D Sentences), 'jhmdb_sent' (J-HMDB Sentences, test "
                     'only, with the A2D model: --checkpoint-dataset a2d_sent_new)'}
SPLITS = {'image': "'train', 'trainval', 'val', 'test', 'testA', 'testB'",
          'clip': "'train', 'test'"}


def build_parser(model_input, description, modes, dataset_default, model_default):
    """The flags shared by the scripts of the models with `model_input` ('image' or 'clip');
    -n defaults to `model_default`."""
    p = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    p.add_argument('-n', '--model-name', type=str, default=model_default,
                   help='model module to build (as the original\'s get_model.py): %s, or your '
                        'own module on the Python path defining LSTM_model, Settings, INPUT and '
                        'WORD_TYPES (util/pipeline/models.py). Train records it in the snapshot; '
                        'test, predict and export build the module a snapshot records (-n only '
                        'for a checkpoint of the original code, which has no .json)'
                        % ('CMPC_model' if model_input == 'image'
                           else 'CMPC_video_mm_tgraph_allvec'))
    p.add_argument('-g', '--gpu', type=str, default='0',
                   help='GPU id(s) to use (sets CUDA_VISIBLE_DEVICES); train: several ids, e.g. '
                        '0,1,2,3, train on all of them (MirroredStrategy); ignored on a CPU '
                        'machine')
    p.add_argument('-i', '--iters', type=iteration, default=800000,
                   help="train: number of iterations (max_iter); test (and predict, export with "
                        "-f): iteration of the snapshot to restore, or 'best' for the snapshot "
                        'that did best in validation (--val-split)')
    p.add_argument('-s', '--snapshot', type=int, default=100000,
                   help='train: save a snapshot every this many iterations')
    p.add_argument('-st', '--stop-iter', type=int, default=700000,
                   help='train: stop (after saving) when this iteration is reached')
    p.add_argument('-m', '--mode', type=str, required=True, choices=list(modes),
                   help=', '.join(modes) + (' (masks and explanations for --image and --sentence)'
                                            if 'predict' in modes else ''))
    p.add_argument('-d', '--dataset', type=str, default=dataset_default,
                   help='dataset name: %s (batches are read from {data-root}/{dataset}/'
                        '{split}_batch/)' % DATASETS[model_input])
    p.add_argument('-t', '--split', type=str, default=None,
                   help='split: %s' % SPLITS[model_input])
    p.add_argument('-f', '--folder', type=str, default=None,
                   help='folder of the snapshots {dataset}_iter_{N}.tfmodel (required for train '
                        'and test; predict and export take it with -d and -i, or --checkpoint)')
    p.add_argument('-lr', '--lr', type=float, default=0.00025, help='start learning rate')
    p.add_argument('-bs', '--batch-size', type=int, default=1,
                   help='batch size (the paper used 1; every sample of a batch computes what it '
                        'would alone); with several replicas the global batch, split among them')
    p.add_argument('-v', '--visualize', default=False, action='store_true',
                   help='test: write image, ground-truth and prediction PNGs under --vis-dir')
    p.add_argument('-c', '--dcrf', default=False, action='store_true',
                   help='test: also evaluate with DenseCRF post-processing; predict: also write '
                        'the DenseCRF-refined mask')
    p.add_argument('-emb', '--emb', default=False, action='store_true',
                   help='train: initialise the word embedding from GloVe (--emb-file); random '
                        'otherwise')
    g = p.add_argument_group('paths (added by the port)')
    g.add_argument('--data-root', type=str, default='.',
                   help='folder holding {dataset}/{split}_batch/')
    g.add_argument('--vocab', type=str, default=None,
                   help='vocabulary file; train and test use only its size (default: 8803 words '
                        'for referit, 12112 otherwise, as the original); predict and export '
                        'look words up in it (default: the one the checkpoint records)')
    g.add_argument('--emb-file', type=str, default=None,
                   help='GloVe embedding .npy used with -emb (default: data/referit_emb.npy for '
                        'referit, data/Gref_emb.npy otherwise)')
    g.add_argument('--backbone-init', type=str, default=DEFAULT_BACKBONE,
                   help='train: TF1 checkpoint with the DeepLab-ResNet-101 weights')
    g.add_argument('--random-backbone', default=False, action='store_true',
                   help='train: start the backbone from random weights (batch-norm statistics '
                        'from 16 training images) instead of --backbone-init')
    g.add_argument('--resume', default=True, action=argparse.BooleanOptionalAction,
                   help='train: continue from the newest snapshot in -f, with optimizer state')
    g.add_argument('--vis-dir', type=str, default=None,
                   help='test: folder for -v (default {data-root}/{dataset}/visualization/{iter}/)')
    g.add_argument('--results', type=str, default=None,
                   help='test: JSON file for the figures (default '
                        '{-f}/{dataset}_{split}_iter_{N}_results.json)')
    g.add_argument('--log-every', type=int, default=ITERS_PER_LOG,
                   help='train: log every this many iterations')
    g.add_argument('--seed', type=int, default=None,
                   help='seed of the weight initialisation and of the batch order')
    g.add_argument('--tf-data', default=False, action='store_true',
                   help='read the batch files with the tf.data pipeline of '
                        'util/pipeline/tf_input.py (parallel reading and preprocessing, '
                        'prefetch) instead of DataReader')
    g.add_argument('--max-test', type=int, default=None,
                   help='test: evaluate only the first N expressions of the split')
    g.add_argument('--deterministic', default=False, action='store_true',
                   help='train: tf.config.experimental.enable_op_determinism() (with the seed, '
                        'two runs on a GPU agree bit for bit). Costs speed on a GPU (slower '
                        'deterministic kernels, e.g. for the backbone convolutions and the '
                        'scatter-adds of the embedding gradient); an op without a deterministic '
                        'kernel raises an error instead of running. A CPU run is deterministic '
                        'without it')

    v = p.add_argument_group(
        'watching a run (added by the port)',
        'TensorBoard event files are written under {-f}/tensorboard/{train,val} (tensorboard '
        '--logdir {-f}/tensorboard): every loss term, the learning rate, pixel accuracy and '
        'speed every --log-every iterations; with --val-split, the validation figures, and '
        'images of up to --val-images expressions with the predicted (red) and ground-truth '
        '(green) masks. python -m tools.plot_training {-f} draws the JSON log as a PNG.')
    v.add_argument('--val-split', type=str, default=None,
                   help='train: evaluate on this split ({data-root}/{dataset}/{split}_batch/) '
                        'every --val-every iterations with test mode\'s loop, and keep the '
                        'snapshot with the best overall IoU as {-f}/{dataset}_best.tfmodel')
    v.add_argument('--val-every', type=int, default=10000,
                   help='train: iterations between validations (with --val-split)')
    v.add_argument('--val-max', type=int, default=None,
                   help='train: validate on the first N expressions of --val-split only')
    v.add_argument('--val-images', type=int, default=8,
                   help='train: expressions of --val-split drawn to TensorBoard at each '
                        'validation (the first N; 0 for none)')

    f = p.add_argument_group('fast paths (added by the port; off by default, the faithful path; '
                             'their fidelity is in the README)')
    f.add_argument('--precision', choices=['fp32', 'bf16', 'fp16'], default='fp32',
                   help='train, test, predict: compute dtype; variables, losses, softmaxes, '
                        'norms and the LSTM stay float32 (fp16 training uses dynamic loss '
                        'scaling)')
    f.add_argument('--xla', default=False, action='store_true',
                   help='train, test, predict: compile the train step / forward pass with XLA')
    f.add_argument('--fold', default=False, action='store_true',
                   help='test, predict: fold the c3 lateral conv into MUTAN\'s visual heads at '
                        'load time where it saves multiplications (the paper size: 7.8 GFLOP '
                        'fewer, the same sums up to rounding; the small configs fold nothing)')

    d = p.add_argument_group(
        'distributed training (added by the port; util/pipeline/distribute.py)',
        'Several GPUs: -g 0,1,2,3 (MirroredStrategy). Several machines: set TF_CONFIG on each '
        '(MultiWorkerMirroredStrategy). -bs is the global batch, split equally among all '
        'replicas; the learning rate follows global steps; only the chief writes snapshots and '
        'logs, so -f must be a folder that every worker reads (to resume from the same snapshot).')
    d.add_argument('--cpu-replicas', type=int, default=1,
                   help='train: split the CPU into this many logical devices and train with '
                        'MirroredStrategy over them (multi-replica training without GPUs)')

    s = p.add_argument_group(
        "model size (util/pipeline/settings.py; --preset values, the paper's by default; a "
        'checkpoint records them, so test, predict and export need none of these)')
    s.add_argument('--preset', choices=sorted(PRESETS), default='paper',
                   help='named model size: paper (320, ResNet-101, LSTM 1000, MLP 500), tiny '
                        "(the tests' 64, LSTM 32, MLP 16), synthetic (main_job.sh's 96, one "
                        'block per ResNet stage, LSTM 64, MLP 32); the flags below override it')
    s.add_argument('--size', type=int, default=None,
                   help='input height and width H = W (the score map is size/8; default: the '
                        "preset's)")
    s.add_argument('--num-steps', type=int, default=None,
                   help="words per sentence T (default: the preset's, 20; predict, export: used "
                        'only for a checkpoint of the original code, which has no .json)')
    s.add_argument('--rnn-size', type=int, default=None,
                   help="LSTM size, also the visual embedding size v_emb_dim (default: the "
                        "preset's)")
    s.add_argument('--mlp-dim', type=int, default=None,
                   help="width of the fused features (default: the preset's)")
    s.add_argument('--backbone-blocks', type=str, default=None,
                   help='blocks of the 4 ResNet stages: 3,4,23,3 is ResNet-101 (the paper); '
                        "1,1,1,1 is a small backbone for CPU experiments (default: the preset's)")
    s.add_argument('-lrd', '--lr-decay-step', type=int, default=TrainSettings.lr_decay_step,
                   help='train: iterations of the polynomial decay from -lr to 1e-5')
    s.add_argument('--vocab-size', type=int, default=None,
                   help='vocabulary size (default: from --vocab, else the original value)')
    return p


def check_args(p, args):
    """Refuses flag values that make no sense before any work starts (p.error exits)."""
    if args.mode in ('train', 'test'):
        if args.folder is None:
            p.error('-f/--folder is required for -m %s' % args.mode)
        if args.split is None:
            p.error('-t/--split is required (e.g. train, val, testA)')
    try:  # the module exists (imported, with TensorFlow, when the work starts)
        module_name(args.model_name, '-n/--model-name')
    except InputError as e:
        p.error(str(e))
    if args.mode == 'train' and args.fold:
        p.error('--fold is for test: training may change the weights it folds')
    if args.iters == 'best' and args.mode == 'train':
        p.error("-i best names a snapshot to test; -m train needs a number of iterations")
    for flag in ('iters', 'snapshot', 'stop_iter', 'batch_size', 'log_every', 'size',
                 'num_steps', 'rnn_size', 'mlp_dim', 'lr_decay_step', 'cpu_replicas',
                 'val_every'):
        value = getattr(args, flag)
        if isinstance(value, int) and value <= 0:
            p.error('--%s must be positive, got %d' % (flag.replace('_', '-'), value))
    if not args.lr > 0:
        p.error('-lr/--lr must be positive, got %r' % args.lr)
    if args.backbone_blocks is not None:
        try:
            args.backbone_blocks = [int(b) for b in args.backbone_blocks.split(',')]
            assert len(args.backbone_blocks) == 4 and min(args.backbone_blocks) >= 1
        except (ValueError, AssertionError):
            p.error('--backbone-blocks must be 4 positive integers like 3,4,23,3, got %r'
                    % args.backbone_blocks)
    if args.size is not None and args.size % 8:
        p.error('--size must be a multiple of 8 (output stride), got %d' % args.size)


# ---------------------------------------------------------------------------------------------
# predict and export (util/inference/)

def add_inference_flags(p, model_input):
    """The flags of -m predict and -m export: the image script's take --image, the video
    script's --video (util/inference/predict.py, predict_video.py, export.py)."""
    q = p.add_argument_group('predict and export (added by the port)')
    q.add_argument('--checkpoint', type=str, default=None,
                   help='predict, export: checkpoint prefix (e.g. ckpts/unc/unc_iter_700000.tfmodel'
                        '), one of its files, or a folder (its newest snapshot); instead of -f/-i')
    if model_input == 'image':
        q.add_argument('--image', type=str, action='append', default=None,
                       help='predict: image file, any size and mode (repeatable)')
    else:
        q.add_argument('--video', type=str, default=None,
                       help='predict: a video file (decoded with PyAV) or a folder of frames '
                            '(image files sorted by name, all of one size)')
        q.add_argument('--frames', type=str, default=None,
                       help='predict: frames A:B or A:B:STEP to segment (numbered from 1, both '
                            'included; default: every frame)')
        q.add_argument('--fps', type=float, default=None,
                       help="predict: frame rate of overlay.mp4 (default: the video's; 24 for a "
                            'folder of frames)')
    q.add_argument('--sentence', type=str, action='append', default=None,
                   help='predict: referring expression (repeatable; each is run on each %s)'
                        % ('image' if model_input == 'image' else 'frame'))
    q.add_argument('--sentences-file', type=str, default=None,
                   help='predict: text file with one expression per line (blank lines skipped)')
    q.add_argument('--out-dir', type=str, default='predictions',
                   help='predict: output folder (%s)'
                        % ('{out-dir}/{image}/{k}_{sentence}/ per prediction'
                           if model_input == 'image' else
                           '{out-dir}/{video}/{k}_{sentence}/ per sentence'))
    if model_input == 'image':
        q.add_argument('--explain', default=True, action=argparse.BooleanOptionalAction,
                       help='predict: draw explain.png (word types, c3/c4/c5 maps, mask)')
    q.add_argument('--export-dir', type=str, default=None,
                   help='export: folder of the SavedModel (replaced once the new one is complete)')


def add_whole_video_flags(p):
    """The flags of test mode on whole videos (-d ref_youtube_vos, ref_davis17, mevis;
    util/pipeline/evaluate_video.py)."""
    q = p.add_argument_group('test on whole videos (Ref-YouTube-VOS, Ref-DAVIS17, MeViS)')
    q.add_argument('--release-root', type=str, default=None,
                   help='test: the folder of the release (meta_expressions, JPEGImages, '
                        'Annotations or mask_dict.json, as docs/video.md lists them)')
    q.add_argument('--max-videos', type=int, default=None,
                   help='test: only the first N videos of the split (a quick check)')


def check_whole_video_args(p, args):
    """Refuses whole-video test flags that make no sense (p.error exits)."""
    if args.max_videos is not None and args.max_videos < 1:
        p.error('--max-videos %d: expected at least 1' % args.max_videos)


def check_inference_args(p, args):
    """Refuses a predict or export run without what it needs (p.error exits)."""
    if args.mode not in ('predict', 'export'):
        return
    if args.checkpoint is None and args.folder is None:
        p.error('-m %s needs the checkpoint: --checkpoint PATH, or -f FOLDER with -d and -i'
                % args.mode)
    if args.mode == 'predict':
        what = '--image' if hasattr(args, 'image') else '--video'
        if not getattr(args, what[2:]):
            p.error('-m predict needs %s PATH' % what)
        if not (args.sentence or args.sentences_file):
            p.error('-m predict needs --sentence TEXT or --sentences-file PATH')
    if args.mode == 'export' and not args.export_dir:
        p.error('-m export needs --export-dir PATH')


def checkpoint_arg(args):
    """(checkpoint path, the flags that named it) for predict and export."""
    if args.checkpoint is not None:
        return args.checkpoint, '--checkpoint'
    return snapshot_prefix(args.folder, args.dataset, args.iters), '-f/-d/-i'
