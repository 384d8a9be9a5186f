"""The cloud side of the platform as a Pulumi program (``pulumi up`` runs ``__main__.py``)."""
