# The public API, written once: ``__init__.py`` attaches these names lazily (lazy_loader reads this
# stub), ``__all__`` is derived from it, and type checkers read it as the package's interface.
from ._version import __version__ as __version__
from .analysis.clustering import Clusters as Clusters
from .analysis.clustering import cluster as cluster
from .analysis.rca import analyze as analyze
from .cloudflare.client import CloudflareClient as CloudflareClient
from .errors import (
    APIError as APIError,
)
from .errors import (
    AuthError as AuthError,
)
from .errors import (
    BundleError as BundleError,
)
from .errors import (
    ConfigError as ConfigError,
)
from .errors import (
    EdgeInvestigateError as EdgeInvestigateError,
)
from .errors import (
    LoadError as LoadError,
)
from .errors import (
    MissingExtraError as MissingExtraError,
)
from .errors import (
    NotebookError as NotebookError,
)
from .errors import (
    NotFoundError as NotFoundError,
)
from .errors import (
    ParseError as ParseError,
)
from .errors import (
    RateLimitedError as RateLimitedError,
)
from .errors import (
    ReplayError as ReplayError,
)
from .errors import (
    ReplayRefusedError as ReplayRefusedError,
)
from .errors import (
    SandboxError as SandboxError,
)
from .errors import (
    ServerError as ServerError,
)
from .evidence.bundle import Evidence as Evidence
from .evidence.bundle import load as load
from .evidence.queue_metrics import load_queue_metrics as load_queue_metrics
from .evidence.workers_logs import load_workers_logs as load_workers_logs
from .models.findings import Findings as Findings
from .models.load_report import LoadReport as LoadReport
from .replay import (
    ReplayPlan as ReplayPlan,
)
from .replay import (
    plan_replay as plan_replay,
)
from .replay import (
    replay_status as replay_status,
)
from .replay import (
    run_replay as run_replay,
)
from .replay import (
    verify_replay as verify_replay,
)
from .report.runner import run_notebook as run_notebook
from .report.runner import write_report as write_report
from .report.sample import sample_bundle as sample_bundle
from .simulator import simulate as simulate
from .sources.api.dlq import load_dlq as load_dlq
from .sources.registry import SOURCES as SOURCES
from .sources.registry import register_source as register_source
