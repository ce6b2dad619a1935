"""Predict mode: segment what one or more sentences refer to in your own images.

    python trainval_model.py -m predict --checkpoint ckpts/synthetic/unc_iter_4000.tfmodel \
        --image photo.jpg --sentence "the red circle left of the star" --sentence "big square" \
        --out-dir predictions -c

(`-f FOLDER -d DATASET -i ITER` names the checkpoint as test mode does; --vocab is needed unless
the checkpoint's .json records the vocabulary it was trained with.)

For each image and sentence, under {out-dir}/{image name}/{k}_{sentence}/:
  mask.png       the binary mask at the image's resolution (0 / 255)
  overlay.png    the image with the mask in red
  prob.npy       float32 [h, w], the foreground probability (sigmoid of the score map)
  mask_dcrf.png  with -c: the DenseCRF-refined mask
  explain.png    the image, the word types, the c3 / c4 / c5 score maps and the mask
  result.json    tokens as the vocabulary saw them, unknown words flagged, word types, the
                 mask's area and bounding box, and a summary per level
and {out-dir}/predictions.json with every record. Each file is written under a temporary name
and renamed, so a file that exists is complete.

Images: any size and any mode PIL reads; the EXIF orientation is applied (the mask is at the
size the image is shown at), grey is repeated to RGB, alpha is dropped (as PIL's convert('RGB')
and TF's decoders do, so the exported model sees the same pixels), 16-bit images keep their
high byte (as TF's PNG decoder does).

Pre- and post-processing are test mode's (util/pipeline/contract.py, util/evaluate.image_masks): the
network sees img_as_ubyte(resize_and_pad(image, H, W)) in BGR minus the Caffe mean; the upsampled
logits are thresholded at 1e-9, and that 0/1 map is resized-and-cropped back to the image, where
a pixel is foreground when its value is > 0 (the original's IoU counted any non-zero value).

Documented behaviour for odd sentences: an empty or blank sentence is an error (before any
model is loaded); a sentence whose words are all unknown to the vocabulary runs (the model sees
<unk> ids), with a warning and "all_unknown": true in its record; words past the T-th are
dropped, with a warning and the list in "dropped_words".
"""

import os
import re
import sys

import numpy as np
from PIL import Image, ImageOps

from util.cli import InputError
from util.datasets.batches import ANNOTATED_FRAME
from util.io import atomic_open, save_npy_atomic, write_json
from util.pipeline import contract
from util.pipeline.evaluate import DCRF, PLAIN, image_masks
from util.pipeline.models import check_input, checkpoint_model, fast_paths_of, restore_model
from util.pipeline.snapshots import resolve_checkpoint
from util.text_processing import load_vocab_dict_from_file, preprocess_sentence, sentence2words
from util.visualize import overlay

LEVELS = ('c3', 'c4', 'c5')
MAX_SLUG = 40


