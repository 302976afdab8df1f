"""What the role of a Terraform function (apply, destroy, reap) adds to a function's policy.

The ``aws-ec2-gpu`` stack makes, for each run: a VPC, a subnet, an internet gateway, a
route table and its route and association, a security group and its rules, instances
(their volumes and network interfaces), an IAM role ``eph-...-vm`` with one inline
policy, an instance profile ``eph-...-vm``, and with debug access a key pair. The
provider's ``default_tags`` tag every one of them ``ephemera:run``. So the role may:

- **create** EC2 resources only when the request tags them ``ephemera:run``
  (``aws:RequestTag/ephemera:run`` present), and tag only in the creating call
  (``ec2:CreateAction``); ``RunInstances`` may also use any AMI, make network
  interfaces (in the run's subnet), and use subnets, security groups and key pairs that
  carry the tag; a security group's rules are reached through their tagged group;
- **change or delete** EC2 resources only when they carry the tag
  (``aws:ResourceTag/ephemera:run`` present): never a resource of the account that is
  not a run's;
- **describe** EC2 (Describe* calls take no resource-level permission: ``*``);
- **IAM**: roles and instance profiles named ``eph-*`` only, created only with the
  tag, and ``iam:PassRole`` of those roles to EC2 alone (``iam:PassedToService``);
- **S3**: the Terraform state's objects under ``<prefix>/`` of the state bucket (state,
  lock file, owner and variables records) and listing that prefix, nothing else.

The run id is not known when the role is made, so the conditions ask for the tag's
presence, not its value; the tag's value is Terraform's to set, from the run.
"""

from __future__ import annotations

from ephemera.deploy.aws.policies import Account, bucket_arn

TAG = "ephemera:run"
NAME_PREFIX = "eph-"  # the stack's names: "eph-<run id part>-<hash>..." (local.name)
EC2_CREATE = [
    "ec2:CreateVpc",
    "ec2:CreateSubnet",
    "ec2:CreateInternetGateway",
    "ec2:CreateRouteTable",
    "ec2:CreateSecurityGroup",
    "ec2:CreateKeyPair",
    "ec2:ImportKeyPair",
    "ec2:RunInstances",
]
EC2_CHANGE = [
    "ec2:AttachInternetGateway",
    "ec2:DetachInternetGateway",
    "ec2:CreateRoute",
    "ec2:DeleteRoute",
    "ec2:AssociateRouteTable",
    "ec2:DisassociateRouteTable",
    "ec2:ModifyVpcAttribute",
    "ec2:ModifySubnetAttribute",
    "ec2:AuthorizeSecurityGroupEgress",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:ModifyInstanceAttribute",
    "ec2:TerminateInstances",
    "ec2:DeleteVpc",
    "ec2:DeleteSubnet",
    "ec2:DeleteInternetGateway",
    "ec2:DeleteRouteTable",
    "ec2:DeleteSecurityGroup",
    "ec2:DeleteKeyPair",
    "ec2:CreateTags",
    "ec2:DeleteTags",
]
IAM_ACTIONS = [
    "iam:GetRole",
    "iam:DeleteRole",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:ListRolePolicies",
    "iam:ListAttachedRolePolicies",
    "iam:ListInstanceProfilesForRole",
    "iam:PutRolePolicy",
    "iam:GetRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:UpdateAssumeRolePolicy",
    "iam:GetInstanceProfile",
    "iam:DeleteInstanceProfile",
    "iam:TagInstanceProfile",
    "iam:UntagInstanceProfile",
    "iam:AddRoleToInstanceProfile",
    "iam:RemoveRoleFromInstanceProfile",
]


def terraform_statements(account: Account, state_bucket: str, state_prefix: str) -> list[dict]:
    """The statements a Terraform function's role gets besides its logs and config."""
    ec2 = account.arn("ec2", "*")
    roles = account.arn("iam", f"role/{NAME_PREFIX}*", regional=False)
    profiles = account.arn("iam", f"instance-profile/{NAME_PREFIX}*", regional=False)
    folder = f"{state_prefix.strip('/')}/" if state_prefix.strip("/") else ""
    tagged_request = {"Null": {f"aws:RequestTag/{TAG}": "false"}}
    tagged_resource = {"Null": {f"aws:ResourceTag/{TAG}": "false"}}
    creates = [a for a in EC2_CREATE if a != "ec2:RunInstances"]
    sg_rules = [
        "ec2:AuthorizeSecurityGroupEgress",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupEgress",
        "ec2:RevokeSecurityGroupIngress",
    ]
    return [
        {"Sid": "Ec2Describe", "Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
        {"Sid": "Ec2CreateTagged", "Effect": "Allow", "Action": creates, "Resource": ec2, "Condition": tagged_request},
        {
            "Sid": "Ec2TagOnCreate",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": ec2,
            "Condition": {"StringEquals": {"ec2:CreateAction": EC2_CREATE}},
        },
        {
            "Sid": "Ec2RunTagged",
            "Effect": "Allow",
            "Action": "ec2:RunInstances",
            "Resource": [account.arn("ec2", "instance/*"), account.arn("ec2", "volume/*")],
            "Condition": tagged_request,
        },
        {
            "Sid": "Ec2RunAnyImageNewInterface",
            "Effect": "Allow",
            "Action": "ec2:RunInstances",
            "Resource": [account.arn("ec2", "image/*", account=False), account.arn("ec2", "network-interface/*")],
        },
        {
            "Sid": "Ec2RunInRunNetwork",
            "Effect": "Allow",
            "Action": "ec2:RunInstances",
            "Resource": [
                account.arn("ec2", "subnet/*"),
                account.arn("ec2", "security-group/*"),
                account.arn("ec2", "key-pair/*"),
            ],
            "Condition": tagged_resource,
        },
        {"Sid": "Ec2ChangeTagged", "Effect": "Allow", "Action": EC2_CHANGE, "Resource": ec2, "Condition": tagged_resource},
        {
            "Sid": "Ec2SecurityGroupRules",
            "Effect": "Allow",
            "Action": sg_rules,
            "Resource": account.arn("ec2", "security-group-rule/*"),
        },
        {
            "Sid": "RunRolesCreateTagged",
            "Effect": "Allow",
            "Action": ["iam:CreateRole", "iam:CreateInstanceProfile"],
            "Resource": [roles, profiles],
            "Condition": tagged_request,
        },
        {"Sid": "RunRoles", "Effect": "Allow", "Action": IAM_ACTIONS, "Resource": [roles, profiles]},
        {
            "Sid": "PassRunRolesToEc2",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": roles,
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        },
        {
            "Sid": "TerraformState",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": f"{bucket_arn(account, state_bucket)}/{folder}*",
        },
        {
            "Sid": "TerraformStateList",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn(account, state_bucket),
            "Condition": {"StringLike": {"s3:prefix": [f"{folder}*"]}},
        },
    ]
