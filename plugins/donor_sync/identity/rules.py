"""The dedup rules file, ``include/mappings/dedup.yaml``, as validated models.

Everything identity resolution does is set here: which blocking passes produce candidate pairs
(and the block-size cap), which deterministic rules merge outright, which comparisons score a pair
and with what levels and m/u priors, how the model is trained, the three bands' thresholds, the
household rule and the clustering guard. ``docs/dedup-rules.md`` is generated from these models'
descriptions and the shipped file (:mod:`donor_sync.identity.rules_doc`), so it cannot drift.

Comparisons follow Splink's shape: each is a list of levels tried in order, a Null level first
(either side missing: no evidence either way) and an Else level last; a pair takes the first level
it satisfies. Columns named anywhere in the file are the prepared columns of
:data:`donor_sync.identity.prepare.PREPARED_COLUMNS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from donor_sync.identity.columns import PREPARED_COLUMNS
from donor_sync.paths import include_dir
from donor_sync.yaml_source import load_yaml_model

_NAME = r"^[a-z][a-z0-9_]*$"


def default_rules_path() -> Path:
    """Return the shipped rules file."""
    return include_dir() / "mappings" / "dedup.yaml"


def _check_column(value: str) -> str:
    if value not in PREPARED_COLUMNS:
        raise ValueError(f"unknown column {value!r}; known: {', '.join(PREPARED_COLUMNS)}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Level(_Strict):
    label: str | None = Field(default=None, description="Name shown in explanations (a default is derived).")
    column: str | None = Field(
        default=None,
        description="Test this prepared column instead of the comparison's (levels are tried in "
        "order, so 'same postcode' after 'same address' means same postcode, different street).",
    )
    m: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Prior probability that a true match lands in this level (m). Training "
        "(EM or labelled pairs) starts from it; without training it is used as is.",
    )
    u: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Prior probability that a random pair lands in this level (u); replaced by the "
        "estimate from random pairs when training.estimate_u is on.",
    )

    @field_validator("column")
    @classmethod
    def _level_column(cls, value: str | None) -> str | None:
        return None if value is None else _check_column(value)


class NullLevel(_Level):
    """Either side is missing: the comparison gives no evidence (weight 0). Always first."""

    type: Literal["null"]


class ExactMatchLevel(_Level):
    """The two values are equal."""

    type: Literal["exact"]
    term_frequency: bool = Field(
        default=False,
        description="Adjust the weight by how common the shared value is: a match on a common "
        "value (Smith) counts for less than one on a rare value (Featherstonehaugh).",
    )


class NicknameLevel(_Level):
    """The two first names are nickname-equivalent (Robert / Bob) per include/mappings/nicknames.csv."""

    type: Literal["nickname"]


class InitialLevel(_Level):
    """One side is a single initial that is the other side's first letter (J / John)."""

    type: Literal["initial"]


class SwappedLevel(_Level):
    """The value equals the other record's ``other`` column and vice versa (first and last swapped)."""

    type: Literal["swapped"]
    other: str = Field(description="The column swapped with this comparison's column.")

    @field_validator("other")
    @classmethod
    def _other(cls, value: str) -> str:
        return _check_column(value)


class JaroWinklerLevel(_Level):
    """Jaro-Winkler similarity (0-1, rapidfuzz) at least ``threshold``."""

    type: Literal["jaro_winkler"]
    threshold: float = Field(gt=0, le=1, description="Minimum Jaro-Winkler similarity.")


class LevenshteinLevel(_Level):
    """Levenshtein edit distance at most ``distance``."""

    type: Literal["levenshtein"]
    distance: int = Field(ge=1, description="Maximum number of edits.")


class DamerauLevenshteinLevel(_Level):
    """Damerau-Levenshtein distance (a transposition is one edit) at most ``distance``."""

    type: Literal["damerau_levenshtein"]
    distance: int = Field(ge=1, description="Maximum number of edits.")


class TokenSetLevel(_Level):
    """rapidfuzz token-set ratio (0-1: word order and repeated words ignored) at least ``threshold``."""

    type: Literal["token_set"]
    threshold: float = Field(gt=0, le=1, description="Minimum token-set similarity.")


