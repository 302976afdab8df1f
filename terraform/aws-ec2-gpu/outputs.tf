# What the run record and the bridge need. No credentials exist in this stack.

output "run_id" {
  description = "The run these resources belong to."
  value       = var.run_id
}

output "vpc_id" {
  description = "VPC id."
  value       = aws_vpc.run.id
}

output "subnet_id" {
  description = "Subnet id."
  value       = aws_subnet.run.id
}

output "security_group_id" {
  description = "Security group id."
  value       = aws_security_group.run.id
}

output "vm_role_arn" {
  description = "The VMs' role: the run's S3 prefixes only."
  value       = aws_iam_role.vm.arn
}

output "instance_profile" {
  description = "The instance profile the VMs run as."
  value       = aws_iam_instance_profile.vm.name
}

output "instance_ids" {
  description = "One GPU instance id per worker, in worker order."
  value       = aws_instance.worker[*].id
}

output "private_ips" {
  description = "Primary private IPv4 address per worker, in worker order."
  value       = aws_instance.worker[*].private_ip
}

output "workers" {
  description = "Per worker: index, instance id, private IP, zone, instance type (also as profile) and market (spot or on-demand)."
  value = [for i, vm in aws_instance.worker : {
    worker        = i
    id            = vm.id
    private_ip    = vm.private_ip
    zone          = vm.availability_zone
    instance_type = vm.instance_type
    profile       = vm.instance_type # the name Ephemera's cost and run records read
    market        = var.spot ? "spot" : "on-demand"
  }]
}

output "public_ips" {
  description = "Public addresses (egress; inbound only with debug_access)."
  value       = aws_instance.worker[*].public_ip
}

output "image" {
  description = "The AMI used."
  value       = local.image_id
}

output "tags" {
  description = "Tags on every resource of the run."
  value       = local.tags
}
