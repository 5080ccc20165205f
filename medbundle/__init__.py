"""medbundle: interpretable 2D medical image classification shipped as MONAI bundles.

The bundles under ``bundles/`` are data (JSON configs); everything they name by a dotted
``_target_`` path lives in this package:

- :mod:`medbundle.data`: demo data generators, readers and the one entry point that turns a
  ``dataset_dir`` into MONAI datalists (:func:`medbundle.data.load_datalists`).
- :mod:`medbundle.transforms`: loading any supported 2D image into a 1-channel float tensor.
- :mod:`medbundle.networks`: the project's networks (``CTNet``) and optimiser parameter groups.
- :mod:`medbundle.engine`: inferers (CPU bf16 autocast, channels_last) and run-time helpers.
- :mod:`medbundle.handlers`: Ignite handlers (atomic checkpoints, resume, CSV log, reports).
- :mod:`medbundle.report`: the evaluation report (metrics JSON, plots, predictions CSV).
"""

__version__ = "0.1.0"

from medbundle import data, engine, handlers, networks, report, transforms, utils  # noqa: E402

__all__ = ["data", "engine", "handlers", "networks", "report", "transforms", "utils"]
