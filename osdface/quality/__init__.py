"""Image quality: the paper's metrics (Tables 2 and 3) on restored faces (``osdface evaluate``,
the app's metrics tables).

Modules, in the order a run uses them:

- ``catalog``: the metrics by name, their direction, what they need, the paper's column orders;
- ``weights``: their weight files, fetched from the official sources and read weights-only;
- ``pixels``: PSNR and SSIM on the Y channel;
- ``meter``: ``QualityMeter``, the per-image metrics (pyiqa's networks, Deg., LMD);
- ``fid``: FID between a set of results and a reference set;
- ``study``: a folder evaluated under each restorer, resumable and split between processes;
- ``tables``: the tables (Markdown, CSV, JSON) and the per-image CSV.

``catalog`` and ``pixels`` load no model code.
"""

from osdface.lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "catalog": ["INPUT", "METRICS", "MetricSpec", "Needs", "parse_metrics", "in_paper_order"],
        "weights": ["MetricWeights", "MetricWeightsError"],
        "pixels": ["psnr", "ssim"],
        "meter": ["QualityMeter"],
        "fid": ["FIDScorer", "Statistics", "frechet_distance"],
        "study": ["EvaluateConfig", "run_evaluate"],
        "tables": ["Condition", "EvaluateResult", "markdown_table"],
    },
)
