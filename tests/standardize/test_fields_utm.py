"""extract_utm and the UTM settings file: precedence, normalization, aliases, extras, URL checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from donor_sync.errors import ConfigError
from donor_sync.standardize.fields import UtmConfig, extract_utm, load_utm_config
from donor_sync.standardize.fields.utm_config import normalize_utm_value

CONFIG = load_utm_config()


def _one(explicit: dict[str, Any], landing: str | None = None, referrer: str | None = None) -> dict[str, Any]:
    frame = pd.DataFrame(
        {k: pd.Series([v], index=["r"], dtype=object) for k, v in explicit.items()}, index=["r"]
    )
    result = extract_utm(
        frame,
        pd.Series([landing], index=["r"], dtype=object),
        pd.Series([referrer], index=["r"], dtype=object),
        CONFIG,
    )
    row = result.values.iloc[0]
    out = {
        k: (None if not isinstance(row[k], dict) and pd.isna(row[k]) else row[k])
        for k in result.values.columns
    }
    out["codes"] = sorted(result.issues["field"] + ":" + result.issues["code"])
    return out


@pytest.mark.parametrize(
    ("explicit", "landing", "referrer", "expected"),
    [
        pytest.param(
            {"utm_source": "FB", "utm_medium": "Paid Search"},
            None,
            None,
            {"utm_source": "facebook", "utm_medium": "cpc"},
            id="explicit-aliases",
        ),
        pytest.param(
            {},
            "https://give.example.org/x?utm_source=newsletter&utm_medium=E-Mail&utm_campaign=Spring+Appeal%202019",
            None,
            {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "spring-appeal-2019"},
            id="landing-decoded",
        ),
        pytest.param(
            {"utm_source": "partner"},
            "https://give.example.org/?utm_source=fb&utm_medium=social",
            "https://m.facebook.com/?utm_source=m.facebook.com&utm_content=Variant%20A",
            {"utm_source": "partner", "utm_medium": "social", "utm_content": "variant-a"},
            id="explicit-then-landing-then-referrer",
        ),
        pytest.param(
            {},
            "give.example.org/page?UTM_Source=Twitter.com",
            None,
            {"utm_source": "twitter"},
            id="no-scheme-any-case",
        ),
        pytest.param({}, "https://x.example.org/#utm_term=Gifts", None, {"utm_term": "gifts"}, id="fragment"),
        pytest.param(
            {"utm_campaign": "  Fall   Gala - 2021 "},
            None,
            None,
            {"utm_campaign": "fall-gala-2021"},
            id="spaces",
        ),
    ],
)
def test_attribution(
    explicit: dict[str, Any], landing: str | None, referrer: str | None, expected: dict[str, Any]
) -> None:
    out = _one(explicit, landing, referrer)
    params = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
    assert {k: out[k] for k in params if out[k] is not None} == expected
    assert out["codes"] == []


def test_custom_parameters_keep_their_case_and_landing_wins() -> None:
    out = _one(
        {},
        "https://give.example.org/?gclid=AbC-123&form_id=F9&utm_source=google",
        "https://ref.example.net/?gclid=OLD&ref=Partner7&unlisted=x",
    )
    assert out["utm_extra"] == {"gclid": "AbC-123", "form_id": "F9", "ref": "Partner7"}
    assert json.loads(json.dumps(out["utm_extra"])) == out["utm_extra"]


@pytest.mark.parametrize(
    ("landing", "referrer", "codes"),
    [
        pytest.param("http://[bad", None, ["landing_url:invalid_url"], id="bracket"),
        pytest.param("https://x.example.org:99999/", None, ["landing_url:invalid_url"], id="bad-port"),
        pytest.param(None, "not a url", ["referrer_url:invalid_url"], id="spaces"),
        pytest.param("https://", None, ["landing_url:invalid_url"], id="no-host"),
        pytest.param("android-app://com.google.android.gm/", None, [], id="app-referrer-ok"),
    ],
)
def test_unparseable_urls_are_kept_and_flagged(
    landing: str | None, referrer: str | None, codes: list[str]
) -> None:
    out = _one({}, landing, referrer)
    assert out["codes"] == codes
    assert (out["landing_url"], out["referrer_url"]) == (landing, referrer)
    assert out["utm_extra"] == {}


def test_urls_are_parsed_once_per_unique_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from donor_sync.standardize.fields import utm as utm_module

    calls: list[str] = []
    original = utm_module._parse_url

    def spy(url: str, custom: dict[str, str]) -> Any:
        calls.append(url)
        return original(url, custom)

    monkeypatch.setattr(utm_module, "_parse_url", spy)
    urls = pd.Series(["https://a.example.org/?utm_source=x", "https://b.example.org/"] * 100)
    extract_utm(pd.DataFrame(index=urls.index), urls, None, CONFIG)
    assert sorted(calls) == ["https://a.example.org/?utm_source=x", "https://b.example.org/"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_value_normalization_is_idempotent(value: str) -> None:
    once = normalize_utm_value(value)
    assert normalize_utm_value(once) == once or "%" in once
    assert once == once.strip()
    assert "  " not in once
    assert once == once.lower()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "utm.yaml"
    path.write_text(text)
    return path


def test_shipped_settings_load() -> None:
    assert isinstance(CONFIG, UtmConfig)
    assert CONFIG.alias_table("utm_medium")["paid-search"] == "cpc"
    assert "gclid" in CONFIG.custom_params


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("version: 1\nspace_replacement: '*'\n", r"line 2: space_replacement:", id="bad-choice"),
        pytest.param(
            "version: 1\naliases:\n  utm_medium:\n    cpc: [ppc]\n    email: [ppc]\n",
            r"line 3: aliases\.utm_medium: 'ppc' is listed under both 'cpc' and 'email'",
            id="alias-twice",
        ),
        pytest.param(
            "version: 1\naliases:\n  utm_medium:\n    Paid Search: [ppc]\n",
            r"aliases\.utm_medium: canonical value 'Paid Search' is not normalized",
            id="canonical-not-normalized",
        ),
        pytest.param(
            "version: 1\naliases:\n  utm_colour: {}\n", r"line 3: aliases\.utm_colour", id="unknown-param"
        ),
        pytest.param(
            "version: 1\ncustom_params: [gclid, GCLID]\n", r"custom_params: repeated", id="repeated-param"
        ),
        pytest.param("version: 1\nunknown: 3\n", r"line 2: unknown: Extra inputs", id="unknown-key"),
        pytest.param("version: [1\n", r"not valid YAML", id="yaml-syntax"),
    ],
)
def test_settings_errors_name_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_utm_config(path)
    assert str(path) in str(caught.value)


def test_missing_settings_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_utm_config(tmp_path / "nope.yaml")


def test_underscore_replacement(tmp_path: Path) -> None:
    config = load_utm_config(_write(tmp_path, "version: 1\nspace_replacement: _\n"))
    frame = pd.DataFrame({"utm_campaign": ["Spring Appeal"]})
    assert extract_utm(frame, None, None, config).values["utm_campaign"].iloc[0] == "spring_appeal"
