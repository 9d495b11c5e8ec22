"""The Python snippets of the README's sections on backbones, the distributed loss, banks, label
sets, `supcon.train` with objects and text run as written (text: with a tiny random BERT as its
model folder), each in a fresh process (the distributed one under torchrun with 2
CPU processes), and print what their comments say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
SECTIONS = {  # heading -> what its snippet must print
    "## Any backbone: timm and torchvision": ["512 torch.Size([2, 512])", "1024"],
    "## The loss in your own distributed loop": [],
    "## Contrasting against a bank": ["True torch.Size([8, 2, 16])"],
    "## More than one label per image": ["tensor("],
    "## Your model and your data, from Python": ["test top-1 "],
    "## Text: fine-tuning a pretrained sentence encoder": ["test top-1 ", "torch.Size([2, 32])"],
}


def python_blocks(heading: str) -> list[str]:
    text = README.read_text()
    assert heading + "\n" in text, heading
    body = text.split(heading + "\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


@pytest.mark.parametrize("heading", list(SECTIONS))
def test_readme_section_snippet_runs(heading, tmp_path):
    blocks = python_blocks(heading)
    assert len(blocks) == 1, heading
    code = blocks[0]
    if "timm:" in code:
        pytest.importorskip("timm")
    if "transformers:" in code:  # a tiny random BERT where the snippet expects its model folder
        pytest.importorskip("transformers")
        sys.path.insert(0, str(ROOT / "tests"))
        from _text_data import tiny_bert

        tiny_bert(tmp_path / "models" / "all-MiniLM-L6-v2")
    script = tmp_path / "snippet.py"
    script.write_text(code)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    if code.startswith("# run with: torchrun"):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    else:
        cmd = [sys.executable, str(script)]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for expected in SECTIONS[heading]:
        assert expected in done.stdout, done.stdout
