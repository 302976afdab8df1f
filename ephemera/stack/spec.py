"""A stack's contract with Ephemera: its ``stack.toml``, read into a typed :class:`StackSpec`.

A stack is a folder of ``.tf`` files (under ``terraform/``, or any folder a config
names) with a ``stack.toml`` beside them. The spec says, so that no core module has to
read HCL or know a stack by name:

- the variables the stack takes (type, required or its default, sensitive, and who
  sets it: the user through ``workspace.variables``, Ephemera for each run, or the
  engine on the machine that applies);
- the outputs it gives, and which of them name the VMs (``[vms]``: what
  ``ephemera lithops-config`` turns into one Lithops config per VM);
- the instance profile its VMs have (a variable naming it, or a fixed one), for the
  cost of a run and of a plan, and the prices of the profiles it knows (on-demand, and
  spot where known); what happens to its VMs when spot capacity is reclaimed (``preemption``);
- how its runs boot a prepared cloud image (``prepared_image``: the image kind, the variable
  taking its id and the flag saying it has the driver and uv);
- where its VMs run (``vms_on_host``: processes on the controller's machine), the VM
  identity kinds and storage backends they can use;
- its hooks: a class (``"module:Class"``) doing what only this stack needs (the local
  stack's boot documents, orphan agents and run files; a stack's Lithops backend section);
- where the prepared images of its runs are built (``image_kind``, ``image_builder``,
  ``image_stack``: the image records' kind and the builder's and the image's stack folders,
  siblings of the shipped stacks); a stack without them has no cloud image builder.

A test checks each shipped spec against its ``.tf`` files (variables and outputs both ways).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ephemera.errors import StackSpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with the tomli backport (a dependency there)
    import tomli as tomllib

SPEC_FILE = "stack.toml"
SETTERS = ("user", "ephemera", "engine")  # who gives a variable its value
TYPES = (
    "string",
    "number",
    "bool",
    "list(string)",
    "list(number)",
    "map(string)",
    "object",
    "any",
)  # object: any object({...}) type
_TOP_KEYS = {
    "description",
    "hooks",
    "vms_on_host",
    "vm_identities",
    "storage_backends",
    "profile",
    "profile_variable",
    "variables",
    "outputs",
    "vms",
    "prices",
    "preemption",
    "prepared_image",
    "image_kind",
    "image_builder",
    "image_stack",
}
_BUILD_KEYS = ("image_kind", "image_builder", "image_stack")  # given all together, or none
_PLAIN_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")  # a folder name beside the shipped stacks, never a path
_VAR_KEYS = {"type", "required", "default", "sensitive", "set_by", "max", "description"}
_VMS_KEYS = {"list", "ids", "addresses", "public_addresses"}
_IMAGE_KEYS = {"kind", "variable", "flag", "user_choice"}
_PRICE_KEYS = {"hourly", "spot_hourly", "gpus", "as_of", "source", "estimate"}


@dataclass(frozen=True)
class VariableSpec:
    name: str  # the Terraform variable's name
    type: str  # its Terraform type, one of TYPES
    required: bool  # True: no default, a value must be given
    default: Any = None  # the default the .tf file states (None: none, or null)
    sensitive: bool = False  # kept out of plan output and logs by Terraform
    set_by: str = "user"  # who sets it: "user" (workspace.variables), "ephemera" (each run) or "engine"
    max: int | None = None  # the upper bound its validation states (worker_count), if any


@dataclass(frozen=True)
class OutputSpec:
    name: str  # the Terraform output's name
    description: str = ""  # what it holds


@dataclass(frozen=True)
class VMOutputs:
    """Which outputs name the VMs: either ``list`` (one object per VM with ``worker``)
    or ``ids`` with ``addresses`` (and optional ``public_addresses``), in worker order."""

    list: str | None = None  # output with one object per VM
    ids: str | None = None  # output with one instance id per VM
    addresses: str | None = None  # output with one (private) address per VM
    public_addresses: str | None = None  # output with public addresses, where the stack makes them


@dataclass(frozen=True)
class StackPrice:
    profile: str  # the instance profile priced
    hourly: float  # one instance for one hour, in the config's cost currency
    gpus: int  # GPUs per instance
    as_of: str  # date read or estimated (YYYY-MM-DD)
    source: str  # where it comes from, in words
    estimate: bool = False  # True when nobody read it from a published price list
    spot_hourly: float | None = None  # one spot instance for one hour (None: no spot price known)


@dataclass(frozen=True)
class PreparedImage:
    """How a cloud stack boots a prepared image (``[prepared_image]``): a run whose lock has
    an image of this kind gets ``variable = <image id>`` and ``flag = true``."""

    kind: str  # the image records it takes (ephemera.bundle.image.ImageRecord.kind): "ibm" or "aws"
    variable: str  # the string variable that takes the image's id
    flag: str  # the bool variable saying the image has the driver and uv (custom_image)
    user_choice: tuple[str, ...] = ()  # more variables that, set by the user, choose the boot image (theirs wins)


@dataclass(frozen=True)
class StackSpec:
    name: str  # the stack's registry name (or its folder's name)
    folder: Path  # the folder with its .tf files and stack.toml
    description: str  # one line: what it builds
    variables: dict[str, VariableSpec]  # every variable the .tf files declare
    outputs: dict[str, OutputSpec]  # every output the .tf files declare
    vms: VMOutputs  # which outputs name the VMs
    hooks: str = ""  # "module:Class" of its hooks (ephemera.stack.hooks.StackHooks); empty: the defaults
    vms_on_host: bool = False  # its VMs are processes on the controller's machine
    vm_identities: tuple[str, ...] = ()  # VM identity kinds its VMs can take (empty: none, keys or URLs only)
    storage_backends: tuple[str, ...] = ()  # storage backends its VMs can reach (empty: any)
    profile: str = ""  # the fixed instance profile of its VMs, when no variable names one
    profile_variable: str = ""  # the variable naming the instance profile, if any
    prices: dict[str, StackPrice] = field(default_factory=dict)  # prices of the profiles it knows
    preemption: str = ""  # what happens to a spot VM when its capacity is reclaimed, in words (empty: no spot)
    prepared_image: PreparedImage | None = None  # how its runs boot a prepared cloud image (None: they do not)
    image_kind: str = ""  # the kind of its runs' cloud image records (ImageRecord.kind); empty: no image builder
    image_builder: str = ""  # the builder's stack folder (beside the shipped stacks), e.g. "aws-image-builder"
    image_stack: str = ""  # the image's stack folder (beside the shipped stacks), e.g. "aws-image"

    def takes(self, values: dict) -> dict:
        """The part of ``values`` this stack declares as variables."""
        return {k: v for k, v in values.items() if k in self.variables}

    def setters(self, who: str) -> set[str]:
        return {v.name for v in self.variables.values() if v.set_by == who}

    def default_profile(self) -> str:
        """The instance profile when the config sets none: the profile variable's default, else the fixed one."""
        var = self.variables.get(self.profile_variable)
        return str(var.default) if var is not None and var.default else self.profile

    @property
    def worker_bound(self) -> int | None:
        var = self.variables.get("worker_count")
        return var.max if var is not None else None