class PrefixLevel(_Level):
    """The first ``length`` characters are equal (ZIP3, birth year of YYYYMMDD)."""

    type: Literal["prefix"]
    length: int = Field(ge=1, description="Number of leading characters compared.")


class DateTransposedLevel(_Level):
    """YYYYMMDD dates with the same year whose month and day are swapped (a US/EU mix-up)."""

    type: Literal["date_transposed"]


class NumericDifferenceLevel(_Level):
    """Both values are numbers at most ``max_difference`` apart."""

    type: Literal["numeric"]
    max_difference: float = Field(ge=0, description="Largest absolute difference.")


class ElseLevel(_Level):
    """Anything not caught by an earlier level. Always last."""

    type: Literal["else"]


Level = Annotated[
    NullLevel
    | ExactMatchLevel
    | NicknameLevel
    | InitialLevel
    | SwappedLevel
    | JaroWinklerLevel
    | LevenshteinLevel
    | DamerauLevenshteinLevel
    | TokenSetLevel
    | PrefixLevel
    | DateTransposedLevel
    | NumericDifferenceLevel
    | ElseLevel,
    Field(discriminator="type"),
]


class Comparison(_Strict):
    """One field's comparison: levels tried in order, Null first and Else last."""

    name: str = Field(pattern=_NAME, description="Name used in explanations and pair columns.")
    column: str = Field(description="The prepared column compared.")
    description: str = Field(default="", description="What the comparison is for.")
    levels: list[Level] = Field(min_length=2, description="The levels, Null first and Else last.")

    @field_validator("column")
    @classmethod
    def _column(cls, value: str) -> str:
        return _check_column(value)

    @model_validator(mode="after")
    def _null_first_else_last(self) -> Comparison:
        if self.levels[0].type != "null":
            raise ValueError("the first level must be a null level")
        if self.levels[-1].type != "else":
            raise ValueError("the last level must be an else level")
        for level in self.levels[1:-1]:
            if level.type in ("null", "else"):
                raise ValueError("null and else levels may only be first and last")
        return self


class BlockingPass(_Strict):
    """One blocking pass: records whose key columns are all present and equal become candidates."""

    name: str = Field(pattern=_NAME, description="Name of the pass (kept per pair: which passes found it).")
    columns: list[str] = Field(
        min_length=1, description="Prepared columns whose values together form the key."
    )
    max_block_size: int | None = Field(
        default=None, ge=2, description="Cap for this pass (default: blocking.max_block_size)."
    )
    max_pairs: int | None = Field(
        default=None,
        ge=1,
        description="Pair budget of this pass: when its blocks would give more pairs, the largest "
        "blocks are skipped until they fit. Keeps loose passes (a single field) useful on a small "
        "file without flooding a large base.",
    )
    max_pairs_per_record: float | None = Field(
        default=None,
        gt=0,
        description="Pair budget of this pass per input record (with max_pairs, the smaller wins).",
    )

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: list[str]) -> list[str]:
        return [_check_column(v) for v in value]


class Blocking(_Strict):
    """Multi-pass blocking: the union of every pass's pairs, deduplicated."""

    max_block_size: int = Field(
        default=200,
        ge=2,
        description="Blocks larger than this are skipped (a key shared by that many records is too "
        "common to mean anything, and would cost size^2/2 comparisons).",
    )
    passes: list[BlockingPass] = Field(min_length=1, description="The passes, in order.")

    @model_validator(mode="after")
    def _unique_names(self) -> Blocking:
        names = [p.name for p in self.passes]
        if len(names) != len(set(names)):
            raise ValueError("blocking pass names must be unique")
        if len(names) > 63:
            raise ValueError("at most 63 blocking passes")
        return self


class DeterministicRule(_Strict):
    """Pairs equal on every column of ``columns`` merge automatically (unless they are a household)."""

    name: str = Field(pattern=_NAME, description="Name shown in explanations.")
    columns: list[str] = Field(
        min_length=1, description="Prepared columns that must all be present and equal."
    )

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: list[str]) -> list[str]:
        return [_check_column(v) for v in value]


