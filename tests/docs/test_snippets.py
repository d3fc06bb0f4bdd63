"""Every snippet of README.md and docs/*.md runs as written, with only the substitutions of SUBSTITUTIONS (tiny
sizes, the tests' own files for the user's placeholders) and the names of NAMESPACE that a snippet assumes;
the README's usage block runs line by line in the order shown. Blocks not run here say why in NOT_RUN, and a
fenced block in neither table fails the test, so a new snippet cannot go untested."""
from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reidkit.cli import main

REPO = Path(__file__).resolve().parents[2]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OWN_DOCS = {"README.md", "deploy.md", "datasets.md", "architecture.md", "reliability.md"}  # docs/fidelity.md: issue 18

# Appended to every `reidkit train` of a snippet: the tests' size (64x32 drawn people, ResNet-18, one epoch).
TINY_TRAIN = ["data.height=64", "data.width=32", "data.workers=0", "model.backbone=resnet18", "model.pretrained=null",
              "train.batch_size=8", "data.num_instances=2", "train.epochs=1", "train.device=cpu", "train.threads=1",
              "schedule.name=constant", "test.batch_size=32", "test.eval_period=0", "test.max_rank=5",
              "checkpoint.period=0", "output.tensorboard=false", "output.progress=false", "output.report=false"]
TINY_TEST = ["data.height=64", "data.width=32", "data.workers=0", "model.backbone=resnet18", "train.device=cpu",
             "test.batch_size=32", "test.max_rank=5", "output.progress=false", "output.report=false"]

# (document, a line of the block) -> [(text in the snippet, what the test runs instead)], applied in order.
# {root}: the drawn Market-1501 folder; {query}: its query images; {tmp}: the test's folder; {onnx}/{ckpt}: an
# export and a checkpoint of a tiny model trained by the test.
SUBSTITUTIONS: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("README.md", "run = reidkit.train(cfg)"): [
        ('["data.root=DATA"]', '["data.root={root}", "output.dir={tmp}/api_run", *TINY_TRAIN]'),
        ('num_classes=751)', 'num_classes=751, backbone="resnet18")'),
        ('"model.pth.tar-400"', "run.checkpoint"),  # a reidkit checkpoint: the 12 training ids' classifier is skipped
    ],
    ("README.md", "emb = reidkit.Embedder.load"): [('"model.onnx"', '"{onnx}"')],
    ("README.md", 'g = Gallery("gallery/")'): [('"gallery/"', '"{tmp}/gallery"'),
                                               ("topk=20", "topk=1")],  # a gallery of the one item added
    ("deploy.md", 'emb = reidkit.Embedder.load("runs/x/'): [
        ('"runs/x/checkpoints/last.pth"', '"{ckpt}"'),
        ('video = reidkit.Embedder.load("video_model.onnx")', 'video = None  # video exports: tests/deploy'),
        ('.embed_clips([[f1, f2, f3, f4], ...])', ''),
    ],
    ("deploy.md", "embedder = reidkit.Embedder.load"): [('"model.onnx"', '"{onnx}"')],
    ("deploy.md", "class ReidModel:"): [],
}

# Shell blocks run command by command; each command's substitutions, then TINY_* appended by command kind.
SHELL_SUBSTITUTIONS: dict[tuple[str, str], list[tuple[str, str]]] = {
    ("README.md", "reidkit train --resume runs/top_db_net_market1501"): [("--root DATA", "--root {root}"),
                                                                       ("crops/", "{query}")],
    ("datasets.md", "reidkit data check --name market1501 --root DATA"): [("--root DATA", "--root {root}")],
    ("README.md", "reidkit data check --name custom --root mydata"): [("--root mydata", "--root {mydata}")],
    ("README.md", "--split auto"): [("--root people/", "--root {people}")],
    ("README.md", "--quantize int8 --calibration crops/"): [
        ("runs/demo/checkpoints/last.pth", "{ckpt}"), ("--weights last.pth", "--weights {ckpt}"),
        ("model.pth.tar-400", "{ckpt}"),  # a reidkit checkpoint: reference ones load in tests/models
        ("crops/", "{query}"), ("a.jpg b.jpg", "{query_a} {query_b}")],
    ("README.md", "reidkit search --db gallery/ --query person.jpg"): [
        ("runs/demo/checkpoints/last.pth", "{ckpt}"), ("crops/", "{query}"), ("person.jpg", "{query_a}")],
    ("README.md", "reidkit serve --db gallery/"): [
        ("runs/demo/checkpoints/last.pth", "{ckpt}"), ("crops/", "{query}")],
}

