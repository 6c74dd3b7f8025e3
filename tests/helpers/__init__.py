"""Helpers the tests share (builders of inputs and files, a running app); fixtures are in
the ``conftest.py`` files."""
