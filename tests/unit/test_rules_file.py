"""Loading the rules file: the shipped default, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.contracts.jobs import Site
from shared.placement.rules import RulesFileError, load_rules
from shared.settings import DEFAULT_RULES_FILE


def test_default_rules_match_the_contract() -> None:
    rules = load_rules(DEFAULT_RULES_FILE)
    assert rules.job_types == {"8k_transcode": Site.PUBLIC}
    assert rules.burst.private_backlog_threshold == 100
    for site in Site:
        assert {"noop", "sleep", "flaky", "fail", "transcode", "8k_transcode"} <= rules.sites[
            site
        ].job_types


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (
            "[burst]\nprivate_backlog_threshold = -1\n[sites.public]\njob_types=[]\n",
            "burst.private_backlog_threshold",
        ),
        ("[job_types]\nrender = 'moon'\n[sites.public]\njob_types=[]\n", "job_types.render"),
        (
            "[burst]\nclassifications = ['confidential']\n[sites.public]\njob_types=[]\n",
            "burst.classifications",
        ),
        ("[sites.public]\njob_types=[]\nsurprise = 1\n", "sites.public.surprise"),
        ("[burst\n", "line 1"),
    ],
)
def test_invalid_rules_name_the_field_or_line(tmp_path: Path, text: str, names: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RulesFileError) as error:
        load_rules(path)
    assert names in str(error.value)
    assert str(path) in str(error.value)


def test_missing_rules_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RulesFileError, match="cannot read"):
        load_rules(tmp_path / "absent.toml")
