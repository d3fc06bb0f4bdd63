import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from reidkit.metrics import evaluate_rank, query_average_precision
from reidkit.visualize import plot_history, read_history, report_samples, select_queries, write_report
from reidkit.visualize.plots import history_panels


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = set()

    def handle_starttag(self, tag, attrs):
        self.links.update(value for name, value in attrs if name in ("src", "href"))


def links_of(report: Path) -> set[str]:
    parser = Links()
    parser.feed(report.read_text(encoding="utf-8"))
    return parser.links


def write_history(path: Path) -> Path:
    lines = [json.dumps({"epoch": 1, "loss": 3.0, "lr": 1e-4}), "", json.dumps({"epoch": 2, "loss": 2.5, "lr": 2e-4}),
             json.dumps({"epoch": 3, "loss": 2.0, "lr": 2e-4, "mAP": 0.41, "Rank-1": 0.62}),
             '{"epoch": 4, "lo']  # cut short by a crash
    path.write_text("\n".join(lines) + "\n")
    return path


def test_report_links_every_file_it_writes_and_each_exists(tmp_path):
    run_dir = tmp_path / "run"
    inside = run_dir / "visrank_toy" / "q0.jpg"
    inside.parent.mkdir(parents=True)
    Image.new("RGB", (20, 10), (0, 255, 0)).save(inside)
    elsewhere = [tmp_path / "a" / "q1.jpg", tmp_path / "b" / "q1.jpg"]  # same name: both must be kept
    for path in elsewhere:
        path.parent.mkdir()
        Image.new("RGB", (20, 10), (255, 0, 0)).save(path)
    metrics = {"without re-ranking": {"mAP": 0.8581, "Rank-1": 0.949}, "with re-ranking": {"mAP": 0.941}}
    with pytest.warns(UserWarning, match=r"skipped lines \[5\]"):
        report = write_report(
            run_dir, config={"model": {"name": "top_db_net"}, "data": {"root": tmp_path}}, metrics=metrics,
            history_path=write_history(tmp_path / "metrics.jsonl"),
            cmc={"without re-ranking": np.linspace(0.9, 1, 50), "with re-ranking": np.linspace(0.95, 1, 50)},
            ranked_images=[inside, ("worst 1", elsewhere[0]), elsewhere[1]],
        )
    assert report == run_dir / "report.html"
    links = links_of(report)
    assert all("://" not in link and not link.startswith("/") for link in links)  # relative: works offline
    for link in links:
        assert (run_dir / unquote(link)).is_file(), link
    written = {p.relative_to(run_dir).as_posix() for p in (run_dir / "report_files").rglob("*") if p.is_file()}
    assert written | {"visrank_toy/q0.jpg"} == {unquote(link) for link in links}
    assert {"report_files/cmc.png", "report_files/history.png"} <= written and len(written) == 4
    text = report.read_text()
    # percent with one decimal, as the CLI's tables
    assert "<td>85.8</td>" in text and "<td>94.1</td>" in text and "0.8581" not in text
    assert "worst 1" in text and "top_db_net" in text
    # evaluated at epoch 3 only: a table, not a one-point plot
    assert "Evaluation during training" in text and "<td>epoch 3</td><td>41.0</td><td>62.0</td>" in text


def test_report_plots_evaluation_measured_at_several_epochs(tmp_path):
    history = tmp_path / "metrics.jsonl"
    history.write_text("".join(json.dumps({"epoch": e, "loss": 3.0 / e, "mAP": 0.1 * e}) + "\n" for e in (1, 2)))
    report = write_report(tmp_path / "run", config={}, metrics={"mAP": 0.2}, history_path=history)
    assert history_panels(read_history(history)) == {"loss": ["loss"], "evaluation": ["mAP"]}
    assert "Evaluation during training" not in report.read_text()
    single = [{"epoch": 1, "loss": 3.0}, {"epoch": 2, "loss": 2.0, "mAP": 0.2}]
    assert history_panels(single) == {"loss": ["loss"]}


def test_report_without_history_or_images(tmp_path):
    history = tmp_path / "metrics.jsonl"
    history.write_text(json.dumps({"epoch": 1, "note": "no numbers"}) + "\n")
    report = write_report(tmp_path / "run", config={}, metrics={"mAP": 0.5}, history_path=history)
    assert links_of(report) == set() and "No plots." in report.read_text()
    with pytest.raises(ValueError, match="no numeric loss"):
        plot_history([{"epoch": 1}], tmp_path / "h.png")
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        write_report(tmp_path / "run", config={}, metrics={}, history_path=tmp_path / "missing.jsonl")


def test_average_precision_and_best_worst_selection():
    # Query 0 (pid 1, cam 0): junk (pid 1, cam 0) skipped, then hit, miss, hit -> AP = (1 + 2/3) / 2.
    g_pids, g_camids = [1, 1, 2, 1], [0, 1, 1, 2]
    distmat = np.array([[0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    aps = query_average_precision(distmat, [1, 1, 3], g_pids, [0, 0, 0], g_camids)
    assert aps[0] == pytest.approx(5 / 6) and aps[1] == pytest.approx((1 / 2 + 2 / 3) / 2) and np.isnan(aps[2])
    assert select_queries(aps, 1, 5) == ([0], [1])


def test_query_ap_ranks_ties_as_the_map_does():
    # Query 1's match ties a non-match: ranked after it (AP 1/2), as in the mAP, whatever the gallery order.
    g_pids, g_camids = [1, 2, 1], [1, 1, 2]
    distmat = np.array([[0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    aps = query_average_precision(distmat, [1, 1], g_pids, [0, 0], g_camids)
    assert aps.tolist() == pytest.approx([1.0, (1 / 2 + 2 / 3) / 2])
    with pytest.warns(UserWarning, match="features collapsed"):  # one query of two ties
        _, mAP, _ = evaluate_rank(distmat, [1, 1], g_pids, [0, 0], g_camids, max_rank=3)
    assert np.mean(aps) == pytest.approx(mAP)
    assert select_queries(aps, 1, 1) == ([0], [1])


def test_report_samples_draw_best_and_worst_queries(toy, model, transform, tmp_path):
    query, gallery, distmat = toy
    samples = report_samples(model, query, gallery, distmat, tmp_path, transform=transform, num_best=1,
                             num_worst=1, topk=3, dataset_name="toy", cell_size=(64, 32))
    assert [caption for caption, _ in samples] == ["best 1: q0.jpg (AP 100.0%)", "worst 1: q1.jpg (AP 58.3%)"]
    for _, path in samples:
        assert path.parent == tmp_path / "report_files" / "ranked" / "visrankactiv_toy"
        assert Image.open(path).size[1] == 2 * 64 + 10  # images + activation overlays
