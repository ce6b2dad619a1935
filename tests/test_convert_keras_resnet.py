"""tools/convert_keras_resnet.py: Keras ResNet-101 weights -> deeplab_resnet_init checkpoint, no download.

A `keras.applications.ResNet101(weights=None)` gets random weights everywhere that the folding
touches (kernels, conv biases, batch-norm gamma, beta, moving mean and moving variance, some
variances far below both epsilons), so that a folding bug changes the features by far more than
the tolerance; its weights are saved, converted, restored into our DeepLabResNetModel, and the two
networks are compared where their padding agrees (deeplab_resnet/convert.py explains why):

- H, W = 1 mod 4: the whole network; pool1 and res3b3_relu as they are, res4b22_relu at even
  positions and res5c_relu at multiples of 4 (our dilated stages against Keras's strided ones);
- even H, W: Keras's stem on x equals ours on x zero-padded by one pixel, cropped;
- any H, W: pool1 cell i is centred on input pixel 4i (Keras) or 4i + (H - 1) % 4 (ours).

Tolerance: max |ours - Keras| <= 1e-5 * max |Keras| per endpoint (float32 through up to 100
layers in a different order of operations; we measure ~1e-7 to ~2e-6). Negative controls check
that the naive mappings (conv bias dropped; epsilon not folded) miss by far more. The slow test
trains one iteration of trainval_model.py from a converted file.

    cd /work/main && .venv/bin/python -m pytest tests/test_convert_keras_resnet.py -q
    cd /work/main && .venv/bin/python -m pytest tests/test_convert_keras_resnet.py -q -m "not slow"
"""

import contextlib
import io
import json
import os

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from tools import convert_keras_resnet
from deeplab_resnet import DeepLabResNetModel
from deeplab_resnet.convert import (BN_EPSILON, KERAS_BN_EPSILON, ConversionError, fold_conv_bn,
                                    layer_pairs, load_keras_resnet101)
from helpers import (REFERENCE_DIR, TINY, TINY_FLAGS, read_reference_variables, run_script,
                     write_batches)
from util.pipeline.checkpoint import checkpoint_shapes, restore_checkpoint, save_checkpoint


RTOL = 1e-5  # relative to max |Keras| of the compared endpoint
ENDPOINTS = (('pool1', 'pool1_pool', 1), ('res3b3_relu', 'conv3_block4_out', 1),
             ('res4b22_relu', 'conv4_block23_out', 2), ('res5c_relu', 'conv5_block3_out', 4))


