"""The Textual face of gpuwizard. Nothing outside this package imports textual."""
