"""Gemma 3 on the CPU, from Python: the gemma3 C++ library's model, tokenizer, sessions and
observers, with numpy arrays in and out. See docs/python.md."""

from ._gemma3 import (  # noqa: F401
    ConfigError,
    Error,
    FormatError,
    Generation,
    InvalidArgument,
    IoError,
    Model,
    Session,
    TensorError,
    Tokenizer,
    active_isa,
    keep_freed_memory,
)

__all__ = [
    "ConfigError",
    "Error",
    "FormatError",
    "Generation",
    "InvalidArgument",
    "IoError",
    "Model",
    "Session",
    "TensorError",
    "Tokenizer",
    "active_isa",
    "keep_freed_memory",
]
