output "image_id" {
  description = "The prepared AMI."
  value       = aws_ami_from_instance.image.id
}
