"""The app's datastores: a local folder of PNG/JPEG/DICOM files, or a DICOMweb server (Orthanc, a PACS).

MONAI Label's defaults suit 3D segmentation: local folders list NIfTI/PNG/JPG only, and DICOMweb series are
filtered to ``Modality=CT`` and converted to NIfTI with ITK (which loses MONOCHROME1, VOI LUT and rescale). Here
local folders also list ``.jpeg``/``.dcm`` files, and DICOMweb series of every modality (CR, DX, SC, CT, MR) are
downloaded as they are, so medbundle's own DICOM reader decodes them.
"""

from __future__ import annotations

import os
import re
from typing import Any

from monailabel.config import settings
from monailabel.datastore.local import LocalDatastore

__all__ = ["IMAGE_EXTENSIONS", "local_datastore", "dicomweb_datastore", "resolve_image", "UnknownImage"]

#: the files a local studies folder lists (MONAI Label lists ``*.nii.gz, *.png, *.jpg, ...``).
IMAGE_EXTENSIONS = ["*.png", "*.jpg", "*.jpeg", "*.dcm", "*.bmp", "*.tif", "*.tiff", "*.nii", "*.nii.gz"]

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class UnknownImage(LookupError):
    """An image id the datastore does not hold (the message is one line)."""


def local_datastore(studies: str) -> LocalDatastore:
    """MONAI Label's local datastore on ``studies`` with :data:`IMAGE_EXTENSIONS`."""
    return LocalDatastore(studies, extensions=IMAGE_EXTENSIONS, auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
                          read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY)


def dicomweb_datastore(url: str, search_filter: dict[str, Any] | None = None):
    """MONAI Label's DICOMweb datastore on ``url`` (``http://host:port/dicom-web``): series of every modality,
    downloaded as DICOM files (no NIfTI conversion, no dcmqi download)."""
    from dicomweb_client.session_utils import create_session_from_user_pass
    from monailabel.datastore.dicom import DICOMwebClientX, DICOMWebDatastore

    session = None
    if settings.MONAI_LABEL_DICOMWEB_USERNAME and settings.MONAI_LABEL_DICOMWEB_PASSWORD:
        session = create_session_from_user_pass(settings.MONAI_LABEL_DICOMWEB_USERNAME, settings.MONAI_LABEL_DICOMWEB_PASSWORD)
    client = DICOMwebClientX(url=url.rstrip("/"), session=session, qido_url_prefix=settings.MONAI_LABEL_QIDO_PREFIX,
                             wado_url_prefix=settings.MONAI_LABEL_WADO_PREFIX,
                             stow_url_prefix=settings.MONAI_LABEL_STOW_PREFIX)
    cache = (settings.MONAI_LABEL_DICOMWEB_CACHE_PATH or "").strip() or None
    return DICOMWebDatastore(client=client, search_filter=dict(search_filter or {}), cache_path=cache,
                             fetch_by_frame=settings.MONAI_LABEL_DICOMWEB_FETCH_BY_FRAME, convert_to_nifti=False)


def resolve_image(datastore, image_id: str) -> str:
    """The local path (file, or DICOM series folder) of ``image_id`` in ``datastore``.

    Raises:
        UnknownImage: an id the datastore does not hold, one line naming where the ids are listed.
    """
    from monailabel.datastore.dicom import DICOMWebDatastore

    if isinstance(datastore, DICOMWebDatastore):
        hint = f"The ids are the SeriesInstanceUIDs of {datastore.name()}/series (QIDO-RS)"
        if not _UID.match(image_id):
            raise UnknownImage(f"image {image_id!r}: not a DICOM series UID. {hint}.")
        folder = os.path.join(datastore._datastore.image_path(), image_id)
        if not (os.path.isdir(folder) and os.listdir(folder)):
            if not datastore._client.search_for_series(search_filters={"SeriesInstanceUID": image_id}):
                raise UnknownImage(f"image {image_id!r}: no such series on {datastore.name()}. {hint}.")
        return datastore.get_image_uri(image_id)
    if image_id not in set(datastore.list_images()):
        raise UnknownImage(f"image {image_id!r}: not in the studies folder. GET /datastore/?output=all lists the "
                           f"image ids (file names without their extension).")
    return datastore.get_image_uri(image_id)
