"""The subcommands of the ``osdface`` CLI (``osdface/cli.py`` builds the parser): each module
exposes ``register(subparsers)``, which adds its parser and sets ``func``.

- ``restore``: every face of photos into an output folder;
- ``eval_fr``: the paper's face-recognition study;
- ``doctor``: what this machine has and what a run would use;
- ``export``: the release as safetensors only;
- ``model_options`` and ``restorer_options``: the options several commands share.

The modules import the models' packages lazily (``osdface.lazy``), so building the parser is quick.
"""
