"""Fixtures of the rembert-tokenizers tests: the SentencePiece fixture models and corpora, derived models,
the adversarial text set, and tokenizer factories (shared here; test modules never import each other)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "sentencepiece"

#: (model file, corpus file) of the two real corpora.
CORPORA = {
    "en": ("test_model.model", "botchan.txt"),
    "ja": ("test_ja_model.model", "wagahaiwa_nekodearu.txt"),
}

#: Text that breaks naive SentencePiece -> tokenizers conversions (see rembert_tokenizers.convert).
ADVERSARIAL = [
    "",
    " ",
    "   ",
    "  leading and trailing  ",
    "runs   of    ascii     spaces",
    "\u3000",
    "\u3000\u3000",
    "全角\u3000\u3000スペース\u3000の\u3000\u3000\u3000連続\u3000",
    "\u3000\u3000leading ideographic",
    "ｶﾞｷﾞｸﾞ ﾊﾟﾋﾟ ｳﾞ ﾞ ﾟ",
    "ﾊﾝｶｸｶﾀｶﾅ\uff9e\uff9f",
    unicodedata.normalize("NFD", "한국어 텍스트입니다"),
    unicodedata.normalize("NFC", "한국어 텍스트입니다"),
    "\u1100\u1161\u11a8\u1100\u1161",
    "e\u0301 a\u0308 o\u0302\u0301 \u0301lone combining",
    "Cafe\u0301 naïve résumé",
    "tabs\tand\nnewlines\r\nand\rcarriage returns",
    "\t\n\r",
    "zero\u200dwidth\u200bjoiner\u200c\ufeff",
    "family 👨\u200d👩\u200d👧\u200d👦 flags 🇯🇵🇫🇷 skin 👍🏽 keycap 1\ufe0f\u20e3",
    "שלום עולם",
    "مرحبا بالعالم",
    "mixed עברית and English",
    "control\x00chars\x01\x1f\x7f\x85here\x1c",
    "ligatures ﬁ ﬂ ½ ① ㍿ ™ ²",
    "▁literal ▁▁ meta ▁",
    "▁",
    "[MASK]",
    " [MASK] ",
    "a[MASK]b",
    "x \u3000[MASK]\u3000y",
    "[CLS][SEP][PAD][UNK]",
    "［CLS］ fullwidth brackets",
    "Hello [SEP] world",
    "\u2028\u2029\u00a0\u2009nbsp and thin",
    "ǅ Σ ΣΑΣ ΟΔΟΣ İstanbul ß",
    "😀😀😀",
    "吾輩は猫である。名前はまだ無い。",
    "<s> </s> <unk> <pad>",
    "a" * 300,
]


def _corpus_lines(name: str) -> list[str]:
    text = (FIXTURES / CORPORA[name][1]).read_text(encoding="utf-8")
    return text.split("\n")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The folder with the SentencePiece fixture models and corpora."""
    return FIXTURES


@pytest.fixture(scope="session")
def en_model() -> Path:
    """The English SentencePiece model (trained on botchan.txt)."""
    return FIXTURES / "test_model.model"


@pytest.fixture(scope="session")
def ja_model() -> Path:
    """The Japanese SentencePiece model (trained on wagahaiwa_nekodearu.txt)."""
    return FIXTURES / "test_ja_model.model"


@pytest.fixture(scope="session")
def corpus() -> Callable[[str], list[str]]:
    """corpus("en" | "ja") -> every line of the corpus."""
    cache: dict[str, list[str]] = {}

    def load(name: str) -> list[str]:
        if name not in cache:
            cache[name] = _corpus_lines(name)
        return cache[name]

    return load


@pytest.fixture(scope="session")
def adversarial() -> list[str]:
    """The adversarial text set."""
    return list(ADVERSARIAL)


@pytest.fixture(scope="session")
def tokenizers_for() -> Callable[..., tuple[Any, Any]]:
    """tokenizers_for(model_path, **options) -> (RemBertTokenizer, RemBertTokenizerFast), cached."""
    from rembert_tokenizers import RemBertTokenizer, RemBertTokenizerFast

    cache: dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[Any, Any]] = {}

    def make(model: Path, **options: Any) -> tuple[Any, Any]:
        key = (str(model), tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = (RemBertTokenizer(model, **options), RemBertTokenizerFast(model, **options))
        return cache[key]

    return make


@pytest.fixture(scope="session")
def reference_slow() -> Callable[..., Any]:
    """reference_slow(model_path, **options) -> transformers' RemBertTokenizer (oracle tests only), cached."""
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    cache: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}

    def make(model: Path, **options: Any) -> Any:
        key = (str(model), tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = transformers.RemBertTokenizer(str(model), **options)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def reference_fast() -> Callable[..., Any]:
    """reference_fast(model_path, **options) -> transformers' RemBertTokenizerFast with our defaults (do_lower_case
    False, keep_accents True, [UNK]/[PAD]), converted from the SentencePiece model (oracle tests only), cached."""
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    cache: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}

    def make(model: Path, **options: Any) -> Any:
        key = (str(model), tuple(sorted(options.items())))
        if key not in cache:
            defaults = {"do_lower_case": False, "keep_accents": True, "unk_token": "[UNK]", "pad_token": "[PAD]"}
            cache[key] = transformers.RemBertTokenizerFast(str(model), **{**defaults, **options})
        return cache[key]

    return make


def _derive(source: Path, target: Path, edit: Callable[[Any], None]) -> Path:
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(source.read_bytes())
    edit(model)
    target.write_bytes(model.SerializeToString())
    return target


@pytest.fixture(scope="session")
def derived_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Models derived from the English one: identity normalization; [CLS]/[SEP] in the vocab (control or
    user-defined pieces at ids 312/313, as in google/rembert); no whitespace cleanup."""
    folder = tmp_path_factory.mktemp("derived_models")
    source = FIXTURES / "test_model.model"

    def identity(model: Any) -> None:
        model.normalizer_spec.name = "identity"
        model.normalizer_spec.precompiled_charsmap = b""

    def specials(kind: int) -> Callable[[Any], None]:
        def edit(model: Any) -> None:
            for index, piece in ((312, "[CLS]"), (313, "[SEP]")):
                model.pieces[index].piece = piece
                model.pieces[index].type = kind
                model.pieces[index].score = 0.0

        return edit

    def keep_spaces(model: Any) -> None:
        model.normalizer_spec.remove_extra_whitespaces = False

    # A custom charsmap with ASCII rules (A -> a), a multi-character rule (ab -> z) and U+3000 -> space:
    # exercises the paths a pure-NFKC charsmap never takes (no ASCII shortcut in the fast tokenizer).
    rules = folder / "rules.tsv"
    rules.write_text("41\t61\n61 62\t7A\n3000\t20\n", encoding="utf-8")
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    custom_spec = sentencepiece_model_pb2.NormalizerSpec()
    custom_spec.ParseFromString(sentencepiece.SentencePieceNormalizer(rule_tsv=str(rules)).serialized_normalizer_spec())

    def custom_rules(model: Any) -> None:
        model.normalizer_spec.name = "user_defined"
        model.normalizer_spec.precompiled_charsmap = custom_spec.precompiled_charsmap

    return {
        "identity": _derive(source, folder / "identity.model", identity),
        "specials_control": _derive(source, folder / "specials_control.model", specials(3)),
        "specials_user": _derive(source, folder / "specials_user.model", specials(4)),
        "keep_spaces": _derive(source, folder / "keep_spaces.model", keep_spaces),
        "custom_rules": _derive(source, folder / "custom_rules.model", custom_rules),
    }
