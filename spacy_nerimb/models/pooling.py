"""Word-piece pooling for the spacy-transformers listener.

The listener hands its ``pooling`` layer a ``Ragged``: the word-piece vectors
of every token, one segment per token. thinc's ``reduce_first.v1`` assumes no
segment is empty and fails on tokens the transformer's tokenizer drops
(whitespace tokens, some symbols and emoji), which real corpora such as
WNUT-17 contain. ``spacy-nerimb.reduce_first_piece.v1`` takes the first word
piece of each token, as Hugging Face token classification labels the first
piece, and gives a token without pieces a zero vector.
"""
from typing import Callable, Tuple

from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d, Ragged


@registry.layers("spacy-nerimb.reduce_first_piece.v1")
def reduce_first_piece() -> Model[Ragged, Floats2d]:
    """Each segment's first row; a zero row for an empty segment."""
    return Model("reduce_first_piece", _first_piece_forward)


def _first_piece_forward(model: Model, X: Ragged, is_train: bool) -> Tuple[Floats2d, Callable]:
    xp = model.ops.xp
    data = X.dataXd
    lengths = model.ops.asarray1i(X.lengths)
    starts = xp.cumsum(lengths) - lengths
    present = xp.nonzero(lengths > 0)[0]
    first_rows = starts[present]
    width = data.shape[1] if data.ndim == 2 else 0
    Y = model.ops.alloc2f(lengths.shape[0], width, dtype=data.dtype)
    Y[present] = data[first_rows]

    def backprop(dY: Floats2d) -> Ragged:
        dX = model.ops.alloc2f(data.shape[0], width, dtype=dY.dtype)
        dX[first_rows] = dY[present]  # one first row per token: no index repeats
        return Ragged(dX, lengths)

    return Y, backprop
