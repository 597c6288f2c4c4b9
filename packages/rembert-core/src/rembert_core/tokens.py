"""Special tokens of RemBERT, shared by the tokenizers and the models."""

from __future__ import annotations

__all__ = ["CLS_TOKEN", "MASK_TOKEN", "PAD_TOKEN", "SEP_TOKEN", "SPECIAL_TOKENS", "UNK_TOKEN"]

CLS_TOKEN = "[CLS]"  # starts every sequence; also the bos token (id 312 in google/rembert)
SEP_TOKEN = "[SEP]"  # ends each segment; also the eos token (id 313 in google/rembert)
PAD_TOKEN = "[PAD]"  # padding (id 0)
UNK_TOKEN = "[UNK]"  # unknown pieces
MASK_TOKEN = "[MASK]"  # masked-LM target; strips the space on its left (lstrip)

#: Reference special-token attributes (``transformers`` names) and their values.
SPECIAL_TOKENS = {
    "bos_token": CLS_TOKEN,
    "eos_token": SEP_TOKEN,
    "unk_token": UNK_TOKEN,
    "sep_token": SEP_TOKEN,
    "pad_token": PAD_TOKEN,
    "cls_token": CLS_TOKEN,
    "mask_token": MASK_TOKEN,
}
