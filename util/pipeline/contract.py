"""The model's input/output contract, in numpy: what the network takes and how its output maps
back to the image. Train, test, predict, export and the benchmark all go through here.

Input. Images are RGB uint8 (grey is repeated to RGB). The network takes H x W float32 in BGR
minus the Caffe backbone's mean MU:
  - training (`train_sample`): the batch file's image, already resized and padded to H x W by
    build_batches.py (resized and padded here when it was built for another size);
  - test (`network_input`): the image at its own size, resized and padded to H x W as uint8
    (`proc_im`, which DenseCRF also takes), then BGR minus MU.

Output. `up` [H, W] are the final logits at the input resolution. The mask is the original's:
threshold the logits at SCORE_THRESH, resize-and-crop that 0/1 map back to the image (`to_image`);
a pixel is foreground where the result is > 0 (the original's IoU counted any non-zero value).
"""

import numpy as np
import skimage

from util import im_processing

MU = np.array((104.00698793, 116.66876762, 122.67891434))  # BGR mean of the Caffe backbone
SCORE_THRESH = 1e-9


def train_sample(im, mask, H, W):
    """A training image as the network takes it: (im float64 [H, W, 3] BGR minus MU, mask
    bool [H, W] or None). A batch built for another input size is resized-and-padded as
    build_batches.py does."""
    if im.shape[:2] != (H, W):
        im = skimage.img_as_ubyte(im_processing.resize_and_pad(im, H, W))
    im = im_processing.as_rgb(im).astype(np.float32)[:, :, ::-1] - MU
    return im, None if mask is None else train_mask(mask, H, W)


def train_mask(mask, H, W):
    """A training mask bool [H, W]; one built for another input size is resized-and-padded as
    float, then > 0, as build_batches.py does."""
    if mask.shape != (H, W):
        mask = im_processing.resize_and_pad(mask.astype(np.float32), H, W) > 0
    return mask


def train_clip(frames, mask, H, W):
    """A training clip as the video network takes it: (clip float32 [16, H, W, 3] BGR minus MU,
    the annotated frame's mask bool [H, W]); each frame as train_sample."""
    clip = np.stack([train_sample(f, None, H, W)[0] for f in frames])
    return clip, train_mask(mask, H, W)


def network_input(image, H, W):
    """Test time: (proc_im uint8 [H, W, 3] RGB resized and padded, im float32 [H, W, 3] BGR
    minus MU) for an RGB uint8 image of any size."""
    return im_processing.network_input(image, H, W, MU)


def to_image(score_map, h, w):
    """An [H, W] map at the network's resolution -> float64 [h, w] at the image's (the
    inverse of resize-and-pad: resize-and-crop)."""
    return im_processing.resize_and_crop(score_map, h, w)


def threshold(logits):
    """The original's 0/1 prediction at the network's resolution, float32."""
    return (logits >= SCORE_THRESH).astype(np.float32)


def sigmoid(logits):
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
