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
  type        = string
  default     = "us-south"
  description = "VPC region."
}

variable "zone" {
  type        = string
  default     = ""
  description = "Zone of the subnet and the builder; defaults to <region>-1."
}

variable "resource_group_id" {
  type        = string
  default     = null
  description = "Resource group for every resource; null means the account's default."
}

variable "profile" {
  type        = string
  default     = "gx3-16x80x1l4"
  description = "The builder's GPU profile: the image's driver is installed for this family's kernel."
  validation {
    condition     = can(regex("^gx[0-9]", var.profile))
    error_message = "profile must be a current GPU profile (gx2/gx3 families, e.g. gx3-16x80x1l4)."
  }
}

variable "ubuntu_version" {
  type        = string
  default     = "24-04"
  description = "Ubuntu release of the stock image: 22-04 or 24-04."
  validation {
    condition     = contains(["22-04", "24-04"], var.ubuntu_version)
    error_message = "ubuntu_version must be 22-04 or 24-04."
  }
}

variable "image_name" {
  type        = string
  default     = ""
  description = "Exact stock image name; empty picks the newest ibm-ubuntu-<ubuntu_version>-<n>-minimal-amd64-<build> image."
}

variable "boot_volume_gb" {
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
  type    = list(string)
  default = []
}
