"""The control-flow graph builder: each statement form Python has."""

import textwrap

import libcst as cst

from evallint.frontend.cfg import Block, FunctionGraph, StepKind, build_graphs


def graph_of(code: str, name: str = "f") -> FunctionGraph:
    graphs = build_graphs(cst.parse_module(textwrap.dedent(code)))
    return next(g for g in graphs.functions if g.name == name)


def step_texts(graph: FunctionGraph, module: cst.Module | None = None) -> list[list[str]]:
    module = cst.Module(body=[])
    return [[module.code_for_node(s.node).strip() for s in block.steps] for block in graph.blocks]


def reachable(graph: FunctionGraph) -> set[Block]:
    seen, stack = set(), [graph.entry]
    while stack:
        block = stack.pop()
        if block in seen:
            continue
        seen.add(block)
        stack.extend(target for target, _ in block.successors)
    return seen


def paths_to_exit(graph: FunctionGraph, limit: int = 200) -> list[list[str]]:
    """Every acyclic path from entry to the normal exit, as the texts of its steps."""
    module = cst.Module(body=[])
    result: list[list[str]] = []

    def walk(block: Block, seen: tuple, texts: list[str]) -> None:
        texts = texts + [module.code_for_node(s.node).strip() for s in block.steps]
        if block is graph.exit:
            result.append(texts)
            return
        for target, _ in block.successors:
            if target not in seen and len(result) < limit:
                walk(target, seen + (target,), texts)

    walk(graph.entry, (graph.entry,), [])
    return result


def test_if_elif_else_branches_join():
    g = graph_of("""
        def f(x):
            if x == 1:
                a()
            elif x == 2:
                b()
            else:
                c()
            d()
    """)
    paths = paths_to_exit(g)
    assert sorted(p[-2:] for p in paths) == [["a()", "d()"], ["b()", "d()"], ["c()", "d()"]]
    conditions = [c for block in g.blocks for _, c in block.successors if c is not None]
    assert {c.value for c in conditions} == {True, False}


def test_return_skips_rest_and_unreachable_code_is_dropped():
    g = graph_of("""
        def f(x):
            if x:
                return 1
            a()
            return 2
            b()
    """)
    texts = [t for block in g.blocks for t in step_texts(g)[block.index]]
    assert "b()" not in texts
    assert sorted(p[-1] for p in paths_to_exit(g)) == ["return 1", "return 2"]


def test_for_loop_has_back_edge_else_and_break():
    g = graph_of("""
        def f(xs):
            for x in xs:
                if x:
                    break
                step(x)
            else:
                done()
            after()
    """)
    kinds = [s.kind for s in g.steps()]
    assert StepKind.LOOP_ITER in kinds and StepKind.LOOP_BIND in kinds
    paths = paths_to_exit(g)
    # break skips the else clause; normal exhaustion runs it
    assert any("done()" not in p and "break" in p for p in paths)
    assert any("done()" in p for p in paths)
    bind = next(s for s in g.steps() if s.kind is StepKind.LOOP_BIND)
    loop_blocks = [b for b in g.blocks if any(s.node is bind.node for s in b.steps)]
    step_block = next(b for b in g.blocks if any(s.loop is bind.loop and s.kind is StepKind.STATEMENT
                                                   and "step" in cst.Module([]).code_for_node(s.node)
                                                   for s in b.steps))
    # the loop body's end leads back to the head (a back edge)
    heads = {t for t, _ in step_block.successors}
    assert any(any(t2 in loop_blocks for t2, _ in h.successors) for h in heads)


def test_while_true_only_exits_by_break_and_continue_goes_to_head():
    g = graph_of("""
        def f():
            while True:
                if cond():
                    continue
                if other():
                    break
            end()
    """)
    paths = paths_to_exit(g)
    assert paths and all("break" in p for p in paths)


