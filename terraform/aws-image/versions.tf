# Holds one prepared image (an AMI) for Ephemera, applied by the terraform engine. The
# provider takes its credentials from the AWS default chain of the machine that applies.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.70.0, < 7.0.0"
    }
  }
}

provider "aws" {
  region = var.region
  # the image carries the build, the workspace and the lock
  default_tags {
    tags = {
      "ephemera"             = "true"
      "ephemera:image-build" = var.build_id
      "ephemera:workspace"   = var.workspace
      "ephemera:lock"        = var.lock_sha256
    }
  }
}
