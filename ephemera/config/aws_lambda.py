"""The ``aws_lambda`` config section: where and how ``ephemera deploy aws`` deploys.

Lambda's limits are facts of the platform, checked when the config loads: a function
runs at most 900 seconds ("Function timeout: 900 seconds (15 minutes)") with 128 to
10,240 MB of memory; an asynchronous invocation (S3 notifications and EventBridge
Scheduler both invoke asynchronously) is retried 0 to 2 times and kept at most 21,600
seconds (6 hours) ("MaximumRetryAttempts ... Maximum value of 2",
"MaximumEventAgeInSeconds ... Minimum value of 60. Maximum value of 21600").
A function's time limit must also fit ``timeouts.action`` (the deploy checks it): the
reaper takes a run whose action recorded nothing for that long for one whose action died.
"""

from __future__ import annotations

from typing import Annotated, Literal

from croniter import croniter
from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from ephemera.config.fields import Duration
from ephemera.sections import Invalid, Label, Section

LAMBDA_MAX_SECONDS = 900
LAMBDA_MIN_MEMORY_MB, LAMBDA_MAX_MEMORY_MB = 128, 10240
ASYNC_MAX_RETRIES = 2
ASYNC_MIN_AGE, ASYNC_MAX_AGE = 60, 21600


def _account(value: str) -> str:
    if len(value) != 12 or not value.isdigit():
        raise Invalid(
            f"'{value}' is not an AWS account id (12 digits)", "`aws sts get-caller-identity --query Account` prints it"
        )
    return value


def _name(value: str) -> str:
    ok = value and len(value) <= 32 and value[0].isalpha() and all(c.isalnum() or c == "-" for c in value)
    if not ok:
        raise Invalid(
            f"'{value}' is not a name prefix of letters, digits and '-' (at most 32, starting with a letter)", "e.g. ephemera"
        )
    return value


def _region(value: str) -> str:
    parts = value.split("-")
    if len(parts) < 3 or not parts[-1].isdigit() or not all(p.isalpha() for p in parts[:-1]):
        raise Invalid(f"'{value}' is not an AWS region name", "e.g. us-east-1")
    return value


def _cron(value: str) -> str:
    if len(value.split()) not in (5, 6) or not croniter.is_valid(value):
        raise Invalid(f"'{value}' is not a cron expression of 5 fields (or 6, seconds last)", "e.g. '*/5 * * * *'")
    return value


# (the ``Cron`` of ephemera.deploy.settings, which registers this section: not imported from there, to avoid a cycle)
Cron = Annotated[str, Label("cron"), AfterValidator(_cron), WithJsonSchema({"type": "string"})]
Account = Annotated[
    str, Label("AWS account id"), AfterValidator(_account), WithJsonSchema({"type": "string", "pattern": r"^\d{12}$"})
]
Prefix = Annotated[str, Label("name prefix"), AfterValidator(_name), WithJsonSchema({"type": "string"})]
Region = Annotated[str, Label("AWS region"), AfterValidator(_region), WithJsonSchema({"type": "string"})]


class AwsLambdaSection(Section):
    """`ephemera deploy aws`: the account and region, the functions' runtime and limits, how events retry."""

    account_id: Account | None = Field(
        None, description="the AWS account the functions live in (its ARNs name it); required to deploy"
    )
    region: Region = Field(
        "us-east-1", description="the region of the functions, schedules and config secret (the state bucket's region)"
    )
    prefix: Prefix = Field(
        "ephemera", description="the prefix of every name the deploy makes (functions, roles, secret, schedule group)"
    )
    runtime: Literal["python3.12", "python3.13"] = Field("python3.13", description="the functions' Lambda runtime")
    architecture: Literal["x86_64", "arm64"] = Field(
        "x86_64", description="the functions' instruction set (the package's wheels are built for it)"
    )
    timeout: Duration = Field(300, description="each function's time limit; at most 900s and timeouts.action")
    memory: int = Field(
        512, ge=LAMBDA_MIN_MEMORY_MB, le=LAMBDA_MAX_MEMORY_MB, description="each function's memory in MB (128-10240)"
    )
    event_retries: int = Field(
        2,
        ge=0,
        le=ASYNC_MAX_RETRIES,
        description="retries of an S3 or schedule event whose action failed with a retryable error (0-2)",
    )
    event_max_age: Duration = Field(3600, description="how long Lambda keeps retrying an event (60s-6h)")
    reaper_cron: Cron = Field("*/5 * * * *", description="when the reap function runs, unless a rule of the config binds reap")

    @model_validator(mode="after")
    def _limits(self) -> "AwsLambdaSection":
        if self.timeout > LAMBDA_MAX_SECONDS:
            raise Invalid(
                f"{self.timeout}s is over Lambda's {LAMBDA_MAX_SECONDS}s limit",
                f"set at most {LAMBDA_MAX_SECONDS}s",
                at=("timeout",),
            )
        if not ASYNC_MIN_AGE <= self.event_max_age <= ASYNC_MAX_AGE:
            raise Invalid(
                f"{self.event_max_age}s is outside Lambda's {ASYNC_MIN_AGE}-{ASYNC_MAX_AGE}s for an event's age",
                f"set {ASYNC_MIN_AGE}s to {ASYNC_MAX_AGE}s",
                at=("event_max_age",),
            )
        return self
