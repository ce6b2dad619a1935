"""Export CMPC as a TensorFlow SavedModel that takes an image (the video model: a clip of 16
frames) and a sentence.

    python trainval_model.py -m export --checkpoint ckpts/synthetic/unc_iter_4000.tfmodel \
        --vocab data/synthetic/vocabulary_synthetic.txt --export-dir exported/cmpc

The SavedModel holds the model's weights and the vocabulary, and does every step of predict
mode (util/inference/predict.py) inside the graph, so a serving system needs nothing from this project:

    m = tf.saved_model.load('exported/cmpc')
    out = m.signatures['serving_default'](image_bytes=tf.constant(jpeg_bytes),
                                          sentence=tf.constant('the red circle'))
    out = m.signatures['serve_image'](image=uint8_hw3, sentence=tf.constant('the red circle'))
    out['mask']         uint8 [h, w]   0/1, at the input image's resolution
    out['probability']  float32 [h, w] sigmoid of the score map, at the input's resolution
    out['tokens']       string [T]     the words as the vocabulary saw them, '' for padding
    out['word_ids']     int32 [T]      their ids (left-padded with <pad>, <unk> for unknown)
    out['word_types']   float32 [T, types]: the model's WORD_TYPES per word (image: entity /
                        attribute / relation / unnecessary)

The video model's SavedModel (CMPC_video/trainval_video.py -m export) has one signature,
serving_default(clip=uint8 [16, h, w, C], sentence=...): the frames of batches.clip_window
around the frame to segment, which is clip[8]; the outputs are the same, of that frame, at its
size. Each frame goes through the image path below; the masks equal whole-video prediction's
(util/inference/predict_video.py) for that frame (tests/test_predict_video.py).

In the graph, in this order (each step is the numpy path's, see the functions below):
  decode (serving_default only; JPEG EXIF orientation applied as PIL's exif_transpose does),
  grey / alpha to RGB; tokenise, look up, truncate to T and left-pad; resize-and-pad to H x W
  with skimage 0.13's bilinear resize, img_as_ubyte, RGB -> BGR, minus the Caffe mean; the
  model; threshold the upsampled logits at 1e-9 and resize-and-crop that 0/1 map (mask: > 0)
  and the sigmoid (probability) back to the image's size.

Agreement with predict mode (tests/test_export.py): the resizes are computed in float64 with
scipy.ndimage.zoom's arithmetic (same coordinates, same products and same order of sums), and
the network is the model's own traced forward fed a batch of statically unknown size, so the
masks and probabilities match predict mode's bit for bit on the tested images (the tiny test
configuration and a 640x480 JPEG through the paper's configuration).
Memory: the last resize builds [h, 2, w, 2] float64 products, about 64 bytes per output pixel
(~0.8 GB for a 12-megapixel photo).

The in-graph tokeniser reproduces util/text_processing.py: the ASCII-only \\W of the original
regex (Python 2 had no Unicode \\w), str.strip() and the blank-token test with the 29 code
points of str.isspace, separators kept unstripped (' , ' is <unk>), lower-casing, the trailing
'.' dropped. Where it can differ (outside the vocabularies' words, so the ids differ only if a
vocabulary holds such a token):
  * a NUL character in the sentence is read as U+0001 (NUL marks token boundaries here);
  * lower-casing is ICU's (tf.strings.lower with encoding='utf-8') against Python's tables;
    they agree on the special cases tried ('İ', final sigma, 'ẞ', the Kelvin sign) but the two
    Unicode versions may differ on newly added characters;
  * a sentence that is not valid UTF-8 has no Python counterpart (RE2 reads each bad byte as
    a character of its own).

Where serving_default's decoding can differ from PIL (util/predict.load_image):
  * EXIF orientation is read from a JPEG's APP1 Exif segment (IFD0, SHORT or LONG value);
    PIL also reads it from PNG/WebP eXIf chunks and from XMP, the export does not;
  * 16-bit PNGs keep their high byte in both; CMYK JPEGs are converted to RGB by libjpeg in
    TF and by PIL in predict mode, which can differ by one level;
  * JPEG pixels come from TF's libjpeg-turbo and PIL's, both with the accurate integer IDCT
    and fancy upsampling (TF's default IDCT is the fast one, so it is asked for explicitly);
    they agree on the tested images. serve_image (decoded pixels in) takes the decoder out of
    the comparison altogether.
"""

