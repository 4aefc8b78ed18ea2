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


class FarmError(DriverError, code="farm_error", exit_code=11, precedence=10):
    """A RunPod fleet or endpoint problem that stops the run (pods are stopped first). It
    decides the exit code before any shot's own failure, after Ctrl-C."""


class RunPodAuthError(FarmError, code="runpod_auth"):
    """The RunPod API refused the key (HTTP 401), or no key was found."""


class RunPodApiError(FarmError, code="runpod_api"):
    """A RunPod API call failed (GraphQL ``errors``, HTTP error, network)."""


class RunPodTransient(RunPodApiError, code="runpod_transient"):
    """A RunPod API call whose outcome is unknown: a network error, an answer that is
    not JSON (an HTML 5xx page from RunPod's edge) or RunPod's generic "Something went
    wrong". A mutation may have happened: the state is read back before anything else."""


class GpuUnavailable(FarmError, code="gpu_unavailable"):
    """The GPU type is unknown, or no machine of that type could be rented."""


class PodNotReady(FarmError, code="pod_not_ready"):
    """A pod's ComfyUI did not answer before the boot deadline (the pod was stopped)."""


class BudgetExceeded(FarmError, code="budget_exceeded", exit_code=12, precedence=5):
    """``--max-cost-usd`` would be exceeded: the run stops before overspending."""


class NoServerAvailable(ServerUnreachable, code="no_server_available"):
    """Every server of the pool is down or was left out by preflight."""


class ServerLost(LostContact, code="server_lost"):
    """A server stopped answering with a job in flight, and the job could not be moved."""


class PackMissing(PreflightFailed, code="pack_missing"):
    """A server or endpoint lacks the anime_pipeline pack (or a node type it needs)."""


class OutputDropped(PreflightFailed, code="serverless_output_dropped"):
    """A workflow writes an output that worker-comfyui does not return (only what a
    node reports under ``images``: core SaveImage / SaveVideo / SaveWEBM / SaveAnimated*)."""


class PayloadTooLarge(PromptRejected, code="payload_too_large"):
    """The job's request body would exceed RunPod's ``/run`` limit (10 MB)."""


class ServerlessJobFailed(ExecutionFailed, code="serverless_failed"):
    """A serverless job ended ``FAILED`` (the worker's error message is kept)."""


class ServerlessSubmitUnknown(ServerlessJobFailed, code="serverless_submit_unknown"):
    """``POST /run`` got no answer RunPod surely did not act on (a read timeout, a 5xx):
    the job may be running, so it is not sent again (that would pay for it twice)."""


class ServerlessTimeout(ExecutionFailed, code="serverless_timeout"):
    """A serverless job did not finish in time (``TIMED_OUT``, or the driver's deadline
    passed and it cancelled the job)."""


class ServerlessCancelled(Interrupted, code="serverless_cancelled"):
    """A serverless job was cancelled (by the driver on Ctrl-C, or from the console)."""


class ServerlessNoOutput(OutputMissing, code="serverless_no_output"):
    """``COMPLETED`` without the expected files (result too large for RunPod, or a
    save node the worker ignores)."""


FARM_ERROR_CLASSES: dict[str, type[DriverError]] = {cls.code: cls for cls in (
    FarmError, RunPodAuthError, RunPodApiError, GpuUnavailable, PodNotReady, BudgetExceeded, NoServerAvailable,
    ServerLost, PackMissing, OutputDropped, PayloadTooLarge, ServerlessJobFailed, ServerlessTimeout,
    ServerlessCancelled, ServerlessNoOutput, RunPodTransient, ServerlessSubmitUnknown)}

__all__ = [*(cls.__name__ for cls in FARM_ERROR_CLASSES.values()), "FARM_ERROR_CLASSES", "ConfigError"]
