"""Text encoders from Hugging Face transformers: ``transformers:<folder>``.

The folder holds a model saved with ``save_pretrained`` (``config.json``, the weights and the
tokenizer files) or a sentence-transformers model (``modules.json`` names the transformer's folder,
the root or ``0_Transformer/``, and its pooling in ``1_Pooling/config.json``). The encoder maps a
list of B strings to ``[B, F]``: it tokenises them with the folder's tokenizer (padded, truncated
to ``max_length`` tokens), runs the model and pools its token states with the folder's pooling
(``cls``, ``mean``, ``max`` or ``mean_sqrt_len``; masked mean pooling when the folder names none),
L2-normalised when the sentence-transformers folder lists a ``Normalize`` module.

Nothing is downloaded: the folder is read with ``local_files_only=True``, and a name with no folder
is an error that says where to put one. The encoder writes what rebuilds it without the original
folder (tokenizer files, model config, pooling) with :meth:`TextEncoder.export_files`;
:func:`supcon.load_encoder` reads them back with the saved weights.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_int
from ..config import TEXT_ENCODER_PREFIX, is_text_encoder

POOLINGS = ("cls", "mean", "max", "mean_sqrt_len")
DEFAULT_MAX_LENGTH = 128
# sentence-transformers' names of its pooling modes (legacy boolean keys and the newer pooling_mode)
_ST_POOLING = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean",
               "pooling_mode_max_tokens": "max", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
               "mean_sqrt_len_tokens": "mean_sqrt_len"}
# files a tokenizer is read from (tokenizer_config.json alone holds no vocabulary)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")
POOLING_DIR = "1_Pooling"
__all__ = ["POOLINGS", "TextEncoder", "adopt_text_encoder", "create_text_encoder", "is_text_encoder", "pool"]


class TextEncoder(nn.Module):
    """A transformers model with its tokenizer and pooling: ``list of B strings -> [B, num_features]``.

    Args:
        model: the transformers model (token states in ``last_hidden_state``).
        tokenizer: its tokenizer.
        pooling: one of ``POOLINGS``.
        max_length: texts are truncated to this many tokens.
        normalize: L2-normalise the pooled vector.

    In train mode the model's dropout is active, so encoding a text twice gives two views of it.
    """

    modality = "text"

    def __init__(self, model: nn.Module, tokenizer: Any, pooling: str = "mean",
                 max_length: int = DEFAULT_MAX_LENGTH, normalize: bool = False) -> None:
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        self.pooling, self.max_length, self.normalize = pooling, max_length, normalize
        self.num_features = int(model.config.hidden_size)

    def forward(self, texts: Sequence[str]) -> Tensor:
        """``B`` strings -> ``[B, num_features]``.

        Raises:
            ValueError: ``texts`` is not a non-empty sequence of strings.
        """
        if isinstance(texts, str) or not len(texts) or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"a text encoder reads a list of strings, got {_describe(texts)}")
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt")
        tokens = {k: v.to(device) for k, v in tokens.items()}
        states = self.model(**tokens).last_hidden_state  # [B, L, H]
        pooled = pool(states, tokens["attention_mask"], self.pooling)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled

    def export_files(self, folder: str | Path) -> None:
        """Write the tokenizer, the model's config and the pooling into ``folder`` (a
        sentence-transformers layout without weights): with the saved weights they rebuild it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(folder))
        self.model.config.save_pretrained(str(folder))
        modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": POOLING_DIR, "type": "sentence_transformers.models.Pooling"}]
        if self.normalize:
            modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                            "type": "sentence_transformers.models.Normalize"})
        (folder / "modules.json").write_text(json.dumps(modules, indent=2))
        (folder / POOLING_DIR).mkdir(exist_ok=True)
        flags = {key: self.pooling == mode for key, mode in _ST_POOLING.items() if key.startswith("pooling_mode")}
        (folder / POOLING_DIR / "config.json").write_text(
            json.dumps({"word_embedding_dimension": self.num_features, **flags}, indent=2))


def pool(states: Tensor, mask: Tensor, pooling: str) -> Tensor:
    """Pool token states ``[B, L, H]`` over the tokens ``mask`` ``[B, L]`` keeps -> ``[B, H]``.

    Raises:
        ValueError: an unknown ``pooling``.
    """
    if pooling == "cls":
        return states[:, 0]
    keep = mask.unsqueeze(-1).to(states.dtype)  # [B, L, 1]
    if pooling == "max":
        return states.masked_fill(keep == 0, torch.finfo(states.dtype).min).amax(dim=1)
    total, count = (states * keep).sum(dim=1), keep.sum(dim=1).clamp_min(1.0)
    if pooling == "mean":
        return total / count
    if pooling == "mean_sqrt_len":
        return total / count.sqrt()
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


