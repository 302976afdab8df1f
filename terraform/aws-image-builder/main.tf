# The builder of a prepared image on AWS (issue 20): one instance from the newest stock
# Ubuntu 24.04 image whose user_data installs the NVIDIA server driver, python3-venv, uv
# (pinned and hashed, at /opt/ephemera/uv/bin/uv, where the run stack's custom_image expects
# it) and the bundle's locked requirements (--require-hashes) into /opt/ephemera/image/env,
# then powers the instance off (instance_initiated_shutdown_behavior "stop": its volume stays).
#
# Once it is stopped, Ephemera applies terraform/aws-image (a workspace of its own, holding
# only the AMI made from this instance), then destroys this whole workspace: only the AMI
# (and its snapshot) outlives the build. No secret is a variable or in user_data.

locals {
  tags = merge(var.extra_tags, {
    "ephemera"             = "true"
    "ephemera:image-build" = var.build_id
    "ephemera:workspace"   = var.workspace
    "ephemera:lock"        = var.lock_sha256
  })
  name = "ephemera-image-${substr(var.lock_sha256, 0, 12)}-${substr(sha256(var.build_id), 0, 8)}"
  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    build_id          = var.build_id
    lock_sha256       = var.lock_sha256
    requirements_b64  = base64encode(var.requirements_lock)
    nvidia_driver     = var.nvidia_driver
    build_timeout_min = ceil(var.build_timeout_seconds / 60)
  })
}

data "aws_ami" "stock" {
  most_recent = true
  owners      = length(var.image_owners) > 0 ? var.image_owners : ["099720109477"] # Canonical
  filter {
    name   = "name"
    values = [var.image_filter]
  }
  filter {
    name   = "state"
    values = ["available"]
  }
}

resource "aws_instance" "builder" {
  ami                                  = data.aws_ami.stock.id
  instance_type                        = var.instance_type
  subnet_id                            = var.subnet_id != "" ? var.subnet_id : null
  user_data_base64                     = base64gzip(local.user_data)
  instance_initiated_shutdown_behavior = "stop" # the power-off at the end keeps the volume the AMI is made from

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
  }

  root_block_device {
    volume_size = var.root_volume_gb
    volume_type = "gp3"
  }

  tags = { Name = "${local.name}-builder" }
}
