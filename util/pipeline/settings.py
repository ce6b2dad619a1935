"""The settings of a CMPC run, each with one owner. No TensorFlow here: scripts check their
input before the slow import.

- `ModelSettings`: the architecture, what a checkpoint's tensor shapes and the input size
  depend on. The score map's size (`vf_h`, `vf_w`) is derived here and nowhere else.
- `TrainSettings`: how the weights are trained (learning rate and its decay, weight decay,
  dropout, -conv5, batch size). They do not change what the network computes at test time.

Each is built from the command-line flags (`from_flags`), from a snapshot's JSON (`from_json`,
which also reads the single `model` section that snapshots written before the split held) and
written to JSON (`to_json`); the architecture also from a checkpoint's tensor shapes
(`ModelSettings.from_shapes`, for checkpoints of the original code); which of these a
checkpoint gets is util/pipeline/models.checkpoint_model's rule, and a resumed run takes the
architecture from its snapshot and the training settings from the flags (util/pipeline/runner.
start_run). `run_record` writes a snapshot's JSON. `PRESETS` names the configurations the
project uses:

    paper      the paper's (LSTM_model's defaults): 320 x 320, ResNet-101, LSTM 1000, MLP 500
    tiny       the tests': 64 x 64, vocabulary 50, LSTM 32, MLP 16 (ResNet-101 blocks)
    synthetic  main_job.sh's: 96 x 96, LSTM 64, MLP 32, one block per ResNet stage
"""

import dataclasses
import os
from dataclasses import dataclass

OUTPUT_STRIDE = 8  # of the DeepLab backbone: res4 and res5 are dilated instead of strided
PAPER_BLOCKS = (3, 4, 23, 3)  # ResNet-101 (deeplab_resnet.STAGES)
PAPER_VOCAB_SIZE = {'referit': 8803}  # 12112 (vocabulary_Gref.txt) for the COCO datasets
COCO_VOCAB_SIZE = 12112