import json
import os
import shutil

import numpy as np
import tensorflow as tf

from util.cli import InputError
from util.datasets.batches import ANNOTATED_FRAME, CLIP_FRAMES
from util.pipeline.contract import MU, SCORE_THRESH
from util.io import write_json
from util.inference.predict import (Predictor, read_model_settings, tokenize_sentence,
                                    word_records)
from util.pipeline.models import record_model, restore_model
from util.text_processing import PAD_IDENTIFIER, UNK_IDENTIFIER

SERVING_KEY = 'serving_default'
IMAGE_KEY = 'serve_image'
EXPORT_INFO = 'assets.extra/cmpc_export.json'
MAX_EXIF_ENTRIES = 512  # IFD0 entries scanned for the orientation tag (real files have < 100)

# The original's `\W+` under Python 2 (ASCII-only \w), and Python 3's str.isspace set, which
# str.strip() removes and which decides whether a token is blank.
_WORD = '[A-Za-z0-9_]+'
_PY_SPACE = '[' + ''.join('\\x{%x}' % c for c in range(0x110000) if chr(c).isspace()) + ']'
_NUL, _NUL_STANDIN = '\x00', '\x01'


# ---------------------------------------------------------------------------------------------
# Sentence -> ids, as util/text_processing.preprocess_sentence

def tf_tokenize(sentence):
    """The original tokenizer on a scalar tf.string: 1-D tf.string of tokens.

    re.split(r'(\\W+)', s.strip()) keeps word runs and non-word runs as tokens; the same
    tokens come out of marking each word run with NULs and splitting on NUL.
    """
    s = tf.strings.regex_replace(sentence, _NUL, _NUL_STANDIN)
    s = tf.strings.regex_replace(s, '^%s+|%s+$' % (_PY_SPACE, _PY_SPACE), '')  # str.strip()
    s = tf.strings.regex_replace(s, _WORD, _NUL + '\\0' + _NUL)
    parts = tf.strings.split(s, _NUL)  # [N] word runs, non-word runs and ''
    # A kept token is not stripped: ' , ' stays ' , ' (and is <unk>), as in the original.
    blank = tf.strings.regex_full_match(parts, _PY_SPACE + '*')
    words = tf.strings.lower(tf.boolean_mask(parts, ~blank), encoding='utf-8')
    # remove .
    drop_last = tf.reduce_any(tf.equal(words[-1:], '.'))
    return tf.cond(drop_last, lambda: words[:-1], lambda: words)


def encode_sentence(sentence, table, num_steps, pad_id):
    """(ids int32 [T], tokens string [T]): the first T word ids, left-padded with pad_id.

    Raises InvalidArgumentError at run time for a sentence without words, where
    util/text_processing raises ValueError.
    """
    words = tf_tokenize(sentence)  # [N]
    n = tf.size(words)
    check = tf.debugging.assert_positive(
        n, message='empty sentence: a referring expression needs at least one word')
    with tf.control_dependencies([check]):
        words = words[:num_steps]  # truncate long sentences
    ids = tf.cast(table.lookup(words), tf.int32)
    pad = num_steps - tf.size(ids)
    ids = tf.concat([tf.fill([pad], tf.constant(pad_id, tf.int32)), ids], 0)  # [T]
    tokens = tf.concat([tf.fill([pad], ''), words], 0)  # [T]
    ids.set_shape([num_steps])
    tokens.set_shape([num_steps])
    return ids, tokens