def save_png(path, array):
    """An image file written atomically (util.io.atomic_open)."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with atomic_open(path, 'wb', fsync=False) as f:
        Image.fromarray(array).save(f, format='PNG')
    return path


# ---------------------------------------------------------------------------------------------
# Inputs

def load_image(path, label=None):
    """uint8 [h, w, 3] RGB as the image is shown: EXIF orientation applied, grey repeated,
    alpha dropped, 16-bit reduced to the high byte. Returns (image, EXIF orientation).
    Errors start with `label` (default '--image PATH')."""
    label = label or '--image ' + path
    if os.path.isdir(path):
        raise InputError('%s: is a folder; expected an image file' % label)
    if not os.path.isfile(path):
        raise InputError('%s: no such file' % label)
    try:
        with Image.open(path) as im:
            orientation = im.getexif().get(0x0112, 1)
            im = ImageOps.exif_transpose(im)
            im.load()
    except Exception as e:  # PIL raises many types for unreadable or truncated files
        raise InputError('%s: cannot read it as an image (%s: %s)'
                         % (label, type(e).__name__, e)) from None
    if im.mode.startswith('I;16') or im.mode == 'I':
        # TF's PNG decoder keeps the high byte of 16-bit samples; PIL's convert() would clip.
        arr = np.clip(np.asarray(im, dtype=np.int64), 0, 65535) >> 8
        im = Image.fromarray(arr.astype(np.uint8), 'L')
    elif im.mode == 'F':
        raise InputError('%s: floating-point images are not supported; save it as an '
                         '8-bit image' % label)
    rgb = np.asarray(im.convert('RGB'))  # [h, w, 3]
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InputError('%s: image has no pixels' % label)
    return np.ascontiguousarray(rgb), int(orientation) if orientation in range(1, 9) else 1


def read_sentences(sentences, sentences_file):
    """The --sentence values then the non-blank lines of --sentences-file."""
    out = list(sentences or [])
    if sentences_file:
        if not os.path.isfile(sentences_file):
            raise InputError('--sentences-file %s: no such file' % sentences_file)
        with open(sentences_file, encoding='utf-8') as f:
            out += [line.rstrip('\n') for line in f if line.strip()]
    if not out:
        raise InputError('no sentence: give --sentence TEXT (repeatable) or --sentences-file')
    return out


def sentence_words(sentence, label=None):
    """The tokenizer's words (util/text_processing.sentence2words); InputError, starting with
    label (default '--sentence SENTENCE'), when there is none."""
    try:
        words = sentence2words(sentence)
    except ValueError:
        words = []
    if not words:
        raise InputError('%s: empty sentence; a referring expression needs at least one word'
                         % (label or '--sentence %r' % (sentence,)))
    return words


def tokenize_sentence(sentence, vocab_dict, num_steps):
    """The tokenizer's view of a sentence (util/text_processing.preprocess_sentence):
    (ids [T] int32, kept words, unknown flags of the kept words, dropped words)."""
    words = sentence_words(sentence)
    kept, dropped = words[:num_steps], words[num_steps:]
    unknown = [w not in vocab_dict for w in kept]
    ids = preprocess_sentence(sentence, vocab_dict, num_steps)  # test mode's own ids
    return np.array(ids, np.int32), kept, unknown, dropped


# ---------------------------------------------------------------------------------------------
# Checkpoint and vocabulary

def resolve_vocab(vocab, meta, prefix):
    """--vocab, else the vocabulary the checkpoint's .json records."""
    if vocab:
        if not os.path.isfile(vocab):
            raise InputError('--vocab %s: no such file' % vocab)
        return vocab
    meta = meta or {}
    recorded = [v for v in (meta.get('vocab'), (meta.get('flags') or {}).get('vocab')) if v]
    for path in recorded:
        for candidate in (path, os.path.join(os.path.dirname(prefix), path)):
            if os.path.isfile(candidate):
                return candidate
    if recorded:
        raise InputError('the vocabulary recorded in %s.json (%s) is not there; pass --vocab PATH'
                         % (prefix, recorded[0]))
    raise InputError('--vocab PATH is required: %s records no vocabulary (give the file the '
                     'model was trained with, e.g. data/vocabulary_Gref.txt)' % prefix)


def read_model_settings(checkpoint, vocab=None, num_steps=None, flag='--checkpoint',
                        kinds=('image',), model_name=None):
    """(prefix, model module, settings, vocabulary path, {word: id}) without building the
    model; every mismatch is an InputError naming the file (`flag`: how the user named the
    checkpoint). The module and settings are the checkpoint's (util/pipeline/models.
    checkpoint_model; `model_name` and `num_steps` only for a checkpoint without .json).
    kinds: the models accepted ('image', 'video')."""
    prefix = resolve_checkpoint(checkpoint, flag)
    module, settings, meta = checkpoint_model(prefix, model_name, num_steps)
    if settings.kind not in kinds:
        check_input(module, {'image': 'image', 'video': 'clip'}[kinds[0]],
                    prefix + ('.json' if meta is not None else ''))
    vocab_path = resolve_vocab(vocab, meta, prefix)
    try:
        vocab_dict = load_vocab_dict_from_file(vocab_path)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError('--vocab %s: %s' % (vocab_path, e)) from None
    with open(vocab_path, encoding='utf-8') as f:
        n_words = sum(1 for _ in f)
    if n_words != settings.vocab_size:
        raise InputError('--vocab %s has %d words but the checkpoint %s was trained with a '
                         'vocabulary of %d words; pass the vocabulary it was trained with'
                         % (vocab_path, n_words, prefix, settings.vocab_size))
    return prefix, module, settings, vocab_path, vocab_dict


