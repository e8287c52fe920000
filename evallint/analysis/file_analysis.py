"""Everything the rules read about one linted file: dataflow results for each of its functions."""

from __future__ import annotations

from functools import cached_property

from evallint.analysis.dataflow import FunctionAnalysis, analyze_function
from evallint.analysis.grad import GradEffect
from evallint.analysis.module import ModuleContext
from evallint.analysis.ops import Call
from evallint.analysis.state import Grad
from evallint.frontend.cfg import FunctionGraph
from evallint.frontend.source import SourceModule


class FileAnalysis:
    def __init__(self, context: ModuleContext) -> None:
        self.context = context
        self.functions: list[FunctionAnalysis] = [
            analyze_function(context, graph) for graph in context.graphs]

    @property
    def source(self) -> SourceModule:
        return self.context.source

    @cached_property
    def call_sites(self) -> dict[FunctionGraph, list[tuple[FunctionAnalysis, Call]]]:
        """Calls, in this file, of functions defined in this file."""
        sites: dict[FunctionGraph, list[tuple[FunctionAnalysis, Call]]] = {}
        for analysis in self.functions:
            for op in analysis.ops_of(Call):
                if op.function.context is self.context:
                    sites.setdefault(op.function.graph, []).append((analysis, op))
        return sites

    def analysis_of(self, graph: FunctionGraph) -> FunctionAnalysis:
        return next(a for a in self.functions if a.graph is graph)

    def only_called_without_grad(self, graph: FunctionGraph,
                                 _seen: frozenset[FunctionGraph] = frozenset()) -> bool:
        """Is every call of ``graph`` in this file made with grad disabled (and is there one)?"""
        sites = self.call_sites.get(graph)
        if not sites or graph in _seen:
            return False
        for caller, op in sites:
            lexical = caller.lexical_grad(op)
            if lexical is GradEffect.DISABLED:
                continue
            if lexical is not None:
                return False
            states = {state for state, _ in caller.grad_states(op)}
            if states == {Grad.DISABLED}:
                continue
            if states == {Grad.ENTRY} and self.only_called_without_grad(caller.graph, _seen | {graph}):
                continue
            return False
        return True
