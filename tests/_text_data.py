"""A tiny random BERT (config, WordPiece vocabulary and weights written here; nothing downloaded)
and small labelled text sets for the text tests: three topics, each text a few of its topic's
words among shared filler words, so a small model separates them after a few steps."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

TOPICS = {
    "food": ["bread", "soup", "cake", "taste", "cook", "salt"],
    "sports": ["goal", "match", "team", "score", "coach", "ball"],
    "tech": ["code", "chip", "data", "cloud", "robot", "phone"],
}
FILLER = ["the", "a", "is", "very", "and", "with", "today", "new", "good", "we"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_bert(folder: Path, seed: int = 0, hidden: int = 32, layers: int = 2, dropout: float = 0.1) -> Path:
    """Write a random BERT (hidden 32, 2 layers, ``dropout`` in its hidden states and attention, as
    BERT's default) and its WordPiece tokenizer into ``folder``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    words = sorted({w for ws in TOPICS.values() for w in ws} | set(FILLER))
    vocab.write_text("\n".join(SPECIAL + words) + "\n")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(SPECIAL) + len(words), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=64,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    BertModel(config).save_pretrained(folder)
    BertTokenizerFast(str(vocab)).save_pretrained(folder)  # positional: vocab_file (4.x) / vocab (5.x)
    return folder


def sentence_transformers_folder(folder: Path, pooling: str = "cls", in_root: bool = False) -> Path:
    """A sentence-transformers folder by hand: the model in ``0_Transformer/`` (or the root), the
    pooling in ``1_Pooling/config.json`` (legacy boolean keys) and a Normalize module."""
    model_dir = folder if in_root else folder / "0_Transformer"
    tiny_bert(model_dir)
    modules = [{"idx": 0, "name": "0", "path": "" if in_root else "0_Transformer",
                "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "2_Normalize").mkdir()  # the Normalize module has no files
    flags = {f"pooling_mode_{m}": m == {"cls": "cls_token", "mean": "mean_tokens", "max": "max_tokens"}[pooling]
             for m in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens")}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **flags}))
    return folder


def items(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (text, topic) pairs, topics in turn."""
    rng = random.Random(seed)
    names = sorted(TOPICS)
    out = []
    for i in range(n):
        topic = names[i % len(names)]
        words = rng.sample(TOPICS[topic], 3) + rng.sample(FILLER, 3)
        rng.shuffle(words)
        out.append((" ".join(words), topic))
    return out


def write_csv(path: Path, rows: list[tuple[str, object]], header: tuple[str, str] = ("text", "label")) -> Path:
    """Rows as a CSV with a header row."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def csv_folder(folder: Path, n_train: int = 60, n_test: int = 30) -> Path:
    """``train.csv`` and ``test.csv`` of topic texts."""
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "train.csv", items(n_train, seed=0))
    write_csv(folder / "test.csv", items(n_test, seed=1))
    return folder
