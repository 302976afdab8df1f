output "image_id" {
  description = "The prepared image."
  value       = ibm_is_image.image.id
}
