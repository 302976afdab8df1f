# A test stack for the remote-state tests: one built-in resource (no provider, offline)
# whose creation takes `hold_seconds`, so a second apply can meet the first one's lock.

terraform {
  required_version = ">= 1.10"
}

variable "run_id" {
  type = string
}

variable "workspace" {
  type = string
}

variable "hold_seconds" {
  type    = number
  default = 0
}

resource "terraform_data" "run" {
  input = var.run_id
  provisioner "local-exec" {
    command = "sleep ${var.hold_seconds}"
  }
}

output "run_id" {
  value = terraform_data.run.output
}