def vocabulary_table(vocab_dict):
    """StaticHashTable word -> id with <unk>'s id for every other string."""
    # The dict already resolved repeated words to their last line, as the original did.
    words = sorted(vocab_dict, key=vocab_dict.get)
    init = tf.lookup.KeyValueTensorInitializer(
        tf.constant(words, tf.string), tf.constant([vocab_dict[w] for w in words], tf.int64))
    return tf.lookup.StaticHashTable(init, default_value=vocab_dict[UNK_IDENTIFIER])


# ---------------------------------------------------------------------------------------------
# skimage 0.13's resize (util/im_processing) in the graph

def _zoom_axis(in_size, out_size):
    """Neighbour indices (into a copy padded with one zero on each side) and weights of
    scipy.ndimage.zoom(order=1, grid_mode=True, mode='grid-constant') along one axis."""
    zoom = tf.cast(in_size, tf.float64) / tf.cast(out_size, tf.float64)
    cc = (tf.range(out_size, dtype=tf.float64) + 0.5) * zoom - 0.5  # [out] input coordinate
    start = tf.floor(cc)
    w0 = 1.0 - (cc - start)
    i0 = tf.cast(start, tf.int32) + 1  # >= 0: cc > -0.5 for any zoom
    # ni_splines.c makes the last weight 1 minus the others, not the fraction itself.
    return i0, i0 + 1, w0, 1.0 - w0


def tf_resize_like_skimage_013(im, out_h, out_w):
    """float64 [h, w, C] -> float64 [out_h, out_w, C], util.im_processing's
    _resize_like_skimage_013 (bilinear, zeros outside, clip to the input's range)."""
    y0, y1, wy0, wy1 = _zoom_axis(tf.shape(im)[0], out_h)
    x0, x1, wx0, wx1 = _zoom_axis(tf.shape(im)[1], out_w)
    padded = tf.pad(im, [[1, 1], [1, 1], [0, 0]])  # [h + 2, w + 2, C]
    # scipy multiplies each neighbour by its row weight, then by its column weight, and sums
    # the four products in row-major order; the same order gives the same bits. One Mul per
    # axis on stacked neighbours: as separate products, Grappler's arithmetic optimizer would
    # hoist the shared column weight out of the sum and change the rounding.
    rows = tf.gather(padded, tf.stack([y0, y1], 1)) * tf.stack([wy0, wy1], 1)[:, :, None, None]
    terms = tf.gather(rows, tf.stack([x0, x1], 1), axis=2) * tf.stack([wx0, wx1], 1)[:, :, None]
    # terms [out_h, 2 (row), out_w, 2 (column), C]
    out = ((terms[:, 0, :, 0] + terms[:, 0, :, 1]) + terms[:, 1, :, 0]) + terms[:, 1, :, 1]
    # 0.13's clip to the input range, keeping exact zeros (cval) when 0 is outside it.
    lo, hi = tf.reduce_min(im), tf.reduce_max(im)
    clipped = tf.clip_by_value(out, lo, hi)
    keep_zero = tf.logical_and(lo > 0, tf.equal(out, 0.0))
    return tf.where(keep_zero, tf.zeros_like(out), clipped)  # [out_h, out_w, C]


def _scaled_size(h, w, scale):
    # np.round is round-half-to-even, as tf.round.
    rh = tf.cast(tf.round(tf.cast(h, tf.float64) * scale), tf.int32)
    rw = tf.cast(tf.round(tf.cast(w, tf.float64) * scale), tf.int32)
    check = tf.debugging.assert_positive(
        tf.minimum(rh, rw), message='image too elongated: one side would be resized to 0 pixels')
    with tf.control_dependencies([check]):
        return tf.identity(rh), tf.identity(rw)


