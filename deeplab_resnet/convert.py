"""Keras ResNet-101 ImageNet weights -> a `deeplab_resnet_init`-style backbone checkpoint.

The command is tools/convert_keras_resnet.py; this module holds the logic. The source is a weights file
in the `keras.applications.ResNet101` layout (ResNet v1, blocks [3, 4, 23, 3]): the ImageNet file
that Keras downloads (`resnet101_weights_tf_dim_ordering_tf_kernels[_notop].h5`, legacy HDF5), a
legacy full-model `.h5`, or a Keras 3 `.weights.h5` / `.keras` saved from that model. Keras is
only the reader of that format: the file is loaded into `keras.applications.ResNet101(
weights=None)` and each layer's weights are read by its Keras name. The output is a TF1 V2
checkpoint with the Caffe names and shapes of data/weights/deeplab_resnet_init.ckpt (520 tensors),
which `LSTM_model.restore_backbone` and `trainval_model.py --backbone-init` load.

Names. Keras `conv1_conv` + `conv1_bn` -> `conv1/weights` + `bn_conv1/*`; Keras
`conv{s}_block{k}_{0,1,2,3}_{conv,bn}` -> `res{s}{x}_branch{1,2a,2b,2c}/weights` +
`bn{s}{x}_branch{...}/*`, where x is Caffe's block suffix (a, b, c for res2 and res5; a, b1, b2, ...
for res3 and res4) and `_0` (the projection shortcut) exists only in the first block of a stage.

Architecture. Keras's ResNet v1 has the stride of a downsampling block on its first 1x1 conv
(`_1_conv`) and on the shortcut (`_0_conv`), as Caffe's branch2a/branch1, and SAME padding on the
3x3 convs; so res2 and res3 are the same network. Keras's res4 and res5 downsample by 2 each;
DeepLab keeps stride 1 there and dilates the 3x3 convs by 2 and 4 instead (output stride 8). The
weights carry over unchanged (that is how DeepLab itself was made from the ImageNet ResNet), and
the result is exact, not an approximation: our res4 output at even positions is Keras's res4
output and our res5 output at multiples of 4 is Keras's res5 output
(`res4b22_relu[:, ::2, ::2] == conv4_block23_out`, `res5c_relu[:, ::4, ::4] == conv5_block3_out`;
the zero padding of the dilated 3x3 convs falls exactly where Keras's falls).

Batch norm. Keras convs have biases and Keras's batch norm uses epsilon 1.001e-5; ours have no
conv bias and epsilon 0.001 (see fold_conv_bn for the exact folding).

Stem padding (the one place where the two networks differ). Keras pads explicitly: ZeroPadding2D
(3) then conv1 7x7/2 VALID, ZeroPadding2D(1) then max-pool 3x3/2 VALID. DeepLab uses TensorFlow's
SAME, which pads (k - 1 - (H - 1) % s) split with the smaller half first: for an even size,
conv1 pads 2 before / 3 after (Keras 3 / 3) and for an even conv1 output the pool pads 0 before /
1 after (Keras 1 / 1; zero padding after a ReLU is the same as SAME's -inf padding). So conv1
output i is centred on input pixel 2i (Keras) or 2i + 1 (DeepLab, even sizes), and pool1 cell i
on input pixel 4i (Keras) or 4i + (H - 1) % 4 (DeepLab): the stems are identical when H and W are
1 mod 4 (e.g. DeepLab's 321 x 321 crops), and for CMPC's 320 x 320 inputs DeepLab's stride-4 grid
sits 3 pixels further down and right. Exactly: for even H and W, Keras's stem on an image equals
our stem on that image zero-padded by one pixel on every side (zero = the mean colour), cropped to
the top-left H/4 x W/4. Everything after pool1 is the same network.

Preprocessing. Keras's ResNet101 ImageNet weights expect Caffe-style input (`resnet.
preprocess_input`: BGR minus the ImageNet mean [103.939, 116.779, 123.68]), the same channel order
and nearly the same mean as DeepLab's ([104.00698793, 116.66876762, 122.67891434], MU in
trainval_model.py): the Keras network sees its input shifted by (-0.07, +0.11, +1.00) grey
levels (B, G, R), under 2% of a pixel's standard deviation. The converter keeps DeepLab's mean, so
both initialisations share one input pipeline.
"""

