variable "build_id" {
  type        = string
  description = "The image build (set by Ephemera): tags and names carry it."
}

variable "workspace" {
  type        = string
  description = "The Ephemera workspace building the image (set by Ephemera)."
}

variable "lock_sha256" {
  type        = string
  description = "The SHA-256 of the lock the image is built from (set by Ephemera): runs match images on it."
  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.lock_sha256))
    error_message = "lock_sha256 must be a lowercase hex SHA-256."
  }
}

variable "requirements_lock" {
  type        = string
  description = "The bundle's locked requirements, pip format with --hash lines (set by Ephemera); installed with --require-hashes."
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "instance_type" {
  type        = string
  default     = "g6.xlarge"
  description = "The builder's instance type: one of the GPU family the image is for (the driver is built for its kernel)."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "A subnet with egress (apt, PyPI); empty: the region's default VPC."
}

variable "image_filter" {
  type        = string
  default     = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
  description = "Name filter of the stock image family; the newest available one is used."
}

variable "image_owners" {
  type        = list(string)
  default     = []
  description = "Owners of the stock image; empty: Canonical (099720109477)."
}

variable "root_volume_gb" {
  type    = number
  default = 100
}

variable "nvidia_driver" {
  type        = string
  default     = "550"
  description = "NVIDIA server driver branch installed into the image."
}

variable "build_timeout_seconds" {
  type        = number
  default     = 3600
  description = "The builder powers itself off after this long even if the install has not finished (the build then fails: no image is recorded)."
}

variable "extra_tags" {
  type    = map(string)
  default = {}
}
