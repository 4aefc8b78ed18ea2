"""``dailies.html``: one self-contained page in the run folder (opens from disk, no
server) with, per shot, its keyframes, its clip, its gate numbers, attempts, status
and review verdict, plus the episode cut. Links are relative to the run folder."""

from __future__ import annotations

import html
from pathlib import Path

from driver.files import atomic_write_text, now
from driver.story.storyboard import Storyboard

from . import quality

DAILIES_NAME = "dailies.html"
KEYFRAME_ROLES = ("strip", "first", "hero", "last")
PROMPT_CHARS = 300  # per prompt on the page; the whole prompt is in the attempt's workflow file

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;background:#16161c;color:#e8e8ee}
h1{font-size:20px;margin:0 0 4px} .sub{color:#9a9ab0;margin-bottom:18px}
.shot{border:1px solid #33334a;border-radius:8px;padding:12px;margin:0 0 16px;background:#1e1e28}
.head{display:flex;gap:12px;align-items:baseline;flex-wrap:wrap} .id{font-weight:700;font-size:16px}
.badge{padding:1px 8px;border-radius:10px;font-size:12px;background:#33334a}
.done,.approve,.pass{background:#1f5f3a} .failed,.quality_failed,.retake,.fail{background:#7a2430}
.awaiting_review,.pending{background:#6b5a1a}
.media{display:flex;gap:10px;flex-wrap:wrap;margin:10px 0} figure{margin:0}
figcaption{font-size:11px;color:#9a9ab0} img{max-height:220px;border-radius:4px} video{max-height:260px}
table{border-collapse:collapse;font-size:12px} td,th{border:1px solid #33334a;padding:2px 6px;text-align:left}
.err{color:#ff9a9a;white-space:pre-wrap} .prompt{color:#b8b8cc;font-size:12px}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _clip(text: str) -> str:
    """A prompt as the page shows it: escaped, at most PROMPT_CHARS characters."""
    return _e(text if len(text) <= PROMPT_CHARS else text[:PROMPT_CHARS] + f" … ({len(text):,} characters)")


def _blank(x) -> str:
    return "" if x is None else str(x)


def _badge(text: str) -> str:
    return f'<span class="badge {_e(text)}">{_e(text)}</span>'


def _gates(report: dict | None) -> str:
    rows = quality.summary(report)
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{_e(g['name'])}</td><td>{_badge('pass' if g['passed'] else 'fail')}</td>"
        f"<td>{_e(', '.join(f'{k}={v:.4g}' for k, v in g['metrics'].items()))}</td></tr>" for g in rows)
    return f"<table><tr><th>gate</th><th></th><th>metrics</th></tr>{body}</table>"


def _attempts(rec: dict) -> str:
    rows = []
    for job_id, job in sorted((rec.get("jobs") or {}).items()):
        for a in job.get("attempts", []):
            t = a.get("timings") or {}
            rows.append(f"<tr><td>{_e(job_id)}</td><td>a{a['attempt']}</td><td>{_e(a.get('seed'))}</td>"
                        f"<td>{_badge(a.get('status', '?'))}</td><td>{_e(_blank(a.get('score')))}</td>"
                        f"<td>{_e(_blank(t.get('execution_s')))}</td></tr>")
    if not rows:
        return ""
    return ("<details><summary>attempts</summary><table><tr><th>job</th><th>attempt</th><th>seed</th>"
            f"<th>status</th><th>score</th><th>exec s</th></tr>{''.join(rows)}</table></details>")


def _shot(shot, rec: dict, verdict: str | None) -> str:
    assets = rec.get("assets") or {}
    media = [f'<figure><img src="{_e(assets[r]["path"])}" alt="{r}"><figcaption>{r}</figcaption></figure>'
             for r in KEYFRAME_ROLES if r in assets]
    if "video" in assets:
        media.append(f'<figure><video src="{_e(assets["video"]["path"])}" controls loop muted preload="metadata">'
                     f'</video><figcaption>clip (attempt {assets["video"].get("attempt")})</figcaption></figure>')
    video_job = (rec.get("jobs") or {}).get(f"{shot.id}-video") or {}
    selected = next((a for a in video_job.get("attempts", []) if a["attempt"] == video_job.get("selected_attempt")),
                    None)
    err = rec.get("error") or {}
    prompts = " | ".join(f"{k}: {_clip(v)}" for k, v in shot.prompts.items() if v and k != "negative")
    if selected and selected.get("workflow_file"):
        prompts += f' <a href="{_e(selected["workflow_file"]["path"])}">workflow</a>'
    review = f" review {_badge(verdict)}" if verdict else ""
    return (
        f'<div class="shot" id="{shot.id}"><div class="head"><span class="id">{shot.id}</span>'
        f"{_badge(rec.get('status', 'pending'))}{review}"
        f"<span>{_e(shot.approach)} · {shot.duration_s:g} s · seed {shot.seed} · "
        f"{_e('-'.join(shot.characters) or 'no character')}</span></div>"
        f'<div class="prompt">{prompts}</div><div class="media">{"".join(media) or "<i>no images yet</i>"}</div>'
        f"{_gates(selected.get('gate_report') if selected else None)}{_attempts(rec)}"
        + (f'<div class="err">{_e(err.get("code"))}: {_e(err.get("message"))}</div>' if err else "")
        + "</div>")


def write_dailies(sb: Storyboard, manifest, approvals) -> Path:
    shots = manifest.data.get("shots", {})
    cut = (manifest.data.get("episode") or {}).get("cut")
    cut_html = (f'<h2>Episode cut</h2><video src="{_e(cut["path"])}" controls preload="metadata" '
                f'style="max-height:360px"></video>' if cut else "")
    body = "".join(_shot(s, shots.get(s.id, {}), approvals.verdict(s.id) if s.id in approvals.entries else None)
                   for s in sb.shots)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(sb.project)} EP{sb.episode:03d} dailies"
            f"</title><style>{CSS}</style></head><body><h1>{_e(sb.project)} EP{sb.episode:03d} "
            f"{_e(sb.title)}</h1><div class='sub'>run {_e(manifest.run_id)} · updated {_e(now())} · verdicts go in "
            f"approvals.json (approve / retake / pending)</div>{cut_html}<h2>Shots</h2>{body}</body></html>\n")
    path = manifest.run_dir / DAILIES_NAME
    atomic_write_text(path, page)
    manifest.data["episode"]["dailies"] = DAILIES_NAME
    return path
