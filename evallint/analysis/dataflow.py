"""The mode/grad dataflow over one function's graph, iterated to a fixpoint.

``analyze_function`` runs it and keeps, for every op, the parts of the state that reach it; the
result also yields the function's summary (``summary.py``), which calls to it apply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import libcst as cst

from evallint.analysis.entry_modes import attribute_entry_modes, imported_modes
from evallint.analysis.grad import GradEffect, lexical_grad
from evallint.analysis.interpret import RETURN_KEY, FunctionOps, classes_key, function_ops, literal_value
from evallint.analysis import torch_api
from evallint.analysis.keys import head, is_within, key_of, rebase
from evallint.analysis.module import ProjectClass, ProjectFunction
from evallint.analysis.ops import (
    Backward, Bind, Call, Forward, GradientUse, Mode, Op, OptimizerStep, SetGradEnabled, SetMode,
    TrainingFlagAssigned, ValueKind,
)
from evallint.analysis.state import (
    Elements, Fact, FlowState, Grad, Origin, Part, join_parts, join_states,
)
from evallint.frontend.cfg import Block, Condition, FunctionGraph, Loop, Region, StepKind
from evallint.frontend.names import names_read
from evallint.frontend.nodes import child_nodes

if TYPE_CHECKING:
    from evallint.analysis.module import ModuleContext
    from evallint.analysis.summary import Summary

MAX_ITERATIONS = 200  # per block; the lattice is finite, this only guards against bugs
# At most this many partitions (combinations of correlated branch outcomes) per program point.
MAX_PARTITIONS = 16
# Names in an if/while that make its condition worth correlating with later tests of it.
GUARDED_NAMES = frozenset({"train", "eval", "backward", "step", "no_grad", "inference_mode",
                           "set_grad_enabled", "enable_grad", "training"})


def condition_key(test: cst.BaseExpression, value: bool, context: "ModuleContext") -> tuple[str, bool]:
    """Normalise ``not x`` and ``a != b`` so that related tests share one text."""
    while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        test, value = test.expression, not value
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1 and \
            isinstance(test.comparisons[0].operator, (cst.NotEqual, cst.IsNot)):
        target = test.comparisons[0]
        operator = cst.Equal() if isinstance(target.operator, cst.NotEqual) else cst.Is()
        test = test.with_changes(comparisons=[target.with_changes(operator=operator)])
        value = not value
    return context.source.module.code_for_node(test), value


class FunctionAnalysis:
    """Dataflow results for one function (for one set of literal arguments)."""

    def __init__(self, context: "ModuleContext", graph: FunctionGraph,
                 bindings: dict[str, object] | None = None,
                 classes: dict[str, ProjectClass] | None = None) -> None:
        self.context = context
        self.graph = graph
        self.ops: FunctionOps = function_ops(context, graph, classes)
        self.bindings = bindings or {}
        self.op_parts: dict[Op, tuple[Part, ...]] = {}
        self.exit_parts: tuple[Part, ...] = ()
        self.summaries: dict[Call, "Summary"] = {}
        # ``self.<attr>`` facts that hold on entry whoever calls (as ``__init__`` left them).
        self.entry_modes: dict[str, frozenset[Fact]] = attribute_entry_modes(context, graph)
        self._trained_anywhere: frozenset[str] | None = None
        self._gradient_forwards: frozenset[Op] | None = None
        self._shape_probes: frozenset[Forward] | None = None
        self._used_results: frozenset[Op] | None = None
        self._returned_results: frozenset[Op] | None = None
        self._condition_keys: dict[cst.BaseExpression, tuple[str, bool]] = {}
        self._conditions()

    # -- set-up ----------------------------------------------------------------------------

    def _conditions(self) -> None:
        """Which branch conditions to keep apart: those tested at least twice, or decidable."""
        texts: dict[str, int] = {}
        relevant: set[str] = set()
        self.condition_names: dict[str, set[str]] = {}
        for step in self.graph.steps():
            if step.kind is StepKind.TEST:
                text, _ = self.condition_key(step.node, True)  # type: ignore[arg-type]
                texts[text] = texts.get(text, 0) + 1
                self.condition_names.setdefault(text, names_read(step.node))
                if step.extra is None or _guards_mode_or_grad(step.extra, self.context):
                    relevant.add(text)
        # Only conditions that guard a mode/grad/training change are kept apart: each doubles
        # the states, and ``if is_primary(args): log(...)`` tested 18 times must not cost 2**18.
        self.tracked = {text for text, count in texts.items() if count > 1 and text in relevant}
        # Assumptions to drop when a name is rebound.
        self.texts_by_name: dict[str, set[str]] = {}
        for text in self.tracked:
            for name in self.condition_names[text]:
                self.texts_by_name.setdefault(name, set()).add(text)

    def condition_key(self, test: cst.BaseExpression, value: bool) -> tuple[str, bool]:
        cached = self._condition_keys.get(test)
        if cached is None:
            cached = self._condition_keys[test] = condition_key(test, True, self.context)
        return cached[0], cached[1] if value else not cached[1]

    def initial_grad(self) -> str:
        return Grad.ENABLED if self.graph.is_module else Grad.ENTRY

    # -- solving ---------------------------------------------------------------------------

    def solve(self) -> "FunctionAnalysis":
        graph = self.graph
        initial = Part.initial(self.initial_grad()).replace(modes=dict(self.entry_modes))
        states: dict[Block, FlowState] = {graph.entry: {frozenset(): initial}}
        worklist = [graph.entry]
        visits: dict[Block, int] = {}
        in_worklist = {graph.entry}
        while worklist:
            block = worklist.pop(0)
            in_worklist.discard(block)
            visits[block] = visits.get(block, 0) + 1
            if visits[block] > MAX_ITERATIONS:
                continue
            state = self.transfer_block(block, states[block], record=False)
            for target, condition in block.successors:
                edge_state = self.filter_edge(state, condition)
                if not edge_state:
                    continue
                old = states.get(target)
                new = _bounded(edge_state if old is None else join_states(old, edge_state))
                if old is None or not _same(old, new):
                    states[target] = new
                    if target not in in_worklist:
                        worklist.append(target)
                        in_worklist.add(target)
        for block, state in states.items():
            self.transfer_block(block, state, record=True)
        self.exit_parts = tuple(states.get(graph.exit, {}).values())
        return self

    def transfer_block(self, block: Block, state: FlowState, record: bool) -> FlowState:
        for step in block.steps:
            if step.kind is StepKind.LOOP_BIND:
                state = self.drop_assumptions_for(state, names_read(step.node))
            for op in self.ops.by_step[step]:
                if record:
                    existing = self.op_parts.get(op, ())
                    self.op_parts[op] = existing + tuple(state.values())
                state = {assumptions: self.apply(op, part) for assumptions, part in state.items()}
        return state

    def drop_assumptions_for(self, state: FlowState, names: set[str]) -> FlowState:
        texts = set().union(*(self.texts_by_name.get(n, set()) for n in names)) if names else set()
        if not texts:
            return state
        result: FlowState = {}
        for part in state.values():
            part = part.drop_assumptions(texts)
            result = join_states(result, {part.assumptions: part})
        return result

    def filter_edge(self, state: FlowState, condition: Condition | None) -> FlowState:
        if condition is None:
            return state
        state = self.restore_by_flag(state, condition)
        state = self.known_module_checks(state, condition)
        decided = self.decide(condition.test)
        if decided is not None:
            return state if decided == condition.value else {}
        text, value = self.condition_key(condition.test, condition.value)
        if text not in self.tracked:
            return state
        result: FlowState = {}
        for assumptions, part in state.items():
            if (text, not value) in assumptions:
                continue  # infeasible: the same test went the other way in this iteration
            new_assumptions = assumptions | {(text, value)}
            result = join_states(result, {new_assumptions: part.replace(assumptions=new_assumptions)})
        return result

    def known_module_checks(self, state: FlowState, condition: Condition) -> FlowState:
        """``if isinstance(net, nn.Module): net.eval()``: the branch where ``net`` is not a module
        is dropped (for an object that is not a module, no rule has anything to say)."""
        test, value = condition.test, condition.value
        while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
            test, value = test.expression, not value
        if value or self.module_check_key(test) is None:
            return state
        return {}

    def module_check_key(self, test: cst.BaseExpression) -> str | None:
        """The key of ``isinstance(key, nn.Module)`` (or a tuple with nn.Module), else None."""
        if not (isinstance(test, cst.Call) and isinstance(test.func, cst.Name)
                and test.func.value == "isinstance" and len(test.args) == 2):
            return None
        classes = test.args[1].value
        candidates = [el.value for el in classes.elements] if isinstance(classes, cst.Tuple) else [classes]
        if not any(self.context.qualify(c) in torch_api.MODULE_BASES for c in candidates
                   if isinstance(c, (cst.Name, cst.Attribute))):
            return None
        return key_of(test.args[0].value)

    def restore_by_flag(self, state: FlowState, condition: Condition) -> FlowState:
        """On the branch of ``if was_training: model.train()`` where the flag is false, the model
        was in eval mode on entry, so eval mode there is the entry mode: restored."""
        test, value = condition.test, condition.value
        if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
            test, value = test.expression, not value
        if value or not isinstance(test, cst.Name) or test.value not in self.ops.flag_sources:
            return state
        key = self.ops.flag_sources[test.value]
        result: FlowState = {}
        for assumptions, part in state.items():
            captured = part.captured.get(test.value)
            facts = part.facts(key)
            if captured is not None and facts and all(f.mode is Mode.EVAL for f in facts):
                part = part.set_facts(key, captured)
            result[assumptions] = part
        return result

    def decide(self, test: cst.BaseExpression) -> bool | None:
        """Evaluate a test on a parameter bound to a literal at the call site (``mode == 'eval'``)."""
        if not self.bindings:
            return None
        if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
            inner = self.decide(test.expression)
            return None if inner is None else not inner
        if isinstance(test, cst.Name) and test.value in self.bindings:
            return bool(self.bindings[test.value])
        if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
            comparison = test.comparisons[0]
            sides = [test.left, comparison.comparator]
            names = [s for s in sides if isinstance(s, cst.Name) and s.value in self.bindings]
            literals = [literal_value(s) for s in sides]
            if len(names) == 1 and any(ok for ok, _ in literals):
                value = self.bindings[names[0].value]
                other = next(v for ok, v in literals if ok)
                if isinstance(comparison.operator, (cst.Equal, cst.Is)):
                    return value == other
                if isinstance(comparison.operator, (cst.NotEqual, cst.IsNot)):
                    return value != other
        return None

    # -- transfer --------------------------------------------------------------------------

    def origin(self, op: Op, via: Origin | None = None) -> Origin:
        return Origin(op, self.context, via)

    def apply(self, op: Op, part: Part) -> Part:
        if isinstance(op, SetMode):
            return self.apply_set_mode(op, part)
        if isinstance(op, Bind):
            return self.apply_bind(op, part)
        if isinstance(op, TrainingFlagAssigned):
            if op.in_module_loop:
                return part
            return part.set_facts(op.key, frozenset({Fact(Mode.UNKNOWN, self.origin(op))}))
        if isinstance(op, SetGradEnabled):
            state = Grad.UNKNOWN if op.enabled is None else (Grad.ENABLED if op.enabled else Grad.DISABLED)
            return part.replace(grad=frozenset({(state, op)}))
        if isinstance(op, Call):
            return self.apply_call(op, part)
        return part

    def apply_set_mode(self, op: SetMode, part: Part) -> Part:
        if op.restore_var is not None and op.restore_var in part.captured:
            return part.set_facts(op.key, part.captured[op.restore_var])
        if op.restore_var is not None and op.restore_var in self.bindings:
            mode = Mode.TRAIN if self.bindings[op.restore_var] else Mode.EVAL
            return part.set_facts(op.key, frozenset({Fact(mode, self.origin(op))}))
        mode = op.mode
        if op.chosen_by is not None and self.decide(op.chosen_by) is None:
            mode = Mode.UNKNOWN  # the caller picks the mode through a parameter
        return part.set_facts(op.key, frozenset({Fact(mode, self.origin(op))}))

    def apply_bind(self, op: Bind, part: Part) -> Part:
        if op.kind is ValueKind.ALIAS and op.source == op.key:
            return part  # ``model = model.train()``: the same object
        source_facts = part.facts(op.source) if op.source is not None else None
        source_key = part.canonical_str(op.source) if op.source is not None else None
        wrapped = frozenset(f for k in op.wraps for f in part.facts(k)
                            if f.origin is not None and f.mode is not Mode.ENTRY)
        part = self.drop_assumptions_part(part.rebind(op.key), op.key)
        kind = op.kind
        if kind is ValueKind.FRESH:
            mode = op.mode
            if isinstance(op.model_class, ProjectClass):
                from evallint.analysis.summary import constructed_mode

                mode = constructed_mode(op.model_class)
                if mode is Mode.UNKNOWN and wrapped:
                    return part.set_facts(op.key, wrapped)  # ``Wrapper(model)``: model's mode
            return part.set_facts(op.key, frozenset({Fact(mode, self.origin(op))}))
        if kind is ValueKind.ALIAS:
            aliases = dict(part.aliases)
            if op.elements:
                aliases[op.key] = Elements(keys=tuple(part.canonical_str(k) for k in op.elements))
                return part.replace(aliases=aliases)
            if op.elements_of is not None:
                container = part.canonical(op.elements_of)
                aliases[op.key] = container if isinstance(container, Elements) \
                    else Elements(container=container)
                return part.replace(aliases=aliases)
            if op.key == RETURN_KEY and source_facts:
                return part.set_facts(op.key, source_facts)  # ``return m``: the model's mode
            if source_key is not None and source_key != op.key and "." not in op.key:
                aliases[op.key] = source_key
                return part.replace(aliases=aliases)
            return part
        if kind is ValueKind.IMPORTED and op.imported_from is not None and op.source is not None:
            facts = imported_modes(op.imported_from, op.source)
            return part.set_facts(op.key, frozenset(Fact(f.mode, self.origin(op, f.origin)) for f in facts)) \
                if facts else part
        if kind is ValueKind.COPY and source_facts is not None:
            return part.set_facts(op.key, source_facts)
        if kind is ValueKind.CAPTURE and source_facts is not None:
            return part.replace(captured={**part.captured, op.key: source_facts})
        if kind is ValueKind.OPTIMIZER:
            return part.replace(optimizers={**part.optimizers, op.key: op.params})
        if kind is ValueKind.CALL_RESULT and op.call is not None:
            summary = self.summaries.get(op.call)
            argument = op.call.arguments.get(summary.returns_parameter) \
                if summary is not None and summary.returns_parameter else None
            if argument is not None:  # ``unwrap(model)`` returns the model it was given
                if "." in op.key:
                    return part.set_facts(op.key, part.facts(argument))
                return part.replace(aliases={**part.aliases, op.key: part.canonical_str(argument)})
            if summary is not None and summary.returns:
                return part.set_facts(op.key, self.map_facts(summary.returns, op.call, part, None))
            return part
        return part  # rebound to something unknown: no facts (the same as unknown)

    def drop_assumptions_part(self, part: Part, key: str) -> Part:
        texts = self.texts_by_name.get(head(key))
        return part.drop_assumptions(texts) if texts else part

    def apply_call(self, op: Call, part: Part) -> Part:
        summary = self.summary_of(op)
        if summary is None:
            return part
        if summary.yield_modes is None or op.phase == "call":
            if op.phase == "exit":
                return part  # a plain function used as a context manager ran at the call
            return self.apply_modes(summary.exit_modes, op, part)
        # A @contextmanager generator: the with body runs at its yield; leaving the block runs
        # the rest, from the modes the models had before the block.
        keys = summary.yield_modes.keys() | summary.exit_modes.keys()
        if op.phase == "enter":
            captured = dict(part.captured)
            for callee_key in keys:
                for caller_key in self.map_key(callee_key, op, part):
                    captured[_before_with(op, caller_key)] = part.facts(caller_key)
            return self.apply_modes(summary.yield_modes, op, part.replace(captured=captured))
        for callee_key in keys:
            for caller_key in self.map_key(callee_key, op, part):
                before = part.captured.get(_before_with(op, caller_key))
                if before is not None:
                    part = part.set_facts(caller_key, before)
        return self.apply_modes(summary.exit_modes, op, part)

    def apply_modes(self, modes: dict[str, frozenset[Fact]], op: Call, part: Part) -> Part:
        for callee_key, facts in modes.items():
            for caller_key in self.map_key(callee_key, op, part):
                part = part.set_facts(caller_key, self.map_facts(facts, op, part, caller_key))
        return part

    def summary_of(self, op: Call) -> "Summary | None":
        from evallint.analysis.summary import summarize

        if op not in self.summaries:
            literals = {k: v for k, v in op.literals.items()}
            summary = summarize(op.function.context, op.function.graph, literals, op.classes)
            if summary is None:
                return None
            self.summaries[op] = summary
        return self.summaries[op]

    def map_key(self, callee_key: str, op: Call, part: Part) -> list[str]:
        """The caller's keys for a key of the callee (a parameter, ``self...``, or a global)."""
        name = head(callee_key)
        callee = op.function.graph
        if name == "self" and callee.class_name is not None:
            if op.receiver is None:
                return []
            return [rebase(callee_key, "self", op.receiver)]
        if name in callee.param_names:
            if name in op.element_arguments and (callee_key == name or callee_key == f"{name}[*]"):
                return list(op.element_arguments[name])
            argument = op.arguments.get(name)
            if argument is None:
                return []
            if callee_key == f"{name}[*]":
                container = part.canonical_str(argument)
                return [k for k in part.modes if is_within(k, container)] + [f"{container}[*]"]
            return [rebase(callee_key, name, argument)]
        if op.function.context is self.context:
            return [callee_key]  # a global of this module
        return []

    def map_facts(self, facts: frozenset[Fact], op: Call, part: Part,
                  caller_key: str | None) -> frozenset[Fact]:
        mapped: set[Fact] = set()
        for fact in facts:
            if fact.mode is Mode.ENTRY:
                if caller_key is not None:
                    mapped |= part.facts(caller_key)
                else:
                    mapped.add(Fact(Mode.UNKNOWN, None))
            else:
                mapped.add(Fact(fact.mode, self.origin(op, fact.origin)))
        return frozenset(mapped)

    # -- queries for summaries and rules ---------------------------------------------------

    def parts(self, op: Op) -> tuple[Part, ...]:
        return self.op_parts.get(op, ())

    def reachable(self, op: Op) -> bool:
        return op in self.op_parts

    def targets(self, op: Op, key: str) -> set[str]:
        """The tracked keys that ``key`` stands for at ``op`` (``model`` after ``model = self.model``
        is ``self.model``)."""
        return {target for part in self.parts(op) for target in part.targets(key)}

    def facts(self, op: Op, key: str) -> frozenset[Fact]:
        found: frozenset[Fact] = frozenset()
        for part in self.parts(op):
            found |= part.facts(key)
        return found

    def lexical_grad(self, op: Op) -> GradEffect | None:
        found = lexical_grad(self.context, op.step.region, self.graph)
        return found[1] if found is not None else None

    def is_inference(self, op: Op) -> bool:
        """Is this forward an evaluation/inference one (spec: no training step in its scope)?

        Never a forward whose result reaches a backward, a shape probe, or a no-grad forward of a
        model that the same loop trains whose result feeds that training (features cached for
        gradient accumulation); a periodic test batch whose outputs only reach metrics, prints or
        saved images is an evaluation."""
        if isinstance(op, Forward) and (self.is_shape_probe(op) or self.feeds_gradient(op)):
            return False
        found = lexical_grad(self.context, op.step.region, self.graph)
        steps = self.training_steps()
        if found is not None and found[1] is GradEffect.DISABLED:
            region = found[0]
            if isinstance(op, Forward) and op.step.loop in self.loops_with_training() \
                    and self.trained_in_its_loop(op) and self.reaches_backward(op):
                return False
            return region is None or not any(_inside(step.step.region, region) for step in steps)
        if found is None and self.grad_disabled(op):
            return not steps
        loop = op.step.loop
        if loop is not None:
            if loop not in self.loops_with_training():
                return True
            return isinstance(op, Forward) and self.evaluates_in_training_loop(op)
        return not steps

    def evaluates_in_training_loop(self, op: Forward) -> bool:
        """A forward in a training loop, of the model that loop trains, whose result is used but
        never reaches the loop's backward (it feeds ``.item()``, metrics, a print, a saved image):
        the periodic "test one batch every N steps" block. Only where the loop's own backward
        is visible, so that a loss handed to an unknown callee is not taken for an evaluation."""
        statement = op.step.node
        if isinstance(statement, cst.Expr) and statement.value is op.node:
            return False  # ``model(x)`` for its side effects (hooks, warm-up)
        loop = op.step.loop
        sinks = [o for o in self.ops_of(Backward)] + self.backward_calls() + self.training_calls()
        if not any(loop in sink.step.loops for sink in sinks):
            return False
        if self.reaches_backward(op) or not self.trained_in_its_loop(op):
            return False
        if self._used_results is None:  # reaching definitions once per function
            from evallint.analysis.values import results_used

            self._used_results = results_used(self.ops, [o for o in self.ops.all() if isinstance(o, Forward)])
        return op in self._used_results  # a result nobody reads is not an evaluation

    def trained_in_its_loop(self, op: Forward) -> bool:
        """Is the model of this forward trained by a step in the forward's innermost loop?"""
        trained = {key for step in self.training_steps() if op.step.loop in step.step.loops
                   for key in self.trained_keys(step)}
        return any(target in trained for part in self.parts(op) for target in part.targets(op.key))

    def reaches_backward(self, op: Op) -> bool:
        """Does this forward's (or project call's) result flow into a backward, autograd.grad, or
        a project call that backpropagates or trains (``backward(loss, scaler)``)?"""
        if self._gradient_forwards is None:
            from evallint.analysis.values import results_reaching

            sinks: list[Op] = [o for o in self.ops.all() if isinstance(o, Backward)
                               or (isinstance(o, GradientUse) and isinstance(o.node, cst.Call))]
            sinks += self.backward_calls() + self.training_calls()
            self._gradient_forwards = results_reaching(self.ops, sinks)
        return op in self._gradient_forwards

    def reaches_return(self, op: Op) -> bool:
        """Is this forward's (or project call's) result returned to the caller, who may need its
        gradients (a differentiable metric used as a loss)?"""
        if self._returned_results is None:
            from evallint.analysis.values import results_reaching

            returns: list[Op] = [o for o in self.ops.all() if isinstance(o, Bind) and o.key == RETURN_KEY]
            self._returned_results = results_reaching(self.ops, returns)
        return op in self._returned_results

    def feeds_gradient(self, op: Op) -> bool:
        """Is this forward (or project call), run with grad enabled, part of a gradient
        computation: does its result reach a backward? (A no-grad result carries no gradient.)"""
        return self.reaches_backward(op) and not self.grad_disabled(op) \
            and self.lexical_grad(op) is not GradEffect.DISABLED

    def forwards_feeding(self, op: Op) -> frozenset[Forward]:
        """The forwards whose results flow into ``op`` (a backward: the forwards of its loss)."""
        from evallint.analysis.values import results_reaching

        return frozenset(f for f in results_reaching(self.ops, [op]) if isinstance(f, Forward))

    def is_shape_probe(self, op: Forward) -> bool:
        """Is this forward run only to learn an output size?"""
        if self._shape_probes is None:
            from evallint.analysis.values import shape_probes

            self._shape_probes = shape_probes(self.context, self.ops)
        return op in self._shape_probes

    def grad_states(self, op: Op) -> set[tuple[str, Op | None]]:
        """The grad states an op can run under: lexical if a region decides, else the flow."""
        lexical = self.lexical_grad(op)
        if lexical is not None:
            return {(lexical.value, None)}
        states: set[tuple[str, Op | None]] = set()
        for part in self.parts(op):
            states |= part.grad
        return states

    def grad_disabled(self, op: Op) -> bool:
        """Can ``op`` run with grad disabled (on some path)?"""
        return any(state == Grad.DISABLED for state, _ in self.grad_states(op))

    def ops_of(self, kind: type) -> Iterator:
        """Reachable ops of ``kind``; leaving a with block is not a second call of its manager."""
        for op in self.ops.all():
            if isinstance(op, kind) and self.reachable(op) \
                    and not (isinstance(op, Call) and op.phase == "exit"):
                yield op

    def training_calls(self) -> list[Call]:
        return [op for op in self.ops_of(Call) if (s := self.summary_of(op)) and s.trains]

    def trains(self) -> bool:
        return any(True for _ in self.ops_of(OptimizerStep)) or bool(self.training_calls())

    def backward_calls(self) -> list[Call]:
        """Calls of project functions that run a backward (``backward(loss, scaler)``)."""
        return [op for op in self.ops_of(Call) if (s := self.summary_of(op)) and s.backpropagates
                and not s.trains]

    def uses_gradients(self) -> bool:
        """Does the function call backward or ``autograd.grad``, set ``requires_grad`` on inputs
        or freeze parameters (where it does not train, gradients are its point)?"""
        return any(True for _ in self.ops_of(GradientUse)) or any(True for _ in self.ops_of(Backward))

    def backpropagates(self) -> bool:
        return any(True for _ in self.ops_of(Backward)) or bool(self.backward_calls()) \
            or any(s.backpropagates for op in self.training_calls() if (s := self.summary_of(op)))

    def training_steps(self) -> list[Op]:
        """Optimizer steps, calls that train, and (when the function trains) backward calls,
        direct or through a project helper."""
        steps: list[Op] = list(self.ops_of(OptimizerStep)) + list(self.training_calls())
        if steps:
            steps += list(self.ops_of(Backward)) + self.backward_calls()
        return steps

    def grad_sensitive_steps(self) -> list[Op]:
        """The training steps that need gradients: backward calls, and calls of functions whose
        backward runs in the grad state of their caller. (``optimizer.step()`` itself runs
        under no-grad by design.)"""
        return [op for op in self.training_steps()
                if isinstance(op, Backward) or isinstance(op, Call)
                and (summary := self.summary_of(op)) is not None and summary.backward_in_caller_grad]

    def loops_with_training(self) -> set[Loop]:
        return {loop for op in self.training_steps() for loop in op.step.loops}

    def forwarded_outside_no_grad(self) -> set[str]:
        keys: set[str] = set()
        for op in self.ops_of(Forward):
            if not self.grad_disabled(op):
                for part in self.parts(op):
                    keys.update(part.targets(op.key))
        for op in self.ops_of(Call):
            summary = self.summary_of(op)
            if summary is not None and not self.grad_disabled(op):
                for callee_key in summary.forwarded:
                    for part in self.parts(op):
                        keys.update(self.map_key(callee_key, op, part))
        return keys

    def trained_keys(self, op: Op) -> set[str]:
        """The models a training-step op trains."""
        if isinstance(op, Call):
            summary = self.summary_of(op)
            keys: set[str] = set()
            if summary is not None:
                for callee_key in summary.trained_at_entry:
                    for part in self.parts(op):
                        keys.update(target for key in self.map_key(callee_key, op, part)
                                    for target in part.targets(key))
                if summary.trains and not summary.forwarded:
                    # ``scaler(loss, optimizer)``: steps on a loss this scope computed.
                    keys |= self.forwarded_outside_no_grad()
            return keys
        optimizers = [op] if isinstance(op, OptimizerStep) else list(self.ops_of(OptimizerStep))
        known: set[str] = set()
        unknown = False
        for step in optimizers:
            params = None
            for part in self.parts(step):
                if step.optimizer is not None:
                    params = part.optimizers.get(part.canonical_str(step.optimizer), params)
            if params is None:
                unknown = True
            else:
                for part in self.parts(step):
                    known.update(target for key in params for target in part.targets(self.owner_key(part, key)))
        if unknown or not optimizers:
            known |= self.forwarded_outside_no_grad()
        return known

    def trained_anywhere(self) -> frozenset[str]:
        """Every key some training step of this function trains (computed once)."""
        if self._trained_anywhere is None:
            self._trained_anywhere = frozenset(
                key for step in self.training_steps() for key in self.trained_keys(step))
        return self._trained_anywhere

    @staticmethod
    def owner_key(part: Part, key: str) -> str:
        """``model.fc`` -> ``model`` when only the whole model's mode is tracked."""
        key = part.canonical_str(key)
        candidate = key
        while candidate not in part.modes and ("." in candidate or "[" in candidate):
            candidate = candidate.rsplit(".", 1)[0] if "." in candidate else candidate.rsplit("[", 1)[0]
        return candidate if candidate in part.modes else key


