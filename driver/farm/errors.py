"""Typed errors of the render farm (server pool, RunPod pods, RunPod Serverless).

Each subclasses the driver error whose handling it shares, so the scheduler's rules
apply unchanged: a shot-level failure (``PromptRejected``, ``ExecutionFailed``,
``OutputMissing`` subclasses) lets the run go on with the other shots; losing every
server (``LostContact``) or a fleet/budget problem stops the run, which is resumable.
Every class has a stable ``code`` and joins the driver's code -> class table
(``driver.errors.ERROR_CLASSES``) when it is defined; :data:`FARM_ERROR_CLASSES` lists
the farm's own."""

from __future__ import annotations

from driver.errors import (
    ConfigError,
    DriverError,
    ExecutionFailed,
    Interrupted,
    LostContact,
    OutputMissing,
    PreflightFailed,
    PromptRejected,
    ServerUnreachable,
)


class FarmError(DriverError):
    """A RunPod fleet or endpoint problem that stops the run (pods are stopped first)."""

    code = "farm_error"
    exit_code = 11
    precedence = 10  # stops the run: decides before any shot's own failure, after Ctrl-C


class RunPodAuthError(FarmError):
    """The RunPod API refused the key (HTTP 401), or no key was found."""

    code = "runpod_auth"


class RunPodApiError(FarmError):
    """A RunPod API call failed (GraphQL ``errors``, HTTP error, network)."""

    code = "runpod_api"


class RunPodTransient(RunPodApiError):
    """A RunPod API call whose outcome is unknown: a network error, an answer that is
    not JSON (an HTML 5xx page from RunPod's edge) or RunPod's generic "Something went
    wrong". A mutation may have happened: the state is read back before anything else."""

    code = "runpod_transient"


class GpuUnavailable(FarmError):
    """The GPU type is unknown, or no machine of that type could be rented."""

    code = "gpu_unavailable"


class PodNotReady(FarmError):
    """A pod's ComfyUI did not answer before the boot deadline (the pod was stopped)."""

    code = "pod_not_ready"


class BudgetExceeded(FarmError):
    """``--max-cost-usd`` would be exceeded: the run stops before overspending."""

    code = "budget_exceeded"
    exit_code = 12
    precedence = 5


class NoServerAvailable(ServerUnreachable):
    """Every server of the pool is down or was left out by preflight."""

    code = "no_server_available"


class ServerLost(LostContact):
    """A server stopped answering with a job in flight, and the job could not be moved."""

    code = "server_lost"


class PackMissing(PreflightFailed):
    """A server or endpoint lacks the anime_pipeline pack (or a node type it needs)."""

    code = "pack_missing"


class OutputDropped(PreflightFailed):
    """A workflow writes an output that worker-comfyui does not return (only what a
    node reports under ``images``: core SaveImage / SaveVideo / SaveWEBM / SaveAnimated*)."""

    code = "serverless_output_dropped"


class PayloadTooLarge(PromptRejected):
    """The job's request body would exceed RunPod's ``/run`` limit (10 MB)."""

    code = "payload_too_large"


class ServerlessJobFailed(ExecutionFailed):
    """A serverless job ended ``FAILED`` (the worker's error message is kept)."""

    code = "serverless_failed"


class ServerlessSubmitUnknown(ServerlessJobFailed):
    """``POST /run`` got no answer RunPod surely did not act on (a read timeout, a 5xx):
    the job may be running, so it is not sent again (that would pay for it twice)."""

    code = "serverless_submit_unknown"


class ServerlessTimeout(ExecutionFailed):
    """A serverless job did not finish in time (``TIMED_OUT``, or the driver's deadline
    passed and it cancelled the job)."""

    code = "serverless_timeout"


class ServerlessCancelled(Interrupted):
    """A serverless job was cancelled (by the driver on Ctrl-C, or from the console)."""

    code = "serverless_cancelled"


class ServerlessNoOutput(OutputMissing):
    """``COMPLETED`` without the expected files (result too large for RunPod, or a
    save node the worker ignores)."""

    code = "serverless_no_output"


FARM_ERROR_CLASSES: dict[str, type[DriverError]] = {cls.code: cls for cls in (
    FarmError, RunPodAuthError, RunPodApiError, GpuUnavailable, PodNotReady, BudgetExceeded, NoServerAvailable,
    ServerLost, PackMissing, OutputDropped, PayloadTooLarge, ServerlessJobFailed, ServerlessTimeout,
    ServerlessCancelled, ServerlessNoOutput, RunPodTransient, ServerlessSubmitUnknown)}

__all__ = [*(cls.__name__ for cls in FARM_ERROR_CLASSES.values()), "FARM_ERROR_CLASSES", "ConfigError"]
