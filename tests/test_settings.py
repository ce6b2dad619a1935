"""util/pipeline/settings.py: the architecture and training settings, their presets, JSON, flags
and tensor shapes (the resume rule is tested in tests/test_models.py). No TensorFlow needed
except where a test builds a model."""

import argparse
import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT
from util.pipeline.settings import (PRESETS, ModelSettings, TrainSettings, VideoModelSettings,
                                    feature_size, run_record, split_model_kwargs)

GOLDEN_JSON = os.path.join(ROOT, 'tests', 'golden', 'pre_refactor_snapshot.json')


def flags(**kw):
    """trainval_model.py's flags that the settings read, unset (None) unless given."""
    base = dict(size=None, num_steps=None, rnn_size=None, mlp_dim=None, backbone_blocks=None,
                vocab_size=None, vocab=None, dataset='unc', preset=None, lr=0.00025,
                lr_decay_step=800000, conv5=False, batch_size=1)
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.mark.parametrize('size, want', [(320, 40), (64, 8), (96, 12), (65, 9), (8, 1), (7, 1)])
def test_feature_size_is_ceil_of_size_over_8(size, want):
    # Three stride-2 layers with SAME padding: 65 -> 33 -> 17 -> 9.
    assert feature_size(size) == want


def test_paper_preset_is_the_original_defaults():
    paper = PRESETS['paper']
    assert (paper.H, paper.W, paper.vf_h, paper.vf_w) == (320, 320, 40, 40)
    assert (paper.rnn_size, paper.v_emb_dim, paper.mlp_dim, paper.vocab_size) == (1000, 1000, 500,
                                                                                 12112)
    assert paper.backbone_blocks == (3, 4, 23, 3) and paper.num_steps == 20
    train = TrainSettings()
    assert (train.start_lr, train.lr_decay_step, train.weight_decay) == (0.00025, 800000, 0.0005)


def test_flags_override_the_preset():
    s = ModelSettings.from_flags(flags(preset='synthetic', vocab_size=37))
    assert (s.H, s.rnn_size, s.v_emb_dim, s.mlp_dim, s.backbone_blocks) == (96, 64, 64, 32,
                                                                             (1, 1, 1, 1))
    s = ModelSettings.from_flags(flags(preset='synthetic', size=128, rnn_size=48, vocab_size=37))
    assert (s.H, s.W, s.vf_h, s.rnn_size, s.v_emb_dim, s.mlp_dim) == (128, 128, 16, 48, 48, 32)


def test_vocabulary_size_from_file_and_dataset(tmp_path):
    vocab = tmp_path / 'vocab.txt'
    vocab.write_text('<pad>\n<go>\n<eos>\n<unk>\na\nb\n')
    assert ModelSettings.from_flags(flags(vocab=str(vocab))).vocab_size == 6
    assert ModelSettings.from_flags(flags(dataset='referit')).vocab_size == 8803
    assert ModelSettings.from_flags(flags(dataset='referit')).emb_name == 'referit'
    assert ModelSettings.from_flags(flags(dataset='Gref')).vocab_size == 12112
    with pytest.raises(ValueError, match='--vocab .*missing.txt: no such file'):
        ModelSettings.from_flags(flags(vocab=str(tmp_path / 'missing.txt')))


def test_invalid_architectures_are_refused():
    with pytest.raises(ValueError, match='rnn_size .* must equal v_emb_dim'):
        ModelSettings(rnn_size=32, v_emb_dim=16)
    with pytest.raises(ValueError, match='backbone_blocks'):
        ModelSettings(backbone_blocks=(1, 1, 1))
    with pytest.raises(ValueError, match='num_rnn_layers'):
        ModelSettings(num_rnn_layers=2)
    with pytest.raises(ValueError, match='start_lr must be positive'):
        TrainSettings(start_lr=-1.0)
    # An unknown optimizer is refused by the Trainer (util/pipeline/optim.py's OPTIMIZERS):
    # test_trainer.py.


def test_original_keyword_arguments_split_into_the_two_settings():
    model, train = split_model_kwargs(dict(H=64, W=64, vf_h=8, vf_w=8, vocab_size=50,
                                           rnn_size=32, v_emb_dim=32, mlp_dim=16,
                                           start_lr=0.003, conv5=True, batch_size=4))
    assert model == PRESETS['tiny']
    assert train == TrainSettings(start_lr=0.003, conv5=True, batch_size=4)
    with pytest.raises(ValueError, match='backbone output of H x W = 64 x 64'):
        split_model_kwargs(dict(H=64, W=64, vf_h=9, vf_w=8))
    with pytest.raises(TypeError, match='unexpected keyword argument.*colour'):
        split_model_kwargs(dict(colour='red'))


