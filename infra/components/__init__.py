"""One ComponentResource per concept; ``__main__.py`` wires them from stack configuration."""
