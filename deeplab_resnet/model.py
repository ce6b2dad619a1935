"""DeepLab-ResNet-101 as converted from Caffe by tensorflow-deeplab-resnet.

The original (external/tensorflow-deeplab-resnet/deeplab_resnet/model.py) unrolls the network in
400 lines; here it is built from a table. The Caffe layer names are the checkpoint contract and are
kept exactly: conv `res4b22_branch2b/weights`, batch norm `bn4b22_branch2b/{beta,gamma,
moving_mean,moving_variance}`, stem `conv1/weights` + `bn_conv1/...`.

Caffe conventions kept on purpose:
- the stride of a downsampling block sits on its 1x1 `branch2a` conv (and on `branch1`), not on
  the 3x3 conv;
- res4 and res5 keep stride 1 and dilate their 3x3 convs by 2 and 4 (output stride 8);
- no conv has a bias; every batch norm is in inference mode (moving statistics, epsilon 0.001,
  scale and offset), because the original always built it with is_training=False;
- padding is TensorFlow's SAME everywhere, max-pool 3x3/2 included.
"""

import functools

import tensorflow as tf

from util.pipeline.checkpoint import VariableStore, he_normal, ones, zeros

BN_EPSILON = 0.001

# (stage, blocks, bottleneck width, output channels, stride, dilation)
STAGES = [
    (2, 3, 64, 256, 1, 1),
    (3, 4, 128, 512, 2, 1),
    (4, 23, 256, 1024, 1, 2),
    (5, 3, 512, 2048, 1, 4),
]

ENDPOINTS = ('res3b3_relu', 'res4b22_relu', 'res5c_relu')
PAPER_BLOCKS = tuple(stage[1] for stage in STAGES)  # (3, 4, 23, 3): ResNet-101


def stages(blocks=PAPER_BLOCKS):
    """STAGES with other block counts: (1, 1, 1, 1) is a small backbone for CPU experiments
    (names and shapes of its variables are those of the first blocks of ResNet-101)."""
    if len(blocks) != 4 or min(blocks) < 1:
        raise ValueError('backbone blocks must be 4 counts >= 1, got %s' % (list(blocks),))
    return [(st, n) + tuple(rest) for (st, _, *rest), n in zip(STAGES, blocks)]


def endpoints(blocks=PAPER_BLOCKS):
    """Names of the last block of res3, res4, res5 (res3b3_relu, res4b22_relu, res5c_relu)."""
    return tuple('res%d%s_relu' % (st, block_names(st, n)[-1])
                 for st, n, *_ in stages(blocks)[1:])


def block_names(stage, num_blocks):
    """Caffe's block suffixes: a, b, c for short stages; a, b1, b2, ... for long ones."""
    if num_blocks <= 3:
        return [chr(ord('a') + i) for i in range(num_blocks)]
    return ['a'] + ['b%d' % i for i in range(1, num_blocks)]


def atrous_conv2d(x, w, rate, then=None):
    """SAME dilated conv as TF1's tf.nn.atrous_conv2d ran it: space-to-batch, VALID conv,
    batch-to-space. The same sums as a native dilated conv, and unlike that one its gradient
    has a CPU kernel (Conv2DBackpropFilter rejects dilations > 1 on CPU): the backbone of a
    model that trains runs this (DeepLabResNetModel inference_only). `then`, a per-channel
    function (batch norm, ReLU), runs before batch-to-space, which only moves positions: the
    same values, and Grappler fuses it into the conv."""
    k = w.shape[0]
    pad_total = (k - 1) * rate
    before, after = pad_total // 2, pad_total - pad_total // 2
    extra = [(-(n + pad_total)) % rate for n in (x.shape[1], x.shape[2])]  # to a multiple of rate
    paddings = [[before, after + extra[0]], [before, after + extra[1]]]
    y = tf.space_to_batch_nd(x, [rate, rate], paddings)
    y = tf.nn.conv2d(y, w, 1, 'VALID')
    if then is not None:
        y = then(y)
    return tf.batch_to_space(y, [rate, rate], [[0, extra[0]], [0, extra[1]]])


