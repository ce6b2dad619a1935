"""util/pipeline/evaluate.py, the test-time loop: batching, post-processing and I/U, worked by hand on a
fake forward function, and the same figures through both readers."""

import numpy as np
import pytest

from helpers import write_batches
from util.pipeline import contract
from util.pipeline.evaluate import DCRF, PLAIN, Sample, evaluate, image_masks, read_samples

H = W = 16


def box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), np.float32)
    m[y0:y1, x0:x1] = 1
    return m


def sample(k, mask):
    """A sample whose image is already H x W (resize-and-crop back is the identity) and whose
    first word id tells the fake forward where to put its box."""
    words = np.zeros(5, np.int32)
    words[-1] = k + 1
    image = np.full((H, W, 3), 100, np.uint8)
    proc_im, net_im = contract.network_input(image, H, W)
    return Sample(words=words, image=image, proc_im=proc_im, net_im=net_im, mask=mask,
                  sent='expression %d' % k)


def fake_forward(words, ims):
    """Logits +5 inside rows 0..(4 k + 4) x columns 0..8 for word id k, -5 elsewhere."""
    B = len(words)
    up = np.full((B, H, W, 1), -5.0, np.float32)
    for b, k in enumerate(words[:, -1]):
        up[b, :4 * int(k), :8, 0] = 5.0
    return {'up': up, 'sigm': 1 / (1 + np.exp(-up))}


# Ground truth: rows 0..8 x columns 0..8 (64 pixels) for every sample.
# Sample 0 predicts 4 x 8 = 32 pixels inside it: I = 32, U = 64 -> IoU 0.5.
# Sample 1 predicts 8 x 8 = 64 pixels, the box itself: I = 64, U = 64 -> IoU 1.
# Sample 2 predicts 12 x 8 = 96 pixels: I = 64, U = 96 -> IoU 2/3.
# Overall IoU = (32 + 64 + 64) / (64 + 64 + 96) = 160 / 224; mean IoU = (0.5 + 1 + 2/3) / 3;
# precision@t counts IoU >= t: @0.5 3/3, @0.6 2/3, @0.7 @0.8 @0.9 1/3.
WANT_IU = [(32, 64), (64, 64), (64, 96)]


@pytest.mark.parametrize('batch_size', [1, 2, 3])
def test_hand_worked_figures_at_any_batch_size(batch_size):
    samples = [sample(k, box(H, W, 0, 8, 0, 8)) for k in range(3)]
    seen = []
    result = evaluate(fake_forward, iter(samples), 3, batch_size=batch_size, progress=False,
                      on_output=lambda s, out: seen.append((s.sent, out['up'].shape)))
    assert [(r['I'], r['U']) for r in result.per_sample] == WANT_IU
    assert [r['batch_no'] for r in result.per_sample] == [0, 1, 2]
    assert seen == [('expression %d' % k, (H, W, 1)) for k in range(3)]
    figures = result.to_dict()['without_DenseCRF']
    assert figures['overall_iou'] == pytest.approx(160 / 224)
    assert figures['mean_iou'] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert [figures['precision@%s' % t] for t in (0.5, 0.6, 0.7, 0.8, 0.9)] == pytest.approx(
        [1, 2 / 3, 1 / 3, 1 / 3, 1 / 3])
    assert result.to_dict()['expressions'] == 3


def test_image_masks_map_back_to_the_image_size():
    # An 8 x 16 image is padded to 16 x 16 with 4 rows above and below: network rows 4..8
    # are the image's rows 0..4.
    up = np.full((H, W), -1.0, np.float32)
    up[4:8, :] = 1.0
    masks = image_masks(up, 1 / (1 + np.exp(-up)), np.zeros((H, W, 3), np.uint8), 8, 16)
    assert list(masks) == [PLAIN]
    assert masks[PLAIN].shape == (8, 16)
    assert (masks[PLAIN][:3] > 0).all() and not (masks[PLAIN][5:] > 0).any()


def test_dcrf_is_a_second_evaluator():
    samples = [sample(1, box(H, W, 0, 8, 0, 8))]
    result = evaluate(fake_forward, iter(samples), 1, dcrf=True, progress=False)
    assert list(result.evaluators) == [PLAIN, DCRF]
    assert {'I', 'U', 'I_dcrf', 'U_dcrf'} <= set(result.per_sample[0])


def test_both_readers_give_the_same_samples(tmp_path):
    write_batches(str(tmp_path), 'unc_val', 3, [(40, 56), (64, 64)], seed=2)
    n1, python = read_samples(str(tmp_path), 'unc_val', 64, 64, max_samples=2)
    n2, tf_data = read_samples(str(tmp_path), 'unc_val', 64, 64, max_samples=2, tf_data=True)
    assert n1 == n2 == 2
    a, b = list(python), list(tf_data)
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        for key in ('words', 'image', 'proc_im', 'net_im', 'mask'):
            np.testing.assert_array_equal(getattr(x, key), getattr(y, key), err_msg=key)
        assert x.sent == y.sent
