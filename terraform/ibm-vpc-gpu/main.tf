# One run's environment: a VPC, a public gateway (egress only), one subnet, a
# security group that allows no inbound traffic unless debug_access is on, and
# worker_count GPU instances that boot from the run's bundle (cloud-init runs
# Ephemera's bootstrap: driver, bundle, GPU proof, agent). No secret is a variable:
# the instances authenticate as the trusted profile linked to them through the VPC
# metadata service. Every resource carries the run id and workspace as tags, so an
# orphan sweep can find anything a crash left behind.

locals {
  zone = var.zone != "" ? var.zone : "${var.region}-1"
  # IBM tags: lowercase "key:value"; the run id and workspace make resources findable
  tags = distinct(concat([
    "ephemera",
    "ephemera-run:${lower(var.run_id)}",
    "ephemera-workspace:${lower(var.workspace)}",
  ], var.extra_tags))
  # VPC names: lowercase letters, digits and '-', starting with a letter
  name = "eph-${trim(substr(replace(lower(var.run_id), "/[^a-z0-9-]/", "-"), 0, 40), "-")}"

  image_name = var.image_name != "" ? var.image_name : (
    module.newest_image.name != "" ? module.newest_image.name : "no-ubuntu-${var.ubuntu_version}-image-found"
  )
  image_id = var.image_id != "" ? var.image_id : data.ibm_is_image.boot[0].id
}

module "newest_image" {
  source  = "./modules/newest-image"
  names   = [for img in data.ibm_is_images.public.images : img.name]
  pattern = "^ibm-ubuntu-${var.ubuntu_version}-([0-9]+)-minimal-amd64-([0-9]+)$"
}

module "user_data" {
  source               = "./modules/user-data"
  count                = var.worker_count
  worker               = count.index
  run_id               = var.run_id
  vm_boot              = var.vm_boot[count.index]
  bootstrap_script     = var.bootstrap_script
  profile              = var.profile
  nvidia_driver        = var.nvidia_driver
  custom_image         = var.custom_image
  hard_deadline        = var.hard_deadline
  hard_timeout_seconds = var.hard_timeout_seconds
  heartbeat_interval   = var.heartbeat_interval
}

data "ibm_is_images" "public" {
  visibility = "public"
  status     = "available"
}

data "ibm_is_image" "boot" {
  count = var.image_id == "" ? 1 : 0 # a pinned image (a prepared one) is used by its id
  name  = local.image_name
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

# The run's generation of VMs: a recovery (the same run re-applied with recovery + 1,
# after a preemption) replaces this, and with it every instance (replace_triggered_by).
resource "terraform_data" "generation" {
  triggers_replace = var.recovery
}

resource "ibm_is_instance" "worker" {
  count          = var.worker_count
  name           = "${local.name}-w${count.index}"
  profile        = var.profile
  image          = local.image_id
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

  user_data = module.user_data[count.index].user_data

  # spot: may be preempted; deleted then, so a preempted VM leaves nothing billing (its
  # boot volume goes with it). Preemption policy is refused on standard instances.
  dynamic "availability" {
    for_each = var.spot ? [1] : []
    content {
      class = "spot"
    }
  }
  dynamic "availability_policy" {
    for_each = var.spot ? [1] : []
    content {
      preemption = "delete"
    }
  }

  # the VM's identity: its IAM token comes from the metadata service, as the trusted profile
  metadata_service {
    enabled            = true
    protocol           = var.metadata_protocol
    response_hop_limit = 1
  }
  default_trusted_profile_target    = var.trusted_profile_id != "" ? var.trusted_profile_id : null
  default_trusted_profile_auto_link = var.trusted_profile_id != "" ? true : null

  lifecycle {
    replace_triggered_by = [terraform_data.generation]
    precondition {
      condition     = length(var.vm_boot) == var.worker_count
      error_message = "vm_boot must hold one boot document per worker (Ephemera writes it before each apply)."
    }
  }
}

resource "ibm_is_floating_ip" "debug" {
  count          = var.debug_access ? var.worker_count : 0
  name           = "${local.name}-w${count.index}-fip"
  target         = ibm_is_instance.worker[count.index].primary_network_interface[0].id
  resource_group = var.resource_group_id
  tags           = local.tags
}