class Training(_Strict):
    """How m, u and the prior are obtained at run time."""

    prior_match_probability: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Probability that two random records are the same donor. None: estimated by "
        "EM among the candidate pairs (then scaled to all pairs).",
    )
    estimate_u: bool = Field(default=True, description="Estimate u from random record pairs.")
    min_records_for_u: int = Field(
        default=1000,
        ge=2,
        description="Below this many records u keeps its priors: random pairs of a small file are "
        "too often true duplicates to stand for non-matches.",
    )
    u_sample_pairs: int = Field(
        default=1_000_000,
        ge=1000,
        description="Random pairs sampled for u (at most 20 per record, at least 100,000).",
    )
    em_iterations: int = Field(
        default=10,
        ge=0,
        description="EM iterations over the candidate pairs' comparison patterns, estimating the "
        "share of matches (hence the prior) and, with em_update_m, m (0: no EM; then set "
        "prior_match_probability). u stays fixed during EM.",
    )
    em_update_m: bool = Field(
        default=False,
        description="Let EM re-estimate m too (else only the prior). Candidate pairs share a "
        "blocking key, so EM over them tends to learn 'same neighbourhood' as a match; keep the "
        "m priors (or fit them from labelled pairs) unless the data is unlike donors.",
    )
    prior_strength: float = Field(
        default=50.0,
        ge=0,
        description="Pseudo-count of the m priors when m is re-estimated (EM or labelled pairs): "
        "how many pairs' worth of belief the priors carry.",
    )
    tf_minimum: float = Field(
        default=0.00001,
        gt=0,
        description="Smallest term frequency used in adjustments (bounds the bonus of a rare value).",
    )
    seed: int = Field(default=42, description="Random seed for the u sample.")


