"""Splitting text on added tokens with the reference slow tokenizer's exact matching semantics.

The reference matches added tokens with a character trie that scans left to right,
keeps every partial match alive, and when one completes looks ahead for the longest
match among those that started at or before it. With tokens that share prefixes or
overlap (``"aba"`` and ``"b"`` in ``"babca"``) this differs from a leftmost-longest
regex, so both tokenizers use this scan whenever a text contains any added token (a
regex search decides that first: the scan never finds a token the regex does not).
"""

from __future__ import annotations

from typing import Any

__all__ = ["TokenTrie"]

_END = ""  # key marking the end of a token in a trie node


class TokenTrie:
    """A character trie of added-token texts with :meth:`split`.

    Example::

        trie = TokenTrie(["[CLS]", "[SEP]"])
        trie.split("[CLS] hello [SEP]")  # ['[CLS]', ' hello ', '[SEP]']
    """

    def __init__(self, tokens: list[str] | None = None) -> None:
        self._root: dict[str, Any] = {}
        for token in tokens or ():
            self.add(token)

    def add(self, token: str) -> None:
        """Add one token text (the empty string is ignored)."""
        if not token:
            return
        node = self._root
        for char in token:
            node = node.setdefault(char, {})
        node[_END] = True

    def split(self, text: str) -> list[str]:
        """``text`` cut at the boundaries of the tokens found, the tokens being parts of their own."""
        cuts = [0]
        live: dict[int, dict[str, Any]] = {}  # start position -> trie node reached so far (insertion ordered)
        skip = 0
        for current, char in enumerate(text):
            if skip and current < skip:
                continue
            finished = set()
            reset = False
            for start, node in live.items():
                if _END in node:
                    # A token ended before `current`: take the longest match among the partial matches that
                    # started at or before it.
                    start, end, skip = self._longest(text, live, start, current, skip)
                    cuts += [start, end]
                    reset = True
                    break
                if char in node:
                    live[start] = node[char]
                else:
                    finished.add(start)
            if reset:
                live = {}
            else:
                for start in finished:
                    del live[start]
            if current >= skip and char in self._root:
                live[current] = self._root[char]
        for start, node in live.items():
            if _END in node:
                cuts += [start, len(text)]
                break
        return self._cut(text, cuts)

    @staticmethod
    def _longest(
        text: str, live: dict[int, dict[str, Any]], start: int, current: int, skip: int
    ) -> tuple[int, int, int]:
        end = current
        for look_start, look_node in live.items():
            if look_start > start:
                break
            index = current + 1 if look_start < start else current
            end = index
            next_char = text[index] if index < len(text) else None
            if _END in look_node:
                start, end, skip = look_start, index, index
            while next_char is not None and next_char in look_node:
                look_node = look_node[next_char]
                index += 1
                if _END in look_node:
                    start, end, skip = look_start, index, index
                if index == len(text):
                    break
                next_char = text[index]
        return start, end, skip

    @staticmethod
    def _cut(text: str, cuts: list[int]) -> list[str]:
        cuts.append(len(text))
        parts = []
        start = 0
        for end in cuts:
            if start >= end:  # overlapping or empty span: nothing to emit
                continue
            parts.append(text[start:end])
            start = end
        return parts
