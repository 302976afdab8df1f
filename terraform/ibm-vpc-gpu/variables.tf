# ---- set by Ephemera for every run -------------------------------------------------

variable "run_id" {
  type        = string
  description = "The run this workspace is applied for; tags every resource."
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", var.run_id))
    error_message = "run_id must be 1-63 letters, digits, '_', '.' or '-'."
  }
}

variable "workspace" {
  type        = string
  description = "Ephemera workspace name; tags every resource."
}

variable "worker_count" {
  type        = number
  default     = 1
  description = "Number of GPU instances."
  validation {
    condition     = var.worker_count >= 1 && var.worker_count <= 16
    error_message = "worker_count must be between 1 and 16."
  }
}

variable "job_key" {
  type        = string
  description = "Key of the run's job spec in the state bucket."
}

variable "state_bucket" {
  type        = string
  description = "COS bucket with run records, job specs and heartbeats."
}

variable "hard_deadline" {
  type        = string
  description = "ISO 8601 time after which the VMs power themselves off (the reaper destroys them)."
}

variable "hard_timeout_seconds" {
  type        = number
  description = "Seconds from boot to power-off if hard_deadline cannot be read."
}

variable "storage_backend" {
  type        = string
  default     = "ibm_cos"
  description = "Storage backend of the run (the VMs of this stack reach IBM COS only)."
  validation {
    condition     = var.storage_backend == "ibm_cos"
    error_message = "The ibm-vpc-gpu stack needs storage.backend: ibm_cos."
  }
}

# ---- how the VMs boot (set by Ephemera; no long-lived key) -----------------------------

variable "vm_boot" {
  type        = list(string)
  sensitive   = true # short-lived bearer URLs (bundle, failure marker) and per-run values: kept out of plan output
  description = "One boot document per worker, base64 JSON: the bundle to install, how to reach storage (no long-lived key)."
}

variable "bootstrap_script" {
  type        = string
  description = "Ephemera's VM bootstrap program, gzip + base64 (the controller's own version)."
}

variable "trusted_profile_id" {
  type        = string
  default     = ""
  description = "IAM trusted profile (Profile-...) linked to every instance: the VMs' identity for COS (set from ibm_cos.trusted_profile_id)."
}

variable "metadata_protocol" {
  type        = string
  default     = "http"
  description = "Protocol of the instance metadata service endpoint: http or https."
  validation {
    condition     = contains(["http", "https"], var.metadata_protocol)
    error_message = "metadata_protocol must be http or https."
  }
}

variable "custom_image" {
  type        = bool
  default     = false
  description = "The image (image_name) has the NVIDIA driver, python3-venv and uv at /opt/ephemera/uv/bin/uv: skip their setup."
}

# ---- the environment ----------------------------------------------------------------

variable "region" {
  type        = string
  default     = "us-south"
  description = "VPC region."
}

variable "zone" {
  type        = string
  default     = ""
  description = "Zone of the subnet and instances; defaults to <region>-1."
}

variable "resource_group_id" {
  type        = string
  default     = null
  description = "Resource group for every resource; null means the account's default."
}

variable "profile" {
  type        = string
  default     = "gx3-16x80x1l4"
  description = "GPU instance profile: gx3-16x80x1l4 is 16 vCPU, 80 GiB, one NVIDIA L4."
  validation {
    condition     = can(regex("^gx[0-9]", var.profile))
    error_message = "profile must be a current GPU profile (gx2/gx3 families, e.g. gx3-16x80x1l4)."
  }
}

variable "spot" {
  type        = bool
  default     = false
  description = "Spot capacity: availability class spot, deleted on preemption (nothing is left to bill). IBM grants spot for GPU and Flex profiles on request, with its own quota."
}

variable "recovery" {
  type        = number
  default     = 0
  description = "How many times this run has been recovered after a preemption (set by Ephemera); a new value replaces every instance."
  validation {
    condition     = var.recovery >= 0 && floor(var.recovery) == var.recovery
    error_message = "recovery must be a whole number >= 0 (the count of the run's recoveries)."
  }
}

variable "ubuntu_version" {
  type        = string
  default     = "24-04"
  description = "Ubuntu release of the boot image: 22-04 or 24-04."
  validation {
    condition     = contains(["22-04", "24-04"], var.ubuntu_version)
    error_message = "ubuntu_version must be 22-04 or 24-04."
  }
}

variable "image_name" {
  type        = string
  default     = ""
  description = "Exact boot image name (a custom image too); empty picks the newest ibm-ubuntu-<ubuntu_version>-<n>-minimal-amd64-<build> image, comparing the numbers as numbers."
}

variable "image_id" {
  type        = string
  default     = ""
  description = "A boot image by its id (a prepared image: Ephemera sets it for a run whose lock has one); empty: image_name, or the newest stock image."
  validation {
    condition     = var.image_id == "" || can(regex("^r[0-9]{3}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", var.image_id))
    error_message = "image_id must be an IBM VPC image id such as r006-1234abcd-12ab-34cd-56ef-1234567890ab, or empty."
  }
}

variable "nvidia_driver" {
  type        = string
  default     = "550"
  description = "NVIDIA server driver branch installed at boot (L4, L40S, A100, H100 need 550 or newer)."
}

variable "heartbeat_interval" {
  type        = number
  default     = 30
  description = "Seconds between agent heartbeats."
}

variable "extra_tags" {
  type        = list(string)
  default     = []
  description = "More tags for every resource."
}

# ---- debugging only -------------------------------------------------------------------

variable "debug_access" {
  type        = bool
  default     = false
  description = "Inbound SSH, an SSH key and floating IPs; off by default (egress only)."
}

variable "debug_ssh_public_key" {
  type        = string
  default     = ""
  description = "Public key for debug_access."
}

variable "debug_ssh_cidr" {
  type        = string
  default     = ""
  description = "The only source CIDR allowed to SSH in with debug_access, e.g. your IP/32."
  validation {
    condition     = var.debug_ssh_cidr != "0.0.0.0/0"
    error_message = "debug_ssh_cidr must not be 0.0.0.0/0: name your own address."
  }
}

# ---- what every stack is given ---------------------------------------------------------

variable "run_prefixes" {
  type        = any
  default     = null
  description = "The run's storage prefixes (set by Ephemera). Unused here: the trusted profile cannot be scoped per run (README, Security model); declared so Schematics gets no undeclared variable."
}
