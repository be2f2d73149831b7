"""One error taxonomy: what is worth retrying and what is not."""


class HybridqError(Exception):
    """Root of every error hybridq raises on purpose."""


class RetryableError(HybridqError):
    """A transient failure (broker or database away, remote busy): try again later."""


class PermanentError(HybridqError):
    """A failure that will not go away by retrying: dead-letter it with a reason."""


class UnprocessableMessage(PermanentError):
    """A message that cannot be read as what its queue carries."""

    def __init__(self, reason: str, detail: str, job_id: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.job_id = job_id


class JobTimeout(HybridqError):
    """An attempt ran longer than its `timeout_seconds`."""


class PermanentJobError(PermanentError):
    """Raised by a handler when retrying the job cannot help (e.g. invalid params)."""


class UnknownJobType(PermanentError):
    """No handler is registered for the job type on this site."""


class InvalidResult(PermanentError):
    """A handler returned something other than a JSON object of at most 64 KiB."""


class HandlerProcessDied(RetryableError):
    """The pool process running a plain-function handler died (killed, crashed, OOM)."""


class HandlerModuleError(HybridqError):
    """A module listed in HYBRIDQ_HANDLERS cannot be imported: the worker does not start."""


class HandlerRaised(HybridqError):
    """A plain-function handler raised in its pool process; the message is already
    `Type: text`, as the job's history shows it."""


class HandlerRaisedPermanently(HandlerRaised, PermanentError):
    """A plain-function handler raised a permanent error (or returned an invalid result)."""


class TLSRefused(HybridqError, ConnectionError):
    """The broker's certificate could not be verified (or it refused ours): a setting to
    fix, not a blip to wait out. At start the service logs this one line and exits non-zero
    (a supervisor starting it again is the retry); once running, a reconnection that meets
    it is retried like any lost connection (a `ConnectionError`, as aio-pika expects).
    `str()` names the URL, password hidden, and the cause."""
