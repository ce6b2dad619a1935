"""DenseCRF post-processing of the foreground probability, with the original's settings.

pydensecrf (PyPI wheel `pydensecrf2`, module `pydensecrf`) is a fully-connected CRF with
a Gaussian (smoothness) and a bilateral (appearance) Potts kernel; mean-field inference.

Saturated probabilities: a float32 sigmoid is exactly 1.0 for logits above ~17, so the
original's -log(1 - sigm) is +inf there (and -log(sigm) is +inf where sigm == 0). We keep
those infinities instead of clipping: pydensecrf's exp-and-normalise subtracts the
per-pixel maximum of the negated energies, which is finite because the other label's
energy is finite, so an inf simply pins that pixel to the other label (tested, no NaN).
That is what the original computed; only numpy's divide-by-zero warning is silenced.
"""

import numpy as np
from pydensecrf import densecrf

# Original settings (trainval_model.py test()).
GAUSSIAN_SXY, GAUSSIAN_COMPAT = 3, 3
BILATERAL_SXY, BILATERAL_SRGB, BILATERAL_COMPAT = 20, 3, 10
N_INFERENCE_STEPS = 5


def dense_crf(proc_im, sigm):
    """Refine a foreground probability map with a 2-label DenseCRF.

    proc_im: uint8 [H, W, 3], the padded network input image (before mean subtraction).
    sigm: [H, W] foreground probability in [0, 1] (cast to float32, as the TF output was).
    Returns float32 [H, W] of 0./1.: the per-pixel argmax after 5 mean-field steps.
    """
    proc_im = np.asarray(proc_im)
    sigm = np.asarray(sigm)
    if sigm.ndim != 2:
        raise ValueError('dense_crf: sigm must be [H, W], got shape %s' % (sigm.shape,))
    H, W = sigm.shape
    if proc_im.dtype != np.uint8 or proc_im.shape != (H, W, 3):
        raise ValueError('dense_crf: proc_im must be uint8 [%d, %d, 3] like sigm, got %s %s'
                         % (H, W, proc_im.dtype, proc_im.shape))
    sigm = sigm.astype(np.float32)
    if not np.all((sigm >= 0) & (sigm <= 1)):  # also rejects NaN
        raise ValueError('dense_crf: sigm must be probabilities in [0, 1]')

    with np.errstate(divide='ignore'):  # -log(0) = inf is intended, see module docstring
        energy_bg = -np.log(1 - sigm)    # [H, W] label 0
        energy_fg = -np.log(sigm)        # [H, W] label 1
    # pydensecrf wants float32 [n_labels, H * W], C-contiguous, row-major pixels.
    unary = np.ascontiguousarray(np.stack([energy_bg, energy_fg]).reshape(2, -1),
                                 dtype=np.float32)

    crf = densecrf.DenseCRF2D(W, H, 2)  # width first
    crf.setUnaryEnergy(unary)
    crf.addPairwiseGaussian(sxy=GAUSSIAN_SXY, compat=GAUSSIAN_COMPAT)
    crf.addPairwiseBilateral(sxy=BILATERAL_SXY, srgb=BILATERAL_SRGB,
                             rgbim=np.ascontiguousarray(proc_im), compat=BILATERAL_COMPAT)
    q = np.asarray(crf.inference(N_INFERENCE_STEPS))  # [2, H * W]
    return np.argmax(q, axis=0).reshape(H, W).astype(np.float32)