def _before_with(op: Call, caller_key: str) -> str:
    """The captured-facts slot holding ``caller_key``'s modes from before ``with op:``."""
    return f"<before with {id(op.node)}>{caller_key}"


def _guards_mode_or_grad(statement: cst.CSTNode, context: "ModuleContext") -> bool:
    """Does an if/while mention a mode call, a training step or a grad switch, or call a
    project function (``to_eval(model)``), in its test or body? Memoised per statement."""
    key = ("guards", statement)
    if key not in context.cache:
        found = False
        pending = [statement]
        while pending and not found:
            node = pending.pop()
            if isinstance(node, cst.Name) and node.value in GUARDED_NAMES:
                found = True
            elif isinstance(node, cst.Call) and isinstance(node.func, (cst.Name, cst.Attribute)):
                found = isinstance(context.resolve(node.func), ProjectFunction)
            pending.extend(child_nodes(node))
        context.cache[key] = found
    return context.cache[key]  # type: ignore[return-value]


def _bounded(state: FlowState) -> FlowState:
    """Past MAX_PARTITIONS, merge every partition into one: branches are then no longer kept
    apart (more paths, never fewer), and the cost stays linear."""
    if len(state) <= MAX_PARTITIONS:
        return state
    parts = iter(state.values())
    merged = next(parts)
    for part in parts:
        merged = join_parts(merged, part)
    return {frozenset(): merged.replace(assumptions=frozenset())}


def _inside(region: "Region | None", outer: "Region") -> bool:
    while region is not None:
        if region is outer:
            return True
        region = region.parent
    return False


def _same(a: FlowState, b: FlowState) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] for k in a)


def analyze_function(context: "ModuleContext", graph: FunctionGraph,
                     bindings: dict[str, object] | None = None,
                     classes: dict[str, ProjectClass] | None = None) -> FunctionAnalysis:
    """The (cached) dataflow results of ``graph`` for the given literal arguments and classes."""
    cache_key = ("analysis", graph, tuple(sorted((bindings or {}).items(), key=repr)), classes_key(classes))
    cached = context.cache.get(cache_key)
    if cached is None:
        cached = FunctionAnalysis(context, graph, bindings, classes).solve()
        context.cache[cache_key] = cached
    return cached  # type: ignore[return-value]
