"""What evallint knows about PyTorch and the libraries around it, by qualified name."""

from __future__ import annotations

import re

# -- grad-mode context managers and functions -----------------------------------------------
NO_GRAD = frozenset({"torch.no_grad", "torch.autograd.no_grad", "torch.autograd.grad_mode.no_grad"})
INFERENCE_MODE = frozenset({"torch.inference_mode", "torch.autograd.grad_mode.inference_mode"})
ENABLE_GRAD = frozenset({"torch.enable_grad", "torch.autograd.enable_grad",
                         "torch.autograd.grad_mode.enable_grad"})
SET_GRAD_ENABLED = frozenset({"torch.set_grad_enabled", "torch.autograd.set_grad_enabled",
                              "torch.autograd.grad_mode.set_grad_enabled"})
GRAD_CONTEXTS = NO_GRAD | INFERENCE_MODE | ENABLE_GRAD
AUTOGRAD_GRAD = frozenset({"torch.autograd.grad", "torch.autograd.functional.jacobian",
                           "torch.autograd.functional.hessian", "torch.func.grad",
                           "torch.func.vjp", "torch.func.jacrev", "torch.func.jacfwd"})
AUTOGRAD_BACKWARD = frozenset({"torch.autograd.backward", "torch.distributed.autograd.backward"})

# Callables the engine cannot see (imported from a library, or a callback parameter) that,
# by their name, run the model given to them for its outputs: ``get_loss(model, batch)``,
# ``forward_fn(model, x)``, ``pgd_attack(model, x, y)``. (Not ``evaluate``/``predict``, which may
# set the mode themselves, nor ``summary``, ``save``, ``count_parameters``...)
OUTPUT_CALLABLE_NAME = re.compile(
    r"loss|forward|logit|attack|(compute|calc|get|run)_?\w*(output|pred|score)", re.IGNORECASE)
# Libraries whose calls are never such a forward: known here by name, or managing modes themselves.
KNOWN_LIBRARIES = ("torch.", "torchvision.", "transformers.", "pytorch_lightning.", "lightning.",
                   "accelerate.", "ignite.", "copy.", "numpy.", "sklearn.")

# Methods of modules, optimizers and tensors that are never a forward call of a submodule.
NOT_FORWARD_METHODS = frozenset({
    "parameters", "named_parameters", "buffers", "named_buffers", "children", "named_children",
    "modules", "named_modules", "state_dict", "load_state_dict", "zero_grad", "step", "update",
    "scale", "unscale_", "apply", "register_buffer", "register_parameter", "register_forward_hook",
    "requires_grad_", "add_param_group", "item", "tolist", "numpy", "detach", "size", "dim",
})

# Words in code that keeps a model in train mode on purpose while not training it: BatchNorm
# re-estimation, Monte Carlo dropout, test-time adaptation.
DELIBERATE_TRAIN_MODE = re.compile(
    r"running_(mean|var|stats)|reset_running_stats|momentum|recalib|update_bn|bn_update|bn_stat"
    r"|adapt_bn|enable_dropout|mc_|monte|n_samples|num_samples|samples|stochastic|uncertaint"
    r"|bayes|tta|test_time", re.IGNORECASE)
# Tensors made only to run a model once and read its output shape.
DUMMY_TENSORS = frozenset(f"torch.{name}" for name in (
    "zeros", "ones", "empty", "randn", "rand", "randint", "full", "zeros_like", "ones_like",
    "randn_like", "rand_like", "empty_like", "full_like"))
SHAPE_ATTRIBUTES = frozenset({"shape", "size", "numel", "dim", "ndim", "ndimension"})
SHAPE_HELPER_NAME = re.compile(r"shape|size|dim|channels|out_features|feature_info|flatten",
                               re.IGNORECASE)

# -- exports (EL104) ------------------------------------------------------------------------
EXPORT_FUNCTIONS = frozenset({
    "torch.jit.trace", "torch.jit.trace_module", "torch.export.export", "torch.onnx.export",
    "torch.ao.quantization.fuse_modules", "torch.quantization.fuse_modules",
    "torch.ao.quantization.fuse_modules.fuse_modules", "torch.quantization.fuse_modules.fuse_modules",
})

# Methods that export the module they are called on, in the mode it is in. (Lightning's
# ``to_torchscript`` is not one: it switches to eval itself and restores the mode afterwards.)
EXPORT_METHODS = frozenset({"to_onnx"})

