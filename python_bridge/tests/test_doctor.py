"""dataflex_bridge.doctor: the facts `dataflex doctor` reads, from one process, on any interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dataflex_bridge import doctor


def test_reports_each_module_as_imported_or_not():
    facts = doctor.gather([("json", "json"), ("dataflex_bridge", "dataflex-bridge"), ("no_such_module_xyz", "nope")])
    assert facts["python"] == sys.version.split()[0]
    assert facts["modules"]["json"]["ok"] is True
    assert facts["modules"]["dataflex_bridge"] == {
        "ok": True,
        "version": "0.1.0",
        "file": facts["modules"]["dataflex_bridge"]["file"],
    }
    missing = facts["modules"]["no_such_module_xyz"]
    assert missing["ok"] is False
    assert "No module named 'no_such_module_xyz'" in missing["error"]


def test_cuda_view_only_when_torch_was_imported():
    without = doctor.gather([("json", "json")])
    if "torch" not in sys.modules:
        assert without["cuda"] is None
    facts = doctor.gather([("torch", "torch")])
    cuda = facts["cuda"]
    assert cuda is not None
    assert cuda["count"] == len(cuda["devices"])
    assert cuda["available"] == (cuda["count"] > 0)


def test_cli_prints_one_json_object_and_refuses_bad_arguments():
    # As the TypeScript side runs it: this checkout's bridge first on PYTHONPATH.
    env = {**os.environ, "PYTHONPATH": str(Path(doctor.__file__).parents[1])}
    cmd = [sys.executable, "-m", "dataflex_bridge.doctor"]
    run = subprocess.run([*cmd, "json=json"], capture_output=True, text=True, check=True, env=env)
    assert json.loads(run.stdout)["modules"]["json"]["ok"] is True
    bad = subprocess.run([*cmd, "json"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2
    assert "usage" in bad.stderr
