# The newest image of a family, comparing the numbers in the names as numbers:
# ibm-ubuntu-24-04-10-minimal-amd64-1 is newer than ibm-ubuntu-24-04-9-minimal-amd64-3
# (a plain sort() of the names says the opposite). No provider: it is a pure function.

variable "names" {
  type        = list(string)
  description = "Image names to choose from."
}

variable "pattern" {
  type        = string
  description = "A regex with two capture groups, the release number and the build number, e.g. ^ibm-ubuntu-24-04-([0-9]+)-minimal-amd64-([0-9]+)$"
}

locals {
  # "<release, 8 digits><build, 8 digits>" sorts as the numbers do
  by_version = {
    for name in var.names :
    format("%08d%08d", tonumber(regex(var.pattern, name)[0]), tonumber(regex(var.pattern, name)[1])) => name
    if can(regex(var.pattern, name))
  }
  newest = length(local.by_version) > 0 ? local.by_version[reverse(sort(keys(local.by_version)))[0]] : ""
}

output "name" {
  description = "The newest matching name, or empty if none matches."
  value       = local.newest
}
