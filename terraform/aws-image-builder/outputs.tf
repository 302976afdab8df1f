output "build_id" {
  description = "The build these resources belong to."
  value       = var.build_id
}

output "instance_ids" {
  description = "The builder instance, as a one-element list (the VM Ephemera watches until it powers off)."
  value       = [aws_instance.builder.id]
}

output "private_ips" {
  description = "The builder's private IPv4 address, as a one-element list."
  value       = [aws_instance.builder.private_ip]
}

output "source_image" {
  description = "The stock AMI the builder started from."
  value       = data.aws_ami.stock.id
}

output "tags" {
  description = "Tags on the builder and the image."
  value       = local.tags
}