def tf_resize_and_pad(im, input_h, input_w):
    """float64 [h, w, C] -> float64 [input_h, input_w, C] (util.im_processing.resize_and_pad)."""
    h, w = tf.shape(im)[0], tf.shape(im)[1]
    scale = tf.minimum(input_h / tf.cast(h, tf.float64), input_w / tf.cast(w, tf.float64))
    rh, rw = _scaled_size(h, w, scale)
    pad_h, pad_w = (input_h - rh) // 2, (input_w - rw) // 2
    resized = tf_resize_like_skimage_013(im, rh, rw)  # [rh, rw, C]
    out = tf.pad(resized, [[pad_h, input_h - rh - pad_h], [pad_w, input_w - rw - pad_w], [0, 0]])
    return tf.ensure_shape(out, [input_h, input_w, im.shape[2]])


def tf_resize_and_crop(im, out_h, out_w):
    """float64 [H, W, C] -> float64 [out_h, out_w, C] (util.im_processing.resize_and_crop)."""
    h, w = tf.shape(im)[0], tf.shape(im)[1]
    scale = tf.maximum(tf.cast(out_h, tf.float64) / tf.cast(h, tf.float64),
                       tf.cast(out_w, tf.float64) / tf.cast(w, tf.float64))
    rh, rw = _scaled_size(h, w, scale)
    crop_h, crop_w = (rh - out_h) // 2, (rw - out_w) // 2
    resized = tf_resize_like_skimage_013(im, rh, rw)
    return resized[crop_h:crop_h + out_h, crop_w:crop_w + out_w]


def tf_img_as_float(im_uint8):
    """skimage.img_as_float of uint8: x * (1 / 255) in float64."""
    return tf.cast(im_uint8, tf.float64) * (1.0 / 255)


def tf_img_as_ubyte(im):
    """skimage.img_as_ubyte of float64 in [0, 1]: rint(x * 255), half to even."""
    return tf.cast(tf.clip_by_value(tf.round(im * 255.0), 0.0, 255.0), tf.uint8)


# ---------------------------------------------------------------------------------------------
# Decoding with EXIF orientation, as PIL.ImageOps.exif_transpose

def _byte_reader(data):
    n = tf.size(data)

    def byte(i):
        ok = tf.logical_and(i >= 0, i < n)
        return tf.where(ok, tf.cast(tf.gather(data, tf.clip_by_value(i, 0, tf.maximum(n - 1, 0))),
                                    tf.int32), 0)
    return n, byte


def exif_orientation(contents):
    """EXIF orientation (1..8) of JPEG bytes from the IFD0 of their APP1 Exif segment; 1 when
    the bytes are not a JPEG or carry none."""
    data = tf.io.decode_raw(tf.reshape(contents, []), tf.uint8)  # [N]
    data = tf.concat([data, tf.zeros([1], tf.uint8)], 0)  # gather needs one element
    n, byte = _byte_reader(data)
    n = n - 1
    is_jpeg = tf.logical_and(tf.equal(byte(0), 0xFF), tf.equal(byte(1), 0xD8))

    def u16(i, little):
        return tf.where(little, byte(i) + 256 * byte(i + 1), 256 * byte(i) + byte(i + 1))

    def u32(i, little):
        return tf.where(little, u16(i, little) + 65536 * u16(i + 2, little),
                        65536 * u16(i, little) + u16(i + 2, little))

    def parse_tiff(base, end):
        little = tf.logical_and(tf.equal(byte(base), 0x49), tf.equal(byte(base + 1), 0x49))
        big = tf.logical_and(tf.equal(byte(base), 0x4D), tf.equal(byte(base + 1), 0x4D))
        ifd = base + u32(base + 4, little)
        count = tf.minimum(u16(ifd, little), MAX_EXIF_ENTRIES)

        def cond(k, found):
            return tf.logical_and(k < count, tf.equal(found, 0))

        def body(k, found):
            e = ifd + 2 + 12 * k
            kind = u16(e + 2, little)
            value = tf.where(tf.equal(kind, 4), u32(e + 8, little), u16(e + 8, little))
            is_tag = tf.logical_and(tf.equal(u16(e, little), 0x0112), e + 12 <= end)
            return k + 1, tf.where(is_tag, value, 0)

        _, found = tf.while_loop(cond, body, [tf.constant(0), tf.constant(0)])
        return tf.where(tf.logical_or(little, big), found, 0)  # else not TIFF: PIL ignores it

    exif_id = tf.constant([ord(c) for c in 'Exif\0\0'], tf.int32)

    # Walk the marker segments up to the start of scan.
    def cond(pos, orientation, done):
        return tf.logical_and(tf.logical_not(done), pos + 4 <= n)

    def body(pos, orientation, done):
        marker = byte(pos + 1)
        bad = tf.not_equal(byte(pos), 0xFF)
        fill = tf.equal(marker, 0xFF)
        standalone = tf.logical_or(tf.equal(marker, 0x01),
                                   tf.logical_and(marker >= 0xD0, marker <= 0xD8))
        stop = tf.logical_or(bad, tf.logical_or(tf.equal(marker, 0xDA), tf.equal(marker, 0xD9)))
        length = 256 * byte(pos + 2) + byte(pos + 3)
        head = tf.stack([byte(pos + 4 + k) for k in range(6)])
        is_exif = tf.logical_and(tf.equal(marker, 0xE1), tf.reduce_all(tf.equal(head, exif_id)))
        segment = tf.logical_not(tf.logical_or(stop, tf.logical_or(fill, standalone)))
        found = tf.cond(tf.logical_and(segment, is_exif),
                        lambda: parse_tiff(pos + 10, pos + 2 + length), lambda: 0)
        step = tf.where(fill, 1, tf.where(standalone, 2, 2 + length))
        done = tf.logical_or(stop, tf.logical_and(segment, is_exif))
        return pos + step, tf.where(found > 0, found, orientation), done

    _, orientation, _ = tf.while_loop(
        cond, body, [tf.constant(2), tf.constant(1), tf.logical_not(is_jpeg)])
    return tf.where(tf.logical_and(orientation >= 1, orientation <= 8), orientation, 1)


