"""unlearnbench: a benchmark suite for machine unlearning, built around "Model Sparsity Can
Simplify Machine Unlearning" (Jia, Liu et al., NeurIPS 2023)."""

from .components import DATASETS, MODELS, PRUNERS, UNLEARNERS, build_model
from .data.tensors import Augment, DeviceLoader, ImageData, Normalize
from .data.dataset import Dataset, LoadedDataset
from .errors import (ConfigError, CorruptFileError, DataNotFoundError, DuplicateNameError,
                     PluginLoadError, UnknownNameError, UnlearnbenchError)
from .train.masks import Mask, prunable_weights
from .params import Configurable, param
from .pruner import Pruner, PruningTask
from .train.loop import TrainRecipe, cross_entropy, fit
from .unlearner import Unlearner, UnlearnerTags, UnlearningTask

__all__ = [
    "DATASETS", "MODELS", "PRUNERS", "UNLEARNERS", "Augment", "ConfigError", "Configurable",
    "CorruptFileError", "DataNotFoundError", "Dataset", "DeviceLoader", "DuplicateNameError",
    "ImageData", "LoadedDataset", "Mask", "Normalize", "PluginLoadError", "Pruner", "PruningTask",
    "TrainRecipe", "UnknownNameError", "Unlearner", "UnlearnerTags", "UnlearnbenchError", "UnlearningTask",
    "build_model", "cross_entropy", "fit", "param", "prunable_weights",
]