def test_try_finally_runs_on_return_and_on_normal_exit():
    g = graph_of("""
        def f(model):
            model.eval()
            try:
                if bad():
                    return None
                work()
            finally:
                model.train()
            return 1
    """)
    for path in paths_to_exit(g):
        assert "model.train()" in path, path


def test_try_except_else_edges():
    g = graph_of("""
        def f():
            try:
                a()
            except ValueError:
                handle()
            else:
                ok()
            end()
    """)
    paths = paths_to_exit(g)
    assert any("handle()" in p and "ok()" not in p for p in paths)
    assert any("ok()" in p and "handle()" not in p for p in paths)
    # an exception no handler catches leaves by the raise exit
    assert g.raise_exit in reachable(g)


def test_raise_goes_to_raise_exit_not_exit():
    g = graph_of("""
        def f():
            raise RuntimeError()
    """)
    assert paths_to_exit(g) == []
    assert g.raise_exit in reachable(g)


def test_with_items_are_steps_and_body_is_in_region():
    g = graph_of("""
        def f(model, x):
            with torch.no_grad(), open("f") as fh:
                model(x)
            model(x)
    """)
    item_steps = [s for s in g.steps() if s.kind is StepKind.WITH_ITEM]
    assert len(item_steps) == 2
    calls = [s for s in g.steps() if s.kind is StepKind.STATEMENT]
    assert calls[0].region is not None and calls[1].region is None
    assert len(calls[0].region.items) == 2


def test_match_cases_and_fallthrough():
    g = graph_of("""
        def f(cmd):
            match cmd:
                case "train":
                    a()
                case "eval" if ready:
                    b()
            end()
    """)
    paths = paths_to_exit(g)
    assert any("a()" in p for p in paths) and any("b()" in p for p in paths)
    assert any("a()" not in p and "b()" not in p for p in paths)  # no case matched


def test_async_forms_and_nested_functions_and_methods():
    graphs = build_graphs(cst.parse_module(textwrap.dedent("""
        import torch
        async def f(xs):
            async with lock:
                async for x in xs:
                    await g(x)
            def inner():
                return 1
        class Trainer:
            def fit(self):
                self.step()
            class Config:
                def load(self):
                    pass
    """)))
    names = {g.name for g in graphs.functions}
    assert names == {"<module>", "f", "f.<locals>.inner", "Trainer.fit", "Trainer.Config.load"}
    fit = next(g for g in graphs.functions if g.name == "Trainer.fit")
    assert fit.class_name == "Trainer"
    f = next(g for g in graphs.functions if g.name == "f")
    assert any(s.kind is StepKind.LOOP_BIND for s in f.steps())


def test_decorators_make_a_region():
    g = graph_of("""
        @torch.no_grad()
        def f(model, x):
            return model(x)
    """)
    assert g.region is not None and g.region.is_decorator
    assert all(s.region is g.region for s in g.steps())


def test_exception_edges_carry_the_state_before_each_statement_of_a_try():
    g = graph_of("""
        def f(model):
            model.eval()
            try:
                risky()
                model.train()
            except RuntimeError:
                log()
    """)
    handler_paths = [p for p in paths_to_exit(g) if "log()" in p]
    # the handler is reachable from before model.train() ran
    assert any("model.train()" not in p for p in handler_paths)


def test_sys_exit_and_exit_end_the_path():
    g = graph_of("""
        def f(args):
            if args.eval:
                evaluate()
                sys.exit(0)
            if args.dry:
                exit()
            train()
    """)
    assert paths_to_exit(g) == [["args.eval", "args.dry", "train()"]]


def test_with_block_ends_with_an_exit_step():
    g = graph_of("""
        def f(model):
            with evaluating(model):
                model(x)
            after()
    """)
    kinds = [s.kind for block in g.blocks for s in block.steps]
    assert kinds == [StepKind.WITH_ITEM, StepKind.STATEMENT, StepKind.WITH_EXIT, StepKind.STATEMENT]