def _fail(path: Path, key: str, problem: str, fix: str) -> StackSpecError:
    return StackSpecError(f"{path}: {key}", problem, fix)


def _unknown(path: Path, where: str, data: dict, known: set[str]) -> None:
    extra = sorted(set(data) - known)
    if extra:
        raise _fail(path, f"{where}{extra[0]}", "unknown key", f"known keys are: {', '.join(sorted(known))}")


def _str_tuple(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(path, key, "must be a list of strings", 'e.g. ["ibm_cos"]')
    return tuple(value)


def _variable(path: Path, name: str, data: Any) -> VariableSpec:
    key = f"variables.{name}"
    if not isinstance(data, dict):
        raise _fail(path, key, "must be a table", f'write [variables.{name}] with type = "string"')
    _unknown(path, f"{key}.", data, _VAR_KEYS)
    if data.get("type") not in TYPES:
        raise _fail(path, f"{key}.type", f"'{data.get('type')}' is not a type Ephemera knows", f"use one of {', '.join(TYPES)}")
    if data.get("set_by", "user") not in SETTERS:
        raise _fail(
            path, f"{key}.set_by", f"'{data.get('set_by')}' is not who sets variables", f"use one of {', '.join(SETTERS)}"
        )
    required = data.get("required", "default" not in data)
    if not isinstance(required, bool) or (required and "default" in data):
        raise _fail(path, f"{key}.required", "must be true (no default) or false (with a default)", "drop it, or the default")
    bound = data.get("max")
    if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool)):
        raise _fail(path, f"{key}.max", "must be an integer", "write the bound the variable's validation states")
    return VariableSpec(
        name, data["type"], required, data.get("default"), bool(data.get("sensitive", False)), data.get("set_by", "user"), bound
    )


def _price(path: Path, profile: str, data: Any) -> StackPrice:
    key = f"prices.{profile}"
    if not isinstance(data, dict) or not isinstance(data.get("hourly"), (int, float)) or not isinstance(data.get("source"), str):
        raise _fail(path, key, "needs hourly (a number) and source (text)", 'e.g. hourly = 1.9, gpus = 1, source = "list price"')
    _unknown(path, f"{key}.", data, _PRICE_KEYS)
    spot = data.get("spot_hourly")
    if spot is not None and (isinstance(spot, bool) or not isinstance(spot, (int, float)) or spot < 0):
        raise _fail(path, f"{key}.spot_hourly", "must be a number >= 0", "the price of one spot instance for one hour, e.g. 0.6")
    return StackPrice(
        profile,
        float(data["hourly"]),
        int(data.get("gpus", 0)),
        str(data.get("as_of", "")),
        data["source"],
        bool(data.get("estimate", False)),
        None if spot is None else float(spot),
    )


