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
  description = "S3 bucket with run records, job specs and heartbeats."
}

variable "hard_deadline" {
  type        = string
  description = "ISO 8601 time after which the VMs power themselves off, which terminates them (the reaper destroys them)."
}

variable "hard_timeout_seconds" {
  type        = number
  description = "Seconds from boot to power-off if hard_deadline cannot be read."
}

variable "storage_backend" {
  type        = string
  default     = "aws_s3"
  description = "Storage backend of the run (the VMs of this stack reach S3 only)."
  validation {
    condition     = var.storage_backend == "aws_s3"
    error_message = "The aws-ec2-gpu stack needs storage.backend: aws_s3."
  }
}

variable "run_prefixes" {
  type = object({
    state_bucket  = string          # bucket of the run's records
    output_bucket = string          # bucket of the run's outputs
    read          = list(string)    # state-bucket keys or prefixes (ending in '/') the VMs read
    write         = list(string)    # state-bucket prefixes the VMs read, write and delete
    output        = list(string)    # output-bucket prefixes the VMs read, write and delete
    inputs = optional(list(object({ # single objects the VMs read, that key only: the object whose write fired the run
      bucket = string
      key    = string
    })), [])
  })
  description = "What the run's VMs may touch (set by Ephemera from its storage layout): the instance profile's policy names only these."
  validation {
    condition = alltrue([for p in concat(var.run_prefixes.read, var.run_prefixes.write, var.run_prefixes.output,
    flatten([for o in var.run_prefixes.inputs : [o.bucket, o.key]])) : p != "" && !can(regex("[*?$]", p))])
    error_message = "run_prefixes must name keys and prefixes without IAM wildcards (* ? $), none empty."
  }
}

# ---- how the VMs boot (set by Ephemera; no long-lived key) -----------------------------

variable "vm_boot" {
  type        = list(string)
  sensitive   = true # the run key and short-lived bearer URLs (bundle, failure marker): kept out of plan output
  description = "One boot document per worker, base64 JSON: the bundle to install, how to reach storage (no long-lived key)."
}

variable "bootstrap_script" {
  type        = string
  description = "Ephemera's VM bootstrap program, gzip + base64 (the controller's own version)."
}

variable "custom_image" {
  type        = bool
  default     = false
  description = "The image (image_id) has the NVIDIA driver, python3-venv and uv at /opt/ephemera/uv/bin/uv: skip their setup."
}

# ---- the environment ----------------------------------------------------------------

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "AWS region."
}

variable "availability_zone" {
  type        = string
  default     = ""
  description = "Zone of the subnet and instances; empty: the region's first zone that offers instance_type."
}

variable "vpc_cidr" {
  type        = string
  default     = "10.42.0.0/24"
  description = "Address range of the run's VPC (its one subnet takes all of it)."
  validation {
    condition     = can(cidrnetmask(var.vpc_cidr))
    error_message = "vpc_cidr must be an IPv4 CIDR block such as 10.42.0.0/24."
  }
}

variable "instance_type" {
  type        = string
  default     = "g6.xlarge"
  description = "GPU instance type: g6 (NVIDIA L4), g6e (L40S), g5 (A10G) or p5 (H100). g6.xlarge is 4 vCPU, 16 GiB, one L4."
  validation {
    condition     = can(regex("^(g6|g6e|g5)\\.(x|2x|4x|8x|12x|16x|24x|48x)large$|^p5\\.(4x|48x)large$", var.instance_type))
    error_message = "instance_type must be a current GPU type: g6.*, g6e.*, g5.* (xlarge to 48xlarge) or p5.4xlarge / p5.48xlarge."
  }
}

variable "spot" {
  type        = bool
  default     = false
  description = "Run the instances on spot capacity (one-time requests, terminated on interruption); false: on-demand."
}

variable "spot_max_price" {
  type        = string
  default     = ""
  description = "Highest hourly spot price to pay, in USD (e.g. \"0.50\"); empty: up to the on-demand price (AWS's default)."
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

variable "image" {
  type        = string
  default     = "ubuntu-24.04"
  description = "Boot image family, the newest by number: ubuntu-24.04 (Canonical; the driver is installed at boot) or dlami-base (the Deep Learning Base OSS Nvidia Driver GPU AMI, Ubuntu 24.04; it has the driver)."
  validation {
    condition     = contains(["ubuntu-24.04", "dlami-base"], var.image)
    error_message = "image must be ubuntu-24.04 or dlami-base (or pin image_id)."
  }
}

variable "image_id" {
  type        = string
  default     = ""
  description = "A pinned AMI id (ami-...), used as is; empty: the newest image of the family."
  validation {
    condition     = var.image_id == "" || can(regex("^ami-[0-9a-f]{8,17}$", var.image_id))
    error_message = "image_id must be an AMI id such as ami-0123456789abcdef0, or empty."
  }
}

variable "image_owners" {
  type        = list(string)
  default     = []
  description = "Accounts whose images the family lookup trusts; empty: the family's publisher (Canonical 099720109477, Amazon for the DLAMI)."
}

variable "root_volume_gb" {
  type        = number
  default     = 100
  description = "Size of each instance's root volume (gp3), in GiB."
}

variable "nvidia_driver" {
  type        = string
  default     = "550"
  description = "NVIDIA server driver branch installed at boot on ubuntu-24.04 (L4, L40S, A10G, H100 need 550 or newer)."
}

variable "heartbeat_interval" {
  type        = number
  default     = 30
  description = "Seconds between agent heartbeats."
}

variable "extra_tags" {
  type        = map(string)
  default     = {}
  description = "More tags for every resource."
}

# ---- debugging only -------------------------------------------------------------------

variable "debug_access" {
  type        = bool
  default     = false
  description = "Inbound SSH from debug_ssh_cidr and a key pair; off by default (egress only)."
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
