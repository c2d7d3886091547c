"""Default settings. Durations are in seconds and say so in their names."""

PRIORITIES = ("high", "normal", "low")
DEFAULT_PRIORITY = "normal"
DEFAULT_POLICY = "round_robin"

MAX_ATTEMPTS = 3
MAX_CRASHES = 3
PERSON_TIMEOUT_SECONDS = 3600.0
RETRY_BACKOFF_SECONDS = 1.0
RETRY_BACKOFF_MAX_SECONDS = 300.0
# Seconds a claim may go without a heartbeat before recovery requeues it.
CLAIM_TIMEOUT_SECONDS = 30.0

DURABLE = True

INGEST_RESCAN_SECONDS = 2.0
MAX_EVENT_BYTES = 10 * 1024 * 1024
MIN_FREE_BYTES = 64 * 1024 * 1024
# Seconds between free-space checks while ingest is paused for space.
DISK_RECHECK_SECONDS = 1.0

SCHEDULER_RESCAN_SECONDS = 2.0
# Seconds a worker record may go without a heartbeat before the scheduler stops
# offering it jobs.
WORKER_STALE_SECONDS = 15.0

POLICY_TIMEOUT_SECONDS = 1.0
POLICY_ERROR_BACKOFF_SECONDS = 1.0
POLICY_ERROR_BACKOFF_MAX_SECONDS = 30.0

RECOVERY_INTERVAL_SECONDS = 1.0

WORKER_HEARTBEAT_SECONDS = 2.0
WORKER_CAPACITY = 2
WORKER_STOP_GRACE_SECONDS = 10.0
MAX_RESULT_BYTES = 10 * 1024 * 1024

SUPERVISOR_STOP_GRACE_SECONDS = 10.0
RESTART_BACKOFF_MIN_SECONDS = 0.5
RESTART_BACKOFF_MAX_SECONDS = 30.0
# A child that stayed up this long has its restart backoff reset.
RESTART_STABLE_SECONDS = 30.0

METRICS_INTERVAL_SECONDS = 15.0
# A child that has not shown progress for this long is hung: the supervisor
# stops the systemd watchdog pings so systemd restarts the service.
CHILD_HUNG_SECONDS = 20.0

LOG_LEVEL = "INFO"
LOG_FILE = "logs/chronosq.log"
