"""Every citation of a spec in the code, configs and docs names a file under docs/specs/ and one of its sections."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"docs/specs/([\w.-]+\.md)`?,? (?:sections? )?(\d+)")
SOURCES = [*ROOT.glob("src/reidkit/**/*.py"), *ROOT.glob("src/reidkit/configs/**/*.yaml"), *ROOT.glob("tests/**/*.py"),
           *ROOT.glob("benchmarks/*.py"), ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("docs/results/*.md")]


def _sections(spec: Path) -> set[str]:
    return set(re.findall(r"^## (\d+)\.", spec.read_text(encoding="utf-8"), flags=re.MULTILINE))


def test_spec_citations_resolve():
    cited = []
    for source in SOURCES:
        text = source.read_text(encoding="utf-8")
        # a citation wrapped over two lines keeps its meaning; join the lines of comments and docstrings
        text = re.sub(r"\n\s*#?\s*", " ", text)
        for name, section in CITATION.findall(text):
            spec = ROOT / "docs" / "specs" / name
            assert spec.is_file(), f"{source.relative_to(ROOT)} cites {spec.relative_to(ROOT)}, which does not exist"
            assert section in _sections(spec), f"{source.relative_to(ROOT)} cites {name} section {section}"
            cited.append(name)
    assert {"top-db-net.md", "video-aitl-asta.md", "vehicle-aicity.md"} <= set(cited)


def test_no_spec_citation_without_its_file():
    bare = re.compile(r"\bspec (?:sections? )?\d|\(spec |shared/specs")
    offenders = [f"{source.relative_to(ROOT)}:{number}" for source in SOURCES
                 for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1)
                 if bare.search(line) and source.name != "test_spec_citations.py"]
    assert offenders == []
