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
  description = "Storage backend of the run (this stack gives the VMs IBM COS credentials only)."
  validation {
    condition     = var.storage_backend == "ibm_cos"
    error_message = "The ibm-vpc-gpu stack needs storage.backend: ibm_cos."
  }
}

# ---- storage credentials for the VMs (secure values in Schematics) ----------------

variable "cos_hmac_access_key_id" {
  type        = string
  default     = ""
  sensitive   = true
  description = "HMAC access key id of the COS service credential the VMs use."
}

variable "cos_hmac_secret_access_key" {
  type        = string
  default     = ""
  sensitive   = true
  description = "HMAC secret access key of the COS service credential the VMs use."
}

variable "cos_api_key" {
  type        = string
  default     = ""
  sensitive   = true
  description = "IAM API key for COS, used when no HMAC keys are given."
}

variable "cos_service_instance_id" {
  type        = string
  default     = ""
  description = "COS instance CRN or GUID (needed with cos_api_key)."
}

variable "cos_region" {
  type        = string
  default     = ""
  description = "Region of the state bucket; defaults to region."
}

variable "cos_endpoint" {
  type        = string
  default     = ""
  description = "COS endpoint for the VMs; defaults to the direct endpoint of cos_region."
}

variable "ibmcloud_api_key" {
  type        = string
  default     = null
  sensitive   = true
  description = "Only outside Schematics: API key for the provider (or set IC_API_KEY)."
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
  description = "Exact boot image name; empty picks the newest ibm-ubuntu-<ubuntu_version>-*-amd64 image."
}

variable "nvidia_driver" {
  type        = string
  default     = "550"
  description = "NVIDIA server driver branch installed by cloud-init (L4 needs 525 or newer)."
}

variable "ephemera_package" {
  type        = string
  default     = "ephemera[ibm,workloads]"
  description = "pip requirement that installs Ephemera on the VMs (a name, a wheel URL or git+https URL)."
}

variable "python_packages" {
  type        = list(string)
  default     = []
  description = "Extra pip requirements for the workload."
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
