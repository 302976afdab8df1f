# AWS EC2 with GPU instances for one Ephemera run, applied by the terraform engine.
# The provider takes its credentials from the AWS default chain of the machine that
# applies (environment, profile, role): no key is a variable. Endpoints are AWS's
# own; a test points them elsewhere (moto on 127.0.0.1) with an override file of its
# own, never through this stack.

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
  # every resource the provider can tag carries the run id and the workspace
  default_tags {
    tags = local.tags
  }
}
