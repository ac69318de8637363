"""Model code, loading and scoring (torch + transformers, no UI)."""

import os

# OpenMP threads spin at barriers by default; on a small shared machine that makes torch
# many times slower. This must be set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