def apply_orientation(im, orientation):
    """[h, w, C] as PIL's exif_transpose shows it for EXIF orientation 1..8."""
    flip_lr = lambda x: x[:, ::-1]
    flip_ud = lambda x: x[::-1]
    transpose = lambda x: tf.transpose(x, [1, 0, 2])
    branches = [
        lambda: im,                                  # 1
        lambda: flip_lr(im),                         # 2 FLIP_LEFT_RIGHT
        lambda: flip_ud(flip_lr(im)),                # 3 ROTATE_180
        lambda: flip_ud(im),                         # 4 FLIP_TOP_BOTTOM
        lambda: transpose(im),                       # 5 TRANSPOSE
        lambda: flip_lr(transpose(im)),              # 6 ROTATE_270 (clockwise)
        lambda: flip_ud(flip_lr(transpose(im))),     # 7 TRANSVERSE
        lambda: flip_ud(transpose(im)),              # 8 ROTATE_90 (counter-clockwise)
    ]
    return tf.switch_case(orientation - 1, branches)


def to_rgb(im):
    """uint8 [h, w, C] with C in 1..4 -> [h, w, 3]: grey repeated, alpha dropped (PIL's
    convert('RGB') of L, LA, RGB, RGBA)."""
    c = tf.shape(im)[2]
    check = tf.debugging.assert_equal(
        tf.logical_and(c >= 1, c <= 4), True,
        message='image must have 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels')
    with tf.control_dependencies([check]):
        rgb = tf.cond(c >= 3, lambda: im[:, :, :3], lambda: tf.tile(im[:, :, :1], [1, 1, 3]))
    return tf.ensure_shape(rgb, [None, None, 3])


def decode(contents):
    """Encoded image bytes -> uint8 [h, w, 3] as util.inference.predict.load_image gives them."""
    # TF's default JPEG IDCT is the fast one; PIL (libjpeg-turbo) uses the accurate one, and with
    # it both decoders give the same pixels.
    im = tf.cond(tf.io.is_jpeg(contents),
                 lambda: tf.io.decode_jpeg(contents, channels=3, dct_method='INTEGER_ACCURATE'),
                 lambda: tf.io.decode_image(contents, channels=3, expand_animations=False))
    im = tf.ensure_shape(im, [None, None, 3])  # [h, w, 3]
    return apply_orientation(im, exif_orientation(contents))


