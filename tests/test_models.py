"""util/pipeline/models.py: -n names the model module, and the one rule for the module and
settings of a checkpoint (its .json, or for the original code's checkpoints the tensor shapes),
shared by test mode, resume, predict, export, the demo and the benchmark. In-process; the
command-line recipe for a model variant is in test_trainval_model.py."""

import argparse
import json
import os
import types

import pytest

from util.cli import InputError
from util.pipeline.models import IMAGE_MODEL, VIDEO_MODEL, checkpoint_model, load_model
from util.pipeline.settings import (PRESETS, ModelSettings, TrainSettings, VideoModelSettings,
                                    run_record)

pytestmark = pytest.mark.eager  # tf.functions run eagerly (conftest.py)


def test_n_names_the_module_short_or_dotted():
    image, video = load_model('CMPC_model'), load_model('CMPC_video_mm_tgraph_allvec')
    assert load_model(VIDEO_MODEL) is video and video.__name__ == VIDEO_MODEL
    assert (image.INPUT, image.Settings, image.WORD_TYPES) == (
        'image', ModelSettings, ('entity', 'attribute', 'relation', 'unnecessary'))
    assert (video.INPUT, video.Settings) == ('clip', VideoModelSettings)
    assert video.WORD_TYPES == video.LSTM_model.WORD_TYPES and len(video.WORD_TYPES) == 5


def test_a_missing_module_or_interface_is_a_one_line_error(tmp_path, monkeypatch):
    with pytest.raises(InputError, match=r'^-n no_such_model: no module no_such_model on the '
                                         r'Python path \(a model module such as CMPC_model'):
        load_model('no_such_model')
    with pytest.raises(InputError, match='^-n: name a model module, e.g. CMPC_model$'):
        load_model('')
    (tmp_path / 'half_model.py').write_text('LSTM_model = object\nINPUT = "image"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InputError, match=r'half_model.py does not define Settings, WORD_TYPES '
                                         r'\(a model module defines LSTM_model, Settings, INPUT'):
        load_model('half_model')


def write_json(prefix, record):
    with open(prefix + '.json', 'w') as f:
        json.dump(record, f)


def test_a_snapshot_json_names_its_module_or_its_kind_does(tmp_path):
    tiny = PRESETS['tiny']
    prefix = str(tmp_path / 'a.tfmodel')
    # Written before model_name was recorded: the kind says which module.
    for settings, want in ((tiny, IMAGE_MODEL), (VideoModelSettings.of(tiny), VIDEO_MODEL)):
        write_json(prefix, run_record(settings, None, 3))
        module, got, meta = checkpoint_model(prefix, name='a_module_never_asked_for')
        assert (module.__name__, got, meta['step']) == (want, settings, 3)
    write_json(prefix, run_record(tiny, None, 3, model_name='CMPC_model'))
    assert checkpoint_model(prefix)[0].__name__ == IMAGE_MODEL
    write_json(prefix, run_record(tiny, None, 3, model_name='gone_model'))
    with pytest.raises(InputError, match=r'a\.tfmodel\.json: model_name gone_model: no module'):
        checkpoint_model(prefix)
    # The recorded module's Settings reads the record: an image module, video settings.
    write_json(prefix, run_record(VideoModelSettings.of(tiny), None, 3, model_name='CMPC_model'))
    with pytest.raises(InputError, match='a checkpoint of the video model, not the image model'):
        checkpoint_model(prefix)


def parse_train_flags(argv):
    from util.pipeline.flags import build_parser, check_args
    p = build_parser('image', 'test', ('train', 'test'), 'unc', IMAGE_MODEL)
    p.add_argument('-conv5', action='store_true', help="the script's own flag")
    args = p.parse_args(['-m', 'train', '-t', 'train', '-d', 'unc'] + argv)
    check_args(p, args)
    return args


def test_resume_takes_module_and_architecture_from_the_snapshot_and_training_from_flags(tmp_path):
    from util.pipeline.runner import start_run
    model = PRESETS['tiny'].replace(backbone_blocks=(1, 1, 1, 1))
    prefix = str(tmp_path / 'unc_iter_5.tfmodel')
    open(prefix + '.index', 'w').close()  # start_run reads the JSON only
    write_json(prefix, run_record(model, TrainSettings(start_lr=0.01, lr_decay_step=10), 5,
                                  model_name='CMPC_model', run_state={'seed': 7}))
    # The resuming command asks for another size, learning rate and batch.
    args = parse_train_flags(['-f', str(tmp_path), '-i', '10', '--size', '320', '-lr', '0.002',
                              '-lrd', '99', '-bs', '2', '--seed', '1'])
    dist = types.SimpleNamespace(is_chief=True, num_workers=1)
    run = start_run(args, dist, 'image')
    assert (run.module.__name__, run.settings, run.snapshot) == (IMAGE_MODEL, model, prefix)
    assert run.train_settings == TrainSettings(start_lr=0.002, lr_decay_step=99, batch_size=2)
    assert (run.seed, run.end_iter, run.task.kind) == (7, 10, 'image')
    # A new run: -n and the flags.
    args = parse_train_flags(['-f', str(tmp_path / 'new'), '-i', '10', '--preset', 'tiny',
                              '--vocab-size', '50', '--seed', '1'])
    run = start_run(args, dist, 'image')
    assert (run.module.__name__, run.settings, run.snapshot) == (IMAGE_MODEL, PRESETS['tiny'], None)


def test_an_original_checkpoint_has_the_same_settings_in_test_mode_and_predict(
        predict_workspace, tmp_path):
    """A checkpoint as the original code left it, without the .json: test mode and predict
    read the architecture off its tensor shapes, with -n's module and --num-steps."""
    from util.inference.predict import read_model_settings
    from util.pipeline.runner import test_model
    root, written, paths = predict_workspace
    prefix = str(tmp_path / 'unc_iter_5.tfmodel')
    for ext in ('.index', '.data-00000-of-00001'):
        os.link(paths['checkpoint'] + ext, prefix + ext)
    args = argparse.Namespace(folder=str(tmp_path), dataset='unc', iters=5, model_name='CMPC_model',
                              num_steps=None, precision='fp32', xla=False, fold=False)
    module, model, weights = test_model(args, 'image')
    _, p_module, p_settings, _, _ = read_model_settings(prefix, vocab=paths['vocab'],
                                                        model_name='CMPC_model')
    assert weights == prefix and module is p_module
    assert model.settings == p_settings
    assert p_settings == written.settings.replace(emb_name=p_settings.emb_name)
    # --num-steps is T for both (the tensor shapes do not say it).
    args.num_steps = 12
    assert test_model(args, 'image')[1].settings == read_model_settings(
        prefix, vocab=paths['vocab'], num_steps=12)[2] == p_settings.replace(num_steps=12)
