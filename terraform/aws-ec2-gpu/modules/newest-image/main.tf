# The newest image of a family, comparing the numbers in the names as numbers: a
# serial 20250305.1 is newer than 20250305, and release 10 newer than release 9 (a
# plain sort() of the names can say the opposite). No provider: it is a pure function.

variable "images" {
  type        = map(string)
  description = "Image id -> image name, to choose from."
}

variable "pattern" {
  type        = string
  description = "A regex with two capture groups, the major and the minor number (an empty minor counts as 0), e.g. -([0-9]{8})(?:\\.([0-9]+))?$"
}

locals {
  # "<major, 12 digits><minor, 6 digits>" sorts as the numbers do; the id breaks ties
  by_version = {
    for id, name in var.images :
    format("%012d%06d-%s", tonumber(regex(var.pattern, name)[0]), tonumber(coalesce(regex(var.pattern, name)[1], "0")), id) => id
    if can(regex(var.pattern, name))
  }
  newest = length(local.by_version) > 0 ? local.by_version[reverse(sort(keys(local.by_version)))[0]] : ""
}

output "id" {
  description = "The id of the newest matching image, or empty if none matches."
  value       = local.newest
}

output "name" {
  description = "Its name, or empty."
  value       = local.newest != "" ? var.images[local.newest] : ""
}