# ---------------------------------------------------------------------------------------------

class _Serving(tf.Module):
    """The model, its vocabulary and test mode's pre- and post-processing in the graph; the
    subclasses add the signatures."""

    def __init__(self, model, vocab_dict, mean_bgr, score_thresh):
        super().__init__(name='cmpc_serving')
        self.weights = list(model.model_variables.values())  # tracked, so they are saved
        self.table = vocabulary_table(vocab_dict)
        # The model's own traced forward (not an attribute: the model need not be saved), so
        # that the network is the very graph that predict mode runs.
        self._forward = lambda words, im: model.forward_fn(words, im)
        self._H, self._W, self._T = model.H, model.W, model.num_steps
        self._pad_id = vocab_dict[PAD_IDENTIFIER]
        self._mean = tf.constant(np.asarray(mean_bgr, np.float64))
        self._thresh = float(score_thresh)

    def _network_input(self, image):
        """uint8 [h, w, 3] -> float32 [H, W, 3] as predict mode's contract.network_input."""
        check = tf.debugging.assert_positive(tf.size(image), message='image has no pixels')
        with tf.control_dependencies([check]):
            proc_im = tf_img_as_ubyte(tf_resize_and_pad(tf_img_as_float(image), self._H,
                                                        self._W))
        # [H, W, 3] uint8 -> BGR minus mean, in float64 as numpy promotes it, then float32.
        return tf.cast(tf.cast(proc_im, tf.float64)[:, :, ::-1] - self._mean, tf.float32)

    def _run(self, words, tokens, net_input, h, w):
        """The network on one sample (net_input: [H, W, 3], or the video model's [16, H, W,
        3]) and test mode's post-processing at h x w -> dict of outputs."""
        # A batch of one whose size the graph does not know, as in predict mode's forward
        # (input_signature [None, ...]): with a static batch Grappler specialises the network's
        # kernels and the logits move by ~4e-7; this way they are bit-identical.
        one = tf.minimum(h, 1)
        rank = len(net_input.shape)
        out = self._forward(tf.tile(words[None], [one, 1]),
                            tf.tile(net_input[None], [one] + [1] * rank))
        up = out['up'][0]  # [H, W, 1] logits
        pred_raw = tf.cast(up >= self._thresh, tf.float64)
        mask = tf_resize_and_crop(pred_raw, h, w)[:, :, 0] > 0  # [h, w]
        prob = tf_resize_and_crop(tf.cast(out['sigm'][0], tf.float64), h, w)[:, :, 0]
        return {'mask': tf.cast(mask, tf.uint8), 'probability': tf.cast(prob, tf.float32),
                'tokens': tokens, 'word_ids': words, 'word_types': out['words_parse'][0]}



class CMPCServing(_Serving):
    """Image + sentence in, mask and probability at the image's resolution out."""

    def _predict(self, image, sentence):
        """image uint8 [h, w, 3], sentence scalar string -> dict of outputs."""
        words, tokens = encode_sentence(sentence, self.table, self._T, self._pad_id)
        im = self._network_input(image)
        return self._run(words, tokens, im, tf.shape(image)[0], tf.shape(image)[1])

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name='image_bytes'),
                                  tf.TensorSpec([], tf.string, name='sentence')])
    def serve_encoded(self, image_bytes, sentence):
        return self._predict(decode(image_bytes), sentence)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.uint8, name='image'),
                                  tf.TensorSpec([], tf.string, name='sentence')])
    def serve_image(self, image, sentence):
        return self._predict(to_rgb(image), sentence)

    def signatures(self):
        return {SERVING_KEY: self.serve_encoded, IMAGE_KEY: self.serve_image}


