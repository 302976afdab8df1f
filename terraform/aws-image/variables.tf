variable "build_id" {
  type        = string
  description = "The image build (set by Ephemera): tags and names carry it."
}

variable "workspace" {
  type        = string
  description = "The Ephemera workspace holding the image (set by Ephemera)."
}

variable "lock_sha256" {
  type        = string
  description = "The SHA-256 of the lock the image is built from (set by Ephemera): runs match images on it."
  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.lock_sha256))
    error_message = "lock_sha256 must be a lowercase hex SHA-256."
  }
}

variable "source_instance_id" {
  type        = string
  description = "The stopped builder instance the AMI is made from (set by Ephemera)."
  validation {
    condition     = can(regex("^i-[0-9a-f]{8,17}$", var.source_instance_id))
    error_message = "source_instance_id must be an EC2 instance id (i-...)."
  }
}

variable "region" {
  type    = string
  default = "us-east-1"
}