def _prepared_image(path: Path, data: Any, variables: dict[str, VariableSpec]) -> PreparedImage | None:
    if data is None:
        return None
    fix = 'e.g. prepared_image = { kind = "aws", variable = "image_id", flag = "custom_image", user_choice = ["image"] }'
    if (
        not isinstance(data, dict)
        or set(data) - _IMAGE_KEYS
        or not all(isinstance(data.get(k), str) for k in ("kind", "variable", "flag"))
    ):
        raise _fail(path, "prepared_image", "needs kind, variable and flag (strings), and may name user_choice", fix)
    for key, want in (("variable", "string"), ("flag", "bool")):
        var = variables.get(data[key])
        if var is None or var.type != want or var.set_by != "user":
            raise _fail(path, f"prepared_image.{key}", f"'{data[key]}' is not a {want} variable the user sets", fix)
    choice = _str_tuple(path, "prepared_image.user_choice", data.get("user_choice", []))
    for name in choice:
        if name not in variables:
            raise _fail(path, "prepared_image.user_choice", f"names '{name}', which is not a variable of the stack", fix)
    return PreparedImage(data["kind"], data["variable"], data["flag"], choice)


def _image_keys(path: Path, data: dict) -> dict[str, str]:
    """The image-build keys: all three plain folder-style names, or none of them."""
    given = {k: data[k] for k in _BUILD_KEYS if k in data}
    if given and len(given) != len(_BUILD_KEYS):
        missing = [k for k in _BUILD_KEYS if k not in given]
        raise _fail(
            path, missing[0], "missing: the image-build keys go together", f"set all of {', '.join(_BUILD_KEYS)}, or none"
        )
    for key, value in given.items():
        if not isinstance(value, str) or not _PLAIN_NAME.match(value):
            raise _fail(path, key, f"{value!r} is not a plain name", 'lowercase letters, digits and dashes, e.g. "aws-image"')
    return given


def parse_spec(name: str, folder: Path, text: str) -> StackSpec:
    """The spec in ``text`` (a ``stack.toml`` of ``folder``); StackSpecError naming the key and the fix."""
    path = folder / SPEC_FILE
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, "(file)", f"is not TOML ({exc})", "fix the syntax") from None
    _unknown(path, "", data, _TOP_KEYS)
    variables = data.get("variables", {})
    outputs = data.get("outputs", {})
    if not isinstance(variables, dict) or not isinstance(outputs, dict):
        raise _fail(path, "variables", "variables and outputs must be tables", "write [variables.<name>] and [outputs.<name>]")
    vms = data.get("vms", {})
    if not isinstance(vms, dict):
        raise _fail(path, "vms", "must be a table", 'e.g. [vms] ids = "instance_ids", addresses = "private_ips"')
    _unknown(path, "vms.", vms, _VMS_KEYS)
    for key, out in vms.items():
        if out not in outputs:
            raise _fail(path, f"vms.{key}", f"names '{out}', which is not an output of the stack", "name one of [outputs]")
    declared = {n: _variable(path, n, v) for n, v in variables.items()}
    spec = StackSpec(
        name=name,
        folder=folder,
        description=str(data.get("description", "")),
        variables=declared,
        outputs={
            n: OutputSpec(n, str((v or {}).get("description", "")) if isinstance(v, dict) else "") for n, v in outputs.items()
        },
        vms=VMOutputs(**vms),
        hooks=str(data.get("hooks", "")),
        vms_on_host=bool(data.get("vms_on_host", False)),
        vm_identities=_str_tuple(path, "vm_identities", data.get("vm_identities", [])),
        storage_backends=_str_tuple(path, "storage_backends", data.get("storage_backends", [])),
        profile=str(data.get("profile", "")),
        profile_variable=str(data.get("profile_variable", "")),
        prices={p: _price(path, p, v) for p, v in (data.get("prices") or {}).items()},
        preemption=str(data.get("preemption", "")),
        prepared_image=_prepared_image(path, data.get("prepared_image"), declared),
        **_image_keys(path, data),
    )
    if spec.image_kind and spec.prepared_image is not None and spec.image_kind != spec.prepared_image.kind:
        raise _fail(
            path,
            "image_kind",
            f"'{spec.image_kind}' is not prepared_image.kind '{spec.prepared_image.kind}'",
            "build what the runs boot",
        )
    if spec.profile_variable and spec.profile_variable not in spec.variables:
        raise _fail(
            path,
            "profile_variable",
            f"names '{spec.profile_variable}', which is not a variable of the stack",
            "name one of [variables], or drop it and set profile",
        )
    return spec


def load_spec_file(name: str, folder: Path) -> StackSpec:
    """The spec of the stack in ``folder``; StackSpecError when it has none."""
    path = folder / SPEC_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise StackSpecError(
            f"{path}",
            "missing: a stack needs a spec beside its .tf files",
            "write stack.toml (ARCHITECTURE.md, 'Where to add things': a stack)",
        ) from None
    return parse_spec(name, folder, text)
