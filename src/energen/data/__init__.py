"""Data: built-in toys and digits, arrays and image folders, VAE latents, and sample I/O in the data's layout."""

from .datasets import BUILTIN, array_dataset, load_dataset
from .info import DataInfo, Dataset
from .samples import read_mask, read_samples, write_samples

__all__ = ["BUILTIN", "DataInfo", "Dataset", "array_dataset", "load_dataset", "read_mask", "read_samples",
           "write_samples"]  # fmt: skip
