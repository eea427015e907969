"""``spacy-nerimb.TokenTagger.v1``: tok2vec → [BiLSTM] → linear head producing logits per token.

The model is a small tree whose structure depends only on its own settings,
never on the loss, so a pipeline deserialises before its loss is bound:

* ``tok2vec`` (ref ``"tok2vec"``): any token encoder (CNN, transformer listener);
* ``head`` (ref ``"head"``): the component's own layers after the encoder: an
  optional bidirectional LSTM (ref ``"bilstm"``) and the emission layer, a plain
  ``Linear`` (ref ``"output_layer"``, no softmax: every loss takes logits);
* ``crf`` (ref ``"crf"``): the learned transition/start/end scores of a CRF loss.
  It takes no part in the forward pass; its dimension stays unset and it holds
  no arrays unless a CRF loss binds it (``spacy-nerimb.CRF.v1``), so other losses
  pay nothing. Because it is a layer of the model, the optimiser updates it and
  ``to_disk``/``to_bytes`` save it with everything else.
"""
from io import BytesIO
from typing import Any, Callable, List, Optional, Tuple

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Linear, Model, chain, get_torch_default_device, with_array, zero_init
from thinc.shims import PyTorchShim
from thinc.types import ArgsKwargs, Floats2d
from thinc.util import torch2xp, xp2torch

OUTPUT_LAYER = "output_layer"
TOK2VEC_REF = "tok2vec"
HEAD_REF = "head"
BILSTM_REF = "bilstm"
CRF_LAYER = "crf"
CRF_PARAMS = ("transitions", "start", "end")
HEAD_INIT_STD = 0.02


def normal_head_init(ops: Any, shape: Tuple[int, ...]) -> Floats2d:
    """N(0, 0.02) weights drawn from numpy's global generator (seeded by ``fix_random_seed``)."""
    return ops.asarray(numpy.random.normal(0.0, HEAD_INIT_STD, shape), dtype="float32")


OUTPUT_INITS = {"zeros": zero_init, "normal": normal_head_init}


@registry.architectures("spacy-nerimb.TokenTagger.v1")
def build_token_tagger(
    tok2vec: Model[List[Doc], List[Floats2d]],
    nO: Optional[int] = None,
    bilstm_depth: int = 0,
    bilstm_width: int = 128,
    bilstm_dropout: float = 0.0,
    bilstm_skip: bool = True,
    output_init: str = "zeros",
) -> Model[List[Doc], List[Floats2d]]:
    """Token vectors from any tok2vec (CNN or transformer listener) → logits.

    ``nO`` is left unset in configs: the component sets it at ``initialize`` to
    the width the configured loss asks for (tags, two-task pairs, CRF emissions).

    ``bilstm_depth`` > 0 puts a bidirectional LSTM of that many layers between
    the token vectors and the emission layer; ``bilstm_width`` is its output
    width (both directions together, so ``bilstm_width / 2`` hidden units per
    direction); ``bilstm_dropout`` is a fixed dropout rate, active in training
    only, applied between stacked LSTM layers and to the BiLSTM's output (it is
    not changed by ``[training] dropout``). The BiLSTM's output is
    layer-normalised; with ``bilstm_skip`` (default) the emission layer sees the
    token vector and the BiLSTM output side by side (a skip connection; without
    it a BiLSTM on a from-scratch CNN leaves the all-``O`` solution far later,
    see docs/crf.md), ``bilstm_skip = false`` is the plain BiLSTM → linear of
    the BiLSTM-CRF papers. The input width is read from the token vectors at
    ``initialize``, so any tok2vec works.

    ``output_init`` sets the emission layer's initial weights: ``"zeros"``
    (spaCy's choice for a tok2vec trained from scratch) or ``"normal"``
    (N(0, 0.02), as Hugging Face token-classification heads). Behind a
    pre-trained transformer use ``"normal"``: with zero weights no gradient
    reaches the encoder until the head has grown, and short fine-tuning budgets
    end in an all-``O`` model (docs/transformers.md).
    """
    def number(value: object) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    for setting, value, ok, rule in (
        ("bilstm_depth", bilstm_depth, number(bilstm_depth) and bilstm_depth == int(bilstm_depth)
         and bilstm_depth >= 0, "an integer >= 0 (0 = no BiLSTM)"),
        ("bilstm_width", bilstm_width, number(bilstm_width) and bilstm_width == int(bilstm_width)
         and bilstm_width >= 2 and bilstm_width % 2 == 0,
         "an even integer >= 2 (two directions of width / 2)"),
        ("bilstm_dropout", bilstm_dropout, number(bilstm_dropout) and 0 <= bilstm_dropout < 1,
         "a rate in [0, 1)"),
        ("bilstm_skip", bilstm_skip, isinstance(bilstm_skip, bool), "true or false"),
        ("output_init", output_init, output_init in OUTPUT_INITS,
         " or ".join(repr(name) for name in OUTPUT_INITS)),
    ):
        if not ok:
            raise ValueError(
                f"spacy-nerimb.TokenTagger.v1: {setting} = {value!r}; expected {rule}."
            )
    bilstm_depth, bilstm_width = int(bilstm_depth), int(bilstm_width)
    output_layer = Linear(nO=nO, init_W=OUTPUT_INITS[output_init])
    output_layer.name = OUTPUT_LAYER
    emissions = with_array(output_layer)
    bilstm = None
    if bilstm_depth > 0:
        bilstm = build_bilstm(bilstm_width, bilstm_depth, float(bilstm_dropout), bool(bilstm_skip))
        head = chain(bilstm, emissions)
    else:
        head = emissions
    body = chain(tok2vec, head)
    crf = crf_params()
    model: Model = Model(
        "nerimb_tagger", _tagger_forward, init=_tagger_init, layers=[body, crf],
        dims={"nO": nO},  # mirrors the emission layer's width (spaCy reads model.nO)
    )
    model.set_ref(TOK2VEC_REF, tok2vec)
    model.set_ref(HEAD_REF, head)
    model.set_ref(OUTPUT_LAYER, output_layer)
    model.set_ref(CRF_LAYER, crf)
    if bilstm is not None:
        model.set_ref(BILSTM_REF, bilstm)
    return model


