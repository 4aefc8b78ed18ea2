"""A run's files under their asset names: where an attempt writes its outputs
(``attempts/``), the storyboard's own keyframes copied in (``keyframes/``), and the
selected attempt's files made the shot's assets (``keyframes/``, ``clips/``), each
recorded in the manifest with its sha256."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

from anime_pipeline.core.naming import asset_name
from driver.errors import OutputMissing
from driver.files import FileRecord, atomic_write_chunks, file_intact, file_record
from driver.images import read_image
from driver.story.plan import VIDEO, Job
from driver.story.storyboard import Shot, Storyboard

from .manifest import Manifest
from .records import AttemptRecord, JobRecord, Status

KEYFRAME_DIR, CLIP_DIR, ATTEMPT_DIR = "keyframes", "clips", "attempts"
log = logging.getLogger(__name__)


def place(src: Path, dest: Path) -> None:
    """``dest`` becomes a copy of ``src`` (never a hard link: damage to one must not reach
    the other), atomically, through a temporary file of this process's own."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class Assets:
    def __init__(self, storyboard: Storyboard, manifest: Manifest):
        self.sb, self.manifest = storyboard, manifest
        self.run_dir = manifest.run_dir

    def name(self, job: Job, role: str, ext: str, attempt: int | None = None) -> str:
        shot = self.sb.shot(job.shot)
        return asset_name(self.sb.project, self.sb.episode, shot.scene, shot.take, shot.characters,
                          suffix=role, ext=ext, attempt=attempt)

    def dest_for(self, job: Job, attempt: int):
        """``dest(role, ext)``: where attempt ``attempt`` of ``job`` writes an output."""
        def dest(role: str, ext: str) -> Path:
            path = self.run_dir / ATTEMPT_DIR / self.name(job, role, ext, attempt)
            path.parent.mkdir(parents=True, exist_ok=True)
            return path
        return dest

    def input_files(self, job: Job) -> dict[str, Path]:
        """The files ``job`` takes as inputs: storyboard images, or the assets of the jobs
        before it (OutputMissing when one is missing or changed on disk)."""
        files = {}
        assets = self.manifest.shot(job.shot)["assets"]
        for inp in job.inputs:
            if inp.file:
                files[inp.role] = Path(inp.file)
            elif file_intact(self.run_dir, assets.get(inp.role)):
                files[inp.role] = self.run_dir / assets[inp.role]["path"]
            else:
                raise OutputMissing(f"{job.id} needs the {inp.role!r} keyframe from {inp.job}, which is "
                                    "missing or changed on disk", shot=job.shot)
        return files

    def outputs_intact(self, job: Job) -> bool:
        assets = self.manifest.shot(job.shot)["assets"]
        return all(file_intact(self.run_dir, assets.get(r)) for r in job.outputs)

    def record_given_keyframes(self, shot: Shot, jobs: list[Job]) -> bool:
        """Copy the storyboard's own keyframe images of this shot into ``keyframes/``
        under the asset names, so the run folder (and its dailies page) is complete.
        True when an image was new or changed."""
        assets = self.manifest.shot(shot.id)["assets"]
        changed = False
        for inp in {i.role: i for j in jobs for i in j.inputs if i.file}.values():
            src = Path(str(inp.file))
            data = read_image(src)  # opened once: the bytes checked are the bytes copied
            rec = assets.get(inp.role)
            same = rec is not None and rec.get("source") == str(src) \
                and rec.get("sha256") == hashlib.sha256(data).hexdigest()
            if same and file_intact(self.run_dir, rec):
                continue
            if rec is not None and same:
                log.warning("%s: the run folder's copy %s is damaged (size or sha256 differ); copied again from %s",
                            shot.id, rec["path"], src)
            dest = self.run_dir / KEYFRAME_DIR / asset_name(self.sb.project, self.sb.episode, shot.scene, shot.take,
                                                            shot.characters, suffix=inp.role,
                                                            ext=src.suffix.lstrip(".").lower())
            dest.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_chunks(dest, [data])
            assets[inp.role] = FileRecord(**file_record(self.run_dir, dest), source=str(src))
            changed |= not same
        return changed

    def select(self, job: Job, rec: JobRecord, att: AttemptRecord, status: Status) -> None:
        """Make ``att``'s files the shot's assets (hard link, else copy; atomic)."""
        assets = self.manifest.shot(job.shot)["assets"]
        for f in att["outputs"]:
            src = self.run_dir / f["path"]
            folder = CLIP_DIR if job.stage == VIDEO else KEYFRAME_DIR
            dest = self.run_dir / folder / self.name(job, f["role"], src.suffix.lstrip("."))
            place(src, dest)  # the attempt's verified file, so its recorded hash holds
            assets[f["role"]] = FileRecord(path=dest.relative_to(self.run_dir).as_posix(), sha256=f["sha256"],
                                           bytes=f["bytes"], attempt=att["attempt"], job=job.id)
        report = att.get("report_file")
        if report:
            assets[f"{job.id}:report"] = report
        rec.update({"status": status, "selected_attempt": att["attempt"]})
        self.manifest.save()