def feature_size(size):
    """The backbone's output size for an input of `size` pixels: three stride-2 layers with
    SAME padding, ceil(size / 8)."""
    return -(-size // OUTPUT_STRIDE)


def emb_name_of(dataset):
    """The original's embedding file stem: data/{emb_name}_emb.npy."""
    return 'referit' if dataset == 'referit' else 'Gref'


def _from_dict(cls, values, where, ignore=()):
    """cls(**values) where values may hold other keys listed in `ignore`; any other unknown
    key is an error naming `where`."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(k for k in values if k not in names and k not in ignore)
    if unknown:
        raise ValueError('%s: unknown %s setting(s) %s' % (where, cls.__name__, ', '.join(unknown)))
    return cls(**{k: v for k, v in values.items() if k in names})


@dataclass(frozen=True)
class ModelSettings:
    """The architecture (the original's LSTM_model keyword arguments that shape the network)."""
    H: int = 320                    # input height
    W: int = 320                    # input width
    num_steps: int = 20             # words per sentence T (left-padded)
    vocab_size: int = COCO_VOCAB_SIZE
    glove_dim: int = 300            # word embedding width
    w_emb_dim: int = 1000           # unused by the original's graph; kept as its argument
    rnn_size: int = 1000            # LSTM width
    v_emb_dim: int = 1000           # visual embedding width (must equal rnn_size)
    mlp_dim: int = 500              # width of the fused features
    vf_dim: int = 2048              # res5's channels
    num_rnn_layers: int = 1
    backbone_blocks: tuple = PAPER_BLOCKS
    emb_name: str = 'Gref'          # data/{emb_name}_emb.npy

    kind = 'image'  # written to the JSON; the video model's settings say 'video'
    script = 'trainval_model.py'

    def __post_init__(self):
        object.__setattr__(self, 'backbone_blocks', tuple(int(b) for b in self.backbone_blocks))
        if len(self.backbone_blocks) != 4 or min(self.backbone_blocks) < 1:
            raise ValueError('backbone_blocks must be 4 counts >= 1, got %s'
                             % list(self.backbone_blocks))
        for name in ('H', 'W', 'num_steps', 'vocab_size', 'glove_dim', 'rnn_size', 'v_emb_dim',
                     'mlp_dim', 'vf_dim'):
            if int(getattr(self, name)) < 1:
                raise ValueError('%s must be positive, got %s' % (name, getattr(self, name)))
        if self.num_rnn_layers != 1:
            # The original stacked one cell object, which only builds for a single layer.
            raise ValueError('num_rnn_layers must be 1, got %d' % self.num_rnn_layers)
        if self.rnn_size != self.v_emb_dim:
            raise ValueError('rnn_size (%d) must equal v_emb_dim (%d): relation-aware reasoning '
                             'multiplies word and visual features'
                             % (self.rnn_size, self.v_emb_dim))

    @property
    def vf_h(self):
        return feature_size(self.H)

    @property
    def vf_w(self):
        return feature_size(self.W)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @classmethod
    def of(cls, settings, **changes):
        """These settings of another model's architecture (e.g. the video model with a
        preset's): the fields they share, the changes, and cls's defaults for the rest."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in dataclasses.asdict(settings).items() if k in names}
        values.update(changes)
        return cls(**values)

    def to_json(self):
        """A dict for a snapshot's JSON; vf_h and vf_w are written for readers, not read."""
        d = dataclasses.asdict(self)
        d['backbone_blocks'] = list(self.backbone_blocks)
        d.update(vf_h=self.vf_h, vf_w=self.vf_w, kind=self.kind)
        return d

    @classmethod
    def from_json(cls, meta, where='checkpoint JSON'):
        """From a snapshot's JSON: its `model` section (which, in snapshots written before
        the settings were split, also held the training settings)."""
        if not isinstance(meta, dict) or not isinstance(meta.get('model'), dict):
            raise ValueError('%s: no "model" section with the model settings' % where)
        values = dict(meta['model'])
        kind = values.pop('kind', 'image')  # snapshots written before the video model: image
        if kind != cls.kind:
            raise ValueError('%s: a checkpoint of the %s model, not the %s model (use %s)'
                             % (where, kind, cls.kind, SETTINGS_OF[kind].script
                                if kind in SETTINGS_OF else 'another script'))
        derived = {k: values.pop(k) for k in ('vf_h', 'vf_w') if k in values}
        settings = _from_dict(cls, values, where, ignore=TRAIN_FIELDS)
        got = (derived.get('vf_h', settings.vf_h), derived.get('vf_w', settings.vf_w))
        if got != (settings.vf_h, settings.vf_w):
            raise ValueError('%s: vf_h x vf_w %d x %d is not the backbone output of %d x %d'
                             % ((where,) + got + (settings.H, settings.W)))
        return settings

    @classmethod
    def from_shapes(cls, shapes, num_steps):
        """From a checkpoint's tensor shapes (name -> shape), for a checkpoint of the original
        code, which has no JSON. The input size is taken as 8 x the score map's (the
        original's sizes are multiples of 8). KeyError names a missing tensor."""
        def shape(name):
            if name not in shapes:
                raise KeyError('checkpoint has no tensor %s: not a CMPC checkpoint' % name)
            return [int(s) for s in shapes[name]]
        vocab_size, glove_dim = shape('text_objseg/Variable')
        vf_h, vf_w, mlp_dim = shape('text_objseg/rnn/conv_lstm_cell/W_ci')
        types = shape('text_objseg/words_parse_2/DW')[3]
        kind = kind_of_shapes(shapes)
        if kind != cls.kind:
            raise ValueError('checkpoint: its word parser has %d types, %s; this is the %s model'
                             % (types, 'the %s model' % kind if kind else 'not a CMPC model',
                                cls.kind))
        return cls(H=OUTPUT_STRIDE * vf_h, W=OUTPUT_STRIDE * vf_w, num_steps=num_steps,
                   vocab_size=vocab_size, glove_dim=glove_dim,
                   rnn_size=shape('text_objseg/words_parse_1/DW')[2],
                   v_emb_dim=shape('text_objseg/c5_lateral/DW')[3], mlp_dim=mlp_dim,
                   backbone_blocks=blocks_from_shapes(shapes))

    @classmethod
    def from_flags(cls, args, preset=None):
        """From trainval_model.py's flags: --size, --num-steps, --rnn-size (also v_emb_dim),
        --mlp-dim, --backbone-blocks, the vocabulary's size and the dataset's embedding name.
        Flags left unset (None) take the preset's value (default: the paper's)."""
        base = cls.of(PRESETS[preset or getattr(args, 'preset', None) or 'paper'])
        size = args.size if args.size is not None else base.H
        rnn = args.rnn_size if args.rnn_size is not None else base.rnn_size
        pick = lambda flag, default: default if flag is None else flag  # noqa: E731
        return base.replace(
            H=size, W=size, num_steps=pick(args.num_steps, base.num_steps),
            rnn_size=rnn, v_emb_dim=rnn, mlp_dim=pick(args.mlp_dim, base.mlp_dim),
            backbone_blocks=pick(args.backbone_blocks, base.backbone_blocks),
            vocab_size=vocab_size_of(args), emb_name=emb_name_of(args.dataset))


@dataclass(frozen=True)
class VideoModelSettings(ModelSettings):
    """The video model's architecture (CMPC_video/CMPC_video_mm_tgraph_allvec.py): the image
    model's and the clip length. The network samples frames [0, 4, 8, 12, 15] of the clip; the
    annotated frame is clip index 8."""
    frames: int = 16                # frames per clip

    kind = 'video'
    script = 'CMPC_video/trainval_video.py'

    def __post_init__(self):
        super().__post_init__()
        if self.frames < 16:
            raise ValueError('frames must be at least 16 (the model samples clip frames 0, 4, 8, '
                             '12 and 15), got %d' % self.frames)


SETTINGS_OF = {'image': ModelSettings, 'video': VideoModelSettings}


def kind_of_shapes(shapes):
    """'image' or 'video' by the word parser's number of types (4 or 5), else None."""
    parser = shapes.get('text_objseg/words_parse_2/DW')
    return {4: 'image', 5: 'video'}.get(int(parser[3]) if parser and len(parser) == 4 else None)


def blocks_from_shapes(shapes):
    """ResNet block counts from the backbone's tensors (res2c, res3b3, res4b22, ...)."""
    counts = []
    for stage in (2, 3, 4, 5):
        prefix = 'res%d' % stage
        blocks = {n.split('_')[0] for n in shapes if n.startswith(prefix) and '_branch2a' in n}
        counts.append(max(len(blocks), 1))
    return tuple(counts)


def vocab_size_of(args):
    """--vocab-size, else the number of lines of --vocab, else the original's vocabulary size
    for the dataset. ValueError when --vocab names no file."""
    if getattr(args, 'vocab_size', None) is not None:
        return args.vocab_size
    if getattr(args, 'vocab', None) is not None:
        if not os.path.isfile(args.vocab):
            raise ValueError('--vocab %s: no such file' % args.vocab)
        with open(args.vocab, encoding='utf-8') as f:
            return sum(1 for _ in f)
    return PAPER_VOCAB_SIZE.get(args.dataset, COCO_VOCAB_SIZE)


@dataclass(frozen=True)
class TrainSettings:
    """How the weights are trained (the original's LSTM_model keyword arguments that are not
    the architecture). The schedule: polynomial decay (power 0.9) from start_lr to 1e-5 over
    lr_decay_step iterations."""
    start_lr: float = 0.00025
    lr_decay_step: int = 800000
    lr_decay_rate: float = 1.0       # unused by the original's schedule; kept as its argument
    weight_decay: float = 0.0005     # on conv weights (DW, weights)
    optimizer: str = 'adam'         # a key of util/pipeline/optim.py's OPTIMIZERS
    conv5: bool = False              # also train res3, res4 and res5's conv weights
    keep_prob_rnn: float = 1.0
    keep_prob_emb: float = 1.0
    keep_prob_mlp: float = 1.0       # unused by the original's graph; kept as its argument
    batch_size: int = 1              # the global batch

    def __post_init__(self):
        if not self.start_lr > 0:
            raise ValueError('start_lr must be positive, got %r' % self.start_lr)
        if self.lr_decay_step < 1 or self.batch_size < 1:
            raise ValueError('lr_decay_step and batch_size must be positive, got %r and %r'
                             % (self.lr_decay_step, self.batch_size))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, meta, where='checkpoint JSON'):
        """From a snapshot's `training` section, or from the `model` section of a snapshot
        written before the split."""
        if isinstance(meta.get('training'), dict):
            return _from_dict(cls, meta['training'], where)
        return _from_dict(cls, meta.get('model', {}), where,
                          ignore=MODEL_FIELDS + ('vf_h', 'vf_w', 'kind'))

    @classmethod
    def from_flags(cls, args):
        """From trainval_model.py's -lr, --lr-decay-step, -conv5 and -bs."""
        return cls(start_lr=args.lr, lr_decay_step=args.lr_decay_step, conv5=args.conv5,
                   batch_size=args.batch_size)


MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(VideoModelSettings))
TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainSettings))

