"""The test-time loop, once: read samples, run the model in batches, map each prediction back
to its image (util/pipeline/contract.py), optionally refine it with DenseCRF, and count I and U.

Test mode, the benchmark and predict mode all use it; validation during training can too:

    from util.pipeline.evaluate import evaluate, read_samples
    num, samples = read_samples(folder, prefix, model.H, model.W)
    result = evaluate(model.forward, samples, num, batch_size=8, dcrf=True)
    print(result.format()); write_json(path, result.to_dict())

`forward` is any function (words int32 [B, T], im float32 [B, H, W, 3]) -> dict of numpy
arrays with `up` and `sigm` [B, H, W, 1] (LSTM_model.forward).
"""

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np

from util.pipeline import contract
from util import im_processing
from util.data_reader import REQUIRED_KEYS, DataReader, count_batches
from util.datasets.batches import FRAMES, IMAGE, IMAGE_ID, MASK, SENT, TEXT, batch_path
from util.eval_tools import EVAL_IOU_THRESHOLDS, SegEvaluator, compute_mask_IU

PLAIN, DCRF = 'without DenseCRF', 'with DenseCRF'
RECORD_KEYS = {PLAIN: ('I', 'U'), DCRF: ('I_dcrf', 'U_dcrf')}


@dataclass
class Sample:
    """One test expression: words int32 [T]; image uint8 [h, w, 3] RGB as stored; proc_im uint8
    [H, W, 3] and net_im float32 [H, W, 3] (contract.network_input); mask [h, w] or None."""
    words: np.ndarray
    image: np.ndarray
    proc_im: np.ndarray
    net_im: np.ndarray
    mask: np.ndarray = None
    sent: str = ''
    index: int = None  # the batch file's number (None: in the order evaluate sees it)


def test_sample(batch, H, W):
    """A Sample from a batch file's arrays (util.data_reader.load_batch)."""
    image = im_processing.as_rgb(batch[IMAGE])
    proc_im, net_im = contract.network_input(image, H, W)
    return Sample(words=np.asarray(batch[TEXT]), image=image, proc_im=proc_im, net_im=net_im,
                  mask=batch[MASK].astype(np.float32), sent=str(batch[SENT][0]))


def clip_test_sample(batch, H, W):
    """A video test Sample: the annotated frame as test_sample's image, and net_im the clip
    float32 [16, H, W, 3], each frame resized and padded as the original's test()."""
    sample = test_sample(batch, H, W)
    sample.net_im = np.stack([contract.network_input(im_processing.as_rgb(f), H, W)[1]
                              for f in batch[FRAMES]])
    return sample


def read_samples(folder, prefix, H, W, max_samples=None, tf_data=False, make_sample=test_sample,
                 required_keys=REQUIRED_KEYS, by_picture=False):
    """(number of samples, iterator of Samples) of `{folder}/{prefix}_{n}.npz`, the first
    max_samples of them if given, in file order or, by_picture, picture by picture
    (picture_order: each Sample's index is its file's number); tf_data reads and preprocesses
    them ahead in the tf.data pipeline of util/pipeline/tf_input.py (the same arrays; images
    only). make_sample(batch, H, W) turns a file's arrays into a Sample (clip_test_sample for
    video batches)."""
    total = count_batches(folder, prefix)
    num = total if max_samples is None else min(max_samples, total)
    order = picture_order(folder, prefix, num) if by_picture else list(range(num))
    reader = DataReader(folder, prefix, shuffle=False, required_keys=required_keys,
                        order=order + list(range(num, total)))

    def from_files():
        with reader:
            for n in order:
                sample = make_sample(reader.read_batch(is_log=False), H, W)
                sample.index = n
                yield sample

    def from_tf_data():
        from util.pipeline.tf_input import test_dataset  # imports TensorFlow: only when asked for
        reader.close()  # it only counted the files
        for n, s in zip(order, test_dataset(folder, prefix, H, W, order=order)):
            yield Sample(words=s['words'].numpy(), image=s['raw_im'].numpy(),
                         proc_im=s['proc_im'].numpy(), net_im=s['im'].numpy(),
                         mask=s['mask'].numpy(), sent=s['sent'].numpy().decode('utf-8'), index=n)
    return num, (from_tf_data() if tf_data else from_files())


