# One run's environment on AWS: a VPC with one public subnet (an internet gateway for
# egress: package mirrors, PyPI, S3), a security group that allows no inbound traffic
# unless debug_access is on, and worker_count GPU instances that boot from the run's
# bundle (cloud-init runs Ephemera's bootstrap: driver, bundle, GPU proof, agent). No
# secret is a variable: the instances reach S3 as the run's instance profile (iam.tf),
# whose policy names only the run's prefixes, through IMDSv2. Every resource carries
# the run id and the workspace as tags (the provider's default_tags), so an orphan
# sweep can find anything a crash left behind.

locals {
  tags = merge(var.extra_tags, {
    "ephemera"           = "true"
    "ephemera:run"       = var.run_id
    "ephemera:workspace" = var.workspace
  })
  # AWS names (IAM roles: 64 chars, unique in the account): the run id's start and a hash of
  # all of it (a long workspace name must not cut off the part that tells runs apart); the tags hold it whole
  name = "eph-${trim(substr(replace(var.run_id, "/[^A-Za-z0-9-]/", "-"), 0, 30), "-")}-${substr(sha256(var.run_id), 0, 10)}"
  zone = var.availability_zone != "" ? var.availability_zone : try(sort(data.aws_ec2_instance_type_offerings.zones.locations)[0], "")

  # the image families: name pattern (two numbers: the serial date and its point release) and
  # publisher; the names say the architecture (amd64 / x86_64: the ARM64 DLAMI has its own name)
  families = {
    "ubuntu-24.04" = {
      filter  = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
      pattern = "^ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24\\.04-amd64-server-([0-9]{8})(?:\\.([0-9]+))?$"
      owners  = ["099720109477"] # Canonical
      driver  = true
    }
    "dlami-base" = {
      filter  = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) *"
      pattern = "^Deep Learning Base OSS Nvidia Driver GPU AMI \\(Ubuntu 24\\.04\\) ([0-9]{8})(?:\\.([0-9]+))?$"
      owners  = ["amazon"]
      driver  = false
    }
  }
  family = local.families[var.image]
  # the newest by creation date first: the numeric choice is made among the 20 newest
  candidate_ids = var.image_id != "" ? [] : slice(data.aws_ami_ids.family[0].ids, 0, min(20, length(data.aws_ami_ids.family[0].ids)))
  image_id      = var.image_id != "" ? var.image_id : module.newest_image.id
}

data "aws_ec2_instance_type_offerings" "zones" {
  location_type = "availability-zone"
  filter {
    name   = "instance-type"
    values = [var.instance_type]
  }
}

data "aws_ami_ids" "family" {
  count  = var.image_id == "" ? 1 : 0
  owners = length(var.image_owners) > 0 ? var.image_owners : local.family.owners
  filter {
    name   = "name"
    values = [local.family.filter]
  }
  filter {
    name   = "state"
    values = ["available"]
  }
}

data "aws_ami" "candidate" {
  for_each = toset(local.candidate_ids)
  owners   = length(var.image_owners) > 0 ? var.image_owners : local.family.owners
  filter {
    name   = "image-id"
    values = [each.key]
  }
}

module "newest_image" {
  source  = "./modules/newest-image"
  images  = { for id, ami in data.aws_ami.candidate : id => ami.name }
  pattern = local.family.pattern
}

module "user_data" {
  source               = "./modules/user-data"
  count                = var.worker_count
  worker               = count.index
  run_id               = var.run_id
  vm_boot              = var.vm_boot[count.index]
  bootstrap_script     = var.bootstrap_script
  instance_type        = var.instance_type
  nvidia_driver        = var.nvidia_driver
  install_driver       = var.image_id != "" ? true : local.family.driver
  custom_image         = var.custom_image
  hard_deadline        = var.hard_deadline
  hard_timeout_seconds = var.hard_timeout_seconds
  heartbeat_interval   = var.heartbeat_interval
}

resource "aws_vpc" "run" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = { Name = local.name }
}