PRESETS = {
    'paper': ModelSettings(),
    'tiny': ModelSettings(H=64, W=64, vocab_size=50, rnn_size=32, v_emb_dim=32, mlp_dim=16),
    # vocab_size comes from the synthetic dataset's vocabulary file (--vocab).
    'synthetic': ModelSettings(H=96, W=96, rnn_size=64, v_emb_dim=64, mlp_dim=32,
                               backbone_blocks=(1, 1, 1, 1)),
}


def split_model_kwargs(kwargs, settings_cls=ModelSettings):
    """The original LSTM_model's keyword arguments -> (settings_cls, TrainSettings); vf_h and
    vf_w, when given, must be the backbone's output for H x W."""
    kwargs = dict(kwargs)
    vf = (kwargs.pop('vf_h', None), kwargs.pop('vf_w', None))
    kind = kwargs.pop('kind', settings_cls.kind)  # as to_json wrote it
    if kind != settings_cls.kind:
        raise ValueError('settings of the %s model given to the %s model'
                         % (kind, settings_cls.kind))
    fields = tuple(f.name for f in dataclasses.fields(settings_cls))
    unknown = sorted(k for k in kwargs if k not in fields and k not in TRAIN_FIELDS)
    if unknown:
        raise TypeError('LSTM_model got unexpected keyword argument(s) %s' % ', '.join(unknown))
    model = settings_cls(**{k: v for k, v in kwargs.items() if k in fields})
    train = TrainSettings(**{k: v for k, v in kwargs.items() if k in TRAIN_FIELDS})
    want = (model.vf_h, model.vf_w)
    if any(v is not None for v in vf) and tuple(v if v is not None else w
                                                for v, w in zip(vf, want)) != want:
        raise ValueError('vf_h x vf_w (%s x %s) must be the backbone output of H x W = %d x %d '
                         '(output stride 8: %d x %d)' % (vf + (model.H, model.W) + want))
    return model, train


def run_record(model, train, step, **extra):
    """A snapshot's JSON, assembled here only: the two settings under their own keys, the
    step, and `extra` (the runner's: flags, data, model_name, run_state, best)."""
    record = {'model': model.to_json(), 'step': int(step)}
    if train is not None:
        record['training'] = train.to_json()
    record.update(extra)
    return record
