"""The package works with torch and TensorFlow blocked, and registers through the core plugin hook."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_imports_and_works_without_torch_and_tensorflow(en_model):
    result = _run(
        f"""
        import sys
        sys.modules["torch"] = None
        sys.modules["tensorflow"] = None
        import rembert_tokenizers
        from rembert_core import InputError
        for cls in (rembert_tokenizers.RemBertTokenizer, rembert_tokenizers.RemBertTokenizerFast):
            tok = cls({str(en_model)!r})
            out = tok(["Hello world", "Hi"], padding=True, return_tensors="np")
            assert out["input_ids"].shape[0] == 2
            for name in ("pt", "tf"):
                try:
                    tok("Hello", return_tensors=name)
                except InputError as exc:
                    assert "not installed" in str(exc), exc
                else:
                    raise AssertionError("expected an InputError for " + name)
        assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_plugin_module_is_lazy():
    result = _run(
        """
        import sys
        import rembert_tokenizers.plugin
        heavy = [m for m in ("sentencepiece", "tokenizers", "torch", "tensorflow") if m in sys.modules]
        assert not heavy, heavy
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr


def test_registered_through_the_core_hook(monkeypatch):
    from rembert_core import plugins

    # Only our entry point: other installed plugins are not this package's concern here.
    monkeypatch.setenv("REMBERT_PLUGINS", "tokenizers")
    monkeypatch.setenv("REMBERT_STRICT_PLUGINS", "1")
    monkeypatch.delenv("REMBERT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    plugins.reset_plugins()
    try:
        registry = plugins.get_registry()
        slow = plugins.get_tokenizer("sentencepiece")
        fast = plugins.get_tokenizer("fast")
        assert slow.kind == "slow"
        assert fast.kind == "fast"
        assert slow.distribution == fast.distribution == "rembert-tokenizers"
        import rembert_tokenizers

        assert slow.load() is rembert_tokenizers.RemBertTokenizer
        assert fast.load() is rembert_tokenizers.RemBertTokenizerFast
        record = next(p for p in registry.plugins if p.name == "tokenizers")
        assert record.status == "loaded"
        assert sorted(record.tokenizers) == ["fast", "sentencepiece"]
    finally:
        plugins.reset_plugins()


def test_plugin_hook_registers_two_specs():
    from rembert_tokenizers import plugin

    seen = []
    plugin.register_tokenizers(seen.append)
    assert [s.name for s in seen] == ["sentencepiece", "fast"]
    assert [s.import_path for s in seen] == [
        "rembert_tokenizers:RemBertTokenizer",
        "rembert_tokenizers:RemBertTokenizerFast",
    ]


@pytest.mark.parametrize("module", ["rembert_tokenizers.slow", "rembert_tokenizers.fast", "rembert_tokenizers.base"])
def test_modules_do_not_import_frameworks(module):
    result = _run(
        f"""
        import sys
        import {module}
        assert "torch" not in sys.modules and "tensorflow" not in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr
