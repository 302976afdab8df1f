"""What a storage backend tells the rest of Ephemera: the one interface of a backend's folder.

A backend is a folder ``ephemera/storage/<name>/`` whose ``spec.py`` subclasses
:class:`StorageBackendSpec`, plus one line in the registry
(:data:`ephemera.storage.BACKENDS`). Everything that depends on the backend asks its
spec instead of comparing names:

- the config sections it reads (pydantic models; the config loader collects them),
  and the cross-field checks run at load time when it is the chosen backend;
- how to build its client (the ``Storage`` class, whose SDK is imported only then)
  and the class's :class:`~ephemera.storage.base.StorageTraits`;
- how a run's VMs reach it (:class:`VMAccess`): the non-secret part of its section,
  and the credentials delivered once (or none, where the VMs have an identity);
  :meth:`StorageBackendSpec.vm_credentials` turns them into what one run's VMs get
  (:class:`RunScope`): a backend that can mint scoped, short-lived keys does so, and
  no backend hands its own long-lived keys to a VM that is not on this machine;
- its mapping to and from the Lithops storage section of the same name;
- the object URL schemes Lithops code uses for it, and the host a bucket-change feed
  watches, when it has one.

The spec module must not import a cloud SDK: it is imported whenever a config loads.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from ephemera.errors import ConfigError
from ephemera.sections import secret_keys

if TYPE_CHECKING:
    from ephemera.config import Config
    from ephemera.sections import Section
    from ephemera.storage.base import Storage, StorageTraits


@dataclass(frozen=True)
class VMAccess:
    """How a run's VMs reach the storage, never through a Terraform variable."""

    section: dict  # the VMs' config section of the backend, without any secret
    credentials: dict = field(default_factory=dict, repr=False)  # secret keys of that section, delivered once
    identity: dict | None = None  # how VMs authenticate as themselves, e.g. {"kind": "vpc-trusted-profile", ...}; None: keys
    variables: dict = field(default_factory=dict)  # Terraform variables a stack uses to give the VMs that identity


@dataclass(frozen=True)
class RunScope:
    """One run, as the storage sees it when its VMs' credentials are made."""

    run_id: str
    state_bucket: str
    output_bucket: str
    prefixes: Any  # ephemera.layout.RunPrefixes: what the VMs may read and write
    seconds: int  # how long the VMs need access: until the run's hard deadline, with a margin
    vms_on_host: bool = False  # the VMs are processes on the controller's machine (the local stack)


class StorageBackendSpec:
    """The defaults suit a backend with no credentials and a Lithops section equal to its own."""

    name: str = ""  # registry name: the value of storage.backend and the name of its config / Lithops section
    sections: Mapping[str, type[Section]] = {}  # config sections it reads, by top-level key (its own first)
    storage_class: str = ""  # "module:Class" of its Storage implementation, imported when built
    url_schemes: tuple[str, ...] = ()  # Lithops object URL schemes naming it besides its name (e.g. "s3")
    lithops_default_bucket: str | None = None  # bucket when a Lithops section names none; None: it is required
    vm_extras: tuple[str, ...] = ()  # Ephemera extras a run's VMs install to reach this storage
    action_extras: tuple[str, ...] = ()  # Ephemera extras a deployed action installs to reach this storage

    # --- config -------------------------------------------------------------------------
    def check(self, config: Config) -> Any:
        """Cross-field checks of a loaded config using this backend; raise ConfigError naming the key."""
        return None

    # --- client ---------------------------------------------------------------------------
    def load_class(self) -> Any:  # the Storage class named by ``storage_class`` (imported by name)
        module_name, _, cls_name = self.storage_class.partition(":")
        return getattr(importlib.import_module(module_name), cls_name)

    @property
    def traits(self) -> StorageTraits:
        """What the backend can do (declared on its Storage class)."""
        return self.load_class().traits

    def build(self, config: Config, **options: Any) -> Storage:
        """The backend's client for a loaded config."""
        return self.load_class().from_config(config, **options)

    def own_section(self, config: Config) -> dict[str, Any]:
        """The validated values of the section named as the backend (empty when it declares none)."""
        model = self.sections.get(self.name)
        return config.section(model).model_dump() if model is not None else {}

    # --- the run's VMs ----------------------------------------------------------------------
    def vm_access(self, config: Config) -> VMAccess:
        """How the VMs reach this storage. The default splits the backend's own section
        into its non-secret keys and its secret ones (delivered to each VM once)."""
        own = self.own_section(config)
        secret = set(secret_keys(self.sections[self.name])) if self.name in self.sections else set()
        return VMAccess(
            section={k: v for k, v in own.items() if v is not None and k not in secret},
            credentials={k: v for k, v in own.items() if v and k in secret},
        )

    def vm_credentials(self, config: Config, access: VMAccess, scope: RunScope) -> dict | None:
        """The keys one run's VMs get (delivered once through the credentials object), or None.
        The default hands the section's own secret keys only to VMs on this machine (they
        could read the config file anyway); a backend that can do better overrides this."""
        if not access.credentials:
            return None
        if not scope.vms_on_host:
            raise ConfigError(
                f"{self.name}.{sorted(access.credentials)[0]}",
                f"the {self.name} storage would hand its own long-lived keys to the run's cloud VMs",
                "give the VMs an identity of their own, or use a backend that mints per-run credentials",
            )
        return dict(access.credentials)

    def vm_presigner(self, config: Config, scope: RunScope, objects: list, seconds: int) -> Storage | None:
        """A client that signs the URLs of a run's boot documents, when it should not be the
        controller's own (whose key id a SigV4 URL names): ``objects`` lists each
        ``(method, bucket, key)`` it will sign, for ``seconds``. None: the controller's client."""
        return None

    # --- Lithops ------------------------------------------------------------------------------
    def to_lithops(self, config: Config) -> dict:
        """The Lithops storage section of a loaded config, without ``storage_bucket``."""
        return {k: v for k, v in self.own_section(config).items() if v}

    def from_lithops(self, section: dict) -> dict:
        """The Ephemera config sections (other than ``storage``) of a Lithops storage section."""
        own = self.sections[self.name].model_fields
        return {self.name: {k: v for k, v in section.items() if k in own and v}}

    def complete_lithops(self, data: dict) -> dict:
        """This backend's section of a whole Lithops config, completed with Lithops' fallbacks."""
        section = dict(data.get(self.name) or {})
        if self.lithops_default_bucket:
            section.setdefault("storage_bucket", self.lithops_default_bucket)
        return section

    def lithops_storage_keys(self, section: dict) -> dict:
        """The part of the Lithops section that configures storage (what ``Storage`` is built from)."""
        return section

    # --- bucket-change feeds --------------------------------------------------------------------
    def change_feed_endpoint(self, config: Config) -> str | None:
        """Host of this store's endpoint for an object-change feed (IBM COS's), or None without one."""
        return None

    def __repr__(self) -> str:
        return f"<storage backend {self.name}>"
