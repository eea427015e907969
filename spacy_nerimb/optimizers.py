"""Adam with gradient clipping by the global norm, as transformer fine-tuning usually does.

thinc's ``Adam.v1`` clips each parameter array's gradient on its own
(``grad_clip``). Hugging Face training loops clip the norm of *all* gradients
together, which scales every gradient of a step by the same factor and keeps
their directions. thinc hands the optimiser one parameter at a time, so
``spacy-nerimb.AdamGlobalClip.v1`` holds each step's gradients until the step
is complete, then clips them together and applies Adam. A step is complete
when the training loop calls ``optimizer.step_schedules()`` (``spacy train``
does after every update), when a parameter comes back for the next step, or
on ``optimizer.flush()``.
"""
from typing import Any, Dict, List, Optional, Tuple, Union

from spacy.util import registry
from thinc.api import Optimizer
from thinc.backends import get_array_ops
from thinc.types import FloatsXd

KeyT = Tuple[int, str]


class GlobalNormClipOptimizer(Optimizer):
    """thinc's Adam whose updates wait for the step's last gradient (see the module docstring)."""

    def __init__(self, learn_rate: Any, *, max_grad_norm: float = 1.0, **adam: Any) -> None:
        if not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm = {max_grad_norm!r}: expected a number > 0 "
                             "(the largest global L2 norm of one step's gradients)")
        if adam.get("grad_clip"):
            raise ValueError("spacy-nerimb.AdamGlobalClip.v1 clips by the global norm (max_grad_norm); "
                             "per-parameter grad_clip cannot be combined with it")
        super().__init__(learn_rate, **{**adam, "grad_clip": 0.0})
        self.max_grad_norm = float(max_grad_norm)
        self.last_grad_norm: Optional[float] = None
        self._pending: Dict[KeyT, Tuple[FloatsXd, FloatsXd, float]] = {}

    def __call__(self, key: KeyT, weights: FloatsXd, gradient: FloatsXd, *, lr_scale: float = 1.0):
        """Keep a copy of the gradient; the weights change in place when the step is flushed."""
        if len(gradient) < 1:
            return weights, gradient
        if key in self._pending:  # the next step began without step_schedules()
            self.flush()
        self._pending[key] = (weights, gradient.copy(), lr_scale)
        gradient *= 0
        return weights, gradient

    def flush(self) -> None:
        """Clip the held gradients by their global norm and apply Adam to each parameter."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        squares: List[Any] = []
        for _, gradient, _ in pending.values():
            xp = get_array_ops(gradient).xp
            squares.append(xp.sum(gradient.astype("float64") ** 2))
        norm = float(sum(squares)) ** 0.5
        self.last_grad_norm = norm
        scale = min(1.0, self.max_grad_norm / (norm + 1e-6))
        for key, (weights, gradient, lr_scale) in pending.items():
            if scale < 1.0:
                gradient *= scale
            updated, _ = super().__call__(key, weights, gradient, lr_scale=lr_scale)
            if updated is not weights:
                weights[...] = updated

    def step_schedules(self) -> None:
        self.flush()
        super().step_schedules()


@registry.optimizers("spacy-nerimb.AdamGlobalClip.v1")
def configure_adam_global_clip(
    learn_rate: Union[float, Any] = 0.001,
    *,
    max_grad_norm: float = 1.0,
    L2: float = 0.0,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-08,
    L2_is_weight_decay: bool = True,
    use_averages: bool = True,
) -> GlobalNormClipOptimizer:
    """Adam (thinc's update rule and settings) clipping each step's gradients by their global
    L2 norm ``max_grad_norm`` instead of each parameter's on its own."""
    return GlobalNormClipOptimizer(
        learn_rate, max_grad_norm=max_grad_norm, L2=L2, beta1=beta1, beta2=beta2, eps=eps,
        L2_is_weight_decay=L2_is_weight_decay, use_averages=use_averages)