class CMPCClipServing(_Serving):
    """The video model: 16 frames (batches.clip_window's) + sentence in; mask and probability
    of the annotated frame, clip[ANNOTATED_FRAME], at its resolution out (predict mode's
    predict_clip, and what whole-video prediction gives for that frame)."""

    @tf.function(input_signature=[tf.TensorSpec([CLIP_FRAMES, None, None, None], tf.uint8,
                                                 name='clip'),
                                  tf.TensorSpec([], tf.string, name='sentence')])
    def serve_clip(self, clip, sentence):
        words, tokens = encode_sentence(sentence, self.table, self._T, self._pad_id)
        frames = tf.map_fn(lambda f: self._network_input(to_rgb(f)), clip,
                           fn_output_signature=tf.float32)  # [16, H, W, 3]
        h, w = tf.shape(clip)[1], tf.shape(clip)[2]
        return self._run(words, tokens, tf.ensure_shape(frames, [CLIP_FRAMES, self._H, self._W,
                                                                 3]), h, w)

    def signatures(self):
        return {SERVING_KEY: self.serve_clip}


def export_saved_model(model, vocab_dict, export_dir, mean_bgr, score_thresh, info=None):
    """Writes the SavedModel to export_dir (replacing one already there only once the new one
    is complete) and returns export_dir."""
    video = model.input_name == 'clip'
    module = (CMPCClipServing if video else CMPCServing)(model, vocab_dict, mean_bgr,
                                                          score_thresh)
    # Traced by save itself: a trace made before, outside its save context, is not reused.
    signatures = module.signatures()
    export_dir = os.path.normpath(export_dir)
    parent = os.path.dirname(export_dir) or '.'
    os.makedirs(parent, exist_ok=True)
    tmp = '%s.tmp-%d' % (export_dir, os.getpid())
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tf.saved_model.save(module, tmp, signatures=signatures)
        write_json(os.path.join(tmp, EXPORT_INFO), info or {}, sort_keys=True)
        old = None
        if os.path.exists(export_dir):
            old = '%s.old-%d' % (export_dir, os.getpid())
            os.replace(export_dir, old)
        os.replace(tmp, export_dir)
        if old:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return export_dir


def run_export(checkpoint, export_dir, vocab=None, num_steps=None, log=print,
               checkpoint_flag='--checkpoint', model_name=None, kinds=('image',)):
    """Export mode: the checkpoint and its vocabulary as a SavedModel in export_dir
    (model_name: -n, for a checkpoint without .json; kinds: the models accepted, ('image',)
    from trainval_model.py, ('video',) from the video script)."""
    prefix, module, settings, vocab_path, vocab_dict = read_model_settings(
        checkpoint, vocab, num_steps, checkpoint_flag, kinds=kinds, model_name=model_name)
    log('Loading %s (vocabulary %s, %d words)' % (prefix, vocab_path, len(vocab_dict)))
    model = restore_model(prefix, module, settings)
    outputs = {'mask': 'uint8 [h, w] 0/1', 'probability': 'float32 [h, w]',
               'tokens': 'string [T]', 'word_ids': 'int32 [T]',
               'word_types': 'float32 [T, %d] %s' % (len(model.WORD_TYPES),
                                                     ', '.join(model.WORD_TYPES))}
    if settings.kind == 'video':
        signatures = {SERVING_KEY: {'inputs': {
            'clip': 'uint8 [%d, h, w, 1|2|3|4], the frames around the one to segment, at '
                    'index %d (batches.clip_window)' % (CLIP_FRAMES, ANNOTATED_FRAME),
            'sentence': 'string []'}}}
        outputs = {k: v.replace('[h, w]', '[h, w] of clip[%d]' % ANNOTATED_FRAME)
                   for k, v in outputs.items()}
    else:
        signatures = {SERVING_KEY: {'inputs': {'image_bytes': 'string [] (JPEG, PNG, GIF, BMP, '
                                                              'WebP)', 'sentence': 'string []'}},
                      IMAGE_KEY: {'inputs': {'image': 'uint8 [h, w, 1|2|3|4]',
                                             'sentence': 'string []'}}}
    info = {'checkpoint': os.path.abspath(prefix), 'vocab': os.path.abspath(vocab_path),
            'model': settings.to_json(), 'model_name': module.__name__,
            'mean_bgr': list(map(float, MU)),
            'score_threshold_logit': SCORE_THRESH,
            'signatures': dict(signatures, outputs=outputs)}
    log('Tracing and writing the SavedModel ...')
    export_saved_model(model, vocab_dict, export_dir, MU, SCORE_THRESH, info)
    log('SavedModel written to %s (signatures %s)' % (export_dir, ', '.join(signatures)))
    return export_dir


