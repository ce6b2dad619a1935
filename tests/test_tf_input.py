"""util/pipeline/tf_input.py gives exactly the arrays of the Python path (DataReader's load_batch +
util/contract.train_sample, and test mode's proc_im), every file once per epoch."""

import numpy as np
import pytest
import skimage

from helpers import write_batches
from util.pipeline.contract import MU, train_sample
from util import im_processing
from util.data_reader import BatchFileError, load_batch
from util.pipeline import tf_input  # not its test_dataset by name: pytest would collect it
from util.pipeline.tf_input import list_batch_files, train_dataset

H = W = 32
N = 7


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('tfin'))
    # Mixed sizes, the first one the network's: both the resize-and-pad branch and the
    # plain one of train_sample are exercised.
    write_batches(path, 'unc_train', N, [(H, W), (40, 24), (20, 50)], seed=1)
    return path


def python_train_sample(path):
    batch = load_batch(path)
    im, mask = train_sample(batch['im_batch'], batch['mask_batch'], H, W)
    im_batch = np.zeros((H, W, 3), np.float32)  # the train loop's float32 batch arrays
    mask_batch = np.zeros((H, W, 1), np.float32)
    im_batch[:] = im
    mask_batch[:, :, 0] = mask
    return batch['text_batch'].astype(np.int32), im_batch, mask_batch


def test_train_dataset_matches_python_path_once_per_epoch(folder):
    files = list_batch_files(folder, 'unc_train')
    expected = [python_train_sample(p) for p in files]
    epochs = 3
    ds = train_dataset(folder, 'unc_train', H, W, batch_size=1, seed=5, epochs=epochs)
    got = [tuple(t.numpy()[0] for t in batch) for batch in ds]
    assert len(got) == epochs * N
    orders = []
    for e in range(epochs):
        order = []
        for words, im, mask in got[e * N:(e + 1) * N]:
            assert words.dtype == np.int32 and im.dtype == np.float32
            assert mask.dtype == np.float32
            hits = [k for k, (w, i, m) in enumerate(expected)
                    if np.array_equal(w, words) and np.array_equal(i, im)
                    and np.array_equal(m, mask)]
            assert len(hits) == 1  # bit-exact and unambiguous
            order.append(hits[0])
        assert sorted(order) == list(range(N))  # every file exactly once in each epoch
        orders.append(order)
    assert orders[0] != orders[1] or orders[1] != orders[2]  # reshuffled per epoch
    # The same seed gives the same order.
    again = train_dataset(folder, 'unc_train', H, W, batch_size=1, seed=5, epochs=1)
    first = [b[0].numpy()[0] for b in again]
    assert all(np.array_equal(a, expected[k][0]) for a, k in zip(first, orders[0]))


def test_train_dataset_batches_static_and_drop_remainder(folder):
    ds = train_dataset(folder, 'unc_train', H, W, batch_size=3, seed=0, epochs=1)
    assert ds.element_spec[0].shape.as_list() == [3, 20]
    assert ds.element_spec[1].shape.as_list() == [3, H, W, 3]
    assert ds.element_spec[2].shape.as_list() == [3, H, W, 1]
    assert len(list(ds)) == N // 3


def test_test_dataset_matches_test_mode(folder):
    samples = list(tf_input.test_dataset(folder, 'unc_train', H, W))
    files = list_batch_files(folder, 'unc_train')
    assert len(samples) == N
    for path, s in zip(files, samples):  # file order
        batch = load_batch(path)
        im = batch['im_batch']
        proc_im = skimage.img_as_ubyte(im_processing.resize_and_pad(im, H, W))
        np.testing.assert_array_equal(s['proc_im'].numpy(), proc_im)
        net_in = np.stack([proc_im.astype(np.float32)[:, :, ::-1] - MU]).astype(np.float32)[0]
        np.testing.assert_array_equal(s['im'].numpy(), net_in)
        np.testing.assert_array_equal(s['raw_im'].numpy(), im)
        np.testing.assert_array_equal(s['mask'].numpy(), batch['mask_batch'].astype(np.float32))
        np.testing.assert_array_equal(s['words'].numpy(), batch['text_batch'])
        assert s['sent'].numpy().decode() == str(batch['sent_batch'][0])
    assert len(list(tf_input.test_dataset(folder, 'unc_train', H, W, max_samples=2))) == 2


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(BatchFileError, match='no batches under .* with prefix "unc_train"'):
        train_dataset(str(tmp_path), 'unc_train', H, W, batch_size=1)
    with pytest.raises(BatchFileError, match='does not exist'):
        tf_input.test_dataset(str(tmp_path / 'nope'), 'unc_val', H, W)
    with pytest.raises(ValueError, match='batch_size'):
        train_dataset(str(tmp_path), 'unc_train', H, W, batch_size=0)


@pytest.mark.parametrize('start, batch_size', [(4, 2), (10, 2), (9, 3)])
def test_train_dataset_start_continues_the_stream(folder, start, batch_size):
    """A resumed run's pipeline (start = step x global batch) yields what one begun at 0 with
    the same seed yields after its first start / batch_size batches, across epoch ends."""
    def words(ds, n):
        return [b[0].numpy().tolist() for b, _ in zip(ds, range(n))]
    full = words(train_dataset(folder, 'unc_train', H, W, batch_size, seed=7), 8)
    resumed = words(train_dataset(folder, 'unc_train', H, W, batch_size, seed=7, start=start),
                    8 - start // batch_size)
    assert resumed == full[start // batch_size:]
