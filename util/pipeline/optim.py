"""The optimizer of the original: TF1's AdamOptimizer with its checkpoint names, the polynomial
learning-rate schedule, and (for the fp16 fast path) dynamic loss scaling. `OPTIMIZERS` names
the optimizers that TrainSettings.optimizer may choose (the original had only 'adam').

The slot names are a checkpoint contract: TF1 made Adam's slots under the model's scope again,
so the moments of `text_objseg/score/DW` are `text_objseg/text_objseg/score/DW/Adam` and
`.../Adam_1`, and the beta powers are `text_objseg/beta1_power` and `text_objseg/beta2_power`.
"""

import tensorflow as tf

from util.pipeline.checkpoint import constant, zeros

ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON = 0.9, 0.999, 1e-8
END_LEARNING_RATE = 0.00001
DECAY_POWER = 0.9
# fp16 dynamic loss scaling. The losses are per-image sums over H x W pixels, so gradients
# are large already: start low (2^15, the usual start, overflows at once).
INITIAL_LOSS_SCALE, LOSS_SCALE_PERIOD = 2.0 ** 7, 2000


def polynomial_decay(step, start_lr, decay_steps, end_lr=END_LEARNING_RATE, power=DECAY_POWER):
    """tf.train.polynomial_decay(start_lr, step, decay_steps, end_lr, power)."""
    p = tf.minimum(step, float(decay_steps)) / float(decay_steps)
    return (start_lr - end_lr) * (1 - p) ** power + end_lr


def local_assign(var, value):
    """Assigns `value` to this replica's copy of `var` (the variable itself outside
    tf.distribute). Every replica applies the same update to its own copy, as it does for the
    weights, so mirrored optimizer state stays equal without any cross-replica step."""
    tf.raw_ops.AssignVariableOp(resource=var.handle, value=tf.convert_to_tensor(value, var.dtype))


class TF1Adam:
    """tf.train.AdamOptimizer(lr) as the original ran it, on the variables `names` of `store`.

    `lr_mult`: name -> gradient multiplier (the original doubled the biases' gradients).
    """

    def __init__(self, store, names, scope, lr_mult=None):
        self.names = list(names)
        self.lr_mult = dict(lr_mult or {})
        self.beta1_power = store.get(scope + 'beta1_power', [], constant(ADAM_BETA1),
                                     trainable=False)
        self.beta2_power = store.get(scope + 'beta2_power', [], constant(ADAM_BETA2),
                                     trainable=False)
        self.slots = {n: (store.get(scope + n + '/Adam', store[n].shape, zeros, trainable=False),
                          store.get(scope + n + '/Adam_1', store[n].shape, zeros,
                                    trainable=False))
                      for n in self.names}

    def apply(self, variables, grads, lr):
        """One update of `variables` (in the order of `names`) with `grads`."""
        for name, var, grad in zip(self.names, variables, grads):
            if self.lr_mult.get(name, 1.0) != 1.0:
                grad = self.lr_mult[name] * grad
            m, v = self.slots[name]
            # The kernel TF1's AdamOptimizer ran: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t),
            # m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2), var -= lr_t m / (sqrt(v) + eps).
            tf.raw_ops.ResourceApplyAdam(
                var=var.handle, m=m.handle, v=v.handle, beta1_power=self.beta1_power,
                beta2_power=self.beta2_power, lr=lr, beta1=ADAM_BETA1, beta2=ADAM_BETA2,
                epsilon=ADAM_EPSILON, grad=grad)
        local_assign(self.beta1_power, self.beta1_power * ADAM_BETA1)
        local_assign(self.beta2_power, self.beta2_power * ADAM_BETA2)


# TrainSettings.optimizer -> the class that Trainer builds as
# cls(store, names, scope, lr_mult=...) and steps with .apply(variables, grads, lr).
OPTIMIZERS = {'adam': TF1Adam}


class LossScaler:
    """Dynamic loss scaling for fp16: halve the scale and skip the step on inf/nan gradients,
    double it after LOSS_SCALE_PERIOD finite steps in a row. Its state is not part of the
    original's checkpoints: plain variables, kept off the model's store."""

    def __init__(self):
        self.scale = tf.Variable(INITIAL_LOSS_SCALE, trainable=False, name='loss_scale')
        self.good_steps = tf.Variable(0, trainable=False, name='loss_scale_good_steps')

    def unscale(self, grads):
        """(grads / scale, whether all of them are finite)."""
        grads = [g / self.scale for g in grads]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        return grads, finite

    def state(self):
        """The scale and the count of finite steps in a row, for a snapshot's JSON."""
        return {'loss_scale': float(self.scale.numpy()),
                'loss_scale_good_steps': int(self.good_steps.numpy())}

    def load_state(self, state):
        self.scale.assign(state['loss_scale'])
        self.good_steps.assign(state['loss_scale_good_steps'])

    def update(self, finite):
        good = tf.where(finite, self.good_steps + 1, 0)
        grow = good >= LOSS_SCALE_PERIOD
        local_assign(self.scale, tf.where(finite, tf.where(grow, self.scale * 2.0, self.scale),
                                          tf.maximum(self.scale / 2.0, 1.0)))
        local_assign(self.good_steps, tf.where(grow, 0, good))
