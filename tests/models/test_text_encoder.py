"""Text encoders: a tiny random BERT written by the test (nothing downloaded) read as
``transformers:<folder>``; pooling against the model's own token states, a sentence-transformers
folder's pooling and normalisation, dropout views, the exported files that rebuild it, and the
one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from supcon.models import create_encoder  # noqa: E402
from supcon.models.text import TextEncoder, pool  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1]))
from _text_data import sentence_transformers_folder, tiny_bert  # noqa: E402

TEXTS = ["the goal and the match", "bread", "code with data today and a new chip robot"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("text") / "bert")


def token_states(encoder: TextEncoder, text: str) -> torch.Tensor:
    """The model's token states of one text alone (no padding): ``[L, H]``."""
    tokens = encoder.tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        return encoder.model(**tokens).last_hidden_state[0]


def test_mean_pooling_of_a_padded_batch_equals_each_text_alone(bert):
    encoder = create_encoder(f"transformers:{bert}").eval()
    assert isinstance(encoder, TextEncoder) and encoder.num_features == 32
    with torch.no_grad():
        out = encoder(TEXTS)
    assert out.shape == (3, 32)
    for row, text in zip(out, TEXTS, strict=True):  # padding tokens must not count
        torch.testing.assert_close(row, token_states(encoder, text).mean(0), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "max", "mean_sqrt_len"])
def test_other_poolings_against_the_token_states(bert, pooling):
    encoder = create_encoder(f"transformers:{bert}", pooling=pooling).eval()
    with torch.no_grad():
        out = encoder(TEXTS)
    for row, text in zip(out, TEXTS, strict=True):
        states = token_states(encoder, text)
        want = {"cls": states[0], "max": states.max(0).values,
                "mean_sqrt_len": states.sum(0) / len(states) ** 0.5}[pooling]
        torch.testing.assert_close(row, want, atol=1e-5, rtol=1e-5)


def test_truncation_to_max_length(bert):
    encoder = create_encoder(f"transformers:{bert}", max_length=4, pooling="mean").eval()
    long = "the goal and the match with a coach"
    ids = encoder.tokenizer([long], return_tensors="pt")["input_ids"][0]
    kept = torch.cat([ids[:3], ids[-1:]])[None]  # [CLS], the first two words, [SEP]
    with torch.no_grad():
        want = encoder.model(input_ids=kept).last_hidden_state[0].mean(0)
        torch.testing.assert_close(encoder([long])[0], want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("in_root", [False, True])
def test_sentence_transformers_folder_takes_its_pooling_and_normalisation(tmp_path, in_root):
    folder = sentence_transformers_folder(tmp_path / "st", pooling="cls", in_root=in_root)
    encoder = create_encoder(f"transformers:{folder}").eval()
    assert (encoder.pooling, encoder.normalize) == ("cls", True)
    with torch.no_grad():
        out = encoder(TEXTS)
    model_dir = folder if in_root else folder / "0_Transformer"
    plain = create_encoder(f"transformers:{model_dir}", pooling="cls").eval()  # same weights, no Normalize
    with torch.no_grad():
        torch.testing.assert_close(out, torch.nn.functional.normalize(plain(TEXTS), dim=1))
    assert torch.allclose(out.norm(dim=1), torch.ones(3))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_equals_sentence_transformers_on_a_sentence_transformers_folder(tmp_path, pooling):
    st = pytest.importorskip("sentence_transformers")  # a second implementation, where installed
    folder = sentence_transformers_folder(tmp_path / "st", pooling=pooling, in_root=pooling == "mean")
    want = st.SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_tensor=True)
    with torch.no_grad():
        got = create_encoder(f"transformers:{folder}").eval()(TEXTS)
    torch.testing.assert_close(got, want.cpu(), atol=1e-5, rtol=1e-5)


def test_dropout_views_differ_in_train_mode_only(bert):
    encoder = create_encoder(f"transformers:{bert}")
    torch.manual_seed(0)
    two = encoder(["the goal", "the goal"])  # one batch, two dropout masks
    assert not torch.allclose(two[0], two[1])
    encoder.eval()
    with torch.no_grad():
        again = encoder(["the goal", "the goal"])
    torch.testing.assert_close(again[0], again[1])


def test_exported_files_rebuild_the_encoder_without_the_original_folder(bert, tmp_path):
    encoder = create_encoder(f"transformers:{bert}", pooling="max", max_length=16).eval()
    encoder.export_files(tmp_path / "files")
    rebuilt = create_encoder(f"transformers:{tmp_path / 'files'}", max_length=16, pretrained=False).eval()
    assert rebuilt.pooling == "max" and set(rebuilt.state_dict()) == set(encoder.state_dict())
    with torch.no_grad():
        assert not torch.allclose(rebuilt(TEXTS), encoder(TEXTS))  # random weights until loaded
        rebuilt.load_state_dict(encoder.state_dict())
        torch.testing.assert_close(rebuilt(TEXTS), encoder(TEXTS))


def test_bad_names_folders_and_inputs_are_one_line(bert, tmp_path):
    with pytest.raises(ValueError, match=r"no folder .*nothing is downloaded at run time: save the model") as err:
        create_encoder("transformers:all-MiniLM-L6-v2")
    assert "\n" not in str(err.value)
    no_tokenizer = tmp_path / "weights-only"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_tokenizer / name).write_bytes((bert / name).read_bytes())
    with pytest.raises(ValueError, match=r"no tokenizer files .*tokenizer.save_pretrained"):
        create_encoder(f"transformers:{no_tokenizer}")
    with pytest.raises(ValueError, match="pooling must be one of"):
        create_encoder(f"transformers:{bert}", pooling="first")
    with pytest.raises(ValueError, match="unknown option"):
        create_encoder(f"transformers:{bert}", widths=[8])
    encoder = create_encoder(f"transformers:{bert}")
    with pytest.raises(ValueError, match="a list of strings, got a tensor"):
        encoder(torch.zeros(2, 3, 8, 8))


def test_pool_ignores_masked_tokens():
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(states, mask, "mean").tolist() == [[2.0, 3.0]]
    assert pool(states, mask, "max").tolist() == [[3.0, 4.0]]
    assert pool(states, mask, "cls").tolist() == [[1.0, 2.0]]
