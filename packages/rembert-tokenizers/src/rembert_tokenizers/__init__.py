"""rembert-tokenizers: RemBERT tokenizers with the reference API and ids, without torch or TensorFlow.

* :class:`RemBertTokenizer` runs ``sentencepiece`` (the reference slow tokenizer's ids);
* :class:`RemBertTokenizerFast` runs HF ``tokenizers`` and gives the same ids, faster on batches.

Example::

    from rembert_tokenizers import RemBertTokenizerFast

    tok = RemBertTokenizerFast("sentencepiece.model")
    tok(["Hello world", "Hi"], padding=True, return_tensors="np")["input_ids"]
"""

from __future__ import annotations

from importlib import metadata

from rembert_tokenizers.base import AddedToken
from rembert_tokenizers.encoding import BatchEncoding
from rembert_tokenizers.fast import RemBertTokenizerFast
from rembert_tokenizers.slow import RemBertTokenizer

try:
    __version__ = metadata.version("rembert-tokenizers")
except metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["AddedToken", "BatchEncoding", "RemBertTokenizer", "RemBertTokenizerFast", "__version__"]
