"""The training loss as a table (the original's util/loss.py and the loss part of
CMPC_model.train_op).

Each row of `TERMS` is one term of the cost. An `OutputTerm` is a function of one output of the
forward and the mask, weighted; the output terms sum, in the table's order, to `cls_loss_all`.
A `VariableTerm` is a function of each trained variable it selects, summed and weighted by a
training setting; it is added after them. The original's table:

    cost = 0.7 cls(up) + 0.1 cls(up_c5) + 0.1 cls(up_c4) + 0.1 cls(up_c3)      (cls_loss_all)
           + weight_decay * sum(l2_loss(w) for w in conv weights)               (reg_loss)

The rows are summed in that order, so that float32 rounding is the original's too. What is
logged (`logged_names`, `LOGGED_TERMS`: the run log, TensorBoard, the non-finite check) follows
from the rows: each output term unweighted, cls_loss_all, each variable term weighted (as the
original logged reg_loss), and the cost.

Adding a loss term is one function and one row:

    def dice_loss(logits, labels):             # output [B, H, W, 1], mask [B, H, W, 1] -> []
        ...
    TERMS = (..., OutputTerm('dice_loss', 'up', 0.5, dice_loss))

`dice_loss` is then logged, checked for non-finite values, and 0.5 x it is part of the cost
and its gradient. An experiment can also pass its own table: `Trainer(model, settings,
loss_terms=TERMS + (row,))`; tests/test_loss.py does exactly that.
"""

from typing import Callable, NamedTuple, Union

import tensorflow as tf


class OutputTerm(NamedTuple):
    """`weight * fn(out[output], mask)`, logged unweighted under `name`."""
    name: str
    output: str  # a key of the forward's outputs (LSTM_model.build_graph)
    weight: float
    fn: Callable  # (logits [B, H, W, 1], mask [B, H, W, 1]) -> scalar


class VariableTerm(NamedTuple):
    """`weight * sum(fn(v) for each trained variable v whose name `selects`)`, logged weighted
    under `name`; `weight` is a number or the name of a TrainSettings field."""
    name: str
    selects: Callable  # variable name -> bool
    weight: Union[float, str]
    fn: Callable  # variable -> scalar


def sigmoid_loss(logits, labels):
    """util/loss.weighed_logistic_loss with weights 1: batch mean of per-image sums."""
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)  # [B, H, W, 1]
    return tf.reduce_mean(tf.reduce_sum(ce, [1, 2, 3]))


def is_regularized(name):
    """The original's `reg_var_list`: variables whose name has 'DW' (past its first character)
    or ends in 'weights'."""
    return name.find('DW') > 0 or name.endswith('weights')


TERMS = (
    OutputTerm('cls_loss', 'up', 0.7, sigmoid_loss),        # the final score map
    OutputTerm('cls_loss_c5', 'up_c5', 0.1, sigmoid_loss),  # each level's own map
    OutputTerm('cls_loss_c4', 'up_c4', 0.1, sigmoid_loss),
    OutputTerm('cls_loss_c3', 'up_c3', 0.1, sigmoid_loss),
    VariableTerm('reg_loss', is_regularized, 'weight_decay', tf.nn.l2_loss),
)


def logged_names(terms=TERMS):
    """The names a train step returns and the run logs, derived from the rows."""
    return (tuple(t.name for t in terms if isinstance(t, OutputTerm)) + ('cls_loss_all',)
            + tuple(t.name for t in terms if isinstance(t, VariableTerm)) + ('cost',))


LOGGED_TERMS = logged_names(TERMS)


def compute(terms, out, mask, variables, settings):
    """The terms of a forward pass `out` (dict of tensors) against `mask` [B, H, W, 1]:
    {name: value} for every row, with cls_loss_all and cost. `variables`: name -> the trained
    variables; `settings`: the TrainSettings that variable terms take their weight from."""
    losses, cls_loss_all, decay = {}, None, []
    for t in terms:
        if isinstance(t, OutputTerm):
            losses[t.name] = t.fn(out[t.output], mask)
            weighted = t.weight * losses[t.name]
            # Summed left to right in the table's order (the original's float32 rounding).
            cls_loss_all = weighted if cls_loss_all is None else cls_loss_all + weighted
        elif isinstance(t, VariableTerm):
            weight = getattr(settings, t.weight) if isinstance(t.weight, str) else t.weight
            losses[t.name] = weight * tf.add_n([t.fn(v) for n, v in variables.items()
                                                if t.selects(n)])
            decay.append(losses[t.name])
        else:
            raise TypeError('loss table row %r is neither an OutputTerm nor a VariableTerm'
                            % (t,))
    if cls_loss_all is None:
        raise ValueError('the loss table has no OutputTerm')
    losses['cls_loss_all'] = cls_loss_all
    cost = cls_loss_all
    for term in decay:
        cost = cost + term
    losses['cost'] = cost
    return losses
