"""The MONAI Label app's library: the classification infer task, the datastores and the guarded ``/infer`` route."""
