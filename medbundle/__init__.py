"""medbundle: interpretable 2D medical image classification shipped as MONAI bundles.

The bundles under ``bundles/`` are data (JSON configs); everything they name by a dotted
``_target_`` path lives in this package, one concept per module:

- :mod:`medbundle.data`: the one entry point from a ``dataset_dir`` to MONAI datalists
  (:func:`medbundle.data.load_datalists`): layouts, readers, splits, class balance, demo data.
- :mod:`medbundle.transforms`: loading any supported 2D image into a 1-channel float tensor; CLAHE.
- :mod:`medbundle.networks`: the networks and their registry (Grad-CAM layer, head and backbone), parameter groups.
- :mod:`medbundle.training`: optimisers, schedules, losses and transfer strategies chosen by a config key.
- :mod:`medbundle.inferers`: the bf16 autocast inferer (CPU and GPU, channels_last).
- :mod:`medbundle.runtime`: devices and distributed training.
- :mod:`medbundle.runs`: bundle folders, default paths, class names, run records.
- :mod:`medbundle.handlers`: Ignite handlers, one per module (checkpoints, resume, logs, reports, phases, explanations).
- :mod:`medbundle.metrics`, :mod:`medbundle.plots`, :mod:`medbundle.report`: figures, pictures and the evaluation folder.
- :mod:`medbundle.explain`: Grad-CAM, Grad-CAM++, occlusion, integrated gradients, and measures of their maps.
- :mod:`medbundle.tracking`: ``--tracking mlflow`` with MONAI's MLflow settings.
- :mod:`medbundle.options`, :mod:`medbundle.errors`: the start-up check of a command's options (booleans that mean
  what they say), and user errors reported as one last line.
"""

__version__ = "0.1.0"

from medbundle import (  # noqa: E402
    data,
    errors,
    explain,
    handlers,
    inferers,
    metrics,
    networks,
    options,
    plots,
    report,
    runs,
    runtime,
    tracking,
    training,
    transforms,
    utils,
)

__all__ = ["data", "errors", "explain", "handlers", "inferers", "metrics", "networks", "options", "plots", "report",
           "runs", "runtime", "tracking", "training", "transforms", "utils"]
