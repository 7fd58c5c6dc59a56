"""Check a teacher-pairs dataset end to end and say what it holds: every planned shard is opened and read,
its seeds/prompt indices checked against the plan, its values checked finite and its sha256 compared with
the manifest's. Used by the CLI (`python -m onestep.pairs.cli validate DIR`)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .manifest import DatasetError, Manifest, shard_name
from .shards import check_shard


@dataclass
class Report:
    """What a dataset holds and what is wrong with it."""

    folder: str
    manifest: Manifest | None = None
    good: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.manifest is not None and not self.problems

    @property
    def items(self) -> int:
        return sum(len(self.manifest.settings.shard_items(k)) for k in self.good) if self.manifest else 0

    def text(self) -> str:
        if self.manifest is None:
            return f"INVALID {self.folder}: {self.problems[0]}"
        s = self.manifest.settings
        lines = [
            f"{'VALID' if self.ok else 'INVALID'} {self.folder}",
            f"items: {self.items} of {s.count} ({len(self.good)}/{s.num_shards} shards{', complete' if not self.missing and self.ok else ''})",
            f"teacher: {self.manifest.info.get('teacher_name', '?')} [{s.teacher[:12]}], latent {s.latent_format} {list(s.latent_shape)}",
            f"sampling: {s.sampler}/{s.scheduler}, {s.steps} steps, CFG {s.cfg:g}, seeds {s.seed_start}..{s.seed_start + s.count - 1}, batch {s.batch_size}",
            f"prompts: {len(self.manifest.prompts)} (first: {self.manifest.prompts[0][:60]!r}); negative: {s.negative[:40]!r}",
        ]
        if s.sdxl_size:
            lines.append(f"SDXL size conditioning (height, width, crop_h, crop_w, target_height, target_width): prompts "
                         f"{list(s.size_of())}, negative {list(s.size_of(negative=True))}")
        if s.controlnet:
            lines.append(f"controlnet: {self.manifest.info.get('controlnet_name', '?')} [{s.controlnet[:12]}], strength {s.control_strength:g}")
        if self.missing:
            lines.append(f"not yet collected: {len(self.missing)} shards (resume the collection to finish)")
        lines += [f"problem: {p}" for p in self.problems]
        return "\n".join(lines)


def validate(folder: str) -> Report:
    """Full check of the dataset in `folder`."""
    report = Report(folder)
    try:
        report.manifest = Manifest.load(folder)
    except DatasetError as e:
        report.problems.append(str(e))
        return report
    m = report.manifest
    for k in range(m.settings.num_shards):
        listed = m.shards.get(k)
        on_disk = os.path.isfile(os.path.join(folder, shard_name(k)))
        if not on_disk:
            report.missing.append(k)
            if listed:
                report.problems.append(f"{shard_name(k)} is listed in the manifest but missing on disk")
            continue
        try:
            entry = check_shard(folder, k, m.settings, len(m.prompts), deep=True)
        except DatasetError as e:
            report.problems.append(str(e))
            continue
        if listed and listed.get("sha256") not in (None, entry["sha256"]):
            report.problems.append(f"{shard_name(k)} differs from the file the manifest recorded (sha256 mismatch)")
            continue
        report.good.append(k)
    return report
