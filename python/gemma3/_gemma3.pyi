# Typing stubs of the compiled module (python/gemma3_module.cpp); docs/python.md describes the API.
import os
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, TypedDict, Union

import numpy as np
import numpy.typing as npt

IdsLike = Union[Sequence[int], npt.NDArray[np.integer[Any]]]
ImageLike = Union[str, os.PathLike[str], npt.NDArray[np.uint8]]
SiteInfo = TypedDict("SiteInfo", {"pos0": int, "heads": int, "key0": int, "image": int})
EditFn = Callable[[npt.NDArray[Any], SiteInfo], Union[npt.NDArray[Any], None]]

class Error(RuntimeError): ...
class InvalidArgument(Error, ValueError): ...
class IoError(Error, OSError): ...
class FormatError(Error): ...
class ConfigError(Error): ...
class TensorError(Error): ...

class ForwardResult(TypedDict):
    logits: npt.NDArray[Any]
    captured: dict[str, Union[npt.NDArray[Any], list[npt.NDArray[Any]]]]

class TokenScore(TypedDict):
    id: int
    position: int
    logprob: float
    rank: int
    top: list[tuple[int, float]]

class ContinuationScore(TypedDict):
    ids: list[int]
    first: int
    boundary_merged: bool
    logprob: float
    tokens: list[TokenScore]

class Token(TypedDict):
    id: int
    logprob: float
    top: list[tuple[int, float]]

class GenerateResult(TypedDict):
    ids: list[int]
    text: str
    reason: str
    prefill_tokens: int
    prefill_seconds: float
    decode_seconds: float
    time_to_first_token: float

class Tokenizer:
    def __init__(self, path: Union[str, os.PathLike[str]]) -> None: ...
    def encode(self, text: str, *, add_bos: bool = False, parse_special: bool = False) -> list[int]: ...
    def decode(self, ids: IdsLike, *, skip_special: bool = False) -> str: ...
    def piece(self, id: int) -> str: ...
    def id_of(self, piece: str) -> int: ...
    def render_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        mm_tokens_per_image: int = 256,
    ) -> list[int]: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def bos(self) -> int: ...
    @property
    def eos(self) -> int: ...
    @property
    def end_of_turn(self) -> int: ...
    @property
    def path(self) -> str: ...

class Model:
    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        *,
        dtype: str = "float32",
        backend: str = "fast",
        huge_pages: bool = False,
        mmproj: Optional[Union[str, os.PathLike[str]]] = None,
    ) -> None: ...
    @property
    def dtype(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def has_vision(self) -> bool: ...
    @property
    def image_token_id(self) -> int: ...
    @property
    def mm_tokens_per_image(self) -> int: ...
    def forward(
        self,
        ids: IdsLike,
        *,
        images: Union[Sequence[ImageLike], None] = None,
        capture: Union[Sequence[str], str, None] = None,
        edits: Union[Mapping[str, EditFn], None] = None,
        logits: Union[str, Sequence[int]] = "all",
    ) -> ForwardResult: ...
    def encode_image(self, image: ImageLike) -> list[npt.NDArray[Any]]: ...
    def score(self, ids: IdsLike, *, first: int = 1, top: int = 0) -> list[TokenScore]: ...
    def score_text(
        self,
        tokenizer: Tokenizer,
        prompt: str,
        continuation: str,
        *,
        add_bos: bool = True,
        top: int = 0,
    ) -> ContinuationScore: ...

class Generation(Iterator[Token]):
    def __iter__(self) -> "Generation": ...
    def __next__(self) -> Token: ...
    @property
    def result(self) -> Union[GenerateResult, None]: ...
    def close(self) -> None: ...

class Session:
    def __init__(
        self,
        model: Model,
        tokenizer: Tokenizer,
        *,
        context: int = 4096,
        temperature: float = 1.0,
        top_k: int = 64,
        top_p: float = 0.95,
        min_p: float = 0.0,
        repetition_penalty: float = 1.0,
        seed: int = 0,
        top_logprobs: int = 0,
    ) -> None: ...
    def generate(
        self,
        ids: IdsLike,
        *,
        max_new_tokens: int = 512,
        images: Union[Sequence[ImageLike], None] = None,
        stop: Sequence[str] = (),
    ) -> Generation: ...
    def chat(
        self,
        text: str,
        *,
        max_new_tokens: int = 512,
        images: Union[Sequence[ImageLike], None] = None,
        stop: Sequence[str] = (),
    ) -> Generation: ...
    def reset(self) -> None: ...
    @property
    def tokens(self) -> list[int]: ...
    @property
    def context(self) -> int: ...
    @property
    def image_cache_stats(self) -> tuple[int, int]: ...

def active_isa() -> str: ...
def keep_freed_memory() -> bool: ...