class DeepLabResNetModel(tf.Module):
    """`model(im)` -> dict of endpoints; im [B, H, W, 3] is BGR minus the mean.

    inference_only: no gradient is taken through it, so its dilated convs run as TensorFlow's
    native dilated conv (the same sums as `atrous_conv2d`, whose gradient a model that trains
    needs). With oneDNN, TensorFlow's CPU kernels on CPUs with AVX-512 VNNI or BF16, that is
    1.12x faster for res4's and 1.16x for res5's, and rounds res5's sums in another order
    (docs/speed.md); with Eigen's kernels both run alike, bit for bit."""

    def __init__(self, store=None, name='deeplab_resnet', blocks=PAPER_BLOCKS,
                 inference_only=False):
        super().__init__(name=name)
        self.stages = stages(blocks)
        self.endpoints = endpoints(blocks)
        self.store = store if store is not None else VariableStore()
        self.inference_only = inference_only
        self._calibrating = False
        self._conv_bn('conv1', 'bn_conv1', 7, 3, 64)
        in_ch = 64
        for stage, blocks, width, out_ch, _, _ in self.stages:
            for i, suffix in enumerate(block_names(stage, blocks)):
                unit = 'res%d%s' % (stage, suffix)
                bn = 'bn%d%s' % (stage, suffix)
                if i == 0:
                    self._conv_bn(unit + '_branch1', bn + '_branch1', 1, in_ch, out_ch)
                self._conv_bn(unit + '_branch2a', bn + '_branch2a', 1, in_ch, width)
                self._conv_bn(unit + '_branch2b', bn + '_branch2b', 3, width, width)
                self._conv_bn(unit + '_branch2c', bn + '_branch2c', 1, width, out_ch)
                in_ch = out_ch

    def _conv_bn(self, conv_name, bn_name, k, cin, cout):
        get = self.store.get
        get(conv_name + '/weights', [k, k, cin, cout], he_normal)
        get(bn_name + '/beta', [cout], zeros)
        get(bn_name + '/gamma', [cout], ones)
        # Moving statistics are never trained: the original froze them (is_training=False).
        get(bn_name + '/moving_mean', [cout], zeros, trainable=False)
        get(bn_name + '/moving_variance', [cout], ones, trainable=False)

    def conv_bn(self, x, conv_name, bn_name, stride=1, dilation=1, relu=True):
        w = tf.cast(self.store.variables[conv_name + '/weights'], x.dtype)
        then = functools.partial(self.batch_norm, bn_name=bn_name, relu=relu)
        if dilation == 1:
            return then(tf.nn.conv2d(x, w, strides=stride, padding='SAME'))
        if self._calibrating:  # the statistics of the output, without batch-to-space's crop
            return then(atrous_conv2d(x, w, dilation))
        if self.inference_only:
            return then(tf.nn.conv2d(x, w, strides=1, padding='SAME', dilations=dilation))
        return atrous_conv2d(x, w, dilation, then)

    def batch_norm(self, x, bn_name, relu):
        """The original's op: slim's batch_norm(is_training=False) ran FusedBatchNormV3,
        (x - mean) * (gamma * rsqrt(var + eps)) + beta, statistics in float32 for every dtype of
        x. The port rounds as the original did: at the paper size another order of the same
        sums (x * s + (beta - mean * s)) moved the logits by 1e-4 (docs/speed.md). Grappler
        fuses it, with the ReLU, into the conv before it (the original's graph: its undilated
        convs only)."""
        v = self.store.variables
        if self._calibrating:
            mean, var = tf.nn.moments(x, [0, 1, 2])
            v[bn_name + '/moving_mean'].assign(mean)
            v[bn_name + '/moving_variance'].assign(var)
        x = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=v[bn_name + '/gamma'], offset=v[bn_name + '/beta'],
            mean=v[bn_name + '/moving_mean'], variance=v[bn_name + '/moving_variance'],
            epsilon=BN_EPSILON, is_training=False)[0]
        return tf.nn.relu(x) if relu else x

    def calibrate(self, im):
        """Sets every batch norm's moving statistics to those of its input on the images `im`
        (eager, layer after layer), so that a randomly initialised backbone passes
        unit-scale features to the next layer instead of ones that grow with depth."""
        self._calibrating = True
        try:
            self(tf.convert_to_tensor(im, tf.float32))
        finally:
            self._calibrating = False

    def __call__(self, im):
        layers = {}
        with tf.name_scope('conv1'):  # op names say the layer (tools/profile_forward.py)
            x = self.conv_bn(im, 'conv1', 'bn_conv1', stride=2)  # [B, H/2, W/2, 64]
            x = tf.nn.max_pool2d(x, 3, 2, padding='SAME')  # [B, H/4, W/4, 64]
        layers['pool1'] = x
        for stage, blocks, _, _, stride, dilation in self.stages:
            for i, suffix in enumerate(block_names(stage, blocks)):
                unit = 'res%d%s' % (stage, suffix)
                bn = 'bn%d%s' % (stage, suffix)
                s = stride if i == 0 else 1
                with tf.name_scope(unit):
                    if i == 0:
                        shortcut = self.conv_bn(x, unit + '_branch1', bn + '_branch1', stride=s,
                                                relu=False)
                    else:
                        shortcut = x
                    y = self.conv_bn(x, unit + '_branch2a', bn + '_branch2a', stride=s)
                    y = self.conv_bn(y, unit + '_branch2b', bn + '_branch2b', dilation=dilation)
                    y = self.conv_bn(y, unit + '_branch2c', bn + '_branch2c', relu=False)
                    x = tf.nn.relu(shortcut + y)
                layers[unit + '_relu'] = x
        # res3b3_relu [B, H/8, W/8, 512], res4b22_relu [.., 1024], res5c_relu [.., 2048]
        return layers