def test_json_round_trip():
    model = PRESETS['synthetic'].replace(vocab_size=37, glove_dim=50)
    train = TrainSettings(start_lr=0.003, lr_decay_step=4000, batch_size=4)
    record = json.loads(json.dumps(run_record(model, train, 17, dataset='unc')))
    assert record['model']['vf_h'] == 12 and record['step'] == 17
    assert ModelSettings.from_json(record) == model
    assert TrainSettings.from_json(record) == train


def test_snapshot_json_of_the_pre_change_code_reads_the_same():
    """The JSON written by commit fe55de4 (one `model` section mixing both settings) gives the
    same settings as the LSTM_model keyword arguments it recorded."""
    with open(GOLDEN_JSON) as f:
        meta = json.load(f)
    # What that code's model_settings() passed to LSTM_model: the section minus batch_size, conv5.
    kwargs = {k: v for k, v in meta['model'].items() if k not in ('batch_size', 'conv5')}
    model, train = split_model_kwargs(kwargs)
    assert ModelSettings.from_json(meta) == model
    assert TrainSettings.from_json(meta) == train.replace(batch_size=meta['model']['batch_size'])
    assert model.backbone_blocks == (1, 1, 1, 1) and train.lr_decay_step == 40
    # The architecture's keys keep their values in the new JSON, which adds the model's kind.
    written = model.to_json()
    assert written.pop('kind') == 'image'
    assert {k: meta['model'][k] for k in written} == written


def test_model_kind_is_checked():
    """An image snapshot given to the video model and the reverse are refused, by JSON and by
    the checkpoint's shapes (the word parser's 4 or 5 types)."""
    image = PRESETS['tiny']
    video = VideoModelSettings.of(image)
    assert video.frames == 16 and video.kind == 'video' and image.kind == 'image'
    assert VideoModelSettings.from_json({'model': video.to_json()}) == video
    with pytest.raises(ValueError, match='s.json: a checkpoint of the image model, not the video '
                                         'model .use trainval_model.py'):
        VideoModelSettings.from_json({'model': image.to_json()}, 's.json')
    with pytest.raises(ValueError, match='of the video model, not the image model'):
        ModelSettings.from_json({'model': video.to_json()})
    shapes = {'text_objseg/Variable': [50, 300], 'text_objseg/rnn/conv_lstm_cell/W_ci': [8, 8, 16],
              'text_objseg/words_parse_1/DW': [1, 1, 32, 500],
              'text_objseg/words_parse_2/DW': [1, 1, 500, 5],
              'text_objseg/c5_lateral/DW': [1, 1, 2048, 32]}
    assert VideoModelSettings.from_shapes(shapes, 20).H == 64
    with pytest.raises(ValueError, match='5 types, the video model; this is the image model'):
        ModelSettings.from_shapes(shapes, 20)
    with pytest.raises(ValueError, match='frames must be at least 16'):
        VideoModelSettings(frames=8)
    with pytest.raises(ValueError, match='settings of the image model given to the video model'):
        split_model_kwargs(image.to_json(), VideoModelSettings)


def test_bad_json_is_named():
    with pytest.raises(ValueError, match='snap.json: no "model" section'):
        ModelSettings.from_json({'step': 3}, 'snap.json')
    with pytest.raises(ValueError, match="snap.json: unknown ModelSettings setting.*colour"):
        ModelSettings.from_json({'model': {'H': 64, 'W': 64, 'colour': 1}}, 'snap.json')
    with pytest.raises(ValueError, match='snap.json: vf_h x vf_w 9 x 8 is not the backbone'):
        ModelSettings.from_json({'model': {'H': 64, 'W': 64, 'vf_h': 9, 'vf_w': 8}}, 'snap.json')


def test_architecture_from_the_tensor_shapes_of_an_original_checkpoint():
    shapes = {'text_objseg/Variable': [50, 300], 'text_objseg/rnn/conv_lstm_cell/W_ci': [8, 8, 16],
              'text_objseg/words_parse_1/DW': [1, 1, 32, 500],
              'text_objseg/words_parse_2/DW': [1, 1, 500, 4],
              'text_objseg/c5_lateral/DW': [1, 1, 2048, 32]}
    for stage, n in zip((2, 3, 4, 5), (3, 4, 23, 3)):
        for block in ['a'] + ['b%d' % i for i in range(1, n)] if n > 3 else 'abc'[:n]:
            shapes['res%d%s_branch2a/weights' % (stage, block)] = [1, 1, 8, 8]
    got = ModelSettings.from_shapes(shapes, num_steps=20)
    assert got == PRESETS['tiny'].replace(glove_dim=300)
    del shapes['text_objseg/Variable']
    with pytest.raises(KeyError, match='text_objseg/Variable: not a CMPC checkpoint'):
        ModelSettings.from_shapes(shapes, 20)


def test_settings_module_does_not_import_tensorflow():
    # The flags and the model-module lookup too: scripts check their flags before TensorFlow.
    code = ('import sys, util.pipeline.settings, util.pipeline.snapshots, util.pipeline.contract, '
            'util.pipeline.flags, util.pipeline.models; print("tensorflow" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == 'False'
