"""The training loss (the original's util/pipeline/loss.py and the loss part of CMPC_model.train_op).

Four sigmoid cross-entropy losses, one on the final score map and one on each level's own map,
all at the input resolution, plus L2 weight decay on the conv weights:

    cost = 0.7 cls(up) + 0.1 cls(up_c5) + 0.1 cls(up_c4) + 0.1 cls(up_c3)
           + weight_decay * sum(l2_loss(w) for w in conv weights)
"""

import tensorflow as tf

# (loss term, output it is computed on); cls_loss_all sums them in this order with these weights.
LEVEL_TERMS = (('cls_loss', 'up'), ('cls_loss_c3', 'up_c3'), ('cls_loss_c4', 'up_c4'),
               ('cls_loss_c5', 'up_c5'))
LEVEL_WEIGHTS = (('cls_loss', 0.7), ('cls_loss_c5', 0.1), ('cls_loss_c4', 0.1),
                 ('cls_loss_c3', 0.1))
LOGGED_TERMS = ('cls_loss', 'cls_loss_c3', 'cls_loss_c4', 'cls_loss_c5', 'cls_loss_all',
                'reg_loss', 'cost')


def sigmoid_loss(logits, labels):
    """util/loss.weighed_logistic_loss with weights 1: batch mean of per-image sums."""
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)  # [B, H, W, 1]
    return tf.reduce_mean(tf.reduce_sum(ce, [1, 2, 3]))


def is_regularized(name):
    """The original's `reg_var_list`: variables whose name has 'DW' (past its first character)
    or ends in 'weights'."""
    return name.find('DW') > 0 or name.endswith('weights')


def multi_level_loss(out, mask, reg_variables, weight_decay):
    """The loss terms of a forward pass `out` (logits up, up_c3, up_c4, up_c5 [B, H, W, 1])
    against `mask` [B, H, W, 1]; `reg_variables` are the weight-decayed variables."""
    losses = {term: sigmoid_loss(out[key], mask) for term, key in LEVEL_TERMS}
    # Summed in the original's order, so that float32 rounding is the original's too.
    weighted = [w * losses[term] for term, w in LEVEL_WEIGHTS]
    losses['cls_loss_all'] = weighted[0] + weighted[1] + weighted[2] + weighted[3]
    losses['reg_loss'] = weight_decay * tf.add_n([tf.nn.l2_loss(v) for v in reg_variables])
    losses['cost'] = losses['cls_loss_all'] + losses['reg_loss']
    return losses
