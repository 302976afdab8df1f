"""Sample workloads run on the VMs through the Lithops-compatible bridge."""
