"""``donor-sync privacy profiles validate`` and ``donor-sync privacy docs``.

``profiles validate`` checks the destination privacy policy
(``include/mappings/privacy/destinations.yaml``) and every minimization profile
(``include/mappings/privacy/profiles/*.yaml``) against the destination mappings; every problem is
one line naming the file and field, and the exit status is 1 when there is any. ``docs`` prints
or writes docs/privacy.md, the data-flow map generated from them.

The commands join the ``privacy`` group when another module already registered one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from donor_sync.cli_support import emit_generated_doc
from donor_sync.cli_support import friendly_errors as _friendly_errors
from donor_sync.errors import ConfigError


@click.group("profiles")
def profiles_group() -> None:
    """PII minimization profiles (include/mappings/privacy/profiles)."""


def _problems(paths: tuple[Path, ...]) -> tuple[list[str], int]:
    from donor_sync.delivery.mapping import load_destination, mapping_path
    from donor_sync.privacy.gate.policy import load_policy, policy_path
    from donor_sync.privacy.profiles.model import load_profile, profiles_dir
    from donor_sync.privacy.profiles.reads import check_profile

    problems: list[str] = []
    try:
        policy = load_policy()
    except ConfigError as exc:
        problems.append(str(exc))
        policy = None
    files = list(paths) or sorted(profiles_dir().glob("*.yaml"))
    for path in files:
        try:
            profile = load_profile(path)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if policy is not None and profile.destination not in policy.destinations:
            problems.append(f"{path}: destination: {profile.destination} has no policy in {policy_path()}")
        if not mapping_path(profile.destination).exists():
            problems.append(f"{path}: destination: no mapping {mapping_path(profile.destination)}")
            continue
        mapping = load_destination(profile.destination)
        problems += [f"{path}: {p}" for p in check_profile(profile, mapping)]
    return problems, len(files)


@profiles_group.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@_friendly_errors
def validate_command(paths: tuple[Path, ...]) -> None:
    """Check the privacy policy and the profiles (default: every shipped one) against the mappings."""
    problems, count = _problems(paths)
    for problem in problems:
        click.echo(problem)
    if problems:
        click.echo(f"{len(problems)} problem(s) in the privacy policy or {count} profile(s)")
        sys.exit(1)
    click.echo(f"privacy policy and {count} profile(s) valid against the mappings")


@click.command("docs")
@click.option("--write", is_flag=True, help="Rewrite docs/privacy.md.")
@click.option("--check", is_flag=True, help="Exit with status 1 when docs/privacy.md is stale.")
@_friendly_errors
def docs_command(write: bool, check: bool) -> None:
    """Print the privacy data-flow map generated from the mappings, profiles and policy (or write it)."""
    from donor_sync.privacy.profiles import docs

    emit_generated_doc(
        docs.render(), docs.doc_path(), regenerate="donor-sync privacy docs --write", write=write, check=check
    )


@click.group("privacy")
def privacy_group() -> None:
    """Privacy: consent gate, minimization profiles, rights requests."""


def register(main: click.Group) -> None:
    """Add ``profiles`` and ``docs`` to ``main``'s ``privacy`` group (created when missing)."""
    group = main.commands.get("privacy")
    if not isinstance(group, click.Group):
        group = privacy_group
        main.add_command(group)
    group.add_command(profiles_group)
    group.add_command(docs_command)
