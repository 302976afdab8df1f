"""The building blocks of the AWS command plan: the plan and its files, AWS names, one
``aws`` CLI command, a role's steps, and the config's triggers and rules as plain values.

:mod:`ephemera.deploy.aws.plan` builds the functions' steps with them,
:mod:`ephemera.deploy.aws.sources` the schedules' and the S3 notifications'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ephemera.config import Config
from ephemera.deploy.aws.policies import Function
from ephemera.deploy.steps import Step

MAX_NAME = 64  # function and role names: at most 64 characters


@dataclass
class AwsPlan:
    """The plan: its steps, and the files its commands read (``file://`` paths under ``root``)."""

    root: str  # the folder the plan's files are written to (absolute)
    steps: list[Step] = field(default_factory=list)  # in order
    files: dict[str, str] = field(default_factory=dict)  # path relative to root -> content (no secret)
    functions: list[Function] = field(default_factory=list)  # every function it deploys
    image_context: str = ""  # the Terraform image's build context (absolute), "" when no function is an image

    def put(self, relative: str, content: str) -> str:
        """Keep a file for the plan; its absolute path, as the commands name it."""
        self.files[relative] = content
        return f"{self.root.rstrip('/')}/{relative}"


def aws_name(text: str) -> str:
    """A Lambda/IAM/Scheduler name: letters, digits, '-' and '_' only, at most 64."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)[:MAX_NAME]


def cli(*args: str, region: str) -> list[str]:
    """One ``aws`` command in the plan's region."""
    return ["aws", *args, "--region", region]


def triggers_of(config: Config) -> list[dict]:
    """The triggers as the plan's step builders take them (plain values, parsed schedule)."""
    return [t.to_dict() for t in config.triggers]


def rules(config: Config) -> list[dict]:
    """The rules as plain values."""
    return [r.to_dict() for r in config.rules]


def role_steps(name: str, region: str, trust_file: str, policy_file: str) -> list[Step]:
    """A role with its trust and its one inline policy (both from files), waited for until IAM shows it."""
    return [
        Step(
            what=f"role {name}",
            probe=cli("iam", "get-role", "--role-name", name, region=region),
            update=cli(
                "iam",
                "update-assume-role-policy",
                "--role-name",
                name,
                "--policy-document",
                f"file://{trust_file}",
                region=region,
            ),
            create=cli(
                "iam", "create-role", "--role-name", name, "--assume-role-policy-document", f"file://{trust_file}", region=region
            ),
        ),
        Step(
            what=f"the least-privilege policy of role {name}",
            create=cli(
                "iam",
                "put-role-policy",
                "--role-name",
                name,
                "--policy-name",
                "ephemera",
                "--policy-document",
                f"file://{policy_file}",
                region=region,
            ),
        ),
        Step(what=f"role {name} visible", create=cli("iam", "wait", "role-exists", "--role-name", name, region=region)),
    ]
