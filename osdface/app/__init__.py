"""What the Gradio app does, without Gradio (``service.Studio``), and its page (``layout``,
``restorers_panel``); ``app.py`` at the repository root wires them (the Space's ``app_file``).

The start reads one way: ``probe`` (is the Hub reachable, which weights are missing) ->
``models`` (load what can be loaded, say why not) -> ``service`` (the ``Studio``).
"""

from osdface.lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "service": ["Studio"],
        "requests": ["RestoreRequest", "RequestError", "StudioSettings"],
        "models": ["LoadedModels", "load_models"],
    },
)