def picture_key(path):
    """What identifies a batch file's picture: its image_id (written by the builders), else
    the SHA-1 of its image or clip bytes (the original's batches); a file that cannot be read
    is its own picture (reading it later reports the error)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if IMAGE_ID in npz.files:
                return 'id:' + str(npz[IMAGE_ID].ravel()[0])
            arr = npz[FRAMES if FRAMES in npz.files else IMAGE]
            return 'sha1:' + hashlib.sha1(np.ascontiguousarray(arr).tobytes()).hexdigest()
    except Exception:  # noqa: BLE001 (any unreadable file: DataReader names it later)
        return 'file:' + path


def picture_order(folder, prefix, num):
    """The file numbers 0 .. num - 1 grouped by picture (picture_key): the pictures in the
    order of their first file, each picture's files in number order."""
    keys = [picture_key(batch_path(folder, prefix, n)) for n in range(num)]
    first = {}
    for n, k in enumerate(keys):
        first.setdefault(k, n)
    return sorted(range(num), key=lambda n: (first[keys[n]], n))


def image_masks(up, sigm, proc_im, h, w, dcrf=False):
    """The post-processing of one sample: {PLAIN: float64 [h, w]} and, with dcrf, {DCRF: ...};
    a pixel is foreground where its value is > 0. up, sigm: [H, W] logits and probabilities."""
    masks = {PLAIN: contract.to_image(contract.threshold(up), h, w)}
    if dcrf:
        from util.dcrf import dense_crf  # pydensecrf is only needed with -c
        masks[DCRF] = contract.to_image(dense_crf(proc_im, sigm), h, w)
    return masks


@dataclass
class Evaluation:
    """What `evaluate` measured: an evaluator per post-processing, one record per sample
    (batch_no, sent, I, U, and I_dcrf, U_dcrf with DenseCRF), and the seconds it took."""
    evaluators: dict
    per_sample: list = field(default_factory=list)
    seconds: float = 0.0

    def format(self):
        return '\n'.join('Segmentation evaluation (%s):\n%s' % (name, ev.format_results())
                         for name, ev in self.evaluators.items())

    def to_dict(self):
        d = {name.replace(' ', '_'): ev.to_dict() for name, ev in self.evaluators.items()}
        d.update(seconds=self.seconds, expressions=len(self.per_sample),
                 per_sample=self.per_sample)
        return d


def evaluate(forward, samples, num, batch_size=1, dcrf=False, vis_dir=None, on_output=None,
             progress=True, thresholds=EVAL_IOU_THRESHOLDS, report_map=False):
    """Runs `forward` on `num` Samples in batches of batch_size and scores each prediction
    against its mask. vis_dir: write image, ground truth and prediction PNGs there
    (util/visualize.py). on_output(sample, out): called with each sample's outputs (its row
    of every array). thresholds of the precisions, report_map their mean (SegEvaluator).
    Returns an Evaluation."""
    from tqdm import tqdm
    if vis_dir is not None:
        from util.visualize import visualize_seg
    result = Evaluation({PLAIN: SegEvaluator(thresholds, report_map)})
    if dcrf:
        result.evaluators[DCRF] = SegEvaluator(thresholds, report_map)
    start = time.time()

    def score(sample, out):
        h, w = sample.mask.shape
        masks = image_masks(out['up'][:, :, 0], out['sigm'][:, :, 0], sample.proc_im, h, w, dcrf)
        record = {'batch_no': len(result.per_sample) if sample.index is None else sample.index,
                  'sent': sample.sent}
        for name, pred in masks.items():
            record.update(zip(RECORD_KEYS[name], map(int, compute_mask_IU(pred, sample.mask))))
        result.per_sample.append(record)
        if vis_dir is not None:
            for name, suffix in ((PLAIN, ''), (DCRF, '_dcrf')):
                if name in masks:
                    visualize_seg(sample.image, sample.mask, masks[name], sample.sent, vis_dir,
                                  suffix=suffix)

    pending = []

    def flush():
        words = np.stack([s.words for s in pending]).astype(np.int32)  # [B, T]
        ims = np.stack([s.net_im for s in pending])  # [B, H, W, 3] or clips [B, 16, H, W, 3]
        out = forward(words, ims)
        for k, sample in enumerate(pending):
            row = {key: value[k] for key, value in out.items()}
            if on_output is not None:
                on_output(sample, row)
            score(sample, row)
        pending.clear()

    bar = tqdm(total=num, desc='test', unit='expr', dynamic_ncols=True,
               disable=None if progress else True)
    for sample in samples:
        pending.append(sample)
        if len(pending) == batch_size:
            flush()
        bar.update(1)
    if pending:
        flush()
    bar.close()
    # In batch-number order, whatever order the samples came in (read_samples' by_picture).
    result.per_sample.sort(key=lambda r: r['batch_no'])
    for record in result.per_sample:
        for name, evaluator in result.evaluators.items():
            evaluator.add(*(record[k] for k in RECORD_KEYS[name]))
    result.seconds = time.time() - start
    return result
