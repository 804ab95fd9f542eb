"""emotion_over_time.png: per-snippet class probabilities as lines, attention below, episodes shaded."""
from affectkit.deploy.predictor import ATTENTION_LABEL, plot_timeline

CLASSES = ["Anger", "Joy", "Sadness"]


def _result(with_probs=True, episodes=None):
    timeline = []
    for j in range(4):
        entry = {"snippet": j, "start": j * 1.0, "end": j * 1.0 + 1.0, "attention": [0.1, 0.2, 0.6, 0.1][j]}
        if with_probs:
            entry["probabilities"] = {"Anger": 0.2, "Joy": 0.1 + 0.2 * j, "Sadness": 0.7 - 0.2 * j}
        timeline.append(entry)
    r = {"video": "clip.mp4", "label": "Joy", "confidence": 0.6, "sentiment": "positive",
         "probabilities": {"Anger": 0.2, "Joy": 0.6, "Sadness": 0.2}, "timeline": timeline, "duration": 4.0}
    if episodes is not None:
        r["true_episodes"] = episodes
    return r


def _legend_texts(ax):
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_plot_shows_class_probabilities_and_attention_below(tmp_path):
    path = tmp_path / "curve.png"
    fig = plot_timeline(_result(), path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    ax, att = fig.axes
    assert _legend_texts(ax) == CLASSES  # one line per class, named
    assert len(ax.get_lines()) == 3
    assert "Joy" in ax.get_title() and "positive" in ax.get_title()
    assert att.get_title(loc="left") == ATTENTION_LABEL
    assert att.get_position().height < ax.get_position().height  # the secondary, smaller view
    assert not ax.patches  # no episodes given: nothing shaded


def test_plot_shades_annotated_episodes(tmp_path):
    fig = plot_timeline(_result(episodes=[[0.5, 1.5], [2.5, 3.0]]), tmp_path / "c.png")
    ax = fig.axes[0]
    assert _legend_texts(ax) == CLASSES + ["annotated episode"]
    assert len(ax.patches) == 2


def test_plot_falls_back_to_attention_without_snippet_probabilities(tmp_path):
    path = tmp_path / "c.png"
    fig = plot_timeline(_result(with_probs=False), path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    (ax,) = fig.axes
    assert ax.get_ylabel() == ATTENTION_LABEL
    assert len(ax.patches) == 4  # one bar per snippet
    assert _legend_texts(ax) == []
    fig = plot_timeline(_result(with_probs=False, episodes=[[1.0, 2.0]]), path)
    assert _legend_texts(fig.axes[0]) == ["annotated episode"]
