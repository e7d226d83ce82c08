"""Datasets: decoding images, the decoded-image cache, class mappings, loading a folder or
manifest, the embedded synthetic set, public sets and their download.

Entry points: ``load_dataset(source, classes, on_bad_image) -> Dataset``, ``resolve_source``
(the ``data_dir`` parameter), ``describe``, ``read_image``, ``synth.generate``, ``fetch.fetch``.
"""
from .dataset import Dataset, DatasetError, Item, check, describe, load_dataset, resolve_source
from .images import BadImageError, read_image

__all__ = ["Dataset", "DatasetError", "Item", "check", "describe", "load_dataset", "resolve_source",
           "BadImageError", "read_image"]
