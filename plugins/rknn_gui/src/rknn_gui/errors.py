"""The GUI's own user errors (a refused path, a bad form value); shown in the page as ``E`` lines."""


class GuiError(Exception):
    """A request the GUI refuses; the message is shown to the user as it is."""
