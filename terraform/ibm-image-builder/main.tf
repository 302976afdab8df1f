# The builder of a prepared image on IBM Cloud VPC (issue 20): a VPC with egress only (public
# gateway, a security group with no inbound rule) and one GPU instance from the newest stock
# Ubuntu image whose user_data installs the NVIDIA server driver, python3-venv, uv (pinned and
# hashed, at /opt/ephemera/uv/bin/uv, where the run stack's custom_image expects it) and the
# bundle's locked requirements (--require-hashes) into /opt/ephemera/image/env, then powers off.
#
# Once the instance is stopped, Ephemera applies terraform/ibm-image (a workspace of its own,
# holding only the ibm_is_image made from this instance's boot volume: the provider stops a
# running instance first, so Ephemera waits for the power-off instead of letting it cut the
# install short), then destroys this whole workspace: only the image outlives the build.
# No secret is a variable or in user_data.

locals {
  zone = var.zone != "" ? var.zone : "${var.region}-1"
  tags = distinct(concat([
    "ephemera",
    "ephemera-image-build:${lower(var.build_id)}",
    "ephemera-workspace:${lower(var.workspace)}",
    "ephemera-lock:${substr(var.lock_sha256, 0, 12)}",
  ], var.extra_tags))
  name = "eph-img-${substr(var.lock_sha256, 0, 12)}-${substr(sha256(var.build_id), 0, 8)}"
  image_name = var.image_name != "" ? var.image_name : (
    module.newest_image.name != "" ? module.newest_image.name : "no-ubuntu-${var.ubuntu_version}-image-found"
  )
  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    build_id          = var.build_id
    lock_sha256       = var.lock_sha256
    requirements_b64  = base64encode(var.requirements_lock)
    nvidia_driver     = var.nvidia_driver
    build_timeout_min = ceil(var.build_timeout_seconds / 60)
  })
}

module "newest_image" {
  source  = "./modules/newest-image"
  names   = [for img in data.ibm_is_images.public.images : img.name]
  pattern = "^ibm-ubuntu-${var.ubuntu_version}-([0-9]+)-minimal-amd64-([0-9]+)$"
}

data "ibm_is_images" "public" {
  visibility = "public"
  status     = "available"
}

data "ibm_is_image" "stock" {
  name = local.image_name
}

resource "ibm_is_vpc" "build" {
  name                      = local.name
  resource_group            = var.resource_group_id
  address_prefix_management = "auto"
  tags                      = local.tags
}

resource "ibm_is_public_gateway" "build" {
  name           = "${local.name}-gw"
  vpc            = ibm_is_vpc.build.id
  zone           = local.zone
  resource_group = var.resource_group_id
  tags           = local.tags
}

resource "ibm_is_subnet" "build" {
  name                     = "${local.name}-subnet"
  vpc                      = ibm_is_vpc.build.id
  zone                     = local.zone
  total_ipv4_address_count = 16
  public_gateway           = ibm_is_public_gateway.build.id
  resource_group           = var.resource_group_id
  tags                     = local.tags
}

resource "ibm_is_security_group" "build" {
  name           = "${local.name}-sg"
  vpc            = ibm_is_vpc.build.id
  resource_group = var.resource_group_id
  tags           = local.tags
}

resource "ibm_is_security_group_rule" "egress" {
  group     = ibm_is_security_group.build.id
  direction = "outbound"
  remote    = "0.0.0.0/0"
}

resource "ibm_is_instance" "builder" {
  name           = "${local.name}-builder"
  profile        = var.profile
  image          = data.ibm_is_image.stock.id
  vpc            = ibm_is_vpc.build.id
  zone           = local.zone
  resource_group = var.resource_group_id
  tags           = local.tags
  user_data      = local.user_data

  primary_network_interface {
    subnet          = ibm_is_subnet.build.id
    security_groups = [ibm_is_security_group.build.id]
  }

  boot_volume {
    name               = "${local.name}-boot"
    size               = var.boot_volume_gb
    auto_delete_volume = true # goes with the builder; the image is a copy of it
    tags               = local.tags
  }

  metadata_service {
    enabled            = true
    protocol           = "http"
    response_hop_limit = 1
  }
}
