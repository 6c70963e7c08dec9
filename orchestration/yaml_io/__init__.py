"""The legacy YAML layout (Agents/manifest.yml + Agents/logs/<id>.yml): import and export.

loader reads and validates a tree (every problem with file and line), importer stores it in
a project atomically and idempotently, exporter writes a project back in the same layout.
The format is described in docs/yaml-format.md.
"""
