"""The model is chosen by naming its module (-n), as the original's get_model.py meant it: a
module on the Python path that carries what differs about its model, so that a variant is one
new module and the pipeline never asks which one it got.

A model module defines
    LSTM_model   the model class (CMPC_model.LSTM_model's API: from_settings, forward, save, ...)
    Settings     its architecture's settings class, a util.pipeline.settings.ModelSettings
    INPUT        'image' (one picture per expression) or 'clip' (a 16-frame clip)
    WORD_TYPES   the names of the word parser's types (LSTM_model.WORD_TYPES)

    python trainval_model.py -m train -n CMPC_model ...           # the default
    python CMPC_video/trainval_video.py -m train -n CMPC_video_mm_tgraph_allvec ...
    PYTHONPATH=my_models python trainval_model.py -m train -n my_cmpc ...

A snapshot's JSON records its module (`model_name`), so test, predict, export and the demo build
what was trained; `checkpoint_model` is that rule, written once.
"""

import importlib
import importlib.util

from util.cli import InputError
from util.pipeline.settings import ModelSettings, kind_of_shapes
from util.pipeline.snapshots import read_checkpoint_meta

INTERFACE = ('LSTM_model', 'Settings', 'INPUT', 'WORD_TYPES')
INPUTS = ('image', 'clip')
IMAGE_MODEL = 'CMPC_model'
VIDEO_MODEL = 'CMPC_video.CMPC_video_mm_tgraph_allvec'
# The original's -n names the video module without its folder; imported by that name from
# CMPC_video/ it would be a second copy of the module.
SHORT_NAMES = {'CMPC_video_mm_tgraph_allvec': VIDEO_MODEL}
# Snapshots written before the JSON recorded model_name, and original checkpoints without -n:
# the settings' kind (or the word parser's number of types) says which.
MODEL_OF_KIND = {'image': IMAGE_MODEL, 'video': VIDEO_MODEL}
DEFAULT_NUM_STEPS = ModelSettings.num_steps  # the original's T, for checkpoints without a .json


def module_name(name, flag='-n'):
    """The import name of the model module `name` (short names resolved), checked to exist
    without importing it (so without TensorFlow); InputError naming `flag` otherwise."""
    if not name:
        raise InputError('%s: name a model module, e.g. %s' % (flag, IMAGE_MODEL))
    dotted = SHORT_NAMES.get(name, name)
    try:
        found = importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):  # a missing parent package, a malformed name
        found = False
    if not found:
        raise InputError('%s %s: no module %s on the Python path (a model module such as %s or '
                         '%s, or your own defining %s)' % (flag, name, dotted, IMAGE_MODEL,
                                                          VIDEO_MODEL, ', '.join(INTERFACE)))
    return dotted


def load_model(name, flag='-n'):
    """The model module `name`, imported (with TensorFlow) and its interface checked;
    InputError naming `flag` and what was expected."""
    dotted = module_name(name, flag)
    module = importlib.import_module(dotted)
    missing = [n for n in INTERFACE if not hasattr(module, n)]
    if missing:
        raise InputError('%s %s: module %s does not define %s (a model module defines %s; see '
                         'util/pipeline/models.py)' % (flag, name, module.__file__,
                                                       ', '.join(missing), ', '.join(INTERFACE)))
    if module.INPUT not in INPUTS:
        raise InputError('%s %s: INPUT must be one of %s, got %r'
                         % (flag, name, ', '.join(INPUTS), module.INPUT))
    if not (isinstance(module.Settings, type) and issubclass(module.Settings, ModelSettings)):
        raise InputError('%s %s: Settings must be a subclass of util.pipeline.settings.'
                         'ModelSettings, got %r' % (flag, name, module.Settings))
    return module


def recorded_model_name(meta):
    """The model module a snapshot's JSON names: its `model_name`, or for a snapshot written
    before that was recorded, the module of its settings' kind."""
    if not isinstance(meta, dict):  # Settings.from_json says what is wrong with it
        return IMAGE_MODEL
    if meta.get('model_name'):
        return meta['model_name']
    model = meta.get('model')
    kind = model.get('kind', 'image') if isinstance(model, dict) else 'image'
    return MODEL_OF_KIND.get(kind, IMAGE_MODEL)