# ---------------------------------------------------------------------------------------------
# The other way round: a SavedModel behind predict mode's interface (the demo's --saved-model)

class SavedModelPredictor(Predictor):
    """An exported SavedModel with util.inference.predict.Predictor's interface: the same mask,
    probability and word types (the signature serve_image, whose pixels predict mode's
    load_image decodes; a video model's serving_default, which takes a clip). Not exported, so not available: the c3 / c4 / c5 maps and DenseCRF
    (which needs the network-resolution image)."""
    levels = False
    dcrf = False

    def __init__(self, export_dir, flag='--saved-model'):
        info_path = os.path.join(export_dir, EXPORT_INFO)
        if not os.path.isdir(export_dir):
            raise InputError('%s %s: no such folder' % (flag, export_dir))
        if not os.path.isfile(info_path):
            raise InputError('%s %s: not a SavedModel written by `trainval_model.py -m export` '
                             '(no %s)' % (flag, export_dir, EXPORT_INFO))
        try:
            with open(info_path, encoding='utf-8') as f:
                self.info = json.load(f)
            self.module, self.settings = record_model(self.info, info_path)
        except (ValueError, KeyError) as e:
            raise InputError('%s: %s' % (info_path, e.args[0] if e.args else e)) from None
        self.prefix = self.vocab_path = export_dir
        self.video = self.settings.kind == 'video'
        self.num_steps = self.settings.num_steps
        self.vocab_dict = None  # read from the SavedModel's own table by load()
        self.serve = None

    def describe(self):
        return 'SavedModel %s (exported from %s)' % (self.prefix, self.info.get('checkpoint'))

    def load(self, log=print):
        if self.serve is None:
            log('Loading ' + self.describe())
            loaded = tf.saved_model.load(self.prefix)
            words, ids = tf.raw_ops.LookupTableExportV2(
                table_handle=loaded.table.resource_handle, Tkeys=tf.string, Tvalues=tf.int64)
            self.vocab_dict = {w.decode('utf-8'): int(i) for w, i in zip(words.numpy(),
                                                                        ids.numpy())}
            self.loaded = loaded
            self.serve = loaded.signatures[SERVING_KEY if self.video else IMAGE_KEY]
        return self

    def encode(self, sentence):
        # Before load() the vocabulary is unknown: then this only checks that there are words.
        return tokenize_sentence(sentence, self.vocab_dict or {}, self.num_steps)

    def predict(self, image, sentence, dcrf=False):
        if dcrf:
            raise InputError('DenseCRF needs a checkpoint (--checkpoint); a SavedModel gives '
                             'the mask at the image resolution only')
        _, kept, unknown, dropped = self.load().encode(sentence)
        if self.video:  # image: the 16 frames of a clip
            out = self.serve(clip=tf.constant(np.stack(image)), sentence=tf.constant(sentence))
        else:
            out = self.serve(image=tf.constant(image), sentence=tf.constant(sentence))
        ids, types = out['word_ids'].numpy(), out['word_types'].numpy()
        return {'mask': out['mask'].numpy() > 0, 'prob': out['probability'].numpy(),
                'word_types': types, 'mask_dcrf': None, 'levels': {}, 'word_ids': ids,
                'words': word_records(kept, unknown, ids, types, self.word_types()),
                'dropped': dropped, 'all_unknown': all(unknown)}
