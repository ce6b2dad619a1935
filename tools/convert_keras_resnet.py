"""Converts Keras's ResNet-101 ImageNet weights into a backbone checkpoint for CMPC.

The output has the names and shapes of data/weights/deeplab_resnet_init.ckpt (the COCO-pretrained
DeepLab file of the paper), so training starts from it with --backbone-init. Get the Keras file
once, on a machine with internet access: Keras downloads it into ~/.keras/models/ when asked for
the ImageNet ResNet-101 (about 170 MB without the classifier):

    python -c "import keras; keras.applications.ResNet101(weights='imagenet', include_top=False)"

then convert it and train from it:

    python -m tools.convert_keras_resnet \
        -i ~/.keras/models/resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5 \
        -o data/weights/resnet101_imagenet_init.ckpt
    python -u trainval_model.py -m train -d unc -t train -n CMPC_model -emb \
        -f ckpts/unc/cmpc_imagenet --backbone-init data/weights/resnet101_imagenet_init.ckpt

A `.weights.h5` saved from that model (`model.save_weights('r101.weights.h5')`), a `.keras` or a
legacy full-model `.h5`, with or without the classifier, converts the same way.

It writes PREFIX.index + PREFIX.data-00000-of-00001 (a TF1 V2 checkpoint, 520 float32 tensors:
conv1/weights, bn_conv1/{beta,gamma,moving_mean,moving_variance}, res{2..5}{x}_branch{1,2a,2b,2c}
/weights, bn{2..5}{x}_branch{...}/...) and PREFIX.json (the source file, its sha256, the folding).
With --verify (the default) it then restores the checkpoint into our DeepLab-ResNet-101 and checks
it against the Keras network on a random 65 x 69 input. deeplab_resnet/convert.py explains the
mapping, the batch-norm folding and the stem padding difference.
"""

import argparse
import os
import sys

DEFAULT_OUTPUT = './data/weights/resnet101_imagenet_init.ckpt'
VERIFY_RTOL = 1e-4  # max |ours - Keras| / max |Keras| per endpoint; float32 gives ~1e-6


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Convert keras.applications.ResNet101 weights (.h5, .weights.h5, .keras) '
                    'into a deeplab_resnet_init-style TF1 checkpoint.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('-i', '--input', type=str, required=True,
                   help='Keras ResNet-101 weights file: the ImageNet '
                        'resnet101_weights_tf_dim_ordering_tf_kernels[_notop].h5, or a .weights.h5 '
                        '/ .keras / .h5 saved from keras.applications.ResNet101')
    p.add_argument('-o', '--output', type=str, default=DEFAULT_OUTPUT,
                   help='checkpoint prefix to write (PREFIX.index, PREFIX.data-*, PREFIX.json)')
    p.add_argument('--force', default=False, action='store_true',
                   help='overwrite an existing checkpoint at the output prefix')
    p.add_argument('--verify', default=True, action=argparse.BooleanOptionalAction,
                   help='restore the written checkpoint into DeepLab-ResNet-101 and compare its '
                        'features with the Keras network (fails above a relative difference of '
                        '%g)' % VERIFY_RTOL)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if os.path.isfile(args.output + '.index') and not args.force:
        sys.exit('error: %s.index exists; pass --force to overwrite it or choose another -o'
                 % args.output)
    from deeplab_resnet.convert import ConversionError, compare_with_keras, convert

    try:
        prefix, tensors, keras_model = convert(args.input, args.output)
    except (ConversionError, FileNotFoundError) as e:
        sys.exit('error: %s' % e)
    print('Wrote %d tensors to %s (from %s)' % (len(tensors), prefix, args.input))
    if not args.verify:
        return 0

    from deeplab_resnet import DeepLabResNetModel
    from util.pipeline.checkpoint import restore_checkpoint
    backbone = DeepLabResNetModel()
    restore_checkpoint(prefix, backbone.store.variables)
    worst = 0.0
    for name, (diff, scale) in compare_with_keras(keras_model, backbone).items():
        rel = diff / max(scale, 1e-12)
        worst = max(worst, rel)
        print('  %-13s max |ours - Keras| = %.3g (max |Keras| = %.3g, relative %.2g)'
              % (name, diff, scale, rel))
    if worst > VERIFY_RTOL:
        sys.exit('error: the converted backbone differs from the Keras network (relative %.3g > '
                 '%g)' % (worst, VERIFY_RTOL))
    print('Verified against Keras (relative difference %.2g <= %g)' % (worst, VERIFY_RTOL))
    return 0


if __name__ == '__main__':
    sys.exit(main())
