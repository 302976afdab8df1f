# Builds one prepared image (an AMI) for Ephemera, applied by the terraform engine. The
# provider takes its credentials from the AWS default chain of the machine that applies;
# endpoints are AWS's own (a test points them at moto with an override file of its own).

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
  # the builder instance and the image carry the build, the workspace and the lock
  default_tags {
    tags = local.tags
  }
}
