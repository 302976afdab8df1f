# Holds one prepared image (an ibm_is_image) for Ephemera. Applied by IBM Cloud Schematics
# (the provider authenticates with the caller's IAM token, so no API key is a variable) or,
# outside Schematics, with IC_API_KEY from the environment.

terraform {
  required_version = ">= 1.5"
  required_providers {
    ibm = {
      source  = "IBM-Cloud/ibm"
      version = ">= 1.70.0"
    }
  }
}

provider "ibm" {
  region = var.region
}