# -- model construction ---------------------------------------------------------------------
MODULE_BASES = frozenset({
    "torch.nn.Module", "torch.nn.modules.module.Module", "pytorch_lightning.LightningModule",
    "lightning.LightningModule", "lightning.pytorch.LightningModule", "pl.LightningModule",
    "transformers.PreTrainedModel", "transformers.modeling_utils.PreTrainedModel",
    "torch.nn.Sequential", "torch.nn.ModuleList", "torch.nn.ModuleDict",
})
# ``torch.nn`` classes a project class may derive from that are layers (``class Conv1d(torch.nn.Conv1d)``).
NN_LAYER_BASE = re.compile(r"^(?!(Parameter|UninitializedParameter|Buffer)$)[A-Z]")
# Base classes that never make a class an nn.Module.
NOT_MODULE_BASES = re.compile(r"^(abc|typing|typing_extensions|enum|collections|dataclasses|numbers"
                              r"|unittest|json|threading|argparse|pathlib|io)(\.|$)|^object$")
BUILTIN_BASES = frozenset({"object", "dict", "list", "tuple", "set", "str", "int", "float",
                           "Exception", "BaseException", "ValueError", "RuntimeError", "TypeError",
                           "KeyError", "NamedTuple", "type"})
# transformers base classes of models: ``BertPreTrainedModel``, ``PreTrainedModel``, ``GPT2Model``.
PRETRAINED_BASE = re.compile(r"PreTrainedModel$|^\w+(Model|For\w+)$")
LIGHTNING_BASES = frozenset({"pytorch_lightning.LightningModule", "lightning.LightningModule",
                             "lightning.pytorch.LightningModule", "pytorch_lightning.core.LightningModule",
                             "lightning.pytorch.core.LightningModule"})
# Hooks of a LightningModule: the framework switches modes and grad around them.
LIGHTNING_HOOKS = re.compile(
    r"^(training_step|validation_step|test_step|predict_step|forward|configure_optimizers"
    r"|(training|validation|test|predict)_(step_end|epoch_end)|on_\w+)$")

# torch.nn layers whose forward depends on ``training`` (or that hold arbitrary submodules).
MODE_DEPENDENT_LAYERS = re.compile(
    r"^(Dropout\w*|AlphaDropout|FeatureAlphaDropout|BatchNorm\w*|SyncBatchNorm|InstanceNorm\w*"
    r"|LazyBatchNorm\w*|LazyInstanceNorm\w*|RNN|LSTM|GRU|Transformer\w*|MultiheadAttention"
    r"|Sequential|ModuleList|ModuleDict|RNNBase)$")
# Layers whose own mode is the point when called by themselves (drawing dropout masks).
SINGLE_MODE_LAYERS = re.compile(
    r"^(Dropout\w*|AlphaDropout|FeatureAlphaDropout|BatchNorm\w*|SyncBatchNorm|InstanceNorm\w*"
    r"|LazyBatchNorm\w*|LazyInstanceNorm\w*)$")
DROPOUT_LAYERS = re.compile(r"^(Dropout\w*|AlphaDropout|FeatureAlphaDropout)$")
# Containers: mode-dependent only through what they hold.
CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})
# Recurrent layers: mode-dependent only with ``dropout`` > 0 (between stacked layers).
RECURRENT_LAYERS = frozenset({"RNN", "LSTM", "GRU"})
# torchvision.ops layers that read ``self.training`` (the others, RoIAlign, FrozenBatchNorm2d,
# ..., ignore the mode).
TORCHVISION_OPS_MODE_DEPENDENT = frozenset({"StochasticDepth", "DropBlock2d", "DropBlock3d"})
# torch.nn built-ins that never change with the mode (not models by themselves).
MODE_FREE_LAYERS = re.compile(
    r"^(Linear|Bilinear|LazyLinear|Identity|Conv\w*|LazyConv\w*|ConvTranspose\w*|Embedding\w*"
    r"|LayerNorm|GroupNorm|RMSNorm|LocalResponseNorm|\w*Pool\w*|Upsample\w*|PixelShuffle"
    r"|PixelUnshuffle|Flatten|Unflatten|ReLU\w*|LeakyReLU|PReLU|ELU|SELU|CELU|GELU|SiLU|Mish"
    r"|Sigmoid|Tanh|Softmax\w*|LogSoftmax|Softplus|Softsign|Hardtanh|Hardswish|Hardsigmoid"
    r"|Threshold|GLU|LogSigmoid|Tanhshrink|Softshrink|Hardshrink|\w*Pad\w*|Fold|Unfold"
    r"|ChannelShuffle|CosineSimilarity|PairwiseDistance|Parameter\w*|RNNCell|LSTMCell|GRUCell)$")