import hashlib
import os
import warnings

import numpy as np

from util.pipeline.checkpoint import save_checkpoint

from .model import BN_EPSILON, STAGES, block_names

KERAS_BN_EPSILON = 1.001e-5
KERAS_MEAN_BGR = (103.939, 116.779, 123.68)
SUFFIXES = ('.weights.h5', '.keras', '.h5', '.hdf5')
BRANCHES = (('_0', '_branch1'), ('_1', '_branch2a'), ('_2', '_branch2b'), ('_3', '_branch2c'))


class ConversionError(ValueError):
    """The input is not a Keras ResNet-101 weights file in the keras.applications layout."""


def layer_pairs():
    """The 104 conv + batch-norm pairs: (keras prefix, conv name, bn name, [k, k, cin, cout])."""
    pairs = [('conv1', 'conv1', 'bn_conv1', [7, 7, 3, 64])]
    in_ch = 64
    for stage, blocks, width, out_ch, _, _ in STAGES:
        for i, suffix in enumerate(block_names(stage, blocks)):
            keras_block = 'conv%d_block%d' % (stage, i + 1)
            shapes = {'_0': [1, 1, in_ch, out_ch], '_1': [1, 1, in_ch, width],
                      '_2': [3, 3, width, width], '_3': [1, 1, width, out_ch]}
            for keras_branch, caffe_branch in BRANCHES:
                if keras_branch == '_0' and i > 0:
                    continue  # identity shortcut
                pairs.append((keras_block + keras_branch,
                              'res%d%s%s' % (stage, suffix, caffe_branch),
                              'bn%d%s%s' % (stage, suffix, caffe_branch),
                              shapes[keras_branch]))
            in_ch = out_ch
    return pairs


def fold_conv_bn(bias, gamma, beta, mean, var, src_eps=KERAS_BN_EPSILON, dst_eps=BN_EPSILON):
    """Keras (conv bias b, BN g, be, m, v, eps 1.001e-5) -> our BN (gamma', beta', mean', var').

    With x = conv_nobias(z), the same kernel on both sides:
        Keras: ((x + b) - m) / sqrt(v + 1.001e-5) * g + be
        ours:  (x - mean') / sqrt(var' + 0.001) * gamma' + beta'
    These are equal for every x (both are affine in x) when the slopes and the values at x = 0
    agree. Take
        mean' = m - b,  var' = v,  beta' = be,  gamma' = g * sqrt(v + 0.001) / sqrt(v + 1.001e-5);
    then slope: gamma' / sqrt(v + 0.001) = g / sqrt(v + 1.001e-5), and with mean' = m - b the two
    numerators x - mean' and (x + b) - m are the same: exact in real arithmetic. Keeping var' = v
    (rather than var' = v + 1.001e-5 - 0.001 with gamma' = g, which is negative for v < 0.00099)
    keeps the moving variance a variance. Computed in float64, stored as float32.
    """
    bias, gamma, beta, mean, var = (np.asarray(a, dtype=np.float64)
                                    for a in (bias, gamma, beta, mean, var))
    if np.any(var < 0):
        raise ConversionError('negative moving variance')
    new_gamma = gamma * np.sqrt((var + dst_eps) / (var + src_eps))
    return {'gamma': new_gamma.astype(np.float32), 'beta': beta.astype(np.float32),
            'moving_mean': (mean - bias).astype(np.float32),
            'moving_variance': var.astype(np.float32)}


def _keras():
    os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
    import keras
    return keras


