"""Training a CMPC model: one step (the loss of util/pipeline/loss.py, TF1 Adam and the learning-rate
schedule of util/pipeline/optim.py, fp16 loss scaling, data-parallel replicas of util/pipeline/distribute.py),
and the batch-norm calibration of a random backbone.

LSTM_model(mode='train') builds a Trainer for itself and `model.train_step` calls it; a new
loss term or optimizer goes here, not into the network. The step is a pure tf.function: a
batch in, the losses out, no I/O.
"""

import numpy as np
import tensorflow as tf

from util.datasets.batches import train_input
from util.pipeline import distribute, loss, optim
from util.pipeline.checkpoint import zeros

BACKBONE_TRAINED_WITH_CONV5 = ('res3', 'res4', 'res5')
CALIBRATION_IMAGES = 16


class Trainer:
    """The training state and step of `model` (an LSTM_model) under `settings` (TrainSettings).

    Trained variables: everything under the model's scope, and with conv5 the res3-res5 conv
    weights too (the backbone's batch norms stay frozen). Biases' gradients are doubled, conv
    weights are weight-decayed, as in the original's train_op.
    """

    def __init__(self, model, settings, precision='fp32', xla=False):
        self.model, self.settings, self.precision = model, settings, precision
        self.strategy = model.strategy
        store, scope = model.store, model.scope
        self.names = [n for n, v in model.model_variables.items() if v.trainable and (
            n.startswith(scope) or (settings.conv5 and n.startswith(BACKBONE_TRAINED_WITH_CONV5)))]
        self.reg_names = [n for n in self.names if loss.is_regularized(n)]
        # TF1 names: the step counter was the second unnamed Variable of the scope.
        self.global_step = store.get(scope + 'Variable_1', [], zeros, trainable=False)
        self.optimizer = optim.TF1Adam(store, self.names, scope, lr_mult={
            n: 2.0 for n in self.names if n.find('biases') > 0})
        self.loss_scaler = optim.LossScaler() if precision == 'fp16' else None
        # [words, image or clip] as the model takes them, and the mask.
        self.step_fn = tf.function(self._step, jit_compile=xla, input_signature=(
            model.input_signature + [tf.TensorSpec([None, model.H, model.W, 1], tf.float32)]))
        self._distributed_fn = tf.function(lambda *args: distribute.run_on_replicas(
            self.strategy, self._step, args, gathered=('pred', 'target')))

    @property
    def step(self):
        return int(self.global_step.numpy())

    def learning_rate(self, step):
        return optim.polynomial_decay(step, self.settings.start_lr, self.settings.lr_decay_step)

    def _step(self, words, visual, mask):
        model = self.model
        variables = [model.model_variables[n] for n in self.names]
        with tf.GradientTape() as tape:
            out = model.build_graph(words, visual, training=True)
            losses = loss.multi_level_loss(out, mask,
                                           [model.model_variables[n] for n in self.reg_names],
                                           self.settings.weight_decay)
            cost = losses['cost']
            if self.loss_scaler is not None:
                cost = cost * self.loss_scaler.scale
        # The embedding's gradient is sparse: as a dense tensor its duplicate rows are summed.
        grads = [tf.convert_to_tensor(g) for g in tape.gradient(cost, variables)]
        grads = distribute.all_reduce_mean(grads)
        lr = self.learning_rate(self.global_step)

        def update(grads):
            self.optimizer.apply(variables, grads, lr)
            optim.local_assign(self.global_step, self.global_step + 1.0)
            return tf.constant(True)
        if self.loss_scaler is not None:
            grads, finite = self.loss_scaler.unscale(grads)
            tf.cond(finite, lambda: update(grads), tf.no_op)  # an overflowed step is skipped
            self.loss_scaler.update(finite)
            losses['step_skipped'] = 1.0 - tf.cast(finite, tf.float32)
            losses['loss_scale'] = tf.identity(self.loss_scaler.scale)
        else:
            update(grads)
        losses['learning_rate'] = lr
        losses['pred'] = out['pred']
        losses['target'] = model.downsample_mask(mask)
        return losses

    def train_step(self, words, im, mask):
        """One update on numpy arrays (this worker's share of the global batch); the losses
        computed before it, as numpy."""
        if self.strategy.num_replicas_in_sync == 1:
            out = self.step_fn(words, im, mask)
        else:
            out = self._distributed_fn(*distribute.split_to_replicas(self.strategy, words, im,
                                                                     mask))
        return {k: v.numpy() for k, v in out.items()}


def calibrate_backbone(model, reader, n=CALIBRATION_IMAGES):
    """A random backbone's batch norms get the statistics of n training images (see
    DeepLabResNetModel.calibrate); a pretrained one keeps its own."""
    n = min(n, reader.num_batch)
    ims = np.stack([train_input(reader.read_batch(is_log=False), model.H, model.W)[1]
                    for _ in range(n)])
    model.backbone.calibrate(ims)
    print('Backbone: random weights, batch-norm statistics from %d training images' % n)