# ---------------------------------------------------------------------------------------------
# One prediction

def bbox_xywh(mask):
    """[x, y, width, height] of the mask's foreground (COCO order), None when empty."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1)]


def predict_one(model, image, words, dcrf=False, levels=True, forward=None):
    """Runs the model on one image and one id sequence, with test mode's post-processing
    (util/evaluate.image_masks). Returns numpy maps at the image's resolution: mask (bool),
    prob (float32), mask_dcrf (bool or None), levels {c3: {prob, mask}}, word_types [T, types].
    forward: model.forward or an equal one (Predictor's OncePerPicture)."""
    proc_im, im = contract.network_input(image, model.H, model.W)
    out = {k: v[0] for k, v in (forward or model.forward)(words[None], im[None]).items()}
    return postprocess(out, image, proc_im, dcrf, levels)


def predict_clip(model, clip, words, dcrf=False, levels=True, forward=None):
    """predict_one for the video model: clip, 16 RGB uint8 frames (batches.clip_window's),
    each resized and padded as test mode does (util/evaluate.clip_test_sample); the maps are
    the annotated frame's, clip[ANNOTATED_FRAME]."""
    inputs = [contract.network_input(frame, model.H, model.W) for frame in clip]
    net = np.stack([im for _, im in inputs])
    out = {k: v[0] for k, v in (forward or model.forward)(words[None], net[None]).items()}
    return postprocess(out, clip[ANNOTATED_FRAME], inputs[ANNOTATED_FRAME][0], dcrf, levels)


def postprocess(out, image, proc_im, dcrf, levels):
    """The network's outputs of one sample -> predict_one's maps at the image's resolution."""
    h, w = image.shape[:2]
    masks = image_masks(out['up'][:, :, 0], out['sigm'][:, :, 0], proc_im, h, w, dcrf)
    result = {
        'mask': masks[PLAIN] > 0,
        'prob': contract.to_image(out['sigm'][:, :, 0], h, w).astype(np.float32),
        'word_types': out['words_parse'],  # [T, types]
        'mask_dcrf': masks[DCRF] > 0 if dcrf else None, 'levels': {}, 'proc_im': proc_im,
    }
    if levels:
        for lv in LEVELS:
            logits = out['up_' + lv][:, :, 0]
            result['levels'][lv] = {
                'prob': contract.to_image(contract.sigmoid(logits).astype(np.float32), h, w),
                'mask': contract.to_image(contract.threshold(logits), h, w) > 0}
    return result


def slug(sentence):
    s = re.sub(r'[^A-Za-z0-9]+', '_', sentence).strip('_').lower()[:MAX_SLUG].rstrip('_')
    return s or 'sentence'


def level_summary(levels, mask):
    """Per level: its own mask's area, IoU with the final mask, mean probability inside the
    final mask and outside it."""
    summary = {}
    for lv, maps in levels.items():
        m = maps['mask']
        union = np.logical_or(m, mask).sum()
        summary[lv] = {
            'area': int(m.sum()),
            'iou_with_final': float(np.logical_and(m, mask).sum() / union) if union else None,
            'mean_prob_in_mask': float(maps['prob'][mask].mean()) if mask.any() else None,
            'mean_prob_outside': float(maps['prob'][~mask].mean()) if (~mask).any() else None,
        }
    return summary


def word_records(kept, unknown, ids, word_types, type_names):
    """One record per kept word, with its id and type probabilities (rows of the last
    len(kept) steps, the words of a left-padded sentence); type_names: the model's
    WORD_TYPES (Predictor.word_types), the columns of word_types."""
    T = len(ids)
    first = T - len(kept)
    records = []
    for k, (word, unk) in enumerate(zip(kept, unknown)):
        row = word_types[first + k]
        records.append({'word': word, 'id': int(ids[first + k]), 'unknown': bool(unk),
                        'types': {t: float(p) for t, p in zip(type_names, row)},
                        'type': type_names[int(np.argmax(row))]})
    return records


# ---------------------------------------------------------------------------------------------
# The command

def unique_names(paths):
    """A folder name per image: its file name without extension, made unique."""
    names, seen = [], {}
    for p in paths:
        base = re.sub(r'[^\w.-]+', '_', os.path.splitext(os.path.basename(p))[0]) or 'image'
        n = seen.get(base, 0)
        seen[base] = n + 1
        names.append(base if n == 0 else '%s_%d' % (base, n + 1))
    return names


class Predictor:
    """A checkpoint and its vocabulary, the model built once: predict mode's and the demo's
    (util/inference/demo.py) one way from an image (or, for the video model, a clip) and a sentence to a
    prediction.

    The constructor reads only the checkpoint's settings and the vocabulary (InputError for any
    mismatch, before TensorFlow is imported); load() builds the model. kinds: the models
    accepted, ('image',) in predict mode; with ('image', 'video') a video checkpoint gives a
    predictor whose predict() takes a clip of 16 frames.
    """
    levels = True  # the c3 / c4 / c5 maps are available
    dcrf = True    # DenseCRF is available

    def __init__(self, checkpoint, vocab=None, num_steps=None, checkpoint_flag='--checkpoint',
                 kinds=('image',), model_name=None, fast_paths=None):
        (self.prefix, self.module, self.settings, self.vocab_path,
         self.vocab_dict) = read_model_settings(checkpoint, vocab, num_steps, checkpoint_flag,
                                                kinds, model_name)
        self.num_steps = self.settings.num_steps
        self.video = self.settings.kind == 'video'
        self.fast_paths = fast_paths or {}  # LSTM_model's precision, xla, fold
        self.model = self.forward = None  # forward: the backbone once per picture

    def describe(self):
        return 'checkpoint %s (vocabulary %s, %d words)' % (self.prefix, self.vocab_path,
                                                            len(self.vocab_dict))

    def load(self, log=print):
        if self.model is None:
            log('Loading ' + self.describe())
            from util.pipeline.once_per_picture import OncePerPicture  # imports TensorFlow
            self.model = restore_model(self.prefix, self.module, self.settings,
                                       **self.fast_paths)
            self.forward = OncePerPicture(self.model)
        return self

    def word_types(self):
        """The model's word types, the columns of word_types."""
        return self.module.WORD_TYPES

    def encode(self, sentence):
        """tokenize_sentence with this checkpoint's vocabulary and T."""
        return tokenize_sentence(sentence, self.vocab_dict, self.num_steps)

    def check_image(self, image, name):
        """InputError when the image cannot be resized to fit the network's input."""
        H, W = self.settings.H, self.settings.W
        scale = min(H / image.shape[0], W / image.shape[1])
        if min(round(image.shape[0] * scale), round(image.shape[1] * scale)) < 1:
            raise InputError('%s: %dx%d is too elongated to fit %dx%d'
                             % (name, image.shape[1], image.shape[0], W, H))

    def predict(self, image, sentence, dcrf=False):
        """predict_one on an image (predict_clip on a clip for the video model) and a
        sentence, plus 'word_ids', 'words' (word_records), 'dropped' and 'all_unknown'."""
        ids, kept, unknown, dropped = self.encode(sentence)
        run = predict_clip if self.video else predict_one
        self.load()
        res = run(self.model, image, ids, dcrf=dcrf, levels=True, forward=self.forward)
        res.update(word_ids=ids, dropped=dropped, all_unknown=all(unknown),
                   words=word_records(kept, unknown, ids, res['word_types'],
                                      self.word_types()))
        return res


def mask_summary(mask):
    return {'area': int(mask.sum()), 'area_fraction': float(mask.mean()),
            'bbox_xywh': bbox_xywh(mask)}


def run_predict(checkpoint, images, sentences, out_dir, vocab=None, num_steps=None, dcrf=False,
                explain=True, log=print, warn=None, checkpoint_flag='--checkpoint',
                model_name=None, fast_paths=None):
    """Predict mode; returns the records written. InputError for bad input, raised before the
    model is built where the input can be checked without it."""
    warn = warn or (lambda msg: print('warning: ' + msg, file=sys.stderr))
    if not images:
        raise InputError('no image: give --image PATH (repeatable)')
    # -- check everything that can be checked cheaply first
    predictor = Predictor(checkpoint, vocab, num_steps, checkpoint_flag, model_name=model_name,
                          fast_paths=fast_paths)
    T = predictor.num_steps
    for sentence in sentences:
        predictor.encode(sentence)  # InputError for an empty one
    loaded = [load_image(p) for p in images]
    for (image, _), path in zip(loaded, images):
        predictor.check_image(image, '--image ' + path)

    # -- model
    predictor.load(log)
    if explain:
        from util.inference.explain import explain_figure

    records = []
    for path, name, (image, orientation) in zip(images, unique_names(images), loaded):
        h, w = image.shape[:2]
        for k, sentence in enumerate(sentences):
            res = predictor.predict(image, sentence, dcrf=dcrf)
            if res['all_unknown']:
                warn('%r: every word is unknown to the vocabulary; the model sees only <unk>'
                     % sentence)
            if res['dropped']:
                warn('%r: %d words past the first %d dropped: %s'
                     % (sentence, len(res['dropped']), T, ' '.join(res['dropped'])))
            folder = os.path.join(out_dir, name, '%02d_%s' % (k, slug(sentence)))
            mask = res['mask']
            files = {'mask': save_png(os.path.join(folder, 'mask.png'),
                                      mask.astype(np.uint8) * 255),
                     'overlay': save_png(os.path.join(folder, 'overlay.png'), overlay(image, mask)),
                     'prob': save_npy_atomic(os.path.join(folder, 'prob.npy'), res['prob'])}
            if dcrf:
                files['mask_dcrf'] = save_png(os.path.join(folder, 'mask_dcrf.png'),
                                              res['mask_dcrf'].astype(np.uint8) * 255)
            words = res['words']
            record = {
                'image': path, 'image_size': [h, w], 'exif_orientation': orientation,
                'sentence': sentence, 'sentence_index': k, 'checkpoint': predictor.prefix,
                **fast_paths_of(predictor.model),
                'vocab': predictor.vocab_path, 'num_steps': T, 'word_ids': res['word_ids'].tolist(),
                'tokens': words, 'dropped_words': res['dropped'],
                'all_unknown': res['all_unknown'], 'mask': mask_summary(mask),
                'levels': level_summary(res['levels'], mask),
                'threshold': {'logit': contract.SCORE_THRESH, 'note': 'mask = resize_and_crop(up >= '
                              'logit threshold) > 0 at the image resolution'},
            }
            if dcrf:
                record['mask_dcrf'] = mask_summary(res['mask_dcrf'])
            if explain:
                files['explain'] = os.path.join(folder, 'explain.png')
                with atomic_open(files['explain'], 'wb', fsync=False) as f:
                    explain_figure(f, image, sentence, words,
                                   {lv: res['levels'][lv]['prob'] for lv in LEVELS}, mask,
                                   prob=res['prob'])
            record['files'] = files
            write_json(os.path.join(folder, 'result.json'), record)
            records.append(record)
            n_unknown = sum(w['unknown'] for w in words)
            log('%s | %r -> %s (area %d px = %.1f%%, %d words%s)'
                % (path, sentence, folder, record['mask']['area'],
                   100 * record['mask']['area_fraction'], len(words),
                   ', %d unknown' % n_unknown if n_unknown else ''))
    write_json(os.path.join(out_dir, 'predictions.json'), records)
    log('Wrote %d predictions under %s' % (len(records), out_dir))
    return records
