# GPUs per instance type, as EC2's DescribeInstanceTypes reports them (GpuInfo.Gpus:
# Count, Name): what the bootstrap's GPU proof expects the driver to see. The stack's
# instance_type validation accepts exactly these types.

locals {
  gpus = merge(
    { for size in ["xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge"] : "g6.${size}" => { count = 1, model = "L4" } },
    { for size in ["12xlarge", "24xlarge"] : "g6.${size}" => { count = 4, model = "L4" } },
    { "g6.48xlarge" = { count = 8, model = "L4" } },
    { for size in ["xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge"] : "g6e.${size}" => { count = 1, model = "L40S" } },
    { for size in ["12xlarge", "24xlarge"] : "g6e.${size}" => { count = 4, model = "L40S" } },
    { "g6e.48xlarge" = { count = 8, model = "L40S" } },
    { for size in ["xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge"] : "g5.${size}" => { count = 1, model = "A10G" } },
    { for size in ["12xlarge", "24xlarge"] : "g5.${size}" => { count = 4, model = "A10G" } },
    { "g5.48xlarge" = { count = 8, model = "A10G" } },
    { "p5.4xlarge" = { count = 1, model = "H100" }, "p5.48xlarge" = { count = 8, model = "H100" } },
  )
}

output "gpus" {
  description = "The whole table: instance type -> GPUs (count, model)."
  value       = local.gpus
}