def check_architecture(model):
    """Guards the mapping against a Keras whose ResNet101 is not the v1 layout assumed here."""
    for stage in (3, 4, 5):
        for name, stride in (('conv%d_block1_1_conv' % stage, (2, 2)),
                             ('conv%d_block1_2_conv' % stage, (1, 1))):
            layer = model.get_layer(name)
            if tuple(layer.strides) != stride:
                raise ConversionError(
                    'keras.applications.ResNet101 has stride %s on %s, expected %s (ResNet v1: '
                    'stride on the first 1x1 conv, as Caffe)' % (layer.strides, name, stride))
    if model.get_layer('conv1_bn').epsilon != KERAS_BN_EPSILON:
        raise ConversionError('Keras ResNet101 batch norm epsilon is %s, expected %s'
                              % (model.get_layer('conv1_bn').epsilon, KERAS_BN_EPSILON))


def load_keras_resnet101(path):
    """`keras.applications.ResNet101` (no top) with the weights of `path`; raises ConversionError.

    Every weight of the model is set to NaN before loading, so that a layer the file does not
    fill (a file of another network, a Keras version that skips silently) cannot pass unnoticed.
    Legacy `.h5` files are read by layer name, so that the layer order of the Keras version that
    wrote them does not matter and a file with the classifier (`predictions`) loads as well.
    """
    keras = _keras()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError('Keras weights file %s not found (expected the ResNet-101 ImageNet '
                                'weights, e.g. resnet101_weights_tf_dim_ordering_tf_kernels_notop'
                                '.h5, or a .weights.h5 saved from keras.applications.ResNet101)'
                                % path)
    if not path.endswith(SUFFIXES):
        raise ConversionError('%s: unknown file type; expected one of %s'
                              % (path, ', '.join(SUFFIXES)))
    legacy = path.endswith(('.h5', '.hdf5')) and not path.endswith('.weights.h5')
    # A Keras 3 file saved from the model with its classifier only loads into that model.
    variants = (False,) if legacy else (False, True)
    errors = []
    for include_top in variants:
        model = keras.applications.ResNet101(weights=None, include_top=include_top)
        for var in model.weights:
            var.assign(np.full(var.shape, np.nan, dtype=var.dtype))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            try:
                if legacy:
                    model.load_weights(path, by_name=True)
                else:
                    model.load_weights(path)
            except Exception as e:  # Keras raises ValueError, KeyError, OSError, ...
                errors.append('%s (model with include_top=%s)' % (_first_lines(e), include_top))
                continue
        unfilled = [prefix + part for prefix, _, _, _ in layer_pairs() for part in ('_conv', '_bn')
                    if not all(np.all(np.isfinite(w.numpy()))
                               for w in model.get_layer(prefix + part).weights)]
        if unfilled:
            errors.append('the file leaves %d of the 208 ResNet-101 layers unset, e.g. %s%s '
                          '(model with include_top=%s)'
                          % (len(unfilled), ', '.join(unfilled[:4]),
                             ''.join('; Keras warned: ' + _first_lines(w.message)
                                     for w in caught[:1]), include_top))
            continue
        check_architecture(model)
        return model
    raise ConversionError(
        '%s is not a Keras ResNet-101 weights file in the keras.applications.ResNet101 layout '
        '(expected layers conv1_conv, conv1_bn, conv{2..5}_block{k}_{0,1,2,3}_{conv,bn} with '
        '[3, 4, 23, 3] blocks; a ResNet-50/152 or ResNetV2 file does not fit):\n  %s'
        % (path, '\n  '.join(errors)))


def _first_lines(message, n=3, limit=300):
    text = ' | '.join(str(message).strip().splitlines()[:n])
    return text if len(text) <= limit else text[:limit] + ' ...'



def convert_keras_model(model):
    """name -> float32 array, the 520 backbone tensors of deeplab_resnet_init.ckpt."""
    tensors = {}
    for prefix, conv_name, bn_name, shape in layer_pairs():
        conv = model.get_layer(prefix + '_conv')
        bn = model.get_layer(prefix + '_bn')
        kernel, bias = [w.numpy() for w in conv.weights]
        if list(kernel.shape) != shape or list(bias.shape) != shape[-1:]:
            raise ConversionError('%s_conv has kernel %s and bias %s, expected %s and %s'
                                  % (prefix, list(kernel.shape), list(bias.shape), shape,
                                     shape[-1:]))
        gamma, beta, mean, var = (bn.gamma.numpy(), bn.beta.numpy(), bn.moving_mean.numpy(),
                                  bn.moving_variance.numpy())
        if bn.epsilon != KERAS_BN_EPSILON:
            raise ConversionError('%s_bn has epsilon %s, expected %s'
                                  % (prefix, bn.epsilon, KERAS_BN_EPSILON))
        try:
            folded = fold_conv_bn(bias, gamma, beta, mean, var)
        except ConversionError as e:
            raise ConversionError('%s_bn: %s' % (prefix, e)) from None
        tensors[conv_name + '/weights'] = kernel.astype(np.float32)
        for key, value in folded.items():
            tensors[bn_name + '/' + key] = value
    return tensors


