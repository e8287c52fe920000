"""Turn the steps of a function's graph into semantic operations (``ops.py``), once per function.

Names are resolved through the module's imports (``th.no_grad`` is ``torch.no_grad``) and the
project (``from utils import evaluate`` is a project function whose summary applies at the call).
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass, field, replace
from typing import Iterator

import libcst as cst

from evallint.analysis import torch_api
from evallint.analysis.entry_modes import imported_modes
from evallint.analysis.keys import head, is_within, key_of, rebase
from evallint.analysis.module import External, ModuleContext, ProjectClass, ProjectFunction, Symbol
from evallint.analysis.ops import (
    BadModeArgument, Backward, BareModeReference, Bind, Call, Export, Forward, FunctionalModeLayer,
    GradContextNotEntered, GradientUse, LayerBuiltAndCalled, Mode, Op, OptimizerStep,
    SetGradEnabled, SetMode, TrainingFlagAssigned, ValueKind, Yield,
)
from evallint.frontend.cfg import FunctionGraph, Step, StepKind
from evallint.frontend.names import dotted_name, names_read
from evallint.frontend.nodes import child_nodes

# The pseudo-key under which a function's return value is tracked.
RETURN_KEY = "<return>"
BUILTIN_NAMES = frozenset(dir(builtins))
MODULE_ITERATORS = frozenset({"modules", "named_modules", "children", "named_children"})
# Views of a container whose loop variable stands for (or indexes) each element.
CONTAINER_VIEWS = frozenset({"values", "items", "keys"})


@dataclass
class FunctionOps:
    """The ops of every step of one function, in step order."""

    graph: FunctionGraph
    by_step: dict[Step, list[Op]]
    # Keys assigned anywhere in the function (locals), for telling them from the caller's.
    assigned: set[str] = field(default_factory=set)
    # ``was_training = model.training``: the flag variable -> the model it was read from.
    flag_sources: dict[str, str] = field(default_factory=dict)
    # Keys whose ``.eval(x)``/``.train(data)`` is some other API (a continual-learning strategy,
    # a metric): evidence that they are not nn.Modules.
    other_mode_api: frozenset[str] = frozenset()

    def all(self) -> Iterator[Op]:
        for ops in self.by_step.values():
            yield from ops


def function_ops(context: ModuleContext, graph: FunctionGraph,
                 classes: dict[str, ProjectClass] | None = None) -> FunctionOps:
    """The (cached) ops of ``graph``, where ``classes`` gives the project class of keys the caller
    knows (``train(model)`` with ``model = VSE(opt)``: ``model.train_start()`` is VSE's)."""
    cache_key = ("ops", graph, classes_key(classes))
    cached = context.cache.get(cache_key)
    if cached is None:
        cached = _Interpreter(context, graph, classes or {}).run()
        context.cache[cache_key] = cached
    return cached  # type: ignore[return-value]


def classes_key(classes: dict[str, ProjectClass] | None) -> tuple:
    """A hashable form of class bindings, for cache keys."""
    return tuple(sorted((key, cls.node) for key, cls in (classes or {}).items()))


def literal_value(node: cst.BaseExpression) -> tuple[bool, object]:
    """(True, value) for str/int/float/bool/None literals, else (False, None)."""
    if isinstance(node, cst.SimpleString):
        return True, node.evaluated_value
    if isinstance(node, cst.Integer):
        return True, int(node.value.replace("_", ""), 0)
    if isinstance(node, cst.Float):
        return True, float(node.value.replace("_", ""))
    if isinstance(node, cst.Name) and node.value in ("True", "False", "None"):
        return True, {"True": True, "False": False, "None": None}[node.value]
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        ok, value = literal_value(node.expression)
        if ok and isinstance(value, (int, float)):
            return True, -value
    return False, None


class _Interpreter:
    def __init__(self, context: ModuleContext, graph: FunctionGraph,
                 classes: dict[str, ProjectClass] | None = None) -> None:
        self.context = context
        self.graph = graph
        self.caller_classes = classes or {}
        self.cls = context.class_of_graph(graph)
        self.params = set(graph.param_names)
        self.module_loop_names: set[str] = set()
        self.local_classes: dict[str, Symbol] = {}
        # ``self.<attr>`` keys the class's ``__init__`` builds from a project class: every method
        # knows their classes.
        self.init_keys: set[str] = set()
        self.optimizer_keys: set[str] = set()
        self.scheduler_keys: set[str] = set()
        self.not_models: set[str] = set()
        # Names bound to a class picked from a table of model classes (``MODEL_CLASSES[name]``).
        self.picked_model_classes: dict[str, Symbol] = {}
        # Keys bound to a function that a project helper defined and returned.
        self.returned_functions: dict[str, ProjectFunction] = {}
        # Mode calls in ``if training: m.train() else: m.eval()`` on a parameter -> the test.
        self.chosen_by_caller: dict[cst.Call, cst.BaseExpression] = {}
        # Calls entering ``with cm(...)`` of a @contextmanager generator, by with-item expression.
        self.entered: dict[cst.BaseExpression, Call] = {}
        # ``if was_training: m.train()`` restores the flag captured by ``was_training = m.training``.
        self.restoring_calls: dict[cst.Call, str] = {}
        self.result = FunctionOps(graph, {})

    def run(self) -> FunctionOps:
        self.prescan()
        for step in self.graph.steps():
            self.current: list[Op] = []
            self.step = step
            self.interpret(step)
            self.result.by_step[step] = self.current
        return self.result

    # -- prescan: flow-insensitive facts about keys (their classes, optimizers) --------------

    def prescan(self) -> None:
        self.find_mode_choices()
        self.result.other_mode_api = other_mode_api_keys(self.context, self.graph)
        assignments = list(self.assignments_in(self.graph))
        self.find_flag_restores(assignments)
        # Keys the function assigns itself are its locals; ``self.<attr>`` set in ``__init__``
        # is the object's state, which every method shares with its callers.
        self.result.assigned.update(key for key, _, _ in assignments)
        if self.cls is not None:
            init = self.context.find_method(self.cls, "__init__")
            if init is not None and init.graph is not self.graph:
                from_init = [(k, v, init.context) for k, v, _ in
                             _Interpreter(init.context, init.graph).assignments_in(init.graph)
                             if k.startswith("self.")]
                assignments += from_init
                self.init_keys = {k for k, _, _ in from_init}
        # Closure variables: what enclosing functions bound them to (``train_op`` of ``main``).
        enclosing = []
        scope = self.graph.parent
        while scope is not None and not scope.is_module:
            enclosing += [(k, v, c) for k, v, c in self.assignments_in(scope) if k not in self.result.assigned]
            scope = scope.parent
        constructions: list[tuple[str, ProjectClass, cst.Call]] = []
        for key, value, context in enclosing + assignments:
            base = _strip_self_returning(value)
            if not isinstance(base, cst.Call):
                continue
            symbol = context.resolve(base.func)
            if isinstance(symbol, ProjectFunction):
                returned = _returned_nested_function(symbol)
                if returned is not None:
                    self.returned_functions[key] = returned  # ``train_op = get_train_op(opt)``
            if (key, value, context) in enclosing:
                continue
            if isinstance(symbol, ProjectClass):
                self.add_class(key, symbol)
                if context.class_matches(symbol, frozenset(), "torch.optim.") and \
                        not context.class_matches(symbol, frozenset(), "torch.optim.lr_scheduler."):
                    self.optimizer_keys.add(key)  # the project's own Optimizer subclass
                constructions.append((key, symbol, base))
            elif _builds_optimizer(symbol, base, key):
                self.optimizer_keys.add(key)  # ``op = optimtype(model.parameters(), lr=lr)``
            if isinstance(symbol, External):
                qualified = symbol.qualified
                if qualified.startswith(torch_api.SCHEDULER_PREFIXES):
                    self.scheduler_keys.add(key)
                elif qualified.startswith(torch_api.OPTIMIZER_PREFIXES):
                    self.optimizer_keys.add(key)
                if qualified in torch_api.GRAD_SCALERS or torch_api.FRAMEWORK_OBJECTS.match(qualified) \
                        or qualified.startswith(torch_api.SCHEDULER_PREFIXES):
                    self.not_models.add(key)
        self.find_picked_model_classes()
        self.init_keys &= self.local_classes.keys()
        for key, cls in self.caller_classes.items():
            if key not in self.result.assigned and key not in self.local_classes:
                self.add_class(key, cls)
        for key, cls, call in constructions:
            self.injected_classes(key, cls, call)

    def find_picked_model_classes(self) -> None:
        """``model_class = MODEL_CLASSES[args.model_type]`` (or ``config_class, model_class, _ =
        MODEL_CLASSES[...]`` over tuples) where every value of the table is a model class."""
        for step in self.graph.steps():
            node = step.node
            if not (isinstance(node, cst.Assign) and len(node.targets) == 1
                    and isinstance(node.value, cst.Subscript) and isinstance(node.value.value, cst.Name)):
                continue
            rows = self.table_values(node.value.value.value)
            target = node.targets[0].target
            names = [el.value for el in target.elements] if isinstance(target, (cst.Tuple, cst.List)) else [target]
            for position, name in enumerate(names):
                if not isinstance(name, cst.Name):
                    continue
                column = [row if not isinstance(target, (cst.Tuple, cst.List)) else
                          row.elements[position].value if isinstance(row, cst.Tuple)
                          and len(row.elements) == len(names) else None for row in rows]
                symbols = [self.resolve(value) if isinstance(value, (cst.Name, cst.Attribute)) else None
                           for value in column]
                if symbols and all(_is_model_class(self.context, symbol) for symbol in symbols):
                    self.picked_model_classes[name.value] = symbols[0]  # type: ignore[assignment]

    def table_values(self, name: str) -> list[cst.BaseExpression]:
        """The values of the dict literal that ``name`` is bound to (in the function, or else at
        module level), if it is bound once."""
        module = next(graph for graph in self.context.graphs if graph.is_module)
        for graph in (self.graph, module):
            values = [value for key, value, _ in self.assignments_in(graph) if key == name]
            if values:
                if len(values) == 1 and isinstance(values[0], cst.Dict):
                    return [el.value for el in values[0].elements if isinstance(el, cst.DictElement)]
                return []
        return []

    def add_class(self, key: str, cls: ProjectClass) -> None:
        """``key`` is an instance of the project class ``cls``."""
        self.local_classes[key] = cls
        if not cls.context.may_be_module_class(cls) or cls.context.is_framework_managed(cls):
            self.not_models.add(key)

    def injected_classes(self, key: str, cls: ProjectClass, call: cst.Call) -> None:
        """``trainer = Trainer(model)`` whose ``__init__`` keeps ``self.model = model``:
        ``trainer.model`` has the class of the argument (collaborators injected)."""
        init = cls.context.find_method(cls, "__init__")
        if init is None:
            return
        given: dict[str, ProjectClass] = {}
        for name, arg, collected in _parameters_given(init, call, init.graph.param_names[1:]):
            argument = None if collected else self.class_of(arg.value)
            if argument is not None:
                given[name] = argument
        if not given:
            return
        for attribute, value, _ in _Interpreter(init.context, init.graph).assignments_in(init.graph):
            if attribute.startswith("self.") and isinstance(value, cst.Name) and value.value in given:
                self.local_classes.setdefault(rebase(attribute, "self", key), given[value.value])

    def class_of(self, value: cst.BaseExpression) -> ProjectClass | None:
        """The project class of an instance (``model``, or ``VSE(opt)`` itself), if known."""
        key = key_of(value)
        if key is not None:
            return self.local_classes.get(key)  # type: ignore[return-value]
        if isinstance(value, cst.Call):
            symbol = self.resolve(value.func)
            return symbol if isinstance(symbol, ProjectClass) else None
        return None

    def find_flag_restores(self, assignments) -> None:
        """``was_training = m.training ... if was_training: m.train()``: that ``train()`` puts
        back the mode ``m`` had when the flag was read (like ``m.train(was_training)``)."""
        sources: dict[str, set[str | None]] = {}
        for key, value, _ in assignments:
            if isinstance(value, cst.Attribute) and value.attr.value == "training":
                sources.setdefault(key, set()).add(key_of(value.value))
        flags = {var: next(iter(keys)) for var, keys in sources.items()
                 if len(keys) == 1 and None not in keys}
        self.result.flag_sources.update(flags)  # type: ignore[arg-type]
        for step in self.graph.steps():
            statement = step.extra
            if step.kind is StepKind.TEST and isinstance(statement, cst.If) \
                    and isinstance(statement.test, cst.Name) and statement.test.value in flags:
                for call in _mode_calls(statement.body):
                    if call.func.attr.value == "train" and not call.args \
                            and key_of(call.func.value) == flags[statement.test.value]:
                        self.restoring_calls[call] = statement.test.value

    def find_mode_choices(self) -> None:
        """``if training: m.train() else: m.eval()`` (or the ``a if c else b`` form) where the
        test reads only parameters: the caller chooses the mode, so it is unknown here unless a
        call site passes a literal. Likewise for a configuration flag that says whether a model
        is trained (``if args.train_encoder: enc.train() else: enc.eval()``): freezing on purpose."""
        params = self.params - {"self", "cls"}
        for step in self.graph.steps():
            statement = step.extra
            if step.kind is not StepKind.TEST or not isinstance(statement, (cst.If, cst.IfExp)):
                continue
            names = names_read(statement.test)
            if not names or not (names <= params or _is_freeze_flag(statement.test)):
                continue
            branches = (statement.body, statement.orelse)
            calls = [_mode_calls(branch) for branch in branches]
            if all(calls):
                for call in calls[0] + calls[1]:
                    self.chosen_by_caller[call] = statement.test

    def assignments_in(self, graph: FunctionGraph) -> Iterator[tuple[str, cst.BaseExpression, ModuleContext]]:
        for step in graph.steps():
            node = step.node
            if isinstance(node, cst.Assign):
                for target in node.targets:
                    key = key_of(target.target)
                    if key is not None:
                        yield key, node.value, self.context
            elif isinstance(node, cst.AnnAssign) and node.value is not None:
                key = key_of(node.target)
                if key is not None:
                    yield key, node.value, self.context

    # -- steps ---------------------------------------------------------------------------------

    def emit(self, op: Op) -> None:
        self.current.append(op)

    def interpret(self, step: Step) -> None:
        node = step.node
        if step.kind is StepKind.LOOP_BIND:
            self.loop_bind(node, step.extra)  # type: ignore[arg-type]
        elif step.kind is StepKind.WITH_ITEM:
            self.with_item(step.extra)  # type: ignore[arg-type]
        elif step.kind is StepKind.WITH_EXIT:
            self.with_exit(node)  # type: ignore[arg-type]
        elif step.kind in (StepKind.TEST, StepKind.LOOP_ITER):
            self.expression(node)  # type: ignore[arg-type]
        elif isinstance(node, cst.Expr):
            self.expression_statement(node)
            if isinstance(node.value, cst.Yield):  # after its value: ``yield [n.eval() for n in nets]``
                self.emit(Yield(self.step, node))
        elif isinstance(node, cst.Assign):
            self.expression(node.value)
            for target in node.targets:
                self.assign(target.target, node.value)
        elif isinstance(node, cst.AnnAssign):
            if node.value is not None:
                self.expression(node.value)
                self.assign(node.target, node.value)
        elif isinstance(node, cst.AugAssign):
            self.expression(node.value)
            self.assign(node.target, None)
        elif isinstance(node, cst.Return) and node.value is not None:
            self.expression(node.value)
            self.emit(self.bind(node, RETURN_KEY, node.value))
        elif isinstance(node, cst.ImportFrom) and not isinstance(node.names, cst.ImportStar):
            self.imported_variables(node)
        elif isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            return
        else:
            for child in child_nodes(node):
                if isinstance(child, cst.BaseExpression):
                    self.expression(child)

    def imported_model(self, name: str) -> bool:
        """Is ``name`` imported from a project module whose body binds it to a model?"""
        found = self.context.imported_variable(name)
        return found is not None and bool(imported_modes(*found))

    def imported_variables(self, node: cst.ImportFrom) -> None:
        """``from models import net``: ``net`` is what the body of ``models`` left it."""
        for alias in node.names:  # type: ignore[union-attr]
            local = alias.evaluated_alias or alias.evaluated_name
            found = self.context.imported_variable(local) if "." not in local else None
            if found is not None and self.imported_model(local):
                self.result.assigned.add(local)
                self.emit(Bind(self.step, node, local, ValueKind.IMPORTED, source=found[1],
                               imported_from=found[0]))

    def expression_statement(self, node: cst.Expr) -> None:
        value = node.value
        if isinstance(value, cst.Attribute) and value.attr.value in ("eval", "train"):
            key = key_of(value.value)
            if key is not None:
                self.emit(BareModeReference(self.step, node, key, value.attr.value))
                return
        if isinstance(value, cst.Call):
            qualified = self.context.qualify(value.func)
            entered = _entered_grad_context(value, self.context)
            if entered is not None:
                # ``torch.no_grad().__enter__()``: the rest of the function runs in that state.
                self.emit(SetGradEnabled(self.step, node, entered in torch_api.ENABLE_GRAD if entered else None))
            elif qualified in torch_api.GRAD_CONTEXTS:
                self.emit(GradContextNotEntered(self.step, node, qualified, called=True))
            elif qualified in torch_api.SET_GRAD_ENABLED and value.args:
                ok, enabled = literal_value(value.args[0].value)
                self.emit(SetGradEnabled(self.step, node, bool(enabled) if ok else None))
        self.expression(value)

    def with_item(self, item: cst.WithItem) -> None:
        expr = item.item
        qualified = self.context.qualify(expr) if isinstance(expr, (cst.Name, cst.Attribute)) else None
        if qualified in torch_api.GRAD_CONTEXTS:
            self.emit(GradContextNotEntered(self.step, expr, qualified, called=False))
        self.expression(expr)
        for op in self.current:
            if isinstance(op, Call) and op.node is expr and is_context_manager(op.function):
                op.phase = "enter"
                self.entered[expr] = op
        if item.asname is not None:
            self.assign(item.asname.name, None)

    def with_exit(self, node: cst.With) -> None:
        """Leaving ``with cm(model):`` runs the rest of a ``@contextmanager`` generator."""
        for item in node.items:
            entered = self.entered.get(item.item)
            if entered is not None:
                self.emit(replace(entered, step=self.step, phase="exit"))

    def loop_bind(self, target: cst.BaseExpression, iterable: cst.BaseExpression) -> None:
        elements_of: str | None = None
        element_keys: tuple[str, ...] = ()
        inner = iterable
        if isinstance(inner, cst.Call) and isinstance(inner.func, cst.Attribute):
            method = inner.func.attr.value
            receiver = key_of(inner.func.value)
            if method in MODULE_ITERATORS:
                for name in _names_in(target):
                    self.module_loop_names.add(name)
            elif method in CONTAINER_VIEWS and receiver is not None:
                elements_of = receiver
        elif isinstance(inner, (cst.List, cst.Tuple, cst.Set)):
            element_keys = _literal_element_keys(inner)
        else:
            elements_of = key_of(inner) or _indices_of(inner)  # ``for k in d``, ``for i in range(len(d))``
        # ``for name, m in d.items()`` binds the element to the last name of the tuple, and
        # ``name`` to each key of ``d`` (so that ``d[name]`` is each element).
        element_target = target
        if isinstance(target, (cst.Tuple, cst.List)) and target.elements:
            for el in target.elements[:-1]:
                if len(target.elements) == 2 and isinstance(el.value, cst.Name) and elements_of \
                        and _is_items_call(inner):
                    self.result.assigned.add(el.value.value)
                    self.emit(Bind(self.step, el.value, el.value.value, ValueKind.ALIAS, elements_of=elements_of))
                else:
                    self.assign(el.value, None)
            element_target = target.elements[-1].value
        key = key_of(element_target)
        if key is None:
            self.assign(element_target, None)
            return
        self.result.assigned.add(key)
        if element_keys:
            self.emit(Bind(self.step, element_target, key, ValueKind.ALIAS, elements=element_keys))
        elif elements_of is not None:
            self.emit(Bind(self.step, element_target, key, ValueKind.ALIAS, elements_of=elements_of))
        else:
            self.emit(Bind(self.step, element_target, key, ValueKind.UNKNOWN))

    # -- assignments -----------------------------------------------------------------------

    def assign(self, target: cst.BaseExpression, value: cst.BaseExpression | None) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self.assign(element.value, None)
            return
        if isinstance(target, cst.StarredElement):
            self.assign(target.value, None)
            return
        if isinstance(target, cst.Attribute) and target.attr.value == "training":
            key = key_of(target.value)
            if key is not None and value is not None:
                self.emit(TrainingFlagAssigned(self.step, target, key, value,
                                               in_module_loop=head(key) in self.module_loop_names))
            return
        if isinstance(target, cst.Attribute) and target.attr.value == "requires_grad":
            self.emit(GradientUse(self.step, target))
            return
        key = key_of(target)
        if key is None:
            return
        self.result.assigned.add(key)
        self.emit(self.bind(target, key, value))
        mode_call = _outermost_mode_call(value)
        if mode_call is not None and key_of(_strip_self_returning(value)) is None:
            # ``ema = copy.deepcopy(model).eval()``: the mode call applies to the new object.
            self.mode_call(mode_call, key, mode_call.func.attr.value)  # type: ignore[union-attr]

    def bind(self, target: cst.CSTNode, key: str, value: cst.BaseExpression | None) -> Bind:
        if value is None:
            return Bind(self.step, target, key, ValueKind.UNKNOWN)
        base = _strip_self_returning(value)
        if isinstance(base, cst.IfExp) and key_of(base.body) is not None \
                and key_of(base.body) == key_of(base.orelse):
            base = base.body  # ``m.module if hasattr(m, "module") else m``: the same model
        if isinstance(base, cst.Attribute) and base.attr.value == "training":
            source = key_of(base.value)
            if source is not None:
                return Bind(self.step, target, key, ValueKind.CAPTURE, source=source)
        source = key_of(base)
        if source is not None and self.resolve(base) is None and not literal_value(base)[0]:
            # (``a = None`` and ``b = None`` are not one object)
            return Bind(self.step, target, key, ValueKind.ALIAS, source=source)
        filtered = _filtered_container(base)
        if filtered is not None:
            # ``training = [n for n in nets if n.training]``: some of the same models.
            return Bind(self.step, target, key, ValueKind.ALIAS, elements_of=filtered)
        elements = _literal_element_keys(base)
        if elements:
            # ``models = {"G": netG, "D": netD}``: a loop over it reaches netG and netD.
            return Bind(self.step, target, key, ValueKind.ALIAS, elements=elements)
        if literal_value(base)[0]:
            return Bind(self.step, target, key, ValueKind.NOT_MODEL)  # ``self.aux = None``
        if not isinstance(base, cst.Call):
            return Bind(self.step, target, key, ValueKind.UNKNOWN)
        return self.bind_call(target, key, base)

    def bind_call(self, target: cst.CSTNode, key: str, call: cst.Call) -> Bind:
        func = call.func
        from_pretrained = isinstance(func, cst.Attribute) and func.attr.value == "from_pretrained"
        owner = func.value if from_pretrained else func  # type: ignore[union-attr]
        symbol = self.context.resolve(owner)
        if symbol is None and isinstance(owner, cst.Name):
            symbol = self.picked_model_classes.get(owner.value)
        calls = [op for op in self.current if isinstance(op, Call) and op.node is call]
        if calls:  # a project function or method, e.g. ``self._make_layers(cfg)``, or a project
            # class's own ``from_pretrained``: analysed from its definition
            return Bind(self.step, target, key, ValueKind.CALL_RESULT, call=calls[-1])
        if from_pretrained:
            return self.bind_pretrained(target, key, symbol, call)
        if isinstance(symbol, ProjectClass):
            if self.context.is_framework_managed(symbol):
                return Bind(self.step, target, key, ValueKind.NOT_MODEL)
            if self.context.is_module_class(symbol):
                return Bind(self.step, call, key, ValueKind.FRESH, Mode.TRAIN, model_class=symbol,
                            wraps=_argument_keys(call))
            if not self.context.may_be_module_class(symbol):
                return Bind(self.step, target, key, ValueKind.NOT_MODEL)
            return Bind(self.step, target, key, ValueKind.UNKNOWN)
        if not isinstance(symbol, External):
            if key in self.optimizer_keys:  # built from ``.parameters()`` by a factory variable
                return Bind(self.step, target, key, ValueKind.OPTIMIZER, params=_parameter_owners(call))
            return Bind(self.step, target, key, ValueKind.UNKNOWN)
        qualified = symbol.qualified
        first = _first_argument(call)
        if qualified in torch_api.DEEPCOPY and first is not None and key_of(first) is not None:
            return Bind(self.step, call, key, ValueKind.COPY, source=key_of(first))
        if qualified in torch_api.MODULE_WRAPPERS and first is not None:
            inner = _strip_self_returning(first)
            if key_of(inner) is not None:
                return Bind(self.step, target, key, ValueKind.ALIAS, source=key_of(inner))
            if isinstance(inner, cst.Call):
                return self.bind_call(target, key, inner)
        if qualified in torch_api.TORCH_LOAD:
            return Bind(self.step, call, key, ValueKind.FRESH, Mode.UNKNOWN)
        if qualified.startswith(torch_api.SCHEDULER_PREFIXES):
            return Bind(self.step, target, key, ValueKind.NOT_MODEL)
        if qualified.startswith(torch_api.OPTIMIZER_PREFIXES):
            return Bind(self.step, target, key, ValueKind.OPTIMIZER, params=_parameter_owners(call))
        if torch_api.FRAMEWORK_OBJECTS.match(qualified) or qualified in torch_api.GRAD_SCALERS:
            return Bind(self.step, target, key, ValueKind.NOT_MODEL)
        if torch_api.is_torch_nn_class(qualified):
            is_model = torch_api.nn_layer_is_model(qualified)
            if is_model is False:
                return Bind(self.step, target, key, ValueKind.NOT_MODEL)
            return Bind(self.step, call, key, ValueKind.FRESH, Mode.TRAIN, model_class=qualified)
        if torch_api.FACTORY_TRAIN_MODE.match(qualified) and qualified not in torch_api.NOT_FACTORIES:
            return Bind(self.step, call, key, ValueKind.FRESH, Mode.TRAIN, model_class=qualified)
        if key in self.optimizer_keys:
            return Bind(self.step, target, key, ValueKind.OPTIMIZER, params=_parameter_owners(call))
        return Bind(self.step, target, key, ValueKind.UNKNOWN)

    def bind_pretrained(self, target: cst.CSTNode, key: str, owner: Symbol | None,
                        call: cst.Call) -> Bind:
        if not isinstance(owner, (ProjectClass, External)):
            return Bind(self.step, target, key, ValueKind.UNKNOWN)
        if _is_model_class(self.context, owner):
            name = owner.qualname if isinstance(owner, ProjectClass) else torch_api.last_part(owner.qualified)
            return Bind(self.step, call, key, ValueKind.FRESH, Mode.EVAL, model_class=name)
        return Bind(self.step, target, key, ValueKind.NOT_MODEL)

    # -- expressions and calls ---------------------------------------------------------------

    def expression(self, node: cst.BaseExpression) -> None:
        """Emit the ops of every call in ``node``, in evaluation order (arguments first); a
        comprehension binds its target to the elements of its iterable, like a for loop."""
        for item in _evaluation_order(node):
            if isinstance(item, cst.CompFor):
                self.loop_bind(item.target, item.iter)
            else:
                self.call(item)

    def call(self, call: cst.Call) -> None:
        self.steps_passed_as_callables(call)
        func = call.func
        if isinstance(func, cst.Attribute):
            if self.method_call(call, func):
                return
        if isinstance(_strip_self_returning(func), cst.Call):
            self.built_and_called(call)
            return
        symbol = self.resolve(func) if not isinstance(func, cst.Call) else None
        scope = self.graph
        while symbol is None and isinstance(func, cst.Name) and scope is not None and not scope.is_module:
            # a function nested here or in an enclosing function: ``def main(): def _eval(): ...``
            symbol = self.context.lookup_local(f"{scope.name}.<locals>.{func.value}")
            scope = scope.parent
        if isinstance(symbol, ProjectFunction):
            self.emit(self.project_call(call, symbol, receiver=None))
            return
        if isinstance(symbol, External):
            self.external_call(call, symbol.qualified)
            return
        if symbol is None and isinstance(func, cst.Name) and func.value in self.params \
                and self.possible_forward(call, func.value):
            return  # ``loss_fn(model, batch)`` with a callback parameter
        if symbol is None:
            key = key_of(func)
            if key in self.returned_functions:  # ``train_op()``: runs the returned closure
                self.emit(self.project_call(call, self.returned_functions[key], receiver=None))
                return
            call_method = self.resolve_method(key, "__call__") if key is not None else None
            if call_method is not None and not self.is_module_instance(key):
                # ``scaler(loss, optimizer)``: a project object whose __call__ may train.
                self.emit(self.project_call(call, call_method, receiver=key))
            elif key is not None and key not in self.not_models and key not in BUILTIN_NAMES \
                    and not (isinstance(func, cst.Attribute)
                             and func.attr.value in torch_api.NOT_FORWARD_METHODS):
                self.emit(Forward(self.step, call, key))

    def built_and_called(self, call: cst.Call) -> None:
        """``nn.Dropout(p)(x)``, ``Block(dim).to(x.device)(x)``: a class built and called at once."""
        func, mode_set = call.func, False
        while isinstance(func, cst.Call) and isinstance(func.func, cst.Attribute) and \
                func.func.attr.value in torch_api.SELF_RETURNING_METHODS | {"train", "eval"}:
            mode_set = mode_set or func.func.attr.value in ("train", "eval")
            func = func.func.value
        if not isinstance(func, cst.Call) or not isinstance(func.func, (cst.Name, cst.Attribute)):
            return
        symbol = self.resolve(func.func)
        if isinstance(symbol, (ProjectClass, External)):
            self.emit(LayerBuiltAndCalled(self.step, call, func, symbol, mode_set))

    def steps_passed_as_callables(self, call: cst.Call) -> None:
        """``profile(loss.backward)``, ``timed(optimizer.step)``: the callee runs the step."""
        for arg in call.args:
            value = arg.value
            if not isinstance(value, cst.Attribute):
                continue
            receiver = key_of(value.value)
            if value.attr.value == "backward":
                self.emit(Backward(self.step, value))
            elif value.attr.value == "step" and receiver is not None and (
                    receiver in self.optimizer_keys
                    or torch_api.OPTIMIZER_NAME.search(receiver.rpartition(".")[2])):
                self.emit(OptimizerStep(self.step, value, receiver))

    def resolve(self, node: cst.BaseExpression) -> Symbol | None:
        """What a name refers to, unless its head is an imported module name that the code
        rebinds to a value (``import model`` ... ``model = model.Net()``) or a variable of a
        project module that holds a model (``from models import net``)."""
        dotted = dotted_name(node)
        if dotted is not None and (dotted.partition(".")[0] in self.context.rebound_imports
                                   or self.imported_model(dotted.partition(".")[0])):
            return None
        return self.context.resolve(node)

    def method_call(self, call: cst.Call, func: cst.Attribute) -> bool:
        """Handle ``receiver.method(...)``; False when it should be treated as a plain call."""
        method = func.attr.value
        receiver = key_of(_strip_self_returning(func.value))  # ``m.to(device).train()``
        if method == "backward":
            self.emit(Backward(self.step, call))
            return True
        if method == "requires_grad_":
            self.emit(GradientUse(self.step, call))
            return True
        if receiver is None:
            if method == "step" and _steps_remote_optimizer(func.value):
                self.emit(OptimizerStep(self.step, call, None))
                return True
            return False
        if self.context.imports.is_imported(func.value) and head(receiver) not in self.context.rebound_imports \
                and not self.imported_model(head(receiver)):
            return False  # ``torch.x(...)``, ``utils.evaluate(...)``: a module attribute
        if method == "step" and receiver in self.optimizer_keys:
            self.step_call(call, receiver)
            return True
        project_method = self.resolve_method(receiver, method)
        if project_method is not None:
            if method == "forward" and receiver != "self":
                self.emit(Forward(self.step, call, receiver))  # ``model.forward(x)``: a forward too
            self.emit(self.project_call(call, project_method, receiver=receiver))
            return True
        if method == "step":
            self.step_call(call, receiver)  # also ``scaler.step(optimizer)``: not a model
            return True
        if method in torch_api.EXPORT_METHODS:
            self.emit(Export(self.step, call, receiver, f"{receiver}.{method}"))  # LightningModule.to_onnx
            return True
        if receiver in self.not_models:
            return True
        if method in ("train", "eval"):
            self.mode_call(call, receiver, method)
            return True
        if method == "forward":
            self.emit(Forward(self.step, call, receiver))
            return True
        return False  # ``self.model(x)``: a forward call if the attribute is a model

    def is_module_instance(self, key: str) -> bool:
        cls = self.local_classes.get(key)
        return isinstance(cls, ProjectClass) and self.context.is_module_class(cls)

    def resolve_method(self, receiver: str, method: str) -> ProjectFunction | None:
        if receiver == "self" and self.cls is not None:
            return self.context.find_method(self.cls, method)
        cls = self.local_classes.get(receiver)
        if cls is not None and isinstance(cls, ProjectClass):
            return cls.context.find_method(cls, method)
        return None

    def set_mode(self, call: cst.Call, receiver: str, mode: Mode) -> SetMode:
        if call in self.restoring_calls:
            return SetMode(self.step, call, receiver, Mode.UNKNOWN, restore_var=self.restoring_calls[call])
        return SetMode(self.step, call, receiver, mode, chosen_by=self.chosen_by_caller.get(call))

    def mode_call(self, call: cst.Call, receiver: str, method: str) -> None:
        args = call.args
        if receiver in self.result.other_mode_api:
            if (method == "eval" and args) or _bad_train_literal(call):
                self.emit(BadModeArgument(self.step, call, receiver, method))
            return
        if method == "eval":
            if args:
                self.emit(BadModeArgument(self.step, call, receiver, method))
            else:
                self.emit(self.set_mode(call, receiver, Mode.EVAL))
            return
        if not args:
            self.emit(self.set_mode(call, receiver, Mode.TRAIN))
            return
        if len(args) > 1 or (args[0].keyword is not None and args[0].keyword.value != "mode") \
                or args[0].star:
            return  # xgb.train(params, d), w2v.train(docs, epochs=5): not a module
        value = args[0].value
        ok, literal = literal_value(value)
        if ok:
            if isinstance(literal, (str, int, float)) and not isinstance(literal, bool):
                self.emit(BadModeArgument(self.step, call, receiver, method))
            self.emit(self.set_mode(call, receiver, Mode.TRAIN if literal else Mode.EVAL))
        elif isinstance(value, cst.Name):
            self.emit(SetMode(self.step, call, receiver, Mode.UNKNOWN, restore_var=value.value))
        else:
            self.emit(SetMode(self.step, call, receiver, Mode.UNKNOWN))

    def step_call(self, call: cst.Call, receiver: str) -> None:
        if receiver in self.scheduler_keys or (receiver not in self.optimizer_keys
                                               and torch_api.SCHEDULER_NAME.search(receiver)):
            return
        if torch_api.SCALER_NAME.search(receiver) and call.args:
            self.emit(OptimizerStep(self.step, call, key_of(call.args[0].value)))
            return
        if receiver in self.optimizer_keys or torch_api.OPTIMIZER_NAME.search(receiver.rpartition(".")[2]):
            self.emit(OptimizerStep(self.step, call, receiver))

    def external_call(self, call: cst.Call, qualified: str) -> None:
        if qualified in torch_api.FUNCTIONAL_MODE_ARGUMENT:
            self.emit(FunctionalModeLayer(self.step, call, qualified))
        elif qualified in torch_api.AUTOGRAD_GRAD:
            self.emit(GradientUse(self.step, call))
        elif qualified in torch_api.AUTOGRAD_BACKWARD:
            self.emit(Backward(self.step, call))
        elif qualified in torch_api.EXPORT_FUNCTIONS:
            model = _first_argument(call, "model", "mod", "f")
            key = key_of(model) if model is not None else None
            if key is not None:
                self.emit(Export(self.step, call, key, qualified, _requests_eval(call)))
        elif not qualified.startswith(torch_api.KNOWN_LIBRARIES):
            self.possible_forward(call, torch_api.last_part(qualified))

    def possible_forward(self, call: cst.Call, name: str) -> bool:
        """``get_loss(model, batch)``: a callable the engine cannot see, named for computing
        outputs, may run the model given first; that is a forward of the model (never of the
        callable). True if one was emitted."""
        if not torch_api.OUTPUT_CALLABLE_NAME.search(name):
            return False
        model = _first_argument(call, "model", "net", "module")
        key = key_of(model) if model is not None else None
        if key is None or key in self.not_models:
            return False
        self.emit(Forward(self.step, call, key))
        return True

    def project_call(self, call: cst.Call, target: ProjectFunction, receiver: str | None) -> Call:
        names = target.graph.param_names
        is_method = target.graph.class_name is not None and names[:1] in (["self"], ["cls"])
        # ``obj.method(a)`` and ``Class.classmethod(a)`` bind the first parameter themselves.
        bound = receiver is not None or _is_classmethod(target.graph.node)
        positional = names[1:] if is_method and bound else names
        op = Call(self.step, call, target, receiver=receiver)
        for name, arg, collected in _parameters_given(target, call, positional):
            if collected:
                # ``def eval_mode(*nets)``: each further positional argument is an element of ``nets``.
                key = key_of(arg.value)
                if key is not None:
                    op.element_arguments[name] = op.element_arguments.get(name, ()) + (key,)
                continue
            op.arguments[name] = key_of(arg.value)
            ok, literal = literal_value(arg.value)
            if ok:
                op.literals[name] = literal
            if isinstance(arg.value, (cst.List, cst.Tuple)):
                keys = tuple(k for k in (key_of(el.value) for el in arg.value.elements) if k)
                if keys:
                    op.element_arguments[name] = keys
        op.classes = self.classes_passed(op)
        return op

    def classes_passed(self, op: Call) -> dict[str, ProjectClass]:
        """The project classes this function knows of the callee's keys: of its parameters (and
        their attributes), and of the attributes of the instance a method is called on."""
        given = [(name, key) for name, key in op.arguments.items() if key is not None]
        if op.receiver is not None:
            given.append(("self", op.receiver))
        passed: dict[str, ProjectClass] = {}
        for name, argument in given:
            for known, cls in self.local_classes.items():
                if not isinstance(cls, ProjectClass) or (name == "self" and known == argument):
                    continue  # the callee knows its own class
                if argument == "self" and known in self.init_keys:
                    continue  # ... and what its ``__init__`` assigns
                if known == argument or is_within(known, argument):
                    passed[rebase(known, argument, name)] = cls
        return passed


# Attributes that hold a mode flag: ``m.train(self.training)``, ``m.train(args.train_mode)``.
MODE_FLAG_NAME = re.compile(r"mode|train|flag|enable|^(is|was|use|do|should|set)_", re.IGNORECASE)


# ``args.train_context_encoder``, ``cfg.freeze_backbone``: a setting that decides whether a model trains.
FREEZE_FLAG_NAME = re.compile(r"train|freeze|frozen|finetun|tune|trainable|learn|update", re.IGNORECASE)


def _is_freeze_flag(test: cst.BaseExpression) -> bool:
    """``args.train_encoder`` or ``not cfg.freeze_backbone``: a configuration attribute, not a
    loop phase (``phase == 'train'`` is correlated with later tests instead)."""
    while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        test = test.expression
    return isinstance(test, cst.Attribute) and bool(FREEZE_FLAG_NAME.search(test.attr.value))


def _mode_like_argument(arg: cst.Arg, data_names: frozenset[str]) -> bool:
    """Could this be the ``mode`` of ``nn.Module.train(mode)``? A variable is, unless it is the
    target of a loop over data (``for experience in stream: strategy.train(experience)``)."""
    if arg.keyword is not None:
        return arg.keyword.value == "mode"
    value = arg.value
    if isinstance(value, (cst.UnaryOperation, cst.Comparison, cst.BooleanOperation)):
        return True
    ok, _ = literal_value(value)
    if ok:
        return True  # a literal: EL107 judges strings and numbers
    if isinstance(value, cst.Name):
        return value.value not in data_names
    if isinstance(value, cst.Attribute):
        return value.attr.value == "training" or bool(MODE_FLAG_NAME.search(value.attr.value))
    if isinstance(value, cst.Call):
        return isinstance(value.func, cst.Name) and value.func.value == "bool"
    return False


def _other_mode_api(call: cst.Call, data_names: frozenset[str]) -> bool:
    """``x.eval(stream)``, ``x.eval(data_key=k)``, ``x.train(experience)``: not nn.Module's."""
    method = call.func.attr.value  # type: ignore[union-attr]
    if method == "eval":
        return bool(call.args)
    return len(call.args) > 1 or (len(call.args) == 1 and not _mode_like_argument(call.args[0], data_names))


def _bad_train_literal(call: cst.Call) -> bool:
    if call.func.attr.value != "train" or len(call.args) != 1:  # type: ignore[union-attr]
        return False
    ok, literal = literal_value(call.args[0].value)
    return ok and isinstance(literal, (str, int, float)) and not isinstance(literal, bool)


def _other_mode_api_in(graph: FunctionGraph) -> set[str]:
    data_names = frozenset(
        name for step in graph.steps() if step.kind is StepKind.LOOP_BIND
        and not _bool_literals(step.extra) for name in _names_in(step.node))  # type: ignore[arg-type]
    keys: set[str] = set()
    for step in graph.steps():
        for call in _mode_calls(step.node):
            key = key_of(_strip_self_returning(call.func.value))  # type: ignore[union-attr]
            if key is not None and _other_mode_api(call, data_names):
                keys.add(key)
    return keys


def _bool_literals(node: cst.CSTNode | None) -> bool:
    """``(True, False)``: a loop over modes, not over data."""
    return isinstance(node, (cst.List, cst.Tuple, cst.Set)) and all(
        literal_value(el.value)[1] in (True, False) and literal_value(el.value)[0] for el in node.elements)


def other_mode_api_keys(context: ModuleContext, graph: FunctionGraph) -> frozenset[str]:
    """Keys of ``graph`` whose ``train``/``eval`` calls are not nn.Module's, in the function
    itself and, for ``self.<attr>``, in any method of its class (computed once per class)."""
    keys = set(_other_mode_api_of(context, graph))
    if graph.class_name is not None:
        cache_key = ("class_other_mode_api", graph.class_name)
        if cache_key not in context.cache:
            context.cache[cache_key] = frozenset(
                key for method in context.graphs if method.class_name == graph.class_name
                for key in _other_mode_api_of(context, method) if key.startswith("self."))
        keys |= context.cache[cache_key]  # type: ignore[operator]
    return frozenset(keys)


def _other_mode_api_of(context: ModuleContext, graph: FunctionGraph) -> frozenset[str]:
    """``_other_mode_api_in``, once per function."""
    cache_key = ("other_mode_api", graph)
    if cache_key not in context.cache:
        context.cache[cache_key] = frozenset(_other_mode_api_in(graph))
    return context.cache[cache_key]  # type: ignore[return-value]


def _argument_keys(call: cst.Call) -> tuple[str, ...]:
    """Keys passed to a constructor: the models a wrapper may hold."""
    return tuple(k for k in (key_of(arg.value) for arg in call.args if not arg.star) if k is not None)


COMPREHENSIONS = (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)


def _calls_in(node: cst.CSTNode) -> list[cst.Call]:
    """Calls inside ``node`` in evaluation order; lambda bodies and nested defs are skipped."""
    return [item for item in _evaluation_order(node) if isinstance(item, cst.Call)]


def _evaluation_order(node: cst.CSTNode) -> list[cst.Call | cst.CompFor]:
    """Calls in evaluation order (arguments first), with the ``for`` clause of a comprehension
    just before the calls of its element (``[m.eval() for m in nets]`` binds ``m`` first)."""
    found: list[cst.Call | cst.CompFor] = []

    def visit(current: cst.CSTNode) -> None:
        if isinstance(current, (cst.Lambda, cst.FunctionDef, cst.ClassDef)):
            return
        if isinstance(current, COMPREHENSIONS):
            clause: cst.CompFor | None = current.for_in
            while clause is not None:
                visit(clause.iter)
                found.append(clause)
                for condition in clause.ifs:
                    visit(condition)
                clause = clause.inner_for_in
            for part in ((current.key, current.value) if isinstance(current, cst.DictComp)
                         else (current.elt,)):
                visit(part)
            return
        for child in child_nodes(current):
            visit(child)
        if isinstance(current, cst.Call):
            found.append(current)

    visit(node)
    return found


def _is_items_call(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "items"


def _indices_of(node: cst.BaseExpression) -> str | None:
    """The key of ``d`` in ``range(len(d))``: a loop over its indices."""
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "range" \
            and len(node.args) == 1 and isinstance(node.args[0].value, cst.Call):
        inner = node.args[0].value
        if isinstance(inner.func, cst.Name) and inner.func.value == "len" and len(inner.args) == 1:
            return key_of(inner.args[0].value)
    return None


def _names_in(node: cst.BaseExpression) -> list[str]:
    if isinstance(node, cst.Name):
        return [node.value]
    if isinstance(node, (cst.Tuple, cst.List)):
        return [n for el in node.elements for n in _names_in(el.value)]
    return []


def _entered_grad_context(call: cst.Call, context: ModuleContext) -> str | None:
    """The grad context that ``torch.no_grad().__enter__()`` enters by hand, if it is one; ""
    for a stored context (``guard.__enter__()``), which may be one."""
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value == "__enter__":
        if isinstance(func.value, cst.Call):
            qualified = context.qualify(func.value.func)
            if qualified in torch_api.GRAD_CONTEXTS:
                return qualified
        elif key_of(func.value) is not None:
            return ""
    return None


def _strip_self_returning(node: cst.BaseExpression) -> cst.BaseExpression:
    """``Net().to(device).eval()`` -> ``Net()``: methods that return the module itself."""
    while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and \
            node.func.attr.value in torch_api.SELF_RETURNING_METHODS | {"train", "eval"}:
        node = node.func.value
    return node


def _literal_element_keys(node: cst.BaseExpression) -> tuple[str, ...]:
    """The keys of ``[a, b]``, ``(a, b)``, ``{a, b}`` or ``{"x": a, "y": b}`` when every element
    is a name or attribute; empty otherwise."""
    if isinstance(node, (cst.List, cst.Tuple, cst.Set)):
        values = [el.value for el in node.elements]
    elif isinstance(node, cst.Dict):
        values = [el.value for el in node.elements if isinstance(el, cst.DictElement)]
        if len(values) != len(node.elements):
            return ()
    else:
        return ()
    keys = [key_of(value) for value in values]
    return tuple(k for k in keys if k is not None) if keys and None not in keys else ()


def _filtered_container(node: cst.BaseExpression) -> str | None:
    """The container ``c`` of ``[m for m in c if ...]`` (a list of some of its elements)."""
    if isinstance(node, (cst.ListComp, cst.GeneratorExp, cst.SetComp)) and isinstance(node.elt, cst.Name) \
            and node.for_in.inner_for_in is None and isinstance(node.for_in.target, cst.Name) \
            and node.for_in.target.value == node.elt.value:
        return key_of(node.for_in.iter)
    return None


def _is_model_class(context: ModuleContext, symbol: Symbol | None) -> bool:
    """Is ``symbol`` a model class: a project nn.Module, or a pretrained model class by name?"""
    if isinstance(symbol, ProjectClass):
        return context.is_module_class(symbol)
    if isinstance(symbol, External):
        name = torch_api.last_part(symbol.qualified)
        return bool(torch_api.PRETRAINED_MODEL_CLASS.search(name)) and \
            not torch_api.PRETRAINED_NOT_MODEL.search(name)
    return False


def _parameters_given(target: ProjectFunction, call: cst.Call,
                      positional: list[str]) -> Iterator[tuple[str, cst.Arg, bool]]:
    """(parameter, argument, collected) for the arguments of ``call`` up to the first ``*args``;
    ``collected``: a further positional argument that a ``*name`` parameter collects."""
    node = target.graph.node
    star = node.params.star_arg if isinstance(node, cst.FunctionDef) else None
    star_name = star.name.value if isinstance(star, cst.Param) else None
    star_index = positional.index(star_name) if star_name in positional else len(positional)
    index = 0
    for arg in call.args:
        if arg.star:
            break
        if arg.keyword is None and star_name is not None and index >= star_index:
            yield star_name, arg, True
        elif arg.keyword is not None:
            yield arg.keyword.value, arg, False
        elif index < len(positional):
            yield positional[index], arg, False
            index += 1


def _is_classmethod(node: cst.CSTNode) -> bool:
    return isinstance(node, cst.FunctionDef) and any(
        isinstance(d.decorator, cst.Name) and d.decorator.value == "classmethod" for d in node.decorators)


def is_context_manager(function: ProjectFunction) -> bool:
    """Is ``function`` decorated with ``contextlib.contextmanager`` (or the async one)?"""
    node = function.graph.node
    if not isinstance(node, cst.FunctionDef):
        return False
    for decorator in node.decorators:
        qualified = function.context.qualify(decorator.decorator)
        if qualified in ("contextlib.contextmanager", "contextlib.asynccontextmanager"):
            return True
    return False


def _mode_calls(node: cst.CSTNode | None) -> list[cst.Call]:
    """The ``.train(...)``/``.eval()`` calls in ``node`` (not in nested functions)."""
    found: list[cst.Call] = []
    pending = [node] if node is not None else []
    while pending:
        current = pending.pop()
        if isinstance(current, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        if isinstance(current, cst.Call) and isinstance(current.func, cst.Attribute) \
                and current.func.attr.value in ("train", "eval"):
            found.append(current)
        pending.extend(child_nodes(current))
    return found


def _outermost_mode_call(node: cst.BaseExpression | None) -> cst.Call | None:
    """The last ``.train(...)``/``.eval()`` in a chain of self-returning calls, if any."""
    while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and \
            node.func.attr.value in torch_api.SELF_RETURNING_METHODS | {"train", "eval"}:
        if node.func.attr.value in ("train", "eval"):
            return node
        node = node.func.value
    return None


def _steps_remote_optimizer(receiver: cst.BaseExpression) -> bool:
    """``opt_rref.rpc_sync().step()``: a call chain rooted at an optimizer-like name."""
    node = receiver
    while isinstance(node, (cst.Call, cst.Attribute, cst.Subscript)):
        node = node.func if isinstance(node, cst.Call) else node.value
    return isinstance(node, cst.Name) and node is not receiver \
        and bool(torch_api.OPTIMIZER_NAME.search(node.value)) \
        and not torch_api.SCHEDULER_NAME.search(node.value)


def _first_argument(call: cst.Call, *keywords: str) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value in keywords:
            return arg.value
    for arg in call.args:
        if arg.keyword is None and not arg.star:
            return arg.value
    return None


def _requests_eval(call: cst.Call) -> bool:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "training":
            text = dotted_name(arg.value) or ""
            return text.endswith("EVAL") or (isinstance(arg.value, cst.Name) and arg.value.value == "False")
    return False


def _returned_nested_function(function: ProjectFunction) -> ProjectFunction | None:
    """The function a helper defines inside itself and returns (``return _train_op``)."""
    node = function.graph.node
    if not isinstance(node, cst.FunctionDef):
        return None
    names = {statement.value.value for statement in _returns_in(node.body)
             if isinstance(statement.value, cst.Name)}
    if len(names) != 1:
        return None
    found = function.context.lookup_local(f"{function.graph.name}.<locals>.{names.pop()}")
    return found if isinstance(found, ProjectFunction) else None


def _returns_in(node: cst.CSTNode) -> list[cst.Return]:
    found: list[cst.Return] = []
    pending: list[cst.CSTNode] = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        if isinstance(current, cst.Return) and current.value is not None:
            found.append(current)
        pending.extend(child_nodes(current))
    return found


def _builds_optimizer(symbol: Symbol | None, call: cst.Call, key: str) -> bool:
    """``op = optimtype(model.parameters())``, ``opt = make_optimizer(net.parameters(), cfg)``: a
    call given a model's parameters by a factory that is not torch's own (those are known by
    name) and not a scheduler or a weight average."""
    if isinstance(symbol, ProjectClass) or torch_api.NOT_OPTIMIZER_NAME.search(key.rpartition(".")[2]):
        return False
    if isinstance(symbol, External) and (symbol.qualified.startswith(("torch.", "copy."))
                                         or symbol.qualified.startswith(torch_api.SCHEDULER_PREFIXES)):
        return False
    return _parameter_owners(call) is not None


def _parameter_owners(call: cst.Call) -> tuple[str, ...] | None:
    """Keys ``m`` of every ``m.parameters()`` given to an optimizer; None if none is visible."""
    owners: list[str] = []
    for inner in _calls_in(call):
        if inner is call:
            continue
        func = inner.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("parameters", "named_parameters"):
            key = key_of(func.value)
            if key is not None:
                owners.append(key)
    return tuple(dict.fromkeys(owners)) or None