LOSS = re.compile(r"^\w*Loss$")

FACTORY_TRAIN_MODE = re.compile(
    r"^(torchvision\.models\.([a-z_]+\.)?[a-z]\w*"
    r"|timm\.create_model|timm\.models\.create_model|torch\.hub\.load"
    r"|segmentation_models_pytorch\.\w+)$")
NOT_FACTORIES = frozenset({"torchvision.models.get_weight", "torchvision.models.list_models",
                           "torchvision.models.get_model_weights", "torch.hub.list", "torch.hub.help"})

# ``X.from_pretrained(...)`` returns a model (in eval mode) only for model classes.
PRETRAINED_MODEL_CLASS = re.compile(r"(^AutoModel\w*$|\w+For\w+$|\w*Model$|^PreTrainedModel$)")
PRETRAINED_NOT_MODEL = re.compile(r"(Tokenizer|Processor|Config|FeatureExtractor|ImageProcessor)\w*$")

TORCH_LOAD = frozenset({"torch.load", "torch.jit.load"})
DEEPCOPY = frozenset({"copy.deepcopy"})
# Wrappers that return the same module (or one that shares its ``training`` flag).
MODULE_WRAPPERS = frozenset({
    "torch.nn.DataParallel", "torch.nn.parallel.DataParallel",
    "torch.nn.parallel.DistributedDataParallel", "torch.nn.parallel.DDP",
    "torch.compile", "torch.nn.SyncBatchNorm.convert_sync_batchnorm",
    "torch.distributed.fsdp.FullyShardedDataParallel",
})
# Methods of nn.Module that reach every submodule: a ``train(mode)`` override that loops over one
# of them (``for m in self.children(): m.train(mode)``) or calls ``self.apply(fn)`` sets its children.
MODULE_TREE_METHODS = frozenset({"children", "named_children", "modules", "named_modules", "apply"})
# Methods of nn.Module that return ``self``.
SELF_RETURNING_METHODS = frozenset({"to", "cuda", "cpu", "half", "float", "double", "bfloat16",
                                    "type", "requires_grad_", "share_memory", "to_empty", "apply",
                                    "xpu", "ipu", "mps"})

# -- layers that ignore the model's mode (EL108) -----------------------------------------------
# Functional layers that take the mode as an argument instead of reading a module's ``training``:
# qualified name -> (position, keyword) of that argument, and its default (None: required, so
# every call passes it). The SELU dropouts default to ``training=False``: they never drop
# unless told to; ``batch_norm`` defaults to False too: running statistics, never batch ones.
FUNCTIONAL_MODE_ARGUMENT: dict[str, tuple[int, str, bool | None]] = {
    **{f"torch.nn.functional.{name}": (2, "training", True)
       for name in ("dropout", "dropout1d", "dropout2d", "dropout3d")},
    "torch.nn.functional.alpha_dropout": (2, "training", False),
    "torch.nn.functional.feature_alpha_dropout": (2, "training", False),
    "torch.nn.functional.batch_norm": (5, "training", False),
    **{f"torch.{name}": (2, "train", None)
       for name in ("dropout", "alpha_dropout", "feature_dropout", "feature_alpha_dropout")},
}
# (position, keyword) of the drop probability of the functional dropouts: a literal 0 drops nothing.
FUNCTIONAL_DROPOUT_RATE = (1, "p")
# (position, keyword) of ``batch_norm``'s running statistics: without them (both ``None``) the
# batch statistics are the only ones, whatever the mode.
BATCH_NORM_RUNNING_STATS = ((1, "running_mean"), (2, "running_var"))
# torch.nn layers that change with the mode by themselves (a layer built inside ``forward`` never
# sees ``model.eval()``). BatchNorm without running statistics and InstanceNorm without them (its
# default) behave the same in both modes; a dropout with ``p=0`` drops nothing.
BATCH_NORM_LAYERS = re.compile(r"^(BatchNorm[123]d|LazyBatchNorm[123]d|SyncBatchNorm)$")
INSTANCE_NORM_LAYERS = re.compile(r"^(InstanceNorm[123]d|LazyInstanceNorm[123]d)$")
# Names of a flag that is true only while training (``if self.training:``, ``if is_training:``),
# and of one that is false while training (``if not deterministic:``, ``if not self.is_eval:``).
TRAINING_FLAG = re.compile(r"^(is_|in_)?train(ing)?(_mode)?$")
EVALUATION_FLAG = re.compile(r"^(is_|in_)?(eval(uation|uating)?|infer(ence|ring)?|test(ing)?|predict(ing)?"
                             r"|deterministic)(_mode)?$")
