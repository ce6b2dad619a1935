"""Training works: a small CMPC drives the loss of one fixed batch down."""

import numpy as np
import tensorflow as tf

from CMPC_model import LSTM_model
from fixtures import TINY, scene


def test_overfit_one_batch():
    tf.random.set_seed(0)
    rng = np.random.RandomState(0)
    model = LSTM_model(mode='train', start_lr=0.003, backbone_blocks=(1, 1, 1, 1), **TINY)
    ims, masks = zip(*[scene(rng, 64, 64) for _ in range(2)])
    im = np.stack(ims).astype(np.float32)[..., ::-1] - np.array([104.0, 116.7, 122.7])
    model.backbone.calibrate(im)
    mask = np.stack(masks).astype(np.float32)[..., None]
    words = np.zeros((2, 20), np.int32)
    words[0, 16:] = [5, 6, 7, 8]
    words[1, 18:] = [9, 10]
    losses = [float(model.train_step(words, im, mask)['cls_loss']) for _ in range(80)]
    # At initialisation every pixel costs about log 2 (4096 px: ~2800 per image); a model that
    # fits these two masks costs a small fraction of that.
    assert losses[0] > 2000
    assert np.mean(losses[-5:]) < 0.25 * losses[0], losses[::10]
    out = model.forward(words, im)
    iou = [((out['up'][i] > 0) & (mask[i] > 0)).sum() / ((out['up'][i] > 0) | (mask[i] > 0)).sum()
           for i in range(2)]
    assert min(iou) > 0.5, iou
