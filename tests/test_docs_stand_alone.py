"""The documentation stands on its own: no page, docstring or test points to files that users of
the repository do not have."""

from pathlib import Path

ROOT = Path(__file__).parents[1]
ABSENT = ("DESIGN" + ".md", "../" + "shared/")  # split so this file does not name them itself


def test_nothing_cites_files_outside_the_repository():
    files = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("supcon/**/*.py"),
             *ROOT.glob("tests/**/*.py"), *ROOT.glob("examples/**/*.py")]
    cited = [f"{f.relative_to(ROOT)}: {name}" for f in files for name in ABSENT if name in f.read_text()]
    assert not cited, cited
