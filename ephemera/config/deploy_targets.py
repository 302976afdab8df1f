"""The config sections of the deploy targets: ``code_engine``, ``openwhisk`` and ``aws_lambda``
(the last in :mod:`ephemera.config.aws_lambda`).

Each platform's limits are facts of the platform, checked when the config loads:

- Code Engine functions run at most 120 s (``--maxexecutiontime``, default 60 s), jobs
  at most 86400 s, and re-run a failed job instance at most 5 times (``--retrylimit``);
  a function is ``public`` unless created otherwise: Ephemera's are ``private`` or
  ``project`` only.
- Stock Apache OpenWhisk allows an action 100 ms to 300 s (``--timeout``) and 128-512 MB;
  an operator may raise the time limit, which ``openwhisk.max_timeout`` then states.

A deployed action's time limit must also fit ``timeouts.action``: the reaper takes a
run whose action has not recorded anything for that long for one whose action died.
"""

from __future__ import annotations

from typing import Annotated, Literal

from croniter import croniter
from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from ephemera.config.fields import Duration, Name
from ephemera.config.aws_lambda import AwsLambdaSection
from ephemera.sections import Invalid, Label, Section

CE_FUNCTION_MAX_SECONDS = 120  # Code Engine limits: "Length of runtime | 120 seconds" for functions
CE_JOB_MAX_SECONDS = 86400  # "86400 seconds (24 hours)" for a job run
CE_JOB_MAX_RETRIES = 5  # "Retries | 3 | 5"
OW_STOCK_MAX_SECONDS = 300  # stock OpenWhisk: time-limit max = 5 m
OW_MIN_MEMORY_MB, OW_STOCK_MAX_MEMORY_MB = 128, 512


def _runtime(value: str) -> str:
    parts = value.split("-")
    if len(parts) != 2 or parts[0] != "python" or not parts[1].replace(".", "").isdigit() or not parts[1].startswith("3."):
        raise Invalid(
            f"'{value}' is not a Code Engine Python runtime id", "e.g. python-3.13 (`ibmcloud ce fn runtimes` lists them)"
        )
    return value


def _cron_text(value: str) -> str:
    if len(value.split()) not in (5, 6) or not croniter.is_valid(value):
        raise Invalid(f"'{value}' is not a cron expression of 5 fields (or 6, seconds last)", "e.g. '*/5 * * * *'")
    return value


Runtime = Annotated[
    str,
    Label("Code Engine runtime id"),
    AfterValidator(_runtime),
    WithJsonSchema({"type": "string", "pattern": r"^python-3\.\d+$"}),
]
Cron = Annotated[str, Label("cron"), AfterValidator(_cron_text), WithJsonSchema({"type": "string"})]


class CodeEngineSection(Section):
    """`ephemera deploy code-engine`: the project, the functions' runtime, visibility and time limits."""

    project: str = Field("ephemera", description="the Code Engine project the deploy selects")
    runtime: Runtime = Field("python-3.13", description="the functions' runtime (python-3.11 reaches end of life on 2026-10-31)")
    visibility: Literal["private", "project"] = Field(
        "private", description="who can reach the functions: private (VPE and the project) or project; never public"
    )
    function_timeout: Duration = Field(CE_FUNCTION_MAX_SECONDS, description="--maxexecutiontime of each function; at most 120s")
    job_timeout: Duration = Field(600, description="--maxexecutiontime of the jobs COS subscriptions start; at most 86400s")
    job_retries: int = Field(
        3, ge=0, le=CE_JOB_MAX_RETRIES, description="--retrylimit of the jobs: re-runs of an instance that exits non-zero (0-5)"
    )
    reaper_cron: Cron = Field(
        "*/5 * * * *",
        description="when the reap job runs (a cron subscription starts it), unless a rule of the config binds reap",
    )

    @model_validator(mode="after")
    def _limits(self) -> "CodeEngineSection":
        if self.function_timeout > CE_FUNCTION_MAX_SECONDS:
            raise Invalid(
                f"{self.function_timeout}s is over Code Engine's {CE_FUNCTION_MAX_SECONDS}s limit for functions",
                f"set at most {CE_FUNCTION_MAX_SECONDS}s",
                at=("function_timeout",),
            )
        if self.job_timeout > CE_JOB_MAX_SECONDS:
            raise Invalid(
                f"{self.job_timeout}s is over Code Engine's {CE_JOB_MAX_SECONDS}s limit for a job run",
                f"set at most {CE_JOB_MAX_SECONDS}s",
                at=("job_timeout",),
            )
        return self


class OpenWhiskSection(Section):
    """`functions-create.sh`: the package, the actions' limits and how object writes are seen."""

    package: Name = Field("ephemera", description="the OpenWhisk package that holds the actions and the bound config")
    timeout: Duration = Field(OW_STOCK_MAX_SECONDS, description="--timeout of each action; at most max_timeout")
    max_timeout: Duration = Field(
        OW_STOCK_MAX_SECONDS,
        description="the platform's action time limit (stock OpenWhisk: 300s; higher only if your operator raised it)",
    )
    memory: int = Field(
        256,
        ge=OW_MIN_MEMORY_MB,
        le=OW_STOCK_MAX_MEMORY_MB,
        description="--memory of each action in MB (stock OpenWhisk: 128-512)",
    )
    object_writes: Literal["scan", "cos_feed"] = Field(
        "scan",
        description="scan: an alarm finds completion markers by listing (Apache OpenWhisk has no COS feed); cos_feed: /whisk.system/cos/changes (IBM Cloud Functions only, retired)",
    )
    scan_cron: Cron = Field(
        "* * * * *", description="scan mode: when the marker scan runs (a marker is handled within one interval)"
    )
    reaper_cron: Cron = Field("*/5 * * * *", description="when the reap action runs, unless a rule of the config binds reap")

    @model_validator(mode="after")
    def _limits(self) -> "OpenWhiskSection":
        if self.timeout > self.max_timeout:
            raise Invalid(
                f"{self.timeout}s is over the platform's {self.max_timeout}s action limit (openwhisk.max_timeout)",
                f"set at most {self.max_timeout}s",
                at=("timeout",),
            )
        return self


SECTIONS: dict[str, type[Section]] = {
    "code_engine": CodeEngineSection,
    "openwhisk": OpenWhiskSection,
    "aws_lambda": AwsLambdaSection,
}
