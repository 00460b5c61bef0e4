"""The smsrelay GitHub Action: runner inputs in, the core client, runner outputs out.

Run as ``python -m action.main`` (the image's entrypoint); see ``docs/github-action.md``.
"""