# Lines of a run shell block that are not run, and why.
SKIPPED_LINES = {
    "torchrun --nproc_per_node 4": "needs a Milvus server and 4 processes: tests/gallery (Milvus Lite, torchrun)",
    "reidkit serve --db gallery/": "a server that runs until stopped: tests/serve runs it on 127.0.0.1",
}

# Blocks not run here, and why (the tests that run what they show).
NOT_RUN = {
    ("README.md", "make demo"): "the full demo and suite; `reidkit demo` runs in tests/engine, the suite is this",
    ("README.md", "python3 -m venv .venv"): "installs packages (the tests run inside such an environment)",
    ("README.md", "--index-url https://download.pytorch.org/whl/cpu"): "installs packages",
    ("README.md", "--device cuda train.amp=fp16"): "needs a GPU; torchrun on CPU: tests/engine/test_distributed.py",
    ("README.md", "reidkit data from-mot"): "tests/data/test_mot_converter.py",
    ("README.md", "sources: [market1501"): "tests/data/test_joint_training.py",
    ("README.md", "configs/vehicle/aicity2020_ft_net.yaml"): "AICity data; the same extract + postprocess chain on "
                                                             "drawn vehicles: tests/vehicle/test_extract_cli.py, tests/postprocess",
    ("README.md", "benchmarks/"): "benchmarks, run by hand on real data (minutes to hours)",
    ("deploy.md", "reidkit export --weights runs/demo"): "tests/deploy/test_deploy_cli.py",
    ("deploy.md", "reidkit verify a.jpg b.jpg --weights runs/x"): "tests/deploy/test_verification.py",
    ("deploy.md", "verification over 17,817"): "printed output of a measurement, not a command",
    ("deploy.md", "$ reidkit verify"): "printed output of a measurement on real images",
    ("architecture.md", "src/reidkit/"): "a folder map, not a command",
    ("datasets.md", "DATA/"): "folder layouts; each dataset's reader is tested on a replica in tests/data, "
                              "tests/video and tests/vehicle",
}