def randomise(model, seed=0):
    """Random kernels, conv biases and batch norms (scales kept so that features stay finite)."""
    rng = np.random.RandomState(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            std = np.sqrt(2.0 / np.prod(kernel.shape[:3]))
            layer.set_weights([rng.normal(0, std, kernel.shape).astype(np.float32),
                               rng.normal(0, 0.5, bias.shape).astype(np.float32)])
        elif isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            # Variances from 1e-5 to 3: below both epsilons (0.001 and 1.001e-5) and above.
            var = 10.0 ** rng.uniform(-5, 0.5, n)
            scale = rng.uniform(0.5, 1.5, n) * (0.5 if layer.name.endswith('_3_bn') else 1.0)
            gamma = scale * np.sqrt(var + KERAS_BN_EPSILON) * rng.choice([-1.0, 1.0], n)
            layer.set_weights([a.astype(np.float32) for a in
                               (gamma, rng.normal(0, 0.3, n), rng.normal(0, 0.5, n), var)])


def write_legacy_h5(model, path, skip=()):
    """The layout of Keras's downloadable ImageNet files (Keras 2 weights-only HDF5).

    Weight names end in ':0' as Keras 2 wrote them, layer groups are written in reverse order
    (loading must go by name), and layers whose name starts with one of `skip` are left out.
    """
    layers = [l for l in model.layers if not (skip and l.name.startswith(tuple(skip)))]
    with h5py.File(path, 'w') as f:
        f.attrs['layer_names'] = np.array([l.name.encode() for l in layers])
        f.attrs['backend'] = b'tensorflow'
        f.attrs['keras_version'] = b'2.2.4'
        for layer in reversed(layers):
            g = f.create_group(layer.name)
            names = [('%s/%s:0' % (layer.name, w.path.split('/')[-1])).encode()
                     for w in layer.weights]
            g.attrs['weight_names'] = np.array(names, dtype='S') if names else np.zeros(0, 'S1')
            for name, w in zip(names, layer.weights):
                g.create_dataset(name.decode(), data=w.numpy())


@pytest.fixture(scope='module')
def keras_resnet(tmp_path_factory):
    """(random Keras ResNet-101, its .weights.h5 path)."""
    folder = tmp_path_factory.mktemp('keras')
    model = keras.applications.ResNet101(weights=None, include_top=False)
    randomise(model)
    path = str(folder / 'r101.weights.h5')
    model.save_weights(path)
    return model, path


@pytest.fixture(scope='module')
def conversion(keras_resnet, tmp_path_factory):
    """(checkpoint prefix, printed output) of the command, with its own verification."""
    _, path = keras_resnet
    prefix = str(tmp_path_factory.mktemp('ckpt') / 'resnet101_imagenet_init.ckpt')
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert convert_keras_resnet.main(['-i', path, '-o', prefix]) == 0
    return prefix, out.getvalue()


@pytest.fixture(scope='module')
def converted(conversion):
    return conversion[0]


@pytest.fixture(scope='module')
def backbone(converted):
    model = DeepLabResNetModel()
    restored, missing, unused = restore_checkpoint(converted, model.store.variables)
    assert len(restored) == 520 and missing == [] and unused == []
    return model


def keras_endpoints(model, im, names):
    sub = keras.Model(model.input, [model.get_layer(n).output for n in names])
    out = sub(im, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def relative_errors(ours, keras_model, im):
    """{endpoint: (max abs difference, max abs Keras)} over the whole network, H, W = 1 mod 4."""
    theirs = keras_endpoints(keras_model, im, [k for _, k, _ in ENDPOINTS])
    mine = ours(im)
    result = {}
    for (name, _, step), ref in zip(ENDPOINTS, theirs):
        got = mine[name].numpy()[:, ::step, ::step]  # Keras's strided grid inside our dilated one
        assert got.shape == ref.shape, (name, got.shape, ref.shape)
        result[name] = (float(np.abs(got - ref).max()), float(np.abs(ref).max()))
    return result


def image(h, w, seed=0):
    return tf.random.stateless_normal([1, h, w, 3], seed=[seed, 1], stddev=60.0)  # [1, H, W, 3]


# ---------------------------------------------------------------------------------------------
# the folding, by hand

def test_fold_conv_bn_is_exact_in_float64():
    rng = np.random.RandomState(1)
    n = 64
    b, g, be, m = (rng.normal(0, 1, n) for _ in range(4))
    v = np.concatenate([[0.0, 1e-7, 1e-5, 1e-3], 10.0 ** rng.uniform(-5, 1, n - 4)])
    x = rng.normal(0, 3, (10, n))
    keras_out = ((x + b) - m) / np.sqrt(v + KERAS_BN_EPSILON) * g + be
    f = {k: a.astype(np.float64) for k, a in fold_conv_bn(b, g, be, m, v).items()}
    ours = (x - f['moving_mean']) / np.sqrt(f['moving_variance'] + BN_EPSILON) * f['gamma'] \
        + f['beta']
    # Only the float32 storage of the folded values is inexact.
    np.testing.assert_allclose(ours, keras_out, rtol=1e-6, atol=1e-5 * np.abs(keras_out).max())
    # By hand: b = 1, m = 3, v = 0, g = 2, be = 0.5 -> mean' = 3 - 1 = 2, var' = 0,
    # gamma' = 2 * sqrt(0.001 / 1.001e-5) = 2 * 9.99500375 = 19.9900075, beta' = 0.5.
    one = fold_conv_bn([1.0], [2.0], [0.5], [3.0], [0.0])
    np.testing.assert_allclose(one['gamma'], [19.9900075], rtol=1e-7)
    assert one['moving_mean'][0] == 2.0 and one['moving_variance'][0] == 0.0
    assert one['beta'][0] == 0.5


# ---------------------------------------------------------------------------------------------
# the checkpoint

def test_checkpoint_has_the_deeplab_resnet_init_names_and_shapes(converted):
    shapes = checkpoint_shapes(converted)
    ours = {n: v.shape.as_list() for n, v in DeepLabResNetModel().store.variables.items()}
    assert shapes == ours and len(shapes) == 520
    if os.path.isfile(os.path.join(REFERENCE_DIR, 'vars_eval_full.txt')):  # the original graph's variables
        ref = {n: s for n, s in read_reference_variables('vars_eval_full.txt').items()
               if n.startswith(('res', 'bn', 'conv1'))}
        assert shapes == ref
    meta = json.load(open(converted + '.json'))
    assert meta['kind'] == 'backbone_init' and len(meta['source_sha256']) == 64
    assert sorted(os.listdir(os.path.dirname(converted))) == [
        'resnet101_imagenet_init.ckpt.data-00000-of-00001', 'resnet101_imagenet_init.ckpt.index',
        'resnet101_imagenet_init.ckpt.json']


def test_mapping_covers_every_keras_weight(keras_resnet):
    model, _ = keras_resnet
    mapped = {p + s for p, _, _, _ in layer_pairs() for s in ('_conv', '_bn')}
    with_weights = {l.name for l in model.layers if l.weights}
    assert mapped == with_weights and len(mapped) == 208


# ---------------------------------------------------------------------------------------------
# features

def test_whole_network_matches_keras_when_sizes_are_1_mod_4(keras_resnet, backbone):
    keras_model, _ = keras_resnet
    errors = relative_errors(backbone, keras_model, image(65, 69))
    print('\n1 mod 4 (65 x 69):', {k: '%.3g / %.3g' % v for k, v in errors.items()})
    for name, (diff, scale) in errors.items():
        assert diff <= RTOL * scale, (name, diff, scale)


def test_stem_matches_keras_on_even_sizes_with_one_pixel_of_padding(keras_resnet, backbone):
    keras_model, _ = keras_resnet
    im = image(64, 64, seed=2)
    ref, = keras_endpoints(keras_model, im, ['pool1_pool'])  # [1, 16, 16, 64]
    padded = tf.pad(im, [[0, 0], [1, 1], [1, 1], [0, 0]])  # [1, 66, 66, 3]
    ours = backbone(padded)['pool1'].numpy()  # [1, 17, 17, 64]
    diff = np.abs(ours[:, :16, :16] - ref).max()
    print('\neven (64 x 64, padded): pool1 %.3g / %.3g' % (diff, np.abs(ref).max()))
    assert diff <= RTOL * np.abs(ref).max()
    # Without the padding the grids differ (3 pixels apart), and so do the features.
    plain = backbone(im)['pool1'].numpy()  # [1, 16, 16, 64]
    assert np.abs(plain - ref).max() > 0.1 * np.abs(ref).max()


@pytest.mark.parametrize('size', [(64, 65), (66, 67)])
def test_stem_grid_offset_is_h_minus_1_mod_4(keras_resnet, backbone, size):
    keras_model, _ = keras_resnet
    h, w = size
    oh, ow = (h - 1) % 4, (w - 1) % 4
    im = image(h, w, seed=3)
    ref, = keras_endpoints(keras_model, im[:, oh:, ow:], ['pool1_pool'])
    ours = backbone(im)['pool1'].numpy()
    # pool1 cell i sees input pixels 4i - 5 .. 4i + 5 (Keras, on the cropped image): compare the
    # cells whose receptive field lies inside the crop, where no padding is involved.
    ih = slice(2, (h - oh - 6) // 4 + 1)
    iw = slice(2, (w - ow - 6) // 4 + 1)
    a, b = ours[:, ih, iw], ref[:, ih, iw]
    assert a.size > 0
    assert np.abs(a - b).max() <= RTOL * np.abs(b).max()


def test_naive_mappings_miss_by_far_more_than_the_tolerance(keras_resnet, backbone, converted):
    keras_model, _ = keras_resnet
    v = backbone.store.variables
    im = image(65, 65, seed=4)
    try:
        for mistake in ('conv bias dropped', 'epsilon not folded'):
            restore_checkpoint(converted, v)
            for prefix, _, bn, _ in layer_pairs():
                kbn = keras_model.get_layer(prefix + '_bn')
                if mistake == 'conv bias dropped':
                    v[bn + '/moving_mean'].assign(kbn.moving_mean)
                else:
                    v[bn + '/gamma'].assign(kbn.gamma)
            errors = relative_errors(backbone, keras_model, im)
            worst = max(diff / scale for diff, scale in errors.values())
            print('\n%s: relative %.3g' % (mistake, worst))
            assert worst > 100 * RTOL, (mistake, errors)
    finally:
        restore_checkpoint(converted, v)


# ---------------------------------------------------------------------------------------------
# other file layouts and wrong files

def test_legacy_h5_by_name_gives_the_same_tensors(keras_resnet, converted, tmp_path):
    keras_model, _ = keras_resnet
    path = str(tmp_path / 'resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5')
    write_legacy_h5(keras_model, path)
    prefix = str(tmp_path / 'legacy.ckpt')
    assert convert_keras_resnet.main(['-i', path, '-o', prefix, '--no-verify']) == 0
    a, b = tf.train.load_checkpoint(prefix), tf.train.load_checkpoint(converted)
    for name in checkpoint_shapes(converted):
        np.testing.assert_array_equal(a.get_tensor(name), b.get_tensor(name), err_msg=name)


def test_a_file_of_another_network_is_refused_with_its_name(keras_resnet, tmp_path):
    keras_model, _ = keras_resnet
    # ResNet-50's layer names are a subset of ResNet-101's: conv4_block7..23 are missing.
    path = str(tmp_path / 'resnet50_like.h5')
    write_legacy_h5(keras_model, path, skip=['conv4_block%d_' % k for k in range(7, 24)])
    with pytest.raises(ConversionError) as e:
        load_keras_resnet101(path)
    msg = str(e.value)
    assert path in msg and 'ResNet-101' in msg and 'conv4_block7_' in msg
    with pytest.raises(FileNotFoundError, match='nowhere.h5'):
        load_keras_resnet101(str(tmp_path / 'nowhere.h5'))
    bad = tmp_path / 'weights.npz'
    bad.write_bytes(b'')
    with pytest.raises(ConversionError, match='weights.npz: unknown file type'):
        load_keras_resnet101(str(bad))


def test_command_refuses_to_overwrite_and_reports_errors(converted, tmp_path):
    with pytest.raises(SystemExit, match='exists; pass --force'):
        convert_keras_resnet.main(['-i', 'whatever.h5', '-o', converted])
    with pytest.raises(SystemExit, match='not found'):
        convert_keras_resnet.main(['-i', str(tmp_path / 'x.h5'), '-o', str(tmp_path / 'o')])


def test_command_verification_passes(conversion):
    out = conversion[1]
    print('\n' + out)
    assert 'Wrote 520 tensors to' in out
    assert 'Verified against Keras' in out and out.count('max |ours - Keras|') == 4


# ---------------------------------------------------------------------------------------------
# the original deeplab_resnet_init.ckpt layout loads unchanged

def test_restore_backbone_takes_the_original_layout_and_reports_extras(converted, tmp_path,
                                                                       capsys):
    from CMPC_model import LSTM_model
    model = LSTM_model(**TINY)
    reader = tf.train.load_checkpoint(converted)
    tensors = {n: reader.get_tensor(n) for n in checkpoint_shapes(converted)}
    # The original file also holds DeepLab's VOC classifier (ASPP, 4 branches, 21 classes).
    rng = np.random.RandomState(0)
    for k in range(4):
        tensors['fc1_voc12_c%d/weights' % k] = rng.normal(size=[3, 3, 2048, 21]).astype('f4')
        tensors['fc1_voc12_c%d/biases' % k] = rng.normal(size=[21]).astype('f4')
    original = str(tmp_path / 'deeplab_resnet_init.ckpt')
    save_checkpoint(original, tensors)

    restored = model.restore_backbone(original)
    assert len(restored) == 520
    assert 'Loaded 520 backbone variables from %s (8 checkpoint tensors unused)' % original \
        in capsys.readouterr().out
    v = model.store.variables
    np.testing.assert_array_equal(v['res4b22_branch2b/weights'].numpy(),
                                  tensors['res4b22_branch2b/weights'])
    np.testing.assert_array_equal(v['bn_conv1/moving_variance'].numpy(),
                                  tensors['bn_conv1/moving_variance'])

    model.restore_backbone(converted)
    assert '(0 checkpoint tensors unused)' in capsys.readouterr().out

    del tensors['bn5c_branch2c/gamma']
    save_checkpoint(str(tmp_path / 'incomplete.ckpt'), tensors)
    with pytest.raises(ValueError, match='not in checkpoint: bn5c_branch2c/gamma'):
        model.restore_backbone(str(tmp_path / 'incomplete.ckpt'))


@pytest.mark.slow
@pytest.mark.cli
def test_training_starts_from_a_converted_file(converted, tmp_path):
    write_batches(str(tmp_path / 'unc' / 'train_batch'), 'unc_train', 2, (64, 64), seed=1)
    proc = run_script(['-m', 'train', '-d', 'unc', '-t', 'train', '-f', 'ckpts', '-i', '1',
                       '-s', '1', '--seed', '0', '--log-every', '1', '--backbone-init', converted]
                      + TINY_FLAGS, str(tmp_path))
    assert 'Loaded 520 backbone variables from %s (0 checkpoint tensors unused)' % converted \
        in proc.stdout
    assert os.path.isfile(str(tmp_path / 'ckpts' / 'unc_iter_1.tfmodel.index'))
