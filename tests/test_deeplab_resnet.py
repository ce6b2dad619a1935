"""The backbone, deeplab_resnet/model.py (DeepLab-ResNet-101 as DrSleep/tensorflow-deeplab-resnet
built it from Caffe, frozen batch norm): conv + batch norm and the first block of a stage against
np_reference.py (numpy, float64: kaffe's conv/atrous_conv and slim's inference batch norm), its
variables against the original graph's (../shared/reference/vars_eval_full.txt), its endpoints.

    cd /work/main && .venv/bin/python -m pytest tests/test_deeplab_resnet.py -q
"""

import numpy as np
import pytest
import tensorflow as tf

from deeplab_resnet import DeepLabResNetModel
from helpers import assert_same_variables, read_reference_variables
from np_reference import SCOPE, batch_norm, conv_same


@pytest.fixture(scope='module')
def backbone():
    return DeepLabResNetModel()


@pytest.mark.parametrize('conv_name, bn_name, shape, stride, dilation, relu', [
    ('conv1', 'bn_conv1', (2, 11, 11, 3), 2, 1, True),            # 7x7/2, odd input: asymmetric pad
    ('res2a_branch1', 'bn2a_branch1', (1, 5, 5, 64), 1, 1, False),  # 1x1, no relu
    ('res3a_branch2a', 'bn3a_branch2a', (1, 9, 9, 256), 2, 1, True),  # 1x1/2
    ('res4b5_branch2b', 'bn4b5_branch2b', (1, 7, 7, 256), 1, 2, True),  # 3x3, dilation 2
    ('res5b_branch2b', 'bn5b_branch2b', (1, 6, 6, 512), 1, 4, True),  # 3x3, dilation 4
])
def test_conv_bn_against_numpy(backbone, conv_name, bn_name, shape, stride, dilation, relu):
    # slim batch_norm in inference mode: (x - moving_mean) / sqrt(moving_variance + 0.001) * gamma
    # + beta, after a bias-free conv.
    rng = np.random.RandomState(len(conv_name))
    v = backbone.store.variables
    for suffix in ('beta', 'moving_mean'):
        v[bn_name + '/' + suffix].assign(rng.randn(v[bn_name + '/beta'].shape[0]).astype(np.float32))
    n = v[bn_name + '/beta'].shape[0]
    v[bn_name + '/gamma'].assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
    # Small variances make the 0.001 epsilon visible.
    v[bn_name + '/moving_variance'].assign(rng.uniform(0.0005, 0.01, n).astype(np.float32))
    x = rng.randn(*shape).astype(np.float32)
    got = backbone.conv_bn(tf.constant(x), conv_name, bn_name, stride=stride, dilation=dilation,
                           relu=relu).numpy()

    p = {k: v[k].numpy().astype(np.float64) for k in v if k.startswith((conv_name, bn_name))}
    conv = conv_same(x.astype(np.float64), p[conv_name + '/weights'], stride, dilation)

    def bn(eps):
        y = batch_norm(conv, p, bn_name, eps)
        return np.maximum(y, 0) if relu else y

    want = bn(0.001)
    assert got.shape == want.shape
    tol = 1e-4 * np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=tol)
    # With another epsilon (1e-5, Keras' default) the result would be far outside that.
    assert np.abs(bn(1e-5) - want).max() > 100 * tol


def test_batch_norm_rounds_as_the_originals_op(backbone):
    """The batch norm is the op the original ran (slim's batch_norm, is_training=False: TF1's
    fused_batch_norm), bit for bit: at the paper size another order of the same sums moves the
    logits by 1e-4 (docs/speed.md). tf.nn.batch_normalization's order, which the port used
    before, differs in the last bits."""
    rng = np.random.RandomState(7)
    v = backbone.store.variables
    name = 'bn2a_branch1'
    n = v[name + '/beta'].shape[0]
    for suffix, value in (('beta', rng.randn(n)), ('moving_mean', rng.randn(n)),
                          ('gamma', rng.uniform(0.5, 1.5, n)),
                          ('moving_variance', rng.uniform(0.0005, 2.0, n))):
        v[name + '/' + suffix].assign(value.astype(np.float32))
    x = tf.constant(rng.randn(1, 9, 9, 64).astype(np.float32))
    got = backbone.conv_bn(x, 'res2a_branch1', name, relu=False).numpy()
    y = tf.nn.conv2d(x, v['res2a_branch1/weights'], 1, 'SAME')
    stats = dict(mean=v[name + '/moving_mean'], variance=v[name + '/moving_variance'])
    want = tf.compat.v1.nn.fused_batch_norm(y, v[name + '/gamma'], v[name + '/beta'],
                                            epsilon=0.001, is_training=False, **stats)[0]
    np.testing.assert_array_equal(got, want.numpy())
    other = tf.nn.batch_normalization(y, offset=v[name + '/beta'], scale=v[name + '/gamma'],
                                      variance_epsilon=0.001, **stats).numpy()
    assert (other != got).any()