def _tagger_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
    return model.layers[0](docs, is_train)


def _tagger_init(model: Model, X: Optional[List[Doc]] = None, Y: Any = None) -> None:
    model.layers[0].initialize(X=X, Y=Y)
    model.layers[1].initialize()
    output_layer = model.get_ref(OUTPUT_LAYER)
    if output_layer.has_dim("nO"):
        model.set_dim("nO", output_layer.get_dim("nO"), force=True)


# --- CRF parameters --------------------------------------------------------------------


def crf_params(n_tags: Optional[int] = None) -> Model:
    """The layer that holds a CRF's learned scores (no-op in the forward pass).

    Parameters (allocated at ``initialize`` once ``nO`` = number of tags is
    set, zeros at first): ``transitions[prev, next]`` ``(nO, nO)``, ``start``
    ``(nO,)`` and ``end`` ``(nO,)``. The CRF loss reads them and adds its
    gradients with ``inc_grad``; the optimiser updates them in ``finish_update``.
    """
    return Model(
        CRF_LAYER,
        _identity_forward,
        init=_crf_init,
        dims={"nO": n_tags},
        params={name: None for name in CRF_PARAMS},
    )


def _identity_forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    return X, lambda dY: dY


def _crf_init(model: Model, X: Any = None, Y: Any = None) -> None:
    if model.has_dim("nO") is not True:
        return
    n = model.get_dim("nO")
    model.set_param("transitions", model.ops.alloc2f(n, n))
    model.set_param("start", model.ops.alloc1f(n))
    model.set_param("end", model.ops.alloc1f(n))


# --- BiLSTM -----------------------------------------------------------------------------


def build_bilstm(
    width: int, depth: int, dropout: float, skip: bool = False
) -> Model[List[Floats2d], List[Floats2d]]:
    """Bidirectional ``torch.nn.LSTM`` over each doc (packed: no padding is ever read).

    Output per token: ``dropout(LayerNorm(BiLSTM(x)))`` (width ``width``), or with
    ``skip`` its concatenation after the input ``x`` (width ``nI + width``). The
    torch module is built at ``initialize``, when the input width is known (and
    on load, from the saved weights), so the layer works after any tok2vec. It
    runs on the device of the current thinc ops (CPU or GPU).
    """
    shim = PyTorchShim(
        _UnbuiltBiLSTM(width, depth, dropout, skip), deserialize_model=_deserialize_bilstm
    )
    return Model(
        BILSTM_REF,
        _bilstm_forward,
        init=_bilstm_init,
        dims={"nI": None, "nO": None},
        attrs={"width": width, "depth": depth, "dropout": dropout, "skip": skip},
        shims=[shim],
    )


