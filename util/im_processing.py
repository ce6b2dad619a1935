"""Resize-and-pad / resize-and-crop with the geometry and the resize of the 2018 original.

The original called `skimage.transform.resize(im, shape)` under scikit-image 0.13, whose
defaults were: bilinear (order=1), mode='constant' with cval=0, no anti-aliasing, input
converted with `img_as_float`, computation in float64 and output always float64, and the
output clipped to the input's [min, max] except for pixels exactly equal to cval when cval
lies outside that range. Today's `resize` differs in three places, handled here:
  * anti-aliasing is on by default when downsampling  -> passed anti_aliasing=False;
  * float32 input now gives float32 output            -> input cast to float64 first;
  * the clip now widens the range to include cval when some output pixel equals cval
    -> clip=False, then 0.13's clip written out (for a resize no output pixel can be
    exactly 0 unless the input contains 0, so both clips agree; ours keeps it explicit).
Bool input (masks) is rejected by today's resize for order=1; 0.13 turned it into 0./1.
through img_as_float, which we do by hand.

The pixel-centre mapping is the same in both versions: output pixel o samples the input
at (o + 0.5) * in_size / out_size - 0.5, and neighbours outside the image read as cval.
Known residual difference: 0.13 applied the mapping through an AffineTransform estimated
by SVD, so coordinates carried ~1e-13 rounding errors (platform-dependent, LAPACK), while
`scipy.ndimage.zoom` computes them directly. Values differ by < 1e-12, but where a sample
coordinate is an exact integer (same-size resize, downsampling by exactly 3, ...) 0.13
gave the neighbour pixel a ~1e-13 weight; a 0/1 map later tested with `> 0` (as masks and
predictions are) then grew by one pixel along some edges there, and here it does not.
Integer coordinates occur only when in_size / out_size = p / q in lowest terms has p and
q both odd (1/1, 3/1, 5/3, ...); 320 <-> 640, 480, 500 never hit them.
"""

import numpy as np
import skimage
import skimage.transform


def _check_image(im, name, input_h, input_w):
    if not isinstance(im, np.ndarray):
        raise TypeError('%s: im must be a numpy array, got %s' % (name, type(im).__name__))
    if im.ndim not in (2, 3) or im.shape[0] == 0 or im.shape[1] == 0:
        raise ValueError('%s: im must be a non-empty [H, W] or [H, W, C] array, got shape %s'
                         % (name, im.shape))
    for arg, val in (('input_h', input_h), ('input_w', input_w)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val <= 0:
            raise ValueError('%s: %s must be a positive int, got %r' % (name, arg, val))


def _resize_like_skimage_013(im, out_h, out_w):
    """skimage 0.13 `transform.resize(im, [out_h, out_w])`: float64 [out_h, out_w(, C)]."""
    if out_h <= 0 or out_w <= 0:
        raise ValueError('resize: image of shape %s would be resized to %dx%d'
                         % (im.shape, out_h, out_w))
    # img_as_float as 0.13 did: uint8 -> x / 255, bool -> 0./1., floats unchanged in value.
    if im.dtype == bool:
        src = im.astype(np.float64)
    else:
        src = skimage.img_as_float(im).astype(np.float64, copy=False)
    out = skimage.transform.resize(src, (out_h, out_w) + src.shape[2:], order=1,
                                   mode='constant', cval=0, clip=False,
                                   preserve_range=False, anti_aliasing=False)  # float64
    # 0.13's clip: to the input range, keeping pixels that are exactly cval when cval=0 is
    # outside that range (e.g. an image whose darkest value is > 0 keeps its 0 borders
    # only where the output is exactly 0; edge blends with 0 are lifted to the minimum).
    lo, hi = src.min(), src.max()
    keep_cval = not (lo <= 0 <= hi)
    if keep_cval:
        is_cval = out == 0
    np.clip(out, lo, hi, out=out)
    if keep_cval:
        out[is_cval] = 0
    return out


def resize_and_pad(im, input_h, input_w):
    """Resize im to fit inside input_h x input_w keeping aspect ratio, zero-pad centred.

    im: [H, W] or [H, W, C], any dtype. Returns float64 [input_h, input_w(, C)] with the
    values of skimage 0.13's resize (uint8 becomes [0, 1]).
    """
    _check_image(im, 'resize_and_pad', input_h, input_w)
    im_h, im_w = im.shape[:2]
    scale = min(input_h / im_h, input_w / im_w)
    resized_h = int(np.round(im_h * scale))  # np.round: half to even, as the original
    resized_w = int(np.round(im_w * scale))
    # The original floors an integer and then halves it; for these non-negative
    # integers that is floor((input - resized) / 2).
    pad_h = int(np.floor(input_h - resized_h) / 2)
    pad_w = int(np.floor(input_w - resized_w) / 2)

    resized_im = _resize_like_skimage_013(im, resized_h, resized_w)  # [rh, rw(, C)]
    new_im = np.zeros((input_h, input_w) + im.shape[2:], dtype=resized_im.dtype)
    new_im[pad_h:pad_h + resized_h, pad_w:pad_w + resized_w, ...] = resized_im
    return new_im


def resize_and_crop(im, input_h, input_w):
    """Resize im to cover input_h x input_w keeping aspect ratio, crop the centre.

    im: [H, W] or [H, W, C], any dtype. Returns float64 [input_h, input_w(, C)]. Used to
    map a square prediction back onto the original image frame (the inverse of
    resize_and_pad).
    """
    _check_image(im, 'resize_and_crop', input_h, input_w)
    im_h, im_w = im.shape[:2]
    scale = max(input_h / im_h, input_w / im_w)
    resized_h = int(np.round(im_h * scale))
    resized_w = int(np.round(im_w * scale))
    crop_h = int(np.floor(resized_h - input_h) / 2)
    crop_w = int(np.floor(resized_w - input_w) / 2)

    resized_im = _resize_like_skimage_013(im, resized_h, resized_w)  # [rh, rw(, C)]
    return resized_im[crop_h:crop_h + input_h, crop_w:crop_w + input_w, ...].copy()


def as_rgb(im):
    """A grey [h, w] image as [h, w, 3], its channel repeated; a colour image unchanged."""
    return np.tile(im[:, :, None], (1, 1, 3)) if im.ndim == 2 else im


def network_input(image, input_h, input_w, mean_bgr):
    """Test mode's input: (proc_im uint8 [H, W, 3] RGB, resized and padded as the original
    did, which DenseCRF also takes; im float32 [H, W, 3], proc_im in BGR minus mean_bgr)."""
    proc_im = skimage.img_as_ubyte(resize_and_pad(image, input_h, input_w))
    return proc_im, (proc_im.astype(np.float32)[:, :, ::-1] - mean_bgr).astype(np.float32)
