# One prepared image on IBM Cloud VPC (issue 20): the ibm_is_image made from the boot volume of
# a stopped builder instance (terraform/ibm-image-builder, another workspace, destroyed once
# this one is applied). This workspace holds only the image, so `ephemera image delete`
# destroys exactly it; the image is a copy, so it outlives the volume it was made from.

locals {
  name = "eph-img-${substr(var.lock_sha256, 0, 12)}-${substr(sha256(var.build_id), 0, 8)}"
  tags = distinct(concat([
    "ephemera",
    "ephemera-image-build:${lower(var.build_id)}",
    "ephemera-workspace:${lower(var.workspace)}",
    "ephemera-lock:${substr(var.lock_sha256, 0, 12)}",
  ], var.extra_tags))
}

resource "ibm_is_image" "image" {
  name           = local.name
  source_volume  = var.source_volume_id
  resource_group = var.resource_group_id
  tags           = local.tags
}
