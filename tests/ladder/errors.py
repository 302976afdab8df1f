"""Provider error texts as a failed apply's log shows them, for the ladder's tests.

Their shapes follow the providers' own: the AWS provider (SDK for Go v2) ends an API
failure with ``api error <Code>: <message>``; the IBM provider prints the VPC API's error
JSON (``"code": "over_quota"``) or an instance's status reasons; the messages are the
ones the providers' docs give for those codes."""

AWS_NO_CAPACITY = """\
Error: creating EC2 Instance: operation error EC2: RunInstances, https response error StatusCode: 500, RequestID: 5e8b1c2d-0f1a-4c1e-9a57-2f0c6d4b7a10, api error InsufficientInstanceCapacity: We currently do not have sufficient g6.xlarge capacity in the Availability Zone you requested (us-east-1a). Our system will be working on provisioning additional capacity. You can currently get g6.xlarge capacity by not specifying an Availability Zone in your request or choosing us-east-1b, us-east-1c.

  with aws_instance.worker[0],
  on main.tf line 141, in resource "aws_instance" "worker":
 141: resource "aws_instance" "worker" {
"""

AWS_VCPU_QUOTA = """\
Error: creating EC2 Instance: operation error EC2: RunInstances, https response error StatusCode: 400, RequestID: 0b7c9e11-6a55-4f3a-8d0e-1c2b3a4d5e6f, api error VcpuLimitExceeded: You have requested more vCPU capacity than your current vCPU limit of 0 allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.
"""

IBM_NO_CAPACITY = """\
Error: [ERROR] Instance (0717_5b1c9a6e-7d2f-4c55-a1e0-3f9d8b7c6a51) went into failed state during the operation
 [
  {
    "code": "cannot_start_capacity",
    "message": "Can't start instance because resource capacity is unavailable.",
    "more_info": "https://cloud.ibm.com/docs/vpc?topic=vpc-instance-status-messages#cannot-start-capacity"
  }
]

  with ibm_is_instance.worker[0],
  on main.tf line 97, in resource "ibm_is_instance" "worker":
"""

IBM_OVER_QUOTA = """\
Error: [ERROR] Error creating instance: The request would exceed the quota for a resource type.
{
    "StatusCode": 400,
    "Result": {
        "errors": [
            {
                "code": "over_quota",
                "message": "The request would exceed the quota for a resource type.",
                "more_info": "https://cloud.ibm.com/docs/vpc?topic=vpc-quotas"
            }
        ],
        "trace": "4b1f2a33-8e0d-4c1b-9f7a-6d2e5c4b3a21"
    }
}
"""

# not a capacity error: a wrong image id (its code is not in the table), and prose that merely says "capacity"
IBM_BAD_IMAGE = """\
Error: [ERROR] Error creating instance: Image not found
{
    "StatusCode": 404,
    "Result": {"errors": [{"code": "not_found", "message": "Image r006-0000 not found; this image has no capacity"}]}
}
"""
PROSE_ONLY = "Error: creating instance 2 of 2: 500 internal error (insufficient capacity in zone); InsufficientInstanceCapacity mentioned in prose"
