"""Ring (a): the report page and its plots — escaping, offline, empty runs, missing scores/clusters."""

import json
from html.parser import HTMLParser

import pyarrow.parquet as pq
import pytest

from engine.records import ACCEPTED, REJECTED, SCHEMA, to_table
from engine.report.page import build_compare_html, build_html
from engine.report.plots import PLOTS, build_plots
from engine.report.samples import highlight, pair_rows, pick_samples
from jobs.report import main as report_main
from tests.unit.test_store_report import build_report

CONFIG = {"run": {"name": "unit"}, "recipe": "sphinx", "model": {"name": "fake-model"}}
ATTACKS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
PNG = b"\x89PNG\r\n\x1a\n"


def make_rows(*rows: dict) -> list[dict]:
    """Rows as the run folder holds them: every SCHEMA column present."""
    return to_table(list(rows)).to_pylist()


def row(row_id: str, lang: str = "fr", status: str = ACCEPTED, **extra) -> dict:
    base = {
        "id": row_id,
        "seed_id": f"seed-{row_id}",
        "recipe": "sphinx",
        "lang": lang,
        "status": status,
        "src_instruction": "Explain `ls`.",
        "instruction": "Expliquez `ls`.",
        "output": "Bonjour",
        "protected_spans": ["`ls`"],
        "lid_label": lang,
        "lid_confidence": 0.9,
        "lid_method": "fasttext",
        "adequacy": 0.93,
        "attempts": 1,
        "completion_tokens": 40,
        "prompt_tokens": 100,
    }
    if status == REJECTED:
        base["reason"] = "wrong_language:en"
    return {**base, **extra}


def page_for(rows: list[dict], real_plots: bool = False, **kwargs) -> str:
    """The page; with stand-in PNGs unless the test is about the plots (matplotlib takes ~0.2 s each)."""
    report = build_report(to_table(rows), len(rows), 0, 2.0, CONFIG)
    plots = build_plots(rows) if real_plots else {name: PNG + b"stand-in" for name in PLOTS}
    return build_html(report, rows, plots, **kwargs)


