# One VM's cloud-init user_data on EC2: the boot document Ephemera wrote (no long-lived key)
# completed with what the stack knows (GPUs the instance type promises, the setup script,
# reboot), the bootstrap program, the setup script and the systemd unit that runs the
# bootstrap at every boot until the run ends -- the same document and bootstrap as the
# ibm-vpc-gpu stack. No provider: it is a pure function, so the tests render the real
# user_data with it. EC2 limits user data to 16 KB before base64: the stack sends it
# gzip-compressed (cloud-init unpacks gzip user data itself).

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

variable "instance_type" {
  type        = string
  description = "The EC2 instance type; gpus.tf says how many GPUs of which model it has."
}

variable "nvidia_driver" {
  type        = string
  description = "NVIDIA server driver branch."
}

variable "install_driver" {
  type        = bool
  description = "Install the NVIDIA driver at boot (false on an image that has one: the Deep Learning Base GPU AMI)."
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
  gpu = lookup(local.gpus, var.instance_type, { count = 0, model = "" })
  boot = merge(jsondecode(base64decode(var.vm_boot)), {
    root               = "/opt/ephemera"
    python             = "/usr/bin/python3"
    uv                 = "/opt/ephemera/uv/bin/uv"
    setup              = var.custom_image ? null : "/usr/local/sbin/ephemera-setup"
    reboot             = ["systemctl", "reboot"]
    gpu                = local.gpu
    heartbeat_interval = var.heartbeat_interval
    agent_pid_file     = "/run/ephemera/agent.pid"
    # the agent watches IMDSv2's spot/instance-action (ephemera.vm.preemption); an on-demand instance never gets one
    preemption = { source = "aws" }
  })
  user_data = templatefile("${path.module}/cloud-init.yaml.tftpl", {
    worker               = var.worker
    run_id               = var.run_id
    boot_b64             = base64encode(jsonencode(local.boot))
    bootstrap_gz_b64     = var.bootstrap_script
    hard_deadline        = var.hard_deadline
    hard_timeout_seconds = var.hard_timeout_seconds
    nvidia_driver        = var.nvidia_driver
    install_driver       = var.install_driver
  })
}

output "user_data" {
  description = "The cloud-init user_data of this VM (it carries the boot document: sensitive)."
  value       = local.user_data
  sensitive   = true
}

output "gpu" {
  description = "GPUs the instance type promises: count and model."
  value       = local.gpu
}
