"""The run bundle: what a run's VMs run travels with the run.

- :mod:`ephemera.bundle.wheel`: Ephemera itself as a wheel, built from the running
  installation (its package files and its installed metadata), byte for byte the same
  for the same code.
- :mod:`ephemera.bundle.source`: what of ``workload.source`` may travel: code only
  (never the config file, keys, links out of the folder, or a configured secret).
- :mod:`ephemera.bundle.lock`: the VMs' own dependency set, and the hashed lock of
  everything a cloud VM installs.
- :mod:`ephemera.bundle.wheelhouse`: for local VMs, the wheels of the requirements this
  machine lacks, resolved and fetched here at pack time, stored once per content hash.
- :mod:`ephemera.bundle.vmwheels`: for cloud VMs, every wheel of the lock for the VMs'
  platform, fetched and checked against the lock at pack time, stored once per content
  hash, so that a VM installs with ``--no-index``.
- :mod:`ephemera.bundle.pack`: the workload source and requirements
  (``workload.requirements``) with that wheel and the lock, packed reproducibly into
  one content-addressed archive.
- :mod:`ephemera.bundle.store`: bundles in the state bucket by content hash, with
  their manifests: published at apply, or beforehand by a deploy (``workload.bundle``).
- :mod:`ephemera.bundle.delivery`: the controller's side of a VM's boot: the bundle
  stored once per content hash in the state bucket, presigned URLs where the storage
  can presign, the one-time credentials object, and each VM's boot document.

The VM side (fetch, verify, install the lock with hashes required from the wheelhouse, with uv or pip) is
:mod:`ephemera.vm.bootstrap`.
"""
