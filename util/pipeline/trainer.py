"""Training a CMPC model: one step (the loss table of util/pipeline/loss.py, the optimizer and
learning-rate schedule of util/pipeline/optim.py, fp16 loss scaling, data-parallel replicas of
util/pipeline/distribute.py), its snapshots, and the batch-norm calibration of a random backbone.

Whoever trains builds the Trainer around the network (the model module knows nothing of this):

    model = LSTM_model.from_settings(settings, mode='train', train_settings=train_settings)
    trainer = Trainer(model, train_settings)   # adds the optimizer's variables to model.store
    model.restore(prefix)                      # a train snapshot: weights, optimizer state, step
    losses = trainer.train_step(words, im, mask)  # numpy in, numpy losses out
    trainer.save(prefix, meta)                 # weights, optimizer state, settings and step

A new loss term is a row of util/pipeline/loss.py's table, a new optimizer an entry of
optim.OPTIMIZERS; neither touches the network. The step is a pure tf.function: a batch in, the
losses out, no I/O.
"""

import numpy as np
import tensorflow as tf

from util.datasets.batches import train_input
from util.pipeline import distribute, loss, optim
from util.pipeline.checkpoint import zeros

BACKBONE_TRAINED_WITH_CONV5 = ('res3', 'res4', 'res5')
CALIBRATION_IMAGES = 16


class Trainer:
    """The training state and step of `model` (an LSTM_model, image or video) under `settings`
    (a TrainSettings; default: the training keywords the model was built with in train mode).

    Trained variables: everything under the model's scope, and with conv5 the res3-res5 conv
    weights too (the backbone's batch norms stay frozen). Biases' gradients are doubled, as in
    the original's train_op; the loss is the table `loss_terms` (util/pipeline/loss.py's TERMS).

    The optimizer's variables (Adam's slots and beta powers, the step counter
    `text_objseg/Variable_1`) are created in the model's store under the original's names: a
    snapshot holds them beside the weights, and `model.restore` fills them. Build the Trainer
    before restoring a train snapshot. `precision` and `xla` default to the model's; fp16 adds
    dynamic loss scaling (`loss_scaler`). Built for a model made in a tf.distribute strategy's
    scope, its variables are mirrored too and train_step runs data-parallel.
    """

    def __init__(self, model, settings=None, precision=None, xla=None, loss_terms=None):
        settings = settings if settings is not None else model.train_settings
        if settings is None:
            raise ValueError("Trainer needs TrainSettings (or a model built with mode='train')")
        if settings.optimizer not in optim.OPTIMIZERS:
            raise ValueError('Unknown optimizer type %s! (util/pipeline/optim.py OPTIMIZERS: %s)'
                             % (settings.optimizer, ', '.join(sorted(optim.OPTIMIZERS))))
        precision = model.precision if precision is None else precision
        if precision != model.precision:
            raise ValueError('Trainer precision %r differs from the model\'s %r'
                             % (precision, model.precision))
        if model.fold:
            raise ValueError('fold is for inference: training may change the weights it folds')
        xla = model.xla if xla is None else xla
        self.model, self.settings, self.precision = model, settings, precision
        self.loss_terms = tuple(loss.TERMS if loss_terms is None else loss_terms)
        self.logged_terms = loss.logged_names(self.loss_terms)
        self.strategy = model.strategy
        store, scope = model.store, model.scope
        self.names = [n for n, v in model.model_variables.items() if v.trainable and (
            n.startswith(scope) or (settings.conv5 and n.startswith(BACKBONE_TRAINED_WITH_CONV5)))]
        with self.strategy.scope():  # mirrored like the model's when it has replicas
            # TF1 names: the step counter was the second unnamed Variable of the scope.
            self.global_step = store.get(scope + 'Variable_1', [], zeros, trainable=False)
            self.optimizer = optim.OPTIMIZERS[settings.optimizer](
                store, self.names, scope,
                lr_mult={n: 2.0 for n in self.names if n.find('biases') > 0})
            self.loss_scaler = optim.LossScaler() if precision == 'fp16' else None
        # [words, image or clip] as the model takes them, and the mask.
        self.step_fn = tf.function(self._step, jit_compile=xla, input_signature=(
            model.input_signature + [tf.TensorSpec([None, model.H, model.W, 1], tf.float32)]))
        self._distributed_fn = tf.function(lambda *args: distribute.run_on_replicas(
            self.strategy, self._step, args, gathered=('pred', 'target')))

    @property
    def step(self):
        """The global step (the number of updates applied), as an int."""
        return int(self.global_step.numpy())

    def learning_rate(self, step):
        return optim.polynomial_decay(step, self.settings.start_lr, self.settings.lr_decay_step)

    def _step(self, words, visual, mask):
        model, s = self.model, self.settings
        trained = {n: model.model_variables[n] for n in self.names}
        variables = list(trained.values())
        with tf.GradientTape() as tape:
            out = model.build_graph(words, visual,
                                    keep_probs=(s.keep_prob_emb, s.keep_prob_rnn))
            losses = loss.compute(self.loss_terms, out, mask, trained, s)
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

    def train_step(self, words, visual, mask):
        """One update on numpy arrays: words [B, T], the image [B, H, W, 3] or clip, mask
        [B, H, W, 1]. Returns the losses computed before it (numpy): each logged term, the
        learning rate used, `pred` and the mask resized to the score map (`target`), and
        under fp16 `step_skipped` and `loss_scale`.

        Under tf.distribute (the model built in `strategy.scope()`), the arrays are this
        worker's share of the global batch, split equally among its replicas in order; the
        losses returned are the global batch's, and pred / target hold every sample."""
        words, visual, mask = self.model.check_inputs(words, visual, mask)
        if self.strategy.num_replicas_in_sync == 1:
            out = self.step_fn(words, visual, mask)
        else:
            out = self._distributed_fn(*distribute.split_to_replicas(self.strategy, words,
                                                                     visual, mask))
        return {k: v.numpy() for k, v in out.items()}

    def save(self, prefix, meta=None):
        """A train snapshot: the model's variables with the optimizer's, and a JSON with the
        model's and these training settings and the step (settings.run_record)."""
        return self.model.save(prefix, meta, train_settings=self.settings, step=self.step)


def calibrate_backbone(model, reader, n=CALIBRATION_IMAGES):
    """A random backbone's batch norms get the statistics of n training images (see
    DeepLabResNetModel.calibrate); a pretrained one keeps its own."""
    n = min(n, reader.num_batch)
    ims = np.stack([train_input(reader.read_batch(is_log=False), model.H, model.W)[1]
                    for _ in range(n)])
    model.backbone.calibrate(ims)
    print('Backbone: random weights, batch-norm statistics from %d training images' % n)
