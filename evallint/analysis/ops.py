"""Semantic operations: what a step does to models, optimizers and the grad state.

``interpret.py`` turns each step of a control-flow graph into a list of these, once per function;
the dataflow applies them and the rules read them. Keys name models: ``model``, ``self.net``,
``self.models['G']`` (``.module`` dropped: DDP's ``model.module`` is ``model``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

import libcst as cst

from evallint.frontend.cfg import Step

if TYPE_CHECKING:
    from evallint.analysis.module import ModuleContext, ProjectClass, ProjectFunction


class Mode(Enum):
    TRAIN = "train"
    EVAL = "eval"
    UNKNOWN = "unknown"
    ENTRY = "entry"  # whatever mode the model had when the function was entered


@dataclass(eq=False)
class Op:
    step: Step
    node: cst.CSTNode


@dataclass(eq=False)
class SetMode(Op):
    """``key.train()``/``key.eval()``/``key.train(x)``; ``restore_var`` for ``train(was_training)``."""

    key: str
    mode: Mode
    restore_var: str | None = None
    # The test on parameters that picks this call (``if training: m.train() else: m.eval()``).
    chosen_by: cst.BaseExpression | None = None


@dataclass(eq=False)
class BadModeArgument(Op):
    """``key.eval(<anything>)`` or ``key.train(<str/number literal>)`` (EL107)."""

    key: str
    method: str


class ValueKind(Enum):
    FRESH = "fresh"  # a new model in ``mode``
    ALIAS = "alias"  # the same object as ``source``
    COPY = "copy"  # a deep copy of ``source``
    CAPTURE = "capture"  # ``source.training`` stored in a variable
    OPTIMIZER = "optimizer"  # an optimizer holding ``params`` (None: unknown)
    NOT_MODEL = "not_model"  # an object that is known not to be a model
    CALL_RESULT = "call_result"  # what the project function of ``call`` returns
    IMPORTED = "imported"  # the module-level variable ``source`` of project module ``imported_from``
    UNKNOWN = "unknown"


@dataclass(eq=False)
class Bind(Op):
    """``key = <value>`` (also for-loop targets and ``with ... as key``)."""

    key: str
    kind: ValueKind
    mode: Mode = Mode.UNKNOWN
    source: str | None = None
    # ``key`` stands for each element: of the container ``elements_of`` (for m in d.values()),
    # or each of the keys ``elements`` (for m in (a, b); models = [a, b]).
    elements_of: str | None = None
    elements: tuple[str, ...] = ()
    params: tuple[str, ...] | None = None
    model_class: object = None  # ProjectClass or qualified name of a FRESH model (severity)
    # Keys given to the constructor of a FRESH project model: a wrapper has their mode.
    wraps: tuple[str, ...] = ()
    call: "Call | None" = None
    imported_from: "ModuleContext | None" = None


@dataclass(eq=False)
class TrainingFlagAssigned(Op):
    """``key.training = value`` (EL105); the model's mode becomes unknown."""

    key: str
    value: cst.BaseExpression
    in_module_loop: bool = False  # inside ``for m in model.modules()/named_modules()``


@dataclass(eq=False)
class Forward(Op):
    key: str


@dataclass(eq=False)
class Backward(Op):
    pass


@dataclass(eq=False)
class OptimizerStep(Op):
    optimizer: str | None


@dataclass(eq=False)
class GradientUse(Op):
    """Gradients are the point: autograd.grad, requires_grad_ on inputs, frozen parameters."""


@dataclass(eq=False)
class SetGradEnabled(Op):
    """A bare ``torch.set_grad_enabled(x)`` statement; ``enabled`` None when not a literal."""

    enabled: bool | None


@dataclass(eq=False)
class Export(Op):
    key: str
    function: str
    eval_requested: bool = False


@dataclass(eq=False)
class BareModeReference(Op):
    """``key.eval`` / ``key.train`` as an expression statement (EL106)."""

    key: str
    method: str


@dataclass(eq=False)
class GradContextNotEntered(Op):
    """``torch.no_grad()`` as a statement, or ``with torch.no_grad:`` without the call (EL202)."""

    function: str
    called: bool


@dataclass(eq=False)
class FunctionalModeLayer(Op):
    """``F.dropout(x, p)``, ``F.batch_norm(...)``: a functional layer that takes the mode as an
    argument (``torch_api.FUNCTIONAL_MODE_ARGUMENT``) instead of reading a module's (EL108)."""

    function: str  # its qualified name


@dataclass(eq=False)
class LayerBuiltAndCalled(Op):
    """``nn.Dropout(0.5)(x)``: a module built and called in one expression (EL108); ``node`` is
    the outer call. (A module built into a variable and called later is a ``Bind`` and a ``Forward``.)"""

    construction: cst.Call
    layer: object  # the ProjectClass or External its construction resolves to
    mode_set: bool = False  # ``Layer(...).train(flag)(x)``: the mode is chosen on the way


@dataclass(eq=False)
class Call(Op):
    """A call to a function defined in the project; its summary applies here."""

    function: "ProjectFunction"
    # Parameter name -> key of the argument expression (None when not a key).
    arguments: dict[str, str | None] = field(default_factory=dict)
    literals: dict[str, object] = field(default_factory=dict)
    receiver: str | None = None  # key that ``self`` maps to
    # Keys of container-literal arguments: parameter -> element keys.
    element_arguments: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # ``with cm(model):`` of a ``@contextmanager`` generator: "enter" runs it up to its
    # ``yield``, "exit" (after the with body) the rest; a plain call runs all of it.
    phase: str = "call"
    # Project classes of the callee's keys known here (``train(model)``, ``model = VSE(opt)``).
    classes: dict[str, "ProjectClass"] = field(default_factory=dict)


@dataclass(eq=False)
class Yield(Op):
    """A ``yield`` statement: in a ``@contextmanager`` generator, where the with body runs."""
