# The local stack: each "VM" is a process on this machine that boots like a cloud VM.
# Built-in resources only (terraform_data + local-exec), so it runs offline with no
# provider download. Apply starts `worker_count` detached VM bootstraps (pid file + log
# each): each fetches the run's bundle through the same mechanism as a cloud VM,
# installs it into its own environment and becomes the agent of that environment.
# Destroy stops them, at whatever step they are, and confirms they are gone.

terraform {
  required_version = ">= 1.4"
}

variable "run_id" {
  type        = string
  description = "The run this workspace is applied for; tags every resource."
}

variable "workspace" {
  type        = string
  description = "Workspace name."
}

variable "worker_count" {
  type        = number
  default     = 1
  description = "Number of local VMs (agent processes)."
  validation {
    condition     = var.worker_count >= 1 && var.worker_count <= 16
    error_message = "worker_count must be between 1 and 16."
  }
}

variable "python" {
  type        = string
  description = "Python interpreter with ephemera installed: it runs the bootstrap (set by the engine)."
}

variable "boot_dir" {
  type        = string
  description = "Folder with one boot document per VM, <boot_dir>/<worker>/boot.json (set by the engine)."
}

variable "vm_boot" {
  type        = list(string)
  default     = []
  sensitive   = true # short-lived bearer URLs and per-run values: kept out of plan output
  description = "One boot document per VM, base64 JSON, no long-lived key (set by Ephemera; the engine writes them to boot_dir)."
}

variable "gpu_model" {
  type        = string
  default     = ""
  description = "A name every promised GPU's name must contain, e.g. L4 (empty: any)."
}

variable "gpu_count" {
  type        = number
  default     = 0
  description = "GPUs each local VM must prove before its agent starts (0: none promised)."
}

variable "agent_dir" {
  type        = string
  description = "Folder for the agents' pid files and logs (set by the engine)."
}

variable "hard_deadline" {
  type        = string
  default     = ""
  description = "ISO time at which the agents end themselves (second line of defence)."
}

variable "spot" {
  type        = bool
  default     = false
  description = "Ask for spot capacity: accepted and recorded (each VM's market); local VMs are free and never reclaimed by a cloud."
}

variable "recovery" {
  type        = number
  default     = 0
  description = "How many times this run has been recovered after a preemption (set by Ephemera); a new value replaces every VM."
  validation {
    condition     = var.recovery >= 0 && floor(var.recovery) == var.recovery
    error_message = "recovery must be a whole number >= 0 (the count of the run's recoveries)."
  }
}

resource "terraform_data" "vm" {
  count = var.worker_count

  # a recovery (the same run re-applied with recovery + 1) starts new VMs in place of the lost ones
  triggers_replace = var.recovery

  # Destroy-time provisioners may only read self: everything they need is in input.
  input = {
    run_id    = var.run_id
    workspace = var.workspace
    worker    = count.index
    python    = var.python
    boot_file = "${var.boot_dir}/${count.index}/boot.json"
    pid_file  = "${var.agent_dir}/worker-${count.index}.pid"
    log_file  = "${var.agent_dir}/worker-${count.index}.log"
    market    = var.spot ? "spot" : "on-demand"
  }

  provisioner "local-exec" {
    command = "'${self.input.python}' -m ephemera.vm.local_stack start --boot '${self.input.boot_file}' --pid-file '${self.input.pid_file}' --log-file '${self.input.log_file}'"
  }

  provisioner "local-exec" {
    when    = destroy
    command = "'${self.input.python}' -m ephemera.vm stop --pid-file '${self.input.pid_file}'"
  }
}

output "instance_ids" {
  description = "One id per local VM."
  value       = terraform_data.vm[*].id
}

output "agents" {
  description = "Per VM: worker index, pid file, log file and market (spot or on-demand)."
  value = [for vm in terraform_data.vm : {
    id       = vm.id
    worker   = vm.input.worker
    pid_file = vm.input.pid_file
    log_file = vm.input.log_file
    market   = vm.input.market
  }]
}

output "run_id" {
  value = var.run_id
}
