"""The mode/grad dataflow: fixpoints, exits, correlated branches, aliases and summaries."""

import textwrap
from pathlib import Path

from evallint.analysis.dataflow import analyze_function
from evallint.analysis.ops import Bind, Forward, Mode, OptimizerStep, ValueKind
from evallint.analysis.project import Project
from evallint.analysis.summary import summarize


def context_for(tmp_path: Path, code: str, name: str = "mod.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    project = Project(tmp_path)
    return project.context_for_source(str(path), path.read_text(), path)


def modes_at(analysis, op_type, key, index=0) -> set[Mode]:
    op = [op for op in analysis.ops_of(op_type) if getattr(op, "key", key) == key][index]
    return {fact.mode for fact in analysis.facts(op, key)}


def test_loop_carried_eval_reaches_next_iteration_of_nested_loops(tmp_path):
    ctx = context_for(tmp_path, """
        import torch
        model = torch.nn.Dropout()
        model.train()
        for epoch in range(3):
            for batch in range(5):
                for x in batch:
                    model(x)
            model.eval()
    """)
    analysis = analyze_function(ctx, ctx.functions["<module>"])
    assert modes_at(analysis, Forward, "model") == {Mode.TRAIN, Mode.EVAL}


def test_train_at_top_of_loop_kills_the_loop_carried_eval(tmp_path):
    ctx = context_for(tmp_path, """
        import torch
        model = torch.nn.Dropout()
        for epoch in range(3):
            model.train()
            model(epoch)
            model.eval()
    """)
    analysis = analyze_function(ctx, ctx.functions["<module>"])
    assert modes_at(analysis, Forward, "model") == {Mode.TRAIN}


def test_early_return_and_finally_in_summary(tmp_path):
    ctx = context_for(tmp_path, """
        def evaluate(model, loader):
            model.eval()
            if not loader:
                return None
            model.train()

        def evaluate_safely(model, loader):
            model.eval()
            try:
                if not loader:
                    return None
                run(loader)
            finally:
                model.train()
    """)
    leaky = summarize(ctx, ctx.functions["evaluate"], {})
    assert {f.mode for f in leaky.exit_modes["model"]} == {Mode.EVAL, Mode.TRAIN}
    safe = summarize(ctx, ctx.functions["evaluate_safely"], {})
    assert {f.mode for f in safe.exit_modes["model"]} == {Mode.TRAIN}


def test_restore_with_saved_training_flag_is_no_effect(tmp_path):
    ctx = context_for(tmp_path, """
        def evaluate(model):
            was_training = model.training
            model.eval()
            score = model(1)
            model.train(was_training)
            return score
    """)
    summary = summarize(ctx, ctx.functions["evaluate"], {})
    assert "model" not in summary.exit_modes


def test_correlated_phase_branches_are_not_mixed(tmp_path):
    ctx = context_for(tmp_path, """
        import torch
        model = torch.nn.Dropout()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(3):
            for phase in ["train", "val"]:
                if phase == "train":
                    model.train()
                else:
                    model.eval()
                for x in loader:
                    out = model(x)
                    if phase == "train":
                        optimizer.step()
    """)
    analysis = analyze_function(ctx, ctx.functions["<module>"])
    assert modes_at(analysis, OptimizerStep, "model") == {Mode.TRAIN}
    assert modes_at(analysis, Forward, "model") == {Mode.TRAIN, Mode.EVAL}


def test_aliases_module_attribute_and_mode_returning_self(tmp_path):
    ctx = context_for(tmp_path, """
        import torch
        model = torch.nn.Dropout()
        net = model
        net.module.eval()
        model = model.train()
        model(1)
        net(2)
    """)
    analysis = analyze_function(ctx, ctx.functions["<module>"])
    assert modes_at(analysis, Forward, "model", 0) == {Mode.TRAIN}
    # ``model = model.train()`` rebinds model; net still names the same module object
    assert Mode.TRAIN in modes_at(analysis, Forward, "net")


def test_containers_and_loops_over_values(tmp_path):
    ctx = context_for(tmp_path, """
        import torch
        models = {}
        models["G"] = torch.nn.Dropout()
        models["D"] = torch.nn.Dropout()
        for m in models.values():
            m.eval()
        models["G"](1)
    """)
    analysis = analyze_function(ctx, ctx.functions["<module>"])
    assert modes_at(analysis, Forward, "models['G']") == {Mode.EVAL}


def test_helper_with_literal_argument_applies_per_call_site(tmp_path):
    ctx = context_for(tmp_path, """
        import torch
        def set_mode(mode, models):
            for m in models:
                if mode == "eval":
                    m.eval()
                else:
                    m.train()

        G = torch.nn.Dropout()
        D = torch.nn.Dropout()
        set_mode("eval", [G, D])
        G(1)
        set_mode("train", [G, D])
        D(2)
    """)
    analysis = analyze_function(ctx, ctx.functions["<module>"])
    assert modes_at(analysis, Forward, "G", 0) == {Mode.EVAL}
    assert modes_at(analysis, Forward, "D") == {Mode.TRAIN}


def test_method_summary_through_self_and_recursion_terminates(tmp_path):
    ctx = context_for(tmp_path, """
        class Trainer:
            def validate(self):
                self.model.eval()
                self.validate()

            def fit(self):
                self.model.train()
                self.validate()
                self.model(1)
    """)
    analysis = analyze_function(ctx, ctx.functions["Trainer.fit"])
    assert Mode.EVAL in modes_at(analysis, Forward, "self.model")


def test_cross_file_summary(tmp_path):
    (tmp_path / "utils.py").write_text("def evaluate(m, loader):\n    m.eval()\n    return 0\n")
    ctx = context_for(tmp_path, """
        import torch
        from utils import evaluate
        model = torch.nn.Dropout()
        evaluate(model, None)
        model(1)
    """, name="train.py")
    analysis = analyze_function(ctx, ctx.functions["<module>"])
    assert modes_at(analysis, Forward, "model") == {Mode.EVAL}


def test_conditions_guarding_nothing_mode_related_are_not_kept_apart(tmp_path):
    checks = "\n".join(f"    if is_primary(args):\n        log('step {i}')" for i in range(18))
    ctx = context_for(tmp_path, f"import torch\n\ndef main(args, model, x):\n{checks}\n"
                                f"{checks}\n    model(x)\n")
    analysis = analyze_function(ctx, ctx.functions["main"])
    forward = next(analysis.ops_of(Forward))
    assert len(analysis.parts(forward)) == 1


def test_partitions_stay_bounded_when_many_conditions_guard_steps(tmp_path):
    from evallint.analysis.dataflow import MAX_PARTITIONS

    steps = "\n".join(f"        if args.flag{i}:\n            loss.backward()\n            opt.step()"
                      for i in range(12))
    switches = "\n".join(f"        if args.flag{i}:\n            model.eval()\n        else:\n"
                         f"            model.train()" for i in range(12))
    ctx = context_for(tmp_path, f"import torch\n\ndef main(model, opt, loader):\n"
                                f"    args = parse_args()\n"
                                f"    for x in loader:\n        loss = model(x).sum()\n"
                                f"{steps}\n{switches}\n")
    analysis = analyze_function(ctx, ctx.functions["main"])
    assert all(len(analysis.parts(op)) <= MAX_PARTITIONS for op in analysis.ops.all())
    # Merging loses correlation, never paths: the last switch can leave eval mode for the
    # next iteration's steps.
    step = next(analysis.ops_of(OptimizerStep))
    assert Mode.EVAL in {fact.mode for fact in analysis.facts(step, "model")}


def test_mode_picked_by_a_parameter_is_unknown_unless_the_call_site_passes_a_literal(tmp_path):
    ctx = context_for(tmp_path, """
        import torch

        def run(model, x, training):
            if training:
                model.train()
            else:
                model.eval()
            return model(x)

        net = torch.nn.Dropout()
        run(net, 1, training=False)
    """)
    run = analyze_function(ctx, ctx.functions["run"])
    assert modes_at(run, Forward, "model") == {Mode.UNKNOWN}
    summary = summarize(ctx, ctx.functions["run"], {"training": False})
    assert {fact.mode for fact in summary.exit_modes["model"]} == {Mode.EVAL}


def test_names_bound_to_none_are_not_one_object(tmp_path):
    ctx = context_for(tmp_path, """
        teacher = None
        scheduler = None
    """)
    analysis = analyze_function(ctx, ctx.functions["<module>"])
    binds = [op for op in analysis.ops_of(Bind) if op.key in ("teacher", "scheduler")]
    assert len(binds) == 2 and all(op.kind is not ValueKind.ALIAS for op in binds)


def test_package_import_beats_a_module_beside_the_file_with_the_package_name(tmp_path):
    """In ``vocoder/models/vocoder.py``, ``from vocoder.layers import Gate`` is the package's
    ``layers`` (found from the root), not an attribute path into the file itself."""
    (tmp_path / "vocoder" / "layers").mkdir(parents=True)
    (tmp_path / "vocoder" / "models").mkdir()
    (tmp_path / "vocoder" / "__init__.py").write_text("")
    (tmp_path / "vocoder" / "layers" / "__init__.py").write_text("from vocoder.layers.gates import *\n")
    (tmp_path / "vocoder" / "layers" / "gates.py").write_text(
        "import torch\n\n\nclass Gate(torch.nn.Conv1d):\n    pass\n")
    file = tmp_path / "vocoder" / "models" / "vocoder.py"
    file.write_text("from vocoder.layers import Gate\n")
    project = Project(tmp_path)
    ctx = project.context_for_source(str(file), file.read_text(), file)
    gate = ctx.resolve("Gate")
    assert getattr(gate, "qualname", None) == "Gate"
    assert ctx.is_module_class(gate)  # a project subclass of a torch.nn layer is a module
