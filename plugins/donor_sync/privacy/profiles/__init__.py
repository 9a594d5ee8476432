"""PII minimization profiles per destination (:mod:`.model`), applied to rows (:mod:`.minimize`),
checked against the mappings (:mod:`.reads`), and the generated data-flow map (:mod:`.docs`)."""

from __future__ import annotations

from donor_sync.privacy.profiles.minimize import Minimizer, generalize, pseudonymize
from donor_sync.privacy.profiles.model import KindProfile, Profile, load_profile, profile_for, profile_path
from donor_sync.privacy.profiles.reads import ProfileProblem, check_profile, fields_read

__all__ = [
    "KindProfile",
    "Minimizer",
    "Profile",
    "ProfileProblem",
    "check_profile",
    "fields_read",
    "generalize",
    "load_profile",
    "profile_for",
    "profile_path",
    "pseudonymize",
]
