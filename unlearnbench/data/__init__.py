"""Data as tensors: images and loaders (``tensors``), the dataset contract, streaming from disk, and forget/retain splits."""