@pytest.mark.parametrize('shape, dilation', [((1, 7, 9, 256), 2), ((2, 6, 5, 512), 4)])
def test_dilated_conv_normalises_before_batch_to_space(backbone, shape, dilation):
    """A dilated conv's batch norm and ReLU run before batch-to-space (so that Grappler fuses
    them into the conv): the same values as after it, bit for bit, at sizes that batch-to-space
    crops (not multiples of the rate)."""
    from deeplab_resnet.model import atrous_conv2d
    conv, bn = {256: ('res4b5_branch2b', 'bn4b5_branch2b'),
                512: ('res5b_branch2b', 'bn5b_branch2b')}[shape[3]]
    rng = np.random.RandomState(3)
    v = backbone.store.variables
    for suffix in ('beta', 'moving_mean'):
        v[bn + '/' + suffix].assign(rng.randn(shape[3]).astype(np.float32))
    v[bn + '/moving_variance'].assign(rng.uniform(0.01, 2.0, shape[3]).astype(np.float32))
    x = tf.constant(rng.randn(*shape).astype(np.float32))
    got = backbone.conv_bn(x, conv, bn, dilation=dilation).numpy()
    after = backbone.batch_norm(atrous_conv2d(x, v[conv + '/weights'], dilation), bn, relu=True)
    assert got.shape == shape and (got > 0).any() and (got == 0).any()
    np.testing.assert_array_equal(got, after.numpy())


@pytest.mark.parametrize('shape, dilation', [((1, 7, 9, 256), 2), ((2, 6, 5, 512), 4)])
def test_inference_backbone_runs_dilated_convs_natively(backbone, shape, dilation):
    """inference_only (an eval-mode model's backbone): a dilated conv is TensorFlow's native
    dilated conv, no space-to-batch. The same sums as atrous_conv2d's in another order: with the
    batch norm a scaling by s = rsqrt(1 + 0.001) (gamma 1, mean and beta 0, variance 1), each
    output of either path lies within float32 summation's bound of the exact s * y,
    (gamma_n + 4u) * s * sum |x w| with n = 9 C terms and u = 2^-24 (the 4u: the two roundings
    of the batch norm), so the two within twice that."""
    conv, bn = {256: ('res4b5_branch2b', 'bn4b5_branch2b'),
                512: ('res5b_branch2b', 'bn5b_branch2b')}[shape[3]]
    rng = np.random.RandomState(4)
    inference = DeepLabResNetModel(backbone.store, inference_only=True)
    v = backbone.store.variables
    c = shape[3]
    for suffix, value in (('beta', 0), ('moving_mean', 0), ('gamma', 1), ('moving_variance', 1)):
        v[bn + '/' + suffix].assign(np.full(c, value, np.float32))
    x = rng.randn(*shape).astype(np.float32)
    graph = tf.function(lambda x: inference.conv_bn(x, conv, bn, dilation=dilation, relu=False))
    ops = graph.get_concrete_function(tf.TensorSpec(shape)).graph.get_operations()
    assert not [op for op in ops if op.type in ('SpaceToBatchND', 'BatchToSpaceND')]
    assert [op.get_attr('dilations') for op in ops if op.type == 'Conv2D'] == [
        [1, dilation, dilation, 1]]
    native = graph(tf.constant(x)).numpy()
    s2b = backbone.conv_bn(tf.constant(x), conv, bn, dilation=dilation, relu=False).numpy()

    w = v[conv + '/weights'].numpy().astype(np.float64)
    s = 1 / np.sqrt(1.001)
    exact = s * conv_same(x.astype(np.float64), w, 1, dilation)
    magnitude = s * conv_same(np.abs(x).astype(np.float64), np.abs(w), 1, dilation)
    n, u = 9 * c, 2.0 ** -24
    bound = (n * u / (1 - n * u) + 4 * u) * magnitude
    assert native.shape == exact.shape == shape
    for got in (native, s2b):
        assert (np.abs(got - exact) <= bound).all()
    assert (np.abs(native - s2b) <= 2 * bound).all()
    # The bound is tight enough to tell a wrong dilation.
    wrong = s * conv_same(x.astype(np.float64), w, 1, 1)
    assert (np.abs(wrong - exact) > bound).any()