def record_model(meta, where, flag=None):
    """(module, settings) of a settings record (a snapshot's or an export's JSON): the module
    it names, its Settings read from the record. ValueError / InputError naming `where`."""
    name = recorded_model_name(meta)
    module = load_model(name, flag or '%s: model_name' % where)
    return module, module.Settings.from_json(meta, where)


def checkpoint_model(prefix, name=None, num_steps=None, flag='-n'):
    """(model module, its settings, the JSON or None) of the checkpoint `prefix`: the rule for
    "the settings of a checkpoint", used by test mode, resume, predict, export, the demo and the
    benchmark.

    With {prefix}.json: the module and the architecture it records. Without (a checkpoint of
    the original code): the module `name` (-n; None: the one its word parser's number of types
    says) and the architecture read off the tensor shapes, with `num_steps` words (default 20,
    the original's). InputError naming the file for anything that does not fit."""
    meta = read_checkpoint_meta(prefix)
    try:
        if meta is not None:
            module, settings = record_model(meta, prefix + '.json')
        else:
            from util.pipeline.checkpoint import checkpoint_shapes  # imports TensorFlow: only here
            shapes = checkpoint_shapes(prefix)
            if name is None:
                name = MODEL_OF_KIND.get(kind_of_shapes(shapes), IMAGE_MODEL)
            module = load_model(name, flag)
            settings = module.Settings.from_shapes(shapes, num_steps or DEFAULT_NUM_STEPS)
    except (ValueError, KeyError) as e:
        raise InputError('%s: %s' % (prefix, e.args[0] if e.args else e)) from None
    except InputError:
        raise
    except Exception as e:  # tf.errors.OpError: a truncated or corrupt checkpoint
        if type(e).__module__.startswith('tensorflow'):
            raise InputError('%s: cannot read the checkpoint (%s)'
                             % (prefix, getattr(e, 'message', e))) from None
        raise
    return module, settings, meta


SCRIPT_OF = {'image': 'trainval_model.py', 'clip': 'CMPC_video/trainval_video.py'}
KIND_OF_INPUT = {'image': 'image', 'clip': 'video'}


def check_input(module, expected, where, checkpoint=True):
    """InputError unless the model takes `expected` input ('image' or 'clip'): each script
    reads one kind of batch. `where` names the checkpoint (or, checkpoint=False, the flag)."""
    if module.INPUT != expected:
        raise InputError('%s: %s the %s model, not the %s model (use %s)'
                         % (where, 'a checkpoint of' if checkpoint else 'names',
                            KIND_OF_INPUT[module.INPUT], KIND_OF_INPUT[expected],
                            SCRIPT_OF[module.INPUT]))


FAST_PATHS = ('precision', 'xla', 'fold')  # LSTM_model's, and the flags of the same names


def fast_paths_of(source):
    """{precision, xla, fold} of the parsed flags or of a built model."""
    return {k: getattr(source, k) for k in FAST_PATHS}


def restore_model(prefix, module, settings, **fast_paths):
    """The module's LSTM_model in eval mode (fast_paths: from_settings' precision, xla,
    fold), with the checkpoint's weights; InputError naming the checkpoint otherwise."""
    import tensorflow as tf
    model = module.LSTM_model.from_settings(settings, mode='eval', **fast_paths)
    try:
        model.restore(prefix)
    except ValueError as e:  # shape or name mismatch, with the list of tensors
        raise InputError(str(e)) from None
    except tf.errors.OpError as e:  # truncated or corrupt data file
        raise InputError('%s: cannot read the checkpoint (%s)' % (prefix, e.message)) from None
    except RuntimeError as e:  # the reader's other failures, e.g. a missing data file
        raise InputError('%s: cannot read the checkpoint (%s)' % (prefix, e)) from None
    return model