# Methods that run only while training (``forward_train``, ``training_step``, ``_train_forward``).
TRAINING_ONLY_METHOD = re.compile(r"(^|_)train(ing)?(_|$)")
# Classes and methods that keep dropout on at inference on purpose (Monte Carlo dropout, Bayesian
# approximations, uncertainty estimates).
ALWAYS_ON_DROPOUT = re.compile(r"(^|_)(mc|MC|Mc)(_|[A-Z]|$)|[Mm]onte_?[Cc]arlo|[Bb]ayes|[Uu]ncertain")

# -- optimizers, schedulers, backward -------------------------------------------------------
OPTIMIZER_PREFIXES = ("torch.optim.", "apex.optimizers.", "bitsandbytes.optim.", "timm.optim.",
                      "transformers.AdamW", "transformers.Adafactor", "torch_optimizer.")
SCHEDULER_PREFIXES = ("torch.optim.lr_scheduler.", "transformers.get_", "transformers.optimization.get_",
                      "timm.scheduler.")
OPTIMIZER_NAME = re.compile(r"(^|_)(opt|optim|optimizer|optimiser)s?(_|\d|$)|optimizer|optimiser",
                            re.IGNORECASE)
# Objects built from a model's parameters that are not optimizers (weight averages, clipping norms).
NOT_OPTIMIZER_NAME = re.compile(r"ema|average|swa|norm|clip|count|num|size|sched", re.IGNORECASE)
SCHEDULER_NAME = re.compile(r"sched|lr_|warmup|swa", re.IGNORECASE)
GRAD_SCALERS = frozenset({"torch.cuda.amp.GradScaler", "torch.amp.GradScaler",
                          "torch.cpu.amp.GradScaler", "torch.GradScaler"})
SCALER_NAME = re.compile(r"scaler", re.IGNORECASE)

# -- objects built from framework classes are never models ----------------------------------
FRAMEWORK_OBJECTS = re.compile(
    r"^(transformers\.(\w+\.)*\w*Trainer|transformers\.TrainingArguments|trl\.\w+"
    r"|pytorch_lightning\.Trainer|lightning\.(pytorch\.)?Trainer|lightning\.Fabric"
    r"|ignite\.engine\.\w+|accelerate\.Accelerator|xgboost\.\w+|lightgbm\.\w+|gensim\.\w+"
    r"|sklearn\.\w+|gym\.\w+|gymnasium\.\w+|keras\.\w+|tensorflow\.\w+"
    r"|ultralytics\.(\w+\.)*(YOLO\w*|SAM|FastSAM|RTDETR|NAS)$|ultralytics\.engine\.model\.Model$)")
# Project classes of a framework linted as the project itself, by their module path: objects
# whose calls set eval mode themselves (Ultralytics' ``Model``: ``YOLO``, ``SAM``, ``RTDETR``).
FRAMEWORK_MANAGED_CLASSES = frozenset({"ultralytics.engine.model.Model"})


def last_part(qualified: str) -> str:
    return qualified.rpartition(".")[2]


def is_torch_nn_class(qualified: str) -> bool:
    return qualified.startswith(("torch.nn.", "nn.")) and qualified.count(".") <= 3 \
        and last_part(qualified)[:1].isupper() and not qualified.startswith("torch.nn.functional")


def nn_layer_is_model(qualified: str) -> bool | None:
    """For a ``torch.nn`` class: True if mode-dependent, False if mode-free, None if unknown."""
    name = last_part(qualified)
    if MODE_DEPENDENT_LAYERS.match(name):
        return True
    if MODE_FREE_LAYERS.match(name) or LOSS.match(name) or name in ("Module",):
        return False
    return None