def test_a_training_backbone_keeps_space_to_batch(backbone):
    """A backbone that trains (the default; LSTM_model's in train mode) keeps the original's
    space-to-batch (atrous_conv2d): TensorFlow's CPU gradient of a native dilated conv
    (Conv2DBackpropFilter with Eigen's kernels) rejects dilations > 1. Its gradient reaches a
    dilated conv's weights."""
    x = tf.constant(np.random.RandomState(5).randn(1, 6, 6, 256).astype(np.float32))
    w = backbone.store.variables['res4b5_branch2b/weights']

    def loss(x):
        y = backbone.conv_bn(x, 'res4b5_branch2b', 'bn4b5_branch2b', dilation=2)
        return tf.reduce_sum(y * y)

    ops = tf.function(loss).get_concrete_function(x).graph.get_operations()
    assert [op.type for op in ops if op.type in ('SpaceToBatchND', 'BatchToSpaceND')] == [
        'SpaceToBatchND', 'BatchToSpaceND']
    with tf.GradientTape() as tape:
        value = loss(x)
    grad = tape.gradient(value, w).numpy()
    assert value > 0 and np.isfinite(grad).all() and (grad != 0).any()


@pytest.mark.parametrize('unit, bn, source, stride, dilation', [
    ('res3a', 'bn3a', 'res2c_relu', 2, 1),  # downsampling block: stride on branch1 and branch2a
    ('res4a', 'bn4a', 'res3b3_relu', 1, 2),  # dilated block: 3x3 at rate 2, no stride
])
def test_backbone_first_block_of_a_stage(backbone, unit, bn, source, stride, dilation):
    # The original (Caffe) block: branch1 = bn(conv1x1/s); branch2 = bn(conv1x1/s) relu ->
    # bn(conv3x3, dilation) relu -> bn(conv1x1); out = relu(branch1 + branch2).
    im = 50 * np.random.RandomState(1).randn(1, 64, 64, 3).astype(np.float32)
    layers = backbone(tf.constant(im))
    x = layers[source].numpy().astype(np.float64)
    v = {k: w.numpy().astype(np.float64) for k, w in backbone.store.variables.items()
         if k.startswith((unit + '_', bn + '_'))}

    def conv_bn(x, branch, stride=1, dilation=1, relu=True):
        y = conv_same(x, v['%s_%s/weights' % (unit, branch)], stride, dilation)
        y = batch_norm(y, v, '%s_%s' % (bn, branch))  # epsilon 0.001
        return np.maximum(y, 0) if relu else y

    short = conv_bn(x, 'branch1', stride, relu=False)
    y = conv_bn(x, 'branch2a', stride)
    y = conv_bn(y, 'branch2b', dilation=dilation)
    y = conv_bn(y, 'branch2c', relu=False)
    want = np.maximum(short + y, 0)
    got = layers[unit + '_relu'].numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    if stride > 1:
        # The stride on the 3x3 (the torchvision ResNet v1.5 habit) would give another result.
        y = conv_bn(conv_bn(x, 'branch2a'), 'branch2b', stride)
        other = np.maximum(short + conv_bn(y, 'branch2c', relu=False), 0)
        assert np.abs(other - want).max() > 1e-2 * np.abs(want).max()


def test_backbone_variables_are_the_original_ones(backbone):
    reference = {n: s for n, s in read_reference_variables('vars_eval_full.txt').items()
                 if not n.startswith(SCOPE)}
    assert len(reference) > 500
    assert_same_variables(backbone.store, reference)
    for name, var in backbone.store.variables.items():
        # moving statistics frozen (slim's are not trainable); weights/beta/gamma trainable
        assert var.trainable == (not name.endswith(('moving_mean', 'moving_variance'))), name


def test_backbone_endpoints_for_64x64(backbone):
    im = 50 * np.random.RandomState(0).randn(2, 64, 64, 3).astype(np.float32)
    layers = backbone(tf.constant(im))
    assert layers['res3b3_relu'].shape == (2, 8, 8, 512)
    assert layers['res4b22_relu'].shape == (2, 8, 8, 1024)
    assert layers['res5c_relu'].shape == (2, 8, 8, 2048)
    for k in ('res3b3_relu', 'res4b22_relu', 'res5c_relu'):
        x = layers[k].numpy()
        assert x.min() >= 0 and x.max() > 0, k  # after a relu, not all dead
    # Samples are independent (frozen batch norm, no batch statistics).
    alone = backbone(tf.constant(im[1:]))['res5c_relu'].numpy()[0]
    np.testing.assert_allclose(layers['res5c_relu'].numpy()[1], alone,
                               rtol=1e-4, atol=1e-5 * np.abs(alone).max())
