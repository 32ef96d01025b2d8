"""The one exception type the pipeline raises for user-facing failures."""


class RknnError(Exception):
    """A failure the user can act on; its message is shown as an ``E`` log line."""
