"""Ephemera: GPU environments that exist only while their work runs.

Timers and object-storage writes fire actions; the actions apply or destroy
Terraform workspaces; the machines run the workload and write a completion marker,
whose write fires the teardown. See README.md for the flow.
"""

__version__ = "0.1.0"
