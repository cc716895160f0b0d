"""nbs_ci: run the notebook curriculum with papermill under profiles, gate its metrics, report."""

from nbs_ci.checks import check_repo
from nbs_ci.manifest import ManifestError, load_manifest
from nbs_ci.results import NotebookResult, RunSummary
from nbs_ci.runner import run

__all__ = ["ManifestError", "NotebookResult", "RunSummary", "check_repo", "load_manifest", "run"]