resource "aws_internet_gateway" "run" {
  vpc_id = aws_vpc.run.id
  tags   = { Name = "${local.name}-igw" }
}

resource "aws_subnet" "run" {
  vpc_id                  = aws_vpc.run.id
  cidr_block              = var.vpc_cidr
  availability_zone       = local.zone
  map_public_ip_on_launch = true # egress through the internet gateway; the security group admits nothing
  tags                    = { Name = "${local.name}-subnet" }

  lifecycle {
    precondition {
      condition     = local.zone != ""
      error_message = "No availability zone of the region offers this instance_type: choose another type or region, or set availability_zone."
    }
  }
}

resource "aws_route_table" "run" {
  vpc_id = aws_vpc.run.id
  tags   = { Name = "${local.name}-rt" }
}

resource "aws_route" "egress" {
  route_table_id         = aws_route_table.run.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.run.id
}

resource "aws_route_table_association" "run" {
  subnet_id      = aws_subnet.run.id
  route_table_id = aws_route_table.run.id
}

resource "aws_security_group" "run" {
  name        = "${local.name}-sg"
  description = "Ephemera run ${var.run_id}: egress only"
  vpc_id      = aws_vpc.run.id
  tags        = { Name = "${local.name}-sg" }
}

# Egress only: package mirrors, PyPI, S3.
resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.run.id
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "debug_ssh" {
  count             = var.debug_access ? 1 : 0
  security_group_id = aws_security_group.run.id
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = var.debug_ssh_cidr
  lifecycle {
    precondition {
      condition     = var.debug_ssh_cidr != "" && var.debug_ssh_cidr != "0.0.0.0/0"
      error_message = "debug_access needs debug_ssh_cidr set to your own address, e.g. 203.0.113.7/32."
    }
  }
}

resource "aws_key_pair" "debug" {
  count      = var.debug_access ? 1 : 0
  key_name   = "${local.name}-debug"
  public_key = var.debug_ssh_public_key
  lifecycle {
    precondition {
      condition     = var.debug_ssh_public_key != ""
      error_message = "debug_access needs debug_ssh_public_key."
    }
  }
}

# The run's generation of VMs: a recovery (the same run re-applied with recovery + 1,
# after a preemption) replaces this, and with it every instance (replace_triggered_by).
resource "terraform_data" "generation" {
  triggers_replace = var.recovery
}

resource "aws_instance" "worker" {
  count                                = var.worker_count
  ami                                  = local.image_id
  instance_type                        = var.instance_type
  subnet_id                            = aws_subnet.run.id
  vpc_security_group_ids               = [aws_security_group.run.id]
  iam_instance_profile                 = aws_iam_instance_profile.vm.name
  key_name                             = var.debug_access ? aws_key_pair.debug[0].key_name : null
  instance_initiated_shutdown_behavior = "terminate" # the VM's own deadline power-off ends its billing
  user_data_base64                     = base64gzip(module.user_data[count.index].user_data)
  tags                                 = { Name = "${local.name}-w${count.index}", "ephemera:worker" = tostring(count.index) }
  volume_tags                          = local.tags # default_tags do not reach the volumes an instance creates

  # the VM's identity: role credentials from the metadata service, session tokens only (IMDSv2)
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_gb
    delete_on_termination = true
    encrypted             = true
  }

  dynamic "instance_market_options" {
    for_each = var.spot ? [1] : []
    content {
      market_type = "spot"
      spot_options {
        spot_instance_type             = "one-time" # a one-time request ends with its instance: nothing is left to bill
        instance_interruption_behavior = "terminate"
        max_price                      = var.spot_max_price != "" ? var.spot_max_price : null
      }
    }
  }

  lifecycle {
    replace_triggered_by = [terraform_data.generation]
    precondition {
      condition     = length(var.vm_boot) == var.worker_count
      error_message = "vm_boot must hold one boot document per worker (Ephemera writes it before each apply)."
    }
    precondition {
      condition     = local.image_id != ""
      error_message = "No AMI of the image family was found in this region: set image_id to an AMI id, or image_owners to the accounts that publish it."
    }
  }
}
