"""Seeded generator of donation sample data across Stripe, Donorbox, Classy and CSV exports, with truth."""

from __future__ import annotations

from sandbox.datagen.config import GENERATOR_VERSION, GenerationConfig, GenerationResult
from sandbox.datagen.generate import generate

__all__ = ["GENERATOR_VERSION", "GenerationConfig", "GenerationResult", "generate"]
