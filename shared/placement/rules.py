"""The placement rules file (TOML): its model, defaults and loading with clear errors."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.contracts.jobs import DataClassification, Site


class RulesFileError(Exception):
    """The rules file cannot be read; the message names the file and the line or field."""


class BurstRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    private_backlog_threshold: int = Field(default=100, ge=0)
    classifications: frozenset[DataClassification] = frozenset(
        {DataClassification.PUBLIC, DataClassification.INTERNAL}
    )

    @field_validator("classifications")
    @classmethod
    def _never_confidential(
        cls, value: frozenset[DataClassification]
    ) -> frozenset[DataClassification]:
        if DataClassification.CONFIDENTIAL in value:
            raise ValueError("confidential jobs can never burst to the public cloud")
        return value


class SiteRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    job_types: frozenset[str]


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    burst: BurstRules = BurstRules()
    job_types: dict[str, Site] = Field(default_factory=lambda: {"8k_transcode": Site.PUBLIC})
    sites: dict[Site, SiteRules]

    def can_run(self, site: Site, job_type: str) -> bool:
        rules = self.sites.get(site)
        return rules is not None and job_type in rules.job_types


def load_rules(path: Path) -> Rules:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesFileError(f"{path}: cannot read the rules file: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RulesFileError(f"{path}: {exc}") from exc
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise RulesFileError(f"{path}: {problems}") from exc
