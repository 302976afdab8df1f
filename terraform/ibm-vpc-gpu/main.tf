# One run's environment: a VPC, a public gateway (egress only), one subnet, a
# security group that allows no inbound traffic unless debug_access is on, and
# worker_count GPU instances that install the NVIDIA driver, Python and Ephemera
# with cloud-init and start the bridge agent. Every resource carries the run id and
# workspace as tags, so an orphan sweep can find anything a crash left behind.

locals {
  zone       = var.zone != "" ? var.zone : "${var.region}-1"
  cos_region = var.cos_region != "" ? var.cos_region : var.region
  # IBM tags: lowercase "key:value"; the run id and workspace make resources findable
  tags = distinct(concat([
    "ephemera",
    "ephemera-run:${lower(var.run_id)}",
    "ephemera-workspace:${lower(var.workspace)}",
  ], var.extra_tags))
  # VPC names: lowercase letters, digits and '-', starting with a letter
  name = "eph-${trim(substr(replace(lower(var.run_id), "/[^a-z0-9-]/", "-"), 0, 40), "-")}"

  ubuntu_images = sort([
    for img in data.ibm_is_images.public.images : img.name
    if can(regex("^ibm-ubuntu-${var.ubuntu_version}-[0-9]+-minimal-amd64-[0-9]+$", img.name))
  ])
  image_name = var.image_name != "" ? var.image_name : (
    length(local.ubuntu_images) > 0 ? local.ubuntu_images[length(local.ubuntu_images) - 1] : "no-ubuntu-${var.ubuntu_version}-image-found"
  )

  # The Ephemera config the agent on each VM reads (written mode 0600 by cloud-init).
  cos_settings = {
    for k, v in {
      region              = local.cos_region
      endpoint_type       = "direct"
      endpoint            = var.cos_endpoint
      access_key_id       = var.cos_hmac_access_key_id
      secret_access_key   = var.cos_hmac_secret_access_key
      api_key             = var.cos_hmac_access_key_id == "" ? var.cos_api_key : ""
      service_instance_id = var.cos_service_instance_id
    } : k => v if v != ""
  }
  agent_config = {
    run_id             = var.run_id
    heartbeat_interval = var.heartbeat_interval
    job_key            = var.job_key
    config = {
      storage   = { backend = "ibm_cos", bucket = var.state_bucket }
      ibm_cos   = local.cos_settings
      workspace = { name = var.workspace, stack = "ibm-vpc-gpu" }
    }
  }
}

data "ibm_is_images" "public" {
  visibility = "public"
  status     = "available"
}

data "ibm_is_image" "boot" {
  name = local.image_name
}

resource "ibm_is_vpc" "run" {
  name                      = local.name
  resource_group            = var.resource_group_id
  address_prefix_management = "auto"
  tags                      = local.tags
}

resource "ibm_is_public_gateway" "run" {
  name           = "${local.name}-gw"
  vpc            = ibm_is_vpc.run.id
  zone           = local.zone
  resource_group = var.resource_group_id
  tags           = local.tags
}

resource "ibm_is_subnet" "run" {
  name                     = "${local.name}-subnet"
  vpc                      = ibm_is_vpc.run.id
  zone                     = local.zone
  total_ipv4_address_count = 64
  public_gateway           = ibm_is_public_gateway.run.id
  resource_group           = var.resource_group_id
  tags                     = local.tags
}

resource "ibm_is_security_group" "run" {
  name           = "${local.name}-sg"
  vpc            = ibm_is_vpc.run.id
  resource_group = var.resource_group_id
  tags           = local.tags
}

# Egress only: package mirrors, PyPI, COS. (Rules are parts of the group: no tags.)
resource "ibm_is_security_group_rule" "egress" {
  group     = ibm_is_security_group.run.id
  direction = "outbound"
  remote    = "0.0.0.0/0"
}

resource "ibm_is_security_group_rule" "debug_ssh" {
  count     = var.debug_access ? 1 : 0
  group     = ibm_is_security_group.run.id
  direction = "inbound"
  remote    = var.debug_ssh_cidr
  tcp {
    port_min = 22
    port_max = 22
  }
  lifecycle {
    precondition {
      condition     = var.debug_ssh_cidr != "" && var.debug_ssh_cidr != "0.0.0.0/0"
      error_message = "debug_access needs debug_ssh_cidr set to your own address, e.g. 203.0.113.7/32."
    }
  }
}

resource "ibm_is_ssh_key" "debug" {
  count          = var.debug_access ? 1 : 0
  name           = "${local.name}-debug"
  public_key     = var.debug_ssh_public_key
  resource_group = var.resource_group_id
  tags           = local.tags
  lifecycle {
    precondition {
      condition     = var.debug_ssh_public_key != ""
      error_message = "debug_access needs debug_ssh_public_key."
    }
  }
}

resource "ibm_is_instance" "worker" {
  count          = var.worker_count
  name           = "${local.name}-w${count.index}"
  profile        = var.profile
  image          = data.ibm_is_image.boot.id
  vpc            = ibm_is_vpc.run.id
  zone           = local.zone
  keys           = var.debug_access ? [ibm_is_ssh_key.debug[0].id] : []
  resource_group = var.resource_group_id
  tags           = local.tags

  primary_network_interface {
    subnet          = ibm_is_subnet.run.id
    security_groups = [ibm_is_security_group.run.id]
  }

  boot_volume {
    name               = "${local.name}-w${count.index}-boot"
    size               = 100
    auto_delete_volume = true
    tags               = local.tags
  }

  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    worker               = count.index
    run_id               = var.run_id
    hard_deadline        = var.hard_deadline
    hard_timeout_seconds = var.hard_timeout_seconds
    nvidia_driver        = var.nvidia_driver
    ephemera_package     = var.ephemera_package
    python_packages      = join(" ", [for p in var.python_packages : "'${p}'"])
    agent_config_b64     = base64encode(jsonencode(local.agent_config))
  })
}

resource "ibm_is_floating_ip" "debug" {
  count          = var.debug_access ? var.worker_count : 0
  name           = "${local.name}-w${count.index}-fip"
  target         = ibm_is_instance.worker[count.index].primary_network_interface[0].id
  resource_group = var.resource_group_id
  tags           = local.tags
}