class Thresholds(_Strict):
    """The three bands, on the pair's match probability."""

    auto_merge: float = Field(
        default=0.99, gt=0, lt=1, description="At or above: merged automatically (never a household)."
    )
    review: float = Field(
        default=0.80, gt=0, lt=1, description="At or above (and below auto_merge): sent to the review queue."
    )

    merge_needs_agreement_on: list[str] = Field(
        default_factory=lambda: ["first_name", "last_name", "email", "phone", "birth_date", "external_id"],
        description="Comparisons of which at least one must count for the pair (a positive "
        "contribution) to merge automatically; otherwise a high score goes to review. An address "
        "alone never merges two people.",
    )

    merge_blocked_by: dict[str, list[str]] = Field(
        default_factory=lambda: {"first_name": ["initial", "else"]},
        description="Comparison -> level types that keep a pair from merging automatically, "
        "whatever its score (it goes to review): first names that are clearly different, or only "
        "an initial of one another, are two people until someone reviews them (a shared phone, "
        "mailbox or address is a household's signature as much as a duplicate's).",
    )

    merge_blocked_by_distinct_names: bool = Field(
        default=True,
        description="First names that are two different known given names (Charles / Charlotte, "
        "Jose / Joseph), however close in spelling, keep a pair from merging automatically.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.review > self.auto_merge:
            raise ValueError("review must not be above auto_merge")
        return self


class Household(_Strict):
    """Same surname and address, clearly different first names: a household link, never a merge."""

    enabled: bool = Field(default=True, description="Apply the household rule.")
    last_name_min_similarity: float = Field(
        default=0.92, gt=0, le=1, description="Jaro-Winkler similarity of the surnames at least this."
    )
    street_min_similarity: float = Field(
        default=0.85,
        gt=0,
        le=1,
        description="Same address: equal house numbers, street lines at least this Jaro-Winkler "
        "similar (abbreviations and typos pass), and equal postcode (zip5) or city.",
    )
    unless_equal: list[str] = Field(
        default_factory=lambda: ["birth_date", "external_id"],
        description="Not a household when any of these columns is present and equal on both sides "
        "(one birth date or one external id: the same person with a garbled first name).",
    )
    review_contact_conflicts: bool = Field(
        default=True,
        description="At one address, a pair whose emails (or phones) are both present and differ, "
        "without the other contact agreeing, goes to review instead of merging: it may be one "
        "donor with a new mailbox or two namesakes of one household (Sr and Jr). Costs automatic "
        "recall, never precision.",
    )
    merge_needs_identifier: list[str] = Field(
        default_factory=lambda: ["email", "birth_date", "external_id"],
        description="At one address, a pair merges automatically only if one of these columns is "
        "present and equal on both sides; otherwise it goes to review. The surname, the address "
        "and the household phone are every member's, and two members' first names may be equal "
        "(namesakes) or close (Chris / Christina, Sara / Sandra), so only a personal identifier "
        "tells one person from two there. Likewise, anywhere, a pair sharing a phone whose first "
        "names are not equal (a member who moved out keeps the household phone). Costs automatic "
        "recall, never precision. Empty: no such check.",
    )
    personal_phone_confirms: bool = Field(
        default=True,
        description="With merge_needs_identifier: a shared phone counts as such an identifier for "
        "equal or nickname-equivalent first names (not for names a typo apart: Sara / Sarah, Bryan "
        "/ Brian), unless a household link (two members with different first names) among the "
        "pairs shares that phone too -- then it is the household's phone, which namesakes and a "
        "member who moved out share as well.",
    )
    personal_address_confirms: bool = Field(
        default=True,
        description="With personal_phone_confirms: at an address that no household link (two "
        "members with different first names) among the pairs touches, equal or nickname-"
        "equivalent first names need no identifier -- nothing there shows a second member.",
    )
    review_name_part_conflicts: bool = Field(
        default=True,
        description="A pair whose generation suffixes (Jr, Sr, II, III) differ, or whose middle "
        "initials differ, goes to review instead of merging; at one address so does a generation "
        "suffix on one side only (John Smith and John Smith Jr: father and son).",
    )
    first_name_min_edits: int = Field(
        default=2,
        ge=1,
        description="First names are different when they are at least this many Damerau-Levenshtein "
        "edits apart (a typo is one edit), neither is an initial of the other and they are not "
        "nickname-equivalent.",
    )

    @field_validator("unless_equal", "merge_needs_identifier")
    @classmethod
    def _unless(cls, value: list[str]) -> list[str]:
        return [_check_column(c) for c in value]


class Clustering(_Strict):
    """How pairs become donors without chaining strangers through weak links."""

    cannot_link_below: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="Two records whose own pair scored below this probability (or is a household "
        "link) never end in one cluster, whatever links they share with others.",
    )


class DedupRules(_Strict):
    """The dedup rules file."""

    blocking: Blocking = Field(description="Candidate generation.")
    deterministic: list[DeterministicRule] = Field(
        default_factory=list, description="Rules that merge outright (checked before scoring)."
    )
    comparisons: list[Comparison] = Field(min_length=1, description="The comparisons that score a pair.")
    training: Training = Field(default_factory=Training, description="How m, u and the prior are obtained.")
    thresholds: Thresholds = Field(default_factory=Thresholds, description="The bands.")
    household: Household = Field(default_factory=Household, description="The household rule.")
    clustering: Clustering = Field(default_factory=Clustering, description="Clustering guard.")

    @model_validator(mode="after")
    def _unique_comparisons(self) -> DedupRules:
        names = [c.name for c in self.comparisons]
        if len(names) != len(set(names)):
            raise ValueError("comparison names must be unique")
        listed = [*self.thresholds.merge_needs_agreement_on, *self.thresholds.merge_blocked_by]
        unknown = [n for n in listed if n not in names]
        if unknown:
            raise ValueError(f"thresholds name unknown comparisons: {unknown}")
        return self


def load_rules(path: Path | None = None) -> DedupRules:
    """Load and validate a dedup rules file (the shipped one by default).

    :raises ConfigError: naming the file, line and field of every problem.
    """
    return load_yaml_model(path or default_rules_path(), DedupRules)
