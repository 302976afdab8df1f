# One prepared image on AWS (issue 20): the AMI made from a stopped builder instance
# (terraform/aws-image-builder, another workspace, destroyed once this one is applied).
# This workspace holds only the AMI, so `ephemera image delete` destroys exactly it;
# CreateImage copies the instance's volumes into snapshots, so the AMI outlives the instance.

locals {
  name = "ephemera-image-${substr(var.lock_sha256, 0, 12)}-${substr(sha256(var.build_id), 0, 8)}"
}

resource "aws_ami_from_instance" "image" {
  name               = local.name
  description        = "Ephemera prepared image of lock ${var.lock_sha256}"
  source_instance_id = var.source_instance_id
  tags               = { Name = local.name }
}
