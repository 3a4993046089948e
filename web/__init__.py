"""The web UI's files: plain ES modules, one stylesheet and the vendored editor.

Not Python: this package only carries them as package data, for ``rest/web.py`` to serve.
"""
