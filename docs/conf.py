"""Sphinx configuration of the rembert documentation (built by ``nox -s docs`` with warnings as errors)."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "rembert"
author = "The rembert authors"
copyright = "the rembert authors, Apache-2.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "rembert_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "_data", "bench", "tests", "Thumbs.db", ".DS_Store"]  # bench/: included

# -- MyST ----------------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- autodoc -------------------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_class_signature = "separated"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# Type hints name framework classes Sphinx cannot resolve to a page of ours (torch.Tensor, tf.Tensor,
# keras layers, private aliases); nitpicky mode stays on for everything else.
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|tf|tensorflow|keras|np|numpy|os|collections\.abc|typing)\..*"),
    (r"py:.*", r"(Tensor|Any|Sequence|Mapping|Callable|PathLike|ClassVar|LayerPast|PastKeyValues|ModuleT)"),
    (r"py:.*", r"(Embedding|Linear|TensorSpec|AddedToken|_Sequence|_Row)"),
    # Standard library and private helpers: no intersphinx (the docs build offline), no pages of their own.
    (r"py:.*", r"pathlib\.Path"),
    (r"py:class", r"rembert_tf\.(kernels\.(Embedding|Linear)|modeling\._TFRemBertLMBase)"),
    (r"py:class", r"rembert_tokenizers\.base\.RemBertTokenizerBase"),
    (r"py:class", r"rembert_torch\.quantization\.ModuleT"),  # quantize's TypeVar (the model class it returns)
    (r"py:attr", r"task"),
    (r"py:class", r"special"),  # "special tokens" in a Google-style argument list read as a type
]

# -- HTML ----------------------------------------------------------------------------------------
html_theme = "furo"
html_title = "rembert"
html_static_path: list[str] = []

# -- rembert_docs (docs/_ext/rembert_docs.py) ---------------------------------------------------
rembert_bench_json = "_data/bench.json"