def create_text_encoder(name: str, *, max_length: int = DEFAULT_MAX_LENGTH, pooling: str | None = None,
                        normalize: bool | None = None, pretrained: bool = True) -> TextEncoder:
    """The ``transformers:<folder>`` encoder (see the module docstring).

    Args:
        name: ``transformers:`` and the path of a local folder.
        max_length: truncate texts to this many tokens.
        pooling: one of ``POOLINGS``; None: the folder's (sentence-transformers), else ``mean``.
        normalize: L2-normalise the output; None: as the folder says (a ``Normalize`` module).
        pretrained: load the folder's weights; False builds the model from its config with
            random weights (what :func:`supcon.load_encoder` fills with the saved ones).

    Raises:
        ValueError: transformers not installed, no such folder (nothing is downloaded), no
            tokenizer files or no ``config.json`` there, a pooling the encoder does not support,
            or a bad option.
    """
    check_int("max_length", max_length)
    if pooling is not None and pooling not in POOLINGS:
        raise ValueError(f"encoder {name!r}: pooling must be one of {POOLINGS} or null, got {pooling!r}")
    try:
        import transformers
    except ImportError:
        raise ValueError(f"encoder {name!r} needs transformers: pip install 'supcon[text]' "
                         "(or pip install transformers)") from None
    folder = Path(name[len(TEXT_ENCODER_PREFIX):]).expanduser()
    if not folder.is_dir():
        raise ValueError(f"encoder {name!r}: no folder {folder}; nothing is downloaded at run time: save the "
                         "model and its tokenizer there (save_pretrained, or a sentence-transformers "
                         "folder) and give its path, transformers:/path/to/folder")
    model_dir, own_pooling, own_normalize = read_layout(folder, name)
    for wanted, what in ((TOKENIZER_FILES, "tokenizer files"), (("config.json",), "config.json")):
        if not any((model_dir / f).is_file() for f in wanted):
            raise ValueError(f"encoder {name!r}: no {what} ({', '.join(wanted)}) in {model_dir}; save them "
                             f"there too (tokenizer.save_pretrained / model.save_pretrained)")
    with _quiet(transformers):
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        model = _load_model(transformers, model_dir, pretrained)
    # train mode, as any new module (transformers hands the model over in eval mode)
    return TextEncoder(model.float().train(), tokenizer, pooling or own_pooling or "mean", max_length,
                       own_normalize if normalize is None else bool(normalize))


def read_layout(folder: Path, name: str) -> tuple[Path, str | None, bool]:
    """``(model folder, pooling or None, normalize)`` of a sentence-transformers folder
    (``modules.json``); a plain model folder gives ``(folder, None, False)``.

    Raises:
        ValueError: a ``modules.json`` without a transformer module, or a pooling mode the encoder
            does not support (several modes at once, weighted mean, last token).
    """
    listing = folder / "modules.json"
    if not listing.is_file():
        return folder, None, False
    modules = json.loads(listing.read_text())
    kinds = {str(m.get("type", "")).rsplit(".", 1)[-1]: str(m.get("path", "")) for m in modules}
    if "Transformer" not in kinds:
        raise ValueError(f"encoder {name!r}: {listing} lists no Transformer module")
    pooling = None
    if "Pooling" in kinds and (folder / kinds["Pooling"] / "config.json").is_file():
        pooling = _pooling_mode(json.loads((folder / kinds["Pooling"] / "config.json").read_text()), name)
    return folder / kinds["Transformer"], pooling, "Normalize" in kinds


def _pooling_mode(config: dict, name: str) -> str:
    mode = config.get("pooling_mode")
    modes = ([mode] if isinstance(mode, str) else list(mode)) if mode is not None else \
        [key for key, on in config.items() if key.startswith("pooling_mode") and on is True]
    modes = [_ST_POOLING.get(m, m) for m in modes]
    if len(modes) != 1 or modes[0] not in POOLINGS:
        raise ValueError(f"encoder {name!r}: its pooling {modes} is not supported; give "
                         f"model.encoder_options={{pooling: ...}} with one of {POOLINGS}")
    return modes[0]


def _load_model(transformers: Any, folder: Path, pretrained: bool) -> nn.Module:
    """The model without its task pooler where the architecture has one (its weights would get no
    gradient: the encoder pools the token states itself)."""
    auto = transformers.AutoModel
    for options in ({"add_pooling_layer": False}, {}):
        try:
            if pretrained:
                return auto.from_pretrained(str(folder), local_files_only=True, **options)
            config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
            return auto.from_config(config, **options)
        except TypeError:  # an architecture without that option
            if not options:
                raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """transformers' loading reports and progress bars off (library code does not print)."""
    logging = transformers.utils.logging
    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def adopt_text_encoder(module: nn.Module) -> nn.Module:
    """Your own module as a text encoder: checks that it maps a list of strings to ``[B, F]``
    and sets ``module.num_features = F`` (in place; returns it).

    Raises:
        ValueError: ``module`` fails on a list of two strings or does not return ``[2, F]``.
    """
    name = type(module).__name__
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(["a text", "another text"])
    except Exception as err:  # noqa: BLE001  (whatever an image model raises on strings)
        raise ValueError(f"encoder {name!r} failed on a list of 2 strings ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); text data needs an encoder that "
                         "maps a list of strings to [B, F], e.g. transformers:<folder>") from None
    finally:
        module.train(was_training)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 2:
        raise ValueError(f"encoder {name!r}: returns {_describe(out)} for 2 strings, not [2, F]")
    module.num_features = int(out.shape[1])
    return module


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"
