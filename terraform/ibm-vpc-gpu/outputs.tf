# What the run record and the bridge need. No credentials exist in this stack.

output "run_id" {
  description = "The run these resources belong to."
  value       = var.run_id
}

output "vpc_id" {
  description = "VPC id."
  value       = ibm_is_vpc.run.id
}

output "subnet_id" {
  description = "Subnet id."
  value       = ibm_is_subnet.run.id
}

output "public_gateway_id" {
  description = "Public gateway id (egress)."
  value       = ibm_is_public_gateway.run.id
}

output "security_group_id" {
  description = "Security group id."
  value       = ibm_is_security_group.run.id
}

output "instance_ids" {
  description = "One GPU instance id per worker, in worker order."
  value       = ibm_is_instance.worker[*].id
}

output "private_ips" {
  description = "Primary private IPv4 address per worker, in worker order."
  value       = [for vm in ibm_is_instance.worker : vm.primary_network_interface[0].primary_ip[0].address]
}

output "workers" {
  description = "Per worker: index, instance id, name, private IP, zone, profile and market (spot or on-demand)."
  value = [for i, vm in ibm_is_instance.worker : {
    worker     = i
    id         = vm.id
    name       = vm.name
    private_ip = vm.primary_network_interface[0].primary_ip[0].address
    zone       = vm.zone
    profile    = vm.profile
    market     = var.spot ? "spot" : "on-demand"
  }]
}

output "floating_ips" {
  description = "Public addresses, only with debug_access."
  value       = ibm_is_floating_ip.debug[*].address
}

output "image" {
  description = "The boot image used."
  value       = var.image_id != "" ? var.image_id : data.ibm_is_image.boot[0].name
}

output "tags" {
  description = "Tags on every resource of the run."
  value       = local.tags
}
