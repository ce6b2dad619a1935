"""The forward with the backbone once per picture: many expressions on one image (or clip) share
its visual features (LSTM_model.visual_features), and only the part that takes the words
(LSTM_model.segment) runs per expression.

    forward = OncePerPicture(model)
    out = forward(words, ims)   # as model.forward(words, ims), row for row

Rows of `ims` equal to the row before them, or to the last picture of the previous call, reuse
its features; the distinct new pictures go through the backbone together. Test mode orders the
samples picture by picture (util/pipeline/evaluate.py), predict and the demo run the sentences
of one image one after another, so each picture meets the backbone once.
"""

import numpy as np
import tensorflow as tf


class OncePerPicture:
    """A forward(words, ims) -> numpy outputs equal to model.forward's, computing the backbone
    once per distinct picture. `backbone_runs` counts the pictures it has computed."""

    def __init__(self, model):
        self.model = model
        self.backbone_runs = 0
        self._last = None  # (picture, its features {level: [rows, h, w, C]})

    def __call__(self, words, ims):
        words, ims = self.model.check_inputs(words, ims)
        known = [self._last] if self._last else []  # (picture, its features or None)
        owner, new = [], []  # each row's picture in known; the pictures still to compute
        for im in ims:
            if not known or not np.array_equal(im, known[-1][0]):
                known.append((im, None))
                new.append(len(known) - 1)
            owner.append(len(known) - 1)
        if new:
            visual = self.model.visual_fn(np.stack([known[k][0] for k in new]))
            n = tf.nest.flatten(visual)[0].shape[0] // len(new)  # rows per picture (5 frames)
            for j, k in enumerate(new):
                known[k] = (known[k][0], visual if len(new) == 1 else tf.nest.map_structure(
                    lambda v: v[j * n:(j + 1) * n], visual))  # noqa: B023 (used at once)
            self.backbone_runs += len(new)
        # One expression (the common case) takes its picture's features as they are, uncopied.
        features = known[owner[0]][1] if len(owner) == 1 else tf.nest.map_structure(
            lambda *rows: tf.concat(rows, 0), *[known[k][1] for k in owner])
        self._last = known[-1]
        return self.model.forward_words(words, features)


class FrameFeatures:
    """The video model's features of a whole video, each frame through the backbone once: a
    window (a clip's sampled frames) takes the rows of its frames, computed when the frame is
    added (LSTM_model.frame_features) and kept until dropped. `backbone_runs` counts the frames
    computed. Predict on a video (util/inference/predict_video.py) adds frames as they are
    decoded and drops those no later window reads, so a long video holds a few at a time."""

    def __init__(self, model):
        self.model = model
        self.backbone_runs = 0
        self.frames = {}  # frame number -> its features {level: {'lateral', 'mutan'}}, 1 row

    def add(self, number, net_im):
        """net_im float32 [H, W, 3]: the frame as the network takes it (BGR minus the mean)."""
        im = np.asarray(net_im, np.float32)
        if im.shape != (self.model.H, self.model.W, 3):
            raise ValueError('a frame must be [%d, %d, 3], got shape %s'
                             % (self.model.H, self.model.W, list(im.shape)))
        self.frames[number] = self.model.frame_fn(im[None])  # {level: ...} of [1, h, w, C]
        self.backbone_runs += 1

    def window(self, numbers, repeat=1):
        """The visual_features of a clip whose sampled frames are `numbers` (in the model's
        SAMPLED_FRAMES order), for `repeat` expressions: [repeat * 5, ...] rows, sample by
        sample, as the model's visual_features of `repeat` copies of that clip."""
        rows = [self.frames[n] for n in numbers] * repeat
        return tf.nest.map_structure(lambda *r: tf.concat(r, 0), *rows)

    def forget(self, numbers):
        """Drops the features of these frames."""
        for n in numbers:
            del self.frames[n]
