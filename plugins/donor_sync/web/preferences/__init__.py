"""The preference centre: a donor reads and changes their consent choices through a signed link.

``app`` builds the FastAPI app (:func:`~.app.create_app`); ``config`` reads
include/mappings/privacy/preference_centre.yaml; ``choices`` reads and writes the choices.
"""

from donor_sync.web.preferences.app import create_app
from donor_sync.web.preferences.config import PreferenceCentreSettings, load_preference_settings

__all__ = ["PreferenceCentreSettings", "create_app", "load_preference_settings"]