class Tags(HTMLParser):
    """Every start tag and its attributes, as a browser would see them."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.mark.parametrize(
    "text, spans, expected",
    [
        ("a `x` b", ["`x`"], "a <mark>`x`</mark> b"),
        ("<b> & {name}", ["{name}"], "&lt;b&gt; &amp; <mark>{name}</mark>"),
        ("use <tag> & <tag>", ["<tag>"], "use <mark>&lt;tag&gt;</mark> &amp; <mark>&lt;tag&gt;</mark>"),
        ("```\n`y`\n``` and `y`", ["`y`", "```\n`y`\n```"], "<mark>```\n`y`\n```</mark> and <mark>`y`</mark>"),
        ("&amp; stays literal", ["&amp;"], "<mark>&amp;amp;</mark> stays literal"),
        (None, ["`x`"], ""),
        ("no spans <i>", [], "no spans &lt;i&gt;"),
        ("empty span", ["", None], "empty span"),
    ],
)
def test_highlight_escapes_every_piece_and_marks_spans(text, spans, expected):
    assert highlight(text, spans) == expected


@pytest.mark.parametrize("attack", ATTACKS)
def test_model_output_appears_only_escaped(attack):
    rows = make_rows(
        row(
            "a",
            output=attack,
            instruction=attack,
            protected_spans=[attack],
            src_output=attack,
            scores=[{"round": 0, "criterion": attack, "score": 3.0}],
        ),
        row("b", status=REJECTED, reason=f"wrong_language:{attack}", input=attack, attempt_reasons=[attack]),
        row("c", lang=attack),
    )
    text = page_for(rows)
    assert attack not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text or "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    tags = Tags(text).tags
    assert [tag for tag, _ in tags].count("script") == 1, "only the page's own filter script"
    assert not [attrs for _, attrs in tags if any(name.startswith("on") for name in attrs)], (
        "no event handler attribute"
    )
    assert all(attrs.get("src", "").startswith("data:image/png;base64,") for tag, attrs in tags if tag == "img")
    assert all(attrs.get("data-lang") in {"fr", attack} for tag, attrs in tags if tag == "section")


def test_page_works_offline():
    rows = make_rows(row("a", output="see https://example.com and http://x.org"), row("b", status=REJECTED))
    text = page_for(rows)
    for tag, attrs in Tags(text).tags:
        assert tag not in {"link", "iframe", "object", "embed", "base"}
        for name in ("src", "href", "action", "srcset", "poster"):
            value = attrs.get(name)
            assert value is None or value.startswith(("data:", "#")), (tag, name, value[:60])
    assert "@import" not in text and "url(" not in text
    assert "https://example.com" in text, "model text with URLs is shown as text"


def test_empty_run_renders():
    report = build_report(SCHEMA.empty_table(), 0, 0, 0.0, CONFIG)
    plots = build_plots([])
    assert all(png is None for png in plots.values())
    text = build_html(report, [], plots)
    assert "Planned 0 = accepted 0 + rejected 0" in text and "no rows in this run" in text
    assert "<img" not in text


def test_missing_scores_and_clusters_are_skipped_not_fatal():
    rows = make_rows(row("a"), row("b", status=REJECTED), row("c", lang="es"))
    plots = build_plots(rows)
    assert plots["judge_scores"] is None and plots["cluster_coverage"] is None
    for name in ("rows_per_language", "reject_reasons", "lid_confidence", "adequacy", "tokens_per_accepted"):
        assert plots[name].startswith(PNG), name
    text = page_for(rows, real_plots=True)
    assert "Nothing to plot in this run for: judge scores per round, cluster coverage." in text
    assert text.count("<img") == 5 and "no judge scores" in text
    assert "adequacy 0.930" in text  # the sample browser shows each row's score


def test_adequacy_plot_skipped_without_scores():
    rows = make_rows(row("a", adequacy=None), row("b", status=REJECTED, adequacy=None))
    assert build_plots(rows)["adequacy"] is None


def test_scores_and_clusters_are_plotted_and_shown():
    scores = [
        {"round": 0, "criterion": "fluency", "score": 3.0},
        {"round": 1, "criterion": "fluency", "score": None},
        {"round": 1, "criterion": "adequacy", "score": 4.5},
    ]
    rows = make_rows(
        row("a", scores=scores, cluster=1), row("b", lang="es", cluster=2, scores=scores[:1]), row("c", status=REJECTED)
    )
    plots = build_plots(rows)
    assert plots["judge_scores"].startswith(PNG) and plots["cluster_coverage"].startswith(PNG)
    text = page_for(rows, real_plots=True)
    assert "<td>adequacy</td><td>4.5</td>" in text and "Nothing to plot" not in text


def test_samples_are_capped_per_language_with_both_statuses():
    rows = make_rows(*[row(f"fr{i}", status=ACCEPTED if i % 3 else REJECTED) for i in range(12)], row("es0", lang="es"))
    picked = pick_samples([[r] for r in rows], cap=4)
    fr = [group[0] for group in picked if group[0]["lang"] == "fr"]
    assert len(fr) == 4 and [r["status"] for r in fr].count(REJECTED) == 2
    assert [group[0]["id"] for group in picked if group[0]["lang"] == "es"] == ["es0"]
    text = page_for(rows, samples_per_language=4)
    assert text.count('<section class="sample"') == 5 and "5 of 13 rows on this page" in text
    assert 'data-status="rejected"' in text and '<option value="es">es</option>' in text


def test_compare_page_joins_runs_on_seed_and_language():
    first = make_rows(row("a", output="première"), row("b", lang="es", status=REJECTED))
    second = make_rows(row("a2", seed_id="seed-a", output="seconde", status=REJECTED), row("c", lang="de"))
    groups = pair_rows([first, second])
    assert [[r and r["id"] for r in group] for group in groups] == [[None, "c"], ["b", None], ["a", "a2"]]
    runs = [
        (label, build_report(to_table(rows), len(rows), 0, 1.0, CONFIG), rows, build_plots(rows))
        for label, rows in (("A", first), ("B", second))
    ]
    text = build_compare_html(runs)
    assert "première" in text and "seconde" in text and "not in this run" in text
    assert 'data-status="accepted rejected"' in text and "<h1>babelforge: A vs B</h1>" in text


def write_run(run_dir, rows):
    run_dir.mkdir()
    table = to_table(rows)
    (run_dir / "report.json").write_text(json.dumps(build_report(table, len(rows), 0, 1.0, CONFIG)))
    for status in (ACCEPTED, REJECTED):
        pq.write_table(to_table([r for r in rows if r["status"] == status]), run_dir / f"{status}.parquet")


def test_report_job_regenerates_page_and_plots(tmp_path, capsys):
    write_run(tmp_path / "one", [row("a"), row("b", status=REJECTED)])
    write_run(tmp_path / "two", [row("a", output="autre")])
    assert report_main([str(tmp_path / "one")]) == 0
    assert (tmp_path / "one/report.html").read_text().count(
        "<img"
    ) == 5  # rows per language, reasons, language ID, adequacy, tokens
    assert (tmp_path / "one/plot-rows_per_language.png").read_bytes().startswith(PNG)
    assert (tmp_path / "one/plot-adequacy.png").read_bytes().startswith(PNG)
    assert report_main([str(tmp_path / "one"), "--compare", str(tmp_path / "two")]) == 0
    assert "autre" in (tmp_path / "one/compare-two.html").read_text()
    assert report_main([str(tmp_path / "one"), "--out", str(tmp_path / "x.html"), "--samples-per-language", "1"]) == 0
    assert (tmp_path / "x.html").read_text().count('<section class="sample"') == 1
    assert report_main([str(tmp_path / "missing")]) == 2
    assert "not a finished run folder" in capsys.readouterr().err
