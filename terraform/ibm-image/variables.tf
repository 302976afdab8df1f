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

variable "source_volume_id" {
  type        = string
  description = "The boot volume of the stopped builder instance the image is made from (set by Ephemera)."
}

variable "region" {
  type        = string
  default     = "us-south"
  description = "VPC region (the builder's)."
}

variable "resource_group_id" {
  type        = string
  default     = null
  description = "Resource group of the image; null means the account's default."
}

variable "extra_tags" {
  type    = list(string)
  default = []
}
