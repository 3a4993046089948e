"""Room for mounts, export (zip, snapshot, Markdown, HTML) and import (Jupyter, snapshot).

API.md §8 (mounts), §9 (export), §14.2. Nothing here yet.
"""
