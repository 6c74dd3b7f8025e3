"""Face-recognition evaluation: the paper's identity study (``osdface eval-fr``).

Modules, in the order a run uses them:

- ``pairs``: read LFW ``pairs.txt`` files and simple CSV pair lists;
- ``metrics``: verification metrics from (similarity, same-person) arrays;
- ``plots``: the PR / ROC / F1 / histogram figure, one curve per condition;
- ``eval_fr``: the study itself (align, degrade, restore, embed, cache, report).

``pairs``, ``metrics`` and ``plots`` import no model code, so they stay quick to load.
"""
