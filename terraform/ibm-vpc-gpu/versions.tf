# IBM Cloud VPC with GPU virtual server instances for one Ephemera run.
# Applied by IBM Cloud Schematics (engine.backend: schematics); in Schematics the
# provider authenticates with the caller's IAM token, so no API key is needed there.

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
  region           = var.region
  ibmcloud_api_key = var.ibmcloud_api_key # null: Schematics' token, or IC_API_KEY outside it
}