def sha256(path, chunk=1 << 22):
    h = hashlib.sha256()
    with open(path, 'rb') as fh:
        for block in iter(lambda: fh.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def conversion_meta(path, model):
    """What is written beside the checkpoint (prefix.json): where it came from and how."""
    keras = _keras()
    import tensorflow as tf
    return {
        'kind': 'backbone_init',
        'source': os.path.abspath(path),
        'source_sha256': sha256(path),
        'source_layout': 'keras.applications.ResNet101 (include_top=False), %d layers'
                         % len(model.layers),
        'keras_version': keras.__version__,
        'tensorflow_version': tf.__version__,
        'batch_norm': "conv bias b and Keras BN (g, be, m, v, eps %g) folded into our BN (eps %g):"
                      " gamma = g*sqrt((v+%g)/(v+%g)), beta = be, moving_mean = m - b, "
                      "moving_variance = v" % (KERAS_BN_EPSILON, BN_EPSILON, BN_EPSILON,
                                               KERAS_BN_EPSILON),
        'stem_padding': 'Keras pads conv1 3/3 and pool1 1/1; DeepLab uses SAME: identical stems '
                        'for H, W = 1 mod 4, else DeepLab\'s pool1 grid is shifted by '
                        '(H-1) % 4 pixels',
        'input': 'BGR minus mean; Keras trained with mean %s, DeepLab uses '
                 '[104.00698793, 116.66876762, 122.67891434]' % list(KERAS_MEAN_BGR),
    }


def convert(path, prefix):
    """Converts the Keras file `path` into the checkpoint `prefix`.

    Returns (prefix, {name: float32 array}, the loaded Keras model).
    """
    model = load_keras_resnet101(path)
    tensors = convert_keras_model(model)
    save_checkpoint(prefix, tensors, meta=conversion_meta(path, model))
    return prefix, tensors, model


def compare_with_keras(keras_model, backbone, size=(65, 69), seed=0):
    """Max |difference| / max |Keras| of our backbone against the Keras network, per endpoint.

    H and W must be 1 mod 4 (identical stems, see the module docstring); res4 and res5 are
    compared on the positions that Keras's strided stages compute. `backbone` is a restored
    DeepLabResNetModel. Returns {endpoint: (max abs difference, max abs Keras value)}.
    """
    import tensorflow as tf
    keras = _keras()
    h, w = size
    if h % 4 != 1 or w % 4 != 1:
        raise ValueError('compare_with_keras needs H and W equal to 1 mod 4, got %d x %d' % (h, w))
    pairs = (('pool1', 'pool1_pool', 1), ('res3b3_relu', 'conv3_block4_out', 1),
             ('res4b22_relu', 'conv4_block23_out', 2), ('res5c_relu', 'conv5_block3_out', 4))
    sub = keras.Model(keras_model.input, [keras_model.get_layer(k).output for _, k, _ in pairs])
    im = tf.random.stateless_normal([1, h, w, 3], seed=[seed, 0], stddev=60.0)  # [1, H, W, 3]
    theirs = [np.asarray(t) for t in sub(im, training=False)]
    ours = backbone(im)
    result = {}
    for (name, _, step), ref in zip(pairs, theirs):
        mine = ours[name].numpy()[:, ::step, ::step]
        if mine.shape != ref.shape:
            raise AssertionError('%s: ours %s, Keras %s' % (name, mine.shape, ref.shape))
        result[name] = (float(np.abs(mine - ref).max()), float(np.abs(ref).max()))
    return result