def fenced_blocks(path: Path) -> list[tuple[str, str]]:
    """(language, text) of every fenced block of a Markdown file."""
    return [(m[1], m[2]) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", path.read_text(), re.S | re.M)]


def entry(table: dict, document: str, text: str):
    keys = [key for key in table if key[0] == document and key[1] in text]
    return keys[0] if keys else None


def test_every_block_is_run_or_says_why_not():
    unknown = []
    for path in DOC_FILES:
        if path.name not in OWN_DOCS:
            continue
        for language, text in fenced_blocks(path):
            tables = (SUBSTITUTIONS, SHELL_SUBSTITUTIONS, NOT_RUN)
            if not any(entry(table, path.name, text) for table in tables):
                unknown.append(f"{path.name}: {language} block starting {text.splitlines()[0]!r}")
    assert not unknown, "blocks neither run nor listed in NOT_RUN:\n" + "\n".join(unknown)


@pytest.fixture(scope="module")
def world(tmp_path_factory, synthetic_market_root):
    """The files the snippets name: a trained tiny checkpoint, its ONNX export, crops and frames."""
    tmp = tmp_path_factory.mktemp("snippets")
    ckpt_run = tmp / "ckpt_run"
    assert main(["train", "--config", "configs/top_db_net/market1501.yaml", "--root", str(synthetic_market_root),
                 "--output", str(ckpt_run), *TINY_TRAIN]) == 0
    ckpt = ckpt_run / "checkpoints" / "last.pth"
    onnx = tmp / "model.onnx"
    assert main(["export", "--weights", str(ckpt), "--output", str(onnx), "--dynamic-batch"]) == 0
    query = synthetic_market_root / "Market-1501-v15.09.15" / "query"
    query_a, query_b = sorted(query.glob("*.jpg"))[:2]
    mydata, people = own_data_folders(synthetic_market_root / "Market-1501-v15.09.15", tmp)
    return {"tmp": tmp, "root": synthetic_market_root, "query": query, "ckpt": ckpt, "onnx": onnx,
            "query_a": query_a, "query_b": query_b, "mydata": mydata, "people": people}


def own_data_folders(market: Path, tmp: Path) -> tuple[Path, Path]:
    """The README's own-data folders, from the drawn Market-1501 images: `mydata` in the train/ query/ gallery/
    <pid>/<camid>/ layout, `people` as one folder of identities <pid>/<camid>/ (no split) for --split auto."""
    subsets = {"bounding_box_train": "train", "query": "query", "bounding_box_test": "gallery"}
    for source, split in subsets.items():
        for image in sorted((market / source).glob("*.jpg")):
            pid, camid = int(image.name.split("_")[0]), int(image.name.split("_c")[1][0]) - 1
            if pid <= 0:  # distractors and junk have no identity folder
                continue
            for target in (tmp / "mydata" / split, tmp / "people"):
                (target / str(pid) / str(camid)).mkdir(parents=True, exist_ok=True)
                shutil.copy(image, target / str(pid) / str(camid) / image.name)
    return tmp / "mydata", tmp / "people"


def fill(text: str, world: dict) -> str:
    return text.format(**{k: str(v) for k, v in world.items()})


def namespace(world: dict) -> dict:
    """The names a snippet assumes the reader has: images, frames, boxes, detections, vectors."""
    crops = sorted(world["query"].glob("*.jpg"))
    rgb = np.asarray(Image.open(crops[1]).convert("RGB"))
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[10:74, 20:52] = rgb[..., ::-1]
    boxes = np.array([[20, 10, 52, 74], [90, 30, 120, 100]], np.float32)
    return {"pil_image": Image.open(crops[0]).convert("RGB"), "rgb_array": rgb, "opencv_frames": [frame],
            "frame": frame, "frames": [frame, frame], "boxes_xyxy": boxes,
            "detections": [([20, 10, 32, 64], 0.9, "person"), ([90, 30, 30, 70], 0.8, "person")],
            "detect_people": lambda image: (boxes, [0.9, 0.8]),
            "vectors": np.eye(1, 1536, dtype=np.float32), "vector": np.eye(1, 1536, dtype=np.float32)[0],
            "TINY_TRAIN": TINY_TRAIN}


def python_blocks():
    for path in DOC_FILES:
        for language, text in fenced_blocks(path):
            key = entry(SUBSTITUTIONS, path.name, text)
            if language == "python" and key:
                yield pytest.param(key, text, id=f"{key[0]}:{key[1][:30]}")


@pytest.mark.parametrize("key, text", list(python_blocks()))
def test_python_snippet_runs(key, text, world, monkeypatch):
    monkeypatch.chdir(REPO)
    for old, new in SUBSTITUTIONS[key]:
        assert old in text, f"{key}: the snippet no longer holds {old!r}"
        text = text.replace(old, fill(new, world))
    text = text.replace('"a.jpg"', f'"{sorted(world["query"].glob("*.jpg"))[0]}"')
    scope = namespace(world)
    exec(compile(text, f"<{key[0]} snippet>", "exec"), scope)  # noqa: S102 - the documentation's own code
    if "model" in scope and key[0] == "README.md" and "build_model" in text:  # what the comments say
        model = scope["model"]
        assert not model.training
        with torch.no_grad():
            assert model(torch.randn(2, 3, 64, 32)).shape == (2, 1536)


def shell_commands(text: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.split("  #")[0].split(" # ")[0].strip() for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def shell_blocks():
    for path in DOC_FILES:
        for language, text in fenced_blocks(path):
            key = entry(SHELL_SUBSTITUTIONS, path.name, text)
            if language == "bash" and key:
                yield pytest.param(key, text, id=f"{key[0]}:{key[1][:30]}")


@pytest.mark.parametrize("key, text", list(shell_blocks()))
def test_shell_block_runs_in_the_order_shown(key, text, world, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # run folders such as runs/top_db_net_market1501 land here
    for command in shell_commands(text):
        if any(line in command for line in SKIPPED_LINES):
            continue
        for old, new in SHELL_SUBSTITUTIONS[key]:
            command = command.replace(old, fill(new, world))
        argv = shlex.split(command)
        assert argv[0] == "reidkit", command
        if argv[1] == "train" and "--resume" not in argv:
            argv += TINY_TRAIN
        elif argv[1] in ("test", "extract"):
            argv += TINY_TEST + (["--vis-queries", "2"] if argv[1] == "test" else [])
        elif argv[1:3] == ["data", "check"]:  # the drawn data holds 12 training ids: a batch of 4 x 2 fits
            argv += ["train.batch_size=8", "data.num_instances=2"]
        code = main(argv[1:])
        assert code == 0, f"{command}: exit {code}\n{capsys.readouterr().err}"
