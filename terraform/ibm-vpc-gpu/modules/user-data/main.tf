# One VM's cloud-init user_data: the boot document Ephemera wrote (no long-lived key) completed
# with what the stack knows (GPUs the profile promises, the setup script, reboot), the
# bootstrap program, the setup script and the systemd unit that runs the bootstrap at
# every boot until the run ends. No provider: it is a pure function, so the tests
# render the real user_data with it.

variable "worker" {
  type        = number
  description = "This VM's index in the run."
}

variable "run_id" {
  type        = string
  description = "The run."
}

variable "vm_boot" {
  type        = string
  sensitive   = true
  description = "This VM's boot document, base64 JSON (from Ephemera)."
}

variable "bootstrap_script" {
  type        = string
  description = "The bootstrap program, gzip + base64 (from Ephemera)."
}

variable "profile" {
  type        = string
  description = "The instance profile; its name says how many GPUs of which model it has."
}

variable "nvidia_driver" {
  type        = string
  description = "NVIDIA server driver branch."
}

variable "custom_image" {
  type        = bool
  description = "The image has the driver, python3-venv and uv already: the setup script is skipped."
}

variable "hard_deadline" {
  type        = string
  description = "ISO time of the power-off."
}

variable "hard_timeout_seconds" {
  type        = number
  description = "Seconds to the power-off if the deadline cannot be read."
}

variable "heartbeat_interval" {
  type        = number
  description = "Seconds between agent heartbeats."
}

locals {
  # gx3-16x80x1l4: 1 GPU, model l4; gx3-48x240x2l40s: 2 x l40s; no match: no GPU promised
  gpu_match = regexall("-[0-9]+x[0-9]+x([0-9]+)([a-z][a-z0-9]*)$", var.profile)
  gpu = length(local.gpu_match) > 0 ? {
    count = tonumber(local.gpu_match[0][0])
    model = upper(trimsuffix(local.gpu_match[0][1], "p"))
  } : { count = 0, model = "" }
  boot = merge(jsondecode(base64decode(var.vm_boot)), {
    root               = "/opt/ephemera"
    python             = "/usr/bin/python3"
    uv                 = "/opt/ephemera/uv/bin/uv"
    setup              = var.custom_image ? null : "/usr/local/sbin/ephemera-setup"
    reboot             = ["systemctl", "reboot"]
    gpu                = local.gpu
    heartbeat_interval = var.heartbeat_interval
    agent_pid_file     = "/run/ephemera/agent.pid"
  })
  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    worker               = var.worker
    run_id               = var.run_id
    boot_b64             = base64encode(jsonencode(local.boot))
    bootstrap_gz_b64     = var.bootstrap_script
    hard_deadline        = var.hard_deadline
    hard_timeout_seconds = var.hard_timeout_seconds
    nvidia_driver        = var.nvidia_driver
  })
}

output "user_data" {
  description = "The cloud-init user_data of this VM (it carries the boot document: sensitive)."
  value       = local.user_data
  sensitive   = true
}

output "gpu" {
  description = "GPUs the profile promises: count and model."
  value       = local.gpu
}
