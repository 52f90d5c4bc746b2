"""Developer tools that ship with the bridge (demo assets, diagnostics). Not imported by the sidecar."""
