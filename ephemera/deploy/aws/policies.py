"""The IAM and notification documents of an AWS deployment, as plain dicts.

Each function has a role of its own (``<prefix>-<function>``), trusted by Lambda only,
whose inline policy allows what that function's action needs and nothing else:

- its own log group ``/aws/lambda/<function>`` (create, and write streams in it);
- ``secretsmanager:GetSecretValue`` on the config secret alone (its ARN ends in six
  random characters: "arn:aws:secretsmanager:...:secret:<name>-??????");
- when the config's storage is AWS S3 reached with the function's own role (no keys in
  ``aws_s3``): the objects of the state and output buckets -- read and write, or only
  read for ``status`` -- and listing those buckets; with keys in the config the
  role gets no S3 right at all (the config's keys are used);
- ``sts:AssumeRole`` on ``aws_s3.vm_role_arn`` for ``apply`` only (it mints each
  run's VM credentials from that role).

The scheduler's role (``<prefix>-scheduler``) is trusted by ``scheduler.amazonaws.com``
only for schedules of this account ("aws:SourceAccount"), and may invoke only the
functions the schedules target. S3 reaches a function through the function's resource
policy (``aws lambda add-permission``), limited to the bucket's ARN and the account.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VERSION = "2012-10-17"
S3_READ = ["s3:GetObject"]
S3_WRITE = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
READ_ONLY_ACTIONS = ("status",)  # actions that never write to storage


@dataclass(frozen=True)
class Function:
    """One Lambda function of the deployment."""

    name: str  # the function's name, e.g. ephemera-destroy-events
    action: str  # the Ephemera action it runs
    entry: str  # "direct" (IAM-authorised invocations, remote allow-list) or "events" (S3 and schedules only)
    rule_params: dict = field(default_factory=dict)  # params of the one object-write rule it serves (S3 events carry none)


@dataclass(frozen=True)
class Account:
    """Where the deployment lives: what every ARN names."""

    id: str  # the 12-digit account id
    region: str  # e.g. us-east-1
    partition: str = "aws"  # aws, aws-cn or aws-us-gov

    def arn(self, service: str, resource: str, *, regional: bool = True, account: bool = True) -> str:
        return f"arn:{self.partition}:{service}:{self.region if regional else ''}:{self.id if account else ''}:{resource}"


def function_arn(account: Account, name: str) -> str:
    return account.arn("lambda", f"function:{name}")


def role_arn(account: Account, name: str) -> str:
    return account.arn("iam", f"role/{name}", regional=False)


def secret_arn_pattern(account: Account, secret: str) -> str:
    return account.arn("secretsmanager", f"secret:{secret}-??????")


def bucket_arn(account: Account, bucket: str) -> str:
    return account.arn("s3", bucket, regional=False, account=False)


def lambda_trust() -> dict:
    """Only the Lambda service may assume a function's role."""
    return {
        "Version": VERSION,
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }


def function_policy(
    account: Account, fn: Function, *, secret: str, buckets: list[str], storage_by_role: bool, vm_role: str | None
) -> dict:
    """The least-privilege inline policy of ``fn``'s role."""
    group = account.arn("logs", f"log-group:/aws/lambda/{fn.name}")
    statements: list[dict] = [
        {
            "Sid": "OwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [group, f"{group}:*"],
        },
        {
            "Sid": "Config",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": secret_arn_pattern(account, secret),
        },
    ]
    if storage_by_role:
        names = sorted(set(buckets))
        actions = S3_READ if fn.action in READ_ONLY_ACTIONS else S3_WRITE
        statements.append(
            {
                "Sid": "StateObjects",
                "Effect": "Allow",
                "Action": actions,
                "Resource": [f"{bucket_arn(account, b)}/*" for b in names],
            }
        )
        statements.append(
            {
                "Sid": "StateList",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": [bucket_arn(account, b) for b in names],
            }
        )
    if vm_role and fn.action == "apply":
        statements.append({"Sid": "MintVMKeys", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": vm_role})
    return {"Version": VERSION, "Statement": statements}


def scheduler_trust(account: Account) -> dict:
    """Only EventBridge Scheduler, for schedules of this account, may assume the scheduler's role."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "scheduler.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account.id}},
            }
        ],
    }


def scheduler_policy(account: Account, targets: list[str]) -> dict:
    """The scheduler may invoke the functions its schedules target, and nothing else."""
    arns = sorted({function_arn(account, name) for name in targets})
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "InvokeTargets",
                "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                "Resource": arns + [f"{a}:*" for a in arns],
            }
        ],
    }


def notification_configuration(account: Account, filters: list[tuple[str, str, str, str]]) -> dict:
    """A bucket's notification configuration: one Lambda configuration per (id, function,
    prefix, suffix), for object creations only."""
    configs = []
    for config_id, function, prefix, suffix in filters:
        rules = ([{"Name": "prefix", "Value": prefix}] if prefix else []) + (
            [{"Name": "suffix", "Value": suffix}] if suffix else []
        )
        entry: dict = {"Id": config_id, "LambdaFunctionArn": function_arn(account, function), "Events": ["s3:ObjectCreated:*"]}
        if rules:
            entry["Filter"] = {"Key": {"FilterRules": rules}}
        configs.append(entry)
    return {"LambdaFunctionConfigurations": configs}


def overlapping(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Whether two (prefix, suffix) filters can match one key: S3 refuses such configurations
    for the same event type ("Configurations overlap")."""
    (pa, sa), (pb, sb) = a, b
    return (pa.startswith(pb) or pb.startswith(pa)) and (sa.endswith(sb) or sb.endswith(sa))
