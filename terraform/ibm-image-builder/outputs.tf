output "build_id" {
  description = "The build these resources belong to."
  value       = var.build_id
}

output "instance_ids" {
  description = "The builder instance, as a one-element list (the VM Ephemera watches until it is stopped)."
  value       = [ibm_is_instance.builder.id]
}

output "private_ips" {
  description = "The builder's private IPv4 address, as a one-element list."
  value       = [ibm_is_instance.builder.primary_network_interface[0].primary_ip[0].address]
}

output "source_image" {
  description = "The stock image the builder started from."
  value       = data.ibm_is_image.stock.id
}

output "boot_volume_id" {
  description = "The builder's boot volume: the image workspace (terraform/ibm-image) makes the image from it."
  value       = ibm_is_instance.builder.boot_volume[0].volume_id
}

output "tags" {
  description = "Tags on every resource of the build."
  value       = local.tags
}
