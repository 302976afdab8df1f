# IBM Cloud VPC with GPU virtual server instances for one Ephemera run.
# Applied by IBM Cloud Schematics (engine.backend: schematics); in Schematics the
# provider authenticates with the caller's IAM token, so no API key is a variable.
# Outside Schematics the provider reads IC_API_KEY from the environment.
# v1.88.0 is the first release with spot instances (ibm_is_instance `availability` and
# `availability_policy`), which `spot = true` sets.

terraform {
  required_version = ">= 1.5"
  required_providers {
    ibm = {
      source  = "IBM-Cloud/ibm"
      version = ">= 1.88.0"
    }
  }
}

provider "ibm" {
  region = var.region
}
