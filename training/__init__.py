"""Offline tools, apart from what the app loads (`models/`): the corpus builder and the training
scripts of the shipped models and draft heads. Nothing in `models/`, `playground/` or `app.py`
imports this package."""
