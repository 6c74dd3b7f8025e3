"""Face-recognition evaluation: the paper's identity study (``osdface eval-fr``).

Modules, in the order a run uses them:

- ``pairs``: read LFW ``pairs.txt`` files and simple CSV pair lists;
- ``conditions``: the study's settings (``EvalFRConfig``), its conditions, per-image seeds;
- ``cache``: the embeddings on disk, keyed by a hash of what changes them;
- ``work``: one image's clean, turbulent and restored faces and their embeddings;
- ``run``: the study itself (``run_eval_fr``), split between processes when launched;
- ``metrics``: verification metrics from (similarity, same-person) arrays;
- ``plots``: the PR / ROC / F1 / histogram figure, one curve per condition;
- ``report``: ``metrics.json``, ``scores.csv``, the figures and the terminal summary.

- ``identity``: ArcFace embeddings and the similarity of two faces (the app's identity table too).

``pairs``, ``conditions``, ``metrics`` and ``plots`` import no model code, so they stay quick
to load.
"""

from osdface.lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "identity": ["ArcFaceEmbedder", "IdentityUnavailableError", "SIMILARITY_LEGEND", "similarity"],
        "run": ["run_eval_fr"],
        "report": ["summary_table"],
        "conditions": ["EvalFRConfig"],
    },
)