class _BiLSTMModule(torch.nn.Module):
    """BiLSTM over a batch given as concatenated rows ``(N, nI)`` plus doc lengths."""

    def __init__(self, nI: int, width: int, depth: int, dropout: float, skip: bool) -> None:
        super().__init__()
        self.skip = skip
        self.lstm = torch.nn.LSTM(
            nI, width // 2, depth, bidirectional=True, batch_first=True,
            dropout=dropout if depth > 1 else 0.0,
        )
        self.norm = torch.nn.LayerNorm(width)
        self.dropout = torch.nn.Dropout(dropout)
        self.width = width

    def forward(self, X: Any, lengths: List[int]) -> Any:
        rnn = torch.nn.utils.rnn
        nonzero = [n for n in lengths if n > 0]
        if not nonzero:
            return X.new_zeros((0, self.width + (X.shape[1] if self.skip else 0)))
        sequences = torch.split(X, nonzero)
        packed = rnn.pack_sequence(sequences, enforce_sorted=False)
        out, _ = self.lstm(packed)
        padded, _ = rnn.pad_packed_sequence(out, batch_first=True)  # original order
        steps = torch.arange(padded.shape[1], device=padded.device)
        valid = steps[None, :] < torch.as_tensor(nonzero, device=padded.device)[:, None]
        Y = self.dropout(self.norm(padded[valid]))  # rows doc by doc, as in X
        return torch.cat([X, Y], dim=1) if self.skip else Y


class _UnbuiltBiLSTM(torch.nn.Module):
    """Placeholder until the input width is known (``initialize`` or loading)."""

    def __init__(self, width: int, depth: int, dropout: float, skip: bool) -> None:
        super().__init__()
        self.settings = (width, depth, dropout, skip)

    def build(self, nI: int) -> _BiLSTMModule:
        return _BiLSTMModule(nI, *self.settings)

    def forward(self, *args: Any) -> Any:
        raise RuntimeError("The BiLSTM of spacy-nerimb.TokenTagger.v1 is not initialized.")


def _deserialize_bilstm(module: Any, state_bytes: bytes, device: Any) -> Any:
    state = torch.load(BytesIO(state_bytes), map_location=device)
    if isinstance(module, _UnbuiltBiLSTM):
        module = module.build(int(state["lstm.weight_ih_l0"].shape[1]))
    module.load_state_dict(state)
    module.to(device)
    return module


def _bilstm_init(model: Model, X: Optional[List[Floats2d]] = None, Y: Any = None) -> None:
    if X is None or not len(X):
        raise ValueError(
            "The BiLSTM of spacy-nerimb.TokenTagger.v1 needs sample token vectors at "
            "initialize to learn its input width."
        )
    nI = int(X[0].shape[1])
    attrs = model.attrs
    model.set_dim("nI", nI)
    model.set_dim("nO", attrs["width"] + (nI if attrs["skip"] else 0))
    # (Re-)initialising draws fresh weights, like every thinc layer.
    module = _BiLSTMModule(nI, attrs["width"], attrs["depth"], attrs["dropout"], attrs["skip"])
    model.shims[0]._model = module.to(get_torch_default_device())


def _bilstm_forward(
    model: Model, Xs: List[Floats2d], is_train: bool
) -> Tuple[List[Floats2d], Callable]:
    ops = model.ops
    shim = model.shims[0]
    lengths = [int(x.shape[0]) for x in Xs]
    X = ops.flatten(Xs, dtype="float32")
    Xt = xp2torch(X, requires_grad=is_train, device=shim.device)
    if not is_train:
        Y = torch2xp(shim.predict(ArgsKwargs(args=(Xt, lengths), kwargs={})), ops=ops)
        return ops.unflatten(Y, lengths), _no_backprop
    Yt, torch_backprop = shim.begin_update(ArgsKwargs(args=(Xt, lengths), kwargs={}))
    Y = torch2xp(Yt, ops=ops)

    def backprop(dYs: List[Floats2d]) -> List[Floats2d]:
        dYt = xp2torch(ops.flatten(dYs, dtype="float32"), device=shim.device)
        d_inputs = torch_backprop(ArgsKwargs(args=(Yt,), kwargs={"grad_tensors": dYt}))
        dX = d_inputs.args[0]
        dX = ops.alloc2f(*X.shape) if dX is None else torch2xp(dX, ops=ops)
        return ops.unflatten(dX, lengths)

    return ops.unflatten(Y, lengths), backprop


def _no_backprop(dY: Any) -> Any:
    raise RuntimeError("BiLSTM: backprop called after a prediction-only forward pass.")
