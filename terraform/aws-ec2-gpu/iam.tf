# The run's VMs' identity: a role EC2 may assume, with one inline policy that names only
# the run's prefixes (run_prefixes, from Ephemera's storage layout: read its job spec and
# bundle; read, write and delete its heartbeats, logs, Lithops jobs and its own output
# prefix; read the one object whose write fired the run, that key only), and the
# instance profile that hands it to the instances. The VMs get the role's temporary
# credentials from IMDSv2: no key is on a VM, in a variable or in the state. The role
# lives and dies with the run's workspace.

locals {
  p = var.run_prefixes
  # a prefix "a/b/" grants a/b/*; a key grants itself (the same rule as the STS session policy)
  read_arns = [for k in local.p.read : "arn:aws:s3:::${local.p.state_bucket}/${k}${endswith(k, "/") ? "*" : ""}"]
  write_arns = concat([for k in local.p.write : "arn:aws:s3:::${local.p.state_bucket}/${k}${endswith(k, "/") ? "*" : ""}"],
  [for k in local.p.output : "arn:aws:s3:::${local.p.output_bucket}/${k}${endswith(k, "/") ? "*" : ""}"])
  input_arns = [for o in local.p.inputs : "arn:aws:s3:::${o.bucket}/${o.key}"] # exactly these keys, never a prefix
  listed = { for bucket in distinct([local.p.state_bucket, local.p.output_bucket]) : bucket => concat(
    bucket == local.p.state_bucket ? [for k in local.p.write : "${k}*"] : [],
    bucket == local.p.output_bucket ? [for k in local.p.output : "${k}*"] : [],
  ) }
  vm_policy = {
    Version = "2012-10-17"
    Statement = concat([
      { Sid = "ReadRun", Effect = "Allow", Action = ["s3:GetObject"], Resource = local.read_arns },
      { Sid = "WriteRun", Effect = "Allow", Action = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
      Resource = local.write_arns },
      ], [for arns in [local.input_arns] : { Sid = "ReadEvent", Effect = "Allow", Action = ["s3:GetObject"], Resource = arns } if length(arns) > 0],
      [for i, bucket in sort(keys(local.listed)) : {
        Sid       = "ListRun${i}", Effect = "Allow", Action = ["s3:ListBucket"], Resource = ["arn:aws:s3:::${bucket}"],
        Condition = { StringLike = { "s3:prefix" = local.listed[bucket] } }
    }])
  }
}

resource "aws_iam_role" "vm" {
  name        = "${local.name}-vm"
  description = "The VMs of Ephemera run ${var.run_id}: its S3 prefixes only"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "run_prefixes" {
  name   = "run-prefixes"
  role   = aws_iam_role.vm.id
  policy = jsonencode(local.vm_policy)
}

resource "aws_iam_instance_profile" "vm" {
  name = "${local.name}-vm"
  role = aws_iam_role.vm.name
}
